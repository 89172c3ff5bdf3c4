//! Batched forward pass: convolutions as im2col + faer matmul, dense layers as one matmul.

use alloc::vec::Vec;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::layer::{Conv2d, Kernel, Layer, PActivation, Pool, Shape};
use super::network::{infer_layer, LayerPath, NetError, Network};
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

pub(crate) fn forward_layer<T: Scalar>(l: &Layer<T>, x: Tensor<T>) -> Tensor<T> {
    let out_shape = match infer_layer(l, x.shape, &LayerPath::default()) {
        Ok(s) => s,
        // Networks are validated on construction; shapes cannot fail here.
        Err(_) => unreachable!("forward pass on an unvalidated layer"),
    };
    match l {
        Layer::Dense(k) => dense(k, &x),
        Layer::Conv2d(c) => conv(c, &x, out_shape),
        Layer::MaxPool2d(p) => pool(p, &x, out_shape, true),
        Layer::AvgPool2d(p) => pool(p, &x, out_shape, false),
        Layer::Flatten => Tensor {
            n: x.n,
            shape: out_shape,
            data: x.data,
        },
        Layer::Activation(a) => activate(a, x),
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
            sum.unwrap_or(x)
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
    let (kk, s, pad) = (c.kernel.k, c.stride, c.pad);
    let (h, w, ho, wo) = (input.h, input.w, out.h, out.w);
    for (r, col) in cols.chunks_exact_mut(ho * wo).enumerate() {
        let (i, dy, dx) = (r / (kk * kk), (r / kk) % kk, r % kk);
        let plane = &xs[i * h * w..(i + 1) * h * w];
        for oy in 0..ho {
            let iy = (oy * s + dy).wrapping_sub(pad);
            let row = &mut col[oy * wo..(oy + 1) * wo];
            if iy >= h {
                row.fill(T::zero());
                continue;
            }
            for (ox, v) in row.iter_mut().enumerate() {
                let ix = (ox * s + dx).wrapping_sub(pad);
                *v = if ix < w {
                    plane[iy * w + ix]
                } else {
                    T::zero()
                };
            }
        }
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
    let (kk, s, pad) = (c.kernel.k, c.stride, c.pad);
    let (h, w, ho, wo) = (input.h, input.w, out.h, out.w);
    for (r, col) in cols.chunks_exact(ho * wo).enumerate() {
        let (i, dy, dx) = (r / (kk * kk), (r / kk) % kk, r % kk);
        let plane = &mut dxs[i * h * w..(i + 1) * h * w];
        for oy in 0..ho {
            let iy = (oy * s + dy).wrapping_sub(pad);
            if iy >= h {
                continue;
            }
            for (ox, v) in col[oy * wo..(oy + 1) * wo].iter().enumerate() {
                let ix = (ox * s + dx).wrapping_sub(pad);
                if ix < w {
                    plane[iy * w + ix] += *v;
                }
            }
        }
    }
}

/// The window `[y0, y1) x [x0, x1)` of pooling output `(oy, ox)`.
pub(crate) fn window(p: &Pool, input: Shape, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let (y0, x0) = (oy * p.stride, ox * p.stride);
    (y0, (y0 + p.k).min(input.h), x0, (x0 + p.k).min(input.w))
}

fn pool<T: Scalar>(p: &Pool, x: &Tensor<T>, out: Shape, max: bool) -> Tensor<T> {
    let w = x.shape.w;
    let mut y = Vec::with_capacity(x.n * out.len());
    for plane in x.data.chunks_exact(x.shape.h * w) {
        for oy in 0..out.h {
            for ox in 0..out.w {
                let (y0, y1, x0, x1) = window(p, x.shape, oy, ox);
                let window =
                    (y0..y1).flat_map(|iy| plane[iy * w + x0..iy * w + x1].iter().copied());
                y.push(if max {
                    window.fold(T::neg_infinity(), T::max)
                } else {
                    let n = T::of_f64(((y1 - y0) * (x1 - x0)) as f64);
                    window.fold(T::zero(), |a, b| a + b) / n
                });
            }
        }
    }
    Tensor {
        n: x.n,
        shape: out,
        data: y,
    }
}

fn activate<T: Scalar>(p: &PActivation<T>, mut x: Tensor<T>) -> Tensor<T> {
    let plane = x.shape.h * x.shape.w;
    for sample in x.data.chunks_exact_mut(x.shape.len()) {
        for (c, ch) in sample.chunks_exact_mut(plane).enumerate() {
            let a = p.a[c];
            ch.iter_mut()
                .for_each(|v| *v = PActivation::eval(p.kind, a, *v));
        }
    }
    x
}
