//! [`NmModel`]: making one (`nm_model_new_mlp`, `nm_model_load`), saving and freeing it,
//! and its sizes.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use facade::arch::{Arch, MAX_LAYERS};
use facade::data::InputScale;
use facade::memory::{values_bytes, Budget};
use facade::model_file::{self, ModelFileError};
use facade::train::Sgd;
use facade::{Network, Rng, Shape};

use crate::ptr::{self, Out};
use crate::status::{guard, Error, NmStatus, Result};

/// An f32 network, the scale of the inputs it was trained on, and its SGD state. Opaque to
/// C: made by `nm_model_new`, `nm_model_new_mlp`, `nm_model_load` or a morph, freed by
/// `nm_model_free`.
#[derive(Debug)]
pub struct NmModel {
    pub(crate) net: Network<f32>,
    /// Stored in the file on save (`docs/format.md`); a morph's child inherits it.
    pub(crate) scale: InputScale,
    /// Momentum and iteration count of `nm_sgd_step`; `None` before the first step. A morph's
    /// child starts without one.
    pub(crate) sgd: Option<Sgd<f32>>,
}

impl NmModel {
    /// A model of `net` with a fresh optimiser.
    pub(crate) fn new(net: Network<f32>, scale: InputScale) -> Self {
        Self {
            net,
            scale,
            sgd: None,
        }
    }
}

/// The model behind `m` (parameter `name`).
///
/// # Safety
/// `m` is NULL or a live model from this library that nothing mutates meanwhile.
pub(crate) unsafe fn model<'a>(m: *const NmModel, name: &str) -> Result<&'a NmModel> {
    // SAFETY: the caller's promise.
    unsafe { m.as_ref() }.ok_or_else(|| Error::null(name))
}

/// The output `out` for a new model, set to NULL at once so that it is NULL on every failure.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
pub(crate) unsafe fn model_out(out: *mut *mut NmModel, name: &str) -> Result<Out<*mut NmModel>> {
    // SAFETY: the caller's promise.
    let out = unsafe { Out::new(out, name) }?;
    out.set(std::ptr::null_mut());
    Ok(out)
}

/// Hands `model` to C through `out`.
pub(crate) fn give(out: Out<*mut NmModel>, model: NmModel) {
    out.set(Box::into_raw(Box::new(model)));
}

/// A path from a C string: its bytes as they are on Unix, UTF-8 elsewhere.
fn path(s: &CStr) -> Result<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        s.to_str()
            .map(PathBuf::from)
            .map_err(|_| Error::argument("`path` is not UTF-8"))
    }
}

/// A model file error as the status C sees: unreadable or unwritable files are
/// [`NmStatus::ErrIo`], everything else [`NmStatus::ErrModel`].
fn file_error(e: ModelFileError) -> Error {
    match e {
        ModelFileError::Io { .. } => Error::new(NmStatus::ErrIo, e),
        _ => Error::new(NmStatus::ErrModel, e),
    }
}

/// Makes a dense network `sizes[0] -> sizes[1] -> ... -> sizes[n_sizes - 1]` with a ReLU
/// P-activation between consecutive dense layers, weights drawn from N(0, 1 / fan_in) with
/// `seed` and zero biases (the architecture `mlp(sizes[1], ..., sizes[n_sizes - 2])` of the
/// command line). Its first layer is a flatten (a no-op on flat inputs), as in every model
/// the command line builds.
///
/// Writes the new model to `*out` (NULL on failure); free it with `nm_model_free`.
///
/// Errors: `NM_STATUS_ERR_NULL` for a NULL `sizes` or `out`; `NM_STATUS_ERR_ARGUMENT` for
/// fewer than two sizes, a zero size, more hidden layers than the command line's limit
/// (1024), or a network too large for memory.
///
/// # Safety
/// `sizes` points to `n_sizes` values; `out` is valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nm_model_new_mlp(
    sizes: *const usize,
    n_sizes: usize,
    seed: u64,
    out: *mut *mut NmModel,
) -> NmStatus {
    guard("nm_model_new_mlp", || {
        // SAFETY (both): the caller's promises.
        let out = unsafe { model_out(out, "out") }?;
        let sizes = unsafe { ptr::slice(sizes, n_sizes, "sizes") }?;
        if sizes.len() < 2 || sizes.len() > MAX_LAYERS + 2 {
            return Err(Error::argument(format_args!(
                "{} sizes given; pass the input size, up to {MAX_LAYERS} hidden widths and the output size",
                sizes.len()
            )));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::argument(format_args!(
                "sizes[{i}] is 0; every layer needs at least one unit"
            )));
        }
        let (input, classes) = (sizes[0], sizes[sizes.len() - 1]);
        let arch = Arch::Mlp(sizes[1..sizes.len() - 1].to_vec());
        let params = arch.param_count(Shape::flat(input), classes);
        Budget::new(None)
            .check(
                "the network's parameters",
                params.and_then(values_bytes::<f32>),
            )
            .map_err(Error::argument)?;
        let net = arch
            .build::<f32>(Shape::flat(input), classes, &mut Rng::seed(seed))
            .map_err(Error::argument)?;
        give(out, NmModel::new(net, InputScale::Standard));
        Ok(())
    })
}

