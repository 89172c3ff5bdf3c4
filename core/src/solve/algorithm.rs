//! Algorithm 1 (general network morphism, section 3.2.1) and Algorithm 2 (practical network
//! morphism, section 3.2.2): decompose `G` into `F_{l+1} (*) F_l` (eq. 6).

use core::fmt;

use faer::Mat;

use super::deconv::{
    compose_workspace, max_abs, pad_centered, relative_residual, solve_f1, solve_f1_workspace,
    solve_f2, solve_f2_workspace, transpose_channels, Sizes,
};
use super::factor::orthonormal_columns;
use super::kernel_values;
use super::lstsq::SolveMethod;
use super::mixing::{qr_workspace, solve_drawn, Shape};
use crate::alloc_try::{self, Count};
use crate::{Kernel, Rng, Scalar};

/// Which algorithm decomposes `G`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Algorithm 1: random init, alternating deconvolutions, each taking the solution
    /// closest to the current factor. Fills every parameter under condition (7).
    General,
    /// Algorithm 2: shrink the non-expanding factor's kernel until the residual is zero,
    /// zero-pad it back, rescale both factors to equal standard deviation.
    Practical,
    /// Algorithm 1 when condition (7) holds and it reaches zero residual, Algorithm 2 otherwise.
    ///
    /// Condition (7) counts unknowns against equations, but the deconvolution matrix can be
    /// rank deficient even when it has more columns than rows: with `K_2 <= K_1`, every pair
    /// of middle channels `(m, m')` gives null vectors `(X_m, X_m') = (F_{l+1}[o, m'], -F_{l+1}[o, m])`
    /// (the Koszul syzygies of the polynomial view of convolution). For `C_{l+1} = 1`,
    /// `K_1 = K_2 = 3` and `C_l = 3`, (7) holds (27 >= 25) yet the rank is at most 24, and
    /// Algorithm 1 cannot be exact. Our property tests found this case; `Auto` then falls back
    /// to Algorithm 2.
    Auto,
}

impl Algorithm {
    /// Lower-case name (`"general"`, `"practical"`, `"auto"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Practical => "practical",
            Self::Auto => "auto",
        }
    }
}

/// The scalar a morph's solves run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// `f64`, whatever the network's scalar (the default): an f32 child is then exact to f32
    /// rounding.
    #[default]
    F64,
    /// `f32`, for devices without fast `f64` (most microcontrollers emulate it in software,
    /// tens of times slower): half the workspace, a residual of about `1e-6`, and an f32
    /// child a few ulps further from its parent than with `F64`.
    F32,
}

impl Precision {
    /// Lower-case name (`"f64"`, `"f32"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
        }
    }
}

/// Tuning of the decomposition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SolveOptions {
    /// Largest accepted residual `max |F_{l+1} (*) F_l - G~| / max |G~|`, measured in the
    /// solve's precision: keep it above that precision's rounding ([`SolveOptions::f32`]).
    pub tol: f64,
    /// Alternations of Algorithm 1 when condition (7) fails.
    pub max_iter: usize,
    /// The scalar the solves run in.
    pub precision: Precision,
    /// Draw the first solve's fixed factor as block-diagonal times a random rotation of the
    /// middle channels, so that the solve splits into small systems (`solve/mixing.rs`), when
    /// the sizes allow it. `false` always solves the dense system (same kind of solution, for
    /// comparison: `reproduce solver-scaling` times both).
    pub grouped: bool,
}

/// `tol`: a few hundred f64 ulps of slack over the solver's rounding, well under what any
/// network scalar can represent; `max_iter`: alternations rarely help after a few dozen;
/// solves in `f64`; grouped first solves.
impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            tol: 1e-11,
            max_iter: 50,
            precision: Precision::F64,
            grouped: true,
        }
    }
}

