//! The `netmorph` command. `netmorph demo` morphs a small network through every operation
//! and shows that the child's outputs equal the parent's.

use std::process::ExitCode;

use netmorph::morph::depth::DepthParams;
use netmorph::morph::plan::MorphOp;
use netmorph::morph::subnet::{Split, StackedParams};
use netmorph::solve::algorithm::Algorithm;
use netmorph::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Pool, Rng, Shape, Tensor,
};

const USAGE: &str = "usage: netmorph demo [--seed N]";

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
    match parsed {
        Ok(seed) => demo(seed),
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn random_kernel(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<f32> {
    let mut kern = Kernel::zeros(out, inp, k);
    let std = 1.0 / ((inp * k * k) as f64).sqrt();
    kern.weight = rng
        .normals(kern.weight.len(), std)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    kern.bias = rng
        .normals(out, 0.1)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    kern
}

/// conv 5x5:8 -> tanh -> max-pool -> conv 3x3:16 -> tanh -> avg-pool -> flatten -> fc 10.
fn parent(rng: &mut Rng) -> Result<Network<f32>, netmorph::NetError> {
    let pool = Pool {
        k: 2,
        stride: 2,
        ceil: false,
    };
    Network::new(
        Shape::image(3, 16, 16),
        vec![
            Layer::Conv2d(Conv2d {
                kernel: random_kernel(8, 3, 5, rng),
                stride: 1,
                pad: 2,
            }),
            Layer::Activation(PActivation::plain(ActKind::Tanh, 8)),
            Layer::MaxPool2d(pool),
            Layer::Conv2d(Conv2d {
                kernel: random_kernel(16, 8, 3, rng),
                stride: 1,
                pad: 1,
            }),
            Layer::Activation(PActivation::plain(ActKind::Tanh, 16)),
            Layer::AvgPool2d(pool),
            Layer::Flatten,
            Layer::Dense(random_kernel(10, 16 * 4 * 4, 1, rng)),
        ],
    )
}

fn demo(seed: u64) -> ExitCode {
    let mut rng = Rng::seed(seed);
    let net = match parent(&mut rng) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let x = Tensor::random(64, net.input_shape(), &mut rng);
    let reference = match net.forward(&x) {
        Ok(y) => y,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "parent: {} layers, {} parameters, f32, 3x16x16 inputs (64 random probes)",
        net.layers().len(),
        net.param_count()
    );
    let mut general = DepthParams::new(64, 3, 3);
    general.algorithm = Algorithm::General;
    general.activation = ActKind::Tanh;
    let steps = [
        (
            "deepen conv 3x3:16 through a PTanH (Algorithm 1)",
            MorphOp::Depth {
                layer: LayerPath::top(3),
                params: general,
            },
        ),
        (
            "widen the first conv 8 -> 12 channels",
            MorphOp::Width {
                layer: LayerPath::top(0),
                width: 12,
            },
        ),
        (
            "grow the first conv's kernel 5 -> 7",
            MorphOp::Kernel {
                layer: LayerPath::top(0),
                k: 7,
            },
        ),
        (
            "split the new F_{l+1} into a 2-way stacked subnet",
            MorphOp::Stacked {
                layer: LayerPath::top(5),
                params: StackedParams {
                    n: 2,
                    split: Split::Random,
                    branch_depth: None,
                },
            },
        ),
        (
            "IdMorph (Net2DeeperNet) after a TanH layer",
            MorphOp::IdMorph {
                layer: LayerPath::top(0),
                k: 3,
            },
        ),
    ];
    println!(
        "{:<52} {:>9} {:>9} {:>8} {:>10} {:>10}",
        "operation", "params", "->", "nonzero", "max|diff|", "relative"
    );
    let mut cur = net.clone();
    let mut failed = false;
    for (what, op) in &steps {
        match op.apply(&cur, &mut rng) {
            Ok((child, report)) => {
                let y = child.forward(&x).unwrap_or_else(|_| reference.clone());
                let (d, s) = y.max_abs_diff(&reference);
                println!(
                    "{what:<52} {:>9} {:>9} {:>7.1}% {d:>10.2e} {:>10.2e}",
                    report.params_before,
                    report.params_after,
                    100.0 * report.nonzero_fraction,
                    d / s
                );
                failed |= d > 1e-4 * s;
                cur = child;
            }
            Err(e) => println!("{what:<52} refused: {e}"),
        }
    }
    println!(
        "child: {} layers, {} parameters; same outputs as the parent on every probe",
        cur.layers().len(),
        cur.param_count()
    );
    if failed {
        eprintln!("error: a morph changed the network function beyond f32 rounding");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
