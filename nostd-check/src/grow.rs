//! On-device growth: train a small MLP in f32, deepen its hidden-to-output layer with
//! Algorithm 2 through a PTanH (eq. 6, section 3.3), solved in f32, widen the new layer
//! (eq. 12-18), keep training, all inside a heap budget. Every phase is checked before it
//! starts ([`netmorph_core::train::step_bytes`], [`MorphOp::cost_in_place`]), run by a core
//! call that refuses to pass the budget ([`train_step_within`],
//! [`MorphOp::apply_in_place`]), and measured by the counting allocator ([`crate::rt`]).
//!
//! The growth schedule is a fixed-capacity [`MorphPlan`] (no heap). The morphs run in place:
//! the child replaces the parent and only the layers from the morphed one on are copied, so
//! the 784-input layer (most of the model) is never held twice.
//!
//! The data are generated, and generated again when needed instead of being stored (a device
//! streams its sensor data; a stored training set would dwarf the model): an 8-dimensional
//! latent `z`, spread over 784 inputs by a fixed pseudo-random map plus noise, labelled by a
//! fixed pseudo-random tanh teacher on `z` (so the classes are not linearly separable).
//! Every weight of the map and the teacher is a hash of its indices, so they take no memory.

use alloc::vec;
use alloc::vec::Vec;

use netmorph_core::morph::depth::DepthParams;
use netmorph_core::morph::plan::{MorphOp, Plan as MorphPlan};
use netmorph_core::solve::algorithm::{Algorithm, SolveOptions};
use netmorph_core::train::{
    step_bytes, train_step_within, velocity_bytes, Schedule, Sgd, SgdConfig, TrainError,
};
use netmorph_core::morph::MorphError;
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
    /// Heap budget (bytes): the target every phase is held to.
    pub budget: usize,
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
    *worst = (*worst).max(check_peak(plan, "evaluate")?);
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

/// Reports the measured peak of a phase; past the budget, a failure.
///
/// With the core's `small-heap` feature, the matrix products of training and the
/// factorisations of the morph solves are the core's own loops, which allocate only what the
/// estimates count (faer's GEMM would add packing buffers sized by the host's caches).
fn check_peak(plan: &Plan, phase: &str) -> Result<usize, Failure> {
    let p = peak();
    if p <= plan.budget {
        out!("  {phase}: peak heap {} KiB, within {} KiB", p / 1024, plan.budget / 1024);
        Ok(p)
    } else {
        out!("  {phase}: peak heap {} KiB, OVER the {} KiB target", p / 1024, plan.budget / 1024);
        Err(Failure::PeakOverBudget)
    }
}

/// The heap the budget leaves beyond what is allocated now.
fn left(plan: &Plan) -> usize {
    plan.budget.saturating_sub(live())
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
        .and_then(|((s, v), b)| s.checked_add(v)?.checked_add(b));
    check_budget(plan.budget, phase, need)?;
    reset_peak();
    let mut sgd = Sgd::new(config);
    let (mut loss, mut stepping) = (0.0, 0.0);
    for _ in 0..plan.steps {
        let (x, labels) = batch(0x7a1, *seen, plan.batch);
        *seen += plan.batch;
        // Timed: the step alone (generating the batch is the simulated sensor's work).
        let budget = left(plan);
        let start = now();
        loss = match train_step_within(net, &mut sgd, &x, &labels, budget) {
            Ok(loss) => loss,
            Err(TrainError::OverBudget { .. }) => return Err(Failure::OverBudget),
            Err(_) => return Err(Failure::Broken),
        };
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
    check_peak(plan, phase)
}

/// Samples in the preservation check, and per forward pass (the probe batch is part of the
/// peak heap).
const PROBES: usize = 16;
const PROBE_BATCH: usize = 4;

/// The network's logits on the probe stream, `PROBES x CLASSES` values (a stack array: the
/// parent's outputs must outlive the parent, which the in-place morph replaces).
fn probe_outputs(net: &Network<f32>) -> Option<[f32; PROBES * CLASSES]> {
    let mut y = [0.0f32; PROBES * CLASSES];
    for b in 0..PROBES / PROBE_BATCH {
        let (x, _) = batch(0x9b0be, b * PROBE_BATCH, PROBE_BATCH);
        let out = net.forward(&x).ok()?;
        y[b * PROBE_BATCH * CLASSES..][..PROBE_BATCH * CLASSES].copy_from_slice(&out.data);
    }
    Some(y)
}

/// Applies `op` to `net` in place, within the budget, and checks the child's outputs on the
/// probes against the parent's.
fn morph(plan: &Plan, net: &mut Network<f32>, op: &MorphOp, phase: &str) -> Result<usize, Failure> {
    let before = probe_outputs(net).ok_or(Failure::Broken)?;
    let cost = op.cost_in_place(net).map_err(|_| Failure::Broken)?;
    check_budget(plan.budget, phase, Some(cost))?;
    reset_peak();
    let mut rng = Rng::seed(7);
    let report = match op.apply_in_place(net, &mut rng, left(plan)) {
        Ok(r) => r,
        Err(MorphError::OverBudget { .. }) => return Err(Failure::OverBudget),
        Err(_) => return Err(Failure::Broken),
    };
    let after = probe_outputs(net).ok_or(Failure::Broken)?;
    let diff = before.iter().zip(&after).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let scale = before.iter().fold(0.0f32, |m, a| m.max(a.abs()));
    let rel = f64::from(diff / scale.max(f32::MIN_POSITIVE));
    out!(
        "  {phase}: {} -> {} parameters, residual {:.1e}, max |child - parent| / max |parent| {:.1e} (f32)",
        report.params_before,
        report.params_after,
        report.residual,
        rel
    );
    let p = check_peak(plan, phase)?;
    if rel.is_finite() && rel <= 1e-4 {
        Ok(p)
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
    let mut worst = check_peak(plan, "build")?;
    let before = evaluate(plan, &net, &mut worst)?;
    let mut seen = 0;
    worst = worst.max(train(plan, &mut net, "train parent", &mut seen)?);
    let parent = evaluate(plan, &net, &mut worst)?;
    out!("  accuracy: {:.1}% untrained, {:.1}% parent", 100.0 * before, 100.0 * parent);

    // The growth schedule: deepen the hidden-to-output layer (solved in f32), then widen the
    // layer it inserts.
    let mut params = DepthParams::new(plan.inserted, 1, 1);
    params.algorithm = Algorithm::Practical;
    params.activation = ActKind::Tanh;
    params.solve = SolveOptions::f32();
    let mut schedule = MorphPlan::<2>::new();
    let ops = [
        MorphOp::Depth {
            layer: LayerPath::top(2),
            params,
        },
        MorphOp::Width {
            layer: LayerPath::top(2),
            width: plan.widened,
        },
    ];
    for op in ops {
        schedule.push(op).map_err(|_| Failure::Broken)?;
    }
    let phases = ["deepen layer 2 (Algorithm 2, PTanH, solved in f32)", "widen the new layer"];
    for (op, phase) in schedule.ops().iter().zip(phases) {
        worst = worst.max(morph(plan, &mut net, op, phase)?);
    }
    let mut child = net;
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
        "  peak heap {} KiB over all phases, within the {} KiB target",
        worst / 1024,
        plan.budget / 1024
    );
    Ok(worst)
}
