//! Function preservation and structure of random morph plans on random networks, for f32 and
//! f64, against the naive oracle. `PROPTEST_CASES` (default 256) sets the depth.

use netmorph_core::morph::plan::MorphOp;
use netmorph_core::solve::algorithm::Algorithm;
use netmorph_core::{Layer, LayerPath, Network, Rng, Scalar, Tensor};
use netmorph_verify::oracle;
use netmorph_verify::strategies::{concretize, network, op_choice, plan, OpChoice, OpKind};
use netmorph_verify::tolerance::{
    self, COMPOSE_F32, COMPOSE_F64, NONZERO_GENERAL, ORACLE_F32, ORACLE_F64,
};
use proptest::prelude::*;

fn probes<T: Scalar>(net: &Network<T>, seed: u64) -> Tensor<T> {
    Tensor::random(6, net.input_shape(), &mut Rng::seed(seed))
}

fn kernel_at<T: Scalar>(net: &Network<T>, p: &LayerPath) -> (usize, usize, usize) {
    match net.get(p).and_then(Layer::kernel) {
        Some(k) => (k.out, k.inp, k.k),
        None => panic!("no dense/conv layer at {p}"),
    }
}

/// Structural expectations of one applied operation.
fn check_structure<T: Scalar>(
    parent: &Network<T>,
    child: &Network<T>,
    op: &MorphOp,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(child.output_shape(), parent.output_shape());
    let len_delta = child.layers().len() as isize - parent.layers().len() as isize;
    match op {
        MorphOp::Depth { layer, params } => {
            let (out, inp, k) = kernel_at(parent, layer);
            prop_assert_eq!(kernel_at(child, layer), (params.c_l, inp, params.k1));
            prop_assert_eq!(
                kernel_at(child, &layer.with_last(layer.last() + 2)),
                (out, params.c_l, params.k2)
            );
            match child.get(&layer.with_last(layer.last() + 1)) {
                Some(Layer::Activation(a)) => {
                    prop_assert!(a.a.len() == params.c_l && a.a.iter().all(|v| *v == T::one()))
                }
                other => prop_assert!(
                    false,
                    "expected a P-activation, found {:?}",
                    other.map(Layer::name)
                ),
            }
            let c_l = params.c_l;
            let added = c_l * inp * params.k1 * params.k1
                + c_l
                + c_l
                + out * c_l * params.k2 * params.k2
                + out;
            let removed = out * inp * k * k + out;
            prop_assert_eq!(child.param_count() + removed, parent.param_count() + added);
        }
        MorphOp::Width { layer, width } | MorphOp::Net2Wider { layer, width, .. } => {
            let (_, inp, k) = kernel_at(parent, layer);
            prop_assert_eq!(kernel_at(child, layer), (*width, inp, k));
            prop_assert_eq!(len_delta, 0);
        }
        MorphOp::Kernel { layer, k } => {
            let (out, inp, k0) = kernel_at(parent, layer);
            prop_assert_eq!(kernel_at(child, layer), (out, inp, *k));
            prop_assert_eq!(
                child.param_count(),
                parent.param_count() + out * inp * (k * k - k0 * k0)
            );
        }
        MorphOp::InsertIdentity { at, params } => {
            if at.0.len() == 1 {
                prop_assert_eq!(len_delta, 3 + isize::from(params.trailing_activation));
            }
        }
        MorphOp::Sequential { layer, params } => {
            let p = params.widths.len();
            let (out, inp, _) = kernel_at(parent, layer);
            for s in 0..=p {
                let (o, i, k) = kernel_at(child, &layer.with_last(layer.last() + 2 * s));
                prop_assert_eq!(k, params.kernels[s]);
                prop_assert_eq!(i, if s == 0 { inp } else { params.widths[s - 1] });
                prop_assert_eq!(o, if s == p { out } else { params.widths[s] });
            }
        }
        MorphOp::Stacked { layer, params } => match child.get(layer) {
            Some(Layer::ParallelSum(bs)) => prop_assert_eq!(bs.len(), params.n),
            other => prop_assert!(
                false,
                "expected a parallel block, found {:?}",
                other.map(Layer::name)
            ),
        },
        MorphOp::IdMorph { .. } => {
            prop_assert!(len_delta == 1 || len_delta == 2 || layer_nested(op))
        }
    }
    Ok(())
}

fn layer_nested(op: &MorphOp) -> bool {
    matches!(op, MorphOp::IdMorph { layer, .. } if layer.0.len() > 1)
}

