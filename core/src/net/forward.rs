//! Batched forward pass: convolutions as faer matrix products over patch matrices (see
//! `patches`), dense layers as one matrix product.

use faer::{Accum, MatMut, MatRef, Par};

use super::layer::{ActKind, Conv2d, Kernel, Layer, PActivation, Shape};
use super::network::{infer_layer, LayerPath, NetError, Network};
use super::patches::Patches;
use super::pool::{avg_pool, max_pool_argmax};
use crate::alloc_try::{self, AllocError};
use crate::gemm::matmul;
use crate::{Scalar, Tensor};

impl<T: Scalar> Network<T> {
    /// Runs the network on a batch.
    ///
    /// # Errors
    /// [`NetError::InputShape`] if the samples do not have [`Network::input_shape`];
    /// [`NetError::InputLength`] if `x` does not hold `x.n` samples' values;
    /// [`NetError::Alloc`] if a layer's output for the batch cannot be allocated.
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::{Kernel, Layer, Network, Shape, Tensor};
    /// let mut k = Kernel::<f32>::zeros(1, 2, 1);
    /// k.weight = vec![1.0, 2.0];
    /// k.bias = vec![0.5];
    /// let net = Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap();
    /// let x = Tensor::new(1, Shape::flat(2), vec![3.0, 4.0]).unwrap();
    /// assert_eq!(net.forward(&x).unwrap().data, vec![11.5]);
    /// ```
    pub fn forward(&self, x: &Tensor<T>) -> Result<Tensor<T>, NetError> {
        self.check_input(x)?;
        forward_seq(self.layers(), x)
    }
}

/// Runs a validated sequence on a borrowed batch.
fn forward_seq<T: Scalar>(layers: &[Layer<T>], x: &Tensor<T>) -> Result<Tensor<T>, NetError> {
    let Some((first, rest)) = layers.split_first() else {
        return Ok(x.try_clone()?);
    };
    let mut y = forward_layer_ref(first, x)?;
    for l in rest {
        y = forward_layer(l, y)?;
    }
    Ok(y)
}

/// One layer on an owned batch: flatten reuses its buffer.
pub(crate) fn forward_layer<T: Scalar>(l: &Layer<T>, x: Tensor<T>) -> Result<Tensor<T>, NetError> {
    match l {
        Layer::Flatten => Ok(Tensor {
            n: x.n,
            shape: Shape::flat(x.shape.len()),
            data: x.data,
        }),
        _ => forward_layer_ref(l, &x),
    }
}

/// One layer on a borrowed batch (the training pass keeps every layer's input).
///
/// # Errors
/// [`NetError::Alloc`] if the output cannot be allocated; the geometry's errors for a layer
/// that does not fit `x` (never for the layers of a validated network).
pub(crate) fn forward_layer_ref<T: Scalar>(
    l: &Layer<T>,
    x: &Tensor<T>,
) -> Result<Tensor<T>, NetError> {
    let out_shape = infer_layer(l, x.shape, &LayerPath::default())?;
    Ok(match l {
        Layer::Dense(k) => dense(k, x)?,
        Layer::Conv2d(c) => conv(c, x, out_shape)?,
        // Inference pays for the maxima's positions too: one code path, so the forward pass
        // and the training pass agree to the bit.
        Layer::MaxPool2d(p) => max_pool_argmax(p, x, out_shape)?.0,
        Layer::AvgPool2d(p) => avg_pool(p, x, out_shape)?,
        Layer::Activation(a) => activate(a, x)?,
        Layer::Flatten => forward_layer(l, x.try_clone()?)?,
        Layer::ParallelSum(bs) => {
            let mut sum: Option<Tensor<T>> = None;
            for b in bs {
                let y = forward_seq(b, x)?;
                sum = Some(match sum {
                    None => y,
                    Some(mut s) => {
                        s.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += *b);
                        s
                    }
                });
            }
            match sum {
                Some(s) => s,
                None => x.try_clone()?,
            }
        }
    })
}

/// `Y = X W^T + b` for a batch of flat samples.
fn dense<T: Scalar>(k: &Kernel<T>, x: &Tensor<T>) -> Result<Tensor<T>, AllocError> {
    let mut y = Tensor::buffer(x.n, Shape::flat(k.out))?;
    for _ in 0..x.n {
        y.extend_from_slice(&k.bias);
    }
    let xm = MatRef::from_row_major_slice(&x.data, x.n, k.inp);
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, k.inp);
    let ym = MatMut::from_row_major_slice_mut(&mut y, x.n, k.out);
    matmul(ym, Accum::Add, xm, wm.transpose(), T::one(), Par::Seq);
    Ok(Tensor {
        n: x.n,
        shape: Shape::flat(k.out),
        data: y,
    })
}

