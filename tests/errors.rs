//! Every invalid morph request returns a typed error whose message says what to do, and no
//! request, however wrong, panics.

use netmorph::morph::baseline::{id_morph, net2wider};
use netmorph::morph::depth::{deepen, DepthParams};
use netmorph::morph::kernel::grow_kernel;
use netmorph::morph::plan::MorphOp;
use netmorph::morph::subnet::{SequentialParams, Split, StackedParams};
use netmorph::morph::width::{consumer, widen};
use netmorph::morph::MorphError;
use netmorph::solve::algorithm::{std_dev, Algorithm, SolveError};
use netmorph::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape, Tensor,
};
use netmorph_verify::strategies::{linear_layers, network};
use netmorph_verify::tolerance::PRESERVE_F64;
use proptest::prelude::*;

/// conv 3x3:4 (stride 1) -> tanh -> conv 3x3:4 (stride 2) -> flatten -> dense 2.
fn small() -> Network<f64> {
    let mut rng = Rng::seed(1);
    let mut kern = |out, inp, k| {
        let mut kk = Kernel::<f64>::zeros(out, inp, k);
        kk.weight = rng.normals(kk.weight.len(), 0.5);
        kk
    };
    let layers = vec![
        Layer::Conv2d(Conv2d {
            kernel: kern(4, 2, 3),
            stride: 1,
            pad: 1,
        }),
        Layer::Activation(PActivation::plain(ActKind::Tanh, 4)),
        Layer::Conv2d(Conv2d {
            kernel: kern(4, 4, 3),
            stride: 2,
            pad: 1,
        }),
        Layer::Flatten,
        Layer::Dense(kern(2, 4 * 3 * 3, 1)),
    ];
    Network::new(Shape::image(2, 6, 6), layers).unwrap()
}

fn says(e: &MorphError, words: &[&str]) {
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "message {msg:?} lacks {w:?}");
    }
}

#[test]
fn narrower_width_is_refused() {
    let e = widen(&small(), &LayerPath::top(0), 3, &mut Rng::seed(0)).unwrap_err();
    assert_eq!(
        e,
        MorphError::Narrower {
            layer: LayerPath::top(0),
            current: 4,
            requested: 3
        }
    );
    says(&e, &["at least 4"]);
}

