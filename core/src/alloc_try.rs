//! Fallible allocation for buffers whose size the user controls (a layer's output for a batch,
//! a morph's child kernels, a solver's workspace): `try_reserve_exact` instead of the aborting
//! `vec!`, so a size the allocator cannot provide becomes an error naming the bytes asked for.
//!
//! The solvers' factorisations allocate inside faer, which has no fallible interface; for them
//! [`probe`] asks the allocator once for an upper bound of the whole workspace (see
//! [`crate::morph::plan::MorphOp::cost`]) before any of it is used.

use alloc::vec::Vec;
use core::mem::size_of;
use core::ops::{Add, Mul};

/// An allocation of `bytes` bytes failed (`usize::MAX` when the byte count itself overflows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AllocError {
    /// Bytes requested.
    pub(crate) bytes: usize,
}

/// An empty vector with room for exactly `len` values.
pub(crate) fn with_capacity<T>(len: usize) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| AllocError {
        bytes: len.saturating_mul(size_of::<T>()),
    })?;
    Ok(v)
}

/// `len` copies of `value`.
pub(crate) fn filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>, AllocError> {
    let mut v = with_capacity(len)?;
    v.resize(len, value);
    Ok(v)
}

/// A copy of `src`.
pub(crate) fn copied<T: Copy>(src: &[T]) -> Result<Vec<T>, AllocError> {
    let mut v = with_capacity(src.len())?;
    v.extend_from_slice(src);
    Ok(v)
}

/// The values of `iter`, which yields exactly `len` of them, in a vector of that capacity.
pub(crate) fn collected<T>(
    len: usize,
    iter: impl Iterator<Item = T>,
) -> Result<Vec<T>, AllocError> {
    let mut v = with_capacity(len)?;
    v.extend(iter);
    Ok(v)
}

/// Asks the allocator for `bytes` at once and gives them back: a request it cannot serve
/// becomes an error before a computation that allocates up to that much inside a library
/// without a fallible interface (faer) starts. Nothing is written, so with overcommitting
/// allocators the probe costs no memory.
pub(crate) fn probe(bytes: usize) -> Result<(), AllocError> {
    // The test allocator measures what a computation holds; a probe holds nothing.
    #[cfg(all(test, feature = "std"))]
    if crate::heap_meter::measuring() {
        return Ok(());
    }
    with_capacity::<u8>(bytes).map(drop)
}

/// `factors[0] * factors[1] * ...`, or `None` on overflow.
pub(crate) fn product(factors: &[usize]) -> Option<usize> {
    factors.iter().try_fold(1usize, |p, f| p.checked_mul(*f))
}

/// A count (of values or bytes) computed with overflow checks: `+`, `*` and [`Count::max`]
/// carry an overflow through to [`Count::get`], so long size formulas read as formulas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Count(Option<usize>);

impl Count {
    /// The count `n`.
    pub(crate) const fn of(n: usize) -> Self {
        Self(Some(n))
    }

    /// The value, or `None` if a step overflowed `usize`.
    pub(crate) fn get(self) -> Option<usize> {
        self.0
    }

    /// The larger of two counts (overflowed if either is).
    pub(crate) fn max(self, other: impl Into<Self>) -> Self {
        match (self.0, other.into().0) {
            (Some(a), Some(b)) => Self(Some(a.max(b))),
            _ => Self(None),
        }
    }

    /// The smaller of two counts (overflowed if either is).
    pub(crate) fn min(self, other: impl Into<Self>) -> Self {
        match (self.0, other.into().0) {
            (Some(a), Some(b)) => Self(Some(a.min(b))),
            _ => Self(None),
        }
    }

    /// `self - n`, saturating at zero (removed parameters: never more than were counted).
    pub(crate) fn less(self, n: impl Into<Self>) -> Self {
        match (self.0, n.into().0) {
            (Some(a), Some(b)) => Self(Some(a.saturating_sub(b))),
            _ => Self(None),
        }
    }
}

impl From<usize> for Count {
    fn from(n: usize) -> Self {
        Self::of(n)
    }
}

/// `None` is an overflowed count.
impl From<Option<usize>> for Count {
    fn from(n: Option<usize>) -> Self {
        Self(n)
    }
}

impl<R: Into<Count>> Add<R> for Count {
    type Output = Self;
    fn add(self, rhs: R) -> Self {
        Self(self.0.zip(rhs.into().0).and_then(|(a, b)| a.checked_add(b)))
    }
}

impl<R: Into<Count>> Mul<R> for Count {
    type Output = Self;
    fn mul(self, rhs: R) -> Self {
        Self(self.0.zip(rhs.into().0).and_then(|(a, b)| a.checked_mul(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_fail_with_their_byte_count() {
        // Past isize::MAX bytes: refused before the allocator is asked.
        let e = with_capacity::<f64>(usize::MAX / 16).unwrap_err();
        assert_eq!(e.bytes, (usize::MAX / 16) * 8);
        assert_eq!(filled(usize::MAX, 0u32).unwrap_err().bytes, usize::MAX);
        assert!(probe(usize::MAX).is_err());
        assert_eq!(filled(3, 1.5f32).unwrap(), [1.5; 3]);
        assert_eq!(copied(&[1, 2]).unwrap(), [1, 2]);
        assert_eq!(collected(2, 0..2).unwrap(), [0, 1]);
        assert!(probe(1 << 10).is_ok());
    }

    #[test]
    fn checked_products_and_counts() {
        assert_eq!(product(&[2, 3, 4]), Some(24));
        assert_eq!(product(&[]), Some(1));
        assert_eq!(product(&[1 << 40, 1 << 30]), None);
        assert_eq!((Count::of(2) * 3 + 4).get(), Some(10));
        assert_eq!((Count::of(usize::MAX) + 1).get(), None);
        // An overflow survives later steps, even ones that would shrink the value.
        assert_eq!((Count::of(1 << 40) * (1 << 30)).max(1).less(5).get(), None);
        assert_eq!(Count::of(3).max(7).less(9).get(), Some(0));
    }
}
