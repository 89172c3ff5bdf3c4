//! Training: softmax cross-entropy and SGD with momentum over the backward pass of
//! [`crate::Network::backward`].

mod cost;
mod loss;
mod sgd;

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
