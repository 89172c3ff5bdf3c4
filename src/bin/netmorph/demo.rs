//! `demo`: the whole story on generated data in seconds: train a parent, morph it exactly,
//! keep training, and compare with the parent trained as long.

use netmorph::data::Dataset;
use netmorph::fit::{evaluate, FitConfig, TrainState};
use netmorph::morph::depth::DepthParams;
use netmorph::morph::plan::MorphOp;
use netmorph::solve::algorithm::Algorithm;
use netmorph::train::{Schedule, SgdConfig};
use netmorph::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Pool, Rng, Shape, Tensor,
};

use crate::args::threads;
use crate::error::{CliError, Result};
use crate::training::{fit_or_checkpoint, Device};

const CLASSES: usize = 4;
const SIDE: usize = 12;

/// Noisy oriented gratings: class `k` is a sinusoid at angle `k pi / 4` with a random phase and
/// frequency jitter, in a random colour mix, under heavy Gaussian noise.
fn gratings(n: usize, rng: &mut Rng) -> Dataset {
    let shape = Shape::image(3, SIDE, SIDE);
    let mut data = Vec::with_capacity(n * shape.len());
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let k = rng.below(CLASSES);
        let angle = k as f64 * std::f64::consts::PI / CLASSES as f64;
        let (phase, freq) = (
            rng.uniform() * std::f64::consts::TAU,
            0.8 + 0.4 * rng.uniform(),
        );
        let mix = [rng.uniform(), rng.uniform(), rng.uniform()];
        for m in mix {
            for r in 0..SIDE {
                for c in 0..SIDE {
                    let t = (r as f64 * angle.sin() + c as f64 * angle.cos()) * freq + phase;
                    data.push((m * t.sin() + 1.2 * rng.normal()) as f32);
                }
            }
        }
        y.push(k);
    }
    Dataset {
        x: Tensor { n, shape, data },
        y,
        classes: CLASSES,
    }
}

