//! `reproduce`: the paper's experiments on real data, each writing `metrics.csv`,
//! `curves.svg`, `table.md` and `run.md` into `docs/results/NAME/` (see
//! `docs/results/README.md`).
//!
//! ```sh
//! cargo run --release -p netmorph-bench --bin reproduce -- softmax-to-mlp          # full run
//! cargo run --release -p netmorph-bench --bin reproduce -- softmax-to-mlp --quick  # CI's
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use netmorph_bench::reproduce::{cifar, occupancy, scaling, softmax_mlp, Output};

/// The experiments.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Experiment {
    /// Fig. 7: softmax regression -> MLP on Fashion-MNIST, NetMorph vs Net2Net vs scratch,
    /// with controls (~5 min in full).
    SoftmaxToMlp,
    /// Fig. 8, Table 1: cifar_111 -> 211 -> 222 (-> 2222 -> 3333) on CIFAR-10, NetMorph vs
    /// Net2Net vs scratch, with controls (~90 min in full).
    CifarDepth,
    /// Fig. 9: cifar_base -> ksize -> width on CIFAR-10 (NetMorph's kernel and width morphs,
    /// Net2WiderNet), and width morphing from a TanH parent (into `tanh/`) (~40 min in full).
    CifarKernelWidth,
    /// Fig. 3: non-zero fraction and value histograms of embedded filters, IdMorph vs
    /// NetMorph (~3 min in full: cifar10_quick is trained 5 epochs first).
    Occupancy,
    /// The depth solve's time against layer size, grouped and dense (~5 min in full).
    SolverScaling,
}

impl Experiment {
    fn name(self) -> &'static str {
        match self {
            Self::SoftmaxToMlp => "softmax-to-mlp",
            Self::CifarDepth => "cifar-depth",
            Self::CifarKernelWidth => "cifar-kernel-width",
            Self::Occupancy => "occupancy",
            Self::SolverScaling => "solver-scaling",
        }
    }
}

#[derive(Parser)]
#[command(about = "Reproduce the paper's experiments; results go to docs/results/NAME/")]
struct Args {
    /// Which experiment.
    experiment: Experiment,
    /// The small variant CI runs (minutes): fewer images, epochs and seeds.
    #[arg(long)]
    quick: bool,
    /// Results folder [default: docs/results/NAME, or target/results-quick/NAME with --quick].
    #[arg(long)]
    out: Option<PathBuf>,
    /// CIFAR-10 folder [default: NETMORPH_CIFAR10, else ../shared/datasets/cifar10-jpeg].
    #[arg(long)]
    cifar10: Option<PathBuf>,
    /// cifar-depth: how many morph steps to run (1: 211, 2: 222, 3: 2222, 4: 3333)
    /// [default: 3 in full, 4 with --quick].
    #[arg(long)]
    steps: Option<usize>,
    /// cifar-depth and cifar-kernel-width: how many more seeds the parent alone is trained
    /// with, for its spread [default: 2 in full (seeds 1 and 2), 0 with --quick].
    #[arg(long)]
    parent_seeds: Option<u64>,
    /// cifar-kernel-width: which half to run (the halves share nothing but the data, so one
    /// can be rerun alone).
    #[arg(long, value_enum, default_value_t = Part::Both)]
    part: Part,
}

/// cifar-kernel-width's halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// cifar_base -> ksize -> width, ReLU (into NAME/).
    Relu,
    /// Width morphing from a TanH cifar_base (into NAME/tanh/).
    Tanh,
    /// Both, ReLU first.
    Both,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Training speed: see `retain_freed_memory` (the CLI does the same).
    netmorph::fit::retain_freed_memory();
    let name = args.experiment.name();
    let dir = args.out.clone().unwrap_or_else(|| {
        if args.quick {
            PathBuf::from("target/results-quick").join(name)
        } else {
            PathBuf::from("docs/results").join(name)
        }
    });
    let cifar = args.cifar10.clone().unwrap_or_else(|| {
        std::env::var_os("NETMORPH_CIFAR10").map_or_else(
            || PathBuf::from("../shared/datasets/cifar10-jpeg"),
            PathBuf::from,
        )
    });
    let output = Output {
        dir,
        command: std::iter::once(
            "cargo run --release -p netmorph-bench --bin reproduce --".to_string(),
        )
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" "),
    };
    let result = match args.experiment {
        Experiment::SoftmaxToMlp => {
            let s = if args.quick {
                softmax_mlp::Settings::quick()
            } else {
                softmax_mlp::Settings::full()
            };
            softmax_mlp::run(&s, &output)
        }
        Experiment::CifarDepth => {
            let mut s = if args.quick {
                cifar::Settings::quick(cifar)
            } else {
                cifar::Settings::full(cifar)
            };
            s.steps = args.steps.unwrap_or(s.steps);
            s.set_parent_seeds(args.parent_seeds);
            cifar::run(&s, &cifar::Sequence::depth(), &output)
        }
        Experiment::CifarKernelWidth => {
            let mut s = if args.quick {
                cifar::Settings::quick(cifar)
            } else {
                cifar::Settings::full(cifar)
            };
            s.set_parent_seeds(args.parent_seeds);
            let tanh = Output {
                dir: output.dir.join("tanh"),
                command: output.command.clone(),
            };
            let relu = if args.part == Part::Tanh {
                Ok(())
            } else {
                cifar::run(&s, &cifar::Sequence::kernel_width(), &output)
            };
            relu.and_then(|()| {
                if args.part == Part::Relu {
                    Ok(())
                } else {
                    cifar::run(&s, &cifar::Sequence::tanh_width(), &tanh)
                }
            })
        }
        Experiment::Occupancy => {
            let s = if args.quick {
                occupancy::Settings::quick()
            } else {
                occupancy::Settings::full(cifar)
            };
            occupancy::run(&s, &output)
        }
        Experiment::SolverScaling => {
            let s = if args.quick {
                scaling::Settings::quick()
            } else {
                scaling::Settings::full()
            };
            scaling::run(&s, &output)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reproduce {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
