//! The first solve of Algorithms 1 and 2 on large layers: a random rotation of the middle
//! channels splits it into small independent systems.
//!
//! Eq. (6) does not change when the `C_l` middle channels are rotated: for an orthogonal `Q`,
//! `(F_{l+1} Q^T) (*) (Q F_l) = F_{l+1} (*) F_l`. Both algorithms start by fixing one factor
//! at random and solving for the other, closest to a random start (morphism notes, section
//! 5). In the orientation of [`solve_factor`](super::deconv) the system reads
//! `sum_m sum_{p + q = t} H[a, m, p] X[c, m, q] = R[c, a, t]`, with `H` the fixed factor.
//!
//! Here `H` is drawn as `H' Q^T` (along `m`): `H'` block-diagonal over `G` groups of
//! (`a`, `m`) channels, `Q` a random orthogonal [`Mixing`]. `H` is dense and random like
//! any draw, and in the rotated unknowns `Y = Q^T X` the system splits into `G` systems, one
//! per group, each `G` times smaller in both dimensions. `Q` preserves distances, so the
//! solution closest to the start `Y0` is the one closest to `X0 = Q Y0`: the solution the
//! dense solve of the same `H` returns, for about `1/G` of its products and `1/G^2` of its
//! factorisation. For a `(512, 512, 3, 3)` layer through `C_l = 2048` with `K_1 = K_2 = 3`
//! the dense system has 12,800 rows and 18,432 columns per input channel; in 32 groups each
//! has 400 and 576.
//!
//! Grouping is used only when every group keeps a quarter more unknowns than equations (or,
//! with a `1 x 1` fixed factor, at least as many), so that each block is as well conditioned
//! as a dense draw would be. Otherwise the dense solve runs.

use alloc::vec::Vec;
use core::ops::Range;

use crate::gemm::matmul;
use faer::{Accum, Mat, MatMut, MatRef};

use super::deconv::{
    compose, compose_workspace, max_abs, solve_factor, solve_factor_workspace,
    transpose_channels as transpose, Sizes,
};
use super::factor::orthonormal_columns;
use super::lstsq::SolveMethod;
use super::{kernel_values, mat_values, par};
use crate::alloc_try::Count;
use crate::{Kernel, Rng, Scalar};

/// Fewest rows of `H'` per group for a `1 x 1` fixed factor.
const MIN_ROWS_DENSE: usize = 8;

/// Fewest rows of `H'` per group for a larger fixed factor. A group with few rows can lose
/// rank however many columns it has: with one row, every pair of middle channels gives a null
/// vector (the syzygies of [`Algorithm::Auto`](super::algorithm::Algorithm::Auto)), and `a`
/// rows have such vectors of degree `a (K_h - 1)`, which fit the unknown kernel while
/// `a (K_h - 1) <= K_u - 1`. Sixteen rows keep them out for `K_u < 16 K_h - 15`; larger `K_u`
/// is not grouped.
const MIN_ROWS_CONV: usize = 16;

/// Balanced contiguous split of `0..n` into `parts` ranges (sizes differ by at most one).
fn split(n: usize, parts: usize, i: usize) -> Range<usize> {
    let at = |j: usize| (n as u128 * j as u128 / parts as u128) as usize;
    at(i)..at(i + 1)
}

/// A random orthogonal `n x n` matrix `Q = L_3 L_2 L_1`, each layer block-diagonal up to a
/// permutation with random orthogonal blocks of at most `ceil(sqrt(n))` rows: `L_1` and `L_3`
/// rotate contiguous runs of indices, `L_2` the indices at one position within the runs.
/// After the three layers every output depends on every input, so `Q` is dense; applying it
/// to `cols` columns costs about `6 n sqrt(n) cols` flops, against `2 n^2 cols` for a dense
/// `Q`.
pub(crate) struct Mixing<F> {
    layers: [Vec<Block<F>>; 3],
}

/// One orthogonal block of a [`Mixing`] layer and the indices it rotates.
struct Block<F> {
    rows: Vec<usize>,
    q: Mat<F>,
}

