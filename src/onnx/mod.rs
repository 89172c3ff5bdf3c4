//! ONNX export and import: a netmorph network as an ONNX model that ONNX Runtime (or any
//! ONNX consumer) runs, and ONNX models (netmorph's own and the `nn.Sequential` models
//! `torch.onnx.export` writes) read back as networks that `netmorph` can morph.
//!
//! | netmorph layer | ONNX nodes |
//! |---|---|
//! | dense | `Gemm` (`transB = 1`), after a `Flatten` if its input is an image `C x 1 x 1` |
//! | conv2d | `Conv` (`kernel_shape`, `strides`, `pads [p, p, p, p]`, dilation 1, group 1) |
//! | maxpool2d, avgpool2d | `MaxPool`, `AveragePool` (`count_include_pad = 0`), unpadded |
//! | flatten | `Flatten` (`axis = 1`) |
//! | activation, every `a = 0` | `Relu`, `Tanh`, `Sigmoid` or `Identity` |
//! | activation `(1 - a) phi(x) + a x` | `Add(Mul(phi(x), 1 - a), Mul(x, a))`, per-channel constants |
//! | parallel_sum | every branch on the block's input, then `Add` nodes summing in order |
//!
//! The messages are the subset of `onnx.proto` in [`proto`], written by hand for prost (no
//! protoc, no build script). `docs/onnx.md` describes what is read and refused.

mod error;
mod export;
mod import;
pub mod proto;
mod tensor;

pub use error::OnnxError;
pub use export::{export, export_scaled};
pub use import::{import, import_scaled, precision, MAX_NODES, MAX_SYNTHESIZED};

/// The IR version [`export`] writes (ONNX 1.10's, read by every current runtime).
pub const IR_VERSION: i64 = 8;

/// The default-domain operator set [`export`] writes, and the oldest [`import`] reads.
pub const OPSET: i64 = 13;

/// The name of the graph input [`export`] writes.
pub const INPUT: &str = "input";

/// The name of the graph output [`export`] writes.
pub const OUTPUT: &str = "logits";

/// The symbolic batch axis of the graph's input and output.
pub const BATCH: &str = "N";

/// The `metadata_props` key under which [`export_scaled`] stores how the network's inputs
/// are scaled (`standard` or `pixels`, as in model files).
pub const INPUT_SCALE_KEY: &str = "netmorph.input_scale";
