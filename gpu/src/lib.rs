//! # netmorph-gpu
//!
//! GPU kernels for netmorph through [wgpu](https://wgpu.rs) compute and WGSL shaders: one
//! code path for Vulkan (NVIDIA, AMD, Intel), Metal, DX12 and Mesa's software Vulkan
//! (lavapipe, which CI runs every test on). No CUDA bindings.
//!
//! What exists so far (issue 10 is in progress; `docs/gpu.md` tracks it):
//! - [`Gpu`]: adapter discovery ([`Gpu::adapters`]) and selection by index or name
//!   ([`AdapterChoice`]), with a clear [`GpuError`] when there is none;
//! - [`Gpu::matmul`]: a tiled matrix product in workgroup memory, any strides (so any
//!   transposition), optional bias per output column;
//! - [`dense`]: a fully connected layer's forward and backward pass on the GPU, checked
//!   against the core's CPU implementation.
//!
//! Not yet: convolution, pooling, P-activations, the loss, SGD, whole training steps, and
//! the `--device gpu` of the command-line program.
//!
//! ```no_run
//! use netmorph_gpu::{AdapterChoice, Gpu};
//!
//! let gpu = Gpu::open(&AdapterChoice::Default)?;
//! println!("running on {}", gpu.name());
//! // C (2 x 2) = A (2 x 3) B (3 x 2), row-major.
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let c = gpu.matmul(&netmorph_gpu::Product::row_major(2, 3, 2), &a, &b, None)?;
//! assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
//! # Ok::<(), netmorph_gpu::GpuError>(())
//! ```
#![deny(missing_docs)]

pub mod dense;
mod device;
mod error;
mod kernels;
mod matmul;
pub mod testing;
pub mod train;

pub use device::{AdapterChoice, AdapterSummary, Gpu};
pub use error::GpuError;
pub use matmul::Product;
