//! Runners that reproduce the paper's experiments on real data (`cargo run --release -p
//! netmorph-bench --bin reproduce -- NAME`), each writing into `docs/results/NAME/`:
//! `metrics.csv` (one row per epoch and arm, plus a row for every morph point before any
//! training), `curves.svg` (test accuracy per arm), `table.md` (the headline numbers) and
//! `run.md` (the command, seeds, data, versions and machine).
//!
//! An experiment is a set of *arms*: a start (the trained parent, a morphed child, a fresh
//! network) and its training. Every arm shares the parent's training, so the curves of a
//! morphed child start where the parent ended, at the accuracy the child has before any step.

pub mod cifar;
pub mod occupancy;
pub mod scaling;
pub mod softmax_mlp;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use netmorph::data::{Dataset, InputScale};
use netmorph::fit::{evaluate, fit, EpochStats, FitConfig, TrainState};
use netmorph::plot::Series;
use netmorph::train::{Schedule, SgdConfig, TrainError};
use netmorph::{Network, Scalar, Tensor};

/// A runner's failure, with what to do about it.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// A runner's result.
pub type Outcome<T> = Result<T, Failure>;

/// `what: error` as a [`Failure`].
pub fn fail(what: impl std::fmt::Display) -> impl FnOnce(&dyn std::fmt::Display) -> Failure {
    move |e| Failure(format!("{what}: {e}"))
}

/// Training settings of an arm: SGD with momentum, biases at twice the rate (Caffe), and a
/// cosine decay to zero over the arm's epochs when `cosine` is set.
#[derive(Clone, Copy, Debug)]
pub struct Training {
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Learning-rate multiplier of the P-activations' `a`.
    pub a_lr_mult: f64,
    /// Cosine decay over the arm (else constant).
    pub cosine: bool,
}

impl Training {
    /// The fit configuration for `epochs` epochs over `samples` training samples, with sample
    /// orders from `seed`.
    pub fn config(&self, epochs: usize, samples: usize, seed: u64) -> FitConfig {
        let steps = samples.div_ceil(self.batch.max(1)).saturating_mul(epochs);
        FitConfig {
            epochs,
            batch: self.batch,
            sgd: SgdConfig {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                bias_lr_mult: 2.0,
                a_lr_mult: self.a_lr_mult,
                schedule: if self.cosine {
                    Schedule::Cosine {
                        total: steps,
                        min: 0.0,
                    }
                } else {
                    Schedule::Constant
                },
            },
            seed,
            // One slice of every batch per core (`fit` takes 0 as 1).
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            augment: None,
        }
    }

    /// `lr 0.03, momentum 0.9, ...` for the notes.
    pub fn describe(&self) -> String {
        format!(
            "lr {}{}, momentum {}, weight decay {}, batch {}, bias lr x2, `a` lr x{}",
            self.lr,
            if self.cosine { " (cosine to 0)" } else { "" },
            self.momentum,
            self.weight_decay,
            self.batch,
            self.a_lr_mult
        )
    }
}

/// One row of `metrics.csv`.
#[derive(Clone, Debug)]
pub struct Row {
    /// Arm name.
    pub arm: String,
    /// Seed of the run the arm belongs to.
    pub seed: u64,
    /// Epochs since the parent started (the morph point is the parent's last epoch).
    pub epoch: usize,
    /// Parameters of the network.
    pub params: usize,
    /// Mean training loss of the epoch (`None` at a morph point).
    pub train_loss: Option<f64>,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy in `[0, 1]`.
    pub test_accuracy: f64,
    /// Wall seconds of the arm so far (training and morphs, evaluations excluded).
    pub seconds: f64,
}

/// Everything an experiment records.
#[derive(Debug, Default)]
pub struct Record {
    /// Every row, in the order they happened.
    pub rows: Vec<Row>,
    /// Arms whose loss became NaN: arm, seed and the epoch it happened in.
    pub diverged: Vec<(String, u64, usize)>,
}

