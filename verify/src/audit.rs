//! The audit API: apply a morph plan to a user's network step by step and measure, after every
//! step, how far the child's outputs are from the parent's on probe inputs.

use std::fmt;

use netmorph_core::morph::plan::MorphOp;
use netmorph_core::morph::{MorphError, MorphReport};
use netmorph_core::{NetError, Network, Rng, Scalar, Tensor};

/// The inputs an audit runs the networks on.
#[derive(Clone, Debug)]
pub enum Probes<'a, T> {
    /// The caller's own inputs (a held-out batch of real data, say).
    Given(&'a Tensor<T>),
    /// `n` standard-normal inputs drawn with `seed` (non-zero and non-symmetric).
    Random {
        /// Batch size.
        n: usize,
        /// Seed.
        seed: u64,
    },
}

/// One step of an audit.
#[derive(Clone, Debug)]
pub struct StepAudit {
    /// Index in the plan.
    pub step: usize,
    /// The operation.
    pub op: MorphOp,
    /// What the morph reported.
    pub report: MorphReport,
    /// `max |child(x) - parent(x)|` over the probes, against the original parent.
    pub max_abs: f64,
    /// `max_abs / max |parent(x)|`.
    pub max_rel: f64,
}

/// The result of [`audit`].
#[derive(Clone, Debug)]
pub struct Audit<T> {
    /// The final child network.
    pub child: Network<T>,
    /// One entry per applied operation.
    pub steps: Vec<StepAudit>,
    /// `max |parent(x)|` over the probes.
    pub parent_scale: f64,
}

impl<T> Audit<T> {
    /// Largest relative deviation over all steps (0 for an empty plan).
    pub fn worst_rel(&self) -> f64 {
        self.steps.iter().map(|s| s.max_rel).fold(0.0, f64::max)
    }
}

/// Why an audit stopped.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AuditError {
    /// Step `step` of the plan could not be applied.
    Morph {
        /// Index in the plan.
        step: usize,
        /// The morph's error.
        error: MorphError,
    },
    /// The probes do not fit the network.
    Probes(NetError),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Morph { step, error } => write!(f, "plan step {step} failed: {error}"),
            Self::Probes(e) => write!(f, "the probe inputs do not fit the network: {e}"),
        }
    }
}

impl std::error::Error for AuditError {}

/// Applies `plan` to `net` one operation at a time and measures the output deviation after
/// each (max |difference|, never a signed sum).
///
/// # Errors
/// [`AuditError::Probes`] if given probes have the wrong shape; [`AuditError::Morph`] at the
/// first operation that fails.
///
/// # Examples
/// ```
/// use netmorph_core::morph::depth::DepthParams;
/// use netmorph_core::morph::plan::MorphOp;
/// use netmorph_core::{Kernel, Layer, LayerPath, Network, Rng, Shape};
/// use netmorph_verify::audit::{audit, Probes};
/// let mut rng = Rng::seed(1);
/// let mut k = Kernel::<f32>::zeros(3, 4, 1);
/// k.weight = rng.normals(12, 0.5).into_iter().map(|v| v as f32).collect();
/// let net = Network::new(Shape::flat(4), vec![Layer::Dense(k)]).unwrap();
/// let plan = [MorphOp::Depth { layer: LayerPath::top(0), params: DepthParams::new(8, 1, 1) }];
/// let a = audit(&net, &plan, Probes::Random { n: 16, seed: 7 }, &mut rng).unwrap();
/// assert!(a.worst_rel() < 1e-5);
/// ```
pub fn audit<T: Scalar>(
    net: &Network<T>,
    plan: &[MorphOp],
    probes: Probes<'_, T>,
    rng: &mut Rng,
) -> Result<Audit<T>, AuditError> {
    let x = match probes {
        Probes::Given(x) => x.clone(),
        Probes::Random { n, seed } => Tensor::random(n, net.input_shape(), &mut Rng::seed(seed)),
    };
    let reference = net.forward(&x).map_err(AuditError::Probes)?;
    let parent_scale = reference.max_abs_diff(&reference).1;
    let mut child = net.clone();
    let mut steps = Vec::with_capacity(plan.len());
    for (step, op) in plan.iter().enumerate() {
        let (next, report) = op
            .apply(&child, rng)
            .map_err(|error| AuditError::Morph { step, error })?;
        child = next;
        let y = child.forward(&x).map_err(AuditError::Probes)?;
        let (max_abs, _) = y.max_abs_diff(&reference);
        let max_rel = if parent_scale > 0.0 {
            max_abs / parent_scale
        } else {
            max_abs
        };
        steps.push(StepAudit {
            step,
            op: op.clone(),
            report,
            max_abs,
            max_rel,
        });
    }
    Ok(Audit {
        child,
        steps,
        parent_scale,
    })
}
