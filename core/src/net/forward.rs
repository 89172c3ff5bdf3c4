//! Batched forward pass: convolutions as im2col + faer matmul, dense layers as one matmul.

use alloc::vec::Vec;
use core::ops::Range;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::layer::{ActKind, Conv2d, Kernel, Layer, PActivation, Shape};
use super::network::{infer_layer, LayerPath, NetError, Network};
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

/// Convolution (cross-correlation) by im2col: for each sample and each band of output rows
/// ([`Patches::bands`]), the `(C_in K K) x (band pixels)` patch matrix times the
/// `C_out x (C_in K K)` filter matrix.
fn conv<T: Scalar>(c: &Conv2d<T>, x: &Tensor<T>, out: Shape) -> Tensor<T> {
    let k = &c.kernel;
    let px = out.h * out.w;
    let mut patches = Patches::new(c, x.shape, out);
    let mut cols = alloc::vec![T::zero(); patches.band_len()];
    // Every output starts at its channel's bias; the products add onto it.
    let mut y = Vec::with_capacity(x.n * out.len());
    for _ in 0..x.n {
        for b in &k.bias {
            y.extend(core::iter::repeat_n(*b, px));
        }
    }
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, patches.rows);
    for (img, yimg) in y.chunks_exact_mut(out.len()).enumerate() {
        patches.load(x.sample(img));
        for band in patches.bands() {
            let cols = &mut cols[..patches.rows * band.len() * out.w];
            patches.im2col(x.sample(img), band.clone(), cols);
            let n = band.len() * out.w;
            let cm = MatRef::from_row_major_slice(cols, patches.rows, n);
            let ym = MatMut::from_row_major_slice_mut(yimg, k.out, px)
                .subcols_mut(band.start * out.w, n);
            matmul(ym, Accum::Add, wm, cm, T::one(), Par::Seq);
        }
    }
    Tensor {
        n: x.n,
        shape: out,
        data: y,
    }
}

/// `dst.copy_from_slice(src)` for the short rows of patch matrices (a few to a few dozen
/// values): fixed-size blocks compile to inline vector moves, where `copy_from_slice` of a
/// run-time length calls `memmove`, whose set-up costs as much as such a copy.
#[inline]
fn copy_short<T: Scalar>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        let s8: &[T; 8] = s8
            .try_into()
            .unwrap_or_else(|_| unreachable!("chunks of 8"));
        d8.copy_from_slice(s8);
    }
    for (dv, sv) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *dv = *sv;
    }
}

/// Copies rows of `W` values, `step` apart in `src`, into the consecutive rows of `dst`.
fn copy_block<T: Scalar, const W: usize>(dst: &mut [T], src: &[T], _: usize, step: usize) {
    for (oy, d) in dst.chunks_exact_mut(W).enumerate() {
        let s: &[T; W] = src[oy * step..oy * step + W]
            .try_into()
            .unwrap_or_else(|_| unreachable!("a slice of W values"));
        let d: &mut [T; W] = d
            .try_into()
            .unwrap_or_else(|_| unreachable!("chunks of W values"));
        *d = *s;
    }
}

/// Patch-matrix entries per band of output rows: small enough (256 KiB in f32) that a band's
/// patch matrix stays in the core's cache between im2col and the matrix product.
#[cfg(not(test))]
const BAND_VALUES: usize = 1 << 16;
/// Tiny bands in unit tests, so that every test convolution runs band by band.
#[cfg(test)]
const BAND_VALUES: usize = 40;

