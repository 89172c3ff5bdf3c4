//! Morphs: each makes a new model (the child) and leaves the parent as it was. A child whose
//! outputs moved more than f32 allows is refused ([`check`]), as the command line does; what
//! the morph did comes back in an [`NmMorphReport`].

use std::ffi::{c_char, c_int};

use facade::memory::{forward_bytes, Budget};
use facade::morph::depth::DepthParams;
use facade::morph::plan::MorphOp;
use facade::morph::{MorphError, MorphReport};
use facade::ops::{deviation, parse_op, tolerance, Deviation};
use facade::solve::algorithm::Algorithm;
use facade::{LayerPath, Network, Rng, Shape, Tensor};

use crate::layer::NmActivation;
use crate::model::{give, model, model_out, NmModel};
use crate::path::{layer_at, layer_path};
use crate::ptr::{self, Out};
use crate::status::{guard, Error, NmStatus, Result};

/// Random probes a morph's child is measured on (the command line's count).
pub const NM_MORPH_PROBES: usize = 256;

/// The decomposition algorithm a morph ran (section 3.2 of the paper).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NmAlgorithm {
    /// None: a closed-form morph (width, kernel, a stacked subnet without deepening, ...).
    None = 0,
    /// Algorithm 1, general network morphism (condition (7) holds; every parameter filled).
    General = 1,
    /// Algorithm 2, practical network morphism (one factor's kernel shrunk, then zero-padded).
    Practical = 2,
    /// Algorithm 1 or 2, chosen per solve: what a sequential subnet (`subnet@`) made with the
    /// default `alg=auto` reports, as its stages may differ.
    Auto = 3,
}

impl NmAlgorithm {
    fn of(algorithm: Option<Algorithm>) -> Self {
        match algorithm {
            None => Self::None,
            Some(Algorithm::General) => Self::General,
            Some(Algorithm::Practical) => Self::Practical,
            Some(Algorithm::Auto) => Self::Auto,
        }
    }
}

/// What a morph did, written to the morph functions' optional `report` on success. Plain
/// data: nothing in it is owned or needs freeing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NmMorphReport {
    /// Learnable parameters of the parent (weights, biases, P-activation `a`).
    pub params_before: usize,
    /// Learnable parameters of the child.
    pub params_after: usize,
    /// Fraction of non-zero values among the weights of the layers the morph made or
    /// reshaped (1 when it made none with weights).
    pub nonzero_fraction: f64,
    /// Relative residual of the decomposition, `max |F_{l+1} (*) F_l - G| / max |G|` in the solve's precision (f64 unless `solve=f32`)
    /// (the largest over the solves; 0 for closed-form morphs).
    pub residual: f64,
    /// Deconvolution solves run (0 for closed-form morphs).
    pub solves: usize,
    /// The algorithm that decomposed `G` (`NM_ALGORITHM_NONE` for closed-form morphs).
    pub algorithm: NmAlgorithm,
    /// Whether condition (7) held for every solve: 1 yes, 0 no, -1 not applicable (no
    /// decomposition ran).
    pub condition7: c_int,
    /// Layers the morph made or reshaped (3 for a deepened layer: `F_l`, the P-activation and
    /// `F_{l+1}`).
    pub new_layers: usize,
    /// `max |child - parent| / max |parent|` over the child's and the parent's outputs on the
    /// `NM_MORPH_PROBES` probes the morph was checked on (at most 1e-4 for an exact morph;
    /// measured but not bounded for `net2wider` with noise).
    pub max_rel_deviation: f64,
}

impl NmMorphReport {
    fn of(r: &MorphReport, max_rel_deviation: f64) -> Self {
        Self {
            params_before: r.params_before,
            params_after: r.params_after,
            nonzero_fraction: r.nonzero_fraction,
            residual: r.residual,
            solves: r.solves,
            algorithm: NmAlgorithm::of(r.algorithm),
            condition7: r.condition7.map_or(-1, c_int::from),
            new_layers: r.new_layers.len(),
            max_rel_deviation,
        }
    }
}

/// `n` standard normal probes for `net` drawn from `seed`, once they fit in memory with the
/// forward passes of `nets` over them.
fn probes(nets: &[&Network<f32>], n: usize, seed: u64) -> Result<Tensor<f32>> {
    let budget = Budget::new(None);
    for net in nets {
        budget
            .check("the forward pass on the probes", forward_bytes(net, n))
            .map_err(Error::argument)?;
    }
    Ok(Tensor::random(
        n,
        nets[0].input_shape(),
        &mut Rng::seed(seed),
    ))
}

/// How far `child`'s outputs are from `parent`'s on `x`.
fn measure(parent: &Network<f32>, child: &Network<f32>, x: &Tensor<f32>) -> Result<Deviation> {
    let reference = parent.forward(x).map_err(Error::argument)?;
    let moved = child.forward(x).map_err(Error::argument)?;
    Ok(deviation(&moved.data, &reference.data))
}

