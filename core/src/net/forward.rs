//! Batched forward pass: convolutions as im2col + faer matmul, dense layers as one matmul.

use alloc::vec::Vec;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::layer::{ActKind, Conv2d, Kernel, Layer, PActivation, Shape};
use super::network::{infer_layer, LayerPath, NetError, Network};
use super::pool::pool;
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

/// One layer on an owned batch: activations and flatten reuse its buffer.
pub(crate) fn forward_layer<T: Scalar>(l: &Layer<T>, x: Tensor<T>) -> Tensor<T> {
    match l {
        Layer::Activation(a) => activate(a, x),
        Layer::Flatten => Tensor {
            n: x.n,
            shape: Shape::flat(x.shape.len()),
            data: x.data,
        },
        _ => forward_layer_ref(l, &x),
    }
}

/// One layer on a borrowed batch (the training pass keeps every layer's input).
pub(crate) fn forward_layer_ref<T: Scalar>(l: &Layer<T>, x: &Tensor<T>) -> Tensor<T> {
    let out_shape = match infer_layer(l, x.shape, &LayerPath::default()) {
        Ok(s) => s,
        // Networks are validated on construction; shapes cannot fail here.
        Err(_) => unreachable!("forward pass on an unvalidated layer"),
    };
    match l {
        Layer::Dense(k) => dense(k, x),
        Layer::Conv2d(c) => conv(c, x, out_shape),
        Layer::MaxPool2d(p) => pool(p, x, out_shape, true),
        Layer::AvgPool2d(p) => pool(p, x, out_shape, false),
        Layer::Flatten | Layer::Activation(_) => forward_layer(l, x.clone()),
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

/// Convolution (cross-correlation) by im2col: for each sample, the `(C_in K K) x (H' W')`
/// patch matrix times the `C_out x (C_in K K)` filter matrix.
fn conv<T: Scalar>(c: &Conv2d<T>, x: &Tensor<T>, out: Shape) -> Tensor<T> {
    let k = &c.kernel;
    let (ho, wo) = (out.h, out.w);
    let rows = k.inp * k.k * k.k;
    let mut cols = alloc::vec![T::zero(); rows * ho * wo];
    let mut y = alloc::vec![T::zero(); x.n * out.len()];
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, rows);
    for (img, yimg) in y.chunks_exact_mut(out.len()).enumerate() {
        im2col(x.sample(img), x.shape, c, out, &mut cols);
        for (o, plane) in yimg.chunks_exact_mut(ho * wo).enumerate() {
            plane.fill(k.bias[o]);
        }
        let cm = MatRef::from_row_major_slice(&cols, rows, ho * wo);
        let ym = MatMut::from_row_major_slice_mut(yimg, k.out, ho * wo);
        matmul(ym, Accum::Add, wm, cm, T::one(), Par::Seq);
    }
    Tensor {
        n: x.n,
        shape: out,
        data: y,
    }
}

/// The `(C_in K K) x (H' W')` patch matrix of one sample (row-major), zeros outside the image.
pub(crate) fn im2col<T: Scalar>(xs: &[T], input: Shape, c: &Conv2d<T>, out: Shape, cols: &mut [T]) {
    for (r, col) in cols.chunks_exact_mut(out.h * out.w).enumerate() {
        for_each_patch_row(r, input, c, out, |row, src, taps| {
            let (before, rest) = col[row].split_at_mut(taps.start);
            before.fill(T::zero());
            let (inside, after) = rest.split_at_mut(taps.len());
            after.fill(T::zero());
            match src {
                None => inside.fill(T::zero()),
                Some((plane, x0)) if c.stride == 1 => {
                    inside.copy_from_slice(&xs[plane + x0..plane + x0 + inside.len()]);
                }
                Some((plane, x0)) => {
                    let line = &xs[plane + x0..];
                    for (k, v) in inside.iter_mut().enumerate() {
                        *v = line[k * c.stride];
                    }
                }
            }
        });
    }
}

/// The adjoint of [`im2col`]: adds each patch-matrix entry back onto its input pixel.
pub(crate) fn col2im<T: Scalar>(
    cols: &[T],
    input: Shape,
    c: &Conv2d<T>,
    out: Shape,
    dxs: &mut [T],
) {
    for (r, col) in cols.chunks_exact(out.h * out.w).enumerate() {
        for_each_patch_row(r, input, c, out, |row, src, taps| {
            if let Some((plane, x0)) = src {
                let inside = &col[row][taps];
                let line = &mut dxs[plane + x0..];
                if c.stride == 1 {
                    line[..inside.len()]
                        .iter_mut()
                        .zip(inside)
                        .for_each(|(d, v)| *d += *v);
                } else {
                    for (k, v) in inside.iter().enumerate() {
                        line[k * c.stride] += *v;
                    }
                }
            }
        });
    }
}

/// Walks patch-matrix row `r` (input channel `i`, tap `(dy, dx)`) one output row at a time:
/// `f(range of the row in the patch row, source, taps)` where `taps` are the output columns
/// whose tap falls inside the image and `source` is `Some((offset of the input row, first
/// input column))`, or `None` when the whole output row reads the zero border.
fn for_each_patch_row<T: Scalar>(
    r: usize,
    input: Shape,
    c: &Conv2d<T>,
    out: Shape,
    mut f: impl FnMut(core::ops::Range<usize>, Option<(usize, usize)>, core::ops::Range<usize>),
) {
    let (kk, s, pad) = (c.kernel.k, c.stride, c.pad);
    let (h, w, ho, wo) = (input.h, input.w, out.h, out.w);
    let (i, dy, dx) = (r / (kk * kk), (r / kk) % kk, r % kk);
    // Output column `ox` reads input column `ox s + dx - pad`, inside for `lo <= ox < hi`.
    let lo = pad.saturating_sub(dx).div_ceil(s);
    let hi = (w + pad).saturating_sub(dx).div_ceil(s).min(wo);
    let lo = lo.min(hi);
    for oy in 0..ho {
        let iy = (oy * s + dy).wrapping_sub(pad);
        let src = (iy < h && lo < hi).then(|| ((i * h + iy) * w, lo * s + dx - pad));
        let taps = if src.is_some() { lo..hi } else { 0..0 };
        f(oy * wo..(oy + 1) * wo, src, taps);
    }
}

fn activate<T: Scalar>(p: &PActivation<T>, mut x: Tensor<T>) -> Tensor<T> {
    let plane = x.shape.h * x.shape.w;
    for sample in x.data.chunks_exact_mut(x.shape.len()) {
        for (ch, a) in sample.chunks_exact_mut(plane).zip(&p.a) {
            let a = *a;
            // One branch per channel, not per value: the plain and identity members are the
            // common cases and must stay exact (phi^0 = phi, phi^1 = x).
            if a == T::one() {
                continue;
            }
            match p.kind {
                // `v < 0` keeps a NaN a NaN, as `eval` does.
                ActKind::Relu if a == T::zero() => ch.iter_mut().for_each(|v| {
                    if *v < T::zero() {
                        *v = T::zero();
                    }
                }),
                kind => ch
                    .iter_mut()
                    .for_each(|v| *v = PActivation::eval(kind, a, *v)),
            }
        }
    }
    x
}