/// The `(C_in K K) x (H' W')` patch matrices of a convolution (im2col) and their adjoint
/// (col2im), band by band of output rows, through a zero-padded copy of the sample: every
/// patch row is then a plain copy (strided for strided convolutions) with no border tests.
pub(crate) struct Patches<'a, T> {
    conv: &'a Conv2d<T>,
    input: Shape,
    out: Shape,
    /// Patch-matrix rows, `C_in K K`.
    pub(crate) rows: usize,
    /// Output rows per band.
    band: usize,
    /// Per patch row `(i, dy, dx)`: the offset of its first tap in the padded sample.
    offsets: Vec<usize>,
    /// `C_in x (H + 2 pad) x (W + 2 pad)`: the loaded sample inside a zero border.
    padded: Vec<T>,
    /// The same shape: col2im's accumulator.
    grad: Vec<T>,
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
        let (k, rows) = (conv.kernel.k, input.c * conv.kernel.k * conv.kernel.k);
        let (hp, wp) = (input.h + 2 * p, input.w + 2 * p);
        let offsets = (0..rows)
            .map(|r| {
                let (i, dy, dx) = (r / (k * k), (r / k) % k, r % k);
                (i * hp + dy) * wp + dx
            })
            .collect();
        Self {
            conv,
            input,
            out,
            rows,
            offsets,
            band: (BAND_VALUES / (rows * out.w).max(1)).clamp(1, out.h.max(1)),
            padded: alloc::vec![T::zero(); len],
            grad: alloc::vec![T::zero(); len],
        }
    }

    /// The bands of output rows, in order.
    pub(crate) fn bands(&self) -> impl Iterator<Item = Range<usize>> {
        let (band, h) = (self.band, self.out.h);
        (0..h.div_ceil(band)).map(move |b| b * band..((b + 1) * band).min(h))
    }

    /// Length of the largest band's patch matrix.
    pub(crate) fn band_len(&self) -> usize {
        self.rows * self.band * self.out.w
    }

    /// Offset of input row `y`, column 0, of channel `ch` in the padded sample.
    fn padded_at(&self, ch: usize, y: usize) -> usize {
        let p = self.conv.pad;
        (ch * (self.input.h + 2 * p) + y + p) * (self.input.w + 2 * p) + p
    }

    /// Copies sample `xs` inside the zero border (nothing to do without padding).
    pub(crate) fn load(&mut self, xs: &[T]) {
        if self.conv.pad == 0 {
            return;
        }
        let (h, w) = (self.input.h, self.input.w);
        for (ch, plane) in xs.chunks_exact(h * w).enumerate() {
            for (y, line) in plane.chunks_exact(w).enumerate() {
                let at = self.padded_at(ch, y);
                self.padded[at..at + w].copy_from_slice(line);
            }
        }
    }

    /// The patch matrix of output rows `band` of the loaded sample `xs` into `cols`
    /// (row-major `rows x (band pixels)`, zeros outside the image).
    pub(crate) fn im2col(&self, xs: &[T], band: Range<usize>, cols: &mut [T]) {
        let (s, p) = (self.conv.stride, self.conv.pad);
        let (wp, wo) = (self.input.w + 2 * p, self.out.w);
        let n = band.len() * wo;
        let src: &[T] = if p > 0 { &self.padded } else { xs };
        // Each patch row is a block of the padded sample: `band` rows of `wo` taps, `s wp`
        // apart. The common row widths get a copy whose width the compiler knows.
        let copy: fn(&mut [T], &[T], usize, usize) = match wo {
            8 => copy_block::<T, 8>,
            16 => copy_block::<T, 16>,
            32 => copy_block::<T, 32>,
            _ => |dst, src, wo, step| {
                for (oy, d) in dst.chunks_exact_mut(wo).enumerate() {
                    copy_short(d, &src[oy * step..oy * step + wo]);
                }
            },
        };
        for (base, col) in self.offsets.iter().zip(cols.chunks_exact_mut(n)) {
            let from = &src[base + band.start * s * wp..];
            if s == 1 {
                copy(col, from, wo, wp);
            } else {
                for (oy, dst) in col.chunks_exact_mut(wo).enumerate() {
                    let line = &from[oy * s * wp..];
                    dst.iter_mut()
                        .enumerate()
                        .for_each(|(ox, v)| *v = line[ox * s]);
                }
            }
        }
    }

    /// The adjoint of [`Patches::im2col`] for one band: adds each entry of `cols` back onto
    /// its input pixel of `dxs` (directly, or through the padded accumulator that
    /// [`Patches::col2im_finish`] empties into `dxs`).
    pub(crate) fn col2im(&mut self, cols: &[T], band: Range<usize>, dxs: &mut [T]) {
        let (s, p) = (self.conv.stride, self.conv.pad);
        let (wp, wo) = (self.input.w + 2 * p, self.out.w);
        let n = band.len() * wo;
        let dst: &mut [T] = if p > 0 { &mut self.grad } else { dxs };
        for (base, col) in self.offsets.iter().zip(cols.chunks_exact(n)) {
            for (oy, src) in band.clone().zip(col.chunks_exact(wo)) {
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
    }

    /// Adds the padded accumulator's interior onto `dxs` and clears it for the next sample.
    pub(crate) fn col2im_finish(&mut self, dxs: &mut [T]) {
        if self.conv.pad == 0 {
            return;
        }
        let (h, w) = (self.input.h, self.input.w);
        for (ch, plane) in dxs.chunks_exact_mut(h * w).enumerate() {
            for (y, line) in plane.chunks_exact_mut(w).enumerate() {
                let at = self.padded_at(ch, y);
                line.iter_mut()
                    .zip(&self.grad[at..at + w])
                    .for_each(|(d, v)| *d += *v);
            }
        }
        self.grad.fill(T::zero());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Network, Rng};

    fn strided_padded_conv(rng: &mut Rng, stride: usize, pad: usize) -> Conv2d<f64> {
        let mut kernel = Kernel::zeros(3, 2, 3);
        kernel.weight = rng.normals(3 * 2 * 9, 1.0);
        kernel.bias = rng.normals(3, 1.0);
        Conv2d {
            kernel,
            stride,
            pad,
        }
    }

    /// Direct definition: y[o, oy, ox] = b[o] + sum w[o, i, dy, dx] x[i, oy s + dy - p, ...].
    fn direct(c: &Conv2d<f64>, x: &Tensor<f64>, out: Shape) -> Vec<f64> {
        let (k, s, p) = (c.kernel.k, c.stride, c.pad);
        let mut y = Vec::new();
        for img in 0..x.n {
            let xs = x.sample(img);
            for o in 0..c.kernel.out {
                for oy in 0..out.h {
                    for ox in 0..out.w {
                        let mut v = c.kernel.bias[o];
                        for i in 0..c.kernel.inp {
                            for dy in 0..k {
                                for dx in 0..k {
                                    let (iy, ix) = (
                                        (oy * s + dy).wrapping_sub(p),
                                        (ox * s + dx).wrapping_sub(p),
                                    );
                                    if iy < x.shape.h && ix < x.shape.w {
                                        v += c.kernel.weight[c.kernel.at(o, i, dy, dx)]
                                            * xs[(i * x.shape.h + iy) * x.shape.w + ix];
                                    }
                                }
                            }
                        }
                        y.push(v);
                    }
                }
            }
        }
        y
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn banded_convolution_matches_the_definition_and_its_adjoints() {
        let mut rng = Rng::seed(11);
        // Widths 8, 16 and 32 (with padding 1) take the fixed-width row copies.
        let cases = [
            (1, 0, 7),
            (1, 1, 7),
            (1, 2, 7),
            (2, 1, 7),
            (2, 0, 7),
            (1, 1, 8),
            (1, 1, 16),
            (1, 1, 32),
        ];
        for (stride, pad, width) in cases {
            let c = strided_padded_conv(&mut rng, stride, pad);
            let input = Shape::image(2, 5, width);
            let net = Network::new(input, alloc::vec![Layer::Conv2d(c.clone())]).unwrap();
            let out = net.output_shape();
            let x = Tensor::random(2, input, &mut rng);
            let (y, trace) = net.forward_trace(&x).unwrap();
            let want = direct(&c, &x, out);
            let err = y
                .data
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err < 1e-12,
                "stride {stride} pad {pad}: forward off by {err}"
            );
            // conv is linear in x and in W: <dY, conv(x') - b> = <dX, x'> and
            // <dY, conv_{W'}(x) - b> = <dW, W'>.
            let dy = Tensor::random(2, out, &mut rng);
            let g = net.backward(&trace, &dy).unwrap();
            let x2 = Tensor::random(2, input, &mut rng);
            let unbiased = |c: &Conv2d<f64>, x: &Tensor<f64>| -> Vec<f64> {
                let mut c = c.clone();
                c.kernel.bias.iter_mut().for_each(|b| *b = 0.0);
                direct(&c, x, out)
            };
            let lhs = dot(&dy.data, &unbiased(&c, &x2));
            let rhs = dot(&g.input().unwrap().data, &x2.data);
            assert!(
                (lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0),
                "dX: {lhs} vs {rhs}"
            );
            let mut c2 = c.clone();
            c2.kernel.weight = rng.normals(c.kernel.weight.len(), 1.0);
            let gk = g.layers()[0].kernel().unwrap();
            let lhs = dot(&dy.data, &unbiased(&c2, &x));
            let rhs = dot(&gk.weight, &c2.kernel.weight);
            assert!(
                (lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0),
                "dW: {lhs} vs {rhs}"
            );
        }
    }
}
