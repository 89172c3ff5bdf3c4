//! `grow`: train a parent, then morph and keep training in stages, with per-epoch CSV and an
//! SVG of the accuracy curves.

use std::path::{Path, PathBuf};

use netmorph::fit::{cast, evaluate, EpochStats, FitConfig, TrainState};
use netmorph::memory::{forward_bytes, human, Budget};
use netmorph::model_file::{save_scaled, Precision};
use netmorph::morph::plan::MorphOp;
use netmorph::ops::parse_op;
use netmorph::plot::Series;
use netmorph::{arch, Rng, Scalar};

use crate::args::{
    data_files, fit_config, input_scale, load_data, with_precision, DataArgs, OptArgs,
};
use crate::error::{CliError, Context, Result};
use crate::morph::{apply_checked, check_deviation};
use crate::training::{
    build, check_device_flags, check_training, checkpoint_path, fit_or_checkpoint, open_device,
    Checkpointing,
};

#[derive(clap::Args)]
pub struct GrowArgs {
    /// Parent architecture (as for `train`).
    #[arg(long)]
    arch: String,
    /// Precision of the network: `f32` or `f64`.
    #[arg(long, default_value = "f32", value_parser = crate::args::precision)]
    dtype: Precision,
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
}

/// A `grow` stage: epochs and operations (as written, and parsed).
type Stage = (usize, Vec<(String, MorphOp)>);

/// Parses `EPOCHS:OP[+OP...]`.
fn parse_stage(text: &str) -> Result<Stage> {
    let (epochs, ops) = text.split_once(':').ok_or_else(|| {
        CliError::Usage(format!(
            "stage `{text}`: write EPOCHS:OP[+OP...], e.g. `5:depth@1,cl=50,act=relu`"
        ))
    })?;
    let epochs = epochs.trim().parse().map_err(|_| {
        CliError::Usage(format!(
            "stage `{text}`: `{epochs}` is not a number of epochs"
        ))
    })?;
    let ops = ops
        .split('+')
        .map(|o| Ok((o.trim().to_string(), parse_op(o.trim())?)))
        .collect::<Result<_>>()?;
    Ok((epochs, ops))
}

/// `netmorph grow`.
pub fn run(args: &GrowArgs, budget: Budget) -> Result<()> {
    with_precision!(args.dtype, grow_as(args, budget))
}

