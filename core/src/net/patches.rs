//! The patch matrices of a convolution and the matrix products over them: the forward
//! product `Y = W cols` (im2col), the weight gradient `dW = dY cols^T`, and for the layers
//! whose input gradient is not itself a convolution, `dX = col2im(W^T dY)`.
//!
//! A sample is copied once into a zero border, so every patch row is a plain (for strided
//! layers, strided) copy of padded input rows with no border tests. The work goes band by band
//! of output rows, so a band's matrices stay in the core's cache between the copy and the
//! products. Two layouts:
//!
//! - **full**: the `(C_in K K) x (band pixels)` patch matrix, one product per band;
//! - **strip** (stride 1, padding below `K`, and enough rows): the `(C_in K) x ((band rows
//!   + K - 1) W')` matrix of horizontal taps over the band's input rows. The patch rows of
//!   vertical tap `dy` are this matrix's columns shifted by `dy W'`, so the band costs `K`
//!   products with a `C_in K` inner dimension, the same arithmetic as one full product, and
//!   `K` times less copying.

use alloc::vec::Vec;
use core::ops::Range;

use faer::reborrow::ReborrowMut;
use faer::{Accum, MatMut, MatRef, Par};

use super::layer::{Conv2d, Shape};
use crate::alloc_try::{self, AllocError};
use crate::gemm::matmul;
use crate::Scalar;

/// Patch-matrix entries per band of output rows: small enough (256 KiB in f32) that a band's
/// patch matrix stays in the core's cache between the copy and the products.
#[cfg(not(test))]
const BAND_VALUES: usize = 1 << 16;
/// Tiny bands in unit tests, so that every test convolution runs band by band.
#[cfg(test)]
const BAND_VALUES: usize = 40;

/// Fewest strip rows (`C_in K`) for the strip layout: with fewer, the `K` products' inner
/// dimension is too short for the matrix kernels (a 3-channel 5x5 layer would multiply with
/// 15-long dot products) and the full patch matrix is cheap to copy anyway.
const STRIP_MIN_ROWS: usize = 32;

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

/// The row copy for rows of `wo` values: the common widths get a copy whose width the
/// compiler knows.
fn row_copy<T: Scalar>(wo: usize) -> fn(&mut [T], &[T], usize, usize) {
    match wo {
        8 => copy_block::<T, 8>,
        16 => copy_block::<T, 16>,
        32 => copy_block::<T, 32>,
        _ => |dst, src, wo, step| {
            for (oy, d) in dst.chunks_exact_mut(wo).enumerate() {
                copy_short(d, &src[oy * step..oy * step + wo]);
            }
        },
    }
}

/// The patch rows of vertical tap `dy` (all of them in the full layout) over `n` output
/// pixels of `w`-wide output rows, in a band matrix of `rows x width`.
fn tap_rows<T: Scalar>(
    cols: &[T],
    (rows, width): (usize, usize),
    dy: usize,
    w: usize,
    n: usize,
) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(&cols[..rows * width], rows, width).subcols(dy * w, n)
}

/// Scratch space and products for one convolution on samples of one shape; see the module
/// documentation for the two layouts.
pub(crate) struct Patches<'a, T> {
    conv: &'a Conv2d<T>,
    input: Shape,
    out: Shape,
    /// The strip layout (else full).
    strip: bool,
    /// Rows of the band matrix: `C_in K K` (full) or `C_in K` (strip).
    rows: usize,
    /// Output rows per band.
    band: usize,
    /// Per band-matrix row, `(i, dy, dx)` or `(i, dx)`: the offset of its first tap in the
    /// padded sample.
    offsets: Vec<usize>,
    /// `C_in x (H + 2 pad) x (W + 2 pad)`: the loaded sample inside a zero border.
    padded: Vec<T>,
    /// The band matrix.
    cols: Vec<T>,
    /// Strip layout: the filters regrouped per vertical tap, `K` row-major
    /// `C_out x (C_in K)` matrices.
    taps: Vec<T>,
    /// The weight gradient so far, in the layout of the filters (full) or of `taps` (strip).
    dw: Vec<T>,
    /// Full layout, input gradient: `W^T dY` for a band, and col2im's padded accumulator.
    dcols: Vec<T>,
    grad: Vec<T>,
}

