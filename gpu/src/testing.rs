//! For test suites that run on a GPU where there is one, and must not pass silently where
//! there is none in CI.

use crate::{AdapterChoice, Gpu, Real};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The default adapter; `None`, after printing that `test` skipped, where there is none and
/// the environment variable `CI` is not `true`.
///
/// # Panics
/// Under `CI=true` when no adapter opens: CI installs one (Mesa's lavapipe at least), so a
/// missing adapter there is a failure, not a skip.
///
/// # Examples
/// ```
/// let Some(gpu) = netmorph_gpu::testing::adapter_or_skip("example") else { return };
/// assert!(!gpu.name().is_empty());
/// ```
pub fn adapter_or_skip(test: &str) -> Option<Gpu> {
    match Gpu::open(&AdapterChoice::Default) {
        Ok(gpu) => Some(gpu),
        Err(e) if in_ci() => {
            panic!("{test}: CI=true needs a GPU adapter (Mesa's lavapipe at least): {e}")
        }
        Err(e) => {
            eprintln!("{test}: skipped, no GPU: {e}");
            None
        }
    }
}

/// Whether `gpu` runs kernels in `T`; `false`, after printing that `test` skipped, where it
/// does not and `CI` is not `true`.
///
/// # Panics
/// Under `CI=true` when `gpu` does not run `T`: CI's adapter (lavapipe) has f64, so the f64
/// checks must not pass there by skipping.
///
/// # Examples
/// ```
/// let Some(gpu) = netmorph_gpu::testing::adapter_or_skip("example") else { return };
/// if netmorph_gpu::testing::supports_or_skip::<f64>(&gpu, "example") {
///     assert!(gpu.supports::<f64>());
/// }
/// ```
pub fn supports_or_skip<T: Real>(gpu: &Gpu, test: &str) -> bool {
    if gpu.supports::<T>() {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: CI=true needs {} kernels (Vulkan with {:?}), and {} has none",
        T::NAME,
        T::FEATURES,
        gpu.name()
    );
    eprintln!("{test}: skipped, {} has no {} kernels", gpu.name(), T::NAME);
    false
}
