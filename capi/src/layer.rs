//! Layer introspection: enough for C code to run its own forward pass over the model's
//! parameters (`nm_model_layer_count`, `nm_model_layer`), nested layers included.

use std::ffi::c_int;

use facade::{ActKind, Layer};

use crate::model::{model, NmModel};
use crate::path::{layer_at, layer_path, sequence_at};
use crate::ptr::Out;
use crate::status::{guard, Error, NmStatus, Result};

/// The type of a layer (`docs/format.md` describes each).
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
    /// Parallel branches on the same input, their outputs summed (a stacked subnet): the
    /// branches' layers are at this layer's path followed by a branch index and a layer index.
    ParallelSum = 6,
}

impl NmLayerKind {
    /// The kind with C value `code` (taken as `int` from C, so that an out-of-range value is
    /// an error, not undefined behaviour).
    pub(crate) fn from_code(code: c_int) -> Result<Self> {
        Ok(match code {
            0 => Self::Dense,
            1 => Self::Conv2d,
            2 => Self::Activation,
            3 => Self::Maxpool,
            4 => Self::Avgpool,
            5 => Self::Flatten,
            6 => Self::ParallelSum,
            _ => {
                return Err(Error::argument(format_args!(
                    "kind {code} is not an NmLayerKind (0 dense, 1 conv2d, 2 activation, 3 maxpool, 4 avgpool, 5 flatten, 6 parallel sum)"
                )))
            }
        })
    }

    /// The kind of `layer`.
    pub(crate) fn of(layer: &Layer<f32>) -> Self {
        match layer {
            Layer::Dense(_) => Self::Dense,
            Layer::Conv2d(_) => Self::Conv2d,
            Layer::Activation(_) => Self::Activation,
            Layer::MaxPool2d(_) => Self::Maxpool,
            Layer::AvgPool2d(_) => Self::Avgpool,
            Layer::Flatten => Self::Flatten,
            Layer::ParallelSum(_) => Self::ParallelSum,
        }
    }

    /// The indefinite article of [`NmLayerKind::name`], for messages ("an activation").
    pub(crate) fn article(self) -> &'static str {
        match self {
            Self::Activation | Self::Avgpool => "an",
            _ => "a",
        }
    }

    /// Lower-case name for messages (`"dense"`, `"conv2d"`, ...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Conv2d => "conv2d",
            Self::Activation => "activation",
            Self::Maxpool => "maxpool",
            Self::Avgpool => "avgpool",
            Self::Flatten => "flatten",
            Self::ParallelSum => "parallel sum",
        }
    }
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

/// One layer. Fields a kind does not use are 0 (pointers NULL, `function` IDENTITY). The
/// pointers borrow the model's parameters: valid until the model is changed (`nm_sgd_step`,
/// `nm_model_set_layer`) or freed; read them, never write or free them. A pointer is NULL
/// exactly when its length is 0.
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
    /// PARALLEL_SUM: the number of branches (at least 2). Branch `b`'s layers are at this
    /// layer's path followed by `b` and a layer index; `nm_model_layer_count` counts them.
    pub branches: usize,
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
    /// The description of `layer`, borrowing its parameters.
    pub(crate) fn of(layer: &Layer<f32>) -> Self {
        let mut info = Self {
            kind: NmLayerKind::of(layer),
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
            branches: 0,
        };
        if let Some(k) = layer.kernel() {
            (info.out, info.r#in, info.kernel, info.stride) = (k.out, k.inp, k.k, 1);
            (info.weight, info.weight_len) = borrowed(&k.weight);
            (info.bias, info.bias_len) = borrowed(&k.bias);
        }
        match layer {
            Layer::Conv2d(c) => (info.stride, info.padding) = (c.stride, c.pad),
            Layer::Activation(p) => {
                info.function = NmActivation::of(p.kind);
                (info.out, info.r#in) = (p.a.len(), p.a.len());
                (info.a, info.a_len) = borrowed(&p.a);
            }
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                (info.kernel, info.stride, info.ceil_mode) = (p.k, p.stride, p.ceil);
            }
            Layer::ParallelSum(branches) => info.branches = branches.len(),
            Layer::Dense(_) | Layer::Flatten => {}
        }
        info
    }
}

/// Writes the number of layers in a sequence to `*n`: the top level when `path_len` is 0
/// (`path` may then be NULL), or branch `b` of the parallel block at path `p` when `path` is
/// `p` followed by `b` (e.g. `{3, 1}`: branch 1 of the block at top-level index 3).
/// Activations, pooling and flatten layers count, as in the command line's layer paths.
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` for a path that names no branch (the
/// message says where it leaves the network).
///
/// # Safety
/// `m` is a live model; `path` is NULL or points to `path_len` values; `n` is valid for
/// writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_layer_count(
    m: *const NmModel,
    path: *const usize,
    path_len: usize,
    n: *mut usize,
) -> NmStatus {
    guard("nm_model_layer_count", || {
        // SAFETY (all): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        let n = unsafe { Out::new(n, "n") }?;
        n.set(unsafe { sequence_at(&m.net, path, path_len) }?.len());
        Ok(())
    })
}

/// Describes the layer at `path` (`path_len` indices: a top-level index, then branch and layer
/// inside a parallel block, and so on, as the command line's `3.1.0`) in `*info` (see
/// `NmLayerInfo` for which fields each kind sets and how long its pointers stay valid).
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` for an empty path or one that does
/// not exist (the message names it and says where it leaves the network).
///
/// # Safety
/// `m` is a live model; `path` points to `path_len` values; `info` is valid for writing one
/// `NmLayerInfo`.
#[no_mangle]
pub unsafe extern "C" fn nm_model_layer(
    m: *const NmModel,
    path: *const usize,
    path_len: usize,
    info: *mut NmLayerInfo,
) -> NmStatus {
    guard("nm_model_layer", || {
        // SAFETY (all): the caller's promises.
        let m = unsafe { model(m, "m") }?;
        let info = unsafe { Out::new(info, "info") }?;
        let path = unsafe { layer_path(path, path_len) }?;
        info.set(NmLayerInfo::of(layer_at(&m.net, &path)?));
        Ok(())
    })
}
