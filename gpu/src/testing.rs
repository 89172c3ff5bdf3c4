//! For test suites that run on a GPU where there is one, and must not pass silently where
//! there is none in CI.

use crate::{AdapterChoice, Gpu};

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
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: CI=true needs a GPU adapter (Mesa's lavapipe at least): {e}")
        }
        Err(e) => {
            eprintln!("{test}: skipped, no GPU: {e}");
            None
        }
    }
}