/// `c x h x w`.
fn dims(s: Shape) -> String {
    format!("{}x{}x{}", s.c, s.h, s.w)
}

/// A morph's error as the status C sees: a layer that does not exist is a bad argument
/// ([`NmStatus::ErrArgument`]), anything else [`NmStatus::ErrMorph`].
fn morph_error(e: MorphError) -> Error {
    match e {
        MorphError::NoSuchLayer { .. } => Error::argument(e),
        _ => Error::new(NmStatus::ErrMorph, e),
    }
}

/// Applies `op` to `parent` with `seed`, measures the child on [`NM_MORPH_PROBES`] probes
/// drawn from `seed ^ 0x5eed` (the command line's), and refuses an exact operation's child
/// whose relative deviation exceeds [`tolerance`]`::<f32>()` (1e-4) or is not finite.
fn check(parent: &NmModel, op: &MorphOp, seed: u64) -> Result<(NmModel, NmMorphReport)> {
    let cost = op.cost(&parent.net).map_err(morph_error)?;
    Budget::new(None)
        .check(
            &format!("the morph ({} parameters after it)", cost.params_after),
            u64::try_from(cost.workspace_bytes).ok(),
        )
        .map_err(Error::argument)?;
    let (child, report) = op
        .apply(&parent.net, &mut Rng::seed(seed))
        .map_err(morph_error)?;
    let x = probes(&[&parent.net, &child], NM_MORPH_PROBES, seed ^ 0x5eed)?;
    let dev = measure(&parent.net, &child, &x)?;
    let tol = tolerance::<f32>();
    if op.is_exact() && !(dev.rel.is_finite() && dev.rel <= tol) {
        return Err(Error::new(
            NmStatus::ErrMorph,
            format_args!(
                "the child's outputs moved by {:.2e} relative to the parent's on {NM_MORPH_PROBES} random probes, more than the {tol:.0e} f32 allows; no child was made (try alg=practical, another seed, or check the parent for huge weights)",
                dev.rel
            ),
        ));
    }
    let report = NmMorphReport::of(&report, dev.rel);
    Ok((NmModel::new(child, parent.scale), report))
}

/// Shared body of the morph functions: `op` (made from the parent's network once the
/// pointers are checked) on `m`; the child goes to `*child`, its report to `*report` unless
/// that is NULL.
///
/// # Safety
/// As the morph functions.
unsafe fn run(
    function: &str,
    m: *const NmModel,
    child: *mut *mut NmModel,
    report: *mut NmMorphReport,
    seed: u64,
    op: impl FnOnce(&Network<f32>) -> Result<MorphOp>,
) -> NmStatus {
    guard(function, || {
        // SAFETY (all): the caller's promises.
        let out = unsafe { model_out(child, "child") }?;
        let m = unsafe { model(m, "m") }?;
        let report_out = unsafe { Out::optional(report) };
        let (made, report) = check(m, &op(&m.net)?, seed)?;
        give(out, made);
        if let Some(report_out) = report_out {
            report_out.set(report);
        }
        Ok(())
    })
}

/// The caller's path (`path_len` indices) of a layer of `net` that exists.
///
/// # Safety
/// `path` is NULL or points to `path_len` values.
unsafe fn existing(net: &Network<f32>, path: *const usize, path_len: usize) -> Result<LayerPath> {
    // SAFETY: the caller's promise.
    let path = unsafe { layer_path(path, path_len) }?;
    layer_at(net, &path)?;
    Ok(path)
}

