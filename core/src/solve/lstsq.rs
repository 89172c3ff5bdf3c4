//! The solution of `A X = B` closest to a starting point `X0`:
//! `X = X0 + A^+ (B - A X0)` (morphism notes, section 5).
//!
//! For an under-determined consistent system this is the exact solution nearest to `X0`
//! (it keeps `X0`'s null-space component: non-sparse and at init scale, the paper's
//! "non-sparse practice"); for an over-determined one it is the least-squares solution.
//!
//! Fast path: Cholesky of the smaller Gram matrix (`A A^T` or `A^T A`) with one step of
//! iterative refinement; one factorisation serves every right-hand side. When `A` is rank
//! deficient or badly conditioned (the Cholesky factor's diagonal spread exceeds
//! [`GRAM_COND_LIMIT`]) it falls back to a truncated SVD pseudo-inverse, which survives
//! rank deficiency (a plain QR least-squares solve does not).

use crate::gemm::matmul;
use faer::prelude::Solve;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Side};

use super::{mat_values, par};
use crate::alloc_try::Count;

/// Largest accepted `(max diag L / min diag L)^2` of the Gram Cholesky factor, a cheap lower
/// estimate of `cond(A)^2`. Past it, squaring the condition number would cost more than half
/// of f64's digits, so the SVD path runs instead.
pub const GRAM_COND_LIMIT: f64 = 1e10;

/// Below this `(max diag L / min diag L)^2` the first Gram solve is already accurate to about
/// `1e-16 * 1e4` relative and the refinement step (a third of the solve's cost) is skipped.
pub const REFINE_LIMIT: f64 = 1e4;

/// Singular values below `max(m, n) * eps * s_max` count as zero in the pseudo-inverse
/// (the usual numerical-rank threshold, as in LAPACK's `gelsd` default).
fn svd_tolerance(m: usize, n: usize, s_max: f64) -> f64 {
    m.max(n) as f64 * f64::EPSILON * s_max
}

/// Which factorisation produced a solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolveMethod {
    /// Cholesky of the Gram matrix with one refinement step.
    GramCholesky,
    /// Truncated SVD pseudo-inverse.
    Svd,
}

/// `X = X0 + A^+ (B - A X0)`, in place: `x` holds `X0` on entry and `X` on return (any
/// layout; the corrections are accumulated into it directly).
///
/// `gram`, when given, must be `A A^T` if `A` has no more rows than columns and `A^T A`
/// otherwise (callers that know `A`'s structure compute it cheaply).
///
/// # Panics
/// If the shapes disagree (a bug in the caller).
#[track_caller]
pub fn closest(
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    mut x: MatMut<'_, f64>,
    gram: Option<Mat<f64>>,
) -> SolveMethod {
    let (m, n) = (a.nrows(), a.ncols());
    assert!(
        b.nrows() == m && x.nrows() == n && b.ncols() == x.ncols(),
        "closest: shape mismatch"
    );
    let residual = |x: MatRef<'_, f64>| {
        let mut r = b.to_owned();
        matmul(r.as_mut(), Accum::Add, a, x, -1.0, par());
        r
    };
    let r = residual(x.rb());
    let under = m <= n;
    let gram = gram.unwrap_or_else(|| {
        if under {
            product(a, a.transpose())
        } else {
            product(a.transpose(), a)
        }
    });
    if let Ok(llt) = gram.llt(Side::Lower) {
        let spread = diag_spread(llt.L());
        if spread < GRAM_COND_LIMIT {
            // x += A^+ r via the Gram factorisation.
            let correct = |mut x: MatMut<'_, f64>, r: &Mat<f64>| {
                if under {
                    matmul(
                        x,
                        Accum::Add,
                        a.transpose(),
                        llt.solve(r).as_ref(),
                        1.0,
                        par(),
                    );
                } else {
                    x += llt.solve(product(a.transpose(), r.as_ref()));
                }
            };
            correct(x.rb_mut(), &r);
            if spread >= REFINE_LIMIT {
                // Iterative refinement: correct with the residual of the corrected solution.
                let r2 = residual(x.rb());
                correct(x.rb_mut(), &r2);
            }
            return SolveMethod::GramCholesky;
        }
    }
    let d = svd_pinv_apply(a, r.as_ref());
    x += &d;
    SolveMethod::Svd
}

/// An upper bound of the `f64` values [`closest`] holds at once for an `m x n` system with `r`
/// right-hand sides, its Gram matrix included (passed in or formed): the residual and the
/// Gram matrix, then either the Cholesky factor (its factorisation's scratch is a few
/// columns) with the solves and the refinement's residual, or the thin SVD and the two
/// products of the pseudo-inverse. faer's thin SVD (its `U`, `V` and workspace) is bounded
/// by `(m + n) s + 2 m n + 10 s^2 + 4096` values, `s = min(m, n)`: for faer 0.24 it used at
/// most 70% of that on every shape measured, from `2 x 2` to `1500 x 1500` and `4000 x 8`,
/// at full rank and at rank 1 (its workspace depends on the shape only).
pub(crate) fn closest_workspace(m: Count, n: Count, r: Count) -> Count {
    let s = m.min(n);
    let cholesky = mat_values(s, s) * 2 + mat_values(m, r) * 2 + mat_values(n, r) * 2;
    let svd = (m + n) * s + m * n * 2 + s * s * 10 + 4096;
    let pinv = svd + mat_values(s, r) + mat_values(n, r);
    mat_values(m, r) + mat_values(s, s) + cholesky.max(pinv)
}

