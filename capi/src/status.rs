//! Status codes, the thread-local last-error message, and [`guard`]: the wrapper every
//! exported function runs its body in (clears the message, catches panics, turns an
//! [`Error`] into its status and message).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an `nm_` function did. Every function but `nm_last_error` and `nm_model_free` returns
/// one; on anything but `NM_STATUS_OK`, `nm_last_error()` says what went wrong and what to do.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NmStatus {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL.
    ErrNull = 1,
    /// A size, shape, length, index or string is invalid (or the work it asks for would not
    /// fit in memory).
    ErrArgument = 2,
    /// A file could not be read or written.
    ErrIo = 3,
    /// A file is not a valid netmorph model (truncated, corrupt, not written by netmorph).
    ErrModel = 4,
    /// The morph does not apply to the layer, or its child's outputs moved more than the f32
    /// tolerance allows; no child is returned.
    ErrMorph = 5,
    /// A training step failed (the loss became NaN or infinite); the model is unchanged.
    ErrTrain = 6,
    /// A bug in netmorph: a panic was caught at the boundary. The message says where; please
    /// report it. Models passed in are still valid.
    ErrPanic = 7,
}

/// A failure: the status to return and the message `nm_last_error` will give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Error {
    pub(crate) status: NmStatus,
    pub(crate) message: String,
}

impl Error {
    /// `status` with `message`.
    pub(crate) fn new(status: NmStatus, message: impl fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }

    /// [`NmStatus::ErrArgument`].
    pub(crate) fn argument(message: impl fmt::Display) -> Self {
        Self::new(NmStatus::ErrArgument, message)
    }

    /// The same error with `context` and a colon before its message (`layers[2]: ...`).
    pub(crate) fn context(self, context: impl fmt::Display) -> Self {
        Self::new(self.status, format_args!("{context}: {}", self.message))
    }

    /// [`NmStatus::ErrNull`] for the parameter `name`.
    pub(crate) fn null(name: &str) -> Self {
        Self::new(
            NmStatus::ErrNull,
            format_args!("`{name}` is NULL; pass a valid pointer"),
        )
    }
}

/// The `Result` of a function body.
pub(crate) type Result<T> = std::result::Result<T, Error>;

thread_local! {
    /// The message of the last failed call on this thread (empty after a success).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message with an interior NUL would be cut short in C; show it as U+FFFD instead.
    let message = CString::new(message.replace('\0', "\u{fffd}")).unwrap_or_default();
    // `try_with`: during the thread's teardown the slot is gone; the message is then dropped
    // rather than panicking at the boundary.
    let _ = LAST_ERROR.try_with(|cell| *cell.borrow_mut() = message);
}

/// Runs the body of the exported function `function`: clears the last error, catches a
/// panic (as [`NmStatus::ErrPanic`]), and records an error's message prefixed with
/// `function`.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> Result<()>) -> NmStatus {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NmStatus::Ok,
        Ok(Err(e)) => {
            set_last_error(&format!("{function}: {}", e.message));
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            set_last_error(&format!(
                "{function}: internal error, a bug in netmorph ({what}); please report it"
            ));
            NmStatus::ErrPanic
        }
    }
}

/// The message of the last failed `nm_` call on this thread: what went wrong and what to do.
///
/// Never NULL: the empty string when the last call succeeded (or none was made). Every other
/// `nm_` function clears it on entry, so the pointer is valid until the next `nm_` call on
/// this thread (other than `nm_last_error`); copy it to keep it. Owned by the library: do not
/// free it.
#[no_mangle]
pub extern "C" fn nm_last_error() -> *const c_char {
    // The CString lives in this thread's slot until the next set_last_error replaces it; during
    // the thread's teardown there is none, and a static empty string stands in.
    LAST_ERROR
        .try_with(|cell| cell.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last() -> String {
        // SAFETY: nm_last_error never returns NULL and the string lives until the next call.
        unsafe { CStr::from_ptr(nm_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_is_caught_and_reported() {
        let status = guard("nm_test", || panic!("boom at {}", 42));
        assert_eq!(status, NmStatus::ErrPanic);
        let message = last();
        assert!(
            message.starts_with("nm_test: internal error") && message.contains("boom at 42"),
            "{message}"
        );
        let status = guard("nm_test", || std::panic::panic_any(7u8));
        assert_eq!(status, NmStatus::ErrPanic);
        assert!(last().contains("without a message"), "{}", last());
    }

    #[test]
    fn success_clears_the_message_and_errors_keep_their_status() {
        let status = guard("nm_test", || Err(Error::null("x")));
        assert_eq!(status, NmStatus::ErrNull);
        assert_eq!(last(), "nm_test: `x` is NULL; pass a valid pointer");
        assert_eq!(guard("nm_test", || Ok(())), NmStatus::Ok);
        assert_eq!(last(), "");
        guard("nm_test", || Err(Error::argument("a\0b")));
        assert_eq!(last(), "nm_test: a\u{fffd}b");
    }
}
