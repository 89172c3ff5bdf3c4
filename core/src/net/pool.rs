//! Max and average pooling, forward and backward, computed separably: a window
//! `[y0, y1) x [x0, x1)` is reduced along rows first, then along columns, so a `k x k` window
//! costs `2k` operations per output instead of `k^2`.
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

/// First maximum of `v` (index, value); `-inf` and index 0 if every value is NaN.
fn argmax<T: Scalar>(v: &[T]) -> (usize, T) {
    v.iter()
        .enumerate()
        .fold((0, T::neg_infinity()), |best, (i, x)| {
            if *x > best.1 {
                (i, *x)
            } else {
                best
            }
        })
}

/// Pools every plane of `x` to `out` (same channels).
pub(crate) fn pool<T: Scalar>(p: &Pool, x: &Tensor<T>, out: Shape, max: bool) -> Tensor<T> {
    let (h, w) = (x.shape.h, x.shape.w);
    let mut rows = alloc::vec![T::zero(); h * out.w];
    let mut y = Vec::with_capacity(x.n * out.len());
    for plane in x.data.chunks_exact(h * w) {
        for (line, r) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(out.w)) {
            for (ox, v) in r.iter_mut().enumerate() {
                let s = &line[span(p, w, ox)];
                *v = if max {
                    argmax(s).1
                } else {
                    s.iter().fold(T::zero(), |a, b| a + *b)
                };
            }
        }
        for oy in 0..out.h {
            let ys = span(p, h, oy);
            for ox in 0..out.w {
                let column = ys.clone().map(|iy| rows[iy * out.w + ox]);
                y.push(if max {
                    column.fold(T::neg_infinity(), |m, v| if v > m { v } else { m })
                } else {
                    let count = ys.len() * span(p, w, ox).len();
                    column.fold(T::zero(), |a, b| a + b) / T::of_f64(count as f64)
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

/// The gradient with respect to the pooling input, given the output gradient `dy`.
pub(crate) fn pool_backward<T: Scalar>(
    p: &Pool,
    x: &Tensor<T>,
    dy: &Tensor<T>,
    max: bool,
) -> Tensor<T> {
    let (h, w) = (x.shape.h, x.shape.w);
    let out = dy.shape;
    let mut dx = Tensor::zeros(x.n, x.shape);
    // Per input row and output column: the row maximum and its column (max), or the
    // gradient arriving at the row's window (average).
    let mut rows = alloc::vec![(0usize, T::zero()); h * out.w];
    let planes = x
        .data
        .chunks_exact(h * w)
        .zip(dx.data.chunks_exact_mut(h * w));
    for ((plane, dplane), dyp) in planes.zip(dy.data.chunks_exact(out.h * out.w)) {
        if max {
            for (iy, line) in plane.chunks_exact(w).enumerate() {
                for ox in 0..out.w {
                    let xs = span(p, w, ox);
                    let (i, v) = argmax(&line[xs.clone()]);
                    rows[iy * out.w + ox] = (xs.start + i, v);
                }
            }
            for oy in 0..out.h {
                let ys = span(p, h, oy);
                for ox in 0..out.w {
                    let mut best = (ys.start, T::neg_infinity());
                    for iy in ys.clone() {
                        if rows[iy * out.w + ox].1 > best.1 {
                            best = (iy, rows[iy * out.w + ox].1);
                        }
                    }
                    let col = rows[best.0 * out.w + ox].0;
                    dplane[best.0 * w + col] += dyp[oy * out.w + ox];
                }
            }
        } else {
            rows.iter_mut().for_each(|r| r.1 = T::zero());
            for oy in 0..out.h {
                let ys = span(p, h, oy);
                for ox in 0..out.w {
                    let count = ys.len() * span(p, w, ox).len();
                    let share = dyp[oy * out.w + ox] / T::of_f64(count as f64);
                    for iy in ys.clone() {
                        rows[iy * out.w + ox].1 += share;
                    }
                }
            }
            for (line, r) in dplane.chunks_exact_mut(w).zip(rows.chunks_exact(out.w)) {
                for (ox, g) in r.iter().enumerate() {
                    line[span(p, w, ox)].iter_mut().for_each(|v| *v += g.1);
                }
            }
        }
    }
    dx
}
