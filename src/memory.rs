//! The memory a piece of work will need, known before it is spent, and a budget that refuses
//! work that would not fit (the command line's `--max-memory`).
//!
//! The estimates count the buffers whose size the user chooses (parameters, gradients,
//! momentum, activations, the solver's workspace) and round generously up; they are not a
//! profile of the allocator. Every size goes through checked arithmetic: an estimate that
//! overflows `u64` is a request no machine can serve, and the budget refuses it like any
//! other.

use std::fmt;

use netmorph_core::{Layer, LayerPath, Network, Scalar, Shape};

use crate::fit::pass_samples;

/// How much memory work may take, and where that limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub limit: u64,
    /// Whether the limit was given (`--max-memory`) or is the machine's available memory.
    pub given: bool,
}

impl Budget {
    /// `limit` bytes if given, else the memory available now ([`available`]; no limit where
    /// the platform does not say).
    pub fn new(limit: Option<u64>) -> Self {
        match limit {
            Some(limit) => Self { limit, given: true },
            None => Self {
                limit: available().unwrap_or(u64::MAX),
                given: false,
            },
        }
    }

    /// `need` bytes (`None`: an estimate that overflowed) if they fit, for `what`.
    ///
    /// # Errors
    /// [`MemoryError`] naming `what`, both figures and what to do.
    ///
    /// # Examples
    /// ```
    /// use netmorph::memory::Budget;
    /// let budget = Budget::new(Some(1 << 20));
    /// assert!(budget.check("training", Some(1000)).is_ok());
    /// let e = budget.check("training", Some(1 << 30)).unwrap_err();
    /// assert!(e.to_string().contains("1.0 GiB"), "{e}");
    /// assert!(budget.check("training", None).is_err());
    /// ```
    pub fn check(&self, what: &str, need: Option<u64>) -> Result<u64, MemoryError> {
        match need {
            Some(n) if n <= self.limit => Ok(n),
            _ => Err(MemoryError {
                what: what.to_string(),
                need,
                budget: *self,
            }),
        }
    }
}

/// Work that would need more memory than its [`Budget`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryError {
    /// The work.
    pub what: String,
    /// Bytes it needs (`None`: more than `u64` can count).
    pub need: Option<u64>,
    /// The budget it exceeds.
    pub budget: Budget,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let need = self
            .need
            .map_or_else(|| "more than 16 EiB".to_string(), human);
        let limit = human(self.budget.limit);
        let source = if self.budget.given {
            format!("--max-memory allows {limit}")
        } else {
            format!("this machine has {limit} available")
        };
        write!(
            f,
            "{} needs about {need} but {source}; choose smaller sizes (layers, channels, batch) or raise --max-memory",
            self.what
        )
    }
}

impl std::error::Error for MemoryError {}

/// `bytes` in B, KiB, MiB, GiB or TiB with one decimal.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Parses a size: bytes (`1000000`) or with a binary suffix `K`, `M`, `G`, `T` (optionally
/// `KiB`, `MiB`, ...; `1.5G` is allowed). `None` if malformed or beyond `u64`.
///
/// # Examples
/// ```
/// use netmorph::memory::parse_size;
/// assert_eq!(parse_size("512M"), Some(512 << 20));
/// assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
/// assert_eq!(parse_size("12345"), Some(12345));
/// assert_eq!(parse_size("lots"), None);
/// assert_eq!(parse_size("99999999999T"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, shift) = match t.char_indices().last()? {
        (i, 'K' | 'k') => (&t[..i], 10),
        (i, 'M' | 'm') => (&t[..i], 20),
        (i, 'G' | 'g') => (&t[..i], 30),
        (i, 'T' | 't') => (&t[..i], 40),
        _ => (t, 0),
    };
    let value: f64 = number.trim().parse().ok()?;
    let bytes = value * f64::from(1u32 << (shift / 2)) * f64::from(1u32 << (shift - shift / 2));
    // 2^64 is exactly representable: anything at or past it does not fit.
    (value.is_finite() && value >= 0.0 && bytes < 18_446_744_073_709_551_616.0)
        .then_some(bytes as u64)
}

