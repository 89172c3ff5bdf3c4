//! Models from the caller's arrays: `nm_model_new` makes a network from a list of layer
//! descriptions ([`NmLayerSpec`]) and `nm_model_set_layer` overwrites one layer's parameters.
//! Both check every length against the layer's sizes (with checked arithmetic) and every value
//! (finite; a P-activation's `a` in [0, 1]) before anything is made or written, and copy the
//! caller's floats: the caller keeps its arrays.

use std::ffi::c_int;

use facade::data::InputScale;
use facade::memory::{values_bytes, Budget};
use facade::{Conv2d, Kernel, Layer, Network, PActivation, Pool, Shape};

use crate::layer::{NmActivation, NmLayerInfo, NmLayerKind};
use crate::model::{give, model, model_out, NmModel};
use crate::path::{layer_at, layer_path};
use crate::ptr;
use crate::status::{guard, Error, NmStatus, Result};

/// One layer for `nm_model_new`: the fields and their meaning are `NmLayerInfo`'s (same
/// names, same order), except that `kind` and `function` are `int` codes (an `NmLayerKind`,
/// an `NmActivation`), checked on entry. The pointers are the caller's and are only read
/// during the call (the model gets copies).
///
/// | `kind` | sizes read | arrays (lengths exactly) |
/// |---|---|---|
/// | `NM_LAYER_KIND_DENSE` | `out`, `in` | `weight [out][in]`, `bias [out]` |
/// | `NM_LAYER_KIND_CONV2D` | `out`, `in`, `kernel`, `stride`, `padding` | `weight [out][in][kernel][kernel]`, `bias [out]` |
/// | `NM_LAYER_KIND_ACTIVATION` | `out` (channels), `function` | `a [out]`, each in [0, 1] (0: plain `phi`) |
/// | `NM_LAYER_KIND_MAXPOOL`, `NM_LAYER_KIND_AVGPOOL` | `kernel`, `stride`, `ceil_mode` | none |
/// | `NM_LAYER_KIND_FLATTEN` | none | none |
///
/// Fields a kind does not read are ignored, except the lengths of arrays it has not, which
/// must be 0 (a pointer whose length is 0 is not read and may be NULL). A parallel sum cannot
/// be given (make one with `nm_morph`'s `stack@`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NmLayerSpec {
    /// An `NmLayerKind` value.
    pub kind: c_int,
    /// DENSE, CONV2D: output channels (features); ACTIVATION: channels.
    pub out: usize,
    /// DENSE, CONV2D: input channels (features).
    pub r#in: usize,
    /// CONV2D, MAXPOOL, AVGPOOL: the square window's size.
    pub kernel: usize,
    /// CONV2D, MAXPOOL, AVGPOOL: the stride on both axes.
    pub stride: usize,
    /// CONV2D: zero padding on every side.
    pub padding: usize,
    /// MAXPOOL, AVGPOOL: 1 if the output size rounds up, 0 if down (an `int`, not `bool`,
    /// so that any value a caller leaves there is defined; other kinds ignore it).
    pub ceil_mode: c_int,
    /// ACTIVATION: an `NmActivation` value, the base function `phi`.
    pub function: c_int,
    /// DENSE `[out, in]`, CONV2D `[out, in, kernel, kernel]`, row-major.
    pub weight: *const f32,
    /// Floats at `weight`.
    pub weight_len: usize,
    /// DENSE, CONV2D: `[out]`.
    pub bias: *const f32,
    /// Floats at `bias`.
    pub bias_len: usize,
    /// ACTIVATION: the per-channel `a` of `(1 - a) phi(x) + a x` (`[out]`).
    pub a: *const f32,
    /// Floats at `a`.
    pub a_len: usize,
}

/// A layer's parameter arrays, in the order every function here takes them.
const ARRAYS: [&str; 3] = ["weight", "bias", "a"];

/// For each of a layer's arrays (weight, bias, a): the floats it must hold, and how that
/// follows from the layer's sizes (for messages).
type Needs = [(usize, String); 3];

