//! [`export`]: a netmorph network as an ONNX `ModelProto`, one node (or a few) per layer.

use netmorph_core::{ActKind, Kernel, Layer, Network, PActivation, Pool, Scalar, Shape};
use prost::Message;

use super::proto::{
    attribute_type, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use super::{tensor, OnnxError, BATCH, INPUT, INPUT_SCALE_KEY, IR_VERSION, OPSET, OUTPUT};
use crate::data::InputScale;

/// Writes `net` as an ONNX model (`ModelProto` bytes): IR version [`IR_VERSION`], opset
/// [`OPSET`] of the default domain, producer `netmorph`. The graph takes `input`, shaped
/// `[N, C, H, W]` (or `[N, F]` for a flat network: input `[F, 1, 1]` whose first layer that
/// cares is dense), and gives `logits`, `[N, classes]`; parameters are initializers named as
/// in netmorph model files (`layers.3.weight`), `FLOAT` for f32 networks and `DOUBLE` for
/// f64. `docs/onnx.md` lists the node each layer becomes.
///
/// # Errors
/// [`OnnxError::Export`] for the one layout ONNX cannot express as netmorph computes it: a
/// ceil-mode pooling whose output size ONNX's formula gets wrong on one axis while the other
/// axis needs ceil mode (a stride larger than the window, on a non-square input).
///
/// # Examples
/// ```
/// use netmorph::onnx::{export, import};
/// use netmorph::{ActKind, Kernel, Layer, Network, PActivation, Rng, Shape, Tensor};
/// let mut rng = Rng::seed(1);
/// let mut k = Kernel::<f32>::zeros(4, 3, 1);
/// k.weight = rng.normals(12, 1.0).iter().map(|&v| v as f32).collect();
/// let mut act = PActivation::plain(ActKind::Tanh, 4);
/// act.a = vec![0.0, 0.25, 0.5, 1.0];
/// let net = Network::new(Shape::flat(3), vec![Layer::Dense(k), Layer::Activation(act)]).unwrap();
/// let bytes = export(&net).unwrap();
/// let back: Network<f32> = import(&bytes).unwrap();
/// assert_eq!(back, net);
/// let x = Tensor::random(5, Shape::flat(3), &mut rng);
/// assert_eq!(back.forward(&x).unwrap(), net.forward(&x).unwrap());
/// ```
pub fn export<T: Scalar>(net: &Network<T>) -> Result<Vec<u8>, OnnxError> {
    export_scaled(net, InputScale::Standard)
}

/// [`export`] of a network trained on inputs scaled as `scale`, stored in the model's
/// `metadata_props` under [`INPUT_SCALE_KEY`] (see [`import_scaled`](super::import_scaled)):
/// an ONNX consumer must scale its inputs so.
///
/// # Errors
/// As [`export`].
pub fn export_scaled<T: Scalar>(net: &Network<T>, scale: InputScale) -> Result<Vec<u8>, OnnxError> {
    let input_shape = net.input_shape();
    let rank4 = !input_shape.is_flat() || needs_image(net.layers()) == Some(true);
    let input = Blob {
        value: INPUT.to_string(),
        shape: input_shape,
        rank4,
    };
    let mut w = Writer::<T>::default();
    let out = w.seq(net.layers(), "layers.", input.clone())?;
    w.name_output(&out.value);
    let graph = GraphProto {
        node: w.nodes,
        name: Some("netmorph".into()),
        initializer: w.initializers,
        input: vec![value_info::<T>(&input)],
        output: vec![value_info::<T>(&Blob {
            value: OUTPUT.to_string(),
            ..out
        })],
        ..GraphProto::default()
    };
    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("netmorph".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        metadata_props: vec![StringStringEntryProto {
            key: Some(INPUT_SCALE_KEY.into()),
            value: Some(scale.name().into()),
        }],
    };
    Ok(model.encode_to_vec())
}

/// Whether the first layer of `layers` that cares about its input's rank wants an image
/// (convolution, pooling: `Some(true)`) or a flat blob (dense, flatten: `Some(false)`).
fn needs_image<T>(layers: &[Layer<T>]) -> Option<bool> {
    layers.iter().find_map(|l| match l {
        Layer::Conv2d(_) | Layer::MaxPool2d(_) | Layer::AvgPool2d(_) => Some(true),
        Layer::Dense(_) | Layer::Flatten => Some(false),
        Layer::Activation(_) => None,
        Layer::ParallelSum(bs) => bs.iter().find_map(|b| needs_image(b)),
    })
}

/// A value in the graph: its name, the netmorph shape of one sample, and whether ONNX holds
/// it as `[N, C, H, W]` (else `[N, C]`, for flat blobs).
#[derive(Clone, Debug)]
struct Blob {
    value: String,
    shape: Shape,
    rank4: bool,
}

/// The nodes and initializers written so far.
struct Writer<T> {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    scalar: core::marker::PhantomData<T>,
}

impl<T> Default for Writer<T> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            scalar: core::marker::PhantomData,
        }
    }
}