/// Convolution (cross-correlation) as matrix products over patch matrices ([`Patches`]),
/// sample by sample and band by band of output rows.
fn conv<T: Scalar>(c: &Conv2d<T>, x: &Tensor<T>, out: Shape) -> Result<Tensor<T>, AllocError> {
    let k = &c.kernel;
    let px = out.h * out.w;
    // Every output starts at its channel's bias; the products add onto it.
    let mut y = Tensor::buffer(x.n, out)?;
    let mut patches = Patches::new(c, x.shape, out)?;
    for _ in 0..x.n {
        for b in &k.bias {
            y.extend(core::iter::repeat_n(*b, px));
        }
    }
    for (img, yimg) in y.chunks_exact_mut(out.len()).enumerate() {
        patches.load(x.sample(img));
        for band in patches.bands() {
            let ym = MatMut::from_row_major_slice_mut(yimg, k.out, px)
                .subcols_mut(band.start * out.w, band.len() * out.w);
            patches.forward(x.sample(img), band, ym);
        }
    }
    Ok(Tensor {
        n: x.n,
        shape: out,
        data: y,
    })
}

/// phi^a over every channel, in one pass from `x` into a new batch.
fn activate<T: Scalar>(p: &PActivation<T>, x: &Tensor<T>) -> Result<Tensor<T>, AllocError> {
    let plane = x.shape.h * x.shape.w;
    let mut y = alloc_try::with_capacity(x.data.len())?;
    for sample in x.data.chunks_exact(x.shape.len()) {
        for (ch, a) in sample.chunks_exact(plane).zip(&p.a) {
            let a = *a;
            // One branch per channel, not per value: the plain and identity members are the
            // common cases and must stay exact (phi^0 = phi, phi^1 = x).
            match p.kind {
                _ if a == T::one() => y.extend_from_slice(ch),
                // `v < 0` keeps a NaN a NaN, as `eval` does.
                ActKind::Relu if a == T::zero() => {
                    y.extend(
                        ch.iter()
                            .map(|v| if *v < T::zero() { T::zero() } else { *v }),
                    )
                }
                kind => y.extend(ch.iter().map(|v| PActivation::eval(kind, a, *v))),
            }
        }
    }
    Ok(Tensor {
        n: x.n,
        shape: x.shape,
        data: y,
    })
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;

    fn dense() -> Network<f64> {
        let mut k = Kernel::zeros(1, 2, 1);
        k.weight = vec![1.0, 2.0];
        Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap()
    }

    #[test]
    fn tensors_whose_length_disagrees_with_their_batch_are_refused() {
        let net = dense();
        // Before, faer's shape assertion panicked on these.
        let short = Tensor {
            n: 2,
            shape: Shape::flat(2),
            data: vec![1.0; 3],
        };
        let want = NetError::InputLength {
            n: 2,
            shape: Shape::flat(2),
            found: 3,
        };
        assert_eq!(net.forward(&short).unwrap_err(), want);
        assert_eq!(net.forward_trace(&short).unwrap_err(), want);
        assert_eq!(net.forward_trace_owned(short).unwrap_err(), want);
        let overflowing = Tensor {
            n: usize::MAX,
            shape: Shape::flat(2),
            data: vec![],
        };
        let e = net.forward(&overflowing).unwrap_err();
        assert!(e.to_string().contains("more than usize::MAX"), "{e}");
    }

    #[test]
    fn an_output_beyond_any_allocation_is_an_error() {
        // A valid network whose per-sample output (2^58 values) fits one allocation, but
        // 16 samples of it do not: the batch's buffer is refused before the allocator is asked.
        let conv = Conv2d {
            kernel: Kernel::<f64>::zeros(1, 1, 1),
            stride: 1,
            pad: 1 << 28,
        };
        let net = Network::new(Shape::image(1, 1, 1), vec![Layer::Conv2d(conv)]).unwrap();
        let x = Tensor::new(16, net.input_shape(), vec![1.0; 16]).unwrap();
        assert!(matches!(net.forward(&x), Err(NetError::Alloc { .. })));
        assert!(matches!(net.forward_trace(&x), Err(NetError::Alloc { .. })));
    }
}