fn preserves<T: Scalar>(
    net: Network<T>,
    choices: Vec<OpChoice>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let x = probes(&net, seed);
    let reference = net.forward(&x).unwrap();
    let tol = tolerance::preserve(T::NAME);
    let mut rng = Rng::seed(seed);
    let mut cur = net;
    for ch in &choices {
        let op = concretize(&cur, ch);
        let (child, report) = match op.apply(&cur, &mut rng) {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("{op:?} failed: {e}"))),
        };
        prop_assert_eq!(report.params_before, cur.param_count());
        prop_assert_eq!(report.params_after, child.param_count());
        check_structure(&cur, &child, &op)?;
        let (d, s) = child.forward(&x).unwrap().max_abs_diff(&reference);
        prop_assert!(
            d <= tol * s.max(f64::MIN_POSITIVE),
            "{:?}: deviation {:e} of {:e} exceeds {:e}",
            op,
            d,
            s,
            tol
        );
        cur = child;
    }
    Ok(())
}

fn forward_matches<T: Scalar>(net: &Network<T>, seed: u64, tol: f64) -> Result<(), TestCaseError> {
    let x = probes(net, seed);
    let fast: Vec<f64> = net
        .forward(&x)
        .unwrap()
        .data
        .iter()
        .map(|v| v.as_f64())
        .collect();
    let naive = oracle::forward(net, &x);
    prop_assert!(oracle::relative(&fast, &naive.data) <= tol);
    Ok(())
}

/// Depth morph: the composed child filters equal the zero-padded parent filter (direct full
/// convolution), and the fill is as the paper claims.
fn composed_filter<T: Scalar>(
    net: Network<T>,
    ch: OpChoice,
    seed: u64,
    tol: f64,
) -> Result<(), TestCaseError> {
    let op = concretize(
        &net,
        &OpChoice {
            kind: OpKind::Depth,
            ..ch
        },
    );
    let MorphOp::Depth { layer, params } = &op else {
        return Err(TestCaseError::fail("depth choice did not give a depth op"));
    };
    let (child, report) = op
        .apply(&net, &mut Rng::seed(seed))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let g = net.get(layer).and_then(Layer::kernel).unwrap();
    let f1 = child.get(layer).and_then(Layer::kernel).unwrap();
    let f2 = child
        .get(&layer.with_last(layer.last() + 2))
        .and_then(Layer::kernel)
        .unwrap();
    let composed = oracle::compose(f2, f1);
    let padded = oracle::pad(g, params.k1 + params.k2 - 1);
    prop_assert!(
        oracle::relative(&composed, &padded) <= tol,
        "composed filter off by {:e}",
        oracle::relative(&composed, &padded)
    );
    let new_params = f1.weight.len() + f2.weight.len();
    let nonzeros = (report.nonzero_fraction * new_params as f64).round() as usize;
    match report.algorithm {
        Some(Algorithm::General) => {
            prop_assert_eq!(report.condition7, Some(true));
            prop_assert!(
                report.nonzero_fraction >= NONZERO_GENERAL,
                "fill {}",
                report.nonzero_fraction
            );
        }
        // Fig. 3: Algorithm 2's worst case is O(C^2) non-zeros, IdMorph's O(C).
        _ => prop_assert!(
            nonzeros >= params.c_l * g.inp.min(g.out),
            "{} non-zeros",
            nonzeros
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn random_plans_preserve_f64(net in network::<f64>(), choices in plan(), seed in any::<u64>()) {
        preserves(net, choices, seed)?;
    }

    #[test]
    fn random_plans_preserve_f32(net in network::<f32>(), choices in plan(), seed in any::<u64>()) {
        preserves(net, choices, seed)?;
    }

    #[test]
    fn forward_matches_oracle_f64(net in network::<f64>(), seed in any::<u64>()) {
        forward_matches(&net, seed, ORACLE_F64)?;
    }

    #[test]
    fn forward_matches_oracle_f32(net in network::<f32>(), seed in any::<u64>()) {
        forward_matches(&net, seed, ORACLE_F32)?;
    }

    #[test]
    fn composed_filters_match_f64(net in network::<f64>(), ch in op_choice(), seed in any::<u64>()) {
        composed_filter(net, ch, seed, COMPOSE_F64)?;
    }

    #[test]
    fn composed_filters_match_f32(net in network::<f32>(), ch in op_choice(), seed in any::<u64>()) {
        composed_filter(net, ch, seed, COMPOSE_F32)?;
    }
}
