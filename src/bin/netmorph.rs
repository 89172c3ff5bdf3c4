//! The `netmorph` command: train, morph, evaluate and inspect networks, and `demo`, which
//! tells the whole story on generated data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use netmorph::arch;
use netmorph::checkpoint;
use netmorph::data::Augment;
use netmorph::data::{cifar10, fashion_mnist, Dataset, InputScale, FASHION_MNIST_DIR};
use netmorph::fit::{evaluate, fit, EpochStats, FitConfig, Outcome, TrainState};
use netmorph::model_file::{load, load_scaled, save_scaled, write_atomic};
use netmorph::morph::depth::DepthParams;
use netmorph::morph::plan::MorphOp;
use netmorph::morph::MorphReport;
use netmorph::ops::parse_op;
use netmorph::solve::algorithm::Algorithm;
use netmorph::train::{Schedule, SgdConfig};
use netmorph::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Pool, Rng, Shape, Tensor,
};

type Result<T> = std::result::Result<T, String>;

/// Where `--data cifar10` looks unless `NETMORPH_CIFAR10` names another folder: the shared
/// JPEG copy beside the repository.
const CIFAR10_DIR: &str = "../shared/datasets/cifar10-jpeg";

#[derive(Parser)]
#[command(
    name = "netmorph",
    version,
    about = "Network morphism: grow trained networks without changing their function"
)]
struct Cli {
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
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        opt: OptArgs,
        /// Where to write the model (.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
    /// Continue training a saved model.
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
    /// Morph a saved model; prints how far the outputs moved on real data.
    Morph {
        /// Model to morph.
        model: PathBuf,
        /// Operations, applied in order: `depth@3,cl=64,k1=3,k2=3`, `width@0,to=12`, ... (see `netmorph::ops`).
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
    },
    /// Train a parent, then morph and keep training in stages; writes per-epoch metrics (CSV)
    /// and accuracy curves (SVG).
    Grow {
        /// Parent architecture (as for `train`).
        #[arg(long)]
        arch: String,
        #[command(flatten)]
        data: DataArgs,
        /// Optimiser settings; `--epochs` is the parent's training.
        #[command(flatten)]
        opt: OptArgs,
        /// A stage: `EPOCHS:OP[+OP...]`, e.g. `5:depth@1,cl=50,act=relu`. Repeat for more stages.
        #[arg(long = "stage", required = true)]
        stages: Vec<String>,
        /// Learning rate of the morph stages [default: --lr]. Children usually want a higher
        /// rate than the converged parent's last.
        #[arg(long)]
        stage_lr: Option<f64>,
        /// Where to write the final model.
        #[arg(long)]
        out: PathBuf,
        /// Per-epoch metrics as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Accuracy curves as SVG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Run a saved model on a `.npy` batch (N x C x H x W or N x features, float32/float64).
    Predict {
        /// Model.
        model: PathBuf,
        /// Input array.
        #[arg(long)]
        input: PathBuf,
        /// Output array (N x outputs, same dtype as the input).
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
}

#[derive(clap::Args)]
struct DataArgs {
    /// `fashion-mnist` (from /usr/share/datasets/fashion-mnist), `cifar10` (the folder in
    /// NETMORPH_CIFAR10, else ../shared/datasets/cifar10-jpeg), or a folder: CIFAR-10 (JPEG
    /// layout or binary batches) or MNIST-format IDX files.
    #[arg(long)]
    data: String,
    /// Use only the first N training images (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// How inputs are scaled: `standard` (zero mean, unit variance per channel) or `pixels`
    /// (the channel mean subtracted from 0-255 values: Caffe's scale, which its cifar10_quick
    /// solver settings need). A new model takes `standard` unless told; an existing model
    /// keeps the scale stored in its file.
    #[arg(long)]
    input_scale: Option<String>,
}

#[derive(clap::Args)]
struct OptArgs {
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seed for initialisation and sample order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads per training step (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// One JSON object per epoch on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Learning-rate schedule: `constant`, `step:EVERY:GAMMA` (times GAMMA every EVERY
    /// iterations; Caffe's cifar10_quick: `step:4000:0.1`) or `cosine[:MIN]` (from --lr down
    /// to MIN, default 0, over the run).
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Learning-rate multiplier for biases (Caffe's cifar10_quick uses 2).
    #[arg(long, default_value_t = 2.0)]
    bias_lr_mult: f64,
    /// Learning-rate multiplier for the P-activations' `a` (morphed children start linear,
    /// `a = 1`; a larger rate lets them turn non-linear sooner).
    #[arg(long, default_value_t = 1.0)]
    a_lr_mult: f64,
    /// Shift each training image by up to N pixels at random (zero-filled: pad and crop).
    #[arg(long, default_value_t = 0)]
    crop: usize,
    /// Mirror training images left-right at random.
    #[arg(long)]
    flip: bool,
    /// Resume the run from the checkpoint an interrupted run (Ctrl-C) wrote; pass the
    /// same data, seed and batch size.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Where Ctrl-C writes the checkpoint [default: beside --out, NAME.ckpt.safetensors].
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

/// Raised by Ctrl-C: training stops after the current step and writes a checkpoint.
static STOP: AtomicBool = AtomicBool::new(false);

/// Exit status after an interruption (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    netmorph::fit::retain_freed_memory();
    // A second Ctrl-C leaves at once; every file is written atomically, so nothing is torn.
    let handler = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(INTERRUPTED));
        }
        eprintln!("\ninterrupted: stopping after this step (Ctrl-C again to quit now)");
    });
    if let Err(e) = handler {
        eprintln!("warning: Ctrl-C will not write a checkpoint: {e}");
    }
    let result = match cli.command {
        Command::Demo { seed } => demo(seed),
        Command::Train {
            arch,
            data,
            opt,
            out,
        } => train(&arch, &data, &opt, &out),
        Command::Continue {
            model,
            data,
            opt,
            out,
        } => {
            if opt.resume.is_some() {
                run_fit(None, &data, &opt, &out)
            } else {
                load_scaled(&model)
                    .map_err(|e| e.to_string())
                    .and_then(|net| run_fit(Some(net), &data, &opt, &out))
            }
        }
        Command::Morph {
            model,
            ops,
            out,
            seed,
            report,
            data,
        } => morph(&model, &ops, &out, seed, report.as_deref(), data.as_deref()),
        Command::Grow {
            arch,
            data,
            opt,
            stages,
            stage_lr,
            out,
            csv,
            plot,
        } => grow(
            &arch,
            &data,
            &opt,
            (&stages, stage_lr),
            &out,
            (csv.as_deref(), plot.as_deref()),
        ),
        Command::Eval { model, data, json } => eval(&model, &data, json),
        Command::Predict {
            model,
            input,
            output,
        } => predict(&model, &input, &output),
        Command::Inspect { model, json } => inspect(&model, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The input scale for a run on `data`: the model's (`None` for a new model: the flag's, else
/// standard); a flag that contradicts the model's is refused.
fn input_scale(data: &DataArgs, model: Option<InputScale>) -> Result<InputScale> {
    let flag = match &data.input_scale {
        None => None,
        Some(name) => Some(
            InputScale::parse(name)
                .ok_or_else(|| format!("--input-scale {name:?}: use `standard` or `pixels`"))?,
        ),
    };
    match (flag, model) {
        (Some(f), Some(m)) if f != m => Err(format!(
            "the model was trained on {} inputs; drop --input-scale {} or pass {}",
            m.name(),
            f.name(),
            m.name()
        )),
        (f, m) => Ok(m.or(f).unwrap_or_default()),
    }
}

/// Training and test splits, scaled as `scale` says with the training split's channel
/// statistics.
fn load_data(name: &str, limit: usize, scale: InputScale) -> Result<(Dataset, Dataset)> {
    let (mut train, mut test, stats) = load_unscaled(name, limit)?;
    train.scale(&stats, scale);
    test.scale(&stats, scale);
    Ok((train, test))
}

/// Training and test splits as read (pixels / 255), and the full training split's
/// per-channel `(mean, std)`.
type Unscaled = (Dataset, Dataset, Vec<(f64, f64)>);

/// [`Unscaled`] data named `name`, the training split cut to `limit` samples (0: all).
fn load_unscaled(name: &str, limit: usize) -> Result<Unscaled> {
    let cifar_dir = std::env::var_os("NETMORPH_CIFAR10")
        .map_or_else(|| PathBuf::from(CIFAR10_DIR), PathBuf::from);
    let (mut train, test) = match name {
        "fashion-mnist" => fashion_mnist(Path::new(FASHION_MNIST_DIR)),
        "cifar10" => cifar10(&cifar_dir, 0),
        dir if Path::new(dir).join("train").is_dir()
            || Path::new(dir).join("data_batch_1.bin").exists() =>
        {
            cifar10(Path::new(dir), 0)
        }
        dir => fashion_mnist(Path::new(dir)),
    }
    .map_err(|e| e.to_string())?;
    let stats = train.channel_stats();
    if limit > 0 {
        train = train.head(limit);
    }
    Ok((train, test, stats))
}

/// `requested` threads, or one per core for 0.
fn threads(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Parses `--schedule` for a run of `total` iterations.
fn schedule(text: &str, total: usize) -> Result<Schedule> {
    let bad = || {
        format!("--schedule `{text}`: write `constant`, `step:EVERY:GAMMA` (e.g. `step:4000:0.1`) or `cosine[:MIN]`")
    };
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        ["constant"] => Ok(Schedule::Constant),
        ["step", every, gamma] => Ok(Schedule::Step {
            every: every.parse().ok().filter(|e| *e > 0).ok_or_else(bad)?,
            gamma: gamma.parse().map_err(|_| bad())?,
        }),
        ["cosine"] => Ok(Schedule::Cosine { total, min: 0.0 }),
        ["cosine", min] => Ok(Schedule::Cosine {
            total,
            min: min.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// The training configuration `opt` asks for, over `train` for `epochs` epochs.
fn fit_config(opt: &OptArgs, train: &Dataset, epochs: usize) -> Result<FitConfig> {
    let batch = opt.batch.max(1);
    let total = epochs * train.y.len().div_ceil(batch);
    Ok(FitConfig {
        epochs,
        threads: threads(opt.threads),
        batch,
        sgd: SgdConfig {
            lr: opt.lr,
            momentum: opt.momentum,
            weight_decay: opt.weight_decay,
            bias_lr_mult: opt.bias_lr_mult,
            a_lr_mult: opt.a_lr_mult,
            schedule: schedule(&opt.schedule, total)?,
        },
        seed: opt.seed,
        augment: (opt.crop > 0 || opt.flip).then_some(Augment {
            crop: opt.crop,
            flip: opt.flip,
        }),
    })
}

fn train(spec: &str, data: &DataArgs, opt: &OptArgs, out: &Path) -> Result<()> {
    if opt.resume.is_some() {
        return run_fit(None, data, opt, out);
    }
    let arch = arch::parse(spec).map_err(|e| e.to_string())?;
    let scale = input_scale(data, None)?;
    let (train_set, _) = load_data(&data.data, 1, scale)?;
    let net: Network<f32> = arch
        .build(
            train_set.x.shape,
            train_set.classes,
            &mut Rng::seed(opt.seed),
        )
        .map_err(|e| e.to_string())?;
    run_fit(Some((net, scale)), data, opt, out)
}

/// Trains `net` (or, with `--resume`, the checkpoint's network) and writes it to `out`.
fn run_fit(
    net: Option<(Network<f32>, InputScale)>,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
) -> Result<()> {
    // The optimiser settings need the training set's size, a checkpoint's scale is only known
    // once it is read: the data is scaled after that.
    let (mut train_set, mut test_set, stats) = load_unscaled(&data.data, data.limit)?;
    let config = fit_config(opt, &train_set, opt.epochs)?;
    let ((mut net, stored), mut state) = match (&opt.resume, net) {
        (Some(path), _) => {
            let (net, state) = checkpoint::load(path, &config).map_err(|e| e.to_string())?;
            if !opt.json {
                println!(
                    "resuming {} at epoch {}, step {}",
                    path.display(),
                    state.epoch + 1,
                    state.step
                );
            }
            (net, state)
        }
        (None, Some(net)) => (net, TrainState::new(&config)),
        (None, None) => return Err("nothing to train: give a model or --resume".into()),
    };
    let scale = input_scale(data, Some(stored))?;
    train_set.scale(&stats, scale);
    test_set.scale(&stats, scale);
    if !opt.json {
        println!(
            "{} parameters, {} training images, {} test images",
            net.param_count(),
            train_set.y.len(),
            test_set.y.len()
        );
    }
    let ckpt = checkpoint_path(opt, out);
    let stats = fit_or_checkpoint(
        &mut net,
        (&train_set, &test_set),
        &config,
        &mut state,
        opt.json,
        "train",
        Some((&ckpt, scale)),
    )?;
    save_scaled(&net, scale, out).map_err(|e| e.to_string())?;
    if !opt.json {
        let last = stats.last().map_or(0.0, |s| s.test_accuracy);
        println!(
            "wrote {} (test accuracy {:.2}%)",
            out.display(),
            100.0 * last
        );
    }
    Ok(())
}

/// Where Ctrl-C writes the checkpoint of a run writing `out`.
fn checkpoint_path(opt: &OptArgs, out: &Path) -> PathBuf {
    opt.checkpoint
        .clone()
        .unwrap_or_else(|| checkpoint::path_for(out))
}

/// [`fit_with_progress`]; an interruption writes a checkpoint to `ckpt` (if given, with the
/// run's input scale) and ends the process with status 130.
fn fit_or_checkpoint(
    net: &mut Network<f32>,
    (train, test): (&Dataset, &Dataset),
    config: &FitConfig,
    state: &mut TrainState<f32>,
    json: bool,
    label: &str,
    ckpt: Option<(&Path, InputScale)>,
) -> Result<Vec<EpochStats>> {
    let (stats, outcome) = fit_with_progress(net, train, test, config, state, json, label)?;
    if outcome == Outcome::Interrupted {
        match ckpt {
            Some((path, scale)) => {
                checkpoint::save((net, scale), state, config, path).map_err(|e| e.to_string())?;
                eprintln!(
                    "{label}: stopped at epoch {}, step {}; checkpoint written to {}\nresume with the same command plus `--resume {}`",
                    state.epoch + 1,
                    state.step,
                    path.display(),
                    path.display()
                );
            }
            None => eprintln!("{label}: stopped"),
        }
        std::process::exit(i32::from(INTERRUPTED));
    }
    Ok(stats)
}

fn fit_with_progress(
    net: &mut Network<f32>,
    train: &Dataset,
    test: &Dataset,
    config: &FitConfig,
    state: &mut TrainState<f32>,
    json: bool,
    label: &str,
) -> Result<(Vec<EpochStats>, Outcome)> {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut steps_here = 0usize;
    let result = fit(
        net,
        (train, test),
        config,
        state,
        &STOP,
        |epoch, step, steps, loss| {
            steps_here += 1;
            let rate =
                (steps_here * config.batch) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_length(steps as u64);
            bar.set_position(step as u64);
            bar.set_prefix(format!("{label} epoch {epoch}"));
            bar.set_message(format!("loss {loss:.4}, {rate:.0} images/s"));
        },
        |s| {
            bar.suspend(|| {
                if json {
                    println!(
                        "{{\"stage\":\"{}\",\"epoch\":{},\"train_loss\":{},\"test_loss\":{},\"test_accuracy\":{},\"images_per_second\":{}}}",
                        label.trim(), s.epoch, s.train_loss, s.test_loss, s.test_accuracy, s.images_per_second
                    );
                } else {
                    println!(
                        "  {label} epoch {:>2}: loss {:.4}  test loss {:.4}  test accuracy {:>6.2}%  ({:.0} images/s)",
                        s.epoch,
                        s.train_loss,
                        s.test_loss,
                        100.0 * s.test_accuracy,
                        s.images_per_second
                    );
                }
            });
        },
    );
    bar.finish_and_clear();
    result.map_err(|e| e.to_string())
}

/// A `grow` stage: epochs and operations.
fn parse_stage(text: &str) -> Result<(usize, Vec<MorphOp>)> {
    let (epochs, ops) = text.split_once(':').ok_or_else(|| {
        format!("stage `{text}`: write EPOCHS:OP[+OP...], e.g. `5:depth@1,cl=50,act=relu`")
    })?;
    let epochs = epochs
        .trim()
        .parse()
        .map_err(|_| format!("stage `{text}`: `{epochs}` is not a number of epochs"))?;
    let ops = ops
        .split('+')
        .map(|o| parse_op(o.trim()).map_err(|e| e.to_string()))
        .collect::<Result<_>>()?;
    Ok((epochs, ops))
}

fn grow(
    spec: &str,
    data: &DataArgs,
    opt: &OptArgs,
    (stages, stage_lr): (&[String], Option<f64>),
    out: &Path,
    (csv, plot): (Option<&Path>, Option<&Path>),
) -> Result<()> {
    if opt.resume.is_some() {
        return Err("grow runs its stages from the start; to resume an interrupted stage, use `netmorph continue CHECKPOINT --resume CHECKPOINT`".into());
    }
    let stages: Vec<(usize, Vec<MorphOp>)> = stages
        .iter()
        .map(|s| parse_stage(s))
        .collect::<Result<_>>()?;
    let arch = arch::parse(spec).map_err(|e| e.to_string())?;
    let scale = input_scale(data, None)?;
    let (train_set, test_set) = load_data(&data.data, data.limit, scale)?;
    let mut net: Network<f32> = arch
        .build(
            train_set.x.shape,
            train_set.classes,
            &mut Rng::seed(opt.seed),
        )
        .map_err(|e| e.to_string())?;
    let mut rows =
        vec!["stage,epoch,params,train_loss,test_loss,test_accuracy,images_per_second".to_string()];
    let mut series = Vec::new();
    let mut epoch0 = 0usize;
    let mut rng = Rng::seed(opt.seed ^ 0x6720);
    let mut record = |name: &str,
                      params: usize,
                      stats: &[EpochStats],
                      epoch0: usize,
                      start: Option<(f64, f64)>| {
        for s in stats {
            rows.push(format!(
                "{name},{},{params},{},{},{},{:.0}",
                epoch0 + s.epoch,
                s.train_loss,
                s.test_loss,
                s.test_accuracy,
                s.images_per_second
            ));
        }
        let points = start
            .into_iter()
            .chain(
                stats
                    .iter()
                    .map(|s| ((epoch0 + s.epoch) as f64, s.test_accuracy)),
            )
            .collect();
        series.push(netmorph::plot::Series {
            name: name.to_string(),
            points,
        });
    };
    println!("stage parent: {} ({} parameters)", spec, net.param_count());
    let config = fit_config(opt, &train_set, opt.epochs)?;
    let ckpt = checkpoint_path(opt, out);
    let stats = fit_or_checkpoint(
        &mut net,
        (&train_set, &test_set),
        &config,
        &mut TrainState::new(&config),
        opt.json,
        "parent",
        Some((&ckpt, scale)),
    )?;
    record("parent", net.param_count(), &stats, epoch0, None);
    epoch0 += opt.epochs;
    let mut last = stats.last().map(|s| (epoch0 as f64, s.test_accuracy));
    for (i, (epochs, ops)) in stages.iter().enumerate() {
        let reference = net.forward(&test_set.x).map_err(|e| e.to_string())?;
        for op in ops {
            let (child, r) = op
                .apply(&net, &mut rng)
                .map_err(|e| format!("stage {}: {e}", i + 1))?;
            let (d, s) = child
                .forward(&test_set.x)
                .map_err(|e| e.to_string())?
                .max_abs_diff(&reference);
            println!(
                "stage {}: {} at layer {}: {} -> {} parameters, max |child - parent| {:.2e} ({:.2e} relative) on the test set",
                i + 1,
                r.op,
                r.layer,
                r.params_before,
                r.params_after,
                d,
                d / s.max(f64::MIN_POSITIVE)
            );
            net = child;
        }
        let (_, acc) = evaluate(&net, &test_set).map_err(|e| e.to_string())?;
        println!(
            "stage {}: the child starts at {:.2}% test accuracy",
            i + 1,
            100.0 * acc
        );
        let mut config = FitConfig {
            seed: opt.seed + 1 + i as u64,
            ..fit_config(opt, &train_set, *epochs)?
        };
        config.sgd.lr = stage_lr.unwrap_or(opt.lr);
        let name = format!("stage {}", i + 1);
        let stats = fit_or_checkpoint(
            &mut net,
            (&train_set, &test_set),
            &config,
            &mut TrainState::new(&config),
            opt.json,
            &name,
            Some((&ckpt, scale)),
        )?;
        record(&name, net.param_count(), &stats, epoch0, last);
        epoch0 += epochs;
        last = stats
            .last()
            .map(|s| (epoch0 as f64, s.test_accuracy))
            .or(last);
    }
    save_scaled(&net, scale, out).map_err(|e| e.to_string())?;
    if let Some(path) = csv {
        write_atomic(path, (rows.join("\n") + "\n").as_bytes()).map_err(|e| e.to_string())?;
    }
    if let Some(path) = plot {
        write_atomic(
            path,
            netmorph::plot::svg("test accuracy while growing", &series).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    println!("wrote {} ({} parameters)", out.display(), net.param_count());
    Ok(())
}

fn predict(model: &Path, input: &Path, output: &Path) -> Result<()> {
    let net: Network<f64> = load(model).map_err(|e| e.to_string())?;
    let array = netmorph::npy::read(input).map_err(|e| e.to_string())?;
    let shape = net.input_shape();
    let n = array.shape.first().copied().unwrap_or(0);
    let per_sample: usize = array.shape.iter().skip(1).product();
    if array.shape.len() < 2 || per_sample != shape.len() {
        return Err(format!(
            "{}: input of shape {:?} does not fit the model, which takes N x {} x {} x {} (or N x {})",
            input.display(),
            array.shape,
            shape.c,
            shape.h,
            shape.w,
            shape.len()
        ));
    }
    let x = Tensor {
        n,
        shape,
        data: array.data,
    };
    let y = net.forward(&x).map_err(|e| e.to_string())?;
    let bytes = netmorph::npy::to_bytes(&[n, y.shape.len()], &y.data, array.f32);
    write_atomic(output, &bytes).map_err(|e| e.to_string())?;
    println!("wrote {} ({n} x {})", output.display(), y.shape.len());
    Ok(())
}

fn eval(model: &Path, data: &DataArgs, json: bool) -> Result<()> {
    let (net, stored): (Network<f32>, _) = load_scaled(model).map_err(|e| e.to_string())?;
    let (_, test) = load_data(&data.data, 0, input_scale(data, Some(stored))?)?;
    let (loss, acc) = evaluate(&net, &test).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{{\"test_loss\":{loss},\"test_accuracy\":{acc},\"images\":{}}}",
            test.y.len()
        );
    } else {
        println!(
            "test loss {loss:.4}, test accuracy {:.2}% on {} images",
            100.0 * acc,
            test.y.len()
        );
    }
    Ok(())
}

fn inspect(model: &Path, json: bool) -> Result<()> {
    let (net, scale): (Network<f32>, _) = load_scaled(model).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    collect_rows(&net, net.layers(), &[], &mut rows);
    if json {
        let layers: Vec<String> = rows
            .iter()
            .map(|r| format!("{{\"path\":\"{}\",\"type\":\"{}\",\"output\":\"{}\",\"params\":{},\"nonzero\":{}}}", r.0, r.1, r.2, r.3, r.4))
            .collect();
        println!(
            "{{\"params\":{},\"input_scale\":\"{}\",\"layers\":[{}]}}",
            net.param_count(),
            scale.name(),
            layers.join(",")
        );
    } else {
        println!(
            "{:<8} {:<13} {:<14} {:>10} {:>9}",
            "layer", "type", "output", "params", "nonzero"
        );
        for (path, kind, shape, params, nz) in &rows {
            println!("{path:<8} {kind:<13} {shape:<14} {params:>10} {nz:>9}");
        }
        let s = net.input_shape();
        println!(
            "input {}x{}x{} ({} scale), {} parameters",
            s.c,
            s.h,
            s.w,
            scale.name(),
            net.param_count()
        );
    }
    Ok(())
}

type Row = (String, &'static str, String, usize, usize);

fn collect_rows(net: &Network<f32>, layers: &[Layer<f32>], prefix: &[usize], rows: &mut Vec<Row>) {
    for (i, l) in layers.iter().enumerate() {
        let mut p = prefix.to_vec();
        p.push(i);
        let path = LayerPath::from_slice(&p).unwrap_or_default();
        let shape = net
            .shape_before(&path.with_last(i + 1))
            .map_or("?".into(), |s| format!("{}x{}x{}", s.c, s.h, s.w));
        let nz = match l {
            Layer::Activation(a) => a.a.iter().filter(|v| **v != 0.0).count(),
            l => l.kernel().map_or(0, |k| {
                k.weight
                    .iter()
                    .chain(&k.bias)
                    .filter(|v| **v != 0.0)
                    .count()
            }),
        };
        rows.push((path.to_string(), l.name(), shape, l.param_count(), nz));
        if let Layer::ParallelSum(bs) = l {
            for (b, br) in bs.iter().enumerate() {
                let mut q = p.clone();
                q.push(b);
                collect_rows(net, br, &q, rows);
            }
        }
    }
}

fn morph(
    model: &Path,
    ops: &[String],
    out: &Path,
    seed: u64,
    report: Option<&Path>,
    data: Option<&str>,
) -> Result<()> {
    let (parent, scale): (Network<f32>, _) = load_scaled(model).map_err(|e| e.to_string())?;
    let ops: Vec<MorphOp> = ops
        .iter()
        .map(|o| parse_op(o))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let probes = match data {
        Some(name) => load_data(name, 1, scale)?.1.head(1000).x,
        None => Tensor::random(256, parent.input_shape(), &mut Rng::seed(seed ^ 0x5eed)),
    };
    if probes.shape != parent.input_shape() {
        return Err(format!(
            "the data's images are {:?} but the model takes {:?}",
            probes.shape,
            parent.input_shape()
        ));
    }
    let reference = parent.forward(&probes).map_err(|e| e.to_string())?;
    let mut rng = Rng::seed(seed);
    let mut child = parent.clone();
    let mut reports = Vec::new();
    for op in &ops {
        let (next, r) = op.apply(&child, &mut rng).map_err(|e| e.to_string())?;
        let (d, s) = next
            .forward(&probes)
            .map_err(|e| e.to_string())?
            .max_abs_diff(&reference);
        println!(
            "{:<10} layer {:<6} params {:>8} -> {:>8}  new weights {:>5.1}% non-zero  max |child - parent| {:.2e} ({:.2e} relative)",
            r.op,
            r.layer.to_string(),
            r.params_before,
            r.params_after,
            100.0 * r.nonzero_fraction,
            d,
            d / s.max(f64::MIN_POSITIVE)
        );
        reports.push(report_json(&r, d, d / s.max(f64::MIN_POSITIVE)));
        child = next;
    }
    save_scaled(&child, scale, out).map_err(|e| e.to_string())?;
    if let Some(path) = report {
        write_atomic(path, format!("[{}]\n", reports.join(",")).as_bytes())
            .map_err(|e| e.to_string())?;
    }
    println!(
        "wrote {} ({} parameters)",
        out.display(),
        child.param_count()
    );
    Ok(())
}

fn report_json(r: &MorphReport, max_abs: f64, max_rel: f64) -> String {
    let layers: Vec<String> = r
        .new_layers
        .iter()
        .map(|l| {
            format!(
                "{{\"path\":\"{}\",\"type\":\"{}\",\"out\":{},\"in\":{},\"kernel\":{}}}",
                l.path, l.kind, l.out, l.inp, l.k
            )
        })
        .collect();
    format!(
        "{{\"op\":\"{}\",\"layer\":\"{}\",\"params_before\":{},\"params_after\":{},\"nonzero_fraction\":{},\"algorithm\":{},\"condition7\":{},\"residual\":{},\"max_abs_deviation\":{},\"max_rel_deviation\":{},\"new_layers\":[{}]}}",
        r.op,
        r.layer,
        r.params_before,
        r.params_after,
        r.nonzero_fraction,
        r.algorithm.map_or("null".to_string(), |a| format!("\"{}\"", a.name())),
        r.condition7.map_or("null".to_string(), |c| c.to_string()),
        r.residual,
        max_abs,
        max_rel,
        layers.join(",")
    )
}

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
    .map_err(|e| e.to_string())
}

fn demo(seed: u64) -> Result<()> {
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
            net,
            (&train, &test),
            config,
            &mut TrainState::new(config),
            false,
            label,
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
    let child_start = evaluate(&child, &test).map_err(|e| e.to_string())?.1;
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
