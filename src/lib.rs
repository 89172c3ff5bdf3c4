//! # netmorph
//!
//! Network morphism (Wei, Wang, Rui and Chen, ICML 2016): grow a trained network into a
//! deeper, wider, larger-kernel or sub-netted child with exactly the same network function.
//! This crate is the facade over [`netmorph_core`]; see the README for a tour.
#![deny(missing_docs)]

pub use netmorph_core::*;

pub mod arch;
pub mod atomic;
pub mod carry;
pub mod checkpoint;
pub mod data;
#[cfg(feature = "gpu")]
pub mod device;
pub mod fit;
pub mod memory;
pub mod model_file;
pub mod npy;
pub mod onnx;
pub mod ops;
pub mod plot;

/// The README's library example, run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
