//! The crate's matrix products `C = A B` or `C += alpha A B` (forward and backward passes of
//! dense and convolution layers, and the morph solvers' own products; faer's factorisations
//! call faer's GEMM inside).
//!
//! By default they are faer's GEMM. faer packs its operands into buffers sized by the host's
//! caches (about 1.5 MiB of heap per product on an x86 host with a large L2), which on a
//! device with less heap than that is most of its memory. With the `small-heap` feature the
//! products are plain loops that allocate nothing: several times slower on a host, and the
//! heap a training step needs is then what [`crate::train::step_bytes`] counts.

use faer::{Accum, MatMut, MatRef, Par};

use crate::Scalar;

/// `C = alpha A B` (`Accum::Replace`) or `C += alpha A B` (`Accum::Add`).
#[cfg(not(feature = "small-heap"))]
#[inline]
pub(crate) fn matmul<T: Scalar>(
    c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    alpha: T,
    par: Par,
) {
    faer::linalg::matmul::matmul(c, accum, a, b, alpha, par);
}

/// `C = alpha A B` (`Accum::Replace`) or `C += alpha A B` (`Accum::Add`), without allocating.
#[cfg(feature = "small-heap")]
pub(crate) fn matmul<T: Scalar>(
    mut c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    alpha: T,
    _par: Par,
) {
    let (m, n, inner) = (c.nrows(), c.ncols(), a.ncols());
    // The shapes faer's GEMM asserts.
    assert!(a.nrows() == m && b.ncols() == n && b.nrows() == inner);
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for k in 0..inner {
                acc += a[(i, k)] * b[(k, j)];
            }
            let prev = match accum {
                Accum::Replace => T::zero(),
                Accum::Add => c[(i, j)],
            };
            c[(i, j)] = prev + alpha * acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn products_add_and_replace() {
        let a = Mat::<f64>::from_fn(3, 4, |i, j| (i * 4 + j) as f64 - 5.0);
        let b = Mat::<f64>::from_fn(4, 2, |i, j| (i + 2 * j) as f64 * 0.5);
        let mut c = Mat::<f64>::from_fn(3, 2, |i, j| (i + j) as f64);
        let before = c.clone();
        matmul(
            c.as_mut(),
            Accum::Add,
            a.as_ref(),
            b.as_ref(),
            2.0,
            Par::Seq,
        );
        for i in 0..3 {
            for j in 0..2 {
                let want: f64 = (0..4).map(|k| a[(i, k)] * b[(k, j)]).sum::<f64>() * 2.0;
                assert_eq!(c[(i, j)], before[(i, j)] + want);
            }
        }
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            b.as_ref(),
            1.0,
            Par::Seq,
        );
        assert_eq!(
            c[(2, 1)],
            (0..4).map(|k| a[(2, k)] * b[(k, 1)]).sum::<f64>()
        );
    }

    #[test]
    fn transposed_and_sub_views() {
        let a = Mat::<f64>::from_fn(4, 5, |i, j| (i * 5 + j) as f64 * 0.25 - 2.0);
        let b = Mat::<f64>::from_fn(3, 4, |i, j| (i + 3 * j) as f64 - 1.5);
        // C (2 x 3) = rows 1-2 of Aᵀ (a strided, transposed view) times Bᵀ.
        let sub = a.transpose().subrows(1, 2);
        let mut c = Mat::<f64>::zeros(2, 3);
        matmul(
            c.as_mut(),
            Accum::Replace,
            sub,
            b.transpose(),
            1.0,
            Par::Seq,
        );
        for i in 0..2 {
            for j in 0..3 {
                let want: f64 = (0..4).map(|k| a[(k, i + 1)] * b[(j, k)]).sum();
                assert_eq!(c[(i, j)], want);
            }
        }
    }
}
