//! Model files: one `.safetensors` file per network, tensors in PyTorch layout and the
//! architecture as JSON in the header metadata (schema: `docs/format.md`).
//!
//! Writes are atomic: the bytes go to a temporary file in the target's directory, which is
//! synced and renamed over the target, so a crash never leaves a half-written model.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::data::InputScale;
use netmorph_core::{ActKind, Conv2d, Kernel, Layer, Network, PActivation, Pool, Scalar, Shape};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{json, Value};

/// Metadata key holding the architecture JSON.
pub const METADATA_KEY: &str = "netmorph";
/// Value of the architecture's `format` field.
pub const FORMAT: &str = "netmorph/1";

/// Why a model file could not be written or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum ModelFileError {
    /// Reading, writing or renaming failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a truncated or corrupt one.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The architecture metadata is missing, malformed or disagrees with the tensors.
    Architecture {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for ModelFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}; check the path and its permissions", path.display()),
            Self::Corrupt { path, reason } => write!(
                f,
                "{} is not a readable safetensors model ({reason}); the file is truncated or corrupt, save it again",
                path.display()
            ),
            Self::Architecture { path, reason } => write!(
                f,
                "{}: the netmorph architecture metadata is invalid ({reason}); the file was not written by netmorph or was edited",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ModelFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn dtype<T: Scalar>() -> Dtype {
    if T::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

fn bytes<T: Scalar>(v: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 8);
    for x in v {
        if T::NAME == "f32" {
            out.extend_from_slice(&(x.as_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&x.as_f64().to_le_bytes());
        }
    }
    out
}

/// Tensors collected while describing the layers.
struct Tensors {
    list: Vec<(String, Vec<usize>, Vec<u8>)>,
}

impl Tensors {
    fn add(&mut self, name: String, shape: Vec<usize>, data: Vec<u8>) -> String {
        self.list.push((name.clone(), shape, data));
        name
    }
}

fn describe<T: Scalar>(layers: &[Layer<T>], prefix: &str, t: &mut Tensors) -> Vec<Value> {
    let mut out = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let base = format!("{prefix}{i}");
        let v = match l {
            Layer::Dense(k) => json!({
                "type": "dense", "in": k.inp, "out": k.out,
                "weight": t.add(format!("{base}.weight"), vec![k.out, k.inp], bytes(&k.weight)),
                "bias": t.add(format!("{base}.bias"), vec![k.out], bytes(&k.bias)),
            }),
            Layer::Conv2d(c) => json!({
                "type": "conv2d", "in": c.kernel.inp, "out": c.kernel.out, "kernel": c.kernel.k,
                "stride": c.stride, "padding": c.pad,
                "weight": t.add(format!("{base}.weight"), vec![c.kernel.out, c.kernel.inp, c.kernel.k, c.kernel.k], bytes(&c.kernel.weight)),
                "bias": t.add(format!("{base}.bias"), vec![c.kernel.out], bytes(&c.kernel.bias)),
            }),
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => json!({
                "type": l.name(), "kernel": p.k, "stride": p.stride, "ceil_mode": p.ceil,
            }),
            Layer::Flatten => json!({ "type": "flatten" }),
            Layer::Activation(p) => json!({
                "type": "activation", "function": p.kind.name(), "channels": p.a.len(),
                "a": t.add(format!("{base}.a"), vec![p.a.len()], bytes(&p.a)),
            }),
            Layer::ParallelSum(bs) => {
                let branches: Vec<Value> = bs
                    .iter()
                    .enumerate()
                    .map(|(b, seq)| {
                        Value::Array(describe(seq, &format!("{base}.branches.{b}."), t))
                    })
                    .collect();
                json!({ "type": "parallel_sum", "branches": branches })
            }
        };
        out.push(v);
    }
    out
}

/// A network and the scale of the inputs it was trained on.
pub type ScaledNetwork<T> = (Network<T>, InputScale);

/// Metadata key of a checkpoint's training state (JSON), beside [`METADATA_KEY`].
pub const CHECKPOINT_KEY: &str = "netmorph_checkpoint";

/// The architecture JSON and tensors of `net`, serialized as safetensors bytes.
///
/// # Errors
/// [`ModelFileError::Corrupt`] only if safetensors rejects the tensors (it does not for
/// networks built by this crate).
pub fn to_bytes<T: Scalar>(net: &Network<T>) -> Result<Vec<u8>, ModelFileError> {
    to_bytes_scaled(net, InputScale::Standard)
}

/// [`to_bytes`] for a network trained on inputs scaled as `scale`.
///
/// # Errors
/// As [`to_bytes`].
pub fn to_bytes_scaled<T: Scalar>(
    net: &Network<T>,
    scale: InputScale,
) -> Result<Vec<u8>, ModelFileError> {
    serialize(net, scale, None)
}

/// Writes a checkpoint: `net` as a model file (every reader of models can use it) plus
/// `state` under [`CHECKPOINT_KEY`] and, if given, layers shaped like the network's (the
/// optimiser's momentum) as tensors `momentum.*`, described in `state["momentum"]`.
/// Written atomically, like [`save`].
///
/// # Errors
/// As [`save`].
pub fn save_checkpoint<T: Scalar>(
    (net, scale): (&Network<T>, InputScale),
    state: Value,
    momentum: Option<&[Layer<T>]>,
    path: &Path,
) -> Result<(), ModelFileError> {
    let data = serialize(net, scale, Some((state, momentum)))?;
    write_atomic(path, &data)
}

/// Reads a checkpoint written by [`save_checkpoint`]: the network and its input scale, the
/// state JSON and the momentum layers (if it has them).
///
/// # Errors
/// As [`load`]; [`ModelFileError::Architecture`] if the file is a plain model (no
/// [`CHECKPOINT_KEY`] entry) or its momentum tensors do not match their description.
#[allow(clippy::type_complexity)]
pub fn load_checkpoint<T: Scalar>(
    path: &Path,
) -> Result<(ScaledNetwork<T>, Value, Option<Vec<Layer<T>>>), ModelFileError> {
    let data = read(path)?;
    let net = parse(&data).map_err(|e| at_path(e, path))?;
    let arch_err = |reason: String| ModelFileError::Architecture {
        path: path.to_path_buf(),
        reason,
    };
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| arch_err(e.to_string()))?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKPOINT_KEY))
        .ok_or_else(|| {
            arch_err(format!(
                "a model, not a checkpoint (no `{CHECKPOINT_KEY}` entry); train from it with `netmorph continue` instead of --resume"
            ))
        })?;
    let state: Value = serde_json::from_str(text).map_err(|e| arch_err(e.to_string()))?;
    let momentum = if state["momentum"].is_null() {
        None
    } else {
        let st = SafeTensors::deserialize(&data).map_err(|e| arch_err(e.to_string()))?;
        Some(parse_layers(&state["momentum"], &st).map_err(arch_err)?)
    };
    Ok((net, state, momentum))
}

