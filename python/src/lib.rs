//! `netmorph._netmorph`: the Rust half of the `netmorph` Python package.
//!
//! A `Model` holds a network in the precision it was made in (f32 or f64) and the scale of
//! the inputs it was trained on. Everything crosses the boundary in the project's model file
//! layout (architecture JSON plus named tensors as raw little-endian bytes), so the Python half
//! (`py_src/netmorph`) converts to and from PyTorch without this crate knowing torch.
//! Morphs run with the GIL released. Errors become `netmorph.NetmorphError` carrying the
//! library's message.

use std::collections::HashMap;
use std::path::PathBuf;

use netmorph::carry::{origins, Origin};
use netmorph::data::InputScale;
use netmorph::memory::{forward_bytes, Budget};
use netmorph::model_file::{self, Precision};
use netmorph::morph::MorphReport;
use netmorph::ops::{deviation, parse_op, tolerance, Deviation};
use netmorph::{Network, Rng, Scalar, Tensor};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use safetensors::tensor::{Dtype, TensorView};

pyo3::create_exception!(
    netmorph,
    NetmorphError,
    PyValueError,
    "An error from netmorph: a bad model, a morph that does not apply, a file that cannot be read or written."
);

/// Any displayable error as a [`NetmorphError`].
fn err(e: impl std::fmt::Display) -> PyErr {
    NetmorphError::new_err(e.to_string())
}

/// A network in the precision it was made in.
#[derive(Clone)]
enum Net {
    F32(Network<f32>),
    F64(Network<f64>),
}

/// Runs `$body` with `$n` bound to the network, whatever its precision.
macro_rules! with_net {
    ($net:expr, $n:ident => $body:expr) => {
        match $net {
            Net::F32($n) => $body,
            Net::F64($n) => $body,
        }
    };
}

/// A trained network netmorph can morph: build one with `netmorph.from_torch`,
/// `netmorph.load` or `Model.from_parts`.
#[pyclass(frozen, module = "netmorph._netmorph")]
struct Model {
    net: Net,
    scale: InputScale,
}

impl Model {
    fn from_file_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(match model_file::precision_of(data).map_err(err)? {
            Precision::F32 => {
                let (n, scale) = model_file::from_bytes_scaled(data).map_err(err)?;
                Self {
                    net: Net::F32(n),
                    scale,
                }
            }
            Precision::F64 => {
                let (n, scale) = model_file::from_bytes_scaled(data).map_err(err)?;
                Self {
                    net: Net::F64(n),
                    scale,
                }
            }
        })
    }

    fn file_bytes(&self) -> PyResult<Vec<u8>> {
        with_net!(&self.net, n => model_file::to_bytes_scaled(n, self.scale)).map_err(err)
    }
}

#[pymethods]
impl Model {
    /// A model from its architecture JSON (the `netmorph` metadata entry of docs/format.md)
    /// and its tensors: a dict from name to `(shape, little-endian bytes)` in the JSON's dtype.
    #[staticmethod]
    fn from_parts(arch: &str, tensors: HashMap<String, (Vec<usize>, Vec<u8>)>) -> PyResult<Self> {
        let json: serde_json::Value = serde_json::from_str(arch).map_err(err)?;
        let dtype = match json["dtype"].as_str().and_then(Precision::parse) {
            Some(Precision::F32) => Dtype::F32,
            Some(Precision::F64) => Dtype::F64,
            None => return Err(err("the architecture's `dtype` must be \"f32\" or \"f64\"")),
        };
        let views = tensors
            .iter()
            .map(|(name, (shape, data))| {
                TensorView::new(dtype, shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| err(format!("tensor `{name}`: {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let meta = HashMap::from([(model_file::METADATA_KEY.to_string(), arch.to_string())]);
        let data = safetensors::serialize(views, Some(meta)).map_err(err)?;
        Self::from_file_bytes(&data)
    }

    /// A model from the bytes of a model file.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Self::from_file_bytes(data)
    }

    /// The bytes of this model's file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.file_bytes()?))
    }

    /// Reads a model file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let data = py
            .detach(|| std::fs::read(&path))
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        Self::from_file_bytes(&data).map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// Writes the model file atomically (a temporary file renamed into place).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let data = self.file_bytes()?;
        py.detach(|| netmorph::atomic::write_atomic(&path, &data))
            .map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// The architecture JSON (docs/format.md).
    fn arch(&self) -> PyResult<String> {
        let data = self.file_bytes()?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&data).map_err(err)?;
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(model_file::METADATA_KEY))
            .cloned()
            .ok_or_else(|| err("the model file has no architecture"))
    }

    /// The tensors: a list of `(name, shape, little-endian bytes)`.
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let data = self.file_bytes()?;
        let st = safetensors::SafeTensors::deserialize(&data).map_err(err)?;
        let out = PyList::empty(py);
        for (name, t) in st.tensors() {
            out.append((name, t.shape().to_vec(), PyBytes::new(py, t.data())))?;
        }
        Ok(out)
    }

