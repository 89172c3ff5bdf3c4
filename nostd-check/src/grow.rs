//! On-device growth: train a small MLP in f32, deepen its hidden-to-output layer with
//! Algorithm 2 through a PTanH (eq. 6, section 3.3), widen the new layer (eq. 12-18), keep
//! training, all inside a heap budget that is checked before each phase
//! ([`netmorph_core::train::step_bytes`], [`MorphOp::cost`]) and measured by the counting
//! allocator ([`crate::rt`]) during it.
//!
//! The data are generated, and generated again when needed instead of being stored (a device
//! streams its sensor data; a stored training set would dwarf the model): an 8-dimensional
//! latent `z`, spread over 784 inputs by a fixed pseudo-random map plus noise, labelled by a
//! fixed pseudo-random tanh teacher on `z` (so the classes are not linearly separable).
//! Every weight of the map and the teacher is a hash of its indices, so they take no memory.

use alloc::vec;
use alloc::vec::Vec;

use netmorph_core::morph::depth::DepthParams;
use netmorph_core::morph::plan::MorphOp;
use netmorph_core::solve::algorithm::Algorithm;
use netmorph_core::train::{step_bytes, train_step, velocity_bytes, Schedule, Sgd, SgdConfig};
use netmorph_core::{
    ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape, Tensor,
};

use crate::out;
use crate::rt::{live, now, peak, reset_peak};

const INPUTS: usize = 784;
const CLASSES: usize = 10;
const LATENT: usize = 8;
const TEACHER: usize = 16;
/// Test samples, generated in batches of `EVAL_BATCH` from their own seed (small batches: an
/// evaluation's batch is part of the peak heap too).
const TEST: usize = 1000;
const EVAL_BATCH: usize = 4;

/// One growth run: the MLP, the budget it must stay in, and how it trains.
pub struct Plan {
    /// Name in the output.
    pub name: &'static str,
    /// Hidden units of the parent.
    pub hidden: usize,
    /// `C_l` of the layer the depth morph inserts.
    pub inserted: usize,
    /// Width of that layer after the width morph.
    pub widened: usize,
    /// Heap budget (bytes): the target; training phases are held to it.
    pub budget: usize,
    /// The budget the morphs' estimates are held to (at least `budget`: the morphs do not meet
    /// the target yet, see [`check_peak`]).
    pub morph_budget: usize,
    /// Samples per step.
    pub batch: usize,
    /// SGD momentum (0: no velocity kept, one copy of the parameters less).
    pub momentum: f64,
    /// Learning rate.
    pub lr: f64,
    /// Steps before and after the morphs.
    pub steps: usize,
}

/// Why a run failed.
pub enum Failure {
    /// A phase would need more heap than the budget (estimated before it started).
    OverBudget,
    /// A phase used more heap than the budget (measured).
    PeakOverBudget,
    /// A morph did not preserve the function, or a step or morph returned an error.
    Broken,
}