/// What the arrays of a `kind` layer with `out`, `inp` channels and kernel `k` must hold.
fn needs(kind: NmLayerKind, out: usize, inp: usize, k: usize) -> Result<Needs> {
    let none = || (0, String::new());
    let weights = |names: &str, sizes: &[usize]| {
        let shown: Vec<String> = sizes.iter().map(usize::to_string).collect();
        let shown = shown.join(" x ");
        sizes
            .iter()
            .try_fold(1usize, |n, &s| n.checked_mul(s))
            .map(|n| (n, format!("{names} = {shown}")))
            .ok_or_else(|| {
                Error::argument(format_args!(
                    "its weight count {names} = {shown} overflows size_t; no buffer is that large"
                ))
            })
    };
    let bias = || (out, format!("out = {out}"));
    Ok(match kind {
        NmLayerKind::Dense => [weights("out x in", &[out, inp])?, bias(), none()],
        NmLayerKind::Conv2d => [
            weights("out x in x kernel x kernel", &[out, inp, k, k])?,
            bias(),
            none(),
        ],
        NmLayerKind::Activation => [
            none(),
            none(),
            (out, format!("one per channel, out = {out}")),
        ],
        _ => [none(), none(), none()],
    })
}

/// Checks the lengths the caller gave (`weight_len`, `bias_len`, `a_len`) against `needs` of a
/// `kind` layer: each exactly.
fn check_lengths(kind: NmLayerKind, given: [usize; 3], needs: &Needs) -> Result<()> {
    for ((name, len), (need, why)) in ARRAYS.iter().zip(given).zip(needs) {
        if len == *need {
            continue;
        }
        let (a, kind) = (kind.article(), kind.name());
        return Err(Error::argument(if *need == 0 {
            format!("`{name}_len` is {len}, but {a} {kind} layer has no `{name}`; pass 0")
        } else {
            format!("`{name}_len` is {len} but this {kind} layer needs {need} ({why})")
        }));
    }
    Ok(())
}

/// Copies the caller's arrays (weight, bias, a; each a pointer and a length that
/// [`check_lengths`] accepted): a pointer is read only when its length is not 0, and then must
/// not be NULL; every value must be finite, and every `a` in [0, 1].
///
/// # Safety
/// Each pointer whose length is not 0 points to that many floats.
unsafe fn copy(arrays: [(*const f32, usize); 3]) -> Result<[Vec<f32>; 3]> {
    let mut copies: [Vec<f32>; 3] = Default::default();
    for ((name, (p, len)), copy) in ARRAYS.iter().zip(arrays).zip(&mut copies) {
        if len == 0 {
            continue;
        }
        // SAFETY: the caller's promise.
        let values = unsafe { ptr::slice(p, len, name) }?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::argument(format_args!(
                "`{name}[{i}]` is {}; parameters must be finite",
                values[i]
            )));
        }
        *copy = values.to_vec();
    }
    let [_, _, a] = &copies;
    if let Some(i) = a.iter().position(|a| !(0.0..=1.0).contains(a)) {
        return Err(Error::argument(format_args!(
            "`a[{i}]` is {}; a P-activation's `a` must be in [0, 1] (0: phi(x), 1: x)",
            a[i]
        )));
    }
    Ok(copies)
}

/// Puts `values` (weight, bias, a, as [`copy`] gave them for the layer's kind) into `layer`.
fn fill(layer: &mut Layer<f32>, [weight, bias, a]: [Vec<f32>; 3]) {
    if let Some(k) = layer.kernel_mut() {
        (k.weight, k.bias) = (weight, bias);
    }
    if let Layer::Activation(p) = layer {
        p.a = a;
    }
}

