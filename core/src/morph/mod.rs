//! Morph operations: each takes a network, a position and parameters, and returns the child
//! network with a [`MorphReport`].
//!
//! | operation | paper | module |
//! |---|---|---|
//! | depth (`G -> F_l, phi^a, F_{l+1}`), identity insertion | eq. (1)-(6), (10)-(11), Alg. 1-2 | [`depth`] |
//! | width | eq. (12)-(18) | [`width`] |
//! | kernel size | section 3.4.2 | [`kernel`] |
//! | sequential and stacked subnets | eq. (19), (20) | [`subnet`] |
//! | IdMorph / Net2DeeperNet, Net2WiderNet | baselines (Chen et al.) | [`baseline`] |
//! | a list of any of these | | [`plan`] |
//! | what a morph will cost, before it runs | | [`cost`] |
//!
//! A depth morph with `K_1 + K_2 - 1 > K` and a chosen `C_l` changes depth, width and kernel
//! size in one operation, as the paper claims for eq. (6).

pub mod baseline;
pub mod cost;
pub mod depth;
mod error;
pub mod kernel;
pub mod plan;
mod report;
pub mod subnet;
pub mod width;

pub use cost::MorphCost;
pub use error::MorphError;
pub use report::{MorphReport, NewLayer};

use alloc::vec::Vec;

use crate::net::{seq_at, seq_at_mut};
use crate::{Kernel, Layer, LayerPath, NetError, Network, Scalar};

/// The sequence holding `path` and the index within it; the index may equal the length
/// only when `insert` is true.
pub(crate) fn locate<'a, T>(
    layers: &'a mut Vec<Layer<T>>,
    path: &LayerPath,
    insert: bool,
) -> Result<(&'a mut Vec<Layer<T>>, usize), MorphError> {
    let (seq, i) = seq_at_mut(layers, &path.0).ok_or_else(|| missing(path))?;
    in_range(seq.len(), i, insert, path)?;
    Ok((seq, i))
}

/// [`locate`] without changing anything.
pub(crate) fn locate_ref<'a, T: Scalar>(
    net: &'a Network<T>,
    path: &LayerPath,
    insert: bool,
) -> Result<(&'a [Layer<T>], usize), MorphError> {
    let (seq, i) = seq_at(net.layers(), &path.0).ok_or_else(|| missing(path))?;
    in_range(seq.len(), i, insert, path)?;
    Ok((seq, i))
}

fn missing(path: &LayerPath) -> MorphError {
    MorphError::NoSuchLayer {
        layer: path.clone(),
    }
}

/// Index `i` of a sequence of `len` layers is a layer, or with `insert` an insertion point.
fn in_range(len: usize, i: usize, insert: bool, path: &LayerPath) -> Result<(), MorphError> {
    if i < len || (insert && i == len) {
        Ok(())
    } else {
        Err(missing(path))
    }
}

/// The kernel of the dense or convolution `layer`, checked finite.
pub(crate) fn linear_kernel<'a, T: Scalar>(
    layer: &'a Layer<T>,
    path: &LayerPath,
    op: &'static str,
) -> Result<&'a Kernel<T>, MorphError> {
    let k = layer.kernel().ok_or(MorphError::NotMorphable {
        layer: path.clone(),
        found: layer.name(),
        op,
    })?;
    if !k.is_finite() {
        return Err(MorphError::NonFinite {
            layer: path.clone(),
        });
    }
    Ok(k)
}

/// Validates the edited layers into the child network and completes the report's counts.
pub(crate) fn finish<T: Scalar>(
    parent: &Network<T>,
    layers: Vec<Layer<T>>,
    mut report: MorphReport,
) -> Result<(Network<T>, MorphReport), MorphError> {
    let child = Network::new(parent.input_shape(), layers).map_err(|e| match e {
        // A child geometry past what memory can hold is the request's fault, not a bug.
        NetError::TooLarge { layer, what } => MorphError::TooLarge { layer, what },
        e => MorphError::Net(e),
    })?;
    report.params_before = parent.param_count();
    report.params_after = child.param_count();
    Ok((child, report))
}

/// Fraction of non-zero values.
pub(crate) fn nonzero_fraction<T: Scalar>(vals: &[&[T]]) -> f64 {
    let total: usize = vals.iter().map(|v| v.len()).sum();
    let nz: usize = vals
        .iter()
        .map(|v| v.iter().filter(|x| **x != T::zero()).count())
        .sum();
    if total == 0 {
        1.0
    } else {
        nz as f64 / total as f64
    }
}
