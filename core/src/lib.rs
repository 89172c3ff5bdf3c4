//! # netmorph-core
//!
//! Network morphism (Wei, Wang, Rui and Chen, ICML 2016): morph a trained network into a
//! deeper, wider, larger-kernel or sub-netted child whose network function is exactly the
//! parent's. `#![no_std]` with `alloc`; the `std` feature (on by default) only forwards to
//! dependencies (faer's fast matmul kernels need it).
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod alloc_try;
mod gemm;
pub mod morph;
pub mod net;
mod rng;
mod scalar;
pub mod solve;
mod tensor;
pub mod train;

pub use net::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, NetError, Network, PActivation, Pool, Shape,
};
pub use rng::Rng;
pub use scalar::Scalar;
pub use tensor::Tensor;
#[cfg(all(test, feature = "std"))]
mod heap_meter;
