//! # netmorph-gpu
//!
//! Reserved for GPU convolution and training through wgpu/WGSL (portable compute, no CUDA
//! bindings). Nothing is implemented yet: this crate is an empty placeholder in the
//! workspace layout, and it exports no items.
#![deny(missing_docs)]
