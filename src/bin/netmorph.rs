//! The `netmorph` command. `netmorph demo` tells the whole story on generated data: train a
//! small parent, morph it (deepen through TanH, widen, grow a kernel), show that the child's
//! outputs equal the parent's, keep training, and show the child surpass the parent.

use std::process::ExitCode;
use std::time::Instant;

use netmorph::morph::depth::DepthParams;
use netmorph::morph::plan::MorphOp;
use netmorph::solve::algorithm::Algorithm;
use netmorph::train::{train_step, Schedule, Sgd, SgdConfig};
use netmorph::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Pool, Rng, Shape, Tensor,
};

const USAGE: &str = "usage: netmorph demo [--seed N]";
const CLASSES: usize = 4;
const SIDE: usize = 12;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["demo"] => Ok(0),
        ["demo", "--seed", s] => s
            .parse::<u64>()
            .map_err(|_| format!("--seed takes a non-negative integer, not {s:?}")),
        _ => Err(USAGE.to_string()),
    };
    match parsed.and_then(demo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// A labelled set of images.
struct Data {
    x: Tensor<f32>,
    y: Vec<usize>,
}

/// Noisy oriented gratings: class `k` is a sinusoid at angle `k pi / 4` with a random phase and
/// frequency jitter, in one random colour channel mix, under heavy Gaussian noise.
fn gratings(n: usize, rng: &mut Rng) -> Data {
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
    Data {
        x: Tensor { n, shape, data },
        y,
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
fn parent(rng: &mut Rng) -> Result<Network<f32>, String> {
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
    .map_err(|e| e.to_string())
}

fn batch(d: &Data, idx: &[usize]) -> (Tensor<f32>, Vec<usize>) {
    let len = d.x.shape.len();
    let data = idx
        .iter()
        .flat_map(|&i| d.x.data[i * len..(i + 1) * len].iter().copied())
        .collect();
    (
        Tensor {
            n: idx.len(),
            shape: d.x.shape,
            data,
        },
        idx.iter().map(|&i| d.y[i]).collect(),
    )
}

fn accuracy(net: &Network<f32>, d: &Data) -> Result<f64, String> {
    let out = net.forward(&d.x).map_err(|e| e.to_string())?;
    let hits = out
        .data
        .chunks_exact(CLASSES)
        .zip(&d.y)
        .filter(|(row, y)| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|m| m.0)
                == Some(**y)
        })
        .count();
    Ok(hits as f64 / d.y.len() as f64)
}

/// `epochs` of SGD over `train`; prints one line per epoch.
fn fit(
    name: &str,
    net: &mut Network<f32>,
    train: &Data,
    test: &Data,
    epochs: usize,
    rng: &mut Rng,
) -> Result<f64, String> {
    let config = SgdConfig {
        lr: 0.02,
        momentum: 0.9,
        weight_decay: 1e-4,
        bias_lr_mult: 2.0,
        schedule: Schedule::Constant,
    };
    let mut sgd = Sgd::new(config);
    let mut acc = 0.0;
    for epoch in 1..=epochs {
        let start = Instant::now();
        let order = rng.permutation(train.y.len());
        let mut loss = 0.0;
        for chunk in order.chunks(32) {
            let (x, y) = batch(train, chunk);
            loss +=
                train_step(net, &mut sgd, &x, &y).map_err(|e| e.to_string())? * chunk.len() as f64;
        }
        acc = accuracy(net, test)?;
        println!(
            "  {name} epoch {epoch:>2}: loss {:.4}  test accuracy {:>5.1}%  ({:.0} images/s)",
            loss / train.y.len() as f64,
            100.0 * acc,
            train.y.len() as f64 / start.elapsed().as_secs_f64()
        );
    }
    Ok(acc)
}

fn demo(seed: u64) -> Result<(), String> {
    let mut rng = Rng::seed(seed);
    let train = gratings(3000, &mut rng);
    let test = gratings(1000, &mut rng);
    println!("data: {} training and {} test images (3x{SIDE}x{SIDE}, {CLASSES} classes of noisy gratings), generated in-process", train.y.len(), test.y.len());
    let mut net = parent(&mut rng)?;
    println!("\n1. train the parent ({} parameters)", net.param_count());
    let parent_acc = fit("parent", &mut net, &train, &test, 6, &mut rng)?;

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
    let reference = net.forward(&test.x).map_err(|e| e.to_string())?;
    let mut child = net.clone();
    for (what, op) in &steps {
        match op.apply(&child, &mut rng) {
            Ok((next, report)) => {
                let (d, s) = next
                    .forward(&test.x)
                    .map_err(|e| e.to_string())?
                    .max_abs_diff(&reference);
                println!(
                    "  {what:<52} params {:>5} -> {:>6}, new weights {:>5.1}% non-zero, max |child - parent| = {d:.1e} ({:.1e} relative)",
                    report.params_before,
                    report.params_after,
                    100.0 * report.nonzero_fraction,
                    d / s
                );
                if d > 1e-4 * s {
                    return Err(format!("{what} changed the network function"));
                }
                child = next;
            }
            Err(e) => println!("  {what:<52} refused: {e}"),
        }
    }
    let child_start = accuracy(&child, &test)?;
    println!(
        "  child starts at {:.1}% test accuracy, exactly where the parent stopped ({:.1}%)",
        100.0 * child_start,
        100.0 * parent_acc
    );

    println!(
        "\n3. keep training the child ({} parameters)",
        child.param_count()
    );
    let child_acc = fit("child ", &mut child, &train, &test, 6, &mut rng)?;
    println!("\n4. for comparison, keep training the unmorphed parent just as long");
    let mut same = net.clone();
    let parent_more = fit("parent", &mut same, &train, &test, 6, &mut rng)?;
    println!(
        "\nparent {:.1}% -> child {:.1}% test accuracy ({:+.1} points); the parent trained as long reaches {:.1}%",
        100.0 * parent_acc,
        100.0 * child_acc,
        100.0 * (child_acc - parent_acc),
        100.0 * parent_more
    );
    Ok(())
}