/// Reads a model file (`docs/format.md`). The C API runs networks in f32: a file that stores
/// f64 is converted on load (rounded to the nearest f32), and `nm_model_save` then writes it
/// as f32. The input scale the file records is kept and written back on save.
///
/// Writes the new model to `*out` (NULL on failure); free it with `nm_model_free`.
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_IO` if the file cannot be read (missing, a
/// directory, no permission); `NM_STATUS_ERR_MODEL` if it is not a valid netmorph model file.
///
/// # Safety
/// `path` is a NUL-terminated string (bytes of a path; UTF-8 on non-Unix systems); `out` is
/// valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nm_model_load(path: *const c_char, out: *mut *mut NmModel) -> NmStatus {
    guard("nm_model_load", || {
        // SAFETY (both): the caller's promises.
        let out = unsafe { model_out(out, "out") }?;
        let path = self::path(unsafe { ptr::string(path, "path") }?)?;
        let (net, scale) = model_file::load_scaled::<f32>(&path).map_err(file_error)?;
        give(out, NmModel::new(net, scale));
        Ok(())
    })
}

/// Writes the model to `path` as an f32 model file, atomically (a temporary file beside it,
/// synced and renamed over it: a crash never leaves half a file). The SGD state is not
/// saved.
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_IO` if the file cannot be written (the target
/// is then untouched).
///
/// # Safety
/// `m` is a live model; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn nm_model_save(m: *const NmModel, path: *const c_char) -> NmStatus {
    guard("nm_model_save", || {
        // SAFETY (both): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        let path = self::path(unsafe { ptr::string(path, "path") }?)?;
        model_file::save_scaled(&m.net, m.scale, &path).map_err(file_error)
    })
}

/// Frees a model and everything it owns (pointers from `nm_model_layer` into it become
/// invalid). NULL is allowed and does nothing.
///
/// # Safety
/// `m` is NULL or a model from this library that is not used again (freeing twice is
/// undefined behaviour).
#[no_mangle]
pub unsafe extern "C" fn nm_model_free(m: *mut NmModel) {
    if !m.is_null() {
        // Dropping a network cannot panic, so no guard is needed (and the last error is
        // left alone).
        // SAFETY: `m` came from Box::into_raw in `give` and is freed once (the caller's
        // promise).
        drop(unsafe { Box::from_raw(m) });
    }
}

/// Shared body of the size getters.
///
/// # Safety
/// As the getters.
unsafe fn size(
    function: &str,
    m: *const NmModel,
    out: *mut usize,
    get: impl FnOnce(&NmModel) -> usize,
) -> NmStatus {
    guard(function, || {
        // SAFETY (both): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        let out = unsafe { Out::new(out, "out") }?;
        out.set(get(m));
        Ok(())
    })
}

/// Writes the number of floats one input sample holds (channels x height x width) to `*out`.
///
/// # Safety
/// `m` is a live model; `out` is valid for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_input_len(m: *const NmModel, out: *mut usize) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe { size("nm_model_input_len", m, out, |m| m.net.input_shape().len()) }
}

/// Writes the number of floats the model outputs per sample (the classes) to `*out`.
///
/// # Safety
/// `m` is a live model; `out` is valid for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_output_len(m: *const NmModel, out: *mut usize) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        size("nm_model_output_len", m, out, |m| {
            m.net.output_shape().len()
        })
    }
}

/// Writes the number of learnable parameters (weights, biases and P-activation `a`) to
/// `*out`.
///
/// # Safety
/// `m` is a live model; `out` is valid for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_param_count(m: *const NmModel, out: *mut usize) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe { size("nm_model_param_count", m, out, |m| m.net.param_count()) }
}

/// Writes the shape of one input sample, NCHW without the N: channels, height and width
/// (a flat input of `n` features is `n x 1 x 1`).
///
/// # Safety
/// `m` is a live model; `channels`, `height` and `width` are each valid for writing one
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_input_shape(
    m: *const NmModel,
    channels: *mut usize,
    height: *mut usize,
    width: *mut usize,
) -> NmStatus {
    guard("nm_model_input_shape", || {
        // SAFETY (all): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        let c = unsafe { Out::new(channels, "channels") }?;
        let h = unsafe { Out::new(height, "height") }?;
        let w = unsafe { Out::new(width, "width") }?;
        let s = m.net.input_shape();
        c.set(s.c);
        h.set(s.h);
        w.set(s.w);
        Ok(())
    })
}