impl<T: Scalar> Writer<T> {
    /// Writes `layers`, named `{prefix}{index}`, on `x`; returns their output.
    fn seq(&mut self, layers: &[Layer<T>], prefix: &str, x: Blob) -> Result<Blob, OnnxError> {
        layers
            .iter()
            .enumerate()
            .try_fold(x, |x, (i, l)| self.layer(l, &format!("{prefix}{i}"), x))
    }

    /// Writes one layer named `name` on `x`.
    fn layer(&mut self, l: &Layer<T>, name: &str, x: Blob) -> Result<Blob, OnnxError> {
        let out = format!("{name}.output");
        let s = x.shape;
        Ok(match l {
            Layer::Dense(k) => {
                let x = self.flat(x, name);
                self.linear(k, name, &[k.out, k.inp]);
                let attrs = vec![int("transB", 1)];
                self.node(
                    "Gemm",
                    name,
                    &[&x.value, &param(name, "weight"), &param(name, "bias")],
                    &out,
                    attrs,
                );
                Blob {
                    value: out,
                    shape: Shape::flat(k.out),
                    rank4: false,
                }
            }
            Layer::Conv2d(c) => {
                let x = self.image(x, name);
                let k = &c.kernel;
                self.linear(k, name, &[k.out, k.inp, k.k, k.k]);
                let attrs = vec![
                    ints("kernel_shape", &[k.k; 2]),
                    ints("strides", &[c.stride; 2]),
                    ints("pads", &[c.pad; 4]),
                    ints("dilations", &[1; 2]),
                    int("group", 1),
                ];
                self.node(
                    "Conv",
                    name,
                    &[&x.value, &param(name, "weight"), &param(name, "bias")],
                    &out,
                    attrs,
                );
                let side = |n: usize| (n + 2 * c.pad - k.k) / c.stride + 1;
                Blob {
                    value: out,
                    shape: Shape::image(k.out, side(s.h), side(s.w)),
                    rank4: true,
                }
            }
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                let x = self.image(x, name);
                let mut attrs = vec![
                    ints("kernel_shape", &[p.k; 2]),
                    ints("strides", &[p.stride; 2]),
                    ints("pads", &[0; 4]),
                    int("ceil_mode", ceil_mode(p, s, name)?),
                ];
                let op = if let Layer::AvgPool2d(_) = l {
                    // Windows clipped at the border are divided by their clipped size.
                    attrs.push(int("count_include_pad", 0));
                    "AveragePool"
                } else {
                    "MaxPool"
                };
                self.node(op, name, &[&x.value], &out, attrs);
                // A validated network's windows fit (`out_len` is `Some`).
                let side = |n: usize| p.out_len(n).unwrap_or(0);
                Blob {
                    value: out,
                    shape: Shape::image(s.c, side(s.h), side(s.w)),
                    rank4: true,
                }
            }
            Layer::Flatten => {
                self.node("Flatten", name, &[&x.value], &out, vec![int("axis", 1)]);
                Blob {
                    value: out,
                    shape: Shape::flat(s.len()),
                    rank4: false,
                }
            }
            Layer::Activation(a) => {
                self.activation(a, name, &x, &out);
                Blob { value: out, ..x }
            }
            Layer::ParallelSum(bs) => self.parallel(bs, name, x, &out)?,
        })
    }

    /// `x` as `[N, F]`: itself, or through a `Reshape` named `{name}.flat` (a dense layer
    /// right after a convolution or pooling whose output is `C x 1 x 1`).
    fn flat(&mut self, x: Blob, name: &str) -> Blob {
        if x.rank4 {
            self.reshape(x, name, false)
        } else {
            x
        }
    }

    /// `x` as `[N, C, H, W]`: itself, or through a `Reshape` named `{name}.image` (a
    /// convolution or pooling after a dense layer: `C x 1 x 1`).
    fn image(&mut self, x: Blob, name: &str) -> Blob {
        if x.rank4 {
            x
        } else {
            self.reshape(x, name, true)
        }
    }

    /// A flat blob `C x 1 x 1` reshaped from `[N, C, 1, 1]` to `[N, C]` or back: netmorph
    /// holds both alike, so no layer stands for it.
    fn reshape(&mut self, x: Blob, name: &str, rank4: bool) -> Blob {
        let c = x.shape.len() as i64;
        let (what, target) = if rank4 {
            ("image", vec![-1, c, 1, 1])
        } else {
            ("flat", vec![-1, c])
        };
        let value = format!("{name}.{what}");
        let shape = format!("{value}_shape");
        self.initializers.push(tensor::encode_ints(&shape, &target));
        self.node("Reshape", &value, &[&x.value, &shape], &value, Vec::new());
        Blob { value, rank4, ..x }
    }

    /// The initializers `{name}.weight` (shaped `dims`) and `{name}.bias` of a kernel.
    fn linear(&mut self, k: &Kernel<T>, name: &str, dims: &[usize]) {
        self.init(&param(name, "weight"), dims, &k.weight);
        self.init(&param(name, "bias"), &[k.out], &k.bias);
    }

    /// A P-activation `(1 - a) phi(x) + a x`: the plain `phi` node where every `a` is 0, else
    /// `Add(Mul(phi(x), 1 - a), Mul(x, a))` with per-channel constants, which rounds exactly
    /// as netmorph's forward pass does.
    fn activation(&mut self, a: &PActivation<T>, name: &str, x: &Blob, out: &str) {
        let phi = match a.kind {
            ActKind::Relu => "Relu",
            ActKind::Tanh => "Tanh",
            ActKind::Sigmoid => "Sigmoid",
            ActKind::Identity => "Identity",
        };
        if a.a.iter().all(|v| *v == T::zero()) {
            self.node(phi, name, &[&x.value], out, Vec::new());
            return;
        }
        let dims: &[usize] = if x.rank4 {
            &[a.a.len(), 1, 1]
        } else {
            &[a.a.len()]
        };
        let one_minus: Vec<T> = a.a.iter().map(|&v| T::one() - v).collect();
        let (a_name, s_name) = (param(name, "a"), param(name, "one_minus_a"));
        self.init(&a_name, dims, &a.a);
        self.init(&s_name, dims, &one_minus);
        let [phi_out, mul_phi, mul_x] = ["phi", "mul_phi", "mul_x"].map(|p| format!("{name}.{p}"));
        self.node(phi, &phi_out, &[&x.value], &phi_out, Vec::new());
        self.node("Mul", &mul_phi, &[&phi_out, &s_name], &mul_phi, Vec::new());
        self.node("Mul", &mul_x, &[&x.value, &a_name], &mul_x, Vec::new());
        self.node("Add", name, &[&mul_phi, &mul_x], out, Vec::new());
    }

    /// Every branch on `x`, then `Add` nodes summing their outputs in order.
    fn parallel(
        &mut self,
        branches: &[Vec<Layer<T>>],
        name: &str,
        x: Blob,
        out: &str,
    ) -> Result<Blob, OnnxError> {
        let mut outs = Vec::with_capacity(branches.len());
        for (b, seq) in branches.iter().enumerate() {
            outs.push(self.seq(seq, &format!("{name}.branches.{b}."), x.clone())?);
        }
        // Equal shapes, possibly different ranks (`C x 1 x 1` from a convolution, `C` from a
        // dense layer): add them as `[N, C]`.
        if outs.iter().any(|o| !o.rank4) {
            outs = outs
                .into_iter()
                .enumerate()
                .map(|(b, o)| self.flat(o, &format!("{name}.branches.{b}")))
                .collect();
        }
        let mut outs = outs.into_iter();
        let Some(mut sum) = outs.next() else {
            return Ok(x);
        };
        let last = branches.len().saturating_sub(1);
        for (b, o) in outs.enumerate().map(|(i, o)| (i + 1, o)) {
            let value = if b == last {
                out.to_string()
            } else {
                format!("{name}.sum.{b}")
            };
            self.node(
                "Add",
                &format!("{name}.sum.{b}"),
                &[&sum.value, &o.value],
                &value,
                Vec::new(),
            );
            sum = Blob { value, ..sum };
        }
        Ok(sum)
    }

    fn init(&mut self, name: &str, dims: &[usize], values: &[T]) {
        self.initializers.push(tensor::encode(name, dims, values));
    }

    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(name.to_string()),
            op_type: Some(op.to_string()),
            domain: None,
            attribute,
        });
    }

    /// Renames the graph's last value to [`OUTPUT`] (an `Identity` node when the network has
    /// no layers and its output is the input).
    fn name_output(&mut self, last: &str) {
        let producer = self
            .nodes
            .iter_mut()
            .flat_map(|n| n.output.iter_mut())
            .find(|o| o.as_str() == last);
        match producer {
            Some(o) => *o = OUTPUT.to_string(),
            None => self.node("Identity", OUTPUT, &[last], OUTPUT, Vec::new()),
        }
    }
}

