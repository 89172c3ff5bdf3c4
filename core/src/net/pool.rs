//! Max and average pooling, forward and backward, computed separably: for each output row,
//! the window's input rows are first combined column by column (whole contiguous rows at a
//! time, which vectorises), then each output takes its window's columns of that partial
//! result, so a `k x k` window costs `2k` operations per output instead of `k^2` and the
//! strided part of the work runs on output rows only.
//!
//! Max pooling routes each output gradient to the first maximum of its window in row-major
//! order (the first row holding the window's maximum, the first column within that row), and
//! ignores NaN as `max` does; average pooling divides by the clipped window's size (Caffe's
//! ceil mode lets the last window hang over the border).

use alloc::vec::Vec;
use core::ops::Range;

use super::layer::{Pool, Shape};
use crate::alloc_try::{self, AllocError};
use crate::{Scalar, Tensor};

/// Most values a max-pooled plane may hold: the training pass records each window's maximum
/// as a `u32` offset within its plane (half the memory of `usize`, and this array is as large
/// as the layer's output).
pub(crate) const MAX_POOL_PLANE: usize = u32::MAX as usize;

/// The input range of output `o` along an axis of length `n`.
#[inline]
fn span(p: &Pool, n: usize, o: usize) -> Range<usize> {
    let start = o * p.stride;
    start..(start + p.k).min(n)
}

/// Each output column's clipped window width.
fn widths<T: Scalar>(p: &Pool, w: usize, wo: usize) -> Vec<T> {
    (0..wo)
        .map(|ox| T::of_f64(span(p, w, ox).len() as f64))
        .collect()
}

/// Average-pools every plane of `x` to `out` (same channels).
pub(crate) fn avg_pool<T: Scalar>(
    p: &Pool,
    x: &Tensor<T>,
    out: Shape,
) -> Result<Tensor<T>, AllocError> {
    let (h, w, wo) = (x.shape.h, x.shape.w, out.w);
    // One output row's window rows, summed per input column.
    let mut cols = alloc::vec![T::zero(); w];
    let widths = widths::<T>(p, w, wo);
    let mut y = Tensor::try_zeros(x.n, out)?.data;
    for (plane, yp) in x
        .data
        .chunks_exact(h * w)
        .zip(y.chunks_exact_mut(out.h * wo))
    {
        for (oy, yr) in yp.chunks_exact_mut(wo).enumerate() {
            let ys = span(p, h, oy);
            cols.fill(T::zero());
            for r in plane[ys.start * w..ys.end * w].chunks_exact(w) {
                cols.iter_mut().zip(r).for_each(|(a, v)| *a += *v);
            }
            let rows_in = T::of_f64(ys.len() as f64);
            for (ox, (v, c)) in yr.iter_mut().zip(&widths).enumerate() {
                let s = cols[span(p, w, ox)].iter().fold(T::zero(), |a, b| a + *b);
                *v = s / (rows_in * *c);
            }
        }
    }
    Ok(Tensor {
        n: x.n,
        shape: out,
        data: y,
    })
}

/// The column pass of max pooling for one output row: per output column, the window's first
/// maximum in row-major order among the per-column maxima `val` (first rows `row`) of the
/// window's rows, as (value, row, column).
///
/// Output column `ox`'s `j`-th candidate is input column `ox s + j`, that is entry
/// `ox + j / s` of phase `j % s` of the stride-`s` deinterleaved columns: copying the phases
/// out once turns every candidate into a contiguous run over the output columns, so the
/// comparisons run elementwise (and vectorise) instead of window by window.
struct ColumnPick<T> {
    /// Entries per phase: `wo + (k - 1) / s`; past the input, `-inf` in row `u32::MAX`,
    /// which never wins.
    len: usize,
    phase_val: Vec<T>,
    phase_row: Vec<u32>,
    /// Per output column: the best value so far, its row and its column.
    val: Vec<T>,
    row: Vec<u32>,
    col: Vec<u32>,
}

impl<T: Scalar> ColumnPick<T> {
    fn new(p: &Pool, wo: usize) -> Self {
        let len = wo + (p.k - 1) / p.stride;
        Self {
            len,
            phase_val: alloc::vec![T::neg_infinity(); p.stride * len],
            phase_row: alloc::vec![u32::MAX; p.stride * len],
            val: alloc::vec![T::zero(); wo],
            row: alloc::vec![0; wo],
            col: alloc::vec![0; wo],
        }
    }

