//! The three factorisations the solvers use, behind one seam: the Cholesky factor of a Gram
//! matrix (the fast path of [`super::lstsq::closest`]), a pseudo-inverse applied through the
//! SVD (its rank-deficient fallback), and an orthonormal basis of a matrix's columns (the
//! random `1 x 1` factors of [`super::algorithm`]).
//!
//! By default they are faer's: blocked and fast, but faer's factorisations call its GEMM,
//! which packs operands into buffers sized by the host's caches (about 1.3 MiB per product
//! without std). With the `small-heap` feature they are plain loops whose only heap is the
//! matrices the workspace bounds count: an unblocked Cholesky, the one-sided Jacobi SVD
//! (Hestenes 1958; accurate to working precision, and simple enough to need no workspace
//! beyond its two matrices) and Gram-Schmidt applied twice ("twice is enough": Giraud,
//! Langou, Rozloznik 2005). They are cubic like faer's, only without blocking: fine for the
//! layers a device grows, slow for a host's large convolutions.

use faer::{Mat, MatRef};

use crate::Scalar;

/// Singular values below `max(m, n) * eps * s_max` count as zero in the pseudo-inverse (the
/// usual numerical-rank threshold, as in LAPACK's `gelsd` default).
fn svd_tolerance<F: Scalar>(m: usize, n: usize, s_max: F) -> F {
    F::of_f64(m.max(n) as f64) * F::epsilon() * s_max
}

/// `(max diag L / min diag L)^2` of a triangular factor, a cheap lower estimate of the Gram
/// matrix's condition number (infinite for a zero pivot).
fn diag_spread<F: Scalar>(l: MatRef<'_, F>) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for i in 0..l.nrows() {
        let v = l[(i, i)].as_f64().abs();
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > 0.0 {
        (hi / lo) * (hi / lo)
    } else {
        f64::INFINITY
    }
}

/// `A^+ R` from the thin SVD of `A` given as `A = left diag(s) right^T` (either side may be
/// `U` or `V`), singular values under [`svd_tolerance`] dropped.
fn pinv_from_svd<F: Scalar>(
    (m, n): (usize, usize),
    left: MatRef<'_, F>,
    s: &[F],
    right: MatRef<'_, F>,
    r: MatRef<'_, F>,
) -> Mat<F> {
    let s_max = s.iter().fold(F::zero(), |a, v| a.max(*v));
    let tol = svd_tolerance(m, n, s_max);
    // A^+ R = right diag(1 / s) left^T R.
    let mut t = Mat::<F>::zeros(left.ncols(), r.ncols());
    crate::gemm::matmul(
        t.as_mut(),
        faer::Accum::Replace,
        left.transpose(),
        r,
        F::one(),
        super::par(),
    );
    for (i, s) in s.iter().enumerate() {
        let inv = if *s > tol { F::one() / *s } else { F::zero() };
        for j in 0..t.ncols() {
            t[(i, j)] *= inv;
        }
    }
    let mut out = Mat::<F>::zeros(right.nrows(), r.ncols());
    crate::gemm::matmul(
        out.as_mut(),
        faer::Accum::Replace,
        right,
        t.as_ref(),
        F::one(),
        super::par(),
    );
    out
}

#[cfg(not(feature = "small-heap"))]
mod imp {
    use faer::linalg::solvers::Llt;
    use faer::prelude::Solve;
    use faer::{Mat, MatRef, Side};

    use crate::Scalar;

    /// The Cholesky factorisation `G = L L^T` of a symmetric positive definite matrix.
    pub(crate) struct Cholesky<F: Scalar>(Llt<F>);

    impl<F: Scalar> Cholesky<F> {
        /// `None` when `gram` is not numerically positive definite.
        pub(crate) fn new(gram: Mat<F>) -> Option<Self> {
            gram.llt(Side::Lower).ok().map(Self)
        }

        /// See [`super::diag_spread`].
        pub(crate) fn spread(&self) -> f64 {
            super::diag_spread(self.0.L())
        }

        /// `G^-1 R`.
        pub(crate) fn solve(&self, r: MatRef<'_, F>) -> Mat<F> {
            self.0.solve(r)
        }
    }

    /// `A^+ R` through faer's thin SVD.
    pub(crate) fn pinv_apply<F: Scalar>(a: MatRef<'_, F>, r: MatRef<'_, F>) -> Mat<F> {
        let Ok(svd) = a.thin_svd() else {
            // faer's SVD only fails to converge on non-finite input, which callers reject.
            return Mat::zeros(a.ncols(), r.ncols());
        };
        let s = svd.S().column_vector();
        let s: alloc::vec::Vec<F> = (0..s.nrows()).map(|i| s[i]).collect();
        super::pinv_from_svd((a.nrows(), a.ncols()), svd.U(), &s, svd.V(), r)
    }