/// `(max diag L / min diag L)^2`, a cheap lower estimate of the Gram matrix's condition number
/// (infinite for a zero pivot).
fn diag_spread(l: MatRef<'_, f64>) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for i in 0..l.nrows() {
        let v = l[(i, i)].abs();
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > 0.0 {
        (hi / lo) * (hi / lo)
    } else {
        f64::INFINITY
    }
}

/// `a b` with the solver's parallelism.
fn product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut c = Mat::zeros(a.nrows(), b.ncols());
    matmul(c.as_mut(), Accum::Replace, a, b, 1.0, par());
    c
}

/// `A^+ R` through a thin SVD, singular values under [`svd_tolerance`] dropped.
fn svd_pinv_apply(a: MatRef<'_, f64>, r: MatRef<'_, f64>) -> Mat<f64> {
    let Ok(svd) = a.thin_svd() else {
        // faer's SVD only fails to converge on non-finite input, which callers reject first.
        return Mat::zeros(a.ncols(), r.ncols());
    };
    let s = svd.S().column_vector();
    let k = s.nrows();
    let s_max = if k > 0 { s[0] } else { 0.0 };
    let tol = svd_tolerance(a.nrows(), a.ncols(), s_max);
    let mut t = product(svd.U().transpose(), r);
    for i in 0..k {
        let inv = if s[i] > tol { 1.0 / s[i] } else { 0.0 };
        for j in 0..t.ncols() {
            t[(i, j)] *= inv;
        }
    }
    product(svd.V(), t.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn random(m: usize, n: usize, rng: &mut Rng) -> Mat<f64> {
        Mat::from_fn(m, n, |_, _| rng.normal())
    }

    fn max_abs(m: MatRef<'_, f64>) -> f64 {
        let mut v = 0.0f64;
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                v = v.max(m[(i, j)].abs());
            }
        }
        v
    }

    #[test]
    fn underdetermined_is_exact_and_keeps_init_nullspace() {
        let mut rng = Rng::seed(1);
        let a = random(5, 12, &mut rng);
        let b = random(5, 3, &mut rng);
        let x0 = random(12, 3, &mut rng);
        let mut x = x0.clone();
        let method = closest(a.as_ref(), b.as_ref(), x.as_mut(), None);
        assert_eq!(method, SolveMethod::GramCholesky);
        assert!(max_abs((&a * &x - &b).as_ref()) < 1e-12);
        // x - x0 lies in the row space of A: it is orthogonal to A's null space, i.e.
        // x - x0 = A^T y for some y; check via projection residual.
        let d = &x - &x0;
        let mut y = Mat::<f64>::zeros(5, 3);
        closest(a.transpose(), d.as_ref(), y.as_mut(), None);
        assert!(max_abs((a.transpose() * &y - &d).as_ref()) < 1e-10);
    }

    #[test]
    fn rank_deficient_falls_back_to_svd_and_stays_exact() {
        let mut rng = Rng::seed(2);
        let l = random(6, 2, &mut rng);
        let a = &l * random(2, 9, &mut rng); // rank 2, 6 x 9
        let b = &a * random(9, 2, &mut rng); // consistent
        let x0 = random(9, 2, &mut rng);
        let mut x = x0.clone();
        let method = closest(a.as_ref(), b.as_ref(), x.as_mut(), None);
        assert_eq!(method, SolveMethod::Svd);
        assert!(max_abs((&a * &x - &b).as_ref()) < 1e-10 * max_abs(b.as_ref()));
    }

    #[cfg(feature = "std")]
    #[test]
    fn both_paths_stay_within_the_workspace_bound() {
        use crate::heap_meter::{peak_of, warm_up};
        warm_up();
        let mut rng = Rng::seed(4);
        // (rows, columns, right-hand sides, rank): Cholesky at full rank, the SVD below it.
        for (m, n, r, rank) in [
            (60, 90, 4, 60),
            (90, 60, 4, 60),
            (80, 120, 5, 20),
            (120, 80, 30, 20),
        ] {
            let a = &random(m, rank, &mut rng) * random(rank, n, &mut rng);
            let b = &a * random(n, r, &mut rng);
            let mut x = random(n, r, &mut rng);
            let (method, peak) = peak_of(|| closest(a.as_ref(), b.as_ref(), x.as_mut(), None));
            assert_eq!(method == SolveMethod::Svd, rank < m.min(n));
            let bound = closest_workspace(Count::of(m), Count::of(n), Count::of(r))
                .get()
                .unwrap();
            assert!(peak <= 8 * bound, "{m}x{n}: {peak} > {}", 8 * bound);
        }
    }

    #[test]
    fn overdetermined_is_least_squares() {
        let mut rng = Rng::seed(3);
        let a = random(20, 4, &mut rng);
        let b = random(20, 1, &mut rng);
        let x0 = random(4, 1, &mut rng);
        let mut x = x0.clone();
        closest(a.as_ref(), b.as_ref(), x.as_mut(), None);
        // Normal equations hold: A^T (A x - b) = 0.
        let g = a.transpose() * (&a * &x - &b);
        assert!(max_abs(g.as_ref()) < 1e-10);
    }
}
