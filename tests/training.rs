//! Training end to end on generated data: loss falls, a morphed child starts where the
//! parent stopped and keeps learning, and misuse gives typed errors.

use netmorph::morph::depth::{deepen, DepthParams};
use netmorph::train::{softmax_cross_entropy, train_step, Schedule, Sgd, SgdConfig, TrainError};
use netmorph::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape, Tensor};

/// Two interleaved spirals-like classes: label = sign of x0 * x1 (XOR), not linearly separable.
fn xor_data(n: usize, seed: u64) -> (Tensor<f64>, Vec<usize>) {
    let mut rng = Rng::seed(seed);
    let x = Tensor::random(n, Shape::flat(2), &mut rng);
    let labels = x
        .data
        .chunks_exact(2)
        .map(|p| usize::from(p[0] * p[1] > 0.0))
        .collect();
    (x, labels)
}

fn mlp(hidden: usize, seed: u64) -> Network<f64> {
    let mut rng = Rng::seed(seed);
    let mut k1 = Kernel::zeros(hidden, 2, 1);
    k1.weight = rng.normals(hidden * 2, 1.0);
    let mut k2 = Kernel::zeros(2, hidden, 1);
    k2.weight = rng.normals(2 * hidden, 0.5);
    Network::new(
        Shape::flat(2),
        vec![
            Layer::Dense(k1),
            Layer::Activation(PActivation::plain(ActKind::Tanh, hidden)),
            Layer::Dense(k2),
        ],
    )
    .unwrap()
}

fn config() -> SgdConfig {
    SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
        bias_lr_mult: 2.0,
        schedule: Schedule::Constant,
    }
}

fn loss(net: &Network<f64>, x: &Tensor<f64>, y: &[usize]) -> f64 {
    softmax_cross_entropy(&net.forward(x).unwrap(), y)
        .unwrap()
        .0
}

fn train(net: &mut Network<f64>, steps: usize, x: &Tensor<f64>, y: &[usize]) {
    let mut sgd = Sgd::new(config());
    for _ in 0..steps {
        train_step(net, &mut sgd, x, y).unwrap();
    }
}

#[test]
fn sgd_learns_xor() {
    let (x, y) = xor_data(200, 1);
    let mut net = mlp(8, 2);
    let before = loss(&net, &x, &y);
    train(&mut net, 300, &x, &y);
    let after = loss(&net, &x, &y);
    assert!(after < 0.5 * before, "loss {before} -> {after}");
}

#[test]
fn morphed_child_starts_equal_and_keeps_learning() {
    let (x, y) = xor_data(200, 3);
    // A linear parent cannot solve XOR; its deepened child (P-activation from a = 1) can.
    let mut k = Kernel::zeros(2, 2, 1);
    k.weight = Rng::seed(4).normals(4, 0.5);
    let mut parent = Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap();
    train(&mut parent, 200, &x, &y);
    let parent_loss = loss(&parent, &x, &y);
    let mut p = DepthParams::new(16, 1, 1);
    p.activation = ActKind::Tanh;
    let (mut child, _) = deepen(&parent, &LayerPath::top(0), &p, &mut Rng::seed(5)).unwrap();
    assert!((loss(&child, &x, &y) - parent_loss).abs() < 1e-9);
    train(&mut child, 600, &x, &y);
    let child_loss = loss(&child, &x, &y);
    assert!(
        child_loss < 0.8 * parent_loss,
        "parent {parent_loss}, child {child_loss}"
    );
    // The P-activation learned its way away from the identity, and stayed in [0, 1].
    match &child.layers()[1] {
        Layer::Activation(act) => {
            assert!(act.a.iter().all(|a| (0.0..=1.0).contains(a)));
            assert!(act.a.iter().any(|a| *a < 0.99), "a stayed at {:?}", act.a);
        }
        other => panic!("expected the P-activation, found {}", other.name()),
    }
}

#[test]
fn schedules() {
    let mut c = config();
    c.schedule = Schedule::Step {
        every: 10,
        gamma: 0.1,
    };
    assert!((c.lr_at(25) - 0.001).abs() < 1e-15);
    c.schedule = Schedule::Cosine {
        total: 100,
        min: 0.0,
    };
    assert!((c.lr_at(50) - 0.05).abs() < 1e-12 && c.lr_at(100).abs() < 1e-15);
}

#[test]
fn misuse_gives_typed_errors() {
    let (x, y) = xor_data(4, 6);
    let mut net = mlp(3, 7);
    let mut sgd = Sgd::new(config());
    let err = train_step(&mut net, &mut sgd, &x, &[0, 1]).unwrap_err();
    assert!(matches!(
        err,
        TrainError::Labels {
            samples: 4,
            labels: 2,
            classes: 2
        }
    ));
    assert!(err.to_string().contains("labels"));
    assert!(matches!(
        train_step(&mut net, &mut sgd, &x, &[0, 1, 2, 0]),
        Err(TrainError::Labels { .. })
    ));
    // An optimiser that stepped one network refuses a differently shaped one.
    train_step(&mut net, &mut sgd, &x, &y).unwrap();
    let mut other = mlp(5, 8);
    let err = train_step(&mut other, &mut sgd, &x, &y).unwrap_err();
    assert_eq!(err, TrainError::Structure);
    assert_eq!(
        other,
        mlp(5, 8),
        "a failed step must leave the network unchanged"
    );
}

#[test]
fn threaded_steps_match_single_threaded_ones() {
    use netmorph::data::Dataset;
    use netmorph::fit::{fit, FitConfig};
    let (x, y) = xor_data(250, 9);
    let x32 = Tensor {
        n: x.n,
        shape: x.shape,
        data: x.data.iter().map(|v| *v as f32).collect(),
    };
    let data = Dataset {
        x: x32,
        y,
        classes: 2,
    };
    let run = |threads| {
        let mut net = mlp(6, 10);
        let config = FitConfig {
            epochs: 2,
            batch: 32,
            sgd: config(),
            seed: 3,
            threads,
        };
        fit(&mut net, &data, &data, &config, |_, _, _, _| {}, |_| {}).unwrap();
        net
    };
    let (one, three) = (run(1), run(3));
    let params = |n: &Network<f64>| -> Vec<f64> {
        n.layers()
            .iter()
            .filter_map(Layer::kernel)
            .flat_map(|k| k.weight.iter().chain(&k.bias).copied())
            .collect()
    };
    let max = params(&one)
        .iter()
        .zip(params(&three))
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    // Same steps; only the summation order of the batch gradient differs.
    assert!(max < 1e-12, "threaded training drifted by {max}");
    assert_ne!(one, mlp(6, 10), "training changed nothing");
}