    fn pick(&mut self, p: &Pool, first_row: u32, val: &[T], row: &[u32]) {
        let (s, len, wo) = (p.stride, self.len, self.val.len());
        if s == 2 {
            // The common stride, as whole pairs: the compiler turns this into shuffles.
            let (ev, od) = self.phase_val.split_at_mut(len);
            let (er, or) = self.phase_row.split_at_mut(len);
            let dst = ev
                .iter_mut()
                .zip(od.iter_mut())
                .zip(er.iter_mut().zip(or.iter_mut()));
            for (((e, o), (re, ro)), (v, r)) in
                dst.zip(val.chunks_exact(2).zip(row.chunks_exact(2)))
            {
                (*e, *o, *re, *ro) = (v[0], v[1], r[0], r[1]);
            }
            if val.len() % 2 == 1 && val.len() / 2 < len {
                let c = val.len() - 1;
                (ev[c / 2], er[c / 2]) = (val[c], row[c]);
            }
        } else {
            let phases = self.phase_val.chunks_exact_mut(len);
            for (ph, (pv, pr)) in phases.zip(self.phase_row.chunks_exact_mut(len)).enumerate() {
                // Input columns `ph, ph + s, ...`; entries past the input keep their padding.
                let count = val.len().saturating_sub(ph).div_ceil(s).min(len);
                for (q, (dv, dr)) in pv[..count].iter_mut().zip(&mut pr[..count]).enumerate() {
                    (*dv, *dr) = (val[q * s + ph], row[q * s + ph]);
                }
            }
        }
        self.val.fill(T::neg_infinity());
        self.row.fill(first_row);
        for (ox, c) in self.col.iter_mut().enumerate() {
            *c = (ox * s) as u32;
        }
        for j in 0..p.k {
            let from = (j % s) * len + j / s;
            let cands = self.phase_val[from..from + wo]
                .iter()
                .zip(&self.phase_row[from..from + wo]);
            let best = self.val.iter_mut().zip(&mut self.row).zip(&mut self.col);
            for (ox, (((bv, br), bc), (v, r))) in best.zip(cands).enumerate() {
                // A larger value, or the same value in an earlier row; on a full tie the
                // earlier column stays. Bit arithmetic, not `if`: selects compile to
                // branches that mispredict on noise.
                let take = (*v > *bv) | ((*v == *bv) & (*r < *br));
                let mask = u32::from(take).wrapping_neg();
                *br ^= (*br ^ *r) & mask;
                *bc ^= (*bc ^ (ox * s + j) as u32) & mask;
                *bv = if take { *v } else { *bv };
            }
        }
    }
}

/// Max pooling: the output and, per output value, the offset within its input
/// plane of its window's first maximum (where the backward pass routes the gradient).
///
/// # Errors
/// If the output or the offsets cannot be allocated.
///
/// # Panics
/// If a plane holds more than [`MAX_POOL_PLANE`] values (networks refuse such layers).
pub(crate) fn max_pool_argmax<T: Scalar>(
    p: &Pool,
    x: &Tensor<T>,
    out: Shape,
) -> Result<(Tensor<T>, Vec<u32>), AllocError> {
    let (h, w, wo) = (x.shape.h, x.shape.w, out.w);
    assert!(h * w <= MAX_POOL_PLANE, "max-pooled plane too large");
    // Per input column of one output row's window: the maximum and its first row.
    let mut val = alloc::vec![T::zero(); w];
    let mut row = alloc::vec![0u32; w];
    let mut pick = ColumnPick::new(p, wo);
    let mut y = Tensor::buffer(x.n, out)?;
    let mut at = alloc_try::with_capacity(y.capacity())?;
    for plane in x.data.chunks_exact(h * w) {
        for oy in 0..out.h {
            let ys = span(p, h, oy);
            val.fill(T::neg_infinity());
            row.fill(ys.start as u32);
            for iy in ys.clone() {
                let line = &plane[iy * w..(iy + 1) * w];
                for ((m, r), v) in val.iter_mut().zip(row.iter_mut()).zip(line) {
                    // `m` is never NaN, so `max` takes `v` exactly when `v > m`.
                    *r = if *v > *m { iy as u32 } else { *r };
                    *m = m.max(*v);
                }
            }
            pick.pick(p, ys.start as u32, &val, &row);
            // In range: `row * w + col < h * w <= MAX_POOL_PLANE`.
            y.extend_from_slice(&pick.val);
            at.extend(
                pick.row
                    .iter()
                    .zip(&pick.col)
                    .map(|(r, c)| r * w as u32 + c),
            );
        }
    }
    Ok((
        Tensor {
            n: x.n,
            shape: out,
            data: y,
        },
        at,
    ))
}