    /// An orthonormal basis of the columns of `m` (`m` has no more columns than rows), from
    /// faer's QR.
    pub(crate) fn orthonormal_columns<F: Scalar>(m: Mat<F>) -> Mat<F> {
        m.qr().compute_thin_Q()
    }
}

#[cfg(feature = "small-heap")]
mod imp {
    use alloc::vec::Vec;

    use faer::{Mat, MatMut, MatRef};

    use crate::Scalar;

    /// Sweeps of the Jacobi SVD before it stops even if some pair is still not orthogonal to
    /// working precision (it converges quadratically: a handful of sweeps in practice).
    const MAX_SWEEPS: usize = 40;

    /// The Cholesky factorisation `G = L L^T`, `L` stored in the lower triangle of `G`'s
    /// buffer (no other heap).
    pub(crate) struct Cholesky<F: Scalar>(Mat<F>);

    impl<F: Scalar> Cholesky<F> {
        /// `None` when a pivot is not positive (or not finite).
        pub(crate) fn new(mut g: Mat<F>) -> Option<Self> {
            let n = g.nrows();
            for j in 0..n {
                let mut d = g[(j, j)];
                for k in 0..j {
                    d -= g[(j, k)] * g[(j, k)];
                }
                if !(d > F::zero() && d.is_finite()) {
                    return None;
                }
                let d = d.sqrt();
                g[(j, j)] = d;
                for i in j + 1..n {
                    let mut v = g[(i, j)];
                    for k in 0..j {
                        v -= g[(i, k)] * g[(j, k)];
                    }
                    g[(i, j)] = v / d;
                }
            }
            Some(Self(g))
        }

        /// See [`super::diag_spread`].
        pub(crate) fn spread(&self) -> f64 {
            super::diag_spread(self.0.as_ref())
        }

        /// `G^-1 R`: forward then backward substitution, column by column.
        pub(crate) fn solve(&self, r: MatRef<'_, F>) -> Mat<F> {
            let l = &self.0;
            let n = l.nrows();
            let mut x = r.to_owned();
            for c in 0..x.ncols() {
                for i in 0..n {
                    let mut v = x[(i, c)];
                    for k in 0..i {
                        v -= l[(i, k)] * x[(k, c)];
                    }
                    x[(i, c)] = v / l[(i, i)];
                }
                for i in (0..n).rev() {
                    let mut v = x[(i, c)];
                    for k in i + 1..n {
                        v -= l[(k, i)] * x[(k, c)];
                    }
                    x[(i, c)] = v / l[(i, i)];
                }
            }
            x
        }
    }

    /// Rotates the columns of `w` (and the same rotations into `v`) until every pair is
    /// orthogonal to working precision: then `w = A v` has orthogonal columns whose norms are
    /// `A`'s singular values (one-sided Jacobi).
    fn jacobi<F: Scalar>(mut w: MatMut<'_, F>, mut v: MatMut<'_, F>) {
        let (rows, s) = (w.nrows(), w.ncols());
        let dot = |w: &MatMut<'_, F>, p: usize, q: usize| {
            (0..rows).fold(F::zero(), |acc, i| acc + w[(i, p)] * w[(i, q)])
        };
        for _ in 0..MAX_SWEEPS {
            let mut rotated = false;
            for p in 0..s {
                for q in p + 1..s {
                    let (alpha, beta, gamma) = (dot(&w, p, p), dot(&w, q, q), dot(&w, p, q));
                    if gamma.abs() <= F::epsilon() * (alpha * beta).sqrt() {
                        continue;
                    }
                    rotated = true;
                    // The rotation that zeroes the (p, q) entry of W^T W.
                    let zeta = (beta - alpha) / (gamma + gamma);
                    let t = zeta.signum() / (zeta.abs() + (F::one() + zeta * zeta).sqrt());
                    let c = F::one() / (F::one() + t * t).sqrt();
                    let sn = c * t;
                    let rotate = |m: &mut MatMut<'_, F>| {
                        for i in 0..m.nrows() {
                            let (a, b) = (m[(i, p)], m[(i, q)]);
                            m[(i, p)] = c * a - sn * b;
                            m[(i, q)] = sn * a + c * b;
                        }
                    };
                    rotate(&mut w);
                    rotate(&mut v);
                }
            }
            if !rotated {
                return;
            }
        }
    }

    /// `A^+ R` through the one-sided Jacobi SVD of the taller of `A` and `A^T`.
    pub(crate) fn pinv_apply<F: Scalar>(a: MatRef<'_, F>, r: MatRef<'_, F>) -> Mat<F> {
        let (m, n) = (a.nrows(), a.ncols());
        let tall = m >= n;
        let mut w = if tall {
            a.to_owned()
        } else {
            a.transpose().to_owned()
        };
        let s = w.ncols();
        let mut v = Mat::<F>::identity(s, s);
        jacobi(w.as_mut(), v.as_mut());
        // W = B V with B = A (tall) or A^T (wide): B = U diag(sigma) V^T, U = W diag(1/sigma).
        let sigma: Vec<F> = (0..s)
            .map(|j| {
                (0..w.nrows())
                    .fold(F::zero(), |acc, i| acc + w[(i, j)] * w[(i, j)])
                    .sqrt()
            })
            .collect();
        for (j, sg) in sigma.iter().enumerate() {
            let inv = if *sg > F::zero() {
                F::one() / *sg
            } else {
                F::zero()
            };
            for i in 0..w.nrows() {
                w[(i, j)] *= inv;
            }
        }
        if tall {
            // A = U S V^T.
            super::pinv_from_svd((m, n), w.as_ref(), &sigma, v.as_ref(), r)
        } else {
            // A = V S U^T.
            super::pinv_from_svd((m, n), v.as_ref(), &sigma, w.as_ref(), r)
        }
    }

    /// An orthonormal basis of the columns of `m` (`m` has no more columns than rows):
    /// classical Gram-Schmidt applied twice per column. A column that vanishes (rank
    /// deficiency, which random matrices have with probability zero) is left at zero.
    pub(crate) fn orthonormal_columns<F: Scalar>(mut m: Mat<F>) -> Mat<F> {
        let rows = m.nrows();
        for j in 0..m.ncols() {
            for _ in 0..2 {
                for k in 0..j {
                    let d = (0..rows).fold(F::zero(), |acc, i| acc + m[(i, k)] * m[(i, j)]);
                    for i in 0..rows {
                        let mk = m[(i, k)];
                        m[(i, j)] -= d * mk;
                    }
                }
            }
            let norm = (0..rows)
                .fold(F::zero(), |acc, i| acc + m[(i, j)] * m[(i, j)])
                .sqrt();
            let inv = if norm > F::zero() {
                F::one() / norm
            } else {
                F::zero()
            };
            for i in 0..rows {
                m[(i, j)] *= inv;
            }
        }
        m
    }
}

