//! `fit_on` with the GPU engine against `fit` on the CPU: the same epochs (in f32 and in
//! f64), and the same interruption and resumption (across devices too). Under `CI=true` a
//! missing adapter fails; elsewhere the tests say they skipped.
#![cfg(feature = "gpu")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::gpu;
use netmorph::arch::parse;
use netmorph::data::Dataset;
use netmorph::device::{Gpu, GpuEngine};
use netmorph::fit::{fit, fit_on, EpochStats, FitConfig, Outcome, TrainState};
use netmorph::train::{Schedule, SgdConfig};
use netmorph::{Layer, Network, Rng, Scalar, Shape, Tensor};
use netmorph_gpu::testing::supports_or_skip;

/// `n` images of 3 x 12 x 12 in 3 classes: a class-dependent bright square on noise.
fn images(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::seed(seed);
    let shape = Shape::image(3, 12, 12);
    let mut data = Vec::with_capacity(n * shape.len());
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        for c in 0..3 {
            for r in 0..12 {
                for col in 0..12 {
                    let lit = r / 4 == class && col / 4 == c;
                    data.push((rng.uniform() - 0.5 + if lit { 1.5 } else { 0.0 }) as f32);
                }
            }
        }
        y.push(class);
    }
    Dataset {
        x: Tensor::new(n, shape, data).expect("sizes agree"),
        y,
        classes: 3,
    }
}

fn fresh<T: Scalar>() -> Network<T> {
    let mut rng = Rng::seed(5);
    parse("(3:6)(3:8)")
        .expect("architecture")
        .build::<T>(Shape::image(3, 12, 12), 3, &mut rng)
        .expect("network")
}

fn config() -> FitConfig {
    FitConfig {
        epochs: 3,
        // 90 samples: five steps of 16 and a last one of 10 (a second batch size).
        batch: 16,
        sgd: SgdConfig {
            lr: 0.02,
            momentum: 0.9,
            weight_decay: 1e-3,
            bias_lr_mult: 2.0,
            a_lr_mult: 1.0,
            schedule: Schedule::Step {
                every: 7,
                gamma: 0.5,
            },
        },
        seed: 3,
        threads: 1,
        augment: None,
    }
}