/// The layer `spec` describes, without its parameters (which [`fill`] adds), and the floats
/// its arrays must hold; refuses an unknown kind or function code, a parallel sum, and
/// lengths that differ from what the sizes need.
fn skeleton(spec: &NmLayerSpec) -> Result<(Layer<f32>, Needs)> {
    let kind = NmLayerKind::from_code(spec.kind)?;
    let kernel = |k| Kernel {
        out: spec.out,
        inp: spec.r#in,
        k,
        weight: Vec::new(),
        bias: Vec::new(),
    };
    let pooling = matches!(kind, NmLayerKind::Maxpool | NmLayerKind::Avgpool);
    let ceil = match spec.ceil_mode {
        0 => false,
        1 => true,
        v if pooling => {
            return Err(Error::argument(format_args!(
                "ceil_mode {v}: give 1 (round the output size up) or 0 (down)"
            )))
        }
        _ => false,
    };
    let pool = Pool {
        k: spec.kernel,
        stride: spec.stride,
        ceil,
    };
    let layer = match kind {
        NmLayerKind::Dense => Layer::Dense(kernel(1)),
        NmLayerKind::Conv2d => Layer::Conv2d(Conv2d {
            kernel: kernel(spec.kernel),
            stride: spec.stride,
            pad: spec.padding,
        }),
        NmLayerKind::Activation => Layer::Activation(PActivation {
            kind: NmActivation::from_code(spec.function)?,
            a: Vec::new(),
        }),
        NmLayerKind::Maxpool => Layer::MaxPool2d(pool),
        NmLayerKind::Avgpool => Layer::AvgPool2d(pool),
        NmLayerKind::Flatten => Layer::Flatten,
        NmLayerKind::ParallelSum => {
            return Err(Error::argument(
                "a parallel sum cannot be given as one layer; give the layer it would replace \
                 and split it into branches with nm_morph's `stack@`",
            ))
        }
    };
    let needs = needs(kind, spec.out, spec.r#in, spec.kernel)?;
    check_lengths(kind, [spec.weight_len, spec.bias_len, spec.a_len], &needs)?;
    Ok((layer, needs))
}

/// Makes a model from `n_layers` layer descriptions (`NmLayerSpec`, in order) and the shape of
/// one input sample, `channels x height x width` (flat inputs: `n x 1 x 1`). The parameters are
/// copied from the arrays the specs point to: the caller keeps them, and may free or reuse
/// them as soon as the call returns. The model has no SGD momentum yet and records the
/// standard input scale (as `nm_model_new_mlp`'s).
///
/// Writes the new model to `*out` (NULL on failure); free it with `nm_model_free`.
///
/// Errors: `NM_STATUS_ERR_NULL` for a NULL `layers`, `out`, or array whose length is not 0;
/// `NM_STATUS_ERR_ARGUMENT`, with a message that starts with the layer (`layers[2]: ...`), for
/// an unknown kind or function code, a parallel sum, a length that is not exactly what the
/// layer's sizes need (the message gives both), a NaN or infinite value, an `a` outside
/// [0, 1], `n_layers` 0; and, naming the layer, for layers that do not make a network (a
/// layer whose input size differs from the previous layer's output, a dense layer after an
/// image without a flatten, a window larger than its input, a zero size), or a network too
/// large for memory.
///
/// # Safety
/// `layers` points to `n_layers` specs, each of whose pointers with a non-zero length points to
/// that many floats; `out` is valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nm_model_new(
    layers: *const NmLayerSpec,
    n_layers: usize,
    channels: usize,
    height: usize,
    width: usize,
    out: *mut *mut NmModel,
) -> NmStatus {
    guard("nm_model_new", || {
        // SAFETY (both): the caller's promises.
        let out = unsafe { model_out(out, "out") }?;
        let specs = unsafe { ptr::slice(layers, n_layers, "layers") }?;
        if specs.is_empty() {
            return Err(Error::argument("n_layers is 0; give at least one layer"));
        }
        let at = |i: usize| format!("layers[{i}]");
        // Every kind, code and length first, then the memory, then the copies.
        let budget = Budget::new(None);
        let layer_bytes = size_of::<Layer<f32>>().checked_mul(specs.len());
        budget
            .check(
                "the network's layers",
                layer_bytes.and_then(|b| u64::try_from(b).ok()),
            )
            .map_err(Error::argument)?;
        let mut skeletons = Vec::with_capacity(specs.len());
        let mut floats = Some(0usize);
        for (i, spec) in specs.iter().enumerate() {
            let (layer, needs) = skeleton(spec).map_err(|e| e.context(at(i)))?;
            floats = needs
                .iter()
                .fold(floats, |sum, (n, _)| sum?.checked_add(*n));
            skeletons.push(layer);
        }
        budget
            .check(
                "the network's parameters",
                floats.and_then(values_bytes::<f32>),
            )
            .map_err(Error::argument)?;
        for (i, (spec, layer)) in specs.iter().zip(&mut skeletons).enumerate() {
            let arrays = [
                (spec.weight, spec.weight_len),
                (spec.bias, spec.bias_len),
                (spec.a, spec.a_len),
            ];
            // SAFETY: the caller's promise.
            fill(
                layer,
                unsafe { copy(arrays) }.map_err(|e| e.context(at(i)))?,
            );
        }
        let input = Shape::image(channels, height, width);
        let net = Network::new(input, skeletons).map_err(|e| {
            Error::argument(format_args!(
                "the layers do not make a network for {channels}x{height}x{width} inputs: {e}"
            ))
        })?;
        give(out, NmModel::new(net, InputScale::Standard));
        Ok(())
    })
}

/// The layer at `ix` (a path that [`layer_at`] found) in `layers`.
fn layer_mut<'a>(layers: &'a mut [Layer<f32>], ix: &[usize]) -> Option<&'a mut Layer<f32>> {
    match ix {
        [i] => layers.get_mut(*i),
        [i, b, rest @ ..] => match layers.get_mut(*i)? {
            Layer::ParallelSum(branches) => layer_mut(branches.get_mut(*b)?, rest),
            _ => None,
        },
        [] => None,
    }
}

