//! GPU memory a training run will hold, computed from the network's shapes alone, before
//! anything is allocated: [`plan_bytes`] is exact for the buffers of one batch size's plan
//! (a test checks it against what [`Trainer`](crate::train::Trainer) allocates), and
//! [`training_bytes`] bounds a whole run from above.

use netmorph_core::{Conv2d, Layer, LayerPath, Network, Pool, Scalar};

use crate::matmul::{splits, Product};
use crate::train::SLOTS;

/// Values (of the scalar type) and 32-bit words a plan allocates.
struct Tally {
    n: usize,
    values: usize,
    words: usize,
    /// The longest ones vector so far: a longer one is a new buffer.
    ones: usize,
}

impl Tally {
    fn add(&mut self, values: usize) -> Option<()> {
        self.values = self.values.checked_add(values)?;
        Some(())
    }

    /// The partial products of `p` when it is split along k.
    fn product(&mut self, p: &Product) -> Option<()> {
        let parts = splits(p);
        if parts > 1 {
            self.add(p.out_len()?.checked_mul(parts)?)?;
        }
        Some(())
    }

    /// The layers at `prefix` (the top level when `None`); `grad`: whether their input has
    /// a gradient (everything but the network's input).
    fn seq<T: Scalar>(
        &mut self,
        net: &Network<T>,
        layers: &[Layer<T>],
        prefix: Option<&LayerPath>,
        mut grad: bool,
    ) -> Option<()> {
        for (i, l) in layers.iter().enumerate() {
            let path = prefix.map_or_else(|| LayerPath::top(i), |p| p.with_last(i));
            let s = net.shape_before(&path)?;
            let o = net.shape_before(&path.with_last(i + 1))?;
            let out = self.n.checked_mul(o.len())?;
            // Every layer's output and its gradient.
            self.add(out.checked_mul(2)?)?;
            match l {
                Layer::Dense(k) | Layer::Conv2d(Conv2d { kernel: k, .. }) => {
                    let (stride, pad) = match l {
                        Layer::Conv2d(c) => (c.stride, c.pad),
                        _ => (1, 0),
                    };
                    let rows = k.inp.checked_mul(k.k)?.checked_mul(k.k)?;
                    let cols = self.n.checked_mul(o.h)?.checked_mul(o.w)?;
                    if !(k.k == 1 && stride == 1 && pad == 0) {
                        self.add(rows.checked_mul(cols)?)?;
                    }
                    self.product(&Product::row_major(k.out, rows, cols))?;
                    self.product(&Product::row_major(k.out, cols, rows))?;
                    self.product(&Product::row_major(k.out, cols, 1))?;
                    if grad {
                        self.product(&Product::row_major(rows, k.out, cols))?;
                    }
                    if cols > self.ones {
                        self.add(cols)?;
                        self.ones = cols;
                    }
                }
                Layer::MaxPool2d(Pool { .. }) => self.words = self.words.checked_add(out)?,
                Layer::ParallelSum(bs) => {
                    for (b, branch) in bs.iter().enumerate() {
                        if grad {
                            self.add(self.n.checked_mul(s.len())?)?;
                        }
                        self.seq(net, branch, Some(&path.child(b, 0)?), grad)?;
                    }
                }
                Layer::AvgPool2d(_) | Layer::Flatten | Layer::Activation(_) => {}
            }
            grad = true;
        }
        Some(())
    }
}

/// Bytes of the buffers a [`Trainer`](crate::train::Trainer) allocates for batches of `n`:
/// the batch and its labels, every layer's output and gradient, convolution patches, partial
/// products of split products, max-pooling winners, the ones vector of the bias gradients,
/// and the per-sample losses. `None` when a size overflows.
///
/// # Examples
/// ```
/// use netmorph_core::{Kernel, Layer, Network, Shape};
/// let net = Network::<f32>::new(Shape::flat(784), vec![Layer::Dense(Kernel::zeros(10, 784, 1))]).unwrap();
/// // Input 784 x 100, output and its gradient 2 x 10 x 100, the forward product in 4 parts
/// // along its long k (two output tiles), the ones vector 100 and per-sample losses
/// // 2 x 100, in f32; labels 100 in u32.
/// let values = 784 * 100 + 2 * 10 * 100 + 4 * 10 * 100 + 100 + 2 * 100;
/// assert_eq!(netmorph_gpu::memory::plan_bytes(&net, 100), Some(4 * values + 4 * 100));
/// ```
pub fn plan_bytes<T: Scalar>(net: &Network<T>, n: usize) -> Option<u64> {
    let mut t = Tally {
        n,
        values: n.checked_mul(net.input_shape().len())?,
        words: n,
        ones: 0,
    };
    t.seq(net, net.layers(), None, false)?;
    t.add(n.checked_mul(2)?)?;
    let values = (t.values as u64).checked_mul(size_of::<T>() as u64)?;
    values.checked_add((t.words as u64).checked_mul(4)?)
}

/// An upper bound on the GPU memory of training `net` in batches of `batch`: parameters,
/// gradients and momentum (each tensor rounded up to the largest binding alignment), the
/// metrics, and two plans (the batch and an epoch's last, smaller one). `None` on overflow.
pub fn training_bytes<T: Scalar>(net: &Network<T>, batch: usize) -> Option<u64> {
    // 256 bytes: WebGPU's largest `min_storage_buffer_offset_alignment`.
    let tensors = net.param_count();
    let slack = 256u64.checked_mul(count_tensors(net.layers()) as u64)?;
    let params = (tensors as u64)
        .checked_mul(size_of::<T>() as u64)?
        .checked_add(slack)?
        .checked_mul(3)?;
    let metrics = (2 * SLOTS * size_of::<T>()) as u64;
    plan_bytes(net, batch)?
        .checked_mul(2)?
        .checked_add(params)?
        .checked_add(metrics)
}

/// Parameter tensors of `layers`: weight and bias of each kernel, `a` of each activation.
fn count_tensors<T>(layers: &[Layer<T>]) -> usize {
    layers
        .iter()
        .map(|l| match l {
            Layer::Dense(_) | Layer::Conv2d(_) => 2,
            Layer::Activation(_) => 1,
            Layer::ParallelSum(bs) => bs.iter().map(|b| count_tensors(b)).sum(),
            Layer::MaxPool2d(_) | Layer::AvgPool2d(_) | Layer::Flatten => 0,
        })
        .sum()
}
