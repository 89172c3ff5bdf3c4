//! # netmorph C ABI
//!
//! `libnetmorph_c.so` / `libnetmorph_c.a` and `include/netmorph.h`: make (from the caller's
//! arrays or an MLP recipe), load, save, train, inspect and overwrite f32 networks and morph
//! them (Wei et al., ICML 2016) from C, with the child's function checked against the
//! parent's and a report of what the morph did. Layers, nested ones included, are addressed by
//! paths (`const size_t *path, size_t path_len`). `docs/capi.md` is the guide: every function, who
//! owns every buffer, error handling, and an example.
//!
//! The ABI is f32: networks run in single precision, and a model file that stores f64 is
//! converted on load.
//!
//! Conventions, for every function:
//! - it returns an [`NmStatus`]; on failure [`nm_last_error`] gives the message;
//! - every pointer is checked for NULL ([`NmStatus::ErrNull`]) before anything is read;
//! - buffers come with their length in elements, checked before anything is written (a
//!   short buffer is [`NmStatus::ErrArgument`] and is left untouched); sizes are computed
//!   with checked arithmetic, and work that would not fit in the memory available is refused
//!   before it is allocated;
//! - a panic (a bug) is caught at the boundary ([`NmStatus::ErrPanic`]) and never unwinds
//!   into C; the library must be built with `panic = "unwind"` (the default);
//! - models are made by the library and freed with [`nm_model_free`]; everything else the
//!   caller passes stays the caller's.
//!
//! # Examples
//!
//! The functions are callable from Rust through the rlib (as `capi/tests/abi.rs` does):
//!
//! ```
//! use netmorph_c::*;
//! let mut parent = std::ptr::null_mut();
//! let sizes = [4usize, 8, 3];
//! unsafe {
//!     assert_eq!(nm_model_new_mlp(sizes.as_ptr(), 3, 1, &mut parent), NmStatus::Ok);
//!     let mut child = std::ptr::null_mut();
//!     let op = c"depth@1,cl=6,act=tanh";
//!     let mut report = std::mem::MaybeUninit::<NmMorphReport>::uninit();
//!     let status = nm_morph(parent, op.as_ptr(), 7, &mut child, report.as_mut_ptr());
//!     assert_eq!(status, NmStatus::Ok);
//!     let report = report.assume_init();
//!     assert_eq!((report.params_before, report.params_after), (75, 127));
//!     assert!(report.max_rel_deviation <= 1e-4);
//!     let mut dev = f64::NAN;
//!     assert_eq!(nm_check_preservation(parent, child, 64, 3, &mut dev), NmStatus::Ok);
//!     assert!(dev <= 1e-5, "{dev}");
//!     nm_model_free(child);
//!     nm_model_free(parent);
//! }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod build;
mod forward;
mod layer;
mod model;
mod morph;
mod path;
mod ptr;
mod status;
mod train;

pub use build::{nm_model_new, nm_model_set_layer, NmLayerSpec};
pub use forward::nm_forward;
pub use layer::{nm_model_layer, nm_model_layer_count, NmActivation, NmLayerInfo, NmLayerKind};
pub use model::{
    nm_model_free, nm_model_input_len, nm_model_input_shape, nm_model_load, nm_model_new_mlp,
    nm_model_output_len, nm_model_param_count, nm_model_save, NmModel,
};
pub use morph::{
    nm_check_preservation, nm_deepen, nm_grow_kernel, nm_morph, nm_widen, NmAlgorithm,
    NmMorphReport, NM_MORPH_PROBES,
};
pub use status::{nm_last_error, NmStatus};
pub use train::nm_sgd_step;