fn serialize<T: Scalar>(
    net: &Network<T>,
    scale: InputScale,
    checkpoint: Option<(Value, Option<&[Layer<T>]>)>,
) -> Result<Vec<u8>, ModelFileError> {
    let mut t = Tensors { list: Vec::new() };
    let layers = describe(net.layers(), "layers.", &mut t);
    let checkpoint = checkpoint.map(|(mut state, momentum)| {
        state["momentum"] = momentum.map_or(Value::Null, |m| {
            Value::Array(describe(m, "momentum.", &mut t))
        });
        state.to_string()
    });
    let s = net.input_shape();
    let arch = json!({
        "format": FORMAT,
        "dtype": T::NAME,
        "input": [s.c, s.h, s.w],
        "input_scale": scale.name(),
        "layers": layers,
    });
    let corrupt = |e: safetensors::SafeTensorError| ModelFileError::Corrupt {
        path: PathBuf::new(),
        reason: e.to_string(),
    };
    let views = t
        .list
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(dtype::<T>(), shape.clone(), data).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    let mut meta = HashMap::from([(METADATA_KEY.to_string(), arch.to_string())]);
    if let Some(state) = checkpoint {
        meta.insert(CHECKPOINT_KEY.to_string(), state);
    }
    safetensors::serialize(views, Some(meta)).map_err(corrupt)
}

