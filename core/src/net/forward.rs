//! Batched forward pass: convolutions as faer matrix products over patch matrices (see
//! `patches`), dense layers as one matrix product.

use alloc::vec::Vec;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::layer::{ActKind, Conv2d, Kernel, Layer, PActivation, Shape};
use super::network::{infer_layer, LayerPath, NetError, Network};
use super::patches::Patches;
use super::pool::{avg_pool, max_pool_argmax};
use crate::{Scalar, Tensor};

impl<T: Scalar> Network<T> {
    /// Runs the network on a batch.
    ///
    /// # Errors
    /// [`NetError::InputShape`] if the samples do not have [`Network::input_shape`].
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
        if x.shape != self.input_shape() {
            return Err(NetError::InputShape {
                expected: self.input_shape(),
                found: x.shape,
            });
        }
        Ok(forward_seq(self.layers(), x.clone()))
    }
}

/// Runs a validated sequence.
pub(crate) fn forward_seq<T: Scalar>(layers: &[Layer<T>], mut x: Tensor<T>) -> Tensor<T> {
    for l in layers {
        x = forward_layer(l, x);
    }
    x
}

/// One layer on an owned batch: flatten reuses its buffer.
pub(crate) fn forward_layer<T: Scalar>(l: &Layer<T>, x: Tensor<T>) -> Tensor<T> {
    match l {
        Layer::Flatten => Tensor {
            n: x.n,
            shape: Shape::flat(x.shape.len()),
            data: x.data,
        },
        _ => forward_layer_ref(l, &x),
    }
}

/// The sample shape layer `l` of a validated network produces from `input`.
pub(crate) fn output_shape<T: Scalar>(l: &Layer<T>, input: Shape) -> Shape {
    match infer_layer(l, input, &LayerPath::default()) {
        Ok(s) => s,
        // Networks are validated on construction; shapes cannot fail here.
        Err(_) => unreachable!("forward pass on an unvalidated layer"),
    }
}

/// One layer on a borrowed batch (the training pass keeps every layer's input).
pub(crate) fn forward_layer_ref<T: Scalar>(l: &Layer<T>, x: &Tensor<T>) -> Tensor<T> {
    let out_shape = output_shape(l, x.shape);
    match l {
        Layer::Dense(k) => dense(k, x),
        Layer::Conv2d(c) => conv(c, x, out_shape),
        // Inference pays for the maxima's positions too: one code path, so the forward pass
        // and the training pass agree to the bit.
        Layer::MaxPool2d(p) => max_pool_argmax(p, x, out_shape).0,
        Layer::AvgPool2d(p) => avg_pool(p, x, out_shape),
        Layer::Activation(a) => activate(a, x),
        Layer::Flatten => forward_layer(l, x.clone()),
        Layer::ParallelSum(bs) => {
            let mut sum: Option<Tensor<T>> = None;
            for b in bs {
                let y = forward_seq(b, x.clone());
                sum = Some(match sum {
                    None => y,
                    Some(mut s) => {
                        s.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += *b);
                        s
                    }
                });
            }
            sum.unwrap_or_else(|| x.clone())
        }
    }
}

/// `Y = X W^T + b` for a batch of flat samples.
fn dense<T: Scalar>(k: &Kernel<T>, x: &Tensor<T>) -> Tensor<T> {
    let mut y = Vec::with_capacity(x.n * k.out);
    for _ in 0..x.n {
        y.extend_from_slice(&k.bias);
    }
    let xm = MatRef::from_row_major_slice(&x.data, x.n, k.inp);
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, k.inp);
    let ym = MatMut::from_row_major_slice_mut(&mut y, x.n, k.out);
    matmul(ym, Accum::Add, xm, wm.transpose(), T::one(), Par::Seq);
    Tensor {
        n: x.n,
        shape: Shape::flat(k.out),
        data: y,
    }
}

/// Convolution (cross-correlation) as matrix products over patch matrices ([`Patches`]),
/// sample by sample and band by band of output rows.
fn conv<T: Scalar>(c: &Conv2d<T>, x: &Tensor<T>, out: Shape) -> Tensor<T> {
    let k = &c.kernel;
    let px = out.h * out.w;
    let mut patches = Patches::new(c, x.shape, out);
    // Every output starts at its channel's bias; the products add onto it.
    let mut y = Vec::with_capacity(x.n * out.len());
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
    Tensor {
        n: x.n,
        shape: out,
        data: y,
    }
}

/// phi^a over every channel, in one pass from `x` into a new batch.
fn activate<T: Scalar>(p: &PActivation<T>, x: &Tensor<T>) -> Tensor<T> {
    let plane = x.shape.h * x.shape.w;
    let mut y = Vec::with_capacity(x.data.len());
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
    Tensor {
        n: x.n,
        shape: x.shape,
        data: y,
    }
}
