use core::fmt;

use crate::alloc_try::AllocError;
use crate::solve::algorithm::SolveError;
use crate::{LayerPath, NetError};

/// Why a morph request cannot preserve the network function.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MorphError {
    /// No layer (or insertion point) at this path.
    NoSuchLayer {
        /// The path asked for.
        layer: LayerPath,
    },
    /// The layer's type does not support the operation.
    NotMorphable {
        /// The layer.
        layer: LayerPath,
        /// Its type.
        found: &'static str,
        /// The operation.
        op: &'static str,
    },
    /// A width morph asked for fewer channels than the layer has.
    Narrower {
        /// The layer.
        layer: LayerPath,
        /// Current channels.
        current: usize,
        /// Requested channels.
        requested: usize,
    },
    /// A kernel size that is smaller than the current one or differs from it by an odd amount.
    KernelSize {
        /// The layer.
        layer: LayerPath,
        /// Current kernel size.
        current: usize,
        /// Requested kernel size.
        requested: usize,
    },
    /// New kernel sizes must be odd (centred padding).
    KernelNotOdd {
        /// The layer.
        layer: LayerPath,
        /// The offending kernel size.
        kernel: usize,
    },
    /// A parameter outside its valid range (zero width, fewer than two branches, ...).
    InvalidParameter {
        /// The layer.
        layer: LayerPath,
        /// What is wrong and the valid range.
        what: &'static str,
    },
    /// A strided layer can only be deepened exactly with the strided factor first and a
    /// `1 x 1` second factor.
    Strided {
        /// The layer.
        layer: LayerPath,
        /// Its stride.
        stride: usize,
        /// The requested `K_2`.
        k2: usize,
    },
    /// A width morph found no dense or convolution layer consuming this layer's channels in
    /// the same sequence.
    NoConsumer {
        /// The layer.
        layer: LayerPath,
    },
    /// IdMorph needs `phi(phi(x)) = phi(x)`.
    NotIdempotent {
        /// The activation layer.
        layer: LayerPath,
        /// Its function.
        activation: &'static str,
    },
    /// The layer holds NaN or infinite parameters.
    NonFinite {
        /// The layer.
        layer: LayerPath,
    },
    /// The deconvolution could not reach zero residual.
    Solve {
        /// The layer.
        layer: LayerPath,
        /// Why.
        source: SolveError,
    },
    /// The edited network failed validation (a bug, reported rather than panicking).
    Net(NetError),
    /// A size of the child (a parameter count, a kernel, the workspace) overflows `usize`.
    TooLarge {
        /// The layer.
        layer: LayerPath,
        /// Which size.
        what: &'static str,
    },
    /// The morph's workspace or a child kernel could not be allocated.
    Alloc {
        /// Bytes requested.
        bytes: usize,
    },
    /// The morph would need more heap than the budget it was given
    /// ([`MorphOp::apply_within`](crate::morph::plan::MorphOp::apply_within)); nothing was
    /// allocated.
    OverBudget {
        /// Bytes the morph may hold at once ([`MorphCost::workspace_bytes`](crate::morph::MorphCost)).
        needs: usize,
        /// Bytes it was allowed.
        budget: usize,
    },
    /// A grown kernel so large that its outermost taps can only ever read zero padding (see
    /// [`crate::morph::kernel`]).
    KernelBeyondInput {
        /// The layer.
        layer: LayerPath,
        /// Requested kernel size.
        requested: usize,
        /// Largest useful kernel size.
        max: usize,
    },
    /// A stacked subnet with more branches than
    /// [`MAX_BRANCHES`](crate::morph::subnet::MAX_BRANCHES).
    TooManyBranches {
        /// The layer.
        layer: LayerPath,
        /// Requested branches.
        requested: usize,
        /// The limit.
        max: usize,
    },
}

