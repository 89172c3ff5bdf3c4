//! Max and average pooling, forward and backward, computed separably: a window
//! `[y0, y1) x [x0, x1)` is reduced along rows first, then whole rows of those partial results
//! are combined down the columns, so a `k x k` window costs `2k` operations per output instead
//! of `k^2`, and the column pass runs over contiguous rows.
//!
//! Max pooling routes each output gradient to the first maximum of its window in row-major
//! order (the first row holding the window's maximum, the first column within that row), and
//! ignores NaN as `max` does; average pooling divides by the clipped window's size (Caffe's
//! ceil mode lets the last window hang over the border).

use alloc::vec::Vec;
use core::ops::Range;

use super::layer::{Pool, Shape};
use crate::{Scalar, Tensor};

/// The input range of output `o` along an axis of length `n`.
#[inline]
fn span(p: &Pool, n: usize, o: usize) -> Range<usize> {
    let start = o * p.stride;
    start..(start + p.k).min(n)
}

/// `v > m ? v : m`, written so that it compiles to a select, not a branch: pooled values
/// are noise to a branch predictor.
#[inline(always)]
fn larger<T: Scalar>(m: T, v: T) -> T {
    if v > m {
        v
    } else {
        m
    }
}

/// Per output column: the window's maximum along one input row (`-inf` if all are NaN).
fn row_max<T: Scalar>(p: &Pool, line: &[T], val: &mut [T]) {
    for (ox, v) in val.iter_mut().enumerate() {
        *v = line[span(p, line.len(), ox)]
            .iter()
            .fold(T::neg_infinity(), |m, x| larger(m, *x));
    }
}

/// Per output column: the window's maximum along one input row and its first column.
fn row_argmax<T: Scalar>(p: &Pool, line: &[T], val: &mut [T], col: &mut [usize]) {
    for (ox, (v, c)) in val.iter_mut().zip(col.iter_mut()).enumerate() {
        let xs = span(p, line.len(), ox);
        let (mut bi, mut bv) = (xs.start, T::neg_infinity());
        for (i, x) in line[xs.clone()].iter().enumerate() {
            // Bit arithmetic, not `if`: compilers turn the select into a branch that
            // mispredicts on noise. `bv` is never NaN, so `max` takes `x` exactly when
            // `x > bv`.
            let greater = usize::from(*x > bv).wrapping_neg();
            bi ^= (bi ^ (xs.start + i)) & greater;
            bv = bv.max(*x);
        }
        (*v, *c) = (bv, bi);
    }
}

/// Pools every plane of `x` to `out` (same channels).
pub(crate) fn pool<T: Scalar>(p: &Pool, x: &Tensor<T>, out: Shape, max: bool) -> Tensor<T> {
    let (h, w, wo) = (x.shape.h, x.shape.w, out.w);
    let mut rows = alloc::vec![T::zero(); h * wo];
    let widths: Vec<T> = (0..wo)
        .map(|ox| T::of_f64(span(p, w, ox).len() as f64))
        .collect();
    let mut y = alloc::vec![T::zero(); x.n * out.len()];
    for (plane, yp) in x
        .data
        .chunks_exact(h * w)
        .zip(y.chunks_exact_mut(out.h * wo))
    {
        for (line, r) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(wo)) {
            if max {
                row_max(p, line, r);
            } else {
                for (ox, v) in r.iter_mut().enumerate() {
                    *v = line[span(p, w, ox)].iter().fold(T::zero(), |a, b| a + *b);
                }
            }
        }
        for (oy, yr) in yp.chunks_exact_mut(wo).enumerate() {
            let ys = span(p, h, oy);
            if max {
                yr.fill(T::neg_infinity());
                for r in rows[ys.start * wo..ys.end * wo].chunks_exact(wo) {
                    yr.iter_mut().zip(r).for_each(|(m, v)| *m = larger(*m, *v));
                }
            } else {
                for r in rows[ys.start * wo..ys.end * wo].chunks_exact(wo) {
                    yr.iter_mut().zip(r).for_each(|(a, v)| *a += *v);
                }
                let rows_in = T::of_f64(ys.len() as f64);
                yr.iter_mut()
                    .zip(&widths)
                    .for_each(|(a, c)| *a /= rows_in * *c);
            }
        }
    }
    Tensor {
        n: x.n,
        shape: out,
        data: y,
    }
}

