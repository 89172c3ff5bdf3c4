//! # netmorph-gpu
//!
//! Training on a GPU for netmorph through [wgpu](https://wgpu.rs) compute and WGSL shaders:
//! one code path for Vulkan (NVIDIA, AMD, Intel), Metal, DX12 and Mesa's software Vulkan
//! (lavapipe, which CI runs every test on). No CUDA bindings.
//!
//! - [`Gpu`]: adapter discovery ([`Gpu::adapters`]) and selection by index or name
//!   ([`AdapterChoice`]), with a clear [`GpuError`] when there is none;
//! - [`train::Trainer`]: a core network and its SGD state uploaded once, trained step by
//!   step with every buffer resident on the GPU, and downloaded as an ordinary core network
//!   (to morph, save or upload again);
//! - [`Gpu::matmul`]: the tiled matrix product the layers are built on;
//! - [`memory`]: the GPU memory a run will take, from the network's shapes alone;
//! - [`Real`]: the kernels run in f32 on every adapter and in f64 on Vulkan adapters with
//!   `SHADER_F64` ([`Gpu::supports`]), for checks against the CPU to f64 precision.
//!
//! `docs/gpu.md` in the repository gives the design, the checks and the measurements.
//!
//! ```no_run
//! use netmorph_gpu::{AdapterChoice, Gpu};
//!
//! let gpu = Gpu::open(&AdapterChoice::Default)?;
//! println!("running on {} (f64: {})", gpu.name(), gpu.supports::<f64>());
//! // C (2 x 2) = A (2 x 3) B (3 x 2), row-major.
//! let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let c = gpu.matmul(&netmorph_gpu::Product::row_major(2, 3, 2), &a, &b, None)?;
//! assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
//! # Ok::<(), netmorph_gpu::GpuError>(())
//! ```
#![deny(missing_docs)]

mod device;
mod error;
mod kernels;
mod matmul;
pub mod memory;
mod real;
pub mod testing;
pub mod train;

pub use device::{AdapterChoice, AdapterSummary, Gpu};
pub use error::GpuError;
pub use matmul::Product;
pub use real::Real;