impl Record {
    /// Trains `net` for `config.epochs` epochs as arm `arm`, counting epochs from `epoch0`
    /// and wall time from `seconds0`; prints one line per epoch.
    ///
    /// # Errors
    /// A training failure (NaN loss), with the arm's name.
    #[allow(clippy::too_many_arguments)]
    pub fn train<T: Scalar>(
        &mut self,
        arm: &str,
        seed: u64,
        net: &mut Network<T>,
        data: (&Dataset, &Dataset),
        config: &FitConfig,
        (epoch0, seconds0): (usize, f64),
    ) -> Outcome<Vec<EpochStats>> {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let mut state = TrainState::new(config);
        let params = net.param_count();
        let mut rows = Vec::new();
        let result = fit(
            net,
            data,
            config,
            &mut state,
            &stop,
            |_, _, _, _| {},
            |s| {
                let row = Row {
                    arm: arm.to_string(),
                    seed,
                    epoch: epoch0 + s.epoch,
                    params,
                    train_loss: Some(s.train_loss),
                    test_loss: s.test_loss,
                    test_accuracy: s.test_accuracy,
                    // Evaluation is inside the epoch's wall time here; the rate excludes it.
                    seconds: seconds0 + start.elapsed().as_secs_f64(),
                };
                println!(
                    "  {arm} (seed {seed}) epoch {}: test accuracy {:.2}%, train loss {:.4}, {:.0} images/s",
                    row.epoch,
                    100.0 * s.test_accuracy,
                    s.train_loss,
                    s.images_per_second
                );
                rows.push(row);
            },
        );
        let epochs = rows.len();
        self.rows.extend(rows);
        match result {
            Ok((stats, _)) => Ok(stats),
            // A diverging arm is a result, not a failure of the experiment.
            Err(TrainError::NonFinite) => {
                println!(
                    "  {arm} (seed {seed}) diverged (NaN loss) in epoch {}",
                    epoch0 + epochs + 1
                );
                self.diverged
                    .push((arm.to_string(), seed, epoch0 + epochs + 1));
                Ok(Vec::new())
            }
            Err(e) => Err(fail(format!("training {arm} (seed {seed})"))(&e)),
        }
    }

    /// The epoch in which arm `arm` of seed `seed` diverged, if it did.
    pub fn diverged(&self, arm: &str, seed: u64) -> Option<usize> {
        self.diverged
            .iter()
            .find(|(a, s, _)| a == arm && *s == seed)
            .map(|d| d.2)
    }

    /// The last test accuracy of arm `arm` in percent, or where it diverged.
    pub fn last_cell(&self, arm: &str, seed: u64) -> String {
        match (self.diverged(arm, seed), self.arm(arm, seed).last()) {
            (Some(e), _) => format!("diverged (NaN loss, epoch {e})"),
            (None, Some(r)) => format!("{:.2}%", 100.0 * r.test_accuracy),
            (None, None) => "-".into(),
        }
    }

    /// Records `net`'s test metrics at a morph point (before any training) as arm `arm`.
    ///
    /// # Errors
    /// An evaluation failure.
    pub fn point<T: Scalar>(
        &mut self,
        arm: &str,
        seed: u64,
        net: &Network<T>,
        test: &Dataset,
        (epoch, seconds): (usize, f64),
    ) -> Outcome<f64> {
        let (loss, acc) = evaluate(net, test).map_err(|e| fail(format!("evaluating {arm}"))(&e))?;
        self.rows.push(Row {
            arm: arm.to_string(),
            seed,
            epoch,
            params: net.param_count(),
            train_loss: None,
            test_loss: loss,
            test_accuracy: acc,
            seconds,
        });
        Ok(acc)
    }

    /// The rows of arm `arm` and seed `seed`, in order.
    pub fn arm(&self, arm: &str, seed: u64) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.arm == arm && r.seed == seed)
            .collect()
    }

    /// `metrics.csv`.
    pub fn csv(&self) -> String {
        let mut out =
            String::from("arm,seed,epoch,params,train_loss,test_loss,test_accuracy,seconds\n");
        for r in &self.rows {
            let train = r.train_loss.map_or(String::new(), |l| format!("{l:.6}"));
            let _ = writeln!(
                out,
                "{},{},{},{},{train},{:.6},{:.6},{:.2}",
                r.arm, r.seed, r.epoch, r.params, r.test_loss, r.test_accuracy, r.seconds
            );
        }
        out
    }

    /// One accuracy curve per arm for `seed` (every arm's rows, morph points included).
    pub fn series(&self, arms: &[&str], seed: u64) -> Vec<Series> {
        arms.iter()
            .map(|a| Series {
                name: (*a).to_string(),
                points: self
                    .arm(a, seed)
                    .iter()
                    .map(|r| (r.epoch as f64, r.test_accuracy))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }
}

/// Largest relative output change an exact morph of an f32 network may show (a few hundred
/// f32 ulps: the CLI's bound).
pub const EXACT_F32: f64 = 1e-4;

/// `max |child - parent| / max |parent|` on `x`.
///
/// # Errors
/// A forward pass that fails, or a change past [`EXACT_F32`] (the morph did not preserve the
/// function: a bug), naming `what`.
pub fn preserved(
    parent: &Network<f32>,
    child: &Network<f32>,
    x: &Tensor<f32>,
    what: &str,
) -> Outcome<f64> {
    let y0 = parent
        .forward(x)
        .map_err(|e| fail(format!("{what}: parent"))(&e))?;
    let y1 = child
        .forward(x)
        .map_err(|e| fail(format!("{what}: child"))(&e))?;
    let (d, scale) = y1.max_abs_diff(&y0);
    let rel = d / scale.max(f64::MIN_POSITIVE);
    if rel.is_finite() && rel <= EXACT_F32 {
        Ok(rel)
    } else {
        Err(Failure(format!(
            "{what}: the child's outputs moved by {rel:.2e} of the parent's, past {EXACT_F32:.0e}"
        )))
    }
}

/// The first `n` samples of `data` as one batch (all if fewer).
pub fn probes(data: &Dataset, n: usize) -> Tensor<f32> {
    data.head(n).x
}

/// Mean and half the range (max - min) / 2 of `v` (`(NaN, NaN)` when empty).
pub fn mean_spread(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(*x), h.max(*x))
        });
    (mean, (hi - lo) / 2.0)
}