/// An internal error (a bug) in `nm_model_set_layer`.
fn bug(what: impl std::fmt::Display) -> Error {
    Error::new(
        NmStatus::ErrPanic,
        format_args!("internal error, a bug in netmorph ({what}); please report it"),
    )
}

/// Overwrites the parameters of the layer at `path` (`path_len` indices, as
/// `nm_model_layer`'s) with copies of the caller's arrays, each of exactly the layer's length
/// (`NmLayerInfo`'s `weight_len`, `bias_len`, `a_len`):
///
/// - a dense or convolution layer: `weight` and `bias`, in `NmLayerInfo`'s layout; `a_len`
///   is 0;
/// - a P-activation: `a`, each in [0, 1]; `weight_len` and `bias_len` are 0.
///
/// A pointer whose length is 0 is not read and may be NULL. All or nothing: the path, every
/// length and every value (finite; `a` in [0, 1]) are checked before the model changes, and on
/// any error it is unchanged. The arrays may point into this model (e.g. another layer's
/// `NmLayerInfo` pointers): they are copied before anything is written. The sizes and the
/// structure stay as they are; the SGD momentum is kept (as when an optimiser's parameters are
/// overwritten in place). Pointers `nm_model_layer` gave out for this model are invalid
/// afterwards.
///
/// Errors: `NM_STATUS_ERR_NULL` for a NULL `m`, `path`, or array whose length is not 0;
/// `NM_STATUS_ERR_ARGUMENT` for a path that does not exist (named in the message), a layer
/// without parameters (pooling, flatten, a parallel block: write the layers in its branches),
/// a length that differs from the layer's (the message gives both), a NaN or infinite value,
/// or an `a` outside [0, 1].
///
/// # Safety
/// `m` is a live model that no other thread uses during the call; `path` points to `path_len`
/// values; each array with a non-zero length points to that many floats.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: each array with its length
pub unsafe extern "C" fn nm_model_set_layer(
    m: *mut NmModel,
    path: *const usize,
    path_len: usize,
    weight: *const f32,
    weight_len: usize,
    bias: *const f32,
    bias_len: usize,
    a: *const f32,
    a_len: usize,
) -> NmStatus {
    guard("nm_model_set_layer", || {
        let (path, values) = {
            // Read through a shared borrow only: the arrays may point into this model.
            // SAFETY (both): the caller's promises (a live model).
            let net = &unsafe { model(m, "m") }?.net;
            let path = unsafe { layer_path(path, path_len) }?;
            let info = NmLayerInfo::of(layer_at(net, &path)?);
            let at = |e: Error| e.context(format_args!("layer {path}"));
            if !matches!(
                info.kind,
                NmLayerKind::Dense | NmLayerKind::Conv2d | NmLayerKind::Activation
            ) {
                return Err(at(Error::argument(format_args!(
                    "{} {} layer has no parameters to set; give the path of a dense, conv2d or \
                     activation layer (a parallel block's are inside its branches)",
                    info.kind.article(),
                    info.kind.name()
                ))));
            }
            let needs = needs(info.kind, info.out, info.r#in, info.kernel).map_err(at)?;
            check_lengths(info.kind, [weight_len, bias_len, a_len], &needs).map_err(at)?;
            // SAFETY: the caller's promise.
            let values = unsafe { copy([(weight, weight_len), (bias, bias_len), (a, a_len)]) };
            (path.clone(), values.map_err(at)?)
        };
        // SAFETY: the caller's promise (a live model used by this call only); the shared
        // borrow above has ended.
        let m = unsafe { &mut *m };
        // The core gives no mutable access to a network's layers: take them out, write the
        // values, and validate the network again.
        let input = m.net.input_shape();
        let empty = Network::new(input, Vec::new()).map_err(bug)?;
        let mut layers = std::mem::replace(&mut m.net, empty).into_layers();
        let written = layer_mut(&mut layers, &path.0).map(|layer| fill(layer, values));
        // Only values changed, and `Network::new` checks sizes and structure, both as when
        // this model was validated: it cannot fail. Were it to, the model is left without
        // layers and the message says so.
        m.net = Network::new(input, layers).map_err(|e| {
            bug(format_args!(
                "the network no longer validates: {e}; the model was left without layers, free it"
            ))
        })?;
        written.ok_or_else(|| bug(format_args!("layer {path} was found, then not")))
    })
}
