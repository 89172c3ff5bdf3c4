//! [`import`]: an ONNX model read back as a netmorph network, in two passes. [`graph`]
//! follows the data flow from the graph's input to its output and finds netmorph's structure
//! in it (a chain, P-activations, parallel branches joined by `Add`); [`layers`] turns each
//! step into a layer, checking every constant against the shape that reaches it.

mod attrs;
mod graph;
mod layers;

use netmorph_core::{Layer, LayerPath, NetError, Network, Scalar, Shape};
use prost::Message;

use super::proto::{data_type, tensor_shape_proto::dimension, type_proto, GraphProto, ModelProto};
use super::{OnnxError, INPUT_SCALE_KEY, OPSET};
use crate::data::InputScale;
use crate::model_file::{Precision, ScaledNetwork};
use graph::{op, Graph, Item};
use layers::{Blob, Reader, Step};

pub use graph::MAX_NODES;
pub use layers::MAX_SYNTHESIZED;

/// Reads an ONNX model (`ModelProto` bytes) as a network in `T` (`FLOAT` and `DOUBLE`
/// constants are converted; f64 to f32 rounds).
///
/// Reads what [`export`](super::export) writes (the network comes back with identical
/// parameters and forward outputs) and what `torch.onnx.export` writes for `nn.Sequential`
/// models of `Conv2d` (square kernel, symmetric padding, group and dilation 1), `Linear`
/// (`Gemm`, or `MatMul` and `Add`), `ReLU`, `Tanh`, `Sigmoid`, `Identity`, `PReLU` (a
/// P-activation of ReLU with `a` the slope), unpadded `MaxPool2d`/`AvgPool2d` (ceil mode
/// either way) and `Flatten` (`Flatten`, or a `Reshape` to `[N, F]`), in opset 13 or later.
/// The graph must lead from its one input (`[N, C, H, W]` or `[N, F]`) to its one output
/// through single-input nodes, where `Add` of two computed values sums parallel branches.
/// `docs/onnx.md` has the full mapping.
///
/// # Errors
/// [`OnnxError::Decode`] for bytes that are not a `ModelProto`; [`OnnxError::Graph`] for a
/// missing graph, an operator set older than 13, more than [`MAX_NODES`] nodes, not exactly
/// one input and one output, or data flow that is not a chain with parallel branches;
/// [`OnnxError::Unsupported`] naming the node (name and operator) and the reason for anything
/// netmorph cannot represent; [`OnnxError::Tensor`] for a constant that is not `FLOAT`/`DOUBLE`
/// (`INT64` for shapes), is stored externally, or whose data length disagrees with its shape;
/// [`OnnxError::Network`] naming the node whose layer does not fit its input.
///
/// # Examples
/// See [`export`](super::export) for a round trip. Anything else is refused with a reason:
/// ```
/// use netmorph::onnx::{import, OnnxError};
/// let e = import::<f32>(b"not a model").unwrap_err();
/// assert!(matches!(e, OnnxError::Decode(_)), "{e}");
/// ```
pub fn import<T: Scalar>(bytes: &[u8]) -> Result<Network<T>, OnnxError> {
    Ok(import_scaled(bytes)?.0)
}

/// [`import`], and the scale of the inputs the network was trained on, as
/// [`export_scaled`](super::export_scaled) stores it ([`InputScale::Standard`] for models
/// that do not say, such as PyTorch's).
///
/// # Errors
/// As [`import`]; [`OnnxError::Graph`] for an unknown scale under
/// [`INPUT_SCALE_KEY`](super::INPUT_SCALE_KEY).
pub fn import_scaled<T: Scalar>(bytes: &[u8]) -> Result<ScaledNetwork<T>, OnnxError> {
    let model = decode(bytes)?;
    let scale = input_scale(&model)?;
    let g = model_graph(&model)?;
    let graph = Graph::new(g)?;
    let (x, batch) = input(g, graph.input)?;
    let network = |source| OnnxError::Network {
        node: String::new(),
        op_type: String::new(),
        source: Box::new(source),
    };
    // The input alone first: its size bounds every shape after it.
    Network::<T>::new(x.shape, Vec::new()).map_err(network)?;
    let items = graph.structure()?;
    let mut reader = Reader {
        graph: &graph,
        batch,
        synthesized: 0,
    };
    let (layers, _) = seq(&mut reader, &items, x, None)?;
    Ok((Network::new(x.shape, layers).map_err(network)?, scale))
}

