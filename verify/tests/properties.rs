//! Function preservation and structure of random morph plans on random networks, for f32 and
//! f64, against the naive oracle. `PROPTEST_CASES` (default 256) sets the depth.

use netmorph_core::morph::depth::{DepthParams, InsertParams};
use netmorph_core::morph::plan::MorphOp;
use netmorph_core::morph::subnet::{Split, StackedParams};
use netmorph_core::solve::algorithm::Algorithm;
use netmorph_core::{Layer, LayerPath, Network, Rng, Scalar, Tensor};
use netmorph_verify::oracle;
use netmorph_verify::strategies::{
    concretize, linear_layers, network, op_choice, plan, OpChoice, OpKind,
};
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
            // Two linear layers and a P-activation (`a = 1`), plus one more if asked, in the
            // sequence holding `at`, nested or not.
            let added = 3 + usize::from(params.trailing_activation);
            prop_assert_eq!(seq_len(child, at), seq_len(parent, at).map(|n| n + added));
            match child.get(&at.with_last(at.last() + 1)) {
                Some(Layer::Activation(a)) => prop_assert!(a.a.iter().all(|v| *v == T::one())),
                other => prop_assert!(
                    false,
                    "expected a P-activation, found {:?}",
                    other.map(Layer::name)
                ),
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
        MorphOp::IdMorph { layer, .. } => {
            // An identity layer after the layer, behind its activation (then copied) if
            // there is one, in the sequence holding the layer, nested or not.
            let next = layer.with_last(layer.last() + 1);
            let activation = matches!(parent.get(&next), Some(Layer::Activation(_)));
            let (at, added) = if activation {
                (layer.with_last(layer.last() + 2), 2)
            } else {
                (next, 1)
            };
            prop_assert_eq!(
                seq_len(child, layer),
                seq_len(parent, layer).map(|n| n + added)
            );
            let (out, _, _) = kernel_at(parent, layer);
            match child.get(&at).and_then(Layer::kernel) {
                Some(id) => {
                    prop_assert_eq!((id.out, id.inp), (out, out));
                    prop_assert!(id.bias.iter().all(|b| *b == T::zero()));
                }
                None => prop_assert!(false, "no identity layer at {}", at),
            }
        }
    }
    Ok(())
}

/// The length of the sequence holding `path` (top level or a branch), if there is one.
fn seq_len<T: Scalar>(net: &Network<T>, path: &LayerPath) -> Option<usize> {
    let mut seq = net.layers();
    let mut ix = path.0.as_slice();
    while let [i, b, rest @ ..] = ix {
        if rest.is_empty() {
            return None;
        }
        let Some(Layer::ParallelSum(branches)) = seq.get(*i) else {
            return None;
        };
        seq = branches.get(*b)?;
        ix = rest;
    }
    (ix.len() == 1).then_some(seq.len())
}

/// Applies `op` to `cur` and checks the report, the structure and that the outputs on `x` stay
/// those of the original network, `reference`; the child.
fn step<T: Scalar>(
    cur: &Network<T>,
    op: &MorphOp,
    rng: &mut Rng,
    (x, reference): (&Tensor<T>, &Tensor<T>),
) -> Result<Network<T>, TestCaseError> {
    let (child, report) = op
        .apply(cur, rng)
        .map_err(|e| TestCaseError::fail(format!("{op:?} failed: {e}")))?;
    prop_assert_eq!(report.params_before, cur.param_count());
    prop_assert_eq!(report.params_after, child.param_count());
    check_structure(cur, &child, op)?;
    let tol = tolerance::preserve(T::NAME);
    let (d, s) = child.forward(x).unwrap().max_abs_diff(reference);
    prop_assert!(
        d <= tol * s.max(f64::MIN_POSITIVE),
        "{:?}: deviation {:e} of {:e} exceeds {:e}",
        op,
        d,
        s,
        tol
    );
    Ok(child)
}

fn preserves<T: Scalar>(
    net: Network<T>,
    choices: Vec<OpChoice>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let x = probes(&net, seed);
    let reference = net.forward(&x).unwrap();
    let mut rng = Rng::seed(seed);
    let mut cur = net;
    for ch in &choices {
        let op = concretize(&cur, ch);
        cur = step(&cur, &op, &mut rng, (&x, &reference))?;
    }
    Ok(())
}

/// Edits inside a parallel block, which random plans rarely reach: a stacked subnet at a
/// linear layer, an identity insertion (ReLU P-activation) into branch 0 at `pos` (before
/// or after its layer), IdMorph behind that insertion's P-activation and IdMorph of branch 1's
/// last layer (no activation after it). Each step must preserve the function.
fn nested_edits<T: Scalar>(
    net: Network<T>,
    pick: usize,
    [pos, extra, k, trailing]: [usize; 4],
    seed: u64,
) -> Result<(), TestCaseError> {
    let x = probes(&net, seed);
    let reference = net.forward(&x).unwrap();
    let probe = (&x, &reference);
    let mut rng = Rng::seed(seed);
    let linear = linear_layers(&net);
    let layer = linear[pick % linear.len()].clone();
    let stacked = MorphOp::Stacked {
        layer: layer.clone(),
        params: StackedParams {
            n: 2,
            split: Split::Random,
            branch_depth: None,
        },
    };
    let cur = step(&net, &stacked, &mut rng, probe)?;
    let (Some(at), Some(last)) = (layer.child(0, pos % 2), layer.child(1, 0)) else {
        return Err(TestCaseError::reject("too deep to nest"));
    };
    let shape = cur.shape_before(&at).unwrap_or(cur.input_shape());
    let k = if shape.is_flat() { 1 } else { [1, 3][k % 2] };
    let insert = MorphOp::InsertIdentity {
        at: at.clone(),
        params: InsertParams {
            depth: DepthParams::new(shape.c + extra % 3, k, k),
            trailing_activation: trailing % 2 == 0,
        },
    };
    let cur = step(&cur, &insert, &mut rng, probe)?;
    // An identity kernel wider than one pixel needs a blob wider than one pixel: its outer
    // taps would only read zero padding, which IdMorph refuses.
    let id_k = |net: &Network<T>, p: &LayerPath| match net.shape_before(&p.with_last(p.last() + 1))
    {
        Some(b) if b.h.max(b.w) >= 2 => k,
        _ => 1,
    };
    let k_at = id_k(&cur, &at);
    let cur = step(
        &cur,
        &MorphOp::IdMorph { layer: at, k: k_at },
        &mut rng,
        probe,
    )?;
    let k_last = id_k(&cur, &last);
    step(
        &cur,
        &MorphOp::IdMorph {
            layer: last,
            k: k_last,
        },
        &mut rng,
        probe,
    )?;
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
    fn nested_edits_preserve_f64(net in network::<f64>(), pick in any::<usize>(), r in any::<[usize; 4]>(), seed in any::<u64>()) {
        nested_edits(net, pick, r, seed)?;
    }

    #[test]
    fn nested_edits_preserve_f32(net in network::<f32>(), pick in any::<usize>(), r in any::<[usize; 4]>(), seed in any::<u64>()) {
        nested_edits(net, pick, r, seed)?;
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