/// Applies one morph written in the command line's operation language (`netmorph ops`
/// lists them: e.g. `"depth@1,cl=32,act=tanh"`, `"width@1,to=24"`, `"kernel@0,k=5"`,
/// `"stack@3,n=2"`; dotted paths such as `3.1.0` reach into parallel blocks) to `m` with
/// random factors drawn from `seed`, and writes the child, a new model, to `*child` (NULL on
/// failure). The parent is not changed. The child's outputs are compared with the parent's on
/// 256 random probes (drawn from `seed`); an exact morph whose child moved more than 1e-4
/// relative (max |child - parent| / max |parent|) or became non-finite is refused.
/// (`net2wider` with `noise` > 0 is not exact and is not checked.) On success, writes what the
/// morph did to `*report` unless `report` is NULL.
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` for an operation string that does
/// not parse (the message shows the valid form), a layer that does not exist, or work too
/// large for memory; `NM_STATUS_ERR_MORPH` if the operation does not apply to that layer or
/// its child moved.
///
/// # Safety
/// `m` is a live model; `op` is a NUL-terminated string; `child` is valid for writing a
/// pointer; `report` is NULL or valid for writing one `NmMorphReport`.
#[no_mangle]
pub unsafe extern "C" fn nm_morph(
    m: *const NmModel,
    op: *const c_char,
    seed: u64,
    child: *mut *mut NmModel,
    report: *mut NmMorphReport,
) -> NmStatus {
    // SAFETY: the caller's promises; `op` is read inside the guard.
    unsafe {
        run("nm_morph", m, child, report, seed, |_| {
            let text = ptr::string(op, "op")?
                .to_str()
                .map_err(|_| Error::argument("`op` is not UTF-8"))?;
            parse_op(text).map_err(Error::argument)
        })
    }
}

/// Deepens the dense or convolution layer at `path` (`G`; `path_len` indices, as
/// `nm_model_layer`'s) into `F_l`, a P-activation `(1 - a) act(x) + a x` with `a = 1` (the
/// identity, so the function is unchanged), and `F_{l+1}`, with `cl` middle channels and
/// kernels `k1`, `k2` (odd; 1 for dense layers): `depth@path,cl=..,k1=..,k2=..,act=..`
/// (Algorithm 1 when condition (7) holds, else 2). `act` is an `NmActivation` value.
/// Otherwise as `nm_morph`; a path that does not exist is `NM_STATUS_ERR_ARGUMENT`, naming it.
///
/// # Safety
/// As `nm_morph` (without `op`); `path` points to `path_len` values.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: one call, every size named
pub unsafe extern "C" fn nm_deepen(
    m: *const NmModel,
    path: *const usize,
    path_len: usize,
    cl: usize,
    k1: usize,
    k2: usize,
    act: c_int,
    seed: u64,
    child: *mut *mut NmModel,
    report: *mut NmMorphReport,
) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        run("nm_deepen", m, child, report, seed, |net| {
            let layer = existing(net, path, path_len)?;
            let mut params = DepthParams::new(cl, k1, k2);
            params.activation = NmActivation::from_code(act)?;
            Ok(MorphOp::Depth { layer, params })
        })
    }
}

/// Widens the output of the dense or convolution layer at `path` to `width` channels
/// (`width@path,to=width`): the new channels' incoming weights are random, their outgoing
/// weights in the next dense or convolution layer (of the same sequence) zero, so the function
/// is unchanged. Otherwise as `nm_deepen`.
///
/// # Safety
/// As `nm_deepen`.
#[no_mangle]
pub unsafe extern "C" fn nm_widen(
    m: *const NmModel,
    path: *const usize,
    path_len: usize,
    width: usize,
    seed: u64,
    child: *mut *mut NmModel,
    report: *mut NmMorphReport,
) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        run("nm_widen", m, child, report, seed, |net| {
            let layer = existing(net, path, path_len)?;
            Ok(MorphOp::Width { layer, width })
        })
    }
}

/// Grows the kernel of the convolution layer at `path` to `k` (the current size plus an even
/// number) with zero taps and matching padding (`kernel@path,k=k`). A dense layer has no
/// kernel to grow: `NM_STATUS_ERR_MORPH`. Deterministic; the probes use seed 0. Otherwise as
/// `nm_deepen`.
///
/// # Safety
/// As `nm_deepen`.
#[no_mangle]
pub unsafe extern "C" fn nm_grow_kernel(
    m: *const NmModel,
    path: *const usize,
    path_len: usize,
    k: usize,
    child: *mut *mut NmModel,
    report: *mut NmMorphReport,
) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        run("nm_grow_kernel", m, child, report, 0, |net| {
            let layer = existing(net, path, path_len)?;
            Ok(MorphOp::Kernel { layer, k })
        })
    }
}

/// Measures how far `child`'s outputs are from `parent`'s on `probes` standard normal inputs
/// drawn from `seed`, and writes `max |child - parent| / max |parent|` to
/// `*max_rel_deviation` (infinity where an output is not finite where the parent's is).
/// Any two models with the same input and output sizes can be compared.
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` if `probes` is 0, the models' input or
/// output shapes differ, or the probes would not fit in memory.
///
/// # Safety
/// `parent` and `child` are live models; `max_rel_deviation` is valid for writing one
/// double.
#[no_mangle]
pub unsafe extern "C" fn nm_check_preservation(
    parent: *const NmModel,
    child: *const NmModel,
    probes: usize,
    seed: u64,
    max_rel_deviation: *mut f64,
) -> NmStatus {
    guard("nm_check_preservation", || {
        // SAFETY (all): the caller's promises.
        let parent = unsafe { model(parent, "parent") }?;
        let child = unsafe { model(child, "child") }?;
        let out = unsafe { Out::new(max_rel_deviation, "max_rel_deviation") }?;
        let (p, c) = (&parent.net, &child.net);
        if p.input_shape() != c.input_shape() || p.output_shape() != c.output_shape() {
            return Err(Error::argument(format_args!(
                "the models differ in shape: inputs {} and {}, outputs {} and {}; compare a parent with its own child",
                dims(p.input_shape()),
                dims(c.input_shape()),
                dims(p.output_shape()),
                dims(c.output_shape())
            )));
        }
        if probes == 0 {
            return Err(Error::argument("probes is 0; pass at least 1"));
        }
        let x = self::probes(&[p, c], probes, seed)?;
        out.set(measure(p, c, &x)?.rel);
        Ok(())
    })
}