impl SolveOptions {
    /// Solves in `f32` with `tol = 1e-5`: about a hundred f32 ulps, the slack a
    /// decomposition summed over a few hundred products needs.
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::solve::algorithm::{decompose, Algorithm, Precision, SolveOptions};
    /// use netmorph_core::{Kernel, Rng};
    /// let mut rng = Rng::seed(1);
    /// let mut g = Kernel::<f32>::zeros(10, 32, 1);
    /// g.weight = rng.normals(320, 0.2).iter().map(|v| *v as f32).collect();
    /// let opts = SolveOptions::f32();
    /// assert_eq!(opts.precision, Precision::F32);
    /// let d = decompose(&g, 16, 1, 1, Algorithm::Practical, &opts, &mut rng).unwrap();
    /// assert!(d.residual < 1e-5);
    /// ```
    pub fn f32() -> Self {
        Self {
            tol: 1e-5,
            precision: Precision::F32,
            ..Self::default()
        }
    }
}

/// Which factor expands `G` in Algorithm 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expands {
    /// `F_l` can represent `G` alone (`C_l >= C_{l+1}`, `K_1 >= K`); `K_2` shrinks.
    First,
    /// `F_{l+1}` can represent `G` alone (`C_l >= C_{l-1}`, `K_2 >= K`); `K_1` shrinks.
    Second,
}

/// A solved decomposition `G~ = F_{l+1} (*) F_l`, in the solve's scalar `F`.
#[derive(Clone, Debug)]
pub struct Decomposition<F: Scalar> {
    /// `F_l`, `(C_l, C_{l-1}, K_1, K_1)`.
    pub f1: Kernel<F>,
    /// `F_{l+1}`, `(C_{l+1}, C_l, K_2, K_2)`.
    pub f2: Kernel<F>,
    /// The algorithm that ran (never [`Algorithm::Auto`]).
    pub algorithm: Algorithm,
    /// Whether condition (7) holds for these sizes.
    pub condition7: bool,
    /// Final relative residual, computed in `F`.
    pub residual: f64,
    /// Deconvolution solves performed.
    pub solves: usize,
    /// Algorithm 2 only: the expanding factor and the reduced kernel size of the other one.
    pub reduced: Option<(Expands, usize)>,
    /// Factorisation used by the last solve.
    pub method: SolveMethod,
    /// The blocks the first solve was split into (`solve/mixing.rs`); 1 when it was dense.
    pub groups: usize,
}

/// Why a decomposition is impossible or failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SolveError {
    /// `K~ = K_1 + K_2 - 1` is smaller than `K`, or `K~ - K` is odd (no centred padding).
    Receptive {
        /// `K`.
        k: usize,
        /// `K_1`.
        k1: usize,
        /// `K_2`.
        k2: usize,
    },
    /// Algorithm 2 needs one factor to expand `G`.
    NoExpandingFactor {
        /// `C_l`.
        c_l: usize,
        /// `C_{l-1}`.
        c_in: usize,
        /// `C_{l+1}`.
        c_out: usize,
    },
    /// Algorithm 1 stopped above the tolerance.
    NotConverged {
        /// Residual reached.
        residual: f64,
        /// Tolerance asked for.
        tol: f64,
    },
    /// `G` is not a valid input: its weight or bias length disagrees with its sizes, a size
    /// is zero, it holds NaN or infinite values, or `C_l` is zero.
    InvalidInput {
        /// What is wrong.
        what: &'static str,
    },
    /// The factors or the solver's workspace would hold more than `usize::MAX` bytes.
    TooLarge {
        /// `C_l`.
        c_l: usize,
        /// `K_1`.
        k1: usize,
        /// `K_2`.
        k2: usize,
    },
    /// The allocator cannot provide the solver's workspace ([`workspace_bytes`]).
    Alloc {
        /// Bytes requested.
        bytes: usize,
    },
}