/// Writes `net` to `path` atomically (temporary file in the same directory, fsync, rename).
///
/// # Errors
/// [`ModelFileError::Io`] if the directory is missing or not writable; the target is then
/// untouched and no temporary file is left behind.
pub fn save<T: Scalar>(net: &Network<T>, path: &Path) -> Result<(), ModelFileError> {
    save_scaled(net, InputScale::Standard, path)
}

/// [`save`] for a network trained on inputs scaled as `scale` (stored in the file; see
/// [`load_scaled`]).
///
/// # Errors
/// As [`save`].
pub fn save_scaled<T: Scalar>(
    net: &Network<T>,
    scale: InputScale,
    path: &Path,
) -> Result<(), ModelFileError> {
    let data = serialize(net, scale, None)?;
    write_atomic(path, &data)
}

/// [`crate::atomic::write_atomic`], its error naming `path`.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ModelFileError> {
    crate::atomic::write_atomic(path, data).map_err(|source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The floating-point type a model file stores its network in (its `dtype` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl Precision {
    /// `f32` or `f64`, as in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => f32::NAME,
            Self::F64 => f64::NAME,
        }
    }

    /// The precision named `name` (see [`Precision::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::F32, Self::F64]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// Largest safetensors header read (the safetensors crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// The precision of the network in the model file or checkpoint at `path`, read from its
/// header alone, so that a command can load it as what it is (an f64 model stays f64).
///
/// # Errors
/// [`ModelFileError`] for an unreadable file, a corrupt header or a missing or unknown
/// `dtype`.
pub fn precision(path: &Path) -> Result<Precision, ModelFileError> {
    use std::io::Read;
    let io = |source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |reason: String| ModelFileError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| corrupt(format!("no header length: {e}")))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(corrupt(format!(
            "header length {len} exceeds {MAX_HEADER} bytes"
        )));
    }
    let mut header = Vec::new();
    file.take(len).read_to_end(&mut header).map_err(io)?;
    header_precision(&header).map_err(|e| at_path(e, path))
}

/// [`precision`] of a model file's bytes.
///
/// # Errors
/// As [`precision`] (with an empty path).
pub fn precision_of(data: &[u8]) -> Result<Precision, ModelFileError> {
    let corrupt = |reason: String| ModelFileError::Corrupt {
        path: PathBuf::new(),
        reason,
    };
    let len = data
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt("no header length".into()))?;
    let header = usize::try_from(len)
        .ok()
        .filter(|&n| len <= MAX_HEADER && n <= data.len() - 8)
        .map(|n| &data[8..8 + n])
        .ok_or_else(|| corrupt(format!("header length {len} exceeds the data")))?;
    header_precision(header)
}

/// The `dtype` of the architecture in a safetensors header.
fn header_precision(header: &[u8]) -> Result<Precision, ModelFileError> {
    let corrupt = |reason: String| ModelFileError::Corrupt {
        path: PathBuf::new(),
        reason,
    };
    let arch_err = |reason: String| ModelFileError::Architecture {
        path: PathBuf::new(),
        reason,
    };
    let header: Value =
        serde_json::from_slice(header).map_err(|e| corrupt(format!("header is not JSON: {e}")))?;
    let arch = header["__metadata__"][METADATA_KEY]
        .as_str()
        .ok_or_else(|| arch_err(format!("no `{METADATA_KEY}` metadata entry")))?;
    let arch: Value = serde_json::from_str(arch).map_err(|e| arch_err(e.to_string()))?;
    stored_precision(&arch).map_err(arch_err)
}

/// The `dtype` field of an architecture JSON.
fn stored_precision(arch: &Value) -> Result<Precision, String> {
    arch["dtype"]
        .as_str()
        .and_then(Precision::parse)
        .ok_or_else(|| format!("`dtype` is {}, expected \"f32\" or \"f64\"", arch["dtype"]))
}

