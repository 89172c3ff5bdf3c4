//! Flags several commands share, and what they turn into: data sets, training settings, the
//! input scale and the model's precision.

use std::path::PathBuf;

use netmorph::data::{cifar10, fashion_mnist, Augment, Dataset, InputScale, FASHION_MNIST_DIR};
use netmorph::fit::FitConfig;
use netmorph::memory::Budget;
use netmorph::model_file::Precision;
use netmorph::train::{Schedule, SgdConfig};

use crate::error::{CliError, Context, Result};

/// Where `--data cifar10` looks unless `NETMORPH_CIFAR10` names another folder: the shared
/// JPEG copy beside the repository.
const CIFAR10_DIR: &str = "../shared/datasets/cifar10-jpeg";

/// Runs `f::<T>(args...)` with `T` the scalar type of a [`Precision`]: commands are generic,
/// a model file's precision picks the instance, so f64 models stay f64.
macro_rules! with_precision {
    ($precision:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $precision {
            netmorph::model_file::Precision::F32 => $f::<f32>($($arg),*),
            netmorph::model_file::Precision::F64 => $f::<f64>($($arg),*),
        }
    };
}
pub(crate) use with_precision;

#[derive(clap::Args)]
pub struct DataArgs {
    /// `fashion-mnist` (from /usr/share/datasets/fashion-mnist), `cifar10` (the folder in
    /// NETMORPH_CIFAR10, else ../shared/datasets/cifar10-jpeg), or a folder: CIFAR-10 (JPEG
    /// layout or binary batches) or MNIST-format IDX files.
    #[arg(long)]
    pub data: String,
    /// Use only the first N training images (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Evaluate on only the first N test images (0: all): quick runs on slow devices.
    #[arg(long, default_value_t = 0)]
    pub test_limit: usize,
    /// How inputs are scaled: `standard` (zero mean, unit variance per channel) or `pixels`
    /// (the channel mean subtracted from 0-255 values: Caffe's scale, which its cifar10_quick
    /// solver settings need). A new model takes `standard` unless told; an existing model
    /// keeps the scale stored in its file.
    #[arg(long)]
    pub input_scale: Option<String>,
}