pub(crate) use imp::{orthonormal_columns, pinv_apply, Cholesky};

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
    fn cholesky_solves_a_gram_system() {
        let mut rng = Rng::seed(1);
        let a = random(7, 12, &mut rng);
        let g = &a * a.transpose();
        let r = random(7, 3, &mut rng);
        let chol = Cholesky::new(g.clone()).unwrap();
        assert!(chol.spread() >= 1.0 && chol.spread().is_finite());
        let x = chol.solve(r.as_ref());
        assert!(max_abs((&g * &x - &r).as_ref()) < 1e-10);
        // Not positive definite: refused.
        let mut bad = g;
        bad[(3, 3)] = -1.0;
        assert!(Cholesky::new(bad).is_none());
    }

    #[test]
    fn pseudo_inverse_of_rank_deficient_matrices_both_orientations() {
        let mut rng = Rng::seed(2);
        for (m, n) in [(9, 6), (6, 9)] {
            // Rank 3.
            let a = &random(m, 3, &mut rng) * random(3, n, &mut rng);
            let b = &a * random(n, 2, &mut rng);
            let x = pinv_apply(a.as_ref(), b.as_ref());
            assert!(
                max_abs((&a * &x - &b).as_ref()) < 1e-10 * max_abs(b.as_ref()),
                "{m}x{n}"
            );
            // The minimum-norm solution lies in A's row space: A^+ A x = x.
            let back = pinv_apply(a.as_ref(), (&a * &x).as_ref());
            assert!(
                max_abs((&back - &x).as_ref()) < 1e-9 * max_abs(x.as_ref()),
                "{m}x{n}"
            );
        }
    }

    #[test]
    fn orthonormal_columns_span_the_input() {
        let mut rng = Rng::seed(3);
        let m = random(10, 6, &mut rng);
        let q = orthonormal_columns(m.clone());
        let eye = q.transpose() * &q;
        assert!(max_abs((&eye - Mat::<f64>::identity(6, 6)).as_ref()) < 1e-13);
        // Same span: projecting m onto q's columns gives m back.
        let proj = &q * (q.transpose() * &m);
        assert!(max_abs((&proj - &m).as_ref()) < 1e-12 * max_abs(m.as_ref()));
    }

    #[test]
    fn works_in_f32() {
        let mut rng = Rng::seed(4);
        let a = Mat::<f32>::from_fn(5, 8, |_, _| rng.normal() as f32);
        let b = Mat::<f32>::from_fn(5, 2, |_, _| rng.normal() as f32);
        let x = pinv_apply(a.as_ref(), b.as_ref());
        let r = &a * &x - &b;
        let err = (0..5)
            .flat_map(|i| (0..2).map(move |j| (i, j)))
            .fold(0.0f32, |m, (i, j)| m.max(r[(i, j)].abs()));
        assert!(err < 1e-5, "{err}");
    }
}
