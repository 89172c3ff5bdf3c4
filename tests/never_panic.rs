//! Never-panic properties: whatever the input, every reader, parser, morph and forward pass
//! answers `Ok` or `Err`. A panic (or an abort on a huge allocation) fails the test. The
//! generators aim at the inputs that broke before: sizes near `usize::MAX`, zero sizes, edited
//! model metadata, headers that lie about their bodies.

use netmorph::model_file::{from_bytes, to_bytes, METADATA_KEY};
use netmorph::morph::depth::DepthParams;
use netmorph::morph::plan::MorphOp;
use netmorph::morph::subnet::{SequentialParams, Split, StackedParams};
use netmorph::solve::algorithm::Algorithm;
use netmorph::{LayerPath, Network, Rng, Shape, Tensor};
use netmorph_verify::strategies;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Sizes a user could type: small ones, and ones at the edges of `usize`.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..12,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2 + 1),
        1 => Just(1usize << 32),
        1 => (1usize..64).prop_map(|s| 1usize << s),
    ]
}

/// A model file's bytes with `arch` as its architecture metadata and the tensors of `net`.
fn with_arch(net: &Network<f32>, arch: &Value) -> Vec<u8> {
    let bytes = to_bytes(net).expect("a network of this crate serializes");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("own bytes");
    let mut meta = meta.metadata().clone().unwrap_or_default();
    meta.insert(METADATA_KEY.into(), arch.to_string());
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("own bytes");
    safetensors::serialize(st.tensors(), Some(meta)).expect("re-serializes")
}

/// Every number in `v`, in document order, as a mutable reference.
fn numbers(v: &mut Value) -> Vec<&mut Value> {
    match v {
        Value::Number(_) => vec![v],
        Value::Array(a) => a.iter_mut().flat_map(numbers).collect(),
        Value::Object(o) => o.values_mut().flat_map(numbers).collect(),
        _ => Vec::new(),
    }
}