#[derive(clap::Args)]
pub struct OptArgs {
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seed for initialisation and sample order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads per training step (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where to train: `cpu`, or `gpu` (Vulkan, Metal or DX12 through wgpu; f64 models on
    /// Vulkan adapters with 64-bit floats).
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// With `--device gpu`: the adapter, by its index or a part of its name (an unknown one
    /// lists them) [default: a discrete GPU, else integrated, virtual, software]
    #[arg(long)]
    pub adapter: Option<String>,
    /// One JSON object per epoch on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Learning-rate schedule: `constant`, `step:EVERY:GAMMA` (times GAMMA every EVERY
    /// iterations; Caffe's cifar10_quick: `step:4000:0.1`) or `cosine[:MIN]` (from --lr down
    /// to MIN, default 0, over the run).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Learning-rate multiplier for biases (Caffe's cifar10_quick uses 2).
    #[arg(long, default_value_t = 2.0)]
    pub bias_lr_mult: f64,
    /// Learning-rate multiplier for the P-activations' `a` (morphed children start linear,
    /// `a = 1`; a larger rate lets them turn non-linear sooner).
    #[arg(long, default_value_t = 1.0)]
    pub a_lr_mult: f64,
    /// Shift each training image by up to N pixels at random (zero-filled: pad and crop).
    #[arg(long, default_value_t = 0)]
    pub crop: usize,
    /// Mirror training images left-right at random.
    #[arg(long)]
    pub flip: bool,
    /// Resume the run from the checkpoint an interrupted run (Ctrl-C) wrote; pass the
    /// same data, seed and batch size.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Where Ctrl-C writes the checkpoint [default: beside --out, NAME.ckpt.safetensors].
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceKind {
    /// The CPU, `--threads` threads.
    Cpu,
    /// A GPU through netmorph-gpu.
    Gpu,
}

/// `--max-memory`'s parser.
pub fn memory_size(text: &str) -> std::result::Result<u64, String> {
    netmorph::memory::parse_size(text)
        .ok_or_else(|| format!("`{text}` is not a size; write bytes or e.g. 512M, 4G"))
}

/// `--dtype`'s parser.
pub fn precision(text: &str) -> std::result::Result<Precision, String> {
    Precision::parse(text).ok_or_else(|| format!("`{text}`: use f32 or f64"))
}

/// The input scale for a run on `data`: the model's (`None` for a new model: the flag's, else
/// standard); a flag that contradicts the model's is refused.
pub fn input_scale(data: &DataArgs, model: Option<InputScale>) -> Result<InputScale> {
    let flag = match &data.input_scale {
        None => None,
        Some(name) => Some(InputScale::parse(name).ok_or_else(|| {
            CliError::Usage(format!(
                "--input-scale {name:?}: use `standard` or `pixels`"
            ))
        })?),
    };
    match (flag, model) {
        (Some(f), Some(m)) if f != m => Err(CliError::Usage(format!(
            "the model was trained on {} inputs; drop --input-scale {} or pass {}",
            m.name(),
            f.name(),
            m.name()
        ))),
        (f, m) => Ok(m.or(f).unwrap_or_default()),
    }
}

/// Training and test splits, scaled as `scale` says with the training split's channel
/// statistics.
pub fn load_data(
    name: &str,
    limits: (usize, usize),
    scale: InputScale,
    budget: Budget,
) -> Result<(Dataset, Dataset)> {
    let (mut train, mut test, stats) = load_unscaled(name, limits, budget)?;
    train.scale(&stats, scale);
    test.scale(&stats, scale);
    Ok((train, test))
}

/// Training and test splits as read (pixels / 255), and the full training split's
/// per-channel `(mean, std)`.
pub type Unscaled = (Dataset, Dataset, Vec<(f64, f64)>);

/// [`Unscaled`] data named `name`, the training and test splits cut to `limits` samples
/// (0: all).
pub fn load_unscaled(
    name: &str,
    (limit, test_limit): (usize, usize),
    budget: Budget,
) -> Result<Unscaled> {
    budget.check(&format!("loading --data {name}"), data_bytes(name))?;
    let dir = data_dir(name);
    let (mut train, mut test) = match name {
        "fashion-mnist" => fashion_mnist(&dir),
        "cifar10" => cifar10(&dir, 0),
        _ if dir.join("train").is_dir() || dir.join("data_batch_1.bin").exists() => {
            cifar10(&dir, 0)
        }
        _ => fashion_mnist(&dir),
    }
    .context(|| format!("loading --data {name}"))?;
    let stats = train.channel_stats();
    if limit > 0 {
        train = train.head(limit);
    }
    if test_limit > 0 {
        test = test.head(test_limit);
    }
    Ok((train, test, stats))
}

/// The folder `--data name` reads.
fn data_dir(name: &str) -> PathBuf {
    match name {
        "fashion-mnist" => PathBuf::from(FASHION_MNIST_DIR),
        "cifar10" => std::env::var_os("NETMORPH_CIFAR10")
            .map_or_else(|| PathBuf::from(CIFAR10_DIR), PathBuf::from),
        dir => PathBuf::from(dir),
    }
}

/// The files directly in `--data name`'s folder (IDX files, CIFAR-10 batches): inputs no
/// output may overwrite.
pub fn data_files(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir(name))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Values a data set in memory holds per byte or pixel the files store: the byte as read,
/// its f32 value, and one more f32 copy (scaling, `--limit`).
const BYTES_PER_VALUE: u64 = 1 + 4 + 4;

/// Bytes loading `--data name` holds at its peak, from the sizes of its files before reading
/// them (`None` on overflow): IDX files by their uncompressed size (a gzip file's trailer
/// gives it, plus the compressed bytes read first), CIFAR-10 batches by their size, JPEG
/// folders by their image count (32 x 32 x 3 values each).
pub fn data_bytes(name: &str) -> Option<u64> {
    let dir = data_dir(name);
    let mut stored = 0u64;
    let stored_data = |f: &PathBuf| {
        f.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.ends_with("-ubyte") || n.ends_with("-ubyte.gz") || n.ends_with(".bin")
        })
    };
    for file in data_files(name).iter().filter(|f| stored_data(f)) {
        let len = std::fs::metadata(file).ok()?.len();
        let gz = file.extension().is_some_and(|e| e == "gz");
        stored = stored.checked_add(if gz {
            len.checked_add(gzip_size(file)?)?
        } else {
            len
        })?;
    }
    for split in ["train", "test"] {
        let Ok(classes) = std::fs::read_dir(dir.join(split)) else {
            continue;
        };
        for class in classes.flatten() {
            let images = std::fs::read_dir(class.path()).map_or(0, |e| e.count());
            stored = stored.checked_add(u64::try_from(images).ok()?.checked_mul(3072)?)?;
        }
    }
    stored.checked_mul(BYTES_PER_VALUE)
}

/// The uncompressed size a gzip file's trailer states (modulo 2^32, as the format keeps it).
fn gzip_size(file: &std::path::Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).ok()?;
    f.seek(SeekFrom::End(-4)).ok()?;
    let mut size = [0u8; 4];
    f.read_exact(&mut size).ok()?;
    Some(u64::from(u32::from_le_bytes(size)))
}