/// The `ceil_mode` that gives `p`'s output on input `s`. ONNX sizes a ceil-mode output as
/// `ceil((n - k) / s) + 1`, without netmorph's (and PyTorch's) correction for a last window
/// starting past the input; where that correction applies, the output is floor mode's, so
/// floor mode is written.
fn ceil_mode(p: &Pool, s: Shape, name: &str) -> Result<i64, OnnxError> {
    if !p.ceil {
        return Ok(0);
    }
    let floor = Pool { ceil: false, ..*p };
    let onnx = |n: usize| n.checked_sub(p.k).map(|span| span.div_ceil(p.stride) + 1);
    let axes = [s.h, s.w];
    if axes.iter().all(|&n| onnx(n) == p.out_len(n)) {
        Ok(1)
    } else if axes.iter().all(|&n| floor.out_len(n) == p.out_len(n)) {
        Ok(0)
    } else {
        Err(OnnxError::Export {
            layer: name.to_string(),
            reason: format!(
                "on its {}x{} input, ONNX's ceil-mode output size disagrees with netmorph's on \
                 one axis while the other needs ceil mode; use a stride no larger than the window",
                s.h, s.w
            ),
        })
    }
}

/// `{name}.{what}`: a parameter's tensor name.
fn param(name: &str, what: &str) -> String {
    format!("{name}.{what}")
}

/// A graph input or output: `[N, C, H, W]` or `[N, F]` in `T`'s element type.
fn value_info<T: Scalar>(b: &Blob) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |v: Value| Dimension { value: Some(v) };
    let sizes: Vec<usize> = if b.rank4 {
        vec![b.shape.c, b.shape.h, b.shape.w]
    } else {
        vec![b.shape.len()]
    };
    let mut dims = vec![dim(Value::DimParam(BATCH.into()))];
    dims.extend(sizes.iter().map(|&n| dim(Value::DimValue(n as i64))));
    ValueInfoProto {
        name: Some(b.value.clone()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(tensor::elem_type::<T>()),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
        }),
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(v),
        ..AttributeProto::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.iter().map(|&n| n as i64).collect(),
        ..AttributeProto::default()
    }
}