fn random_kernel(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<f32> {
    let mut kern = Kernel::zeros(out, inp, k);
    let std = (1.0 / (inp * k * k) as f64).sqrt();
    kern.weight = rng
        .normals(kern.weight.len(), std)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    kern
}

/// conv 3x3:4 -> tanh -> avg-pool 2 -> conv 3x3:8 -> tanh -> avg-pool 2 -> flatten -> fc 4.
fn demo_parent(rng: &mut Rng) -> Result<Network<f32>> {
    let pool = Pool {
        k: 2,
        stride: 2,
        ceil: false,
    };
    Network::new(
        Shape::image(3, SIDE, SIDE),
        vec![
            Layer::Conv2d(Conv2d {
                kernel: random_kernel(4, 3, 3, rng),
                stride: 1,
                pad: 1,
            }),
            Layer::Activation(PActivation::plain(ActKind::Tanh, 4)),
            Layer::AvgPool2d(pool),
            Layer::Conv2d(Conv2d {
                kernel: random_kernel(8, 4, 3, rng),
                stride: 1,
                pad: 1,
            }),
            Layer::Activation(PActivation::plain(ActKind::Tanh, 8)),
            Layer::AvgPool2d(pool),
            Layer::Flatten,
            Layer::Dense(random_kernel(CLASSES, 8 * 3 * 3, 1, rng)),
        ],
    )
    .map_err(CliError::from)
}

/// `netmorph demo`.
pub fn run(seed: u64) -> Result<()> {
    let mut rng = Rng::seed(seed);
    let train = gratings(3000, &mut rng);
    let test = gratings(1000, &mut rng);
    println!(
        "data: {} training and {} test images (3x{SIDE}x{SIDE}, {CLASSES} classes of noisy gratings), generated in-process",
        train.y.len(),
        test.y.len()
    );
    let config = FitConfig {
        epochs: 6,
        threads: threads(0),
        batch: 32,
        sgd: SgdConfig {
            lr: 0.02,
            momentum: 0.9,
            weight_decay: 1e-4,
            bias_lr_mult: 2.0,
            a_lr_mult: 1.0,
            schedule: Schedule::Constant,
        },
        seed,
        augment: None,
    };
    let fit_demo = |net: &mut Network<f32>, config: &FitConfig, label: &str| {
        fit_or_checkpoint(
            &Device::Cpu,
            net,
            (&train, &test),
            config,
            &mut TrainState::new(config),
            (false, label),
            None,
        )
    };
    let mut net = demo_parent(&mut rng)?;
    println!("\n1. train the parent ({} parameters)", net.param_count());
    let parent_acc = fit_demo(&mut net, &config, "parent")?
        .last()
        .map_or(0.0, |s| s.test_accuracy);

    println!("\n2. morph it; the child must compute the same function");
    let mut deeper = DepthParams::new(32, 3, 3);
    deeper.algorithm = Algorithm::General;
    deeper.activation = ActKind::Tanh;
    let steps = [
        (
            "deepen conv2 through a PTanH (NetMorph, Algorithm 1)",
            MorphOp::Depth {
                layer: LayerPath::top(3),
                params: deeper,
            },
        ),
        (
            "widen conv1 from 4 to 12 channels",
            MorphOp::Width {
                layer: LayerPath::top(0),
                width: 12,
            },
        ),
        (
            "grow conv1's kernel from 3 to 5",
            MorphOp::Kernel {
                layer: LayerPath::top(0),
                k: 5,
            },
        ),
        (
            "IdMorph (Net2DeeperNet) after conv1's TanH",
            MorphOp::IdMorph {
                layer: LayerPath::top(0),
                k: 3,
            },
        ),
    ];
    let reference = net.forward(&test.x)?;
    let mut child = net.clone();
    for (what, op) in &steps {
        match op.apply(&child, &mut rng) {
            Ok((next, report)) => {
                let (d, s) = next.forward(&test.x)?.max_abs_diff(&reference);
                println!(
                    "  {what:<52} params {:>5} -> {:>6}, new weights {:>5.1}% non-zero, max |child - parent| = {d:.1e} ({:.1e} relative)",
                    report.params_before,
                    report.params_after,
                    100.0 * report.nonzero_fraction,
                    d / s
                );
                if d > 1e-4 * s {
                    return Err(CliError::Context {
                        context: (*what).to_string(),
                        source: Box::new(CliError::Deviation {
                            relative: d / s,
                            tolerance: 1e-4,
                        }),
                    });
                }
                child = next;
            }
            Err(e) => println!("  {what:<52} refused: {e}"),
        }
    }
    let child_start = evaluate(&child, &test)?.1;
    println!(
        "  child starts at {:.1}% test accuracy, exactly where the parent stopped ({:.1}%)",
        100.0 * child_start,
        100.0 * parent_acc
    );

    println!(
        "\n3. keep training the child ({} parameters)",
        child.param_count()
    );
    // Continued training anneals (cosine to zero), so both runs end converged rather than
    // wherever the last noisy step left them.
    let mut config = FitConfig {
        seed: seed + 1,
        ..config
    };
    config.sgd.schedule = Schedule::Cosine {
        total: config.epochs * train.y.len().div_ceil(config.batch),
        min: 0.0,
    };
    let child_acc = fit_demo(&mut child, &config, "child ")?
        .last()
        .map_or(0.0, |s| s.test_accuracy);
    println!("\n4. for comparison, keep training the unmorphed parent just as long");
    let parent_more = fit_demo(&mut net, &config, "parent")?
        .last()
        .map_or(0.0, |s| s.test_accuracy);
    println!(
        "\nparent {:.1}% -> child {:.1}% test accuracy ({:+.1} points); the parent trained as long reaches {:.1}%",
        100.0 * parent_acc,
        100.0 * child_acc,
        100.0 * (child_acc - parent_acc),
        100.0 * parent_more
    );
    Ok(())
}