impl fmt::Display for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Receptive { k, k1, k2 } => write!(
                f,
                "K_1 + K_2 - 1 = {} must be at least the parent kernel {k} and differ from it by an \
                 even number; choose odd K_1 = {k1}, K_2 = {k2} with K_1 + K_2 - 1 >= {k}",
                // Widened: the sizes come from the user.
                *k1 as u128 + *k2 as u128 - 1
            ),
            Self::NoExpandingFactor { c_l, c_in, c_out } => write!(
                f,
                "neither new layer can represent the parent alone: that needs C_l >= C_{{l+1}} = \
                 {c_out} together with K_1 >= K, or C_l >= C_{{l-1}} = {c_in} together with \
                 K_2 >= K (C_l is {c_l}); widen C_l, or raise K_1 or K_2 to the parent's kernel size"
            ),
            Self::NotConverged { residual, tol } => write!(
                f,
                "the deconvolution stopped at relative residual {residual:.3e} > {tol:.1e}; the \
                 sizes violate condition (7): raise C_l or the kernel sizes, or use the practical algorithm"
            ),
            Self::InvalidInput { what } => write!(f, "cannot decompose: {what}"),
            Self::TooLarge { c_l, k1, k2 } => write!(
                f,
                "C_l = {c_l}, K_1 = {k1}, K_2 = {k2} make factors larger than memory can address; \
                 use smaller sizes"
            ),
            Self::Alloc { bytes } => write!(
                f,
                "the decomposition needs up to {bytes} bytes of memory, which cannot be allocated; \
                 use a smaller C_l or smaller kernels"
            ),
        }
    }
}

impl core::error::Error for SolveError {}