/// Loads `bytes` and, if that works, runs a small batch through the network.
fn load_and_run(bytes: &[u8]) {
    let loaded = from_bytes::<f32>(bytes);
    if let Err(e) = &loaded {
        assert!(!e.to_string().is_empty());
    }
    if let Ok(net) = loaded {
        let shape = net.input_shape();
        if shape
            .c
            .checked_mul(shape.h)
            .and_then(|n| n.checked_mul(shape.w))
            .is_some_and(|n| n <= 1 << 16)
        {
            let x = Tensor::random(2, shape, &mut Rng::seed(1));
            let _ = net.forward(&x);
        }
    }
    let _ = from_bytes::<f64>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_into_the_model_loader(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_and_run(&bytes);
    }

    #[test]
    fn edited_numbers_in_model_metadata(net in strategies::network::<f32>(), picks in proptest::collection::vec((any::<prop::sample::Index>(), size()), 1..4)) {
        let bytes = to_bytes(&net).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let mut arch: Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()[METADATA_KEY]).unwrap();
        for (at, value) in &picks {
            let mut nums = numbers(&mut arch);
            let n = nums.len();
            if n > 0 {
                *nums[at.index(n)] = json!(*value as u64);
            }
        }
        load_and_run(&with_arch(&net, &arch));
    }

    #[test]
    fn edited_fields_in_model_metadata(net in strategies::network::<f32>(), field in prop::sample::select(vec!["type", "in", "out", "kernel", "stride", "padding", "ceil_mode", "function", "channels", "branches", "weight", "a"]), value in prop_oneof![Just(json!(null)), Just(json!(-1)), Just(json!("conv2d")), Just(json!([])), Just(json!(1.5)), Just(json!(true))], at in any::<prop::sample::Index>()) {
        let bytes = to_bytes(&net).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let mut arch: Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()[METADATA_KEY]).unwrap();
        if let Some(layers) = arch["layers"].as_array_mut() {
            let n = layers.len();
            if n > 0 {
                layers[at.index(n)][field] = value;
            }
        }
        load_and_run(&with_arch(&net, &arch));
    }

    #[test]
    fn arbitrary_architecture_specs(spec in "(mlp\\(|[\\[\\]()0-9:x, ]){0,24}[)0-9]{0,4}") {
        if let Ok(arch) = netmorph::arch::parse(&spec) {
            let input = Shape::image(3, 12, 12);
            // Only networks that fit comfortably are built; the count itself must not panic.
            if arch.param_count(input, 10).is_some_and(|p| p < 1 << 20) {
                let _ = arch.build::<f32>(input, 10, &mut Rng::seed(0));
            }
        }
    }

    #[test]
    fn arbitrary_op_strings(op in "(depth|insert|width|kernel|subnet|stack|idmorph|net2wider|[a-z]{0,5})@[0-9.]{0,7}(,(cl|k1|k2|alg|act|to|k|n|split|widths|kernels|noise|trailing|[a-z]{1,3})=[0-9a-z/.]{0,21}){0,5}") {
        if let Err(e) = netmorph::ops::parse_op(&op) {
            prop_assert!(e.to_string().contains("operation"));
        }
    }

    #[test]
    fn arbitrary_npy_bytes(header in "\\{('descr'|'shape'|'fortran_order'|'x'|\"descr\"): ?('<f4'|'<f8'|'>f4'|True|False|\\([0-9, ]{0,30}\\)|\\[\\('a', '<f4'\\)\\]|[0-9]{1,20})(, ?('descr'|'shape'|'fortran_order'): ?('<f4'|'<f8'|True|False|\\([0-9, ]{0,40}\\))){0,3},? ?\\}", body in proptest::collection::vec(any::<u8>(), 0..64), version in 0u8..4) {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend_from_slice(&[version, 0]);
        if version >= 2 {
            bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        } else {
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        }
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&body);
        let _ = netmorph::npy::parse(&bytes);
        let _ = netmorph::npy::parse(&body);
    }

    #[test]
    fn arbitrary_idx_and_cifar_bytes(dims in proptest::collection::vec(prop_oneof![0u32..12, Just(u32::MAX), Just(1 << 31), Just(1 << 16)], 0..4), kind in prop::sample::select(vec![8u8, 9, 0x0d]), body in proptest::collection::vec(any::<u8>(), 0..256), gzip in any::<bool>()) {
        let mut bytes = vec![0, 0, kind, dims.len() as u8];
        for d in &dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        if gzip {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, &bytes).unwrap();
            bytes = z.finish().unwrap();
        }
        let _ = netmorph::data::parse_idx(&bytes);
        let _ = netmorph::data::parse_cifar10_binary(&body);
        let _ = netmorph::data::parse_cifar10_binary(&bytes);
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
    #[test]
    fn every_morph_with_arbitrary_parameters(net in strategies::network::<f32>(), kind in 0usize..8, layer in 0usize..12, nested in proptest::option::of((0usize..3, 0usize..3)), a in size(), b in size(), c in size(), algo in 0usize..3, seed in any::<u64>()) {
        // Mostly a dense or conv layer (where morphs get past the first checks), sometimes
        // any path at all.
        let linear = strategies::linear_layers(&net);
        let mut path = match linear.get(layer) {
            Some(p) if layer % 4 != 3 => p.clone(),
            _ => LayerPath::top(layer),
        };
        if let Some((branch, inner)) = nested {
            path = path.child(branch, inner).unwrap_or(path);
        }
        let algorithm = [Algorithm::Auto, Algorithm::General, Algorithm::Practical][algo];
        let depth = {
            let mut p = DepthParams::new(a, b, c);
            p.algorithm = algorithm;
            p
        };
        let op = match kind {
            0 => MorphOp::Depth { layer: path, params: depth },
            1 => MorphOp::Width { layer: path, width: a },
            2 => MorphOp::Kernel { layer: path, k: a },
            3 => MorphOp::Sequential {
                layer: path,
                params: SequentialParams {
                    widths: heapless::Vec::from_slice(&[a]).unwrap(),
                    kernels: heapless::Vec::from_slice(&[b, c]).unwrap(),
                    algorithm,
                    activation: netmorph::ActKind::Tanh,
                    solve: Default::default(),
                },
            },
            4 => MorphOp::Stacked {
                layer: path,
                params: StackedParams { n: a, split: Split::Random, branch_depth: (b % 2 == 0).then_some(depth) },
            },
            5 => MorphOp::IdMorph { layer: path, k: a },
            6 => MorphOp::Net2Wider { layer: path, width: a, noise: 0.0 },
            _ => MorphOp::InsertIdentity {
                at: path,
                params: netmorph::morph::depth::InsertParams { depth, trailing_activation: b % 2 == 0 },
            },
        };
        // Operations whose cost is known and small run; the cost itself must answer for all,
        // and every refusal must print (messages do arithmetic on the sizes too).
        match op.cost(&net) {
            Ok(c) if c.workspace_bytes < 16 << 20 => match op.apply(&net, &mut Rng::seed(seed)) {
                Ok((child, _)) => {
                    let x = Tensor::random(2, child.input_shape(), &mut Rng::seed(seed));
                    prop_assert!(child.forward(&x).is_ok());
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            },
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn forward_with_arbitrary_tensors(net in strategies::network::<f64>(), n in 0usize..4, len in 0usize..2000, c in 0usize..4, h in 0usize..9) {
        let shape = if c == 0 { net.input_shape() } else { Shape::image(c, h, h) };
        let x = Tensor { n, shape, data: vec![0.5; len] };
        let ok = len == n * net.input_shape().len() && shape == net.input_shape();
        prop_assert_eq!(net.forward(&x).is_ok(), ok);
    }
}
