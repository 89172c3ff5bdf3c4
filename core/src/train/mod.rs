//! Training: softmax cross-entropy and SGD with momentum over the backward pass of
//! [`crate::Network::backward`].

mod loss;
mod sgd;

use core::fmt;

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
