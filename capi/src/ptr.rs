//! Checked views of the caller's pointers: NULL is [`NmStatus::ErrNull`], a length that no
//! buffer can have is [`NmStatus::ErrArgument`]. Outputs are written through raw pointers
//! only (never a Rust reference to caller memory), so an output may alias an input.
//!
//! [`NmStatus::ErrNull`]: crate::NmStatus::ErrNull
//! [`NmStatus::ErrArgument`]: crate::NmStatus::ErrArgument

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use crate::status::{Error, Result};

/// The `len` values at `p` (parameter `name`).
///
/// # Safety
/// `p` is NULL or points to at least `len` initialised, aligned values that nothing writes
/// while the slice lives.
pub(crate) unsafe fn slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::argument(format_args!(
            "`{name}` cannot hold {len} values: no buffer is that large"
        )));
    }
    // SAFETY: non-null, and the caller guarantees `len` valid values; the byte length fits
    // `isize` (checked above), as `from_raw_parts` requires.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The NUL-terminated string at `p` (parameter `name`).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives as long as the result.
pub(crate) unsafe fn string<'a>(p: *const c_char, name: &str) -> Result<&'a CStr> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    // SAFETY: non-null and NUL-terminated (the caller's promise).
    Ok(unsafe { CStr::from_ptr(p) })
}

/// A checked output location of one `T`.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// The output `p` (parameter `name`).
    ///
    /// # Safety
    /// `p` is NULL or valid and aligned for writing one `T` while the result lives.
    pub(crate) unsafe fn new(p: *mut T, name: &str) -> Result<Self> {
        NonNull::new(p).map(Self).ok_or_else(|| Error::null(name))
    }

    /// The optional output `p`: `None` when it is NULL.
    ///
    /// # Safety
    /// `p` is NULL or valid and aligned for writing one `T` while the result lives.
    pub(crate) unsafe fn optional(p: *mut T) -> Option<Self> {
        NonNull::new(p).map(Self)
    }

    /// Writes `value` (without reading or dropping what was there).
    pub(crate) fn set(&self, value: T) {
        // SAFETY: `new`'s contract: valid and aligned for writing.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Copies `values` to the caller's buffer `p` of `len` values (parameter `name`).
///
/// # Safety
/// `p` is NULL or valid and aligned for writing `len` values.
pub(crate) unsafe fn write_all<T: Copy>(
    p: *mut T,
    len: usize,
    values: &[T],
    name: &str,
) -> Result<()> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    if values.len() > len {
        return Err(Error::argument(format_args!(
            "`{name}` holds {len} values but {} are needed",
            values.len()
        )));
    }
    // SAFETY: `p` takes `len >= values.len()` values (the caller's promise); `values` is our
    // own buffer, so the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), p, values.len()) };
    Ok(())
}
