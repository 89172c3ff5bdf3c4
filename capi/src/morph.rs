//! Morphs: each makes a new model (the child) and leaves the parent as it was. A child whose
//! outputs moved more than f32 allows is refused ([`check`]), as the command line does.

use std::ffi::{c_char, c_int};

use facade::memory::{forward_bytes, Budget};
use facade::morph::depth::DepthParams;
use facade::morph::plan::MorphOp;
use facade::morph::MorphError;
use facade::ops::{deviation, parse_op, tolerance, Deviation};
use facade::{LayerPath, Network, Rng, Shape, Tensor};

use crate::layer::NmActivation;
use crate::model::{give, model, model_out, NmModel};
use crate::ptr::{self, Out};
use crate::status::{guard, Error, NmStatus, Result};

/// Random probes a morph's child is measured on (the command line's count).
pub const NM_MORPH_PROBES: usize = 256;

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

fn morph_error(e: MorphError) -> Error {
    Error::new(NmStatus::ErrMorph, e)
}

/// Applies `op` to `parent` with `seed`, measures the child on [`NM_MORPH_PROBES`] probes
/// drawn from `seed ^ 0x5eed` (the command line's), and refuses an exact operation's child
/// whose relative deviation exceeds [`tolerance`]`::<f32>()` (1e-4) or is not finite.
fn check(parent: &NmModel, op: &MorphOp, seed: u64) -> Result<NmModel> {
    let cost = op.cost(&parent.net).map_err(morph_error)?;
    Budget::new(None)
        .check(
            &format!("the morph ({} parameters after it)", cost.params_after),
            u64::try_from(cost.workspace_bytes).ok(),
        )
        .map_err(Error::argument)?;
    let (child, _report) = op
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
    Ok(NmModel::new(child, parent.scale))
}

/// Shared body of the morph functions: `op` (made once the pointers are checked) on `m`.
///
/// # Safety
/// As the morph functions.
unsafe fn run(
    function: &str,
    m: *const NmModel,
    child: *mut *mut NmModel,
    seed: u64,
    op: impl FnOnce() -> Result<MorphOp>,
) -> NmStatus {
    guard(function, || {
        // SAFETY (both): the caller's promises.
        let out = unsafe { model_out(child, "child") }?;
        let m = unsafe { model(m, "m") }?;
        give(out, check(m, &op()?, seed)?);
        Ok(())
    })
}

/// Applies one morph written in the command line's operation language (`netmorph ops`
/// lists them: e.g. `"depth@1,cl=32,act=tanh"`, `"width@1,to=24"`, `"kernel@0,k=5"`,
/// `"stack@3,n=2"`) to `m` with random factors drawn from `seed`, and writes the child, a new
/// model, to `*child` (NULL on failure). The parent is not changed. The child's outputs are
/// compared with the parent's on 256 random probes (drawn from `seed`); an exact morph whose
/// child moved more than 1e-4 relative (max |child - parent| / max |parent|) or became
/// non-finite is refused. (`net2wider` with `noise` > 0 is not exact and is not checked.)
///
/// Errors: `NM_STATUS_ERR_NULL`; `NM_STATUS_ERR_ARGUMENT` for an operation string that does
/// not parse (the message shows the valid form) or work too large for memory;
/// `NM_STATUS_ERR_MORPH` if the operation does not apply to that layer or its child moved.
///
/// # Safety
/// `m` is a live model; `op` is a NUL-terminated string; `child` is valid for writing a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn nm_morph(
    m: *const NmModel,
    op: *const c_char,
    seed: u64,
    child: *mut *mut NmModel,
) -> NmStatus {
    // SAFETY: the caller's promises; `op` is read inside the guard.
    unsafe {
        run("nm_morph", m, child, seed, || {
            let text = ptr::string(op, "op")?
                .to_str()
                .map_err(|_| Error::argument("`op` is not UTF-8"))?;
            parse_op(text).map_err(Error::argument)
        })
    }
}

/// Deepens top-level dense or convolution layer `layer` (`G`) into `F_l`, a P-activation
/// `(1 - a) act(x) + a x` with `a = 1` (the identity, so the function is unchanged), and
/// `F_{l+1}`, with `cl` middle channels and kernels `k1`, `k2` (odd; 1 for dense layers):
/// `depth@layer,cl=..,k1=..,k2=..,act=..` (Algorithm 1 when condition (7) holds, else 2).
/// `act` is an `NmActivation` value. Otherwise as `nm_morph`.
///
/// # Safety
/// As `nm_morph` (without `op`).
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: one call, every size named
pub unsafe extern "C" fn nm_deepen(
    m: *const NmModel,
    layer: usize,
    cl: usize,
    k1: usize,
    k2: usize,
    act: c_int,
    seed: u64,
    child: *mut *mut NmModel,
) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        run("nm_deepen", m, child, seed, || {
            let mut params = DepthParams::new(cl, k1, k2);
            params.activation = NmActivation::from_code(act)?;
            Ok(MorphOp::Depth {
                layer: LayerPath::top(layer),
                params,
            })
        })
    }
}

/// Widens the output of top-level dense or convolution layer `layer` to `width` channels
/// (`width@layer,to=width`): the new channels' incoming weights are random, their outgoing
/// weights in the next dense or convolution layer zero, so the function is unchanged.
/// Otherwise as `nm_morph`.
///
/// # Safety
/// As `nm_morph` (without `op`).
#[no_mangle]
pub unsafe extern "C" fn nm_widen(
    m: *const NmModel,
    layer: usize,
    width: usize,
    seed: u64,
    child: *mut *mut NmModel,
) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        run("nm_widen", m, child, seed, || {
            Ok(MorphOp::Width {
                layer: LayerPath::top(layer),
                width,
            })
        })
    }
}

/// Grows the kernel of top-level convolution layer `layer` to `k` (the current size plus an
/// even number) with zero taps and matching padding (`kernel@layer,k=k`). A dense layer has
/// no kernel to grow: `NM_STATUS_ERR_MORPH`. Deterministic; the probes use seed 0. Otherwise as
/// `nm_morph`.
///
/// # Safety
/// As `nm_morph` (without `op`).
#[no_mangle]
pub unsafe extern "C" fn nm_grow_kernel(
    m: *const NmModel,
    layer: usize,
    k: usize,
    child: *mut *mut NmModel,
) -> NmStatus {
    // SAFETY: the caller's promises.
    unsafe {
        run("nm_grow_kernel", m, child, 0, || {
            Ok(MorphOp::Kernel {
                layer: LayerPath::top(layer),
                k,
            })
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