/// SplitMix64 of `x`: the hash every generated weight comes from.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A weight in `[-1, 1)` for indices `(a, b)` of table `table`.
fn weight(table: u64, a: usize, b: usize) -> f64 {
    let h = mix(table ^ mix((a as u64) << 32 | b as u64));
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Sample `i` of the stream `seed`: its inputs (written to `x`) and its label.
fn sample(seed: u64, i: usize, x: &mut [f32]) -> usize {
    let mut rng = Rng::seed(mix(seed ^ mix(i as u64)));
    let mut z = [0.0f64; LATENT];
    z.iter_mut().for_each(|v| *v = rng.normal());
    for (p, v) in x.iter_mut().enumerate() {
        let signal: f64 = (0..LATENT).map(|j| weight(1, p, j) * z[j]).sum();
        *v = (signal + 0.3 * rng.normal()) as f32;
    }
    let mut best = (0, f64::NEG_INFINITY);
    for c in 0..CLASSES {
        let score: f64 = (0..TEACHER)
            .map(|k| {
                let pre: f64 = (0..LATENT).map(|j| weight(2, k, j) * z[j]).sum();
                weight(3, c, k) * libm::tanh(2.0 * pre)
            })
            .sum();
        if score > best.1 {
            best = (c, score);
        }
    }
    best.0
}

/// Samples `first..first + n` of stream `seed` as a batch.
fn batch(seed: u64, first: usize, n: usize) -> (Tensor<f32>, Vec<usize>) {
    let mut x = Tensor::zeros(n, Shape::flat(INPUTS));
    let labels = (0..n)
        .map(|i| sample(seed, first + i, &mut x.data[i * INPUTS..(i + 1) * INPUTS]))
        .collect();
    (x, labels)
}

/// Test accuracy, as a phase whose peak heap is held to the budget.
fn evaluate(plan: &Plan, net: &Network<f32>, worst: &mut usize) -> Result<f64, Failure> {
    reset_peak();
    let acc = accuracy(net).ok_or(Failure::Broken)?;
    *worst = (*worst).max(check_peak(plan, "evaluate", true)?);
    Ok(acc)
}

/// Test accuracy (the test stream, in batches).
fn accuracy(net: &Network<f32>) -> Option<f64> {
    let mut right = 0;
    for b in 0..TEST / EVAL_BATCH {
        let (x, labels) = batch(0x7e57, b * EVAL_BATCH, EVAL_BATCH);
        let y = net.forward(&x).ok()?;
        for (i, label) in labels.iter().enumerate() {
            let row = y.sample(i);
            let guess = (0..CLASSES).fold(0, |m, c| if row[c] > row[m] { c } else { m });
            right += usize::from(guess == *label);
        }
    }
    Some(right as f64 / TEST as f64)
}

fn dense(out: usize, inp: usize, table: u64) -> Layer<f32> {
    let mut k = Kernel::zeros(out, inp, 1);
    let scale = libm::sqrt(3.0 / inp as f64);
    for (i, w) in k.weight.iter_mut().enumerate() {
        *w = (scale * weight(table, i, 0)) as f32;
    }
    Layer::Dense(k)
}

/// Refuses a phase whose estimate `need` (bytes beyond what is live) passes `budget`.
fn check_budget(budget: usize, phase: &str, need: Option<usize>) -> Result<(), Failure> {
    let total = need.and_then(|n| n.checked_add(live()));
    match total {
        Some(t) if t <= budget => {
            out!(
                "  {phase}: needs at most {} KiB of {} KiB (estimated before it starts)",
                t / 1024,
                budget / 1024
            );
            Ok(())
        }
        _ => {
            out!(
                "  {phase}: would need {} KiB, more than the {} KiB budget; refused",
                total.map_or(usize::MAX, |t| t / 1024),
                budget / 1024
            );
            Err(Failure::OverBudget)
        }
    }
}

/// Reports the measured peak of a phase; past the budget, a failure where `enforce`.
///
/// Morph phases are measured but not enforced: the solver's factorisations are faer's, whose
/// GEMM packs its operands into buffers sized by the host's caches (about 1.3 MiB on the
/// x86 hosts here, allocated per product without std), and the cost check's probe requests
/// the whole workspace bound at once (the bound is loose: a 10 x 50 layer's depth morph is
/// bounded by 538 KiB). Training phases run on [`netmorph_core`]'s own allocation-free
/// products (feature `small-heap`) and are held to the budget.
fn check_peak(plan: &Plan, phase: &str, enforce: bool) -> Result<usize, Failure> {
    let p = peak();
    if p <= plan.budget {
        out!("  {phase}: peak heap {} KiB, within {} KiB", p / 1024, plan.budget / 1024);
        return Ok(p);
    }
    out!(
        "  {phase}: peak heap {} KiB, OVER the {} KiB target{}",
        p / 1024,
        plan.budget / 1024,
        if enforce { "" } else { " (measured, not enforced: see grow.rs)" }
    );
    if enforce {
        Err(Failure::PeakOverBudget)
    } else {
        Ok(p)
    }
}

/// `plan.steps` SGD steps on the training stream from sample `*seen` on.
fn train(plan: &Plan, net: &mut Network<f32>, phase: &str, seen: &mut usize) -> Result<usize, Failure> {
    let config = SgdConfig {
        lr: plan.lr,
        momentum: plan.momentum,
        weight_decay: 0.0,
        bias_lr_mult: 1.0,
        a_lr_mult: 10.0,
        schedule: Schedule::Constant,
    };
    let velocity = if plan.momentum > 0.0 {
        velocity_bytes(net)
    } else {
        Some(0)
    };
    let input = plan.batch.checked_mul(INPUTS * 4);
    let need = step_bytes(net, plan.batch)
        .zip(velocity)
        .zip(input)
        .map(|((s, v), b)| s + v + b);
    check_budget(plan.budget, phase, need)?;
    reset_peak();
    let mut sgd = Sgd::new(config);
    let (mut loss, mut stepping) = (0.0, 0.0);
    for _ in 0..plan.steps {
        let (x, labels) = batch(0x7a1, *seen, plan.batch);
        *seen += plan.batch;
        // Timed: the step alone (generating the batch is the simulated sensor's work).
        let start = now();
        loss = train_step(net, &mut sgd, &x, &labels).map_err(|_| Failure::Broken)?;
        stepping += now() - start;
    }
    let per_step = stepping / plan.steps as f64;
    drop(sgd);
    out!(
        "  {phase}: {} steps of {} samples, {:.2} ms/step ({:.0} steps/s), last loss {:.3}",
        plan.steps,
        plan.batch,
        per_step * 1e3,
        1.0 / per_step,
        loss
    );
    check_peak(plan, phase, true)
}

/// Applies `op`, checking its cost against the budget first and the child's outputs after.
fn morph(plan: &Plan, net: &Network<f32>, op: &MorphOp, phase: &str) -> Result<(Network<f32>, usize), Failure> {
    let cost = op.cost(net).map_err(|_| Failure::Broken)?;
    // The probes, and two forward passes' blobs on them.
    let probes = 16 * (2 * INPUTS + 4 * plan.widened.max(plan.hidden)) * 4;
    check_budget(plan.morph_budget, phase, cost.workspace_bytes.checked_add(probes))?;
    reset_peak();
    let mut rng = Rng::seed(7);
    let (child, report) = op.apply(net, &mut rng).map_err(|_| Failure::Broken)?;
    let (x, _) = batch(0x9b0be, 0, 16);
    let (Ok(y0), Ok(y1)) = (net.forward(&x), child.forward(&x)) else {
        return Err(Failure::Broken);
    };
    let (diff, scale) = y1.max_abs_diff(&y0);
    let rel = diff / scale.max(f64::MIN_POSITIVE);
    out!(
        "  {phase}: {} -> {} parameters, residual {:.1e}, max |child - parent| / max |parent| {:.1e} (f32)",
        report.params_before,
        report.params_after,
        report.residual,
        rel
    );
    let p = check_peak(plan, phase, false)?;
    if rel.is_finite() && rel <= 1e-4 {
        Ok((child, p))
    } else {
        Err(Failure::Broken)
    }
}

/// Runs `plan`: train, deepen, widen, train. Returns the peak heap over all phases.
///
/// # Errors
/// [`Failure::OverBudget`] when a phase's estimate passes the budget,
/// [`Failure::PeakOverBudget`] when a training phase's measured peak does, and
/// [`Failure::Broken`] when a step or morph fails or a morph moves the function.
pub fn run(plan: &Plan) -> Result<usize, Failure> {
    out!(
        "{}: {}-{}-{} MLP, f32, batch {}, momentum {}, budget {} KiB",
        plan.name,
        INPUTS,
        plan.hidden,
        CLASSES,
        plan.batch,
        plan.momentum,
        plan.budget / 1024
    );
    reset_peak();
    let layers = vec![
        dense(plan.hidden, INPUTS, 11),
        Layer::Activation(PActivation::plain(ActKind::Relu, plan.hidden)),
        dense(CLASSES, plan.hidden, 12),
    ];
    let mut net = Network::new(Shape::flat(INPUTS), layers).map_err(|_| Failure::Broken)?;
    let mut worst = check_peak(plan, "build", true)?;
    let before = evaluate(plan, &net, &mut worst)?;
    let mut seen = 0;
    worst = worst.max(train(plan, &mut net, "train parent", &mut seen)?);
    let parent = evaluate(plan, &net, &mut worst)?;
    out!("  accuracy: {:.1}% untrained, {:.1}% parent", 100.0 * before, 100.0 * parent);

    let mut params = DepthParams::new(plan.inserted, 1, 1);
    params.algorithm = Algorithm::Practical;
    params.activation = ActKind::Tanh;
    let deepen = MorphOp::Depth {
        layer: LayerPath::top(2),
        params,
    };
    let (deeper, p) = morph(plan, &net, &deepen, "deepen layer 2 (Algorithm 2, PTanH)")?;
    drop(net);
    worst = worst.max(p);
    let widen = MorphOp::Width {
        layer: LayerPath::top(2),
        width: plan.widened,
    };
    let (mut child, p) = morph(plan, &deeper, &widen, "widen the new layer")?;
    drop(deeper);
    worst = worst.max(p);
    let morphed = evaluate(plan, &child, &mut worst)?;
    worst = worst.max(train(plan, &mut child, "train child", &mut seen)?);
    let grown = evaluate(plan, &child, &mut worst)?;
    out!(
        "  accuracy: {:.1}% right after the morphs (parent {:.1}%), {:.1}% after training on",
        100.0 * morphed,
        100.0 * parent,
        100.0 * grown
    );
    // Exact up to rounding: a test sample whose two best logits are within an ulp could flip.
    if (morphed - parent).abs() > 2.0 / TEST as f64 {
        out!("  the morphs changed the test accuracy");
        return Err(Failure::Broken);
    }
    out!(
        "  peak heap {} KiB over all phases: {} the {} KiB target",
        worst / 1024,
        if worst <= plan.budget {
            "within"
        } else {
            "OVER (in the morphs, not enforced)"
        },
        plan.budget / 1024
    );
    Ok(worst)
}
