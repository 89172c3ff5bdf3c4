//! `train` and `continue`: a run of SGD epochs with progress output, Ctrl-C checkpoints and
//! `--resume`; also the fitting `grow` and `demo` share.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use indicatif::{ProgressBar, ProgressStyle};
use netmorph::checkpoint;
use netmorph::data::{Dataset, InputScale};
use netmorph::fit::{fit, EpochStats, FitConfig, Outcome, TrainState};
use netmorph::memory::{human, training_bytes, values_bytes, Budget};
use netmorph::model_file::{load_scaled, precision, save_scaled, Precision, ScaledNetwork};
use netmorph::{arch, Network, Rng, Scalar};

use crate::args::{
    data_files, fit_config, input_scale, load_unscaled, with_precision, DataArgs, DeviceKind,
    OptArgs, Unscaled,
};
use crate::error::{CliError, Context, Result};
use crate::{FITTING, INTERRUPTED, SAVING, STOP};

/// Where a run starts.
enum Start<T> {
    /// A network (new, or read from a model file) and its input scale.
    Model(ScaledNetwork<T>),
    /// The checkpoint of an interrupted run.
    Checkpoint(PathBuf),
}

/// `netmorph train`: a new network of architecture `spec` in precision `dtype`.
pub fn train(
    spec: &str,
    dtype: Precision,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
    budget: Budget,
) -> Result<()> {
    check_device_flags(opt)?;
    if let Some(ckpt) = &opt.resume {
        return resume(ckpt, data, opt, out, budget);
    }
    with_precision!(dtype, train_new(spec, data, opt, out, budget))
}

fn train_new<T: Scalar>(
    spec: &str,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
    budget: Budget,
) -> Result<()> {
    let arch = arch::parse(spec)?;
    check_outputs(opt, data, out, None)?;
    let scale = input_scale(data, None)?;
    let loaded = load_unscaled(&data.data, (data.limit, data.test_limit), budget)?;
    let net = build::<T>(&arch, &loaded.0, opt.seed, budget)?;
    run_fit(Start::Model((net, scale)), loaded, data, opt, out, budget)
}

/// The network `arch` makes for `train`'s samples and classes, after checking its parameters
/// fit `budget`.
pub fn build<T: Scalar>(
    arch: &arch::Arch,
    train: &Dataset,
    seed: u64,
    budget: Budget,
) -> Result<Network<T>> {
    let params = arch.param_count(train.x.shape, train.classes);
    // While a layer's weights are drawn, its zeros, the f64 draws and the converted values
    // are alive at once: bound that by 8 + 4 more bytes per parameter.
    let need = params
        .and_then(|p| values_bytes::<T>(p)?.checked_add(u64::try_from(p).ok()?.checked_mul(12)?));
    budget.check(
        &format!(
            "building the network ({} parameters)",
            params.map_or("overflowing".into(), |p| p.to_string())
        ),
        need,
    )?;
    Ok(arch.build(train.x.shape, train.classes, &mut Rng::seed(seed))?)
}

/// `netmorph continue`: more epochs of a saved model, or `--resume` of a checkpoint.
pub fn resume_or_continue(
    model: &Path,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
    budget: Budget,
) -> Result<()> {
    check_device_flags(opt)?;
    if let Some(ckpt) = &opt.resume {
        return resume(ckpt, data, opt, out, budget);
    }
    with_precision!(
        precision(model)?,
        continue_model(model, data, opt, out, budget)
    )
}

fn continue_model<T: Scalar>(
    model: &Path,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
    budget: Budget,
) -> Result<()> {
    check_outputs(opt, data, out, Some(model))?;
    let net = load_scaled::<T>(model)?;
    let loaded = load_unscaled(&data.data, (data.limit, data.test_limit), budget)?;
    run_fit(Start::Model(net), loaded, data, opt, out, budget)
}

/// Resumes the run `ckpt` holds, in the checkpoint's precision.
fn resume(ckpt: &Path, data: &DataArgs, opt: &OptArgs, out: &Path, budget: Budget) -> Result<()> {
    with_precision!(precision(ckpt)?, resume_as(ckpt, data, opt, out, budget))
}

fn resume_as<T: Scalar>(
    ckpt: &Path,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
    budget: Budget,
) -> Result<()> {
    check_outputs(opt, data, out, None)?;
    let loaded = load_unscaled(&data.data, (data.limit, data.test_limit), budget)?;
    run_fit::<T>(
        Start::Checkpoint(ckpt.to_path_buf()),
        loaded,
        data,
        opt,
        out,
        budget,
    )
}