/// The memory available to a new allocation now: `MemAvailable` in `/proc/meminfo`, or less
/// where this process's control group (v2) allows less (`memory.max - memory.current`, as
/// in containers); `None` where neither can be read.
pub fn available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok();
    let host = info.as_deref().and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    let group = || {
        let read = |f: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        };
        // `max` (no limit) does not parse: no group limit.
        Some(read("memory.max")?.saturating_sub(read("memory.current").unwrap_or(0)))
    };
    match (host, group()) {
        (Some(h), Some(g)) => Some(h.min(g)),
        (h, g) => h.or(g),
    }
}

/// Bytes of `values` scalars of type `T`.
pub fn values_bytes<T: Scalar>(values: usize) -> Option<u64> {
    u64::try_from(values)
        .ok()?
        .checked_mul(core::mem::size_of::<T>() as u64)
}

/// Per-sample values of every layer output in `layers` (entered with shape `input`), summed,
/// and the largest single output.
fn activations<T: Scalar>(
    net: &Network<T>,
    layers: &[Layer<T>],
    prefix: Option<&LayerPath>,
) -> Option<(usize, usize)> {
    let (mut sum, mut widest) = (0usize, 0usize);
    for (i, l) in layers.iter().enumerate() {
        let path = match prefix {
            None => LayerPath::top(i),
            Some(p) => p.with_last(i),
        };
        let out: Shape = net.shape_before(&path.with_last(i + 1))?;
        let len = out.c.checked_mul(out.h)?.checked_mul(out.w)?;
        sum = sum.checked_add(len)?;
        widest = widest.max(len);
        if let Layer::ParallelSum(bs) = l {
            for (b, seq) in bs.iter().enumerate() {
                let (s, w) = activations(net, seq, Some(&path.child(b, 0)?))?;
                sum = sum.checked_add(s)?;
                widest = widest.max(w);
            }
        }
    }
    Some((sum, widest))
}

/// Bytes a forward pass of `n` samples through `net` holds at its peak: the input, and two
/// consecutive layer outputs at the widest layer, plus the parameters. An upper estimate
/// (`None` on overflow).
pub fn forward_bytes<T: Scalar>(net: &Network<T>, n: usize) -> Option<u64> {
    let (_, widest) = activations(net, net.layers(), None)?;
    let per_sample = net
        .input_shape()
        .len()
        .checked_add(widest.checked_mul(2)?)?;
    let values = per_sample.checked_mul(n)?.checked_add(net.param_count())?;
    values_bytes::<T>(values)
}

/// Bytes a training run of `net` holds at its peak with `batch` samples per step split over
/// `threads` threads: weights, momentum, the merged gradients and one set per thread; each
/// thread's trace of a pass ([`pass_samples`] samples; every layer's output kept, counted
/// twice for patch matrices, pooling positions and the backward pass's gradients); and the
/// evaluation's forward pass of 500 samples. An upper estimate (`None` on overflow).
///
/// # Examples
/// ```
/// use netmorph::memory::training_bytes;
/// use netmorph::{Kernel, Layer, Network, Shape};
/// let net = Network::<f32>::new(Shape::flat(784), vec![Layer::Dense(Kernel::zeros(10, 784, 1))]).unwrap();
/// let one = training_bytes(&net, 100, 1).unwrap();
/// assert!(one > 4 * 4 * 7850); // four copies of the parameters at least
/// assert!(training_bytes(&net, 100, 2).unwrap() > one);
/// ```
pub fn training_bytes<T: Scalar>(net: &Network<T>, batch: usize, threads: usize) -> Option<u64> {
    let (sum, _) = activations(net, net.layers(), None)?;
    let threads = threads.max(1);
    let pass = pass_samples(net).min(batch.max(1));
    let trace = net
        .input_shape()
        .len()
        .checked_add(sum.checked_mul(2)?)?
        .checked_mul(pass)?;
    let params = net.param_count().checked_mul(threads.checked_add(3)?)?;
    let batch_values = net.input_shape().len().checked_mul(batch)?;
    let values = trace
        .checked_mul(threads)?
        .checked_add(params)?
        .checked_add(batch_values)?;
    values_bytes::<T>(values)?.checked_add(forward_bytes(net, 500)?)
}