fn grow_as<T: Scalar>(args: &GrowArgs, budget: Budget) -> Result<()> {
    let opt = &args.opt;
    check_device_flags(opt)?;
    if opt.resume.is_some() {
        return Err(CliError::Usage("grow runs its stages from the start; an interrupted stage printed the `netmorph continue ... --resume ...` command that finishes it".into()));
    }
    let stages: Vec<Stage> = args
        .stages
        .iter()
        .map(|s| parse_stage(s))
        .collect::<Result<_>>()?;
    let arch = arch::parse(&args.arch)?;
    let ckpt = checkpoint_path(opt, &args.out);
    let outputs: Vec<&Path> = [
        Some(args.out.as_path()),
        Some(&ckpt),
        args.csv.as_deref(),
        args.plot.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let files = data_files(&args.data.data);
    let inputs: Vec<(&Path, &'static str)> =
        files.iter().map(|f| (f.as_path(), "data file")).collect();
    netmorph::atomic::check_outputs(&outputs, &inputs)?;
    let scale = input_scale(&args.data, None)?;
    let (train_set, test_set) = load_data(
        &args.data.data,
        (args.data.limit, args.data.test_limit),
        scale,
        budget,
    )?;
    let mut net = build::<T>(&arch, &train_set, opt.seed, budget)?;
    let probes = cast::<T>(&test_set.x);
    let mut log = Log::default();
    println!(
        "stage parent: {} ({} parameters, {})",
        args.arch,
        net.param_count(),
        T::NAME
    );
    let config = fit_config(opt, &train_set, opt.epochs)?;
    let device = open_device(opt)?;
    let need = check_training(&net, &config, train_set.y.len(), budget)?;
    println!("  training needs about {} of memory", human(need));
    let stats = fit_or_checkpoint(
        &device,
        &mut net,
        (&train_set, &test_set),
        &config,
        &mut TrainState::new(&config),
        (opt.json, "parent"),
        Some(Checkpointing {
            path: &ckpt,
            scale,
            resume: resume_hint(&config),
        }),
    )?;
    log.record("parent", net.param_count(), &stats, None);
    let mut rng = Rng::seed(opt.seed ^ 0x6720);
    for (i, (epochs, ops)) in stages.iter().enumerate() {
        let stage = i + 1;
        budget.check(
            "the parent's forward pass on the test set",
            forward_bytes(&net, probes.n),
        )?;
        let reference = net.forward(&probes)?;
        for (text, op) in ops {
            let (child, r, dev) = apply_checked(op, &net, (&probes, &reference), &mut rng, budget)
                .and_then(|(child, r, dev)| {
                    check_deviation::<T>(op, dev)?;
                    Ok((child, r, dev))
                })
                .context(|| format!("stage {stage}: operation `{text}`"))?;
            println!(
                "stage {stage}: {} at layer {}: {} -> {} parameters, max |child - parent| {:.2e} ({:.2e} relative) on the test set",
                r.op, r.layer, r.params_before, r.params_after, dev.abs, dev.rel
            );
            net = child;
        }
        let (_, acc) = evaluate(&net, &test_set)?;
        println!(
            "stage {stage}: the child starts at {:.2}% test accuracy",
            100.0 * acc
        );
        let mut config = FitConfig {
            seed: opt.seed.wrapping_add(1 + i as u64),
            ..fit_config(opt, &train_set, *epochs)?
        };
        config.sgd.lr = match args.stage_lr {
            Some(lr) if !lr.is_finite() => {
                return Err(CliError::Usage(format!(
                    "--stage-lr {lr}: give a finite number"
                )))
            }
            lr => lr.unwrap_or(opt.lr),
        };
        let need = check_training(&net, &config, train_set.y.len(), budget)?;
        println!("  training needs about {} of memory", human(need));
        let name = format!("stage {stage}");
        let stats = fit_or_checkpoint(
            &device,
            &mut net,
            (&train_set, &test_set),
            &config,
            &mut TrainState::new(&config),
            (opt.json, &name),
            Some(Checkpointing {
                path: &ckpt,
                scale,
                resume: resume_hint(&config),
            }),
        )?;
        log.record(&name, net.param_count(), &stats, Some(acc));
    }
    save_scaled(&net, scale, &args.out)?;
    if let Some(path) = &args.csv {
        netmorph::atomic::write(path, (log.rows.join("\n") + "\n").as_bytes())?;
    }
    if let Some(path) = &args.plot {
        netmorph::atomic::write(
            path,
            netmorph::plot::svg("test accuracy while growing", &log.series).as_bytes(),
        )?;
    }
    println!(
        "wrote {} ({} parameters)",
        args.out.display(),
        net.param_count()
    );
    Ok(())
}

/// How to finish a stage interrupted with `config` (`{}`: the checkpoint): `grow` itself
/// does not resume.
fn resume_hint(config: &FitConfig) -> String {
    format!(
        "finish this stage with `netmorph continue {{}} --resume {{}} --seed {} --epochs {} --lr {}` and this command's other training options (--data, --batch, ...), then run the later stages with `netmorph morph` and `netmorph continue`",
        config.seed, config.epochs, config.sgd.lr
    )
}

/// The per-epoch CSV rows and plot series of a `grow` run.
struct Log {
    rows: Vec<String>,
    series: Vec<Series>,
    /// Epochs recorded so far.
    epochs: usize,
    /// The last recorded point (epoch, test accuracy).
    last: Option<(f64, f64)>,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            rows: vec![
                "stage,epoch,params,train_loss,test_loss,test_accuracy,images_per_second".into(),
            ],
            series: Vec::new(),
            epochs: 0,
            last: None,
        }
    }
}

impl Log {
    /// A stage's epochs; a morphed stage's curve starts at the morph point with the child's
    /// accuracy before training (`start`).
    fn record(&mut self, name: &str, params: usize, stats: &[EpochStats], start: Option<f64>) {
        let epoch0 = self.epochs;
        for s in stats {
            self.rows.push(format!(
                "{name},{},{params},{},{},{},{:.0}",
                epoch0 + s.epoch,
                s.train_loss,
                s.test_loss,
                s.test_accuracy,
                s.images_per_second
            ));
        }
        let first = start.zip(self.last).map(|(acc, (e, _))| (e, acc));
        let points: Vec<(f64, f64)> = first
            .into_iter()
            .chain(
                stats
                    .iter()
                    .map(|s| ((epoch0 + s.epoch) as f64, s.test_accuracy)),
            )
            .collect();
        self.epochs = epoch0 + stats.len();
        self.last = points.last().copied().or(self.last);
        self.series.push(Series {
            name: name.to_string(),
            points,
        });
    }
}
