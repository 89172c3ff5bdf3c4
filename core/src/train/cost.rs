//! How much heap a training step needs, known before it is taken ([`step_bytes`]), so a
//! device with a fixed heap can refuse a step (or a batch size) that would not fit instead of
//! failing inside it.

use core::mem::size_of;

use crate::{Layer, LayerPath, Network, Scalar, Shape};

/// Per-sample values the layers of `layers` (entered with `shape`, at `prefix`) produce,
/// summed over every layer (branches included), plus each convolution's patch matrix.
fn traced_values<T: Scalar>(
    net: &Network<T>,
    layers: &[Layer<T>],
    prefix: Option<&LayerPath>,
) -> Option<usize> {
    let mut sum = 0usize;
    for (i, l) in layers.iter().enumerate() {
        let path = prefix.map_or_else(|| LayerPath::top(i), |p| p.with_last(i));
        let out: Shape = net.shape_before(&path.with_last(i + 1))?;
        sum = sum.checked_add(out.len())?;
        match l {
            // im2col: one row of K^2 C_in values per output pixel.
            Layer::Conv2d(c) => {
                let k = c.kernel.k.checked_mul(c.kernel.k)?;
                sum = sum.checked_add(k.checked_mul(c.kernel.inp)?.checked_mul(out.h * out.w)?)?;
            }
            Layer::ParallelSum(bs) => {
                for (b, seq) in bs.iter().enumerate() {
                    sum = sum.checked_add(traced_values(net, seq, Some(&path.child(b, 0)?))?)?;
                }
            }
            _ => {}
        }
    }
    Some(sum)
}

/// Bytes [`super::train_step`] allocates at most for a batch of `batch` samples of `net`
/// with the `small-heap` feature (without it, faer's GEMM adds packing buffers sized by the
/// host's caches: kept per thread with std, allocated per product without),
/// beyond the network, the optimiser's state and the batch, which exist before the step:
/// the trace of the forward pass (the input's copy, every layer's output and each
/// convolution's patch matrix), the backward pass's gradients with respect to them (as
/// many again), the parameter gradients, the logits and their gradient. Add
/// [`velocity_bytes`] for the first step of an optimiser with momentum, which allocates its
/// velocity then. `None` when the count overflows `usize`.
///
/// # Examples
/// ```
/// use netmorph_core::train::step_bytes;
/// use netmorph_core::{Kernel, Layer, Network, Shape};
/// let net = Network::<f32>::new(Shape::flat(784), vec![Layer::Dense(Kernel::zeros(10, 784, 1))]).unwrap();
/// let bytes = step_bytes(&net, 32).unwrap();
/// assert!(bytes >= 4 * (7850 + 32 * 784));
/// ```
pub fn step_bytes<T: Scalar>(net: &Network<T>, batch: usize) -> Option<usize> {
    let traced = traced_values(net, net.layers(), None)?;
    let outputs = net.output_shape().len();
    let per_sample = net
        .input_shape()
        .len()
        .checked_add(traced.checked_mul(2)?)?
        .checked_add(outputs.checked_mul(2)?)?;
    let values = per_sample
        .checked_mul(batch)?
        .checked_add(net.param_count())?;
    values
        .checked_mul(size_of::<T>())?
        .checked_add(overhead(net.layers()))
}

/// Bytes of an optimiser's velocity for `net` (one value per parameter).
pub fn velocity_bytes<T: Scalar>(net: &Network<T>) -> Option<usize> {
    net.param_count().checked_mul(size_of::<T>())
}

/// Bookkeeping beside the values: a few vectors' headers per layer, in the trace, the
/// gradients and the layer lists.
fn overhead<T: Scalar>(layers: &[Layer<T>]) -> usize {
    layers.iter().fold(0, |acc, l| {
        let inner = match l {
            Layer::ParallelSum(bs) => bs.iter().map(|b| overhead(b) + 64).sum(),
            _ => 0,
        };
        acc + 4 * size_of::<Layer<T>>() + 128 + inner
    })
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::heap_meter::{peak_of, warm_up};
    use crate::train::{train_step, Schedule, Sgd, SgdConfig};
    use crate::{ActKind, Conv2d, Kernel, PActivation, Pool, Rng, Tensor};

    fn dense(out: usize, inp: usize, rng: &mut Rng) -> Layer<f32> {
        let mut k = Kernel::zeros(out, inp, 1);
        rng.fill_normals(&mut k.weight, 0.1);
        Layer::Dense(k)
    }

    fn act(c: usize) -> Layer<f32> {
        Layer::Activation(PActivation::plain(ActKind::Tanh, c))
    }

    /// The step's measured peak is within the estimate, and the estimate is not loose by more
    /// than a factor `slack`.
    fn check(net: Network<f32>, batch: usize, slack: f64) {
        warm_up();
        let mut rng = Rng::seed(3);
        let x = Tensor::random(batch, net.input_shape(), &mut rng);
        let labels: vec::Vec<usize> = (0..batch).map(|i| i % net.output_shape().len()).collect();
        let config = SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            bias_lr_mult: 1.0,
            a_lr_mult: 1.0,
            schedule: Schedule::Constant,
        };
        let mut sgd = Sgd::new(config);
        let mut net = net;
        let need = step_bytes(&net, batch).unwrap() + velocity_bytes(&net).unwrap();
        for _ in 0..2 {
            let (r, peak) = peak_of(|| train_step(&mut net, &mut sgd, &x, &labels));
            r.unwrap();
            assert!(peak <= need, "peak {peak} > estimate {need}");
            assert!(
                (need as f64) <= slack * peak as f64,
                "estimate {need} vs peak {peak}"
            );
        }
    }

    #[test]
    fn an_mlp_step_stays_within_its_estimate() {
        let mut rng = Rng::seed(1);
        let layers = vec![dense(50, 784, &mut rng), act(50), dense(10, 50, &mut rng)];
        check(Network::new(Shape::flat(784), layers).unwrap(), 16, 2.5);
    }

    #[test]
    fn a_conv_step_stays_within_its_estimate() {
        let mut rng = Rng::seed(2);
        let mut k = Kernel::zeros(6, 3, 3);
        rng.fill_normals(&mut k.weight, 0.1);
        let layers = vec![
            Layer::Conv2d(Conv2d {
                kernel: k,
                stride: 1,
                pad: 1,
            }),
            act(6),
            Layer::MaxPool2d(Pool {
                k: 2,
                stride: 2,
                ceil: false,
            }),
            Layer::Flatten,
            dense(5, 6 * 4 * 4, &mut rng),
        ];
        check(Network::new(Shape::image(3, 8, 8), layers).unwrap(), 8, 4.0);
    }
}