    /// `"f32"` or `"f64"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.net {
            Net::F32(_) => f32::NAME,
            Net::F64(_) => f64::NAME,
        }
    }

    /// `(channels, height, width)` of one input (`(features, 1, 1)` for flat inputs).
    #[getter]
    fn input_shape(&self) -> (usize, usize, usize) {
        let s = with_net!(&self.net, n => n.input_shape());
        (s.c, s.h, s.w)
    }

    /// Number of learnable parameters.
    #[getter]
    fn param_count(&self) -> usize {
        with_net!(&self.net, n => n.param_count())
    }

    /// Applies one morph operation in the command line's language (`netmorph ops`,
    /// e.g. `"depth@3,cl=64,k1=3,k2=3,act=tanh"`) and returns the child and a report.
    ///
    /// The child is measured on `probes` random inputs; an exact operation whose child moved
    /// further than its precision allows (1e-4 relative in f32, 1e-9 in f64) is an error
    /// unless `allow_deviation`.
    #[pyo3(signature = (op, seed = 0, probes = 256, allow_deviation = false))]
    fn morph<'py>(
        &self,
        py: Python<'py>,
        op: &str,
        seed: u64,
        probes: usize,
        allow_deviation: bool,
    ) -> PyResult<(Model, Bound<'py, PyDict>)> {
        let parsed = parse_op(op).map_err(err)?;
        let net = self.net.clone();
        let (child, report, carry, dev) = py.detach(|| {
            with_net!(net, n => morph_one(&n, &parsed, seed, probes)
                .map(|(c, r, o, d)| (Net::from(c), r, o, d)))
        })?;
        let exact = dev.rel.is_finite() && dev.rel <= tolerance_of(&child);
        if parsed.is_exact() && !exact && !allow_deviation {
            return Err(err(format!(
                "operation `{op}`: the child's outputs moved by {:.2e} relative to the parent's, more than the {:.0e} its precision allows (pass allow_deviation=True to keep it anyway)",
                dev.rel,
                tolerance_of(&child)
            )));
        }
        let dict = report_dict(py, &report, &carry, dev)?;
        Ok((
            Model {
                net: child,
                scale: self.scale,
            },
            dict,
        ))
    }

    /// The ONNX bytes of this model (docs/onnx.md).
    fn export_onnx<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data =
            with_net!(&self.net, n => netmorph::onnx::export_scaled(n, self.scale)).map_err(err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// A model from ONNX bytes (docs/onnx.md), in precision `dtype` (`"f32"` or `"f64"`;
    /// default: the file's).
    #[staticmethod]
    #[pyo3(signature = (data, dtype = None))]
    fn import_onnx(py: Python<'_>, data: &[u8], dtype: Option<&str>) -> PyResult<Self> {
        let precision = match dtype {
            None => netmorph::onnx::precision(data).map_err(err)?,
            Some(name) => Precision::parse(name)
                .ok_or_else(|| err(format!("dtype {name:?}: use \"f32\" or \"f64\"")))?,
        };
        let (net, scale) = py
            .detach(|| match precision {
                Precision::F32 => {
                    netmorph::onnx::import_scaled(data).map(|(n, s)| (Net::F32(n), s))
                }
                Precision::F64 => {
                    netmorph::onnx::import_scaled(data).map(|(n, s)| (Net::F64(n), s))
                }
            })
            .map_err(err)?;
        Ok(Self { net, scale })
    }

    fn __repr__(&self) -> String {
        let (c, h, w) = self.input_shape();
        format!(
            "netmorph.Model(input=({c}, {h}, {w}), layers={}, params={}, dtype={})",
            with_net!(&self.net, n => n.layers().len()),
            self.param_count(),
            self.dtype()
        )
    }
}

