//! Helpers of the GPU tests.

use netmorph_core::{Rng, Scalar};
use netmorph_gpu::Gpu;

/// The default adapter, or a skip outside CI.
pub fn gpu(test: &str) -> Option<Gpu> {
    netmorph_gpu::testing::adapter_or_skip(test)
}

/// `n` values uniform in `[-1, -0.1] u [0.1, 1]`: random and never zero.
pub fn values<T: Scalar>(rng: &mut Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| {
            let u = rng.uniform() * 2.0 - 1.0;
            T::of_f64(u.signum() * (0.1 + 0.9 * u.abs()))
        })
        .collect()
}

/// `max |got - want| / max |want|` (norm-wise relative error; `max |got|` when `want` is all
/// zeros), and that `got` has no NaN.
pub fn relative_error<T: Scalar>(got: &[T], want: &[T]) -> f64 {
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().all(|v| v.is_finite()),
        "unwritten (NaN) or infinite output"
    );
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((g.as_f64() - w.as_f64()).abs()));
    // An all-zero reference (the gradient of an identity activation's `a`) needs zeros.
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}