/// `requested` threads, or one per core for 0.
pub fn threads(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Parses `--schedule` for a run of `total` iterations.
fn schedule(text: &str, total: usize) -> Result<Schedule> {
    let bad = || {
        CliError::Usage(format!("--schedule `{text}`: write `constant`, `step:EVERY:GAMMA` (e.g. `step:4000:0.1`) or `cosine[:MIN]`"))
    };
    let number = |t: &str| {
        t.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(bad)
    };
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        ["constant"] => Ok(Schedule::Constant),
        ["step", every, gamma] => Ok(Schedule::Step {
            every: every.parse().ok().filter(|e| *e > 0).ok_or_else(bad)?,
            gamma: number(gamma)?,
        }),
        ["cosine"] => Ok(Schedule::Cosine { total, min: 0.0 }),
        ["cosine", min] => Ok(Schedule::Cosine {
            total,
            min: number(min)?,
        }),
        _ => Err(bad()),
    }
}

/// The training configuration `opt` asks for, over `train` for `epochs` epochs.
pub fn fit_config(opt: &OptArgs, train: &Dataset, epochs: usize) -> Result<FitConfig> {
    if opt.batch == 0 {
        return Err(CliError::Usage(
            "--batch 0: a batch needs at least one sample".into(),
        ));
    }
    for (flag, v) in [
        ("--lr", opt.lr),
        ("--momentum", opt.momentum),
        ("--weight-decay", opt.weight_decay),
        ("--bias-lr-mult", opt.bias_lr_mult),
        ("--a-lr-mult", opt.a_lr_mult),
    ] {
        if !v.is_finite() {
            return Err(CliError::Usage(format!("{flag} {v}: give a finite number")));
        }
    }
    let side = train.x.shape.h.max(train.x.shape.w);
    if opt.crop >= side {
        return Err(CliError::Usage(format!(
            "--crop {}: shifts of the image's size ({side}) or more leave only zeros; use less",
            opt.crop
        )));
    }
    let total = train
        .y
        .len()
        .div_ceil(opt.batch)
        .checked_mul(epochs)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--epochs {epochs}: the run's iteration count overflows 64 bits; train fewer epochs"
            ))
        })?;
    Ok(FitConfig {
        epochs,
        threads: threads(opt.threads),
        batch: opt.batch,
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