/// The input scale the model's metadata states, standard if none.
fn input_scale(model: &ModelProto) -> Result<InputScale, OnnxError> {
    let Some(name) = model
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some(INPUT_SCALE_KEY))
        .map(|p| p.value.as_deref().unwrap_or(""))
    else {
        return Ok(InputScale::Standard);
    };
    InputScale::parse(name).ok_or_else(|| {
        OnnxError::Graph(format!(
            "its metadata {INPUT_SCALE_KEY} is \"{name}\"; netmorph knows \"standard\" and \
             \"pixels\""
        ))
    })
}

/// The precision of the model's input (`FLOAT`: f32, `DOUBLE`: f64): the precision to
/// import it in.
///
/// # Errors
/// As [`import`] for the model's bytes, graph and input; [`OnnxError::Graph`] for an input of
/// another element type.
pub fn precision(bytes: &[u8]) -> Result<Precision, OnnxError> {
    let model = decode(bytes)?;
    let g = model_graph(&model)?;
    let graph = Graph::new(g)?;
    Ok(elem_type(g, graph.input)?.1)
}

fn decode(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))
}

/// The model's graph, once its default-domain operator set is at least [`OPSET`].
fn model_graph(model: &ModelProto) -> Result<&GraphProto, OnnxError> {
    let version = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("" | "ai.onnx")))
        .and_then(|o| o.version);
    match version {
        Some(v) if v >= OPSET => {}
        Some(v) => {
            return Err(OnnxError::Graph(format!(
                "it uses operator set {v}; netmorph reads {OPSET} or later (export with \
                 opset_version={OPSET} or newer)"
            )))
        }
        None => {
            return Err(OnnxError::Graph(
                "it imports no version of the default ONNX operator set".into(),
            ))
        }
    }
    model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Graph("the model has no graph".into()))
}

/// The input's tensor type, and the precision of its element type.
fn elem_type<'g>(
    g: &'g GraphProto,
    name: &str,
) -> Result<(&'g type_proto::Tensor, Precision), OnnxError> {
    let info = g.input.iter().find(|v| v.name.as_deref() == Some(name));
    let Some(type_proto::Value::TensorType(t)) = info
        .and_then(|v| v.r#type.as_ref())
        .and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::Graph(format!(
            "the input \"{name}\" is not a tensor"
        )));
    };
    match t.elem_type.unwrap_or(0) {
        data_type::FLOAT => Ok((t, Precision::F32)),
        data_type::DOUBLE => Ok((t, Precision::F64)),
        other => Err(OnnxError::Graph(format!(
            "the input \"{name}\" holds {}; netmorph networks take FLOAT or DOUBLE",
            data_type::name(other)
        ))),
    }
}

/// The input's sample shape (from `[N, C, H, W]` or `[N, F]`) and its batch size if fixed.
fn input(g: &GraphProto, name: &str) -> Result<(Blob, Option<i64>), OnnxError> {
    let (t, _) = elem_type(g, name)?;
    let dims = t.shape.as_ref().map_or(&[][..], |s| &s.dim[..]);
    let size = |d: &super::proto::tensor_shape_proto::Dimension| match d.value {
        Some(dimension::Value::DimValue(v)) => usize::try_from(v).ok().filter(|&v| v > 0),
        _ => None,
    };
    let sizes: Option<Vec<usize>> = dims.iter().skip(1).map(size).collect();
    let shape =
        match (dims.len(), sizes.as_deref()) {
            (4, Some(&[c, h, w])) => Blob {
                shape: Shape::image(c, h, w),
                rank4: true,
            },
            (2, Some(&[f])) => Blob {
                shape: Shape::flat(f),
                rank4: false,
            },
            _ => {
                return Err(OnnxError::Graph(format!(
                "the input \"{name}\" must be [N, C, H, W] or [N, F] with fixed positive sizes \
                 after the batch axis; it has {} axes{}",
                dims.len(),
                if sizes.is_none() { ", some of them not fixed" } else { "" }
            )))
            }
        };
    let batch = match dims.first().and_then(|d| d.value.as_ref()) {
        Some(dimension::Value::DimValue(v)) => Some(*v),
        _ => None,
    };
    Ok((shape, batch))
}