/// Condition (7), read with `max`: `max(C_l C_{l-1} K_1^2, C_{l+1} C_l K_2^2) >=
/// C_{l+1} C_{l-1} K~^2`, the factors' parameter counts against `G~`'s (morphism notes,
/// section 11).
///
/// The paper prints `min`, but one solve of the factor with more unknowns is already exact:
/// per input channel, solving `F_l` has `C_l K_1^2` unknowns for `C_{l+1} K~^2` equations,
/// and per output channel, solving `F_{l+1}` has `C_l K_2^2` for `C_{l-1} K~^2`; (7) with
/// `max` says one of the two is under-determined, and Algorithm 1 starts with that one. With
/// `min`, `Algorithm::Auto` would skip Algorithm 1 on sizes it solves in one step (dense
/// `20 -> 16` through 16 channels: 320 and 256 unknowns against 320 equations).
///
/// Sizes whose counts overflow `usize` compare exactly when only the unknowns overflow (then
/// (7) holds) and count as failing when the equations do (no solver could run them).
pub fn condition7(c_in: usize, c_l: usize, c_out: usize, k1: usize, k2: usize) -> bool {
    let kt = Count::of(k1) + k2.saturating_sub(1);
    let g = Count::of(c_out) * c_in * kt * kt;
    let unknowns = (Count::of(c_l) * c_in * k1 * k1).max(Count::of(c_out) * c_l * k2 * k2);
    match (unknowns.get(), g.get()) {
        (Some(u), Some(g)) => u >= g,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

/// Decomposes `g` into `F_l (C_l, K_1)` and `F_{l+1} (K_2)` with `algorithm`, in `g`'s
/// scalar `F`, which `opts.precision` must name.
///
/// Before it starts, the allocator is asked once for [`workspace_bytes`], an upper bound of
/// everything the solve holds at once (faer's factorisations allocate internally and cannot
/// report a failure).
///
/// # Errors
/// [`SolveError`] when the sizes admit no exact decomposition by that algorithm;
/// [`SolveError::InvalidInput`] for a malformed or non-finite `g` or `c_l = 0`;
/// [`SolveError::TooLarge`] or [`SolveError::Alloc`] when the workspace does not fit;
/// [`SolveError::InvalidInput`] when `opts.precision` is not `F`.
///
/// # Examples
/// ```
/// use netmorph_core::solve::algorithm::{decompose, Algorithm, SolveOptions};
/// use netmorph_core::solve::deconv::{compose, pad_centered};
/// use netmorph_core::{Kernel, Rng};
/// let mut rng = Rng::seed(1);
/// let mut g = Kernel::zeros(4, 3, 3);
/// g.weight = rng.normals(4 * 3 * 9, 1.0);
/// let d = decompose(&g, 16, 3, 3, Algorithm::General, &SolveOptions::default(), &mut rng).unwrap();
/// assert!(d.condition7 && d.residual < 1e-11);
/// let err = compose(&d.f2, &d.f1).weight.iter().zip(&pad_centered(&g, 5).weight)
///     .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
/// assert!(err < 1e-10);
/// ```
pub fn decompose<F: Scalar>(
    g: &Kernel<F>,
    c_l: usize,
    k1: usize,
    k2: usize,
    algorithm: Algorithm,
    opts: &SolveOptions,
    rng: &mut Rng,
) -> Result<Decomposition<F>, SolveError> {
    let invalid = |what| Err(SolveError::InvalidInput { what });
    if opts.precision.name() != F::NAME {
        return invalid("the kernel's scalar differs from the options' precision");
    }
    if g.out == 0 || g.inp == 0 || g.k == 0 || c_l == 0 {
        return invalid("every channel count and kernel size must be at least 1");
    }
    if alloc_try::product(&[g.out, g.inp, g.k, g.k]) != Some(g.weight.len())
        || g.bias.len() != g.out
    {
        return invalid("G's weight or bias length disagrees with its sizes");
    }
    if !g.is_finite() {
        return invalid("G holds NaN or infinite values");
    }
    receptive(g.k, k1, k2)?;
    let bytes = workspace_bytes(g.inp, c_l, g.out, k1, k2, opts.precision)
        .ok_or(SolveError::TooLarge { c_l, k1, k2 })?;
    alloc_try::probe(bytes).map_err(|e| SolveError::Alloc { bytes: e.bytes })?;
    decompose_sized(g, c_l, k1, k2, algorithm, opts, rng)
}

/// Checks that `K~ = K_1 + K_2 - 1` covers `K` with centred padding (`K~ >= K`, `K~ - K`
/// even).
///
/// # Errors
/// [`SolveError::Receptive`] otherwise.
pub(crate) fn receptive(k: usize, k1: usize, k2: usize) -> Result<(), SolveError> {
    match k1.checked_add(k2).and_then(|s| s.checked_sub(1)) {
        Some(kt) if k1 > 0 && k2 > 0 && kt >= k && (kt - k) % 2 == 0 => Ok(()),
        _ => Err(SolveError::Receptive { k, k1, k2 }),
    }
}

/// An upper bound of the heap [`decompose`] holds at once, in bytes, for `G` with `c_in`
/// inputs and `c_out` outputs split through `c_l` channels with kernels `K_1`, `K_2` (the
/// arguments of [`condition7`]), whichever algorithm runs, its result included; `None` if it
/// overflows `usize`. It allocates nothing, so a caller can weigh a decomposition before
/// paying for it (faer's `*_scratch` functions do the same for its factorisations).
///
/// The bound adds, in values of the solve's `precision`: `G~`, `F_l` and `F_{l+1}`; then the larger of their random
/// initialisation (a copy of the larger factor and, for `1 x 1` factors, faer's QR: the
/// matrix, its factors and the thin `Q`, five times the matrix) and one alternation (the
/// larger of the two factor solves, [`solve_f1`] and [`solve_f2`], each with its result, the
/// deconvolution matrix or Kronecker system and [`closest`]'s workspace, or Algorithm 2's
/// final re-padding, plus the composition that measures the residual). Algorithm 2 shrinks
/// one kernel: every size grows with the kernels except where a factor becomes `1 x 1` and
/// the Kronecker path runs, so the bound is the maximum of this sum at `(K_1, K_2)`,
/// `(K_1, 1)` and `(1, K_2)`. Every faer matrix is counted with its columns padded to 64
/// bytes. The packing buffers of faer's matrix products (sized by the CPU's caches,
/// allocated once per thread) are not included; with the `small-heap` feature there are
/// none, and the factorisations are the crate's own loops (see `solve/factor.rs`), which
/// need only their matrices.
///
/// # Examples
/// ```
/// use netmorph_core::solve::algorithm::{workspace_bytes, Precision};
/// // A 3x3 convolution 64 -> 64 through 128 channels: tens of megabytes at most.
/// let bytes = workspace_bytes(64, 128, 64, 3, 3, Precision::F64).unwrap();
/// assert!(bytes > 1 << 20 && bytes < 1 << 30);
/// assert!(workspace_bytes(64, 128, 64, 3, 3, Precision::F32).unwrap() < bytes);
/// assert_eq!(workspace_bytes(64, usize::MAX / 2, 64, 3, 3, Precision::F64), None);
/// ```
///
/// [`closest`]: super::lstsq::closest
pub fn workspace_bytes(
    c_in: usize,
    c_l: usize,
    c_out: usize,
    k1: usize,
    k2: usize,
    precision: Precision,
) -> Option<usize> {
    match precision {
        Precision::F64 => workspace_values::<f64>(c_in, c_l, c_out, k1, k2) * 8,
        Precision::F32 => workspace_values::<f32>(c_in, c_l, c_out, k1, k2) * 4,
    }
    .get()
}

/// [`workspace_bytes`] in values of `F`.
fn workspace_values<F: Scalar>(
    c_in: usize,
    c_l: usize,
    c_out: usize,
    k1: usize,
    k2: usize,
) -> Count {
    let run = |k1: usize, k2: usize| {
        let s = Sizes::new(c_out, c_in, c_l, k1, k2);
        let (gt, f1, f2) = (
            kernel_values(s.co, s.ci, s.kt),
            kernel_values(s.cm, s.ci, s.k1),
            kernel_values(s.co, s.cm, s.k2),
        );
        let qr = qr_workspace::<F>;
        let init = f1.max(f2) * 2 + qr(s.cm, s.ci) + qr(s.co, s.cm);
        let solve = solve_f1_workspace::<F>(&s)
            .max(solve_f2_workspace::<F>(&s))
            .max(gt + f1.max(f2));
        // The grouped first solve, in either orientation.
        let grouped = Shape::solving_f1(c_out, c_in, c_l, k1, k2)
            .workspace::<F>()
            .max(Shape::solving_f2(c_out, c_in, c_l, k1, k2).workspace::<F>());
        let check = compose_workspace::<F>(&s);
        gt + f1 + f2 + init.max(solve + check).max(grouped + check)
    };
    run(k1, k2).max(run(k1, 1)).max(run(1, k2))
}

/// [`decompose`] after its checks.
pub(crate) fn decompose_sized<F: Scalar>(
    g: &Kernel<F>,
    c_l: usize,
    k1: usize,
    k2: usize,
    algorithm: Algorithm,
    opts: &SolveOptions,
    rng: &mut Rng,
) -> Result<Decomposition<F>, SolveError> {
    let cond = condition7(g.inp, c_l, g.out, k1, k2);
    match algorithm {
        Algorithm::General => general(g, c_l, k1, k2, cond, opts, rng),
        Algorithm::Practical => practical(g, c_l, k1, k2, cond, opts, rng),
        // Condition (7) is necessary, not sufficient: see `Algorithm::Auto`.
        Algorithm::Auto if cond => general(g, c_l, k1, k2, cond, opts, rng)
            .or_else(|_| practical(g, c_l, k1, k2, cond, opts, rng)),
        Algorithm::Auto => practical(g, c_l, k1, k2, cond, opts, rng),
    }
}

/// Standard deviation of the random initial factors: chosen so that a product of two such
/// factors summed over `C_l` middle channels has about `G`'s RMS, keeping solved parameters
/// at the parent's scale.
fn init_std<F: Scalar>(g: &Kernel<F>, c_l: usize, overlap: usize) -> f64 {
    let n = g.weight.len().max(1) as f64;
    let rms = libm::sqrt(
        g.weight
            .iter()
            .map(|v| v.as_f64() * v.as_f64())
            .sum::<f64>()
            / n,
    );
    let rms = if rms > 0.0 {
        rms
    } else {
        1.0 / libm::sqrt((g.inp * g.k * g.k) as f64)
    };
    libm::sqrt(rms / libm::sqrt((c_l * overlap * overlap) as f64))
}

/// A random factor with entries of standard deviation about `std` (uniform noise: the
/// factors can hold millions of values and uniform samples cost a tenth of normal ones; the
/// paper asks only for random, non-sparse, well-scaled values). A `1 x 1` factor is a
/// matrix whose shorter side is made orthonormal (QR of a Gaussian matrix, rescaled): a
/// Gaussian matrix that is square or nearly so has condition number of order its size, and the
/// solved factor would grow by that much and lose digits when rounded to f32. Orthonormal
/// rows or columns keep the solved factor at `G`'s scale. Only near-square factors need it.
fn random_kernel<F: Scalar>(
    out: usize,
    inp: usize,
    k: usize,
    std: f64,
    rng: &mut Rng,
) -> Kernel<F> {
    let mut f = Kernel::zeros(out, inp, k);
    let half = std * libm::sqrt(3.0);
    f.weight
        .iter_mut()
        .for_each(|v| *v = F::of_f64(half * (2.0 * rng.uniform() - 1.0)));
    let (tall, short) = (out.max(inp), out.min(inp));
    // A random matrix at least twice as long as wide is already well conditioned
    // (`cond ~ (1 + sqrt(r)) / (1 - sqrt(r)) <= 6` for aspect `r <= 1/2`): skip the QR.
    if k == 1 && 2 * short > tall {
        // Columns of `m` are the short side's vectors.
        let m = Mat::from_fn(tall, short, |r, c| {
            if out >= inp {
                f.weight[r * inp + c]
            } else {
                f.weight[c * inp + r]
            }
        });
        let q = orthonormal_columns(m);
        let scale = F::of_f64(std * libm::sqrt(tall as f64));
        for r in 0..tall {
            for c in 0..short {
                let at = if out >= inp { r * inp + c } else { c * inp + r };
                f.weight[at] = q[(r, c)] * scale;
            }
        }
    }
    f
}

/// Algorithm 1. Under condition (7) one solve of the factor with enough unknowns is exact.
fn general<F: Scalar>(
    g: &Kernel<F>,
    c_l: usize,
    k1: usize,
    k2: usize,
    cond: bool,
    opts: &SolveOptions,
    rng: &mut Rng,
) -> Result<Decomposition<F>, SolveError> {
    let kt = k1 + k2 - 1;
    let gt = pad_centered(g, kt);
    let std = init_std(g, c_l, k1.min(k2));
    // Start with the factor whose per-channel system is under-determined, if any.
    let f1_first = c_l * k1 * k1 >= g.out * kt * kt || c_l * k2 * k2 < g.inp * kt * kt;
    let done = |f1, f2, residual, solves, method, groups| Decomposition {
        f1,
        f2,
        algorithm: Algorithm::General,
        condition7: cond,
        residual,
        solves,
        reduced: None,
        method,
        groups,
    };
    let mut residual = f64::INFINITY;
    let (mut f1, mut f2, start, groups) =
        match grouped_first(&gt, c_l, (k1, k2), f1_first, std, opts, rng) {
            Some(first) => {
                residual = relative_residual(&gt, &first.f2, &first.f1);
                if residual <= opts.tol {
                    let First {
                        f1,
                        f2,
                        method,
                        groups,
                        ..
                    } = first;
                    return Ok(done(f1, f2, residual, 1, method, groups));
                }
                (first.f1, first.f2, 1, first.groups)
            }
            None => (
                random_kernel(c_l, g.inp, k1, std, rng),
                random_kernel(g.out, c_l, k2, std, rng),
                0,
                1,
            ),
        };
    for it in start..opts.max_iter.max(1) * 2 {
        let method;
        if (it % 2 == 0) == f1_first {
            (f1, method) = solve_f1(&gt, &f2, &f1);
        } else {
            (f2, method) = solve_f2(&gt, &f1, &f2);
        }
        residual = relative_residual(&gt, &f2, &f1);
        if residual <= opts.tol {
            return Ok(done(f1, f2, residual, it + 1, method, groups));
        }
    }
    Err(SolveError::NotConverged {
        residual,
        tol: opts.tol,
    })
}

/// A grouped first solve's factors, method, residual of the rotated system and block count.
struct First<F> {
    f1: Kernel<F>,
    f2: Kernel<F>,
    method: SolveMethod,
    residual: f64,
    groups: usize,
}

/// The first solve of either algorithm on sizes that group ([`mixing`](super::mixing)):
/// draws the factor that stays fixed and the start of the other, and solves for the other
/// (`F_l` when `for_f1`). `None` when the sizes do not group or `opts.grouped` is off (the
/// caller draws dense factors).
fn grouped_first<F: Scalar>(
    gt: &Kernel<F>,
    c_l: usize,
    (k1, k2): (usize, usize),
    for_f1: bool,
    std: f64,
    opts: &SolveOptions,
    rng: &mut Rng,
) -> Option<First<F>> {
    if !opts.grouped {
        return None;
    }
    let (f1, f2, groups, d) = if for_f1 {
        let shape = Shape::solving_f1(gt.out, gt.inp, c_l, k1, k2);
        let groups = shape.groups()?;
        let r = transpose_channels(gt);
        let d = solve_drawn(&r, shape, groups, std, random_kernel::<F>, rng);
        (
            d.solved,
            transpose_channels(&d.fixed),
            groups,
            (d.method, d.residual),
        )
    } else {
        let shape = Shape::solving_f2(gt.out, gt.inp, c_l, k1, k2);
        let groups = shape.groups()?;
        let d = solve_drawn(gt, shape, groups, std, random_kernel::<F>, rng);
        (
            d.fixed,
            transpose_channels(&d.solved),
            groups,
            (d.method, d.residual),
        )
    };
    Some(First {
        f1,
        f2,
        method: d.0,
        residual: d.1,
        groups,
    })
}

/// Algorithm 2, for both the "F_l expands G" and the "F_{l+1} expands G" cases.
fn practical<F: Scalar>(
    g: &Kernel<F>,
    c_l: usize,
    k1: usize,
    k2: usize,
    cond: bool,
    opts: &SolveOptions,
    rng: &mut Rng,
) -> Result<Decomposition<F>, SolveError> {
    let k = g.k;
    let case = if c_l >= g.out && k1 >= k {
        Expands::First
    } else if c_l >= g.inp && k2 >= k {
        Expands::Second
    } else {
        return Err(SolveError::NoExpandingFactor {
            c_l,
            c_in: g.inp,
            c_out: g.out,
        });
    };
    let (expanding, shrinking) = match case {
        Expands::First => (k1, k2),
        Expands::Second => (k2, k1),
    };
    let mut solves = 0;
    // K^r runs K, K - 2, ..., down to the smallest size that keeps K~ >= K (at worst 1,
    // where the expanding factor alone represents G and the residual is zero).
    let mut kr = shrinking;
    loop {
        let kt = expanding + kr - 1;
        let gt = pad_centered(g, kt);
        let std = init_std(g, c_l, expanding.min(kr));
        let (k1r, k2r) = match case {
            Expands::First => (k1, kr),
            Expands::Second => (kr, k2),
        };
        let for_f1 = case == Expands::First;
        let (f1, f2, method, grouped) =
            match grouped_first(&gt, c_l, (k1r, k2r), for_f1, std, opts, rng) {
                Some(s) => (s.f1, s.f2, s.method, Some((s.residual, s.groups))),
                None if for_f1 => {
                    let f2 = random_kernel(g.out, c_l, kr, std, rng);
                    let f1 = random_kernel(c_l, g.inp, k1, std, rng);
                    let (f1, m) = solve_f1(&gt, &f2, &f1);
                    (f1, f2, m, None)
                }
                None => {
                    let f1 = random_kernel(c_l, g.inp, kr, std, rng);
                    let f2 = random_kernel(g.out, c_l, k2, std, rng);
                    let (f2, m) = solve_f2(&gt, &f1, &f2);
                    (f1, f2, m, None)
                }
            };
        solves += 1;
        // At the smallest K^r the final check below decides; above it, shrink on failure.
        // The grouped solve measured its residual on the rotated system; the final check
        // composes the returned factors, and a failure there shrinks too while it can.
        let smallest = kr <= 2 || expanding + kr - 3 < k;
        let first = grouped.map_or_else(|| relative_residual(&gt, &f2, &f1), |g| g.0);
        if smallest || first <= opts.tol {
            let (mut f1, mut f2) = match case {
                Expands::First => (f1, pad_centered(&f2, k2)),
                Expands::Second => (pad_centered(&f1, k1), f2),
            };
            equalize_std(&mut f1, &mut f2);
            let residual = relative_residual(&pad_centered(g, k1 + k2 - 1), &f2, &f1);
            if residual <= opts.tol {
                return Ok(Decomposition {
                    f1,
                    f2,
                    algorithm: Algorithm::Practical,
                    condition7: cond,
                    residual,
                    solves,
                    reduced: Some((case, kr)),
                    method,
                    groups: grouped.map_or(1, |g| g.1),
                });
            }
            if smallest {
                return Err(SolveError::NotConverged {
                    residual,
                    tol: opts.tol,
                });
            }
        }
        kr -= 2;
    }
}

/// Scales `F_l` by `s` and `F_{l+1}` by `1 / s` so both have the same standard deviation;
/// their product (6) is unchanged (Algorithm 2's last step).
fn equalize_std<F: Scalar>(f1: &mut Kernel<F>, f2: &mut Kernel<F>) {
    let (s1, s2) = (std_dev_of(&f1.weight), std_dev_of(&f2.weight));
    if s1 > 0.0 && s2 > 0.0 && max_abs(&f1.weight) > 0.0 {
        let s = F::of_f64(libm::sqrt(s2 / s1));
        f1.weight.iter_mut().for_each(|v| *v *= s);
        f1.bias.iter_mut().for_each(|v| *v *= s);
        f2.weight.iter_mut().for_each(|v| *v /= s);
    }
}

/// Population standard deviation.
pub fn std_dev(v: &[f64]) -> f64 {
    std_dev_of(v)
}

/// [`std_dev`] of any scalar's values, computed in `f64` without a copy.
pub(crate) fn std_dev_of<T: Scalar>(v: &[T]) -> f64 {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| x.as_f64()).sum::<f64>() / n;
    let sq = |x: &T| (x.as_f64() - mean) * (x.as_f64() - mean);
    libm::sqrt(v.iter().map(sq).sum::<f64>() / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(out: usize, inp: usize, k: usize, seed: u64) -> Kernel<f64> {
        random_kernel(out, inp, k, 0.1, &mut Rng::seed(seed))
    }

    #[test]
    fn practical_both_cases_are_exact_and_equal_std() {
        let g = parent(6, 5, 3, 1);
        let opts = SolveOptions::default();
        for (c_l, k1, k2, case) in [
            (8, 3, 3, Expands::First),
            (5, 3, 3, Expands::Second),
            (6, 1, 3, Expands::Second),
        ] {
            let d = decompose(
                &g,
                c_l,
                k1,
                k2,
                Algorithm::Practical,
                &opts,
                &mut Rng::seed(2),
            )
            .unwrap();
            assert_eq!(d.reduced.map(|r| r.0), Some(case));
            assert!(d.residual <= opts.tol, "{c_l} {k1} {k2}: {}", d.residual);
            let (s1, s2) = (std_dev(&d.f1.weight), std_dev(&d.f2.weight));
            assert!((s1 - s2).abs() <= 1e-12 * s1, "{s1} {s2}");
        }
    }

    #[test]
    fn general_fails_cleanly_when_condition7_fails_badly() {
        // C_l = 1 cannot carry a rank-6 map.
        let g = parent(6, 6, 1, 3);
        let r = decompose(
            &g,
            1,
            1,
            1,
            Algorithm::General,
            &SolveOptions {
                max_iter: 3,
                ..SolveOptions::default()
            },
            &mut Rng::seed(1),
        );
        assert!(matches!(r, Err(SolveError::NotConverged { .. })));
    }

    #[test]
    fn auto_falls_back_when_condition7_holds_but_rank_is_short() {
        // C_{l+1} = C_{l-1} = 1, C_l = 3, K_1 = K_2 = 3: (7) holds (27 >= 25), but three
        // Koszul syzygies leave rank <= 24 < 25 equations.
        let mut g = Kernel::zeros(1, 1, 1);
        g.weight[0] = 1.0;
        assert!(condition7(1, 3, 1, 3, 3));
        let opts = SolveOptions {
            max_iter: 5,
            ..SolveOptions::default()
        };
        let general = decompose(&g, 3, 3, 3, Algorithm::General, &opts, &mut Rng::seed(1));
        assert!(matches!(general, Err(SolveError::NotConverged { .. })));
        let auto = decompose(&g, 3, 3, 3, Algorithm::Auto, &opts, &mut Rng::seed(1)).unwrap();
        assert_eq!(auto.algorithm, Algorithm::Practical);
        assert!(auto.residual <= opts.tol);
    }

    #[test]
    fn receptive_field_errors() {
        let g = parent(2, 2, 5, 4);
        let r = decompose(
            &g,
            4,
            1,
            3,
            Algorithm::Auto,
            &SolveOptions::default(),
            &mut Rng::seed(1),
        );
        assert_eq!(r.unwrap_err(), SolveError::Receptive { k: 5, k1: 1, k2: 3 });
    }
}
