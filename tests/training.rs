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
        a_lr_mult: 1.0,
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

fn xor_dataset(n: usize, seed: u64) -> netmorph::data::Dataset {
    let (x, y) = xor_data(n, seed);
    netmorph::data::Dataset {
        x: Tensor {
            n: x.n,
            shape: x.shape,
            data: x.data.iter().map(|v| *v as f32).collect(),
        },
        y,
        classes: 2,
    }
}

fn fit_config(threads: usize) -> netmorph::fit::FitConfig {
    netmorph::fit::FitConfig {
        epochs: 2,
        batch: 32,
        sgd: config(),
        seed: 3,
        threads,
        augment: None,
    }
}

/// Trains `net` from `state` until the end or until `stop_after` more steps.
fn run_fit(
    net: &mut Network<f64>,
    data: &netmorph::data::Dataset,
    config: &netmorph::fit::FitConfig,
    state: &mut netmorph::fit::TrainState<f64>,
    stop_after: Option<usize>,
) -> netmorph::fit::Outcome {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    let mut steps = 0;
    let on_step = |_, _, _, _| {
        steps += 1;
        if Some(steps) == stop_after {
            stop.store(true, Ordering::Relaxed);
        }
    };
    netmorph::fit::fit(net, (data, data), config, state, &stop, on_step, |_| {})
        .unwrap()
        .1
}