/// Max pooling's input gradient: each output gradient added at its window's maximum
/// (`argmax` from [`max_pool_argmax`]) in a batch of `n` samples of `input` shape.
pub(crate) fn max_pool_backward<T: Scalar>(
    argmax: &[u32],
    dy: &Tensor<T>,
    n: usize,
    input: Shape,
) -> Result<Tensor<T>, AllocError> {
    let mut dx = Tensor::try_zeros(n, input)?;
    let planes = dx.data.chunks_exact_mut(input.h * input.w);
    let outs = dy.shape.h * dy.shape.w;
    for (plane, (a, g)) in planes.zip(argmax.chunks_exact(outs).zip(dy.data.chunks_exact(outs))) {
        for (i, g) in a.iter().zip(g) {
            plane[*i as usize] += *g;
        }
    }
    Ok(dx)
}

/// Average pooling's input gradient, given the output gradient `dy`: each output gradient
/// spread evenly over its (clipped) window.
pub(crate) fn avg_pool_backward<T: Scalar>(
    p: &Pool,
    x: &Tensor<T>,
    dy: &Tensor<T>,
) -> Result<Tensor<T>, AllocError> {
    let (h, w) = (x.shape.h, x.shape.w);
    let out = dy.shape;
    let wo = out.w;
    let mut dx = Tensor::try_zeros(x.n, x.shape)?;
    // The gradient one output row sends to each input column of its window rows.
    let mut cols = alloc::vec![T::zero(); w];
    let widths = widths::<T>(p, w, wo);
    for (dplane, dyp) in dx
        .data
        .chunks_exact_mut(h * w)
        .zip(dy.data.chunks_exact(out.h * wo))
    {
        for (oy, g) in dyp.chunks_exact(wo).enumerate() {
            let ys = span(p, h, oy);
            let rows_in = T::of_f64(ys.len() as f64);
            cols.fill(T::zero());
            for (ox, (g, c)) in g.iter().zip(&widths).enumerate() {
                let share = *g / (rows_in * *c);
                cols[span(p, w, ox)].iter_mut().for_each(|v| *v += share);
            }
            for line in dplane[ys.start * w..ys.end * w].chunks_exact_mut(w) {
                line.iter_mut().zip(&cols).for_each(|(d, v)| *d += *v);
            }
        }
    }
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    /// Naive row-major scan: the first strictly larger non-NaN value of each window.
    fn naive(p: &Pool, plane: &[f64], h: usize, w: usize, out: Shape) -> Vec<(f64, u32)> {
        let mut res = Vec::new();
        for oy in 0..out.h {
            for ox in 0..out.w {
                let (ys, xs) = (span(p, h, oy), span(p, w, ox));
                let mut best = (f64::NEG_INFINITY, (ys.start * w + xs.start) as u32);
                for y in ys {
                    for x in xs.clone() {
                        if plane[y * w + x] > best.0 {
                            best = (plane[y * w + x], (y * w + x) as u32);
                        }
                    }
                }
                res.push(best);
            }
        }
        res
    }

    #[test]
    fn max_pooling_takes_the_first_maximum_in_row_major_order() {
        let mut rng = Rng::seed(5);
        for (k, stride, ceil, h, w) in [(3, 2, true, 7, 8), (2, 2, false, 6, 6), (3, 1, true, 5, 9)]
        {
            let p = Pool { k, stride, ceil };
            let shape = Shape::image(2, h, w);
            let out = Shape::image(2, p.out_len(h).unwrap(), p.out_len(w).unwrap());
            // Few distinct values: ties in the same row, the same column and across both;
            // some NaN, which never wins.
            let data = (0..2 * shape.len())
                .map(|_| match rng.below(8) {
                    0 => f64::NAN,
                    v => (v % 3) as f64,
                })
                .collect();
            let x = Tensor::new(2, shape, data).unwrap();
            let (y, at) = max_pool_argmax(&p, &x, out).unwrap();
            let per = out.h * out.w;
            for (i, plane) in x.data.chunks_exact(h * w).enumerate() {
                let want = naive(&p, plane, h, w, out);
                for (j, (v, a)) in want.iter().enumerate() {
                    assert_eq!(
                        (y.data[i * per + j], at[i * per + j]),
                        (*v, *a),
                        "k {k} s {stride}"
                    );
                }
            }
        }
    }
}
