//! [`MorphOp`]: every morph of this crate as one value, and [`apply_plan`] for a sequence.

use alloc::vec::Vec;

use super::baseline::{id_morph, net2wider};
use super::depth::{deepen, insert_identity, DepthParams, InsertParams};
use super::kernel::grow_kernel;
use super::subnet::{sequential, stacked, SequentialParams, StackedParams};
use super::width::widen;
use super::{MorphError, MorphReport};
use crate::{LayerPath, Network, Rng, Scalar};

/// One morph operation and where it applies.
#[derive(Clone, Debug, PartialEq)]
pub enum MorphOp {
    /// [`deepen`]: `G -> F_l, phi^1, F_{l+1}`.
    Depth {
        /// Parent layer.
        layer: LayerPath,
        /// Sizes and algorithm.
        params: DepthParams,
    },
    /// [`insert_identity`]: two new layers where the parent computes the identity.
    InsertIdentity {
        /// Insertion point.
        at: LayerPath,
        /// Sizes and algorithm.
        params: InsertParams,
    },
    /// [`widen`].
    Width {
        /// Layer whose output is widened.
        layer: LayerPath,
        /// New channel count.
        width: usize,
    },
    /// [`grow_kernel`].
    Kernel {
        /// Convolution layer.
        layer: LayerPath,
        /// New kernel size.
        k: usize,
    },
    /// [`sequential`] subnet (eq. 19).
    Sequential {
        /// Parent layer.
        layer: LayerPath,
        /// Widths and kernels.
        params: SequentialParams,
    },
    /// [`stacked`] subnet (eq. 20).
    Stacked {
        /// Parent layer.
        layer: LayerPath,
        /// Branches and split.
        params: StackedParams,
    },
    /// [`id_morph`] baseline.
    IdMorph {
        /// Layer after which (and after whose activation) the identity goes.
        layer: LayerPath,
        /// Identity kernel size for convolutions.
        k: usize,
    },
    /// [`net2wider`] baseline.
    Net2Wider {
        /// Layer whose output is widened.
        layer: LayerPath,
        /// New channel count.
        width: usize,
        /// Noise on replicas' outgoing weights (0: exact).
        noise: f64,
    },
}

impl MorphOp {
    /// Applies the operation to `net`.
    ///
    /// # Errors
    /// The operation's [`MorphError`].
    pub fn apply<T: Scalar>(
        &self,
        net: &Network<T>,
        rng: &mut Rng,
    ) -> Result<(Network<T>, MorphReport), MorphError> {
        match self {
            Self::Depth { layer, params } => deepen(net, layer, params, rng),
            Self::InsertIdentity { at, params } => insert_identity(net, at, params, rng),
            Self::Width { layer, width } => widen(net, layer, *width, rng),
            Self::Kernel { layer, k } => grow_kernel(net, layer, *k),
            Self::Sequential { layer, params } => sequential(net, layer, params, rng),
            Self::Stacked { layer, params } => stacked(net, layer, params, rng),
            Self::IdMorph { layer, k } => id_morph(net, layer, *k),
            Self::Net2Wider {
                layer,
                width,
                noise,
            } => net2wider(net, layer, *width, *noise, rng),
        }
    }

    /// Whether the operation preserves the function exactly (everything but Net2WiderNet
    /// with noise).
    pub fn is_exact(&self) -> bool {
        !matches!(self, Self::Net2Wider { noise, .. } if *noise > 0.0)
    }
}

/// Applies `ops` in order.
///
/// # Errors
/// The first failing operation's index and error.
///
/// # Examples
/// ```
/// use netmorph_core::morph::plan::{apply_plan, MorphOp};
/// use netmorph_core::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape};
/// let mut rng = Rng::seed(2);
/// let mut k = Kernel::<f64>::zeros(3, 2, 1);
/// k.weight = rng.normals(6, 1.0);
/// let net = Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap();
/// let ops = [MorphOp::Depth { layer: LayerPath::top(0), params: netmorph_core::morph::depth::DepthParams::new(5, 1, 1) },
///            MorphOp::Width { layer: LayerPath::top(0), width: 8 }];
/// let (child, reports) = apply_plan(&net, &ops, &mut rng).unwrap();
/// assert_eq!(reports.len(), 2);
/// assert_eq!(child.layers().len(), 3);
/// ```
pub fn apply_plan<T: Scalar>(
    net: &Network<T>,
    ops: &[MorphOp],
    rng: &mut Rng,
) -> Result<(Network<T>, Vec<MorphReport>), (usize, MorphError)> {
    let mut cur = net.clone();
    let mut reports = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let (next, r) = op.apply(&cur, rng).map_err(|e| (i, e))?;
        cur = next;
        reports.push(r);
    }
    Ok((cur, reports))
}
