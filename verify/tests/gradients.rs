//! The backward pass against central finite differences in f64: every layer type, whole random
//! networks (including morphed ones with parallel blocks and P-activations), and the loss.

use netmorph_core::train::softmax_cross_entropy;
use netmorph_core::{
    ActKind, Conv2d, Kernel, Layer, Network, PActivation, Pool, Rng, Shape, Tensor,
};
use netmorph_verify::strategies::{concretize, plan, smooth_network, OpChoice};
use proptest::prelude::*;

/// Central-difference step: truncation error `h^2 f''' ~ 1e-12`, rounding `eps |L| / h ~ 1e-10 |L|`.
const H: f64 = 1e-6;
/// Accepted |analytic - numeric| relative to `1 + |analytic|`: two orders above both errors.
const GRAD_TOL: f64 = 1e-6;

/// `L(y) = sum y * r` for fixed random `r`: smooth, with `dL/dy = r`.
fn loss(net: &Network<f64>, x: &Tensor<f64>, r: &[f64]) -> f64 {
    net.forward(x)
        .unwrap()
        .data
        .iter()
        .zip(r)
        .map(|(a, b)| a * b)
        .sum()
}

/// Every scalar parameter as (layer-path indices, which, index) addresses, via a visitor that
/// rebuilds the network with one value changed.
fn with_param(net: &Network<f64>, id: usize, delta: f64) -> Option<Network<f64>> {
    fn walk(layers: &mut [Layer<f64>], id: &mut usize, delta: f64) -> bool {
        for l in layers {
            match l {
                Layer::ParallelSum(bs) => {
                    for b in bs {
                        if walk(b, id, delta) {
                            return true;
                        }
                    }
                }
                Layer::Activation(p) => {
                    if *id < p.a.len() {
                        p.a[*id] += delta;
                        return true;
                    }
                    *id -= p.a.len();
                }
                l => {
                    if let Some(k) = l.kernel_mut() {
                        let n = k.weight.len() + k.bias.len();
                        if *id < n {
                            if *id < k.weight.len() {
                                k.weight[*id] += delta;
                            } else {
                                k.bias[*id - k.weight.len()] += delta;
                            }
                            return true;
                        }
                        *id -= n;
                    }
                }
            }
        }
        false
    }
    let mut layers = net.clone().into_layers();
    let mut id = id;
    walk(&mut layers, &mut id, delta).then(|| Network::new(net.input_shape(), layers).unwrap())
}

/// The analytic gradients flattened in the same order as [`with_param`].
fn flat_grads(layers: &[Layer<f64>], out: &mut Vec<f64>) {
    for l in layers {
        match l {
            Layer::ParallelSum(bs) => bs.iter().for_each(|b| flat_grads(b, out)),
            Layer::Activation(p) => out.extend(&p.a),
            l => {
                if let Some(k) = l.kernel() {
                    out.extend(&k.weight);
                    out.extend(&k.bias);
                }
            }
        }
    }
}

fn check(net: &Network<f64>, x: &Tensor<f64>, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::seed(seed);
    let r = rng.normals(x.n * net.output_shape().len(), 1.0);
    let (y, trace) = net.forward_trace(x).unwrap();
    let dy = Tensor::new(y.n, y.shape, r.clone()).unwrap();
    let g = net.backward(&trace, &dy).unwrap();
    let mut analytic = Vec::new();
    flat_grads(g.layers(), &mut analytic);
    prop_assert_eq!(analytic.len(), net.param_count());
    // Up to 40 random parameters and 10 input values.
    for _ in 0..40.min(analytic.len()) {
        let id = rng.below(analytic.len());
        let plus = with_param(net, id, H).unwrap();
        let minus = with_param(net, id, -H).unwrap();
        let numeric = (loss(&plus, x, &r) - loss(&minus, x, &r)) / (2.0 * H);
        prop_assert!(
            (numeric - analytic[id]).abs() <= GRAD_TOL * (1.0 + analytic[id].abs()),
            "parameter {}: analytic {} numeric {}",
            id,
            analytic[id],
            numeric
        );
    }
    for _ in 0..10 {
        let i = rng.below(x.data.len());
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.data[i] += H;
        xm.data[i] -= H;
        let numeric = (loss(net, &xp, &r) - loss(net, &xm, &r)) / (2.0 * H);
        let a = g
            .input()
            .expect("backward computes the input gradient")
            .data[i];
        prop_assert!(
            (numeric - a).abs() <= GRAD_TOL * (1.0 + a.abs()),
            "input {}: analytic {} numeric {}",
            i,
            a,
            numeric
        );
    }
    Ok(())
}

