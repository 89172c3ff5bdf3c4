//! The `netmorph` command: train, morph, evaluate and inspect networks, and `demo`, which
//! tells the whole story on generated data. One module per command; `args` holds the flags
//! they share, `error` the typed errors every command returns.

mod args;
mod demo;
mod error;
mod eval;
mod grow;
mod inspect;
mod morph;
mod onnx;
mod predict;
mod training;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use args::{DataArgs, OptArgs};

#[derive(Parser)]
#[command(
    name = "netmorph",
    version,
    about = "Network morphism: grow trained networks without changing their function"
)]
struct Cli {
    /// Refuse work estimated to need more memory than this (bytes, or with K, M, G, T)
    /// [default: the memory available when the command starts].
    #[arg(long, global = true, value_parser = args::memory_size)]
    max_memory: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a small network on generated data, morph it exactly, keep training (~8 s).
    Demo {
        /// Seed for data, initialisation and morphs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Train a new network.
    Train {
        /// Architecture: `(5:32)(5:32)(5:64)`, `[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]x2`, `mlp(50)`, `mlp()`.
        #[arg(long)]
        arch: String,
        /// Precision of the network: `f32` or `f64`.
        #[arg(long, default_value = "f32", value_parser = args::precision)]
        dtype: netmorph::model_file::Precision,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        opt: OptArgs,
        /// Where to write the model (.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
    /// Continue training a saved model (in the precision its file stores).
    Continue {
        /// Model to start from.
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        opt: OptArgs,
        /// Where to write the trained model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Morph a saved model; prints how far the outputs moved and refuses to write a child
    /// that moved further than its precision allows. `netmorph ops` lists the operations.
    Morph {
        /// Model to morph.
        model: PathBuf,
        /// Operations, applied in order: `depth@3,cl=64,k1=3,k2=3`, `width@0,to=12`, ... (see `netmorph ops`).
        #[arg(long = "op", required = true)]
        ops: Vec<String>,
        /// Where to write the child.
        #[arg(long)]
        out: PathBuf,
        /// Seed for the morphs' random choices.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the per-operation reports as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Data set whose test images probe the preservation (random probes without it).
        #[arg(long)]
        data: Option<String>,
        /// Write the child even if its outputs moved more than the precision's tolerance
        /// (1e-4 relative for f32, 1e-9 for f64) or are not finite.
        #[arg(long)]
        allow_deviation: bool,
    },
    /// The morph operations, their keys and an example of each.
    Ops,
    /// Train a parent, then morph and keep training in stages; writes per-epoch metrics (CSV)
    /// and accuracy curves (SVG).
    Grow(grow::GrowArgs),
    /// Run a saved model on a `.npy` batch (N x C x H x W or N x features, float32/float64).
    Predict {
        /// Model.
        model: PathBuf,
        /// Input array.
        #[arg(long)]
        input: PathBuf,
        /// Output array (N x outputs, in the model's precision).
        #[arg(long)]
        output: PathBuf,
    },
    /// Test loss and accuracy of a saved model.
    Eval {
        /// Model.
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// One JSON object (`test_loss`, `test_accuracy`, `images`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Layers, shapes, parameters and non-zeros of a saved model.
    Inspect {
        /// Model.
        model: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write a saved model as an ONNX model (opset 13; input `input`, output `logits`;
    /// see docs/onnx.md).
    ExportOnnx {
        /// Model.
        model: PathBuf,
        /// ONNX file to write (.onnx).
        out: PathBuf,
    },
    /// Read an ONNX model (netmorph's own, or a torch.onnx.export of an nn.Sequential of
    /// Conv2d, Linear, activations, pooling and Flatten) as a model file, in the precision
    /// of its input.
    ImportOnnx {
        /// ONNX model.
        input: PathBuf,
        /// Model file to write (.safetensors).
        out: PathBuf,
    },
}

/// Raised by Ctrl-C: training stops after the current step and writes a checkpoint.
static STOP: AtomicBool = AtomicBool::new(false);

/// Raised while training runs: Ctrl-C then stops after the current step instead of at once.
static FITTING: AtomicBool = AtomicBool::new(false);

/// Raised while a checkpoint is being written: a second Ctrl-C then waits for it instead of
/// leaving without one.
static SAVING: AtomicBool = AtomicBool::new(false);

/// Exit status after an interruption (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    netmorph::fit::retain_freed_memory();
    // Ctrl-C (and SIGTERM) during training stops after the step and writes a checkpoint;
    // elsewhere, or a second time, it quits at once.
    let handler = ctrlc::set_handler(|| {
        if FITTING.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted: stopping after this step (Ctrl-C again to quit now)");
        } else if SAVING.load(Ordering::SeqCst) {
            eprintln!("\nwriting the checkpoint; it takes a moment");
        } else {
            // Every file is written through a temporary: remove those in flight, leave the
            // targets as they were.
            netmorph::atomic::exit_removing_pending(i32::from(INTERRUPTED));
        }
    });
    if let Err(e) = handler {
        eprintln!("warning: Ctrl-C will not write a checkpoint: {e}");
    }
    let budget = netmorph::memory::Budget::new(cli.max_memory);
    let result = match cli.command {
        Command::Demo { seed } => demo::run(seed),
        Command::Train {
            arch,
            dtype,
            data,
            opt,
            out,
        } => training::train(&arch, dtype, &data, &opt, &out, budget),
        Command::Continue {
            model,
            data,
            opt,
            out,
        } => training::resume_or_continue(&model, &data, &opt, &out, budget),
        Command::Morph {
            model,
            ops,
            out,
            seed,
            report,
            data,
            allow_deviation,
        } => morph::run(
            &morph::MorphArgs {
                model,
                ops,
                out,
                seed,
                report,
                data,
                allow_deviation,
            },
            budget,
        ),
        Command::Ops => {
            print!("{}", netmorph::ops::help());
            Ok(())
        }
        Command::Grow(args) => grow::run(&args, budget),
        Command::Eval { model, data, json } => eval::run(&model, &data, json, budget),
        Command::Predict {
            model,
            input,
            output,
        } => predict::run(&model, &input, &output, budget),
        Command::Inspect { model, json } => inspect::run(&model, json),
        Command::ExportOnnx { model, out } => onnx::export(&model, &out, budget),
        Command::ImportOnnx { input, out } => onnx::import(&input, &out, budget),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