/// Trains with `engine` (the CPU when `None`) from `state`, raising the stop flag after
/// `stop_after` steps if given.
fn run<T: Scalar>(
    engine: Option<&mut GpuEngine>,
    net: &mut Network<T>,
    data: &Dataset,
    state: &mut TrainState<T>,
    stop_after: Option<usize>,
) -> (Vec<EpochStats>, Outcome) {
    let stop = AtomicBool::new(false);
    let mut steps = 0;
    let progress = |_, _, _, _| {
        steps += 1;
        if Some(steps) == stop_after {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let config = config();
    let result = match engine {
        Some(e) => fit_on(
            e,
            net,
            (data, data),
            &config,
            state,
            &stop,
            progress,
            |_| {},
        ),
        None => fit(net, (data, data), &config, state, &stop, progress, |_| {}),
    };
    result.expect("training")
}

/// The largest norm-wise relative difference between the two networks' tensors.
fn drift<T: Scalar>(a: &Network<T>, b: &Network<T>) -> f64 {
    fn tensors<T: Scalar>(layers: &[Layer<T>], out: &mut Vec<Vec<T>>) {
        for l in layers {
            match l {
                Layer::Activation(p) => out.push(p.a.clone()),
                Layer::ParallelSum(bs) => bs.iter().for_each(|b| tensors(b, out)),
                l => {
                    if let Some(k) = l.kernel() {
                        out.push(k.weight.clone());
                        out.push(k.bias.clone());
                    }
                }
            }
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    tensors(a.layers(), &mut x);
    tensors(b.layers(), &mut y);
    assert_eq!(x.len(), y.len());
    x.iter()
        .zip(&y)
        .map(|(p, q)| {
            let scale = q.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
            let diff = p
                .iter()
                .zip(q)
                .fold(0.0f64, |m, (u, v)| m.max((u.as_f64() - v.as_f64()).abs()));
            if scale == 0.0 {
                diff
            } else {
                diff / scale
            }
        })
        .fold(0.0, f64::max)
}

/// Three epochs of `fit_on` on the GPU against `fit` on the CPU in `T`: parameters and
/// losses within `tol`, the same accuracy.
fn epochs_match<T: Scalar>(gpu: Gpu, tol: f64) {
    let data = images(90, 1);
    let mut cpu_net = fresh::<T>();
    let mut cpu_state = TrainState::new(&config());
    let (cpu_stats, _) = run(None, &mut cpu_net, &data, &mut cpu_state, None);
    let mut engine = GpuEngine::new(gpu, 16);
    let mut gpu_net = fresh::<T>();
    let mut gpu_state = TrainState::new(&config());
    let (gpu_stats, outcome) = run(Some(&mut engine), &mut gpu_net, &data, &mut gpu_state, None);
    assert_eq!(outcome, Outcome::Finished);
    assert_ne!(gpu_net, fresh::<T>(), "training on the GPU changed nothing");
    let d = drift(&gpu_net, &cpu_net);
    assert!(d <= tol, "parameters drifted by {d:e}");
    assert_eq!(gpu_state.sgd.iteration(), cpu_state.sgd.iteration());
    assert!(
        drift(
            &Network::new(
                fresh::<T>().input_shape(),
                gpu_state.sgd.velocity().expect("momentum").to_vec()
            )
            .expect("velocity"),
            &Network::new(
                fresh::<T>().input_shape(),
                cpu_state.sgd.velocity().expect("momentum").to_vec()
            )
            .expect("velocity"),
        ) <= 10.0 * tol,
        "momentum drifted"
    );
    for (g, c) in gpu_stats.iter().zip(&cpu_stats) {
        assert!(
            (g.train_loss - c.train_loss).abs() <= tol * c.train_loss,
            "{g:?} vs {c:?}"
        );
        assert!(
            (g.test_loss - c.test_loss).abs() <= tol * c.test_loss,
            "{g:?} vs {c:?}"
        );
        assert_eq!(g.test_accuracy, c.test_accuracy, "{g:?} vs {c:?}");
    }
    assert!(
        cpu_stats[2].train_loss < cpu_stats[0].train_loss,
        "{cpu_stats:?}"
    );
}

#[test]
fn epochs_on_the_gpu_match_the_cpu() {
    let Some(gpu) = gpu("epochs") else { return };
    epochs_match::<f32>(gpu, 1e-4);
}

/// f64 networks train in f64 on the GPU, to f64 precision (where the adapter has 64-bit
/// floats; CI's lavapipe has them).
#[test]
fn f64_epochs_on_the_gpu_match_the_cpu_to_f64_precision() {
    let Some(gpu) = gpu("f64 epochs") else { return };
    if supports_or_skip::<f64>(&gpu, "f64 epochs") {
        epochs_match::<f64>(gpu, 1e-10);
    }
}

#[test]
fn a_run_interrupted_on_the_gpu_resumes_on_the_cpu() {
    let Some(gpu) = gpu("interrupted") else {
        return;
    };
    let data = images(90, 2);
    let mut straight = fresh::<f32>();
    run(
        None,
        &mut straight,
        &data,
        &mut TrainState::new(&config()),
        None,
    );
    // Six steps per epoch: stop in the second epoch, on the GPU.
    let mut engine = GpuEngine::new(gpu, 16);
    let mut net = fresh::<f32>();
    let mut state = TrainState::new(&config());
    let (_, outcome) = run(Some(&mut engine), &mut net, &data, &mut state, Some(9));
    assert_eq!(outcome, Outcome::Interrupted);
    assert_eq!((state.epoch, state.step, state.sgd.iteration()), (1, 3, 9));
    assert_ne!(
        net,
        fresh::<f32>(),
        "the interrupted run's network came back"
    );
    let (_, outcome) = run(None, &mut net, &data, &mut state, None);
    assert_eq!(outcome, Outcome::Finished);
    let d = drift(&net, &straight);
    assert!(d <= 1e-4, "resumed run drifted by {d:e}");
}
