//! [`OnnxError`]: why a network cannot be written as ONNX or an ONNX file read as a network.

use std::fmt;

use netmorph_core::NetError;

/// Why [`export`](super::export) or [`import`](super::import) failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OnnxError {
    /// The bytes are not a protobuf-encoded `ModelProto` (truncated or not ONNX).
    Decode(String),
    /// A node netmorph cannot represent.
    Unsupported {
        /// The node's name (`""` if it has none).
        node: String,
        /// Its operator.
        op_type: String,
        /// Why, and what netmorph supports instead.
        reason: String,
    },
    /// The model or graph as a whole: operator sets, inputs and outputs, data flow.
    Graph(String),
    /// A constant tensor (initializer or `Constant` node).
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The layers read from the graph do not form a valid network.
    Network {
        /// The node the layer came from (`""` for the network's input).
        node: String,
        /// Its operator (`""` for the network's input).
        op_type: String,
        /// What netmorph found wrong, the layer path naming the layer in the imported network
        /// (boxed: it is the largest of the variants' fields).
        source: Box<NetError>,
    },
    /// A netmorph layer that ONNX's operators cannot express as netmorph computes it.
    Export {
        /// The layer's tensor-name prefix (`layers.3`).
        layer: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(
                f,
                "not a valid ONNX model (protobuf decoding failed: {e}); check that the file is \
                 complete and an .onnx model"
            ),
            Self::Unsupported {
                node,
                op_type,
                reason,
            } => write!(f, "node \"{node}\" ({op_type}): {reason}"),
            Self::Graph(reason) => write!(f, "ONNX graph: {reason}"),
            Self::Tensor { name, reason } => write!(f, "tensor \"{name}\": {reason}"),
            Self::Network {
                node,
                op_type,
                source,
            } if node.is_empty() && op_type.is_empty() => {
                write!(
                    f,
                    "the graph's input does not give a valid network: {source}"
                )
            }
            Self::Network {
                node,
                op_type,
                source,
            } => write!(f, "node \"{node}\" ({op_type}): {source}"),
            Self::Export { layer, reason } => {
                write!(f, "layer {layer} cannot be written as ONNX: {reason}")
            }
        }
    }
}

impl std::error::Error for OnnxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Network { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