impl<F: Scalar> Mixing<F> {
    /// A random mixing of `n >= 1` indices.
    pub(crate) fn random(n: usize, rng: &mut Rng) -> Self {
        let runs = n.div_ceil(run_len(n));
        let block = |rows: Vec<usize>, rng: &mut Rng| {
            let k = rows.len();
            let q = orthonormal_columns(Mat::from_fn(k, k, |_, _| F::of_f64(rng.normal())));
            Block { rows, q }
        };
        let contiguous = |rng: &mut Rng| {
            (0..runs)
                .map(|u| block(split(n, runs, u).collect(), rng))
                .collect::<Vec<_>>()
        };
        let first = contiguous(rng);
        // The split puts the longer runs last.
        let longest = split(n, runs, runs - 1).len();
        let across = (0..longest)
            .map(|v| {
                let rows = (0..runs)
                    .map(|u| split(n, runs, u))
                    .filter(|r| r.len() > v)
                    .map(|r| r.start + v)
                    .collect();
                block(rows, rng)
            })
            .collect();
        let last = contiguous(rng);
        Self {
            layers: [first, across, last],
        }
    }

    /// `x <- Q x` (or `Q^T x` with `transpose`) for `x` the row-major `n x cols` matrix.
    pub(crate) fn apply(&self, x: &mut [F], cols: usize, transpose: bool) {
        let order = if transpose { [2, 1, 0] } else { [0, 1, 2] };
        let widest = self.layers.iter().flatten().map(|b| b.rows.len()).max();
        let mut input = alloc::vec![F::zero(); widest.unwrap_or(0) * cols];
        let mut output = input.clone();
        for l in order {
            for b in &self.layers[l] {
                let k = b.rows.len();
                let (input, output) = (&mut input[..k * cols], &mut output[..k * cols]);
                for (i, &r) in b.rows.iter().enumerate() {
                    input[i * cols..(i + 1) * cols].copy_from_slice(&x[r * cols..(r + 1) * cols]);
                }
                let q = if transpose {
                    b.q.transpose()
                } else {
                    b.q.as_ref()
                };
                matmul(
                    MatMut::from_row_major_slice_mut(output, k, cols),
                    Accum::Replace,
                    q,
                    MatRef::from_row_major_slice(input, k, cols),
                    F::one(),
                    par(),
                );
                for (i, &r) in b.rows.iter().enumerate() {
                    x[r * cols..(r + 1) * cols].copy_from_slice(&output[i * cols..(i + 1) * cols]);
                }
            }
        }
    }
}

/// Longest run of a [`Mixing`] of `n` indices: `ceil(sqrt(n))`.
fn run_len(n: usize) -> usize {
    let mut r = libm::sqrt(n as f64) as usize;
    while r.saturating_mul(r) < n {
        r += 1;
    }
    r.max(1)
}

/// Values (of `F`) a [`Mixing`] of `n` indices holds (three layers of blocks of at most `b`
/// rows, each padded by faer, their index lists counted as two values an index and the
/// blocks' headers as sixteen), plus the peak of building one block (the Gaussian matrix and
/// its QR) or of applying the mixing to `cols` columns (the gathered rows and their product).
fn mixing_workspace<F>(n: Count, cols: Count) -> Count {
    let b = Count::of(n.get().map_or(usize::MAX, run_len));
    let held = (n * (b + 64) + n * 2 + b * 16) * 3;
    let build = mat_values::<F>(b, b) + qr_workspace::<F>(b, b);
    held + build.max(b * cols * 2)
}

/// Values a random draw of an `out x inp` `1 x 1` factor adds to the factor itself: faer's QR
/// holds the matrix, its factors and the thin `Q` (the `small-heap` Gram-Schmidt one copy).
pub(crate) fn qr_workspace<F>(out: Count, inp: Count) -> Count {
    let m = mat_values::<F>(out.max(inp), out.min(inp));
    if cfg!(feature = "small-heap") {
        m
    } else {
        m * 5 + 4096
    }
}

/// The shape of one grouped solve, in [`solve_factor`]'s names: `H` `(a, m, K_h)`, the unknown
/// `X` `(c, m, K_u)` and `R` `(c, a, K~)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Rows of the fixed factor (`C_{l+1}` solving `F_l`, `C_{l-1}` solving `F_{l+1}`).
    pub(crate) a: usize,
    /// Middle channels `C_l`.
    pub(crate) m: usize,
    /// Columns of the unknown (`C_{l-1}` solving `F_l`, `C_{l+1}` solving `F_{l+1}`).
    pub(crate) c: usize,
    /// The fixed factor's kernel.
    pub(crate) kh: usize,
    /// The unknown's kernel.
    pub(crate) ku: usize,
}

