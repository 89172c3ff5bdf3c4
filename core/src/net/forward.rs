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

/// Convolution (cross-correlation) by im2col: for each sample, the `(C_in K K) x (H' W')`
/// patch matrix times the `C_out x (C_in K K)` filter matrix.
fn conv<T: Scalar>(c: &Conv2d<T>, x: &Tensor<T>, out: Shape) -> Tensor<T> {
    let k = &c.kernel;
    let (ho, wo) = (out.h, out.w);
    let rows = k.inp * k.k * k.k;
    let mut cols = alloc::vec![T::zero(); rows * ho * wo];
    let mut y = alloc::vec![T::zero(); x.n * out.len()];
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, rows);
    let mut patches = Patches::new(c, x.shape, out);
    for (img, yimg) in y.chunks_exact_mut(out.len()).enumerate() {
        patches.im2col(x.sample(img), &mut cols);
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

/// The `(C_in K K) x (H' W')` patch matrices of a convolution (im2col) and their adjoint
/// (col2im), through a zero-padded copy of the sample: every patch row is then a plain copy
/// (strided for strided convolutions) with no border tests.
pub(crate) struct Patches<'a, T> {
    conv: &'a Conv2d<T>,
    input: Shape,
    out: Shape,
    /// `C_in x (H + 2 pad) x (W + 2 pad)`; its border stays zero in im2col.
    padded: Vec<T>,
}

impl<'a, T: Scalar> Patches<'a, T> {
    /// Scratch space for `conv` on `input`-shaped samples giving `out`.
    pub(crate) fn new(conv: &'a Conv2d<T>, input: Shape, out: Shape) -> Self {
        let p = conv.pad;
        let len = if p > 0 {
            input.c * (input.h + 2 * p) * (input.w + 2 * p)
        } else {
            0
        };
        Self {
            conv,
            input,
            out,
            padded: alloc::vec![T::zero(); len],
        }
    }

    /// Rows `(i, dy, dx)`, each with the offset of its first tap in the padded sample.
    fn rows(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (k, p) = (self.conv.kernel.k, self.conv.pad);
        let (hp, wp) = (self.input.h + 2 * p, self.input.w + 2 * p);
        (0..self.input.c * k * k).map(move |r| {
            let (i, dy, dx) = (r / (k * k), (r / k) % k, r % k);
            (r, (i * hp + dy) * wp + dx)
        })
    }

    /// The patch matrix of sample `xs` into `cols` (row-major, zeros outside the image).
    pub(crate) fn im2col(&mut self, xs: &[T], cols: &mut [T]) {
        let (s, p) = (self.conv.stride, self.conv.pad);
        let (h, w) = (self.input.h, self.input.w);
        let (wp, wo, px) = (w + 2 * p, self.out.w, self.out.h * self.out.w);
        if p > 0 {
            for (ch, plane) in xs.chunks_exact(h * w).enumerate() {
                for (y, line) in plane.chunks_exact(w).enumerate() {
                    let at = (ch * (h + 2 * p) + y + p) * wp + p;
                    self.padded[at..at + w].copy_from_slice(line);
                }
            }
        }
        let src: &[T] = if p > 0 { &self.padded } else { xs };
        for (r, base) in self.rows() {
            for (oy, dst) in cols[r * px..(r + 1) * px].chunks_exact_mut(wo).enumerate() {
                let line = &src[base + oy * s * wp..];
                if s == 1 {
                    dst.copy_from_slice(&line[..wo]);
                } else {
                    dst.iter_mut()
                        .enumerate()
                        .for_each(|(ox, v)| *v = line[ox * s]);
                }
            }
        }
    }

    /// The adjoint of [`Patches::im2col`]: adds each patch-matrix entry back onto its input
    /// pixel of `dxs` (taps on the zero border are dropped).
    pub(crate) fn col2im(&mut self, cols: &[T], dxs: &mut [T]) {
        let (s, p) = (self.conv.stride, self.conv.pad);
        let (h, w) = (self.input.h, self.input.w);
        let (wp, wo, px) = (w + 2 * p, self.out.w, self.out.h * self.out.w);
        let rows: Vec<(usize, usize)> = self.rows().collect();
        let dst: &mut [T] = if p > 0 {
            self.padded.fill(T::zero());
            &mut self.padded
        } else {
            dxs
        };
        for (r, base) in rows {
            for (oy, src) in cols[r * px..(r + 1) * px].chunks_exact(wo).enumerate() {
                let line = &mut dst[base + oy * s * wp..];
                if s == 1 {
                    line[..wo].iter_mut().zip(src).for_each(|(d, v)| *d += *v);
                } else {
                    src.iter()
                        .enumerate()
                        .for_each(|(ox, v)| line[ox * s] += *v);
                }
            }
        }
        if p > 0 {
            for (ch, plane) in dxs.chunks_exact_mut(h * w).enumerate() {
                for (y, line) in plane.chunks_exact_mut(w).enumerate() {
                    let at = (ch * (h + 2 * p) + y + p) * wp + p;
                    line.iter_mut()
                        .zip(&self.padded[at..at + w])
                        .for_each(|(d, v)| *d += *v);
                }
            }
            // im2col relies on a zero border.
            self.padded.fill(T::zero());
        }
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