#[test]
fn threaded_steps_match_single_threaded_ones() {
    use netmorph::fit::TrainState;
    let data = xor_dataset(250, 9);
    let run = |threads| {
        let mut net = mlp(6, 10);
        let config = fit_config(threads);
        run_fit(
            &mut net,
            &data,
            &config,
            &mut TrainState::new(&config),
            None,
        );
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

#[test]
fn an_interrupted_run_resumed_from_its_checkpoint_ends_bit_identical() {
    use netmorph::checkpoint;
    use netmorph::data::InputScale;
    use netmorph::fit::{Outcome, TrainState};
    let data = xor_dataset(250, 9);
    let config = fit_config(1);
    let mut straight = mlp(6, 10);
    let outcome = run_fit(
        &mut straight,
        &data,
        &config,
        &mut TrainState::new(&config),
        None,
    );
    assert_eq!(outcome, Outcome::Finished);

    // 8 steps per epoch: stop inside the second epoch, save, load, go on.
    let dir = tempdir("resume");
    let path = dir.join("run.ckpt.safetensors");
    let mut net = mlp(6, 10);
    let mut state = TrainState::new(&config);
    let outcome = run_fit(&mut net, &data, &config, &mut state, Some(11));
    assert_eq!(outcome, Outcome::Interrupted);
    assert_eq!((state.epoch, state.step), (1, 3));
    checkpoint::save((&net, InputScale::Pixels), &state, &config, &path).unwrap();
    let ((mut resumed, scale), mut state): ((Network<f64>, _), _) =
        checkpoint::load(&path, &config, 8).unwrap();
    assert_eq!(resumed, net, "the checkpoint holds the network bit for bit");
    assert_eq!(scale, InputScale::Pixels, "and the input scale");
    assert_eq!(state.sgd.iteration(), 11);
    let outcome = run_fit(&mut resumed, &data, &config, &mut state, None);
    assert_eq!(outcome, Outcome::Finished);
    assert_eq!(resumed, straight, "resuming changed the run");

    // The checkpoint is a model file too; a plain model is not a checkpoint.
    assert_eq!(netmorph::model_file::load::<f64>(&path).unwrap(), net);
    let model = dir.join("model.safetensors");
    netmorph::model_file::save(&net, &model).unwrap();
    let err = checkpoint::load::<f64>(&model, &config, 8).unwrap_err();
    assert!(err.to_string().contains("not a checkpoint"), "{err}");
    // Another batch size would not replay the same sample order.
    let other = netmorph::fit::FitConfig {
        batch: 16,
        ..config
    };
    let err = checkpoint::load::<f64>(&path, &other, 16).unwrap_err();
    assert!(err.to_string().contains("--batch 32"), "{err}");
    // Steps that do not fit the data, and epochs past the run's, are refused.
    let err = checkpoint::load::<f64>(&path, &config, 7).unwrap_err();
    assert!(
        err.to_string().contains("same --data, --limit and --batch"),
        "{err}"
    );
    let short = netmorph::fit::FitConfig {
        epochs: 0,
        ..config
    };
    let err = checkpoint::load::<f64>(&path, &short, 8).unwrap_err();
    assert!(
        err.to_string().contains("past this run's 0 epochs"),
        "{err}"
    );
}

#[test]
fn augmentation_shifts_and_mirrors_whole_images() {
    use netmorph::data::{augment, Augment};
    let shape = Shape::image(2, 4, 5);
    let x = Tensor::<f32>::new(
        50,
        shape,
        (0..50 * shape.len()).map(|v| v as f32 + 1.0).collect(),
    )
    .unwrap();
    // Flip only: every image is itself or its mirror image, and both occur.
    let mut flipped = x.clone();
    augment(
        &mut flipped,
        Augment {
            crop: 0,
            flip: true,
        },
        &mut Rng::seed(4),
    );
    let (mut same, mut mirrored) = (0, 0);
    for (a, b) in x
        .data
        .chunks_exact(shape.len())
        .zip(flipped.data.chunks_exact(shape.len()))
    {
        let mirror: Vec<f32> = a
            .chunks_exact(5)
            .flat_map(|r| r.iter().rev().copied())
            .collect();
        if a == b {
            same += 1;
        } else {
            assert_eq!(b, mirror.as_slice());
            mirrored += 1;
        }
    }
    assert!(same > 0 && mirrored > 0, "{same} kept, {mirrored} mirrored");
    // Crop only: each image is a shifted copy, the same shift in every channel, zeros
    // where it moved in from outside.
    let mut cropped = x.clone();
    augment(
        &mut cropped,
        Augment {
            crop: 2,
            flip: false,
        },
        &mut Rng::seed(5),
    );
    let mut shifted = 0;
    for (a, b) in x
        .data
        .chunks_exact(shape.len())
        .zip(cropped.data.chunks_exact(shape.len()))
    {
        let found = (-2isize..=2)
            .flat_map(|dy| (-2isize..=2).map(move |dx| (dy, dx)))
            .find(|&(dy, dx)| {
                (0..shape.len()).all(|i| {
                    let (c, y, x) = (i / 20, (i / 5) % 4, i % 5);
                    let (sy, sx) = (y as isize + dy, x as isize + dx);
                    let want = if (0..4).contains(&sy) && (0..5).contains(&sx) {
                        a[c * 20 + sy as usize * 5 + sx as usize]
                    } else {
                        0.0
                    };
                    b[i] == want
                })
            });
        let (dy, dx) = found.expect("every image is a shift of itself");
        shifted += usize::from((dy, dx) != (0, 0));
    }
    assert!(shifted > 25, "only {shifted} of 50 images moved");
    // Seeded: the same draw twice.
    let mut again = x.clone();
    augment(
        &mut again,
        Augment {
            crop: 2,
            flip: false,
        },
        &mut Rng::seed(5),
    );
    assert_eq!(again, cropped);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netmorph-training-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_step_in_several_passes_matches_one_pass() {
    use netmorph::fit::{pass_samples, step};
    // 16384 inputs per sample: passes of 32 samples, so a batch of 70 takes three.
    let input = Shape::image(1, 128, 128);
    let mut rng = Rng::seed(4);
    let mut k = Kernel::zeros(4, input.len(), 1);
    k.weight = rng.normals(k.weight.len(), 0.01);
    let net = Network::new(input, vec![Layer::Flatten, Layer::Dense(k)]).unwrap();
    assert_eq!(pass_samples(&net), 32);
    let x = Tensor::random(70, input, &mut rng);
    let labels: Vec<usize> = (0..70).map(|i| i % 4).collect();
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        bias_lr_mult: 2.0,
        a_lr_mult: 1.0,
        schedule: Schedule::Constant,
    };
    let (mut whole, mut passes) = (net.clone(), net.clone());
    let l1 = train_step(&mut whole, &mut Sgd::new(config), &x, &labels).unwrap();
    let l2 = step(&mut passes, &mut Sgd::new(config), &x, &labels, 1).unwrap();
    assert!((l1 - l2).abs() < 1e-12, "loss {l1} vs {l2}");
    let (a, b) = (
        whole.layers()[1].kernel().unwrap(),
        passes.layers()[1].kernel().unwrap(),
    );
    let max = a
        .weight
        .iter()
        .chain(&a.bias)
        .zip(b.weight.iter().chain(&b.bias))
        .fold(0.0f64, |m, (u, v)| m.max((u - v).abs()));
    assert!(max < 1e-12, "passes drifted by {max}");
    assert_ne!(whole, net, "the step changed nothing");
}
