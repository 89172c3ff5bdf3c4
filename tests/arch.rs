//! Architecture specs: every network of the paper's Table 1 parses, cifar10_quick is built as
//! in Caffe, and malformed specs say where and what.

use netmorph::arch::{parse, Arch};
use netmorph::{Layer, Network, Rng, Shape};

fn subnet_sizes(spec: &str) -> Vec<usize> {
    match parse(spec).unwrap() {
        Arch::Conv(s) => s.iter().map(Vec::len).collect(),
        Arch::Mlp(_) => panic!("{spec} parsed as an MLP"),
    }
}

#[test]
fn table_1_parses() {
    assert_eq!(subnet_sizes("(5:32)(5:32)(5:64)"), vec![1, 1, 1]);
    assert_eq!(subnet_sizes("(5:32x4)(1:32)(5:32)(5:64)"), vec![2, 1, 1]);
    assert_eq!(
        subnet_sizes("[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]"),
        vec![2, 2, 2]
    );
    assert_eq!(
        subnet_sizes("[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]x2"),
        vec![2, 2, 2, 2]
    );
    assert_eq!(
        subnet_sizes("[(5:32x4)(3:32x4)(1:32)]x2[(5:64x4)(3:64x4)(1:64)]x2"),
        vec![3, 3, 3, 3]
    );
    assert_eq!(
        parse(" (5:32) x2 (5:64) ").unwrap(),
        parse("[(5:32)]x2[(5:64)]").unwrap()
    );
    assert_eq!(parse("mlp(50)").unwrap(), Arch::Mlp(vec![50]));
    assert_eq!(parse("mlp()").unwrap(), Arch::Mlp(vec![]));
}

fn build(spec: &str) -> Network<f32> {
    parse(spec)
        .unwrap()
        .build(Shape::image(3, 32, 32), 10, &mut Rng::seed(1))
        .unwrap()
}

#[test]
fn cifar10_quick_matches_caffe() {
    let net = build("(5:32)(5:32)(5:64)");
    let names: Vec<&str> = net.layers().iter().map(Layer::name).collect();
    assert_eq!(
        names,
        [
            "conv2d",
            "maxpool2d",
            "activation",
            "conv2d",
            "activation",
            "avgpool2d",
            "conv2d",
            "activation",
            "avgpool2d",
            "flatten",
            "dense",
            "dense"
        ]
    );
    // 32 -> 16 -> 8 -> 4 with ceil pooling; Caffe's 145,578 weights and biases plus one
    // P-activation `a` per ReLU channel (32 + 32 + 64).
    assert_eq!(
        net.shape_before(&netmorph::LayerPath::top(9)),
        Some(Shape::image(64, 4, 4))
    );
    assert_eq!(net.param_count(), 145_578 + 128);
    assert_eq!(net.output_shape(), Shape::flat(10));
}

#[test]
fn deeper_specs_build() {
    for spec in [
        "[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]x2",
        "[(5:32x4)(3:32x4)(1:32)]x2[(5:64x4)(3:64x4)(1:64)]x2",
    ] {
        assert_eq!(build(spec).output_shape(), Shape::flat(10), "{spec}");
    }
    let mlp: Network<f32> = parse("mlp(50)")
        .unwrap()
        .build(Shape::image(1, 28, 28), 10, &mut Rng::seed(1))
        .unwrap();
    assert_eq!(mlp.param_count(), 784 * 50 + 50 + 50 + 50 * 10 + 10);
}

#[test]
fn malformed_specs_say_where() {
    for (spec, at, words) in [
        ("(4:32)", 1, "odd kernel"),
        ("(5:32", 5, "`)`"),
        ("(5;32)", 2, "`:`"),
        ("(5:32)x0", 7, "repetition"),
        ("mlp(0)", 4, "hidden width"),
        ("", 0, "at least one layer"),
        ("mlp(5) z", 7, "end of the spec"),
    ] {
        let err = parse(spec).unwrap_err();
        assert_eq!(err.at, at, "{spec}: {err}");
        assert!(err.to_string().contains(words), "{spec}: {err}");
    }
}
