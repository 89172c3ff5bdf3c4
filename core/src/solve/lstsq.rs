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
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef};

use super::factor::{pinv_apply, Cholesky};
use super::{mat_values, par};
use crate::alloc_try::Count;
use crate::Scalar;

/// Largest accepted `(max diag L / min diag L)^2` of the Gram Cholesky factor in `f64`, a
/// cheap lower estimate of `cond(A)^2`. Past it, squaring the condition number would cost
/// more than half of f64's digits, so the SVD path runs instead.
pub const GRAM_COND_LIMIT: f64 = 1e10;

/// Below this `(max diag L / min diag L)^2` the first `f64` Gram solve is already accurate to
/// about `1e-16 * 1e4` relative and the refinement step (a third of the solve's cost) is
/// skipped.
pub const REFINE_LIMIT: f64 = 1e4;

/// [`GRAM_COND_LIMIT`] and [`REFINE_LIMIT`] for a solve in `F`. In `f32` (7 digits) the
/// Gram path is taken up to `cond(A)^2 = 1e4` and always refined: one refinement step
/// recovers the digits the squared condition number costs while `cond(A)^2 eps` stays well
/// under 1.
fn limits<F: Scalar>() -> (f64, f64) {
    if F::epsilon().as_f64() > 1e-10 {
        (1e4, 0.0)
    } else {
        (GRAM_COND_LIMIT, REFINE_LIMIT)
    }
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
/// layout; the corrections are accumulated into it directly). Runs in `F` (`f32` or `f64`).
///
/// `gram`, when given, must be `A A^T` if `A` has no more rows than columns and `A^T A`
/// otherwise (callers that know `A`'s structure compute it cheaply).
///
/// # Panics
/// If the shapes disagree (a bug in the caller).
#[track_caller]
pub fn closest<F: Scalar>(
    a: MatRef<'_, F>,
    b: MatRef<'_, F>,
    mut x: MatMut<'_, F>,
    gram: Option<Mat<F>>,
) -> SolveMethod {
    let (m, n) = (a.nrows(), a.ncols());
    assert!(
        b.nrows() == m && x.nrows() == n && b.ncols() == x.ncols(),
        "closest: shape mismatch"
    );
    let residual = |x: MatRef<'_, F>| {
        let mut r = b.to_owned();
        matmul(r.as_mut(), Accum::Add, a, x, -F::one(), par());
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
    let (cond_limit, refine_limit) = limits::<F>();
    if let Some(llt) = Cholesky::new(gram) {
        let spread = llt.spread();
        if spread < cond_limit {
            // x += A^+ r via the Gram factorisation.
            let correct = |mut x: MatMut<'_, F>, r: &Mat<F>| {
                if under {
                    matmul(
                        x,
                        Accum::Add,
                        a.transpose(),
                        llt.solve(r.as_ref()).as_ref(),
                        F::one(),
                        par(),
                    );
                } else {
                    x += llt.solve(product(a.transpose(), r.as_ref()).as_ref());
                }
            };
            correct(x.rb_mut(), &r);
            if spread >= refine_limit {
                // Iterative refinement: correct with the residual of the corrected solution.
                let r2 = residual(x.rb());
                correct(x.rb_mut(), &r2);
            }
            return SolveMethod::GramCholesky;
        }
    }
    let d = pinv_apply(a, r.as_ref());
    x += &d;
    SolveMethod::Svd
}

/// An upper bound of the values (of the solve's scalar) [`closest`] holds at once for an
/// `m x n` system with `r` right-hand sides, its Gram matrix included (passed in or formed):
/// the residual and the Gram matrix, then either the Cholesky factor (faer's factorisation
/// has a few columns of scratch; the `small-heap` one works in place) with the solves and the
/// refinement's residual, or the thin SVD and the two products of the pseudo-inverse.
///
/// faer's thin SVD (its `U`, `V` and workspace) is bounded by
/// `(m + n) s + 2 m n + 10 s^2 + 4096` values, `s = min(m, n)`: for faer 0.24 it used at most
/// 70% of that on every shape measured, from `2 x 2` to `1500 x 1500` and `4000 x 8`, at full
/// rank and at rank 1 (its workspace depends on the shape only). The `small-heap` Jacobi SVD
/// holds the rotated copy of `A`, `V` and the singular values.
pub(crate) fn closest_workspace<F: Scalar>(m: Count, n: Count, r: Count) -> Count {
    let s = m.min(n);
    let mat_values = mat_values::<F>;
    let cholesky = mat_values(s, s) * 2 + mat_values(m, r) * 2 + mat_values(n, r) * 2;
    let svd = if cfg!(feature = "small-heap") {
        mat_values(m.max(n), s) + mat_values(s, s) + s
    } else {
        (m + n) * s + m * n * 2 + s * s * 10 + 4096
    };
    let pinv = svd + mat_values(s, r) + mat_values(n, r);
    mat_values(m, r) + mat_values(s, s) + cholesky.max(pinv)
}

/// `a b` with the solver's parallelism.
fn product<F: Scalar>(a: MatRef<'_, F>, b: MatRef<'_, F>) -> Mat<F> {
    let mut c = Mat::zeros(a.nrows(), b.ncols());
    matmul(c.as_mut(), Accum::Replace, a, b, F::one(), par());
    c
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
            let bound = closest_workspace::<f64>(Count::of(m), Count::of(n), Count::of(r))
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