impl Shape {
    /// Solving `F_l` with `F_{l+1}` fixed, for `G` `(c_out, c_in)` through `c_l` channels.
    pub(crate) fn solving_f1(c_out: usize, c_in: usize, c_l: usize, k1: usize, k2: usize) -> Self {
        Self {
            a: c_out,
            m: c_l,
            c: c_in,
            kh: k2,
            ku: k1,
        }
    }

    /// Solving `F_{l+1}` with `F_l` fixed.
    pub(crate) fn solving_f2(c_out: usize, c_in: usize, c_l: usize, k1: usize, k2: usize) -> Self {
        Self {
            a: c_in,
            m: c_l,
            c: c_out,
            kh: k1,
            ku: k2,
        }
    }

    fn kt(&self) -> usize {
        self.kh.saturating_add(self.ku).saturating_sub(1)
    }

    /// The group counts worth trying, largest first: `a / MIN_ROWS`, then halves down to 2
    /// (none when a group of the smallest size cannot avoid the syzygies).
    fn candidates(&self) -> impl Iterator<Item = usize> {
        let min_rows = if self.kh == 1 {
            MIN_ROWS_DENSE
        } else {
            MIN_ROWS_CONV
        };
        let start = if self.kh > 1 && self.ku.saturating_sub(1) / (self.kh - 1) >= MIN_ROWS_CONV {
            0
        } else {
            self.a / min_rows
        };
        core::iter::successors(Some(start), |g| Some(g / 2)).take_while(|g| *g >= 2)
    }

    /// The largest group count whose every group has enough unknowns for its equations, or
    /// `None` when grouping does not apply. A `1 x 1` block needs `m_g >= a_g` (its draw is
    /// made orthonormal when nearly square, so it is well conditioned at any aspect); a
    /// larger one needs `m_g K_u^2 >= 5/4 a_g K~^2`: a structured block that is square or
    /// nearly so is badly conditioned, and a ragged split can make the largest group square
    /// where the dense system still has spare unknowns (there, the dense solve runs).
    pub(crate) fn groups(&self) -> Option<usize> {
        if self.kh == 0 || self.ku == 0 {
            return None;
        }
        let (ku, kt) = (self.ku as u128, self.kt() as u128);
        self.candidates().find(|&g| {
            let (a_g, m_g) = (self.a.div_ceil(g) as u128, (self.m / g) as u128);
            let (unknowns, equations) = (m_g * ku * ku, a_g * kt * kt);
            if self.kh == 1 {
                unknowns >= equations
            } else {
                unknowns.saturating_mul(4) >= equations.saturating_mul(5)
            }
        })
    }

    /// An upper bound of the values (of `F`) [`solve_drawn`] and its caller hold at once,
    /// whatever group count it picks (0 when it never groups): `R`'s transpose (solving
    /// `F_l`), the mixing, the start and solution and its transpose (solving `F_{l+1}`),
    /// `H'`'s blocks, and the larger of one group's solve (its slices and their transposes,
    /// the block's draw, [`solve_factor`]'s workspace and the residual's composition) and the
    /// assembly (the dense fixed factor, its transpose and the mixing's products).
    pub(crate) fn workspace<F: Scalar>(&self) -> Count {
        let (a, m, c) = (Count::of(self.a), Count::of(self.m), Count::of(self.c));
        let (kh, ku, kt) = (Count::of(self.kh), Count::of(self.ku), Count::of(self.kt()));
        let cols = (c * ku * ku).max(a * kh * kh);
        let per_count = |g: usize| {
            let (a_g, m_g) = (Count::of(self.a.div_ceil(g)), Count::of(self.m.div_ceil(g)));
            let blocks = kernel_values(a_g, m_g, kh) * g;
            let s = Sizes::new(
                self.c,
                self.a.div_ceil(g),
                self.m.div_ceil(g),
                self.kh,
                self.ku,
            );
            let group = kernel_values(c, a_g, kt)
                + kernel_values(m_g, c, ku) * 3
                + qr_workspace::<F>(a_g, m_g)
                + solve_factor_workspace::<F>((a_g, m_g, kh), c, ku, kt)
                + kernel_values(m_g, a_g, kh)
                + compose_workspace::<F>(&s);
            let assemble = kernel_values(m, a, kh) * 2 + mixing_workspace::<F>(m, cols);
            blocks + group.max(assemble)
        };
        let widest = self
            .candidates()
            .map(per_count)
            .fold(Count::of(0), Count::max);
        if widest == Count::of(0) {
            return widest;
        }
        kernel_values(c, a, kt)
            + mixing_workspace::<F>(m, cols)
            + kernel_values(m, c, ku) * 2
            + qr_workspace::<F>(m, c)
            + widest
    }
}