/// Checks `out` and the checkpoint path of a run writing it before any work: neither may be
/// the `model` read; the checkpoint may be the one being resumed (an interruption replaces
/// it), `out` may not.
fn check_outputs(opt: &OptArgs, data: &DataArgs, out: &Path, model: Option<&Path>) -> Result<()> {
    let ckpt = checkpoint_path(opt, out);
    let files = data_files(&data.data);
    let mut inputs: Vec<(&Path, &'static str)> = model.map(|m| (m, "model")).into_iter().collect();
    inputs.extend(files.iter().map(|f| (f.as_path(), "data file")));
    netmorph::atomic::check_outputs(&[out, &ckpt], &inputs)?;
    if let Some(resumed) = &opt.resume {
        netmorph::atomic::check_outputs(&[out], &[(resumed, "checkpoint")])?;
    }
    Ok(())
}

/// Trains from `start` on `loaded` data and writes the network to `out`.
fn run_fit<T: Scalar>(
    start: Start<T>,
    (mut train_set, mut test_set, stats): Unscaled,
    data: &DataArgs,
    opt: &OptArgs,
    out: &Path,
    budget: Budget,
) -> Result<()> {
    let config = fit_config(opt, &train_set, opt.epochs)?;
    let ((mut net, stored), mut state) = match start {
        Start::Model(net) => (net, TrainState::new(&config)),
        Start::Checkpoint(path) => {
            let steps = train_set.y.len().div_ceil(config.batch);
            let (net, state) = checkpoint::load(&path, &config, steps)?;
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
    };
    let scale = input_scale(data, Some(stored))?;
    train_set.scale(&stats, scale);
    test_set.scale(&stats, scale);
    fits(&net, &train_set)?;
    let need = check_training(&net, &config, train_set.y.len(), budget)?;
    if !opt.json {
        println!(
            "{} parameters ({}), {} training images, {} test images, about {} of memory",
            net.param_count(),
            T::NAME,
            train_set.y.len(),
            test_set.y.len(),
            human(need)
        );
    }
    let ckpt = checkpoint_path(opt, out);
    let device = open_device(opt)?;
    let stats = fit_or_checkpoint(
        &device,
        &mut net,
        (&train_set, &test_set),
        &config,
        &mut state,
        (opt.json, "train"),
        Some(Checkpointing {
            path: &ckpt,
            scale,
            resume: "resume with the same command plus `--resume {}`".into(),
        }),
    )?;
    save_scaled(&net, scale, out)?;
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

/// The memory training `net` on `samples` samples as `config` says will hold, if it fits
/// `budget` (a step splits its batch, at most the whole set, over at most one thread per
/// sample).
///
/// # Errors
/// [`CliError::Memory`] naming both figures.
pub fn check_training<T: Scalar>(
    net: &Network<T>,
    config: &FitConfig,
    samples: usize,
    budget: Budget,
) -> Result<u64> {
    let batch = config.batch.min(samples).max(1);
    let threads = config.threads.min(batch);
    Ok(budget.check(
        &format!(
            "training ({} parameters in {}, batch {batch}, {threads} threads)",
            net.param_count(),
            T::NAME
        ),
        training_bytes(net, batch, threads),
    )?)
}

/// Checks that `data`'s samples and classes fit `net` before training starts.
pub fn fits<T: Scalar>(net: &Network<T>, data: &Dataset) -> Result<()> {
    let (input, outputs) = (net.input_shape(), net.output_shape().len());
    if data.x.shape != input {
        return Err(CliError::Usage(format!(
            "the data's samples are {}x{}x{} but the model takes {}x{}x{}; use the data set it was trained on",
            data.x.shape.c, data.x.shape.h, data.x.shape.w, input.c, input.h, input.w
        )));
    }
    if data.classes > outputs {
        return Err(CliError::Usage(format!(
            "the data has {} classes but the model only {outputs} outputs; use the data set it was trained on",
            data.classes
        )));
    }
    Ok(())
}

/// Where Ctrl-C writes the checkpoint of a run writing `out`: `--checkpoint`, else beside
/// `out`, or in the current folder when `out` is a device such as `/dev/null`.
pub fn checkpoint_path(opt: &OptArgs, out: &Path) -> PathBuf {
    let device = std::fs::metadata(out).is_ok_and(|m| !m.is_file() && !m.is_dir());
    match &opt.checkpoint {
        Some(path) => path.clone(),
        None if device => checkpoint::path_for(Path::new(out.file_name().unwrap_or_default())),
        None => checkpoint::path_for(out),
    }
}

/// Where a command trains.
pub enum Device {
    /// The CPU.
    Cpu,
    /// A GPU adapter.
    #[cfg(feature = "gpu")]
    Gpu(Box<netmorph_gpu::Gpu>),
}

/// Opens the device `--device` and `--adapter` ask for, and says which adapter it is.
///
/// # Errors
/// [`CliError::Usage`] for `--adapter` without `--device gpu`, or `--device gpu` in a build
/// without the `gpu` feature; [`CliError::Train`] when no adapter matches (the message lists
/// those there are) or none exists (the message says what to install).
pub fn open_device(opt: &OptArgs) -> Result<Device> {
    check_device_flags(opt)?;
    match opt.device {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Gpu => open_gpu(opt.adapter.as_deref()),
    }
}

/// Checks `--device` and `--adapter` before any work (the device opens later).
///
/// # Errors
/// [`CliError::Usage`] for `--adapter` without `--device gpu`.
pub fn check_device_flags(opt: &OptArgs) -> Result<()> {
    if opt.device == DeviceKind::Cpu && opt.adapter.is_some() {
        return Err(CliError::Usage(
            "--adapter chooses a GPU; add --device gpu".into(),
        ));
    }
    Ok(())
}

#[cfg(feature = "gpu")]
fn open_gpu(adapter: Option<&str>) -> Result<Device> {
    use netmorph_gpu::{AdapterChoice, Gpu};
    let choice = match adapter.map(str::parse) {
        None => AdapterChoice::Default,
        Some(Ok(choice)) => choice,
        Some(Err(never)) => match never {},
    };
    let gpu = Gpu::open(&choice)
        .map_err(|e| CliError::Train(netmorph::train::TrainError::Device(e.to_string())))?;
    eprintln!("training on the GPU adapter {}", gpu.name());
    Ok(Device::Gpu(Box::new(gpu)))
}

#[cfg(not(feature = "gpu"))]
fn open_gpu(_: Option<&str>) -> Result<Device> {
    Err(CliError::Usage(
        "--device gpu: this netmorph was built without its `gpu` feature; rebuild it with default features".into(),
    ))
}

/// Where an interrupted run writes its checkpoint, with the run's input scale, and the
/// command line that resumes it (`{}` stands for the checkpoint's path).
pub struct Checkpointing<'a> {
    pub path: &'a Path,
    pub scale: InputScale,
    pub resume: String,
}

/// [`fit_with_progress`]; an interruption writes a checkpoint (if `ckpt` is given), says how
/// to resume, and ends the process with status 130.
pub fn fit_or_checkpoint<T: Scalar>(
    device: &Device,
    net: &mut Network<T>,
    (train, test): (&Dataset, &Dataset),
    config: &FitConfig,
    state: &mut TrainState<T>,
    (json, label): (bool, &str),
    ckpt: Option<Checkpointing<'_>>,
) -> Result<Vec<EpochStats>> {
    let (stats, outcome) =
        fit_with_progress(device, net, (train, test), config, state, (json, label))?;
    if outcome == Outcome::Interrupted {
        match ckpt {
            Some(Checkpointing {
                path,
                scale,
                resume,
            }) => {
                SAVING.store(true, Ordering::SeqCst);
                let saved = checkpoint::save((net, scale), state, config, path);
                SAVING.store(false, Ordering::SeqCst);
                saved.context(|| format!("{label}: writing the checkpoint"))?;
                eprintln!(
                    "{label}: stopped at epoch {}, step {}; checkpoint written to {}\n{}",
                    state.epoch + 1,
                    state.step,
                    path.display(),
                    resume.replace("{}", &path.display().to_string())
                );
            }
            None => eprintln!("{label}: stopped"),
        }
        std::process::exit(i32::from(INTERRUPTED));
    }
    Ok(stats)
}

/// [`fit`] with a progress bar (hidden with `json`) and a line per epoch.
fn fit_with_progress<T: Scalar>(
    device: &Device,
    net: &mut Network<T>,
    (train, test): (&Dataset, &Dataset),
    config: &FitConfig,
    state: &mut TrainState<T>,
    (json, label): (bool, &str),
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
    FITTING.store(true, Ordering::SeqCst);
    let progress = |epoch: usize, step: usize, steps: usize, loss: f64| {
        steps_here += 1;
        let rate =
            steps_here as f64 * config.batch as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_length(steps as u64);
        bar.set_position(step as u64);
        bar.set_prefix(format!("{label} epoch {epoch}"));
        // A GPU reports losses every few steps: none is known at an epoch's start.
        let loss = if loss.is_nan() {
            "...".to_string()
        } else {
            format!("{loss:.4}")
        };
        bar.set_message(format!("loss {loss}, {rate:.0} images/s"));
    };
    let on_epoch = |s: &EpochStats| {
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
    };
    let result = match device {
        Device::Cpu => fit(net, (train, test), config, state, &STOP, progress, on_epoch),
        #[cfg(feature = "gpu")]
        Device::Gpu(gpu) => {
            // Known from the shapes, before the GPU allocates anything; on stderr, beside
            // the adapter's name (stdout may be JSON).
            if let Some(need) = netmorph_gpu::memory::training_bytes(net, config.batch) {
                bar.suspend(|| eprintln!("about {} of GPU memory", human(need)));
            }
            netmorph::fit::fit_on(
                &mut netmorph::device::GpuEngine::new(gpu.as_ref().clone(), config.batch),
                net,
                (train, test),
                config,
                state,
                &STOP,
                progress,
                on_epoch,
            )
        }
    };
    FITTING.store(false, Ordering::SeqCst);
    bar.finish_and_clear();
    result.context(|| format!("{label}: training"))
}