impl<'a, T: Scalar> Patches<'a, T> {
    /// Scratch space for `conv` on `input`-shaped samples giving `out`, a layer of a
    /// validated network (whose sizes, among them the padded sample and one output row's
    /// patches, fit in memory; see `Network::new`).
    ///
    /// # Errors
    /// If the scratch space cannot be allocated.
    pub(crate) fn new(conv: &'a Conv2d<T>, input: Shape, out: Shape) -> Result<Self, AllocError> {
        let (p, k) = (conv.pad, conv.kernel.k);
        let (hp, wp) = (input.h + 2 * p, input.w + 2 * p);
        let strip = conv.stride == 1 && p < k && k > 1 && input.c * k >= STRIP_MIN_ROWS;
        let (rows, offsets, band) = if strip {
            let rows = input.c * k;
            let offsets = (0..rows).map(|r| (r / k) * hp * wp + r % k);
            let band = (BAND_VALUES / (input.c * k * out.w).max(1)).saturating_sub(k - 1);
            (rows, alloc_try::collected(rows, offsets)?, band)
        } else {
            let rows = input.c * k * k;
            let offsets = (0..rows).map(|r| {
                let (i, dy, dx) = (r / (k * k), (r / k) % k, r % k);
                (i * hp + dy) * wp + dx
            });
            let band = BAND_VALUES / (input.c * k * k * out.w).max(1);
            (rows, alloc_try::collected(rows, offsets)?, band)
        };
        let band = band.clamp(1, out.h.max(1));
        let w = &conv.kernel;
        let mut taps = alloc_try::with_capacity(if strip { w.weight.len() } else { 0 })?;
        if strip {
            for dy in 0..k {
                for o in 0..w.out {
                    for i in 0..w.inp {
                        let at = w.at(o, i, dy, 0);
                        taps.extend_from_slice(&w.weight[at..at + k]);
                    }
                }
            }
        }
        let cols = rows * (band + if strip { k - 1 } else { 0 }) * out.w;
        Ok(Self {
            conv,
            input,
            out,
            strip,
            rows,
            band,
            offsets,
            padded: alloc_try::filled(if p > 0 { input.c * hp * wp } else { 0 }, T::zero())?,
            cols: alloc_try::filled(cols, T::zero())?,
            taps,
            dw: Vec::new(),
            dcols: Vec::new(),
            grad: Vec::new(),
        })
    }

    /// Allocates the weight gradient's accumulator and, if `input`, the full layout's
    /// input-gradient scratch; the backward pass calls this before its first band.
    ///
    /// # Errors
    /// If they cannot be allocated.
    pub(crate) fn reserve_gradients(&mut self, input: bool) -> Result<(), AllocError> {
        let len = self.conv.kernel.out * self.rows * self.vertical_taps();
        self.dw = alloc_try::filled(len, T::zero())?;
        if input {
            self.dcols = alloc_try::filled(self.cols.len(), T::zero())?;
            self.grad = alloc_try::filled(self.padded.len(), T::zero())?;
        }
        Ok(())
    }