/// The layers of `items` on input `x`, and their output. `owner` is the parallel block and
/// branch the sequence belongs to (`None`: the top level), for the layers' paths.
fn seq<T: Scalar>(
    reader: &mut Reader,
    items: &[Item],
    mut x: Blob,
    owner: Option<(&LayerPath, usize)>,
) -> Result<(Vec<Layer<T>>, Blob), OnnxError> {
    let mut layers: Vec<Layer<T>> = Vec::with_capacity(items.len());
    for item in items {
        let path = match owner {
            None => Some(LayerPath::top(layers.len())),
            Some((p, b)) => p.child(b, layers.len()),
        };
        let path = path.ok_or(OnnxError::Network {
            node: String::new(),
            op_type: String::new(),
            source: Box::new(NetError::TooDeep),
        })?;
        let (node, layer, rank4) = match item {
            Item::Node(i) => match reader.node::<T>(*i, x)? {
                Step::Layer(l, rank4) => (*i, l, rank4),
                Step::Bias(b) => {
                    add_bias(&mut layers, b)
                        .map_err(|reason| graph::unsupported(&reader.graph.nodes[*i], reason))?;
                    continue;
                }
                Step::Reshaped { rank4 } => {
                    x.rank4 = rank4;
                    continue;
                }
            },
            Item::PActivation {
                add,
                phi,
                mul_phi,
                mul_x,
            } => {
                let l = reader.p_activation(*add, *phi, (*mul_phi, *mul_x), x)?;
                (*add, l, x.rank4)
            }
            Item::Parallel { add, branches } => {
                let mut block = Vec::with_capacity(branches.len());
                let mut ranks = Vec::with_capacity(branches.len());
                for (b, items) in branches.iter().enumerate() {
                    let (ls, out) = seq(reader, items, x, Some((&path, b)))?;
                    block.push(ls);
                    ranks.push(out.rank4);
                }
                if ranks.windows(2).any(|r| r[0] != r[1]) {
                    return Err(graph::unsupported(
                        &reader.graph.nodes[*add],
                        "it adds an [N, C, H, W] value to an [N, F] one, which broadcasts into \
                         neither; flatten both branches"
                            .into(),
                    ));
                }
                (
                    *add,
                    Layer::ParallelSum(block),
                    ranks.first() == Some(&true),
                )
            }
        };
        let n = &reader.graph.nodes[node];
        let net = Network::new(x.shape, vec![layer]).map_err(|e| OnnxError::Network {
            node: n.name.clone().unwrap_or_default(),
            op_type: op(n).to_string(),
            source: Box::new(relocate(e, &path)),
        })?;
        x = Blob {
            shape: net.output_shape(),
            rank4,
        };
        layers.extend(net.into_layers());
    }
    Ok((layers, x))
}

/// Adds `b` onto the bias of the last layer, which must be dense or a convolution.
fn add_bias<T: Scalar>(layers: &mut [Layer<T>], b: Vec<T>) -> Result<(), String> {
    match layers.last_mut().and_then(Layer::kernel_mut) {
        Some(k) => {
            k.bias.iter_mut().zip(b).for_each(|(v, c)| *v += c);
            Ok(())
        }
        None => Err(
            "it adds a constant; netmorph reads that only as the bias of the \
                     MatMul, Gemm or Conv right before it"
                .into(),
        ),
    }
}

/// `e`, found checking one layer alone (as layer 0), with its layer path put where the layer
/// sits in the imported network.
fn relocate(e: NetError, path: &LayerPath) -> NetError {
    let at = |layer: LayerPath| {
        let mut p = path.clone();
        for &i in layer.0.iter().skip(1) {
            // Deeper than a path holds: keep the block's own path.
            let _ = p.0.push(i);
        }
        p
    };
    match e {
        NetError::ChannelMismatch {
            layer,
            expected,
            found,
        } => NetError::ChannelMismatch {
            layer: at(layer),
            expected,
            found,
        },
        NetError::DenseNeedsFlat { layer, found } => NetError::DenseNeedsFlat {
            layer: at(layer),
            found,
        },
        NetError::WindowTooLarge { layer, k, input } => NetError::WindowTooLarge {
            layer: at(layer),
            k,
            input,
        },
        NetError::PoolStride {
            layer,
            stride,
            useful,
        } => NetError::PoolStride {
            layer: at(layer),
            stride,
            useful,
        },
        NetError::ZeroSize { layer } => NetError::ZeroSize { layer: at(layer) },
        NetError::ParamLength { layer } => NetError::ParamLength { layer: at(layer) },
        NetError::Branches { layer } => NetError::Branches { layer: at(layer) },
        NetError::PlaneTooLarge { layer, input } => NetError::PlaneTooLarge {
            layer: at(layer),
            input,
        },
        NetError::TooLarge { layer, what } => NetError::TooLarge {
            layer: at(layer),
            what,
        },
        other => other,
    }
}
