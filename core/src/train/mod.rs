//! Training: softmax cross-entropy and SGD with momentum over the backward pass of
//! [`crate::Network::backward`].

mod cost;
mod loss;
mod sgd;

use alloc::string::String;
use core::fmt;

pub use cost::{step_bytes, velocity_bytes};
pub use loss::softmax_cross_entropy;
pub use sgd::{combine, Schedule, Sgd, SgdConfig};

use crate::{NetError, Network, Scalar, Tensor};

/// Why a training step failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TrainError {
    /// Labels do not match the batch or the number of classes.
    Labels {
        /// Samples in the batch.
        samples: usize,
        /// Labels given.
        labels: usize,
        /// Classes (network outputs).
        classes: usize,
    },
    /// The loss became NaN or infinite.
    NonFinite,
    /// Gradients or optimiser state from a network of another structure.
    Structure,
    /// The batch does not fit the network.
    Net(NetError),
    /// The step would need more heap than the budget it was given ([`train_step_within`]);
    /// nothing was allocated.
    OverBudget {
        /// Bytes the step may allocate ([`step_bytes`], plus [`velocity_bytes`] on the first
        /// step with momentum).
        needs: usize,
        /// Bytes it was allowed.
        budget: usize,
    },
    /// The device the step ran on (a GPU) failed or refused the network; the text says why.
    Device(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Labels { samples, labels, classes } => write!(
                f,
                "{labels} labels for {samples} samples, each label must be below {classes}; check the data set matches the network's output size"
            ),
            Self::NonFinite => write!(f, "the loss is NaN or infinite; lower the learning rate or check the inputs for NaN"),
            Self::Structure => write!(
                f,
                "gradients or optimiser state belong to a differently shaped network; start a new optimiser after a morph"
            ),
            Self::Net(e) => write!(f, "{e}"),
            Self::OverBudget { needs, budget } => write!(
                f,
                "the training step needs up to {needs} bytes of heap, more than its budget of \
                 {budget} bytes; use a smaller batch, no momentum, or raise the budget"
            ),
            Self::Device(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for TrainError {}

/// One SGD step on a batch: forward, softmax cross-entropy, backward, update. Returns the
/// batch loss before the update.
///
/// # Errors
/// Any [`TrainError`]; on error the network is unchanged.
pub fn train_step<T: Scalar>(
    net: &mut Network<T>,
    sgd: &mut Sgd<T>,
    x: &Tensor<T>,
    labels: &[usize],
) -> Result<f64, TrainError> {
    let (logits, trace) = net.forward_trace(x).map_err(TrainError::Net)?;
    let (loss, dlogits) = softmax_cross_entropy(&logits, labels)?;
    let grads = net
        .param_gradients(&trace, &dlogits)
        .map_err(TrainError::Net)?;
    sgd.step(net, &grads)?;
    Ok(loss)
}

/// [`train_step`] within a heap budget: the step runs only if what it allocates
/// ([`step_bytes`] for this batch, and [`velocity_bytes`] when this is the first step of an
/// optimiser with momentum) fits in `budget` bytes beyond what is already allocated (the
/// network, the optimiser's state, the batch).
///
/// # Errors
/// [`TrainError::OverBudget`] before anything is allocated (also when the count overflows),
/// or any error of [`train_step`].
///
/// # Examples
/// ```
/// use netmorph_core::train::{train_step_within, Schedule, Sgd, SgdConfig, TrainError};
/// use netmorph_core::{Kernel, Layer, Network, Rng, Shape, Tensor};
/// let mut net = Network::<f32>::new(Shape::flat(8), vec![Layer::Dense(Kernel::zeros(3, 8, 1))]).unwrap();
/// let config = SgdConfig { lr: 0.1, momentum: 0.9, weight_decay: 0.0, bias_lr_mult: 1.0, a_lr_mult: 1.0, schedule: Schedule::Constant };
/// let mut sgd = Sgd::new(config);
/// let x = Tensor::random(4, net.input_shape(), &mut Rng::seed(1));
/// let small = train_step_within(&mut net, &mut sgd, &x, &[0, 1, 2, 0], 64);
/// assert!(matches!(small, Err(TrainError::OverBudget { .. })));
/// assert!(train_step_within(&mut net, &mut sgd, &x, &[0, 1, 2, 0], 1 << 20).is_ok());
/// ```
pub fn train_step_within<T: Scalar>(
    net: &mut Network<T>,
    sgd: &mut Sgd<T>,
    x: &Tensor<T>,
    labels: &[usize],
    budget: usize,
) -> Result<f64, TrainError> {
    let velocity = if sgd.velocity().is_none() && sgd.config().momentum != 0.0 {
        velocity_bytes(net)
    } else {
        Some(0)
    };
    let needs = step_bytes(net, x.n)
        .zip(velocity)
        .and_then(|(s, v)| s.checked_add(v));
    match needs {
        Some(needs) if needs <= budget => train_step(net, sgd, x, labels),
        needs => Err(TrainError::OverBudget {
            needs: needs.unwrap_or(usize::MAX),
            budget,
        }),
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::{Kernel, Layer, Shape};

    #[test]
    fn a_malformed_batch_leaves_the_network_unchanged() {
        let mut k = Kernel::<f32>::zeros(2, 3, 1);
        k.weight = vec![0.5; 6];
        let mut net = Network::new(Shape::flat(3), vec![Layer::Dense(k)]).unwrap();
        let before = net.clone();
        let config = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            bias_lr_mult: 1.0,
            a_lr_mult: 1.0,
            schedule: Schedule::Constant,
        };
        let mut sgd = Sgd::new(config);
        let x = Tensor {
            n: 2,
            shape: Shape::flat(3),
            data: vec![1.0; 5],
        };
        let e = train_step(&mut net, &mut sgd, &x, &[0, 1]).unwrap_err();
        assert!(
            matches!(e, TrainError::Net(NetError::InputLength { found: 5, .. })),
            "{e}"
        );
        let x = Tensor::new(2, Shape::flat(3), vec![1.0; 6]).unwrap();
        let e = train_step(&mut net, &mut sgd, &x, &[0, 2]).unwrap_err();
        assert!(matches!(e, TrainError::Labels { classes: 2, .. }), "{e}");
        assert_eq!(net, before);
        assert!(train_step(&mut net, &mut sgd, &x, &[0, 1]).is_ok());
    }
}
