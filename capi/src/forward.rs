//! `nm_forward`: a batch through the network.

use facade::memory::{forward_bytes, Budget};
use facade::{Network, Tensor};

use crate::model::{model, NmModel};
use crate::ptr;
use crate::status::{guard, Error, NmStatus, Result};

/// The first `n` samples of `net`'s input from `x` (`x_len` floats), copied into a batch;
/// [`NmStatus::ErrArgument`] if `x` holds fewer.
///
/// # Safety
/// `x` points to `x_len` floats.
pub(crate) unsafe fn batch(
    net: &Network<f32>,
    x: *const f32,
    x_len: usize,
    n: usize,
) -> Result<Tensor<f32>> {
    let per = net.input_shape().len();
    let needed = n.checked_mul(per).ok_or_else(|| {
        Error::argument(format_args!("{n} samples of {per} floats overflow size_t"))
    })?;
    // SAFETY: the caller's promise (`x_len` floats); only the first `needed` are read.
    let x = unsafe { ptr::slice(x, x_len, "x") }?;
    let x = x.get(..needed).ok_or_else(|| {
        Error::argument(format_args!(
            "`x` holds {x_len} floats but {n} samples of {per} need {needed}"
        ))
    })?;
    Tensor::new(n, net.input_shape(), x.to_vec())
        .ok_or_else(|| Error::argument("the batch does not fit the input shape"))
}

/// Runs `n` samples through the model: `x` holds them row-major (`n x input_len` floats,
/// each sample NCHW for image inputs), `y` receives `n x output_len` floats (the logits;
/// no softmax). Only the first `n x input_len` floats of `x` are read and the first
/// `n x output_len` of `y` written; `x_len` and `y_len` are the buffers' lengths in floats.
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` if a buffer is too short (nothing is
/// written), a size overflows, or the batch would not fit in memory.
///
/// # Safety
/// `m` is a live model; `x` points to `x_len` floats and `y` to `y_len` writable floats
/// (they may overlap).
#[no_mangle]
pub unsafe extern "C" fn nm_forward(
    m: *const NmModel,
    x: *const f32,
    n: usize,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
) -> NmStatus {
    guard("nm_forward", || {
        // SAFETY: the caller's promise.
        let m = unsafe { model(m, "m") }?;
        if x.is_null() {
            return Err(Error::null("x"));
        }
        if y.is_null() {
            return Err(Error::null("y"));
        }
        let classes = m.net.output_shape().len();
        let y_needed = n.checked_mul(classes).filter(|&v| v <= y_len);
        let Some(y_needed) = y_needed else {
            return Err(Error::argument(format_args!(
                "`y` holds {y_len} floats but {n} samples of {classes} outputs need more"
            )));
        };
        Budget::new(None)
            .check("the forward pass", forward_bytes(&m.net, n))
            .map_err(Error::argument)?;
        // SAFETY: the caller's promise.
        let x = unsafe { batch(&m.net, x, x_len, n) }?;
        let out = m.net.forward(&x).map_err(Error::argument)?;
        debug_assert_eq!(out.data.len(), y_needed);
        // SAFETY: the caller's promise (`y_len` floats).
        unsafe { ptr::write_all(y, y_len, &out.data, "y") }
    })
}
