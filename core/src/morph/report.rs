use alloc::vec::Vec;

use crate::solve::algorithm::Algorithm;
use crate::LayerPath;

/// A layer a morph created or reshaped.
#[derive(Clone, Debug, PartialEq)]
pub struct NewLayer {
    /// Where it is in the child.
    pub path: LayerPath,
    /// Layer type (`"dense"`, `"conv2d"`, `"activation"`, `"parallel_sum"`).
    pub kind: &'static str,
    /// Output channels (or features).
    pub out: usize,
    /// Input channels (or features).
    pub inp: usize,
    /// Kernel size (1 for dense layers and activations).
    pub k: usize,
}

/// What a morph did.
#[derive(Clone, Debug, PartialEq)]
pub struct MorphReport {
    /// Operation name (`"depth"`, `"width"`, `"kernel"`, ...).
    pub op: &'static str,
    /// The parent layer it acted on.
    pub layer: LayerPath,
    /// Layers created or reshaped, with their child paths.
    pub new_layers: Vec<NewLayer>,
    /// Parent parameter count.
    pub params_before: usize,
    /// Child parameter count.
    pub params_after: usize,
    /// Fraction of non-zero values among the new or reshaped weights.
    pub nonzero_fraction: f64,
    /// The deconvolution algorithm that ran, for depth and subnet morphs.
    pub algorithm: Option<Algorithm>,
    /// Whether condition (7) held, for depth and subnet morphs.
    pub condition7: Option<bool>,
    /// Relative residual of the solve (0 for closed-form operations).
    pub residual: f64,
    /// Number of deconvolution solves.
    pub solves: usize,
    /// For width morphs (`width`, `net2wider`): for each channel of the widened blob, in child
    /// order, the parent channel whose parameters it continues (`None`: a new channel, or a
    /// Net2WiderNet replica). Where a parent's weights went, so that optimizer state (momentum,
    /// Adam moments) can follow them. Empty for other operations.
    pub channels: Vec<Option<usize>>,
}

impl MorphReport {
    /// A report for a closed-form operation (no solve); counts are filled in by `finish`.
    pub(crate) fn closed_form(
        op: &'static str,
        layer: LayerPath,
        new_layers: Vec<NewLayer>,
        nonzero_fraction: f64,
    ) -> Self {
        Self {
            op,
            layer,
            new_layers,
            params_before: 0,
            params_after: 0,
            nonzero_fraction,
            algorithm: None,
            condition7: None,
            residual: 0.0,
            solves: 0,
            channels: Vec::new(),
        }
    }
}
