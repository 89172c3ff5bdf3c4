//! Layer introspection: enough for C code to run its own forward pass over the model's
//! parameters (`nm_model_layer_count`, `nm_model_layer`).

use std::ffi::c_int;

use facade::{ActKind, Layer};

use crate::model::{model, NmModel};
use crate::ptr::Out;
use crate::status::{guard, Error, NmStatus, Result};

/// The type of a top-level layer (`docs/format.md` describes each).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NmLayerKind {
    /// `y = W x + b` on a flat blob; `weight` is `[out, in]` row-major.
    Dense = 0,
    /// Square-kernel cross-correlation with stride and symmetric zero padding; `weight` is
    /// `[out, in, kernel, kernel]` row-major.
    Conv2d = 1,
    /// Per-channel P-activation `(1 - a) phi(x) + a x`, `phi` = `function`.
    Activation = 2,
    /// Max pooling over unpadded `kernel x kernel` windows.
    Maxpool = 3,
    /// Average pooling over unpadded windows (clipped windows divide by their clipped size).
    Avgpool = 4,
    /// `(c, h, w) -> c h w`, channel-major.
    Flatten = 5,
    /// Parallel branches summed (a stacked subnet); its branches are not introspectable,
    /// run such a model with `nm_forward`.
    ParallelSum = 6,
}

/// The base function `phi` of a P-activation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NmActivation {
    /// `max(x, 0)`.
    Relu = 0,
    /// `tanh(x)`.
    Tanh = 1,
    /// `1 / (1 + exp(-x))`.
    Sigmoid = 2,
    /// `x`.
    Identity = 3,
}

impl NmActivation {
    /// The activation with C value `code`; functions take activations as `int` so that an
    /// out-of-range value is an error, not undefined behaviour.
    pub(crate) fn from_code(code: c_int) -> Result<ActKind> {
        Ok(match code {
            0 => ActKind::Relu,
            1 => ActKind::Tanh,
            2 => ActKind::Sigmoid,
            3 => ActKind::Identity,
            _ => {
                return Err(Error::argument(format_args!(
                "activation {code} is not an NmActivation (0 relu, 1 tanh, 2 sigmoid, 3 identity)"
            )))
            }
        })
    }

    fn of(kind: ActKind) -> Self {
        match kind {
            ActKind::Relu => Self::Relu,
            ActKind::Tanh => Self::Tanh,
            ActKind::Sigmoid => Self::Sigmoid,
            ActKind::Identity => Self::Identity,
        }
    }
}

/// One top-level layer. Fields a kind does not use are 0 (pointers NULL, `function`
/// IDENTITY). The pointers borrow the model's parameters: valid until the model is changed by
/// `nm_sgd_step` or freed; read them, never write or free them. A pointer is NULL exactly when
/// its length is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NmLayerInfo {
    /// The layer's type.
    pub kind: NmLayerKind,
    /// DENSE, CONV2D: output channels (features); ACTIVATION: channels.
    pub out: usize,
    /// DENSE, CONV2D: input channels (features); ACTIVATION: channels.
    pub r#in: usize,
    /// CONV2D, MAXPOOL, AVGPOOL: the square window's size; DENSE: 1.
    pub kernel: usize,
    /// CONV2D, MAXPOOL, AVGPOOL: the stride on both axes; DENSE: 1.
    pub stride: usize,
    /// CONV2D: zero padding on every side.
    pub padding: usize,
    /// MAXPOOL, AVGPOOL: whether the output size rounds up (`ceil((h - k) / s) + 1`, less one
    /// when that last window would start at or past the input's end) rather than down.
    pub ceil_mode: bool,
    /// ACTIVATION: the base function `phi`.
    pub function: NmActivation,
    /// DENSE `[out, in]`, CONV2D `[out, in, kernel, kernel]`, row-major.
    pub weight: *const f32,
    /// Floats at `weight`.
    pub weight_len: usize,
    /// DENSE, CONV2D: `[out]`.
    pub bias: *const f32,
    /// Floats at `bias`.
    pub bias_len: usize,
    /// ACTIVATION: the per-channel `a` of `(1 - a) phi(x) + a x` (`[channels]`).
    pub a: *const f32,
    /// Floats at `a`.
    pub a_len: usize,
}

/// A pointer to `values`, NULL when empty.
fn borrowed(values: &[f32]) -> (*const f32, usize) {
    if values.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (values.as_ptr(), values.len())
    }
}

impl NmLayerInfo {
    fn of(layer: &Layer<f32>) -> Self {
        let mut info = Self {
            kind: NmLayerKind::Flatten,
            out: 0,
            r#in: 0,
            kernel: 0,
            stride: 0,
            padding: 0,
            ceil_mode: false,
            function: NmActivation::Identity,
            weight: std::ptr::null(),
            weight_len: 0,
            bias: std::ptr::null(),
            bias_len: 0,
            a: std::ptr::null(),
            a_len: 0,
        };
        if let Some(k) = layer.kernel() {
            (info.out, info.r#in, info.kernel, info.stride) = (k.out, k.inp, k.k, 1);
            (info.weight, info.weight_len) = borrowed(&k.weight);
            (info.bias, info.bias_len) = borrowed(&k.bias);
        }
        match layer {
            Layer::Dense(_) => info.kind = NmLayerKind::Dense,
            Layer::Conv2d(c) => {
                info.kind = NmLayerKind::Conv2d;
                (info.stride, info.padding) = (c.stride, c.pad);
            }
            Layer::Activation(p) => {
                info.kind = NmLayerKind::Activation;
                info.function = NmActivation::of(p.kind);
                (info.out, info.r#in) = (p.a.len(), p.a.len());
                (info.a, info.a_len) = borrowed(&p.a);
            }
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                info.kind = if matches!(layer, Layer::MaxPool2d(_)) {
                    NmLayerKind::Maxpool
                } else {
                    NmLayerKind::Avgpool
                };
                (info.kernel, info.stride, info.ceil_mode) = (p.k, p.stride, p.ceil);
            }
            Layer::Flatten => info.kind = NmLayerKind::Flatten,
            Layer::ParallelSum(_) => info.kind = NmLayerKind::ParallelSum,
        }
        info
    }
}

/// Writes the number of top-level layers to `*n` (activations, pooling and flatten layers
/// count, as in the command line's layer paths).
///
/// # Safety
/// `m` is a live model; `n` is valid for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_layer_count(m: *const NmModel, n: *mut usize) -> NmStatus {
    guard("nm_model_layer_count", || {
        // SAFETY (both): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        unsafe { Out::new(n, "n") }?.set(m.net.layers().len());
        Ok(())
    })
}

/// Describes top-level layer `i` in `*info` (see `NmLayerInfo` for which fields each kind
/// sets and how long its pointers stay valid).
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` if `i` is not below the layer count.
///
/// # Safety
/// `m` is a live model; `info` is valid for writing one `NmLayerInfo`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_layer(
    m: *const NmModel,
    i: usize,
    info: *mut NmLayerInfo,
) -> NmStatus {
    guard("nm_model_layer", || {
        // SAFETY (both): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        let info = unsafe { Out::new(info, "info") }?;
        let layers = m.net.layers();
        let layer = layers.get(i).ok_or_else(|| {
            Error::argument(format_args!(
                "layer {i} does not exist; the model has {} layers",
                layers.len()
            ))
        })?;
        info.set(NmLayerInfo::of(layer));
        Ok(())
    })
}
