//! ONNX export and import: every layer kind round-trips with identical parameters and forward
//! outputs (f32 and f64, plain and morphed networks), hand-built graphs in the forms other
//! exporters write are read, and everything netmorph cannot represent is refused with an
//! error naming the node. The command line's `export-onnx` and `import-onnx` end to end.

mod common;

use common::{run, s, temp_dir};

use netmorph::data::InputScale;
use netmorph::onnx::proto::{
    attribute_type, data_type, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, EXTERNAL,
};
use netmorph::onnx::{export, export_scaled, import, import_scaled, OnnxError, INPUT_SCALE_KEY};
use netmorph::{
    ActKind, Conv2d, Kernel, Layer, Network, PActivation, Pool, Rng, Scalar, Shape, Tensor,
};
use netmorph_verify::strategies::{concretize, network, plan};
use proptest::prelude::*;
use prost::Message;

// ---------------------------------------------------------------------------------------
// Networks

fn kernel<T: Scalar>(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<T> {
    let mut kern = Kernel::zeros(out, inp, k);
    kern.weight = rng
        .normals(kern.weight.len(), 0.5)
        .into_iter()
        .map(T::of_f64)
        .collect();
    kern.bias = rng.normals(out, 0.5).into_iter().map(T::of_f64).collect();
    kern
}

/// A P-activation with `a` drawn from (0, 1), one channel at 0 and one at 1.
fn p_activation<T: Scalar>(kind: ActKind, c: usize, rng: &mut Rng) -> Layer<T> {
    let mut a: Vec<T> = (0..c).map(|_| T::of_f64(rng.uniform())).collect();
    a[0] = T::zero();
    if c > 1 {
        a[c - 1] = T::one();
    }
    Layer::Activation(PActivation { kind, a })
}

fn conv<T: Scalar>(
    out: usize,
    inp: usize,
    k: usize,
    stride: usize,
    pad: usize,
    rng: &mut Rng,
) -> Layer<T> {
    Layer::Conv2d(Conv2d {
        kernel: kernel(out, inp, k, rng),
        stride,
        pad,
    })
}

/// Every layer kind: convolutions with padding and stride, max and average pooling in ceil
/// mode with clipped windows, plain and P-activations of all four functions, a parallel
/// block, flatten and dense layers.
fn conv_net<T: Scalar>() -> Network<T> {
    let rng = &mut Rng::seed(7);
    let pool = |k, stride| Pool {
        k,
        stride,
        ceil: true,
    };
    let layers = vec![
        conv(4, 2, 3, 1, 1, rng),
        p_activation(ActKind::Relu, 4, rng),
        // 11 x 9 -> 5 x 4 in ceil mode: the last windows are clipped.
        Layer::MaxPool2d(pool(3, 2)),
        Layer::ParallelSum(vec![
            vec![
                conv(5, 4, 3, 1, 1, rng),
                Layer::Activation(PActivation::plain(ActKind::Tanh, 5)),
            ],
            vec![
                conv(5, 4, 1, 1, 0, rng),
                p_activation(ActKind::Identity, 5, rng),
            ],
            vec![
                conv(3, 4, 3, 1, 1, rng),
                p_activation(ActKind::Sigmoid, 3, rng),
                conv(5, 3, 1, 1, 0, rng),
            ],
        ]),
        Layer::AvgPool2d(pool(2, 2)),
        conv(6, 5, 3, 2, 1, rng),
        Layer::Activation(PActivation::plain(ActKind::Relu, 6)),
        Layer::Flatten,
        Layer::Dense(kernel(7, 6 * 2, 1, rng)),
        p_activation(ActKind::Tanh, 7, rng),
        Layer::Dense(kernel(3, 7, 1, rng)),
        Layer::Activation(PActivation::plain(ActKind::Sigmoid, 3)),
    ];
    Network::new(Shape::image(2, 11, 9), layers).unwrap()
}

/// A flat MLP with plain and P-activations and an identity activation.
fn mlp<T: Scalar>() -> Network<T> {
    let rng = &mut Rng::seed(3);
    let layers = vec![
        Layer::Dense(kernel(6, 5, 1, rng)),
        p_activation(ActKind::Relu, 6, rng),
        Layer::Dense(kernel(4, 6, 1, rng)),
        Layer::Activation(PActivation::plain(ActKind::Identity, 4)),
        Layer::Dense(kernel(2, 4, 1, rng)),
    ];
    Network::new(Shape::flat(5), layers).unwrap()
}

/// Caffe's cifar10_quick template on 1 x 16 x 16, morphed as CI morphs its parent: a stacked
/// subnet (parallel branches), a deeper first layer with a P-activation, a wider layer; then
/// every `a` moved off 0 and 1, as training leaves it.
fn morphed<T: Scalar>() -> Network<T> {
    let rng = &mut Rng::seed(11);
    let arch = netmorph::arch::parse("(5:8)(5:8)(5:16)").unwrap();
    let mut net = arch.build::<T>(Shape::image(1, 16, 16), 10, rng).unwrap();
    for op in [
        "stack@3,n=2,cl=12,k1=5,k2=3",
        "depth@0,cl=8,k1=5,k2=3,act=tanh",
        "width@0,to=12",
    ] {
        net = netmorph::ops::parse_op(op)
            .unwrap()
            .apply(&net, rng)
            .unwrap()
            .0;
    }
    let input = net.input_shape();
    let mut layers = net.into_layers();
    trained_a(&mut layers, rng);
    Network::new(input, layers).unwrap()
}

fn trained_a<T: Scalar>(layers: &mut [Layer<T>], rng: &mut Rng) {
    for l in layers {
        match l {
            Layer::Activation(p) => p.a.iter_mut().for_each(|a| *a = T::of_f64(rng.uniform())),
            Layer::ParallelSum(bs) => bs.iter_mut().for_each(|b| trained_a(b, rng)),
            _ => {}
        }
    }
}

fn has_parallel<T>(layers: &[Layer<T>]) -> bool {
    layers.iter().any(|l| matches!(l, Layer::ParallelSum(_)))
}

/// `import(export(net))` is `net` itself, and computes bit-identical outputs.
fn assert_round_trip<T: Scalar>(net: &Network<T>) {
    let back: Network<T> = import(&export(net).unwrap()).unwrap();
    assert_eq!(&back, net);
    let x = Tensor::random(6, net.input_shape(), &mut Rng::seed(5));
    let (y, z) = (net.forward(&x).unwrap(), back.forward(&x).unwrap());
    assert!(y
        .data
        .iter()
        .zip(&z.data)
        .all(|(a, b)| a.as_f64().to_bits() == b.as_f64().to_bits()));
}

/// A convolution after a dense layer (on its `C x 1 x 1` output) and a dense layer right
/// after a convolution's `C x 1 x 1` output, without flatten layers: ONNX needs reshapes
/// between `[N, C]` and `[N, C, 1, 1]`, which come back as no layer.
fn dense_conv_dense<T: Scalar>() -> Network<T> {
    let rng = &mut Rng::seed(4);
    let layers = vec![
        Layer::Dense(kernel(4, 5, 1, rng)),
        conv(3, 4, 1, 1, 0, rng),
        p_activation(ActKind::Tanh, 3, rng),
        Layer::Dense(kernel(2, 3, 1, rng)),
    ];
    Network::new(Shape::flat(5), layers).unwrap()
}

fn round_trips<T: Scalar>() {
    assert_round_trip(&conv_net::<T>());
    assert_round_trip(&mlp::<T>());
    assert_round_trip(&dense_conv_dense::<T>());
    let child = morphed::<T>();
    assert!(has_parallel(child.layers()));
    assert_round_trip(&child);
}

#[test]
fn every_layer_kind_round_trips_f32() {
    round_trips::<f32>();
}

#[test]
fn every_layer_kind_round_trips_f64() {
    round_trips::<f64>();
}

#[test]
fn the_input_scale_travels_in_the_metadata() {
    let net = mlp::<f32>();
    let bytes = export_scaled(&net, InputScale::Pixels).unwrap();
    assert_eq!(
        import_scaled::<f32>(&bytes).unwrap(),
        (net.clone(), InputScale::Pixels)
    );
    let (_, scale) = import_scaled::<f32>(&export(&net).unwrap()).unwrap();
    assert_eq!(scale, InputScale::Standard);
    let mut model = ModelProto::decode(&bytes[..]).unwrap();
    model.metadata_props = vec![StringStringEntryProto {
        key: Some(INPUT_SCALE_KEY.into()),
        value: Some("decibels".into()),
    }];
    let e = import::<f32>(&model.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(e.contains("netmorph.input_scale is \"decibels\""), "{e}");
}

/// ONNX sizes ceil-mode pooling without the correction for a last window starting past the
/// input; where netmorph applies it, the output is floor mode's, and floor mode is written.
#[test]
fn ceil_mode_pooling_is_written_as_onnx_sizes_it() {
    let pool = Pool {
        k: 2,
        stride: 4,
        ceil: true,
    };
    // 7 x 7: ceil((7 - 2) / 4) + 1 = 3 windows by ONNX's formula, but the third would start
    // at 8 >= 7: netmorph has 2, floor mode's count.
    let net = Network::<f32>::new(Shape::image(1, 7, 7), vec![Layer::MaxPool2d(pool)]).unwrap();
    let back: Network<f32> = import(&export(&net).unwrap()).unwrap();
    assert_eq!(
        back.layers(),
        [Layer::MaxPool2d(Pool {
            ceil: false,
            ..pool
        })]
    );
    let x = Tensor::random(2, net.input_shape(), &mut Rng::seed(1));
    assert_eq!(back.forward(&x).unwrap(), net.forward(&x).unwrap());
    // 7 x 9: the width needs ceil mode (a third window at 8), the height floor mode.
    let net = Network::<f32>::new(Shape::image(1, 7, 9), vec![Layer::AvgPool2d(pool)]).unwrap();
    let e = export(&net).unwrap_err().to_string();
    assert!(
        e.starts_with("layer layers.0 cannot be written as ONNX: on its 7x9 input"),
        "{e}"
    );
}

#[test]
fn the_export_is_the_documented_graph() {
    let model = ModelProto::decode(&export(&conv_net::<f64>()).unwrap()[..]).unwrap();
    assert_eq!(model.ir_version, Some(netmorph::onnx::IR_VERSION));
    assert_eq!(model.producer_name.as_deref(), Some("netmorph"));
    assert_eq!(model.opset_import[0].version, Some(netmorph::onnx::OPSET));
    let g = model.graph.unwrap();
    let dims = |v: &ValueInfoProto| match &v.r#type.as_ref().unwrap().value {
        Some(type_proto::Value::TensorType(t)) => {
            (t.elem_type, t.shape.as_ref().unwrap().dim.len())
        }
        None => panic!("not a tensor"),
    };
    assert_eq!(g.input[0].name.as_deref(), Some("input"));
    assert_eq!(dims(&g.input[0]), (Some(data_type::DOUBLE), 4));
    assert_eq!(g.output[0].name.as_deref(), Some("logits"));
    assert_eq!(dims(&g.output[0]), (Some(data_type::DOUBLE), 2));
    let ops: Vec<&str> = g
        .node
        .iter()
        .map(|n| n.op_type.as_deref().unwrap())
        .collect();
    assert_eq!(&ops[..5], ["Conv", "Relu", "Mul", "Mul", "Add"]);
    let names: Vec<&str> = g.node.iter().map(|n| n.name.as_deref().unwrap()).collect();
    assert_eq!(&names[..2], ["layers.0", "layers.1.phi"]);
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name.as_deref() == Some("layers.3.branches.2.2.weight")));
    // The P-activation's constants broadcast per channel over [N, C, H, W].
    let a = g
        .initializer
        .iter()
        .find(|t| t.name.as_deref() == Some("layers.1.a"))
        .unwrap();
    assert_eq!(a.dims, [4, 1, 1]);
    let flat = ModelProto::decode(&export(&mlp::<f32>()).unwrap()[..])
        .unwrap()
        .graph
        .unwrap();
    assert_eq!(dims(&flat.input[0]), (Some(data_type::FLOAT), 2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random networks and morph plans: the import is the network, up to the one thing ONNX's
    /// data flow cannot tell apart (see [`canonical`]), and computes bit-identical outputs.
    #[test]
    fn morphed_networks_round_trip(
        net in network::<f32>(),
        choices in plan(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::seed(seed);
        let mut cur = net;
        for ch in &choices {
            cur = concretize(&cur, ch).apply(&cur, &mut rng).unwrap().0;
        }
        let back: Network<f32> = import(&export(&cur).unwrap()).unwrap();
        prop_assert_eq!(canonical(back.layers()), canonical(cur.layers()));
        let x = Tensor::random(3, cur.input_shape(), &mut rng);
        let (y, z) = (cur.forward(&x).unwrap(), back.forward(&x).unwrap());
        prop_assert!(y.data.iter().zip(&z.data).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

proptest! {
    /// Damaged files (bytes changed or cut anywhere in an export) give an error or a network,
    /// never a panic.
    #[test]
    fn damaged_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = export(&conv_net::<f32>()).unwrap();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let _ = import::<f32>(&bytes);
        let _ = import::<f64>(&bytes[..cut.index(bytes.len())]);
    }
}

/// `layers` with every parallel block whose first branch is a single parallel block merged
/// into one block: both sum `((b0 + b1) + b2)` in that order, so the ONNX graph is the same.
fn canonical(layers: &[Layer<f32>]) -> Vec<Layer<f32>> {
    layers
        .iter()
        .map(|l| match l {
            Layer::ParallelSum(bs) => {
                let mut bs: Vec<Vec<Layer<f32>>> = bs.iter().map(|b| canonical(b)).collect();
                while let [Layer::ParallelSum(inner)] = &bs[0][..] {
                    let inner = inner.clone();
                    bs.splice(0..1, inner);
                }
                Layer::ParallelSum(bs)
            }
            l => l.clone(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Hand-built graphs

fn dims_info(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(d.map_or(Value::DimParam("N".into()), Value::DimValue)),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.into()),
        float_data: values.to_vec(),
        ..TensorProto::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(v),
        ..AttributeProto::default()
    }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: Some(name.into()),
        op_type: Some(op.into()),
        domain: None,
        attribute,
    }
}

/// A model of `nodes` from `x` (`input_dims`, batch first) to `y`, opset 17.
fn model(
    input_dims: &[Option<i64>],
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        producer_name: Some("test".into()),
        producer_version: None,
        graph: Some(GraphProto {
            node: nodes,
            name: Some("g".into()),
            initializer,
            input: vec![dims_info("x", data_type::FLOAT, input_dims)],
            output: vec![dims_info("y", data_type::FLOAT, &[None])],
            ..GraphProto::default()
        }),
        metadata_props: Vec::new(),
    }
    .encode_to_vec()
}

const IMAGE: [Option<i64>; 4] = [None, Some(1), Some(5), Some(5)];

/// `Conv` of one 1 x 5 x 5 input channel into two with a 3 x 3 kernel, with `attrs`.
fn conv_model(attrs: Vec<AttributeProto>) -> Vec<u8> {
    let w = floats("w", &[2, 1, 3, 3], &[0.5; 18]);
    model(
        &IMAGE,
        vec![node("/0/Conv", "Conv", &["x", "w"], "y", attrs)],
        vec![w],
    )
}

fn import_err(bytes: &[u8]) -> String {
    import::<f32>(bytes).unwrap_err().to_string()
}

#[test]
fn unsupported_nodes_are_named_with_the_reason() {
    let e = import_err(&conv_model(vec![ints_attr("dilations", &[2, 2])]));
    assert_eq!(
        e,
        "node \"/0/Conv\" (Conv): dilations [2, 2] are not supported; netmorph convolutions have dilation 1"
    );
    let e = import_err(&conv_model(vec![int_attr("group", 2)]));
    assert!(
        e.starts_with("node \"/0/Conv\" (Conv): group 2 is not supported"),
        "{e}"
    );
    let e = import_err(&conv_model(vec![ints_attr("pads", &[1, 1, 0, 0])]));
    assert!(
        e.starts_with(
            "node \"/0/Conv\" (Conv): pads [1, 1, 0, 0] are not the same on all four sides"
        ),
        "{e}"
    );
    let e = import_err(&conv_model(vec![ints_attr("strides", &[1, 2])]));
    assert!(
        e.contains("(Conv): its strides [1, 2] are not two equal"),
        "{e}"
    );
    let lstm = model(
        &IMAGE,
        vec![node("rnn", "LSTM", &["x"], "y", vec![])],
        vec![],
    );
    let e = import_err(&lstm);
    assert!(
        e.starts_with("node \"rnn\" (LSTM): netmorph has no layer for this operator"),
        "{e}"
    );
    let custom = NodeProto {
        domain: Some("com.microsoft".into()),
        ..node("g", "Gelu", &["x"], "y", vec![])
    };
    let e = import_err(&model(&IMAGE, vec![custom], vec![]));
    assert!(
        e.contains("(Gelu): its operator comes from the domain \"com.microsoft\""),
        "{e}"
    );
    let padded = node(
        "pool",
        "MaxPool",
        &["x"],
        "y",
        vec![
            ints_attr("kernel_shape", &[2, 2]),
            ints_attr("pads", &[1, 1, 1, 1]),
        ],
    );
    let e = import_err(&model(&IMAGE, vec![padded], vec![]));
    assert!(
        e.starts_with("node \"pool\" (MaxPool): padded pooling is not supported"),
        "{e}"
    );
    let reshape = node("r", "Reshape", &["x", "s"], "y", vec![]);
    let shape = TensorProto {
        dims: vec![3],
        data_type: Some(data_type::INT64),
        name: Some("s".into()),
        int64_data: vec![-1, 5, 5],
        ..TensorProto::default()
    };
    let e = import_err(&model(&IMAGE, vec![reshape], vec![shape]));
    let want = "(Reshape): it reshapes to [-1, 5, 5]; netmorph reads a Reshape only as a flatten";
    assert!(e.contains(want) && e.contains("[N, 25]"), "{e}");
    // A layer that does not fit its input: the node and the imported layer's path.
    let wide = floats("w", &[2, 1, 7, 7], &[0.5; 98]);
    let e = import_err(&model(
        &IMAGE,
        vec![node("c", "Conv", &["x", "w"], "y", vec![])],
        vec![wide],
    ));
    assert!(e.starts_with("node \"c\" (Conv): layer 0"), "{e}");
}

#[test]
fn data_flow_that_is_not_a_chain_is_refused() {
    // x * relu(x): a product of two computed values.
    let nodes = vec![
        node("r", "Relu", &["x"], "r", vec![]),
        node("m", "Mul", &["x", "r"], "y", vec![]),
    ];
    let e = import_err(&model(&IMAGE, nodes, vec![]));
    assert!(
        e.starts_with("node \"m\" (Mul): it takes 2 computed inputs"),
        "{e}"
    );
    // One value feeding two layers that meet again: t = relu(x); y = (t + tanh(t)) + t.
    let nodes = vec![
        node("r", "Relu", &["x"], "t", vec![]),
        node("h", "Tanh", &["t"], "h", vec![]),
        node("a1", "Add", &["t", "h"], "s", vec![]),
        node("a2", "Add", &["s", "h"], "y", vec![]),
    ];
    let e = import_err(&model(&IMAGE, nodes, vec![]));
    assert!(
        e.contains("(Tanh): its output feeds more than one layer"),
        "{e}"
    );
    let nodes = vec![node("r", "Relu", &["z"], "y", vec![])];
    let e = import_err(&model(&IMAGE, nodes, vec![]));
    assert!(
        e.contains("the value \"z\" is neither the graph input"),
        "{e}"
    );
    let mut two_inputs = ModelProto::decode(&model(&IMAGE, vec![], vec![])[..]).unwrap();
    if let Some(g) = two_inputs.graph.as_mut() {
        g.input.push(dims_info("x2", data_type::FLOAT, &IMAGE));
    }
    let e = import_err(&two_inputs.encode_to_vec());
    assert!(
        e.contains("it has 2 inputs besides its initializers (x, x2)"),
        "{e}"
    );
}

/// A node that redefines the graph input would make the input its own predecessor (the
/// import looped forever on this before).
#[test]
fn a_node_redefining_the_input_is_refused() {
    let bytes = model(
        &[None, Some(3)],
        vec![
            node("r0", "Relu", &["x"], "b", vec![]),
            node("r1", "Relu", &["x"], "x", vec![]),
            node("add", "Add", &["x", "b"], "y", vec![]),
        ],
        vec![],
    );
    assert!(import_err(&bytes).contains("\"x\" is defined twice"));
}

#[test]
fn bad_bytes_and_tensors_are_refused() {
    let bytes = export(&mlp::<f32>()).unwrap();
    let e = import::<f32>(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(e, OnnxError::Decode(_)), "{e}");
    assert!(e.to_string().starts_with("not a valid ONNX model"), "{e}");
    // Raw data one value short of the shape.
    let mut short = floats("w", &[2, 1, 3, 3], &[]);
    short.raw_data = Some(vec![0; 17 * 4]);
    let bytes = model(
        &IMAGE,
        vec![node("c", "Conv", &["x", "w"], "y", vec![])],
        vec![short.clone()],
    );
    assert_eq!(
        import_err(&bytes),
        "tensor \"w\": its raw data holds 68 bytes but its shape needs 18 values of 4 bytes"
    );
    let half = TensorProto {
        data_type: Some(10),
        raw_data: Some(vec![0; 36]),
        ..short.clone()
    };
    let bytes = model(
        &IMAGE,
        vec![node("c", "Conv", &["x", "w"], "y", vec![])],
        vec![half],
    );
    assert!(import_err(&bytes).starts_with("tensor \"w\": its element type is FLOAT16"));
    let external = TensorProto {
        data_location: Some(EXTERNAL),
        raw_data: None,
        ..short
    };
    let bytes = model(
        &IMAGE,
        vec![node("c", "Conv", &["x", "w"], "y", vec![])],
        vec![external],
    );
    assert!(import_err(&bytes).contains("stored in an external file"));
    let huge = floats("w", &[1 << 40, 1 << 40], &[]);
    let bytes = model(
        &[None, Some(3)],
        vec![node("g", "MatMul", &["x", "w"], "y", vec![])],
        vec![huge],
    );
    assert!(import_err(&bytes).contains("overflows"));
    // An empty axis: the data (none) would not bound the other axis, which sizes the bias.
    for (op, dims, attrs) in [
        ("MatMul", vec![0, 1 << 40], vec![]),
        ("Gemm", vec![1 << 40, 0], vec![int_attr("transB", 1)]),
        ("Gemm", vec![1 << 62, 0], vec![int_attr("transB", 1)]),
    ] {
        let bytes = model(
            &[None, Some(3)],
            vec![node("g", op, &["x", "w"], "y", attrs)],
            vec![floats("w", &dims, &[])],
        );
        assert!(
            import_err(&bytes).contains("with an empty axis"),
            "{op} {dims:?}"
        );
    }
    let bytes = model(
        &IMAGE,
        vec![node("c", "Conv", &["x", "w"], "y", vec![])],
        vec![floats("w", &[1 << 40, 0, 1, 1], &[])],
    );
    assert!(import_err(&bytes).contains("with an empty axis"));
    // A weight for another input size.
    let bytes = model(
        &IMAGE,
        vec![node("c", "Conv", &["x", "w"], "y", vec![])],
        vec![floats("w", &[2, 3, 1, 1], &[0.5; 6])],
    );
    assert!(import_err(&bytes).contains("takes 3 input channels (features) but its input has 1"));
    let mut old = ModelProto::decode(&model(&IMAGE, vec![], vec![])[..]).unwrap();
    old.opset_import[0].version = Some(11);
    assert!(
        import_err(&old.encode_to_vec()).contains("operator set 11; netmorph reads 13 or later")
    );
}

/// `MatMul` by an `[in, out]` weight plus an `Add` of the bias (the dynamo exporter's form of
/// `Linear`), `Gemm` with `transB = 0` and its weight from a `Constant` node, `PRelu` with one
/// shared slope, `Identity`, and a `Reshape` to `[0, -1]`.
#[test]
fn other_exporters_forms_are_read() {
    let w1 = floats("w1", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b1 = floats("b1", &[2], &[0.5, -0.5]);
    let w2 = floats("w2", &[2, 1], &[1.0, -2.0]);
    let slope = floats("slope", &[1], &[0.25]);
    let shape = TensorProto {
        dims: vec![2],
        data_type: Some(data_type::INT64),
        name: Some("shape".into()),
        int64_data: vec![0, -1],
        ..TensorProto::default()
    };
    let constant = AttributeProto {
        name: Some("value".into()),
        r#type: Some(attribute_type::TENSOR),
        t: Some(w2),
        ..AttributeProto::default()
    };
    let nodes = vec![
        node("flat", "Reshape", &["x", "shape"], "f", vec![]),
        node("mm", "MatMul", &["f", "w1"], "m", vec![]),
        node("bias", "Add", &["b1", "m"], "h", vec![]),
        node("act", "PRelu", &["h", "slope"], "p", vec![]),
        node("id", "Identity", &["p"], "q", vec![]),
        node("w2", "Constant", &[], "w2c", vec![constant]),
        node(
            "gemm",
            "Gemm",
            &["q", "w2c"],
            "y",
            vec![int_attr("transB", 0)],
        ),
    ];
    let bytes = model(
        &[None, Some(3), Some(1), Some(1)],
        nodes,
        vec![w1, b1, slope, shape],
    );
    let net = import::<f64>(&bytes).unwrap();
    // The reshape of a flat 3 x 1 x 1 input is no layer.
    assert_eq!(net.layers().len(), 4);
    let Layer::Dense(k) = &net.layers()[0] else {
        panic!("{:?}", net.layers()[0])
    };
    assert_eq!(k.weight, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    assert_eq!(k.bias, [0.5, -0.5]);
    let Layer::Activation(p) = &net.layers()[1] else {
        panic!()
    };
    assert_eq!((p.kind, &p.a[..]), (ActKind::Relu, &[0.25, 0.25][..]));
    let x = Tensor::new(
        2,
        Shape::image(3, 1, 1),
        vec![1.0, 1.0, 1.0, -1.0, 0.0, 0.0],
    )
    .unwrap();
    // h = [9.5, 11.5] and [-0.5, -2.5]; y = h0 - 2 h1 after the P-activation (a = 0.25).
    let prelu = |v: f64| 0.75 * v.max(0.0) + 0.25 * v;
    let want = [
        prelu(9.5) - 2.0 * prelu(11.5),
        prelu(-0.5) - 2.0 * prelu(-2.5),
    ];
    assert_eq!(net.forward(&x).unwrap().data, want);
}

#[test]
fn p_relu_slopes_broadcast_per_channel() {
    let on = |input: &[Option<i64>], dims: &[i64], values: &[f32]| {
        let nodes = vec![node("p", "PRelu", &["x", "s"], "y", vec![])];
        import::<f32>(&model(input, nodes, vec![floats("s", dims, values)]))
    };
    let run = |dims: &[i64], values: &[f32]| on(&[None, Some(3), Some(2), Some(2)], dims, values);
    let a = |net: Network<f32>| match &net.layers()[0] {
        Layer::Activation(p) => p.a.clone(),
        l => panic!("{l:?}"),
    };
    // A flat input's channels are its last axis; an image's are not.
    let flat = on(&[None, Some(3)], &[3], &[0.1, 0.2, 0.3]).unwrap();
    assert_eq!(a(flat), [0.1, 0.2, 0.3]);
    assert_eq!(
        a(run(&[3, 1, 1], &[0.1, 0.2, 0.3]).unwrap()),
        [0.1, 0.2, 0.3]
    );
    assert_eq!(
        a(run(&[1, 3, 1, 1], &[0.1, 0.2, 0.3]).unwrap()),
        [0.1, 0.2, 0.3]
    );
    assert_eq!(a(run(&[1], &[0.5]).unwrap()), [0.5; 3]);
    for (dims, values) in [(&[2, 2][..], &[0.1; 4][..]), (&[3], &[0.1, 0.2, 0.3])] {
        let e = run(dims, values).unwrap_err().to_string();
        let want = format!(
            "node \"p\" (PRelu): its constant of shape {dims:?} does not broadcast per channel"
        );
        assert!(e.starts_with(&want), "{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Command line

/// `export-onnx`, `import-onnx`, then `predict` on both models: the same bytes; the input
/// scale comes back too.
fn cli_round_trip<T: Scalar>(tag: &str) {
    let dir = temp_dir(tag);
    let (model, onnx, back) = (
        dir.join("m.safetensors"),
        dir.join("m.onnx"),
        dir.join("back.safetensors"),
    );
    let net = morphed::<T>();
    netmorph::model_file::save_scaled(&net, InputScale::Pixels, &model).unwrap();
    let (code, out, err) = run(&["export-onnx", s(&model), s(&onnx)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{}, ONNX opset 13", T::NAME)),
        "{out}"
    );
    let (code, out, err) = run(&["import-onnx", s(&onnx), s(&back)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{}, inputs scaled pixels", T::NAME)),
        "{out}"
    );
    let x = Tensor::<T>::random(4, net.input_shape(), &mut Rng::seed(9));
    let input = dir.join("x.npy");
    let shape = net.input_shape();
    std::fs::write(
        &input,
        netmorph::npy::to_bytes(&[4, shape.c, shape.h, shape.w], &x.data),
    )
    .unwrap();
    let mut outputs = Vec::new();
    for (m, y) in [(&model, "y.npy"), (&back, "y_back.npy")] {
        let (code, _, err) = run(&[
            "predict",
            s(m),
            "--input",
            s(&input),
            "--output",
            s(&dir.join(y)),
        ]);
        assert_eq!(code, 0, "{err}");
        outputs.push(std::fs::read(dir.join(y)).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cli_export_import_predict_gives_the_same_outputs() {
    cli_round_trip::<f32>("cli32");
    cli_round_trip::<f64>("cli64");
}

#[test]
fn cli_errors_are_one_clear_line() {
    let dir = temp_dir("errors");
    let missing = dir.join("missing.safetensors");
    let (code, _, err) = run(&["export-onnx", s(&missing), s(&dir.join("m.onnx"))]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ")
            && err.contains("missing.safetensors")
            && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = run(&[
        "import-onnx",
        s(&dir.join("missing.onnx")),
        s(&dir.join("m.safetensors")),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ") && err.contains("missing.onnx") && err.lines().count() == 1,
        "{err}"
    );
    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, b"\xff\xff\xff").unwrap();
    let (code, _, err) = run(&["import-onnx", s(&junk), s(&dir.join("m.safetensors"))]);
    assert_eq!(code, 1);
    assert!(err.contains("junk.onnx: not a valid ONNX model"), "{err}");
    assert!(!dir.join("m.safetensors").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