/// The result of [`solve_drawn`], both factors with the middle channel first.
pub(crate) struct Drawn<F> {
    /// The solution `X`, as `(m, c, K_u)`.
    pub(crate) solved: Kernel<F>,
    /// The fixed factor `H`, as `(m, a, K_h)`.
    pub(crate) fixed: Kernel<F>,
    /// [`SolveMethod::Svd`] if any group needed it.
    pub(crate) method: SolveMethod,
    /// `max |H' (*) Y - R|` over the groups, relative to `max |R|`: the residual of the
    /// rotated system, equal to the dense one up to the rotation's rounding.
    pub(crate) residual: f64,
}

/// Draws `H = H' Q^T` (entries of standard deviation `std`) and a start `X0 = Q Y0`, and
/// solves `sum_m sum_{p + q = t} H[a, m, p] X[c, m, q] = R[c, a, t]` for the `X` closest to
/// `X0`, group by group, in `groups` groups ([`Shape::groups`]). `r` is `(c, a, K~)`.
///
/// `draw` is the initialisation of a dense factor (`random_kernel` of the algorithms): the
/// blocks and the start are drawn with it, so a `1 x 1` block that is nearly square is made
/// orthonormal as a dense draw would be.
///
/// # Panics
/// If the shapes disagree (a bug in the caller: [`decompose`](super::algorithm::decompose)
/// checks its inputs and workspace first).
pub(crate) fn solve_drawn<F: Scalar>(
    r: &Kernel<F>,
    shape: Shape,
    groups: usize,
    std: f64,
    draw: fn(usize, usize, usize, f64, &mut Rng) -> Kernel<F>,
    rng: &mut Rng,
) -> Drawn<F> {
    let Shape { a, m, c, kh, ku } = shape;
    let kt = shape.kt();
    assert!(
        r.out == c && r.inp == a && r.k == kt,
        "solve_drawn: R's shape"
    );
    let mixing = Mixing::random(m, rng);
    // Y0 has the start's distribution; rotating it keeps the entries' scale.
    let mut y = draw(m, c, ku, std, rng);
    let scale = max_abs(&r.weight);
    let (mut err, mut svd) = (0.0f64, false);
    let mut blocks = Vec::with_capacity(groups);
    let (cu, ct) = (c * ku * ku, kt * kt);
    for g in 0..groups {
        let (ra, rm) = (split(a, groups, g), split(m, groups, g));
        // Each group's block spreads over `m` columns once rotated: scale it up so that
        // the rotated entries have standard deviation `std`.
        let spread = libm::sqrt(m as f64 / rm.len() as f64);
        let h = draw(ra.len(), rm.len(), kh, std * spread, rng);
        let mut rg = Kernel::zeros(c, ra.len(), kt);
        for ci in 0..c {
            let src = &r.weight[(ci * a + ra.start) * ct..(ci * a + ra.end) * ct];
            rg.weight[ci * ra.len() * ct..(ci + 1) * ra.len() * ct].copy_from_slice(src);
        }
        let rows = Kernel {
            out: rm.len(),
            inp: c,
            k: ku,
            weight: y.weight[rm.start * cu..rm.end * cu].to_vec(),
            bias: alloc::vec![F::zero(); rm.len()],
        };
        let (x, method) = solve_factor(&h, &rg, &transpose(&rows));
        svd |= method == SolveMethod::Svd;
        let back = compose(&x, &transpose(&h));
        err = back.weight.iter().zip(&rg.weight).fold(err, |e, (u, v)| {
            let d = (*u - *v).as_f64().abs();
            if d.is_finite() {
                e.max(d)
            } else {
                f64::INFINITY
            }
        });
        y.weight[rm.start * cu..rm.end * cu].copy_from_slice(&transpose(&x).weight);
        blocks.push(h);
    }
    let mut fixed = Kernel::zeros(m, a, kh);
    let kk = kh * kh;
    for (g, h) in blocks.iter().enumerate() {
        let (ra, rm) = (split(a, groups, g), split(m, groups, g));
        for (j, mi) in rm.enumerate() {
            for (i, ai) in ra.clone().enumerate() {
                let (s, d) = (h.at(i, j, 0, 0), fixed.at(mi, ai, 0, 0));
                fixed.weight[d..d + kk].copy_from_slice(&h.weight[s..s + kk]);
            }
        }
    }
    drop(blocks);
    mixing.apply(&mut fixed.weight, a * kk, false);
    mixing.apply(&mut y.weight, cu, false);
    Drawn {
        solved: y,
        fixed,
        method: if svd {
            SolveMethod::Svd
        } else {
            SolveMethod::GramCholesky
        },
        residual: if scale > 0.0 { err / scale } else { err },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::algorithm::{decompose, workspace_bytes, Algorithm, SolveOptions};
    use crate::solve::deconv::{pad_centered, relative_residual};

    fn uniform<F: Scalar>(out: usize, inp: usize, k: usize, std: f64, rng: &mut Rng) -> Kernel<F> {
        let mut f = Kernel::zeros(out, inp, k);
        let w = rng.uniforms(f.weight.len(), std);
        f.weight
            .iter_mut()
            .zip(w)
            .for_each(|(v, u)| *v = F::of_f64(u));
        f
    }

    #[test]
    fn mixing_is_orthogonal_and_dense() {
        for n in [1, 2, 3, 7, 10, 46, 50, 97] {
            let q = Mixing::<f64>::random(n, &mut Rng::seed(n as u64));
            // Q applied to the identity, and Q^T to Q.
            let mut m = alloc::vec![0.0; n * n];
            (0..n).for_each(|i| m[i * n + i] = 1.0);
            q.apply(&mut m, n, false);
            if n > 2 {
                assert!(m.iter().all(|v| *v != 0.0), "n = {n}: Q has zeros");
            }
            q.apply(&mut m, n, true);
            for (i, v) in m.iter().enumerate() {
                let want = if i / n == i % n { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-13, "n = {n}: Q^T Q [{i}] = {v}");
            }
        }
    }

    /// The grouped solution is the dense solve's for the same fixed factor and start.
    #[test]
    fn grouped_solve_is_the_dense_closest_solution() {
        for (shape, seed) in [
            (Shape::solving_f1(40, 6, 144, 3, 3), 1),
            (Shape::solving_f1(24, 5, 64, 3, 1), 2),
            (Shape::solving_f2(5, 36, 128, 3, 3), 3),
            (Shape::solving_f2(7, 20, 20, 1, 3), 4),
        ] {
            let groups = shape.groups().unwrap();
            assert!(groups >= 2, "{shape:?}");
            let mut rng = Rng::seed(seed);
            let r: Kernel<f64> = uniform(shape.c, shape.a, shape.kt(), 1.0, &mut rng);
            let start = rng.clone();
            let d = solve_drawn(&r, shape, groups, 0.3, uniform::<f64>, &mut rng);
            // The start the solve drew: the mixing, then Y0.
            let mut rng = start;
            let q = Mixing::<f64>::random(shape.m, &mut rng);
            let mut x0 = uniform::<f64>(shape.m, shape.c, shape.ku, 0.3, &mut rng);
            q.apply(&mut x0.weight, shape.c * shape.ku * shape.ku, false);
            let h = transpose(&d.fixed);
            let (dense, _) = solve_factor(&h, &r, &transpose(&x0));
            let x = transpose(&d.solved);
            let diff = x
                .weight
                .iter()
                .zip(&dense.weight)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-9 * max_abs(&dense.weight), "{shape:?}: {diff}");
            let back = compose(&x, &transpose(&h));
            let err = back
                .weight
                .iter()
                .zip(&r.weight)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err < 1e-10 && d.residual < 1e-10,
                "{shape:?}: {err} {}",
                d.residual
            );
            assert!(h.weight.iter().all(|v| *v != 0.0), "{shape:?}: H has zeros");
        }
    }

    #[test]
    fn sizes_that_cannot_group_do_not() {
        // Fewer than 16 rows per group.
        assert_eq!(Shape::solving_f1(31, 8, 256, 3, 3).groups(), None);
        // 2 groups of 16 rows need 5/4 400 / 9 columns each.
        assert_eq!(Shape::solving_f1(32, 8, 110, 3, 3).groups(), None);
        assert_eq!(Shape::solving_f1(32, 8, 112, 3, 3).groups(), Some(2));
        // A ragged split that would leave one square block (35 rows, 100 channels: 18 rows
        // and 50 channels, 450 x 450), which the review found losing f32 solves.
        assert_eq!(Shape::solving_f1(35, 4, 100, 3, 3).groups(), None);
        // 1 x 1 blocks may be square.
        assert_eq!(Shape::solving_f1(32, 8, 32, 3, 1).groups(), Some(4));
        // Zero kernels neither panic nor group.
        assert_eq!(Shape::solving_f1(64, 8, 256, 0, 0).groups(), None);
        assert!(workspace_bytes(4, 4, 4, 0, 0, crate::solve::algorithm::Precision::F64).is_some());
        // A kernel so much larger than the fixed one that 16 rows keep syzygies.
        assert_eq!(Shape::solving_f1(64, 8, 1 << 12, 33, 3).groups(), None);
        // Huge sizes neither overflow nor loop.
        assert!(Shape::solving_f1(usize::MAX / 2, 8, usize::MAX, 3, 1)
            .groups()
            .is_some());
        assert!(Shape::solving_f1(usize::MAX, 8, 8, 3, 3)
            .workspace::<f64>()
            .get()
            .is_none());
    }

    /// Decomposes `g` through the grouped path of `shape`, and checks it: its block count, no
    /// zero in either factor, the residual (reported and recomputed from the factors) within
    /// the tolerance, and the heap it held within `workspace_bytes`.
    #[cfg(feature = "std")]
    fn check<F: Scalar>(
        g: &Kernel<F>,
        shape: Shape,
        (cl, k1, k2): (usize, usize, usize),
        alg: Algorithm,
        opts: &SolveOptions,
    ) {
        use crate::heap_meter::peak_of;
        let what = alloc::format!("{shape:?} {}", F::NAME);
        let (d, peak) = peak_of(|| decompose(g, cl, k1, k2, alg, opts, &mut Rng::seed(8)));
        let d = d.unwrap();
        assert_eq!(Some(d.groups), shape.groups(), "{what}");
        let full = |f: &Kernel<F>| f.weight.iter().all(|v| *v != F::zero());
        assert!(full(&d.f1) && full(&d.f2), "{what}: zeros");
        let again = relative_residual(&pad_centered(g, k1 + k2 - 1), &d.f2, &d.f1);
        assert!(
            d.residual <= opts.tol && again <= opts.tol,
            "{what}: {again}"
        );
        let bound = workspace_bytes(g.inp, cl, g.out, k1, k2, opts.precision).unwrap();
        assert!(peak <= bound, "{what}: {peak} > {bound}");
    }

    /// Decompositions that take the grouped path, in both orientations and with both
    /// algorithms, in f64 and f32.
    #[cfg(feature = "std")]
    #[test]
    fn grouped_decompositions_are_exact_dense_and_within_bound() {
        crate::heap_meter::warm_up();
        // (C_out, C_in, C_l, K, K_1, K_2, algorithm, which factor the first solve finds)
        let cases = [
            (40, 24, 144, 3, 3, 3, Algorithm::General, true),
            (40, 24, 144, 3, 3, 3, Algorithm::Practical, true),
            (48, 40, 96, 3, 3, 1, Algorithm::Practical, true),
            (12, 40, 160, 3, 1, 3, Algorithm::Practical, false),
            (24, 40, 192, 3, 1, 3, Algorithm::General, false),
        ];
        for (co, ci, cl, k, k1, k2, alg, f1_first) in cases {
            let shape = if f1_first {
                Shape::solving_f1(co, ci, cl, k1, k2)
            } else {
                Shape::solving_f2(co, ci, cl, k1, k2)
            };
            assert!(shape.groups().is_some(), "{shape:?}");
            let g: Kernel<f64> = uniform(co, ci, k, 0.2, &mut Rng::seed(7));
            let g32 = Kernel {
                out: co,
                inp: ci,
                k,
                weight: g.weight.iter().map(|v| *v as f32).collect(),
                bias: alloc::vec![0.0; co],
            };
            check(&g, shape, (cl, k1, k2), alg, &SolveOptions::default());
            check(&g32, shape, (cl, k1, k2), alg, &SolveOptions::f32());
        }
    }
}
