//! Sums over long runs of values (bias gradients, P-activation `a` gradients), kept in eight
//! interleaved partial sums: the additions are independent, so they pipeline (and vectorise)
//! instead of each waiting for the one before.

use crate::Scalar;

/// `sum_i f(x_i, y_i)` over the common length of `xs` and `ys`.
#[inline]
pub(crate) fn sum_by<T: Scalar>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> T) -> T {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut acc = [T::zero(); 8];
    let (xc, yc) = (xs.chunks_exact(8), ys.chunks_exact(8));
    let tail = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .fold(T::zero(), |a, (x, y)| a + f(*x, *y));
    if n < 8 {
        return tail;
    }
    for (x8, y8) in xc.zip(yc) {
        for ((a, x), y) in acc.iter_mut().zip(x8).zip(y8) {
            *a += f(*x, *y);
        }
    }
    acc.iter().fold(tail, |a, b| a + *b)
}

/// `sum_i x_i`.
#[inline]
pub(crate) fn sum<T: Scalar>(xs: &[T]) -> T {
    sum_by(xs, xs, |x, _| x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_a_running_sum_on_integers() {
        for n in [0usize, 1, 7, 8, 9, 23, 64] {
            let xs: alloc::vec::Vec<f64> = (0..n).map(|i| i as f64).collect();
            let ys: alloc::vec::Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
            assert_eq!(sum(&xs), (0..n).sum::<usize>() as f64);
            let dot: usize = (0..n).map(|i| i * (i % 3)).sum();
            assert_eq!(sum_by(&xs, &ys, |x, y| x * y), dot as f64);
        }
    }
}
