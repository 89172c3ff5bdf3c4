//! Networks: layers, validation and the forward pass.

mod backward;
mod forward;
mod layer;
mod network;
mod patches;
mod pool;
mod reduce;
mod tanh;

pub use backward::{Gradients, Trace};
pub use layer::{ActKind, Conv2d, Kernel, Layer, PActivation, Pool, Shape};
pub(crate) use network::{check_length, seq_at, seq_at_mut};
pub use network::{LayerPath, NetError, Network, MAX_PATH_DEPTH};
pub(crate) use tanh::tanh_f32;