/// Max pooling for training: the output and, per output value, the index in `x.data` of
/// its window's first maximum (what the backward pass routes the gradient to).
pub(crate) fn max_pool_argmax<T: Scalar>(
    p: &Pool,
    x: &Tensor<T>,
    out: Shape,
) -> (Tensor<T>, Vec<usize>) {
    let (h, w, wo) = (x.shape.h, x.shape.w, out.w);
    let mut val = alloc::vec![T::zero(); h * wo];
    let mut col = alloc::vec![0usize; h * wo];
    let mut y = alloc::vec![T::zero(); x.n * out.len()];
    let mut at = alloc::vec![0usize; x.n * out.len()];
    let planes = x.data.chunks_exact(h * w).enumerate();
    let outputs = y
        .chunks_exact_mut(out.h * wo)
        .zip(at.chunks_exact_mut(out.h * wo));
    for ((pi, plane), (yp, ap)) in planes.zip(outputs) {
        for (iy, line) in plane.chunks_exact(w).enumerate() {
            let r = iy * wo..(iy + 1) * wo;
            row_argmax(p, line, &mut val[r.clone()], &mut col[r]);
        }
        for (oy, (yr, ar)) in yp
            .chunks_exact_mut(wo)
            .zip(ap.chunks_exact_mut(wo))
            .enumerate()
        {
            let ys = span(p, h, oy);
            yr.fill(T::neg_infinity());
            ar.fill(ys.start);
            // First the winning row per column, then its absolute index.
            for iy in ys {
                let r = &val[iy * wo..(iy + 1) * wo];
                for ((b, br), v) in yr.iter_mut().zip(ar.iter_mut()).zip(r) {
                    let greater = usize::from(*v > *b).wrapping_neg();
                    *br ^= (*br ^ iy) & greater;
                    *b = b.max(*v);
                }
            }
            for (ox, a) in ar.iter_mut().enumerate() {
                *a = pi * h * w + *a * w + col[*a * wo + ox];
            }
        }
    }
    (
        Tensor {
            n: x.n,
            shape: out,
            data: y,
        },
        at,
    )
}

/// Max pooling's input gradient: each output gradient added at its window's maximum
/// (`argmax` from [`max_pool_argmax`]) in a batch of `n` samples of `input` shape.
pub(crate) fn max_pool_backward<T: Scalar>(
    argmax: &[usize],
    dy: &Tensor<T>,
    n: usize,
    input: Shape,
) -> Tensor<T> {
    let mut dx = Tensor::zeros(n, input);
    for (i, g) in argmax.iter().zip(&dy.data) {
        dx.data[*i] += *g;
    }
    dx
}

/// Average pooling's input gradient, given the output gradient `dy`: each output gradient
/// spread evenly over its (clipped) window.
pub(crate) fn avg_pool_backward<T: Scalar>(p: &Pool, x: &Tensor<T>, dy: &Tensor<T>) -> Tensor<T> {
    let (h, w) = (x.shape.h, x.shape.w);
    let out = dy.shape;
    let wo = out.w;
    let mut dx = Tensor::zeros(x.n, x.shape);
    // The gradient reaching each input row's windows.
    let mut val = alloc::vec![T::zero(); h * wo];
    let widths: Vec<T> = (0..wo)
        .map(|ox| T::of_f64(span(p, w, ox).len() as f64))
        .collect();
    for (dplane, dyp) in dx
        .data
        .chunks_exact_mut(h * w)
        .zip(dy.data.chunks_exact(out.h * wo))
    {
        val.fill(T::zero());
        for (oy, g) in dyp.chunks_exact(wo).enumerate() {
            let ys = span(p, h, oy);
            let rows_in = T::of_f64(ys.len() as f64);
            for iy in ys {
                let r = val[iy * wo..(iy + 1) * wo].iter_mut();
                for ((v, g), c) in r.zip(g).zip(&widths) {
                    *v += *g / (rows_in * *c);
                }
            }
        }
        for (line, r) in dplane.chunks_exact_mut(w).zip(val.chunks_exact(wo)) {
            for (ox, g) in r.iter().enumerate() {
                line[span(p, w, ox)].iter_mut().for_each(|v| *v += *g);
            }
        }
    }
    dx
}