/// `mean ± spread` in percent, `(n = runs)` when more than one.
pub fn percent(v: &[f64]) -> String {
    let (m, s) = mean_spread(v);
    if v.len() > 1 {
        format!("{:.2} ± {:.2}%", 100.0 * m, 100.0 * s)
    } else {
        format!("{:.2}%", 100.0 * m)
    }
}

/// Where and how an experiment writes its results.
#[derive(Clone, Debug)]
pub struct Output {
    /// `docs/results/NAME` (or the `--out` folder).
    pub dir: PathBuf,
    /// The command that produced them, as run.
    pub command: String,
}

impl Output {
    /// Writes the four files (atomically each).
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn write(&self, record: &Record, svg: &str, table: &str, run: &str) -> Outcome<()> {
        self.write_files(&[
            ("metrics.csv", record.csv()),
            ("curves.svg", svg.to_string()),
            ("table.md", table.to_string()),
            ("run.md", run.to_string()),
        ])
    }

    /// Writes `(name, text)` files into the folder (atomically each).
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn write_files(&self, files: &[(&str, String)]) -> Outcome<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| fail(format!("creating {}", self.dir.display()))(&e))?;
        for (name, text) in files {
            let path = self.dir.join(name);
            netmorph::atomic::write(&path, text.as_bytes())
                .map_err(|e| fail(format!("writing {}", path.display()))(&e))?;
            println!("wrote {}", path.display());
        }
        Ok(())
    }

    /// `run.md`: the command, the experiment's own notes, versions and the machine.
    pub fn run_notes(&self, notes: &str, seconds: f64) -> String {
        format!(
            "# How these results were made\n\n```sh\n{}\n```\n\n{notes}\n\n## Environment\n\n\
             - netmorph {} (git {})\n- {}\n- machine: {}, {} logical CPUs\n- date: {}\n\
             - wall time of the whole run: {:.1} min\n",
            self.command,
            env!("CARGO_PKG_VERSION"),
            git_version(),
            command_output("rustc", &["--version"]),
            cpu_model(),
            std::thread::available_parallelism().map_or(0, usize::from),
            command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            seconds / 60.0
        )
    }
}

/// The commit the sources are at, and whether they had changes not committed yet.
fn git_version() -> String {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if dirty {
        format!("{commit}, with changes not yet committed")
    } else {
        commit
    }
}

/// The first line a command prints, or `unknown`.
fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The CPU model from `/proc/cpuinfo`, or `unknown`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Loads Fashion-MNIST (or CIFAR-10 from `dir`), scaled to zero mean and unit variance per
/// channel from the full training split's statistics, the training split cut to `limit`
/// images and the test split to `test_limit` (0: all).
///
/// # Errors
/// The data cannot be read.
pub fn load(which: Data, limit: usize, test_limit: usize) -> Outcome<(Dataset, Dataset)> {
    let (mut train, mut test) = match &which {
        Data::FashionMnist => {
            netmorph::data::fashion_mnist(Path::new(netmorph::data::FASHION_MNIST_DIR))
        }
        Data::Cifar10(dir) => netmorph::data::cifar10(dir, 0),
    }
    .map_err(|e| {
        fail(format!(
            "loading {} (Fashion-MNIST: `apt-get install dataset-fashion-mnist`; CIFAR-10: set NETMORPH_CIFAR10)",
            which.name()
        ))(&e)
    })?;
    let stats = train.channel_stats();
    train.scale(&stats, InputScale::Standard);
    test.scale(&stats, InputScale::Standard);
    if limit > 0 {
        train = train.head(limit);
    }
    if test_limit > 0 {
        test = test.head(test_limit);
    }
    Ok((train, test))
}

/// A dataset an experiment reads.
#[derive(Clone, Debug)]
pub enum Data {
    /// `/usr/share/datasets/fashion-mnist`.
    FashionMnist,
    /// A CIFAR-10 folder.
    Cifar10(PathBuf),
}

impl Data {
    /// Its name in messages and notes.
    pub fn name(&self) -> String {
        match self {
            Self::FashionMnist => "Fashion-MNIST".into(),
            Self::Cifar10(dir) => format!("CIFAR-10 ({})", dir.display()),
        }
    }
}
