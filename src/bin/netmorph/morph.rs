//! `morph`: apply operations to a saved model, measure how far the outputs moved, and write
//! the child only if they did not move further than its precision allows.

use std::path::{Path, PathBuf};

use netmorph::memory::{forward_bytes, Budget};
use netmorph::model_file::{load_scaled, precision, save_scaled};
use netmorph::morph::plan::MorphOp;
use netmorph::morph::MorphReport;
use netmorph::ops::{deviation, parse_op, tolerance, Deviation};
use netmorph::{Network, Rng, Scalar, Tensor};

use crate::args::{data_files, load_data, with_precision};
use crate::error::{CliError, Context, Result};

/// The `morph` command's arguments.
pub struct MorphArgs {
    pub model: PathBuf,
    pub ops: Vec<String>,
    pub out: PathBuf,
    pub seed: u64,
    pub report: Option<PathBuf>,
    pub data: Option<String>,
    pub allow_deviation: bool,
}

/// `netmorph morph`, in the precision the model file stores.
pub fn run(args: &MorphArgs, budget: Budget) -> Result<()> {
    with_precision!(precision(&args.model)?, morph_as(args, budget))
}

fn morph_as<T: Scalar>(args: &MorphArgs, budget: Budget) -> Result<()> {
    let ops = args
        .ops
        .iter()
        .map(|o| parse_op(o))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let outputs: Vec<&Path> = [Some(args.out.as_path()), args.report.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let data_files = args.data.as_deref().map(data_files).unwrap_or_default();
    let mut inputs = vec![(args.model.as_path(), "model")];
    inputs.extend(data_files.iter().map(|f| (f.as_path(), "data file")));
    netmorph::atomic::check_outputs(&outputs, &inputs)?;
    let (parent, scale) = load_scaled::<T>(&args.model)?;
    // The probes and the parent's outputs on them, before either is allocated.
    let probe_count = if args.data.is_some() { 1000 } else { 256 };
    budget.check(
        "the parent's forward pass on the probes",
        forward_bytes(&parent, probe_count),
    )?;
    let probes: Tensor<T> = match &args.data {
        Some(name) => netmorph::fit::cast(&load_data(name, (1, 0), scale, budget)?.1.head(1000).x),
        None => Tensor::random(
            256,
            parent.input_shape(),
            &mut Rng::seed(args.seed ^ 0x5eed),
        ),
    };
    if probes.shape != parent.input_shape() {
        let (p, m) = (probes.shape, parent.input_shape());
        return Err(CliError::Usage(format!(
            "the data's images are {}x{}x{} but the model takes {}x{}x{}",
            p.c, p.h, p.w, m.c, m.h, m.w
        )));
    }

    let reference = parent.forward(&probes)?;
    let mut rng = Rng::seed(args.seed);
    let mut child = parent;
    let mut reports = Vec::new();
    for (op, text) in ops.iter().zip(&args.ops) {
        let (next, r, dev) = apply_checked(op, &child, (&probes, &reference), &mut rng, budget)
            .context(|| format!("operation `{text}`"))?;
        println!(
            "{:<10} layer {:<6} params {:>8} -> {:>8}  new weights {:>5.1}% non-zero  max |child - parent| {:.2e} ({:.2e} relative)",
            r.op,
            r.layer.to_string(),
            r.params_before,
            r.params_after,
            100.0 * r.nonzero_fraction,
            dev.abs,
            dev.rel
        );
        if !args.allow_deviation {
            check_deviation::<T>(op, dev).context(|| format!("operation `{text}`"))?;
        }
        reports.push(report_json(&r, dev));
        child = next;
    }
    save_scaled(&child, scale, &args.out)?;
    if let Some(path) = &args.report {
        netmorph::atomic::write(path, format!("[{}]\n", reports.join(",")).as_bytes())?;
    }
    println!(
        "wrote {} ({} parameters, {})",
        args.out.display(),
        child.param_count(),
        T::NAME
    );
    Ok(())
}

/// Applies `op` to `net` once its cost (the heap the morph holds at once: the child and the
/// solve's workspace) fits `budget`, then measures the child on `probes` against the parent's
/// outputs `reference`.
///
/// # Errors
/// [`CliError::Memory`] before anything is allocated, or the morph's or forward pass's error.
pub fn apply_checked<T: Scalar>(
    op: &MorphOp,
    net: &Network<T>,
    (probes, reference): (&Tensor<T>, &Tensor<T>),
    rng: &mut Rng,
    budget: Budget,
) -> Result<(Network<T>, MorphReport, Deviation)> {
    let cost = op.cost(net)?;
    budget.check(
        &format!("the morph ({} parameters after it)", cost.params_after),
        u64::try_from(cost.workspace_bytes).ok(),
    )?;
    let (child, report) = op.apply(net, rng)?;
    budget.check(
        "the child's forward pass on the probes",
        forward_bytes(&child, probes.n),
    )?;
    let dev = deviation(&child.forward(probes)?.data, &reference.data);
    Ok((child, report, dev))
}

/// Refuses a child of the exact operation `op` whose outputs moved more than
/// its precision's [`tolerance`] or became non-finite.
///
/// # Errors
/// [`CliError::Deviation`].
pub fn check_deviation<T: Scalar>(op: &MorphOp, dev: Deviation) -> Result<()> {
    let within = dev.rel.is_finite() && dev.rel <= tolerance::<T>();
    if op.is_exact() && !within {
        return Err(CliError::Deviation {
            relative: dev.rel,
            tolerance: tolerance::<T>(),
        });
    }
    Ok(())
}

fn report_json(r: &MorphReport, dev: Deviation) -> String {
    let layers: Vec<String> = r
        .new_layers
        .iter()
        .map(|l| {
            format!(
                "{{\"path\":\"{}\",\"type\":\"{}\",\"out\":{},\"in\":{},\"kernel\":{}}}",
                l.path, l.kind, l.out, l.inp, l.k
            )
        })
        .collect();
    format!(
        "{{\"op\":\"{}\",\"layer\":\"{}\",\"params_before\":{},\"params_after\":{},\"nonzero_fraction\":{},\"algorithm\":{},\"condition7\":{},\"residual\":{},\"max_abs_deviation\":{},\"max_rel_deviation\":{},\"new_layers\":[{}]}}",
        r.op,
        r.layer,
        r.params_before,
        r.params_after,
        r.nonzero_fraction,
        r.algorithm.map_or("null".to_string(), |a| format!("\"{}\"", a.name())),
        r.condition7.map_or("null".to_string(), |c| c.to_string()),
        json_number(r.residual),
        json_number(dev.abs),
        json_number(dev.rel),
        layers.join(",")
    )
}

/// `v` as JSON: a number, or `null` where JSON has none (NaN, infinities).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        "null".into()
    }
}