    /// The bands of output rows, in order.
    pub(crate) fn bands(&self) -> impl Iterator<Item = Range<usize>> {
        let (band, h) = (self.band, self.out.h);
        (0..h.div_ceil(band)).map(move |b| b * band..((b + 1) * band).min(h))
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

    /// The band matrix's width for output rows `band`: its pixels (full), or the pixels of
    /// its input rows (strip, `K - 1` more rows).
    fn band_width(&self, band: &Range<usize>) -> usize {
        let extra = if self.strip {
            self.conv.kernel.k - 1
        } else {
            0
        };
        (band.len() + extra) * self.out.w
    }

    /// Fills the band matrix for output rows `band` of the loaded sample `xs`.
    fn fill(&mut self, xs: &[T], band: &Range<usize>) {
        let (s, p) = (self.conv.stride, self.conv.pad);
        let (wp, wo) = (self.input.w + 2 * p, self.out.w);
        let width = self.band_width(band);
        let src: &[T] = if p > 0 { &self.padded } else { xs };
        let copy = row_copy::<T>(wo);
        for (base, col) in self.offsets.iter().zip(self.cols.chunks_exact_mut(width)) {
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

    /// The filters' columns for vertical tap `dy` (all of them in the full layout).
    fn filters(&self, dy: usize) -> MatRef<'_, T> {
        let k = &self.conv.kernel;
        if self.strip {
            let len = k.out * self.rows;
            MatRef::from_row_major_slice(&self.taps[dy * len..(dy + 1) * len], k.out, self.rows)
        } else {
            MatRef::from_row_major_slice(&k.weight, k.out, self.rows)
        }
    }

    /// Vertical taps with a product of their own: `K` (strip) or one (full).
    fn vertical_taps(&self) -> usize {
        if self.strip {
            self.conv.kernel.k
        } else {
            1
        }
    }

    /// `y += W cols` for output rows `band` of the loaded sample `xs`; `y` is the band's
    /// `C_out x (band pixels)` block of the output.
    pub(crate) fn forward(&mut self, xs: &[T], band: Range<usize>, mut y: MatMut<'_, T>) {
        self.fill(xs, &band);
        let (width, n) = (self.band_width(&band), band.len() * self.out.w);
        for dy in 0..self.vertical_taps() {
            let cols = tap_rows(&self.cols, (self.rows, width), dy, self.out.w, n);
            let w = self.filters(dy);
            matmul(y.rb_mut(), Accum::Add, w, cols, T::one(), Par::Seq);
        }
    }

    /// Adds `dY cols^T` for output rows `band` of the loaded sample `xs` to the weight
    /// gradient ([`Patches::weight_gradient`]); `dy` is the band's `C_out x (band pixels)`
    /// block of the output gradient.
    ///
    /// # Panics
    /// Unless [`Patches::reserve_gradients`] ran first.
    pub(crate) fn add_weight_gradient(&mut self, xs: &[T], band: Range<usize>, dy: MatRef<'_, T>) {
        self.fill(xs, &band);
        let (width, n) = (self.band_width(&band), band.len() * self.out.w);
        let c_out = self.conv.kernel.out;
        let len = c_out * self.rows;
        for dy_tap in 0..self.vertical_taps() {
            let cols = tap_rows(&self.cols, (self.rows, width), dy_tap, self.out.w, n);
            let dw = &mut self.dw[dy_tap * len..(dy_tap + 1) * len];
            matmul(
                MatMut::from_row_major_slice_mut(dw, c_out, self.rows),
                Accum::Add,
                dy,
                cols.transpose(),
                T::one(),
                Par::Seq,
            );
        }
    }

    /// The weight gradient summed by [`Patches::add_weight_gradient`], in the filters'
    /// `[out, in, kh, kw]` layout.
    ///
    /// # Errors
    /// If the strip layout's regrouped copy cannot be allocated.
    pub(crate) fn weight_gradient(self) -> Result<Vec<T>, AllocError> {
        let k = &self.conv.kernel;
        if !self.strip {
            return Ok(self.dw);
        }
        let mut g = alloc_try::filled(k.weight.len(), T::zero())?;
        let rows = self.dw.chunks_exact(k.k).enumerate();
        // `dw` holds, per tap `dy`, output `o` and input `i`, the `K` horizontal taps.
        for (r, taps) in rows {
            let (dy, o, i) = (r / (k.out * k.inp), (r / k.inp) % k.out, r % k.inp);
            let at = k.at(o, i, dy, 0);
            g[at..at + k.k].copy_from_slice(taps);
        }
        Ok(g)
    }

    /// Input gradient of output rows `band` for the full layout: `W^T dY` scattered back
    /// onto the input pixels (col2im, the adjoint of the patch copy) of `dxs` or of the
    /// padded accumulator that [`Patches::finish_input_gradient`] empties into `dxs`.
    ///
    /// # Panics
    /// In the strip layout: its layers take their input gradient as a convolution; unless
    /// [`Patches::reserve_gradients`] ran first with `input`.
    pub(crate) fn add_input_gradient(
        &mut self,
        band: Range<usize>,
        dy: MatRef<'_, T>,
        dxs: &mut [T],
    ) {
        assert!(!self.strip, "strip layers take dX as a convolution");
        let (s, p) = (self.conv.stride, self.conv.pad);
        let (wp, wo) = (self.input.w + 2 * p, self.out.w);
        let n = band.len() * wo;
        let dcols = &mut self.dcols[..self.rows * n];
        let w =
            MatRef::from_row_major_slice(&self.conv.kernel.weight, self.conv.kernel.out, self.rows);
        matmul(
            MatMut::from_row_major_slice_mut(dcols, self.rows, n),
            Accum::Replace,
            w.transpose(),
            dy,
            T::one(),
            Par::Seq,
        );
        let dst: &mut [T] = if p > 0 { &mut self.grad } else { dxs };
        for (base, col) in self.offsets.iter().zip(self.dcols.chunks_exact(n)) {
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
    pub(crate) fn finish_input_gradient(&mut self, dxs: &mut [T]) {
        if self.conv.pad == 0 || self.grad.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::layer::{Kernel, Layer};
    use crate::{Network, Rng, Tensor};

    fn strided_padded_conv(rng: &mut Rng, inp: usize, stride: usize, pad: usize) -> Conv2d<f64> {
        let mut kernel = Kernel::zeros(3, inp, 3);
        kernel.weight = rng.normals(3 * inp * 9, 1.0);
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
        // (input channels, stride, padding, width, strip layout). Widths 8, 16 and 32 (with
        // padding 1) take the fixed-width row copies; 12 channels of a 3x3 kernel make 36
        // strip rows, enough for the strip layout at stride 1 and padding below 3.
        let cases = [
            (2, 1, 0, 7, false),
            (2, 1, 1, 7, false),
            (2, 1, 2, 7, false),
            (2, 2, 1, 7, false),
            (2, 2, 0, 7, false),
            (2, 1, 1, 8, false),
            (2, 1, 1, 16, false),
            (2, 1, 1, 32, false),
            (12, 1, 0, 7, true),
            (12, 1, 1, 8, true),
            (12, 1, 2, 16, true),
            (12, 1, 3, 7, false),
            (12, 2, 1, 7, false),
        ];
        for (inp, stride, pad, width, strip) in cases {
            let c = strided_padded_conv(&mut rng, inp, stride, pad);
            let input = Shape::image(inp, 5, width);
            let net = Network::new(input, alloc::vec![Layer::Conv2d(c.clone())]).unwrap();
            let out = net.output_shape();
            assert_eq!(Patches::new(&c, input, out).unwrap().strip, strip);
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
                "{inp} channels, stride {stride}, pad {pad}: forward off by {err}"
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