impl From<Network<f32>> for Net {
    fn from(n: Network<f32>) -> Self {
        Self::F32(n)
    }
}

impl From<Network<f64>> for Net {
    fn from(n: Network<f64>) -> Self {
        Self::F64(n)
    }
}

/// The preservation tolerance of `net`'s precision.
fn tolerance_of(net: &Net) -> f64 {
    match net {
        Net::F32(_) => tolerance::<f32>(),
        Net::F64(_) => tolerance::<f64>(),
    }
}

type Morphed<T> = (Network<T>, MorphReport, Vec<Origin>, Deviation);

/// `op` on `net` once its cost fits the memory available, the parameters' origins, and how far
/// the child moved on `probes` random inputs (the CLI's seeds).
fn morph_one<T: Scalar>(
    net: &Network<T>,
    op: &netmorph::morph::plan::MorphOp,
    seed: u64,
    probes: usize,
) -> PyResult<Morphed<T>> {
    let budget = Budget::new(None);
    let cost = op.cost(net).map_err(err)?;
    budget
        .check(
            &format!("the morph ({} parameters after it)", cost.params_after),
            u64::try_from(cost.workspace_bytes).ok(),
        )
        .map_err(err)?;
    budget
        .check("the forward pass on the probes", forward_bytes(net, probes))
        .map_err(err)?;
    let x: Tensor<T> = Tensor::random(probes, net.input_shape(), &mut Rng::seed(seed ^ 0x5eed));
    let reference = net.forward(&x).map_err(err)?;
    let (child, report) = op.apply(net, &mut Rng::seed(seed)).map_err(err)?;
    let carry = origins(net, &child, &report).map_err(err)?;
    let dev = deviation(&child.forward(&x).map_err(err)?.data, &reference.data);
    Ok((child, report, carry, dev))
}

/// `v`, or `None` where it is not a finite number.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn report_dict<'py>(
    py: Python<'py>,
    r: &MorphReport,
    carry: &[Origin],
    dev: Deviation,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("op", r.op)?;
    d.set_item("layer", r.layer.to_string())?;
    d.set_item("params_before", r.params_before)?;
    d.set_item("params_after", r.params_after)?;
    d.set_item("nonzero_fraction", r.nonzero_fraction)?;
    d.set_item("algorithm", r.algorithm.map(|a| a.name()))?;
    d.set_item("condition7", r.condition7)?;
    d.set_item("residual", finite(r.residual))?;
    d.set_item("solves", r.solves)?;
    d.set_item("max_abs_deviation", finite(dev.abs))?;
    d.set_item("max_rel_deviation", finite(dev.rel))?;
    let layers = PyList::empty(py);
    for l in &r.new_layers {
        let e = PyDict::new(py);
        e.set_item("path", l.path.to_string())?;
        e.set_item("type", l.kind)?;
        e.set_item("out", l.out)?;
        e.set_item("in", l.inp)?;
        e.set_item("kernel", l.k)?;
        layers.append(e)?;
    }
    d.set_item("new_layers", layers)?;
    let list = PyList::empty(py);
    for o in carry {
        let e = PyDict::new(py);
        e.set_item("child", &o.child)?;
        e.set_item("shape", &o.shape)?;
        e.set_item("parent", o.parent.as_ref().map(|p| &p.0))?;
        e.set_item("parent_shape", o.parent.as_ref().map(|p| &p.1))?;
        e.set_item("index", &o.index)?;
        list.append(e)?;
    }
    d.set_item("carry", list)?;
    Ok(d)
}

/// Writes `data` to `path` atomically (a temporary file beside it, fsync, rename).
#[pyfunction]
fn write_atomic(py: Python<'_>, path: PathBuf, data: Vec<u8>) -> PyResult<()> {
    py.detach(|| netmorph::atomic::write_atomic(&path, &data))
        .map_err(|e| err(format!("{}: {e}", path.display())))
}

/// The extension module.
#[pymodule]
fn _netmorph(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(write_atomic, m)?)?;
    m.add("NetmorphError", m.py().get_type::<NetmorphError>())?;
    m.add("OPS_HELP", netmorph::ops::help())?;
    Ok(())
}