impl MorphError {
    /// The path of the layer the error names, if it names one.
    pub(crate) fn layer_mut(&mut self) -> Option<&mut LayerPath> {
        match self {
            Self::NoSuchLayer { layer }
            | Self::NotMorphable { layer, .. }
            | Self::Narrower { layer, .. }
            | Self::KernelSize { layer, .. }
            | Self::KernelNotOdd { layer, .. }
            | Self::InvalidParameter { layer, .. }
            | Self::Strided { layer, .. }
            | Self::NoConsumer { layer }
            | Self::NotIdempotent { layer, .. }
            | Self::NonFinite { layer }
            | Self::Solve { layer, .. }
            | Self::TooLarge { layer, .. }
            | Self::KernelBeyondInput { layer, .. }
            | Self::TooManyBranches { layer, .. } => Some(layer),
            Self::Net(e) => e.layer_mut(),
            Self::Alloc { .. } | Self::OverBudget { .. } => None,
        }
    }
}

impl fmt::Display for MorphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchLayer { layer } => write!(f, "there is no layer {layer}; list the layers with `netmorph inspect` and pick one"),
            Self::NotMorphable { layer, found, op } => write!(
                f,
                "layer {layer} is a {found} layer, which a {op} morph cannot change; pick a {} layer",
                if *op == "kernel" { "conv2d" } else { "dense or conv2d" }
            ),
            Self::Narrower { layer, current, requested } => write!(
                f,
                "layer {layer} has {current} channels; a width morph cannot shrink it to {requested}: ask for at least {current}"
            ),
            Self::KernelSize { layer, current, requested } => write!(
                f,
                "layer {layer} has kernel {current}; it can only grow by an even amount (to {current}, {}, {}, ...), not to {requested}",
                current + 2,
                current + 4
            ),
            Self::KernelNotOdd { layer, kernel } => write!(f, "kernel size {kernel} for layer {layer} is even; use an odd size"),
            Self::InvalidParameter { layer, what } => write!(f, "layer {layer}: {what}"),
            Self::Strided { layer, stride, k2 } => write!(
                f,
                "layer {layer} has stride {stride}: deepening it stays exact only with K_2 = 1 (the strided factor first), not K_2 = {k2}"
            ),
            Self::NoConsumer { layer } => write!(
                f,
                "no dense or conv2d layer after {layer} in the same sequence consumes its channels; widen a layer that feeds another one"
            ),
            Self::NotIdempotent { layer, activation } => write!(
                f,
                "activation {layer} ({activation}) is not idempotent, so IdMorph would change the function; use a depth morph (NetMorph) instead"
            ),
            Self::NonFinite { layer } => write!(f, "layer {layer} holds NaN or infinite parameters; retrain or repair the model before morphing"),
            Self::Solve { layer, source } => write!(f, "layer {layer}: {source}"),
            Self::Net(e) => write!(f, "the morphed network is invalid ({e}); please report this as a bug"),
            Self::TooLarge { layer, what } => write!(
                f,
                "layer {layer}: the {what} would exceed usize::MAX; ask for smaller sizes"
            ),
            Self::Alloc { bytes } => write!(
                f,
                "the morph needs up to {bytes} bytes of memory, which cannot be allocated; ask for \
                 smaller sizes (MorphOp::cost gives the bound before a morph runs)"
            ),
            Self::OverBudget { needs, budget } => write!(
                f,
                "the morph needs up to {needs} bytes of heap, more than its budget of {budget} \
                 bytes; free memory and raise the budget, or ask for smaller sizes"
            ),
            Self::KernelBeyondInput { layer, requested, max } => write!(
                f,
                "kernel {requested} for layer {layer} is larger than {max}, the largest whose \
                 outermost taps still reach its input (beyond it they only ever multiply zero \
                 padding); use at most {max}"
            ),
            Self::TooManyBranches { layer, requested, max } => write!(
                f,
                "a stacked subnet of layer {layer} has at most {max} branches, not {requested}; \
                 stack fewer branches or deepen them instead"
            ),
        }
    }
}

impl From<AllocError> for MorphError {
    fn from(e: AllocError) -> Self {
        Self::Alloc { bytes: e.bytes }
    }
}

impl core::error::Error for MorphError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Solve { source, .. } => Some(source),
            Self::Net(e) => Some(e),
            _ => None,
        }
    }
}