#[test]
fn even_or_smaller_kernels_are_refused() {
    let net = small();
    let e = grow_kernel(&net, &LayerPath::top(0), 4).unwrap_err();
    assert_eq!(
        e,
        MorphError::KernelSize {
            layer: LayerPath::top(0),
            current: 3,
            requested: 4
        }
    );
    says(&e, &["grow by an even amount", "5"]);
    assert!(matches!(
        grow_kernel(&net, &LayerPath::top(0), 1),
        Err(MorphError::KernelSize { .. })
    ));
    let e = deepen(
        &net,
        &LayerPath::top(0),
        &DepthParams::new(8, 2, 3),
        &mut Rng::seed(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        MorphError::KernelNotOdd {
            layer: LayerPath::top(0),
            kernel: 2
        }
    );
    says(&e, &["odd"]);
}

#[test]
fn bad_positions_are_refused() {
    let net = small();
    let e = deepen(
        &net,
        &LayerPath::top(9),
        &DepthParams::new(8, 1, 1),
        &mut Rng::seed(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        MorphError::NoSuchLayer {
            layer: LayerPath::top(9)
        }
    );
    let e = deepen(
        &net,
        &LayerPath::top(1),
        &DepthParams::new(8, 1, 1),
        &mut Rng::seed(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        MorphError::NotMorphable {
            layer: LayerPath::top(1),
            found: "activation",
            op: "depth"
        }
    );
    says(&e, &["activation", "dense or conv2d"]);
    let e = grow_kernel(&net, &LayerPath::top(4), 3).unwrap_err();
    assert_eq!(
        e,
        MorphError::NotMorphable {
            layer: LayerPath::top(4),
            found: "dense",
            op: "kernel"
        }
    );
    says(&e, &["a dense layer", "pick a conv2d layer"]);
    let e = widen(&net, &LayerPath::top(4), 5, &mut Rng::seed(0)).unwrap_err();
    assert_eq!(
        e,
        MorphError::NoConsumer {
            layer: LayerPath::top(4)
        }
    );
}

#[test]
fn idmorph_through_tanh_is_refused() {
    let e = id_morph(&small(), &LayerPath::top(0), 3).unwrap_err();
    assert_eq!(
        e,
        MorphError::NotIdempotent {
            layer: LayerPath::top(1),
            activation: "tanh"
        }
    );
    says(&e, &["not idempotent", "depth morph"]);
}

#[test]
fn non_finite_weights_are_refused() {
    let mut layers = small().into_layers();
    if let Some(k) = layers[2].kernel_mut() {
        k.weight[3] = f64::NAN;
    }
    let net = Network::new(Shape::image(2, 6, 6), layers).unwrap();
    let e = deepen(
        &net,
        &LayerPath::top(2),
        &DepthParams::new(8, 3, 1),
        &mut Rng::seed(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        MorphError::NonFinite {
            layer: LayerPath::top(2)
        }
    );
    // Widening layer 0 would rewrite layer 2's columns: refused as well.
    assert!(matches!(
        widen(&net, &LayerPath::top(0), 6, &mut Rng::seed(0)),
        Err(MorphError::NonFinite { .. })
    ));
}

#[test]
fn unreachable_residual_is_refused() {
    // C_l = 1 cannot carry a 4-channel map: Algorithm 1 stalls, Algorithm 2 has no expanding factor.
    let net = small();
    let mut p = DepthParams::new(1, 3, 1);
    p.algorithm = Algorithm::General;
    p.solve.max_iter = 3;
    let e = deepen(&net, &LayerPath::top(0), &p, &mut Rng::seed(0)).unwrap_err();
    assert!(matches!(
        e,
        MorphError::Solve {
            source: SolveError::NotConverged { .. },
            ..
        }
    ));
    says(&e, &["condition (7)"]);
    p.algorithm = Algorithm::Practical;
    let e = deepen(&net, &LayerPath::top(0), &p, &mut Rng::seed(0)).unwrap_err();
    assert!(matches!(
        e,
        MorphError::Solve {
            source: SolveError::NoExpandingFactor { .. },
            ..
        }
    ));
    says(&e, &["widen C_l", "K_1 >= K"]);
}

#[test]
fn strided_layers_need_k2_of_one() {
    let e = deepen(
        &small(),
        &LayerPath::top(2),
        &DepthParams::new(8, 3, 3),
        &mut Rng::seed(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        MorphError::Strided {
            layer: LayerPath::top(2),
            stride: 2,
            k2: 3
        }
    );
    // The exact strided case works.
    assert!(deepen(
        &small(),
        &LayerPath::top(2),
        &DepthParams::new(8, 3, 1),
        &mut Rng::seed(0)
    )
    .is_ok());
}

/// Mostly top-level paths (where layers are), sometimes nested ones (mostly invalid).
fn any_path() -> impl Strategy<Value = LayerPath> {
    prop_oneof![
        4 => (0usize..12).prop_map(LayerPath::top),
        1 => prop::collection::vec(0usize..10, 1..5).prop_map(|v| LayerPath::from_slice(&v).unwrap()),
    ]
}

/// Arbitrary requests, valid or not.
fn any_op() -> impl Strategy<Value = MorphOp> {
    let small = 0usize..9;
    let depth = (0usize..12, 0usize..6, 0usize..6, 0usize..3).prop_map(|(c, k1, k2, a)| {
        let mut p = DepthParams::new(c, k1, k2);
        p.algorithm = [Algorithm::General, Algorithm::Practical, Algorithm::Auto][a];
        p.solve.max_iter = 2;
        p
    });
    prop_oneof![
        (any_path(), depth.clone()).prop_map(|(layer, params)| MorphOp::Depth { layer, params }),
        (any_path(), small.clone()).prop_map(|(layer, width)| MorphOp::Width { layer, width }),
        (any_path(), small.clone()).prop_map(|(layer, k)| MorphOp::Kernel { layer, k }),
        (any_path(), small.clone()).prop_map(|(layer, k)| MorphOp::IdMorph { layer, k }),
        (any_path(), small.clone(), -1.0f64..1.0).prop_map(|(layer, width, noise)| {
            MorphOp::Net2Wider {
                layer,
                width,
                noise,
            }
        }),
        (any_path(), 0usize..4, proptest::option::of(depth)).prop_map(
            |(layer, n, branch_depth)| MorphOp::Stacked {
                layer,
                params: StackedParams {
                    n,
                    split: Split::Random,
                    branch_depth
                },
            }
        ),
        (
            any_path(),
            prop::collection::vec(0usize..8, 0..4),
            prop::collection::vec(0usize..6, 0..5)
        )
            .prop_map(|(layer, w, k)| {
                MorphOp::Sequential {
                    layer,
                    params: SequentialParams {
                        widths: heapless::Vec::from_slice(&w).unwrap(),
                        kernels: heapless::Vec::from_slice(&k).unwrap(),
                        algorithm: Algorithm::Auto,
                        activation: ActKind::Tanh,
                        solve: Default::default(),
                    },
                }
            }),
    ]
}

/// Whether `op` may refuse with `e`: the variants its documentation lists. Every operation
/// locates a dense or convolution layer first (no such layer, another type, NaN weights) and
/// sizes its child (too large to count or to allocate).
fn may_refuse(op: &MorphOp, e: &MorphError) -> bool {
    use MorphError as E;
    let common = matches!(
        e,
        E::NoSuchLayer { .. }
            | E::NotMorphable { .. }
            | E::NonFinite { .. }
            | E::TooLarge { .. }
            | E::Alloc { .. }
    );
    common
        || match op {
            MorphOp::Depth { .. }
            | MorphOp::InsertIdentity { .. }
            | MorphOp::Sequential { .. }
            | MorphOp::Stacked { .. } => matches!(
                e,
                E::InvalidParameter { .. }
                    | E::KernelNotOdd { .. }
                    | E::Strided { .. }
                    | E::Solve { .. }
                    | E::TooManyBranches { .. }
            ),
            MorphOp::Width { .. } => matches!(e, E::Narrower { .. } | E::NoConsumer { .. }),
            MorphOp::Net2Wider { .. } => matches!(
                e,
                E::Narrower { .. } | E::NoConsumer { .. } | E::InvalidParameter { .. }
            ),
            MorphOp::Kernel { .. } => {
                matches!(e, E::KernelSize { .. } | E::KernelBeyondInput { .. })
            }
            MorphOp::IdMorph { .. } => matches!(
                e,
                E::KernelNotOdd { .. } | E::NotIdempotent { .. } | E::KernelBeyondInput { .. }
            ),
        }
}

/// What a refusal must name: its layer, or the bytes it could not allocate; `None` for
/// [`MorphError::Net`], which reports a bug rather than refusing a request.
fn refusal_subject(e: &MorphError) -> Option<String> {
    use MorphError as E;
    match e {
        E::NoSuchLayer { layer }
        | E::NotMorphable { layer, .. }
        | E::Narrower { layer, .. }
        | E::KernelSize { layer, .. }
        | E::KernelNotOdd { layer, .. }
        | E::InvalidParameter { layer, .. }
        | E::Strided { layer, .. }
        | E::NoConsumer { layer }
        | E::NotIdempotent { layer, .. }
        | E::NonFinite { layer }
        | E::Solve { layer, .. }
        | E::TooLarge { layer, .. }
        | E::KernelBeyondInput { layer, .. }
        | E::TooManyBranches { layer, .. } => Some(layer.to_string()),
        E::Alloc { bytes } => Some(bytes.to_string()),
        _ => None,
    }
}

/// A refusal is one `op` documents, names its subject in a sentence (not `Debug`), and is not
/// the "report this as a bug" error.
fn check_refusal(op: &MorphOp, e: &MorphError) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(may_refuse(op, e), "{:?} refused with {:?}: {}", op, e, msg);
    match refusal_subject(e) {
        Some(subject) => prop_assert!(msg.contains(&subject), "{} lacks {}", msg, subject),
        None => prop_assert!(false, "{:?}: {}", op, msg),
    }
    prop_assert!(msg != format!("{e:?}"), "{}", msg);
    Ok(())
}

/// Noise draws beyond this many standard deviations do not occur in any realistic number of
/// cases (`P(|N(0, 1)| > 8) < 2e-15`).
const NOISE_SIGMAS: f64 = 8.0;

/// Noisy Net2WiderNet on `net` succeeded with `noisy`: the same request without noise (same
/// seed, so the same replicated channels) preserves the function, and the noisy child differs
/// from it only in the consumer's weights, by at most [`NOISE_SIGMAS`] times `noise` times
/// the parent consumer's weight deviation.
fn check_noisy_wider(
    net: &Network<f64>,
    noisy: &Network<f64>,
    (layer, width, noise): (&LayerPath, usize, f64),
    seed: u64,
) -> Result<(), TestCaseError> {
    let (exact, _) = net2wider(net, layer, width, 0.0, &mut Rng::seed(seed))
        .map_err(|e| TestCaseError::fail(format!("exact Net2Wider failed: {e}")))?;
    let x = Tensor::random(3, net.input_shape(), &mut Rng::seed(seed));
    let (d, s) = exact
        .forward(&x)
        .unwrap()
        .max_abs_diff(&net.forward(&x).unwrap());
    prop_assert!(d <= PRESERVE_F64 * s.max(f64::MIN_POSITIVE), "{:e}", d / s);
    let consumer = consumer(net, layer).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let parent_w: Vec<f64> = net
        .get(&consumer)
        .and_then(Layer::kernel)
        .map_or(vec![], |k| k.weight.clone());
    let bound = NOISE_SIGMAS * noise * std_dev(&parent_w);
    prop_assert_eq!(noisy.param_count(), exact.param_count());
    for p in linear_layers(&exact) {
        let (a, b) = (
            exact.get(&p).and_then(Layer::kernel),
            noisy.get(&p).and_then(Layer::kernel),
        );
        let (Some(a), Some(b)) = (a, b) else {
            return Err(TestCaseError::fail(format!(
                "no linear layer {p} in the noisy child"
            )));
        };
        if p != consumer {
            prop_assert_eq!(a, b, "layer {} differs", p);
            continue;
        }
        prop_assert_eq!((a.out, a.inp, a.k, &a.bias), (b.out, b.inp, b.k, &b.bias));
        for (u, v) in a.weight.iter().zip(&b.weight) {
            // The noisy weight is `u + n` rounded once.
            prop_assert!(
                (u - v).abs() <= bound + f64::EPSILON * v.abs(),
                "{} vs {} (bound {})",
                u,
                v,
                bound
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Any request on any network returns `Ok` (and then preserves the function, or for
    /// noisy Net2WiderNet perturbs only what the noise may) or a refusal the operation
    /// documents; nothing panics.
    #[test]
    fn arbitrary_requests_never_panic(net in network::<f64>(), op in any_op(), seed in any::<u64>()) {
        match op.apply(&net, &mut Rng::seed(seed)) {
            Ok((child, _)) => {
                if let MorphOp::Net2Wider { layer, width, noise } = &op {
                    if !op.is_exact() {
                        return check_noisy_wider(&net, &child, (layer, *width, *noise), seed);
                    }
                }
                let x = Tensor::random(3, net.input_shape(), &mut Rng::seed(seed));
                let (d, s) = child.forward(&x).unwrap().max_abs_diff(&net.forward(&x).unwrap());
                prop_assert!(d <= PRESERVE_F64 * s.max(f64::MIN_POSITIVE), "{:?}: {:e}", op, d / s);
            }
            Err(e) => check_refusal(&op, &e)?,
        }
    }
}