/// Reads a network from `path`, converting stored values to `T` (bit-identical when the
/// file's dtype is `T`).
///
/// # Errors
/// [`ModelFileError`] naming the path for an unreadable, truncated or corrupt file, or
/// metadata that disagrees with the tensors.
pub fn load<T: Scalar>(path: &Path) -> Result<Network<T>, ModelFileError> {
    Ok(load_scaled(path)?.0)
}

/// [`load`], and the scale of the inputs the network was trained on ([`InputScale::Standard`]
/// for files that do not say).
///
/// # Errors
/// As [`load`]; [`ModelFileError::Architecture`] for an unknown `input_scale`.
pub fn load_scaled<T: Scalar>(path: &Path) -> Result<ScaledNetwork<T>, ModelFileError> {
    let data = read(path)?;
    parse(&data).map_err(|e| at_path(e, path))
}

/// The bytes of the regular file at `path` (a device or pipe could be endless).
fn read(path: &Path) -> Result<Vec<u8>, ModelFileError> {
    let io = |source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    std::fs::read(path).map_err(io)
}

/// `e` (from parsing bytes) naming the file they came from.
fn at_path(e: ModelFileError, path: &Path) -> ModelFileError {
    match e {
        ModelFileError::Corrupt { reason, .. } => ModelFileError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        ModelFileError::Architecture { reason, .. } => ModelFileError::Architecture {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

/// Parses safetensors bytes written by [`to_bytes`].
///
/// # Errors
/// As [`load`] (with an empty path).
pub fn from_bytes<T: Scalar>(data: &[u8]) -> Result<Network<T>, ModelFileError> {
    Ok(parse(data)?.0)
}

/// [`from_bytes`], and the input scale the bytes record.
///
/// # Errors
/// As [`from_bytes`].
pub fn from_bytes_scaled<T: Scalar>(data: &[u8]) -> Result<ScaledNetwork<T>, ModelFileError> {
    parse(data)
}

/// The network and input scale in safetensors bytes.
fn parse<T: Scalar>(data: &[u8]) -> Result<ScaledNetwork<T>, ModelFileError> {
    let corrupt = |reason: String| ModelFileError::Corrupt {
        path: PathBuf::new(),
        reason,
    };
    let arch_err = |reason: String| ModelFileError::Architecture {
        path: PathBuf::new(),
        reason,
    };
    let (_, meta) = SafeTensors::read_metadata(data).map_err(|e| corrupt(e.to_string()))?;
    let st = SafeTensors::deserialize(data).map_err(|e| corrupt(e.to_string()))?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| arch_err(format!("no `{METADATA_KEY}` metadata entry")))?;
    let arch: Value = serde_json::from_str(text).map_err(|e| arch_err(e.to_string()))?;
    if arch["format"] != FORMAT {
        return Err(arch_err(format!(
            "format is {}, expected {FORMAT:?}",
            arch["format"]
        )));
    }
    stored_precision(&arch).map_err(arch_err)?;
    let input = match arch["input"]
        .as_array()
        .map(|v| v.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
    {
        Some(Some(v)) if v.len() == 3 => match v
            .iter()
            .map(|d| usize::try_from(*d).ok())
            .collect::<Option<Vec<_>>>()
        {
            Some(d) => Shape::image(d[0], d[1], d[2]),
            None => {
                return Err(arch_err(
                    "`input` dimensions exceed this machine's sizes".into(),
                ))
            }
        },
        _ => return Err(arch_err("`input` must be [channels, height, width]".into())),
    };
    // Files from before the field: the only scale there was.
    let scale = match &arch["input_scale"] {
        Value::Null => InputScale::Standard,
        v => v.as_str().and_then(InputScale::parse).ok_or_else(|| {
            arch_err(format!(
                "`input_scale` is {v}, expected \"standard\" or \"pixels\""
            ))
        })?,
    };
    let layers = parse_layers(&arch["layers"], &st).map_err(arch_err)?;
    let net = Network::new(input, layers).map_err(|e| arch_err(e.to_string()))?;
    Ok((net, scale))
}

fn field(v: &Value, key: &str) -> Result<usize, String> {
    v[key]
        .as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| format!("layer field `{key}` missing or not a number"))
}

fn tensor<T: Scalar>(
    st: &SafeTensors<'_>,
    v: &Value,
    key: &str,
    shape: &[usize],
) -> Result<Vec<T>, String> {
    let name = v[key]
        .as_str()
        .ok_or_else(|| format!("layer field `{key}` must name a tensor"))?;
    let t = st
        .tensor(name)
        .map_err(|_| format!("tensor `{name}` is missing"))?;
    if t.shape() != shape {
        return Err(format!(
            "tensor `{name}` has shape {:?}, the layer needs {shape:?}",
            t.shape()
        ));
    }
    match t.dtype() {
        Dtype::F32 => Ok(t
            .data()
            .chunks_exact(4)
            .map(|b| T::of_f64(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
            .collect()),
        Dtype::F64 => Ok(t
            .data()
            .chunks_exact(8)
            .map(|b| {
                T::of_f64(f64::from_le_bytes([
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                ]))
            })
            .collect()),
        other => Err(format!(
            "tensor `{name}` has dtype {other:?}; netmorph reads F32 and F64"
        )),
    }
}

fn parse_layers<T: Scalar>(v: &Value, st: &SafeTensors<'_>) -> Result<Vec<Layer<T>>, String> {
    let list = v.as_array().ok_or("`layers` must be a list")?;
    list.iter().map(|l| parse_layer(l, st)).collect()
}

fn parse_layer<T: Scalar>(l: &Value, st: &SafeTensors<'_>) -> Result<Layer<T>, String> {
    let kind = l["type"].as_str().ok_or("a layer has no `type`")?;
    let kernel = |k: usize| -> Result<Kernel<T>, String> {
        let (out, inp) = (field(l, "out")?, field(l, "in")?);
        let shape: Vec<usize> = if kind == "dense" {
            vec![out, inp]
        } else {
            vec![out, inp, k, k]
        };
        Ok(Kernel {
            out,
            inp,
            k,
            weight: tensor(st, l, "weight", &shape)?,
            bias: tensor(st, l, "bias", &[out])?,
        })
    };
    let pool = || -> Result<Pool, String> {
        Ok(Pool {
            k: field(l, "kernel")?,
            stride: field(l, "stride")?,
            ceil: l["ceil_mode"]
                .as_bool()
                .ok_or("pooling field `ceil_mode` missing")?,
        })
    };
    Ok(match kind {
        "dense" => Layer::Dense(kernel(1)?),
        "conv2d" => Layer::Conv2d(Conv2d {
            kernel: kernel(field(l, "kernel")?)?,
            stride: field(l, "stride")?,
            pad: field(l, "padding")?,
        }),
        "maxpool2d" => Layer::MaxPool2d(pool()?),
        "avgpool2d" => Layer::AvgPool2d(pool()?),
        "flatten" => Layer::Flatten,
        "activation" => {
            let function = l["function"]
                .as_str()
                .ok_or("activation field `function` missing")?;
            let kind = [
                ActKind::Relu,
                ActKind::Tanh,
                ActKind::Sigmoid,
                ActKind::Identity,
            ]
            .into_iter()
            .find(|k| k.name() == function)
            .ok_or_else(|| format!("unknown activation function {function:?}"))?;
            let c = field(l, "channels")?;
            Layer::Activation(PActivation {
                kind,
                a: tensor(st, l, "a", &[c])?,
            })
        }
        "parallel_sum" => {
            let bs = l["branches"]
                .as_array()
                .ok_or("`branches` must be a list")?;
            Layer::ParallelSum(
                bs.iter()
                    .map(|b| parse_layers(b, st))
                    .collect::<Result<_, _>>()?,
            )
        }
        other => return Err(format!("unknown layer type {other:?}")),
    })
}