/// Inputs whose values are pairwise at least 0.01 apart and at least 0.005 from zero, so no
/// ReLU kink or max-pool tie lies within the finite-difference step.
fn kink_free(n: usize, shape: Shape, seed: u64) -> Tensor<f64> {
    let len = n * shape.len();
    let perm = Rng::seed(seed).permutation(len);
    let data = perm
        .iter()
        .map(|&p| (p as f64 - len as f64 / 2.0 + 0.5) * 0.01)
        .collect();
    Tensor::new(n, shape, data).unwrap()
}

/// `net` after the plan's operations (morphs add parallel blocks, P-activations and new
/// layer shapes). [`concretize`] builds only valid operations: any refusal fails the test.
fn morphed(
    net: Network<f64>,
    choices: &[OpChoice],
    rng: &mut Rng,
) -> Result<Network<f64>, TestCaseError> {
    let mut cur = net;
    for ch in choices {
        let op = concretize(&cur, ch);
        cur = op
            .apply(&cur, rng)
            .map_err(|e| TestCaseError::fail(format!("{op:?} failed: {e}")))?
            .0;
    }
    Ok(cur)
}

proptest! {
    #[test]
    fn backward_matches_finite_differences(net in smooth_network::<f64>(), seed in any::<u64>()) {
        let x = Tensor::random(3, net.input_shape(), &mut Rng::seed(seed ^ 1));
        check(&net, &x, seed)?;
    }

    #[test]
    fn relu_and_maxpool_match_away_from_kinks(c in 1usize..4, h in 3usize..8, k in 2usize..4, stride in 1usize..3, ceil in any::<bool>(), a in 0.0f64..1.0, seed in any::<u64>()) {
        let shape = Shape::image(c, h, h);
        let mut act = PActivation::plain(ActKind::Relu, c);
        act.a = vec![a; c];
        for layer in [Layer::Activation(act), Layer::MaxPool2d(Pool { k, stride, ceil })] {
            let net = Network::new(shape, vec![layer]).unwrap();
            check(&net, &kink_free(2, shape, seed), seed)?;
        }
    }

    #[test]
    fn backward_matches_on_many_channel_convolutions(c in 11usize..16, k in prop_oneof![Just(3usize), Just(5)], pad in 0usize..3, h in 5usize..9, seed in any::<u64>()) {
        // At least 32 rows of C_in K with stride 1 and padding below K: the core's strip
        // layout of patch matrices (the random networks above have fewer channels).
        let mut rng = Rng::seed(seed);
        let mut kernel = Kernel::zeros(3, c, k);
        kernel.weight = rng.normals(kernel.weight.len(), 0.2);
        kernel.bias = rng.normals(3, 0.2);
        let conv = Layer::Conv2d(Conv2d { kernel, stride: 1, pad });
        let net = Network::new(Shape::image(c, h, h), vec![conv]).unwrap();
        check(&net, &Tensor::random(2, net.input_shape(), &mut rng), seed)?;
    }

    #[test]
    fn softmax_cross_entropy_gradient(n in 1usize..5, classes in 2usize..6, seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let logits: Tensor<f64> = Tensor::random(n, Shape::flat(classes), &mut rng);
        let labels: Vec<usize> = (0..n).map(|_| rng.below(classes)).collect();
        let (_, g) = softmax_cross_entropy(&logits, &labels).unwrap();
        for i in 0..logits.data.len() {
            let (mut p, mut m) = (logits.clone(), logits.clone());
            p.data[i] += H;
            m.data[i] -= H;
            let numeric = (softmax_cross_entropy(&p, &labels).unwrap().0 - softmax_cross_entropy(&m, &labels).unwrap().0) / (2.0 * H);
            prop_assert!((numeric - g.data[i]).abs() <= GRAD_TOL, "{} vs {}", numeric, g.data[i]);
        }
    }
}

proptest! {
    #[test]
    fn backward_matches_on_morphed_networks(net in smooth_network::<f64>(), choices in plan(), seed in any::<u64>()) {
        let cur = morphed(net, &choices, &mut Rng::seed(seed))?;
        let x = Tensor::random(2, cur.input_shape(), &mut Rng::seed(seed ^ 2));
        check(&cur, &x, seed)?;
    }
}
