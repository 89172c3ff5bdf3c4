//! Subnet morphing (section 3.5): one layer into a sequential subnet of `P + 1` layers
//! (eq. 19, practical version), and into an `n`-way stacked subnet whose branch outputs are
//! summed (eq. 20), each branch optionally deepened further.
//!
//! The sequential version solves eq. (19) as a chain of eq. (6) solves: `G` into `F_l` and a
//! remainder of kernel `sum_{p>0} K_{l+p} - (P - 1)`, the remainder into `F_{l+1}` and a smaller
//! remainder, and so on; every remainder runs unpadded, so padding transfer (morphism notes,
//! section 2) keeps every stage exact at the borders.

use alloc::vec::Vec;

use super::depth::{deepen, DepthParams};
use super::{finish, linear_kernel, locate, nonzero_fraction, MorphError, MorphReport, NewLayer};
use crate::solve::algorithm::{std_dev, Algorithm, SolveOptions};
use crate::{ActKind, Layer, LayerPath, Network, Rng, Scalar};

/// Most layers in one sequential subnet.
pub const MAX_SUBNET_LAYERS: usize = 8;

/// Parameters of a sequential subnet morph (eq. 19).
#[derive(Clone, Debug, PartialEq)]
pub struct SequentialParams {
    /// `C_l, ..., C_{l+P-1}`: widths of the `P` new blobs.
    pub widths: heapless::Vec<usize, { MAX_SUBNET_LAYERS - 1 }>,
    /// `K_l, ..., K_{l+P}`: kernel sizes of the `P + 1` layers (odd; all 1 for dense).
    pub kernels: heapless::Vec<usize, MAX_SUBNET_LAYERS>,
    /// Deconvolution algorithm for each stage.
    pub algorithm: Algorithm,
    /// Base function of the inserted P-activations.
    pub activation: ActKind,
    /// Solver options.
    pub solve: SolveOptions,
}

/// Morphs the layer at `path` into `P + 1` sequential layers (eq. 19).
///
/// # Errors
/// [`MorphError::InvalidParameter`] unless `kernels.len() == widths.len() + 1 >= 2`; otherwise
/// as [`deepen`] for each stage.
pub fn sequential<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &SequentialParams,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    let p = params.widths.len();
    if p == 0 || params.kernels.len() != p + 1 {
        return Err(MorphError::InvalidParameter {
            layer: path.clone(),
            what: "a sequential subnet needs P >= 1 widths and P + 1 kernel sizes",
        });
    }
    if let Some(&kernel) = params.kernels.iter().find(|k| *k % 2 == 0) {
        return Err(MorphError::KernelNotOdd {
            layer: path.clone(),
            kernel,
        });
    }
    let (mut child, mut stage) = (net.clone(), path.clone());
    let (mut residual, mut solves, mut cond) = (0.0f64, 0, true);
    for s in 0..p {
        let rest: usize = params.kernels[s + 1..].iter().sum::<usize>() + 1 - (p - s);
        let depth = DepthParams {
            c_l: params.widths[s],
            k1: params.kernels[s],
            k2: rest,
            algorithm: params.algorithm,
            activation: params.activation,
            solve: params.solve,
        };
        let (next, r) = deepen(&child, &stage, &depth, rng)?;
        child = next;
        residual = residual.max(r.residual);
        solves += r.solves;
        cond &= r.condition7.unwrap_or(true);
        stage = stage.with_last(stage.last() + 2);
    }
    let mut report = subnet_report("sequential", &child, path, 2 * p + 1);
    report.algorithm = Some(params.algorithm);
    report.condition7 = Some(cond);
    report.residual = residual;
    report.solves = solves;
    finish(net, child.into_layers(), report)
}

fn subnet_report<T: Scalar>(
    op: &'static str,
    child: &Network<T>,
    path: &LayerPath,
    count: usize,
) -> MorphReport {
    let mut weights: Vec<&[T]> = Vec::new();
    let mut new_layers = Vec::new();
    for j in 0..count {
        let p = path.with_last(path.last() + j);
        if let Some(l) = child.get(&p) {
            collect_weights(l, &mut weights);
            let (out, inp, k) = l.kernel().map_or((0, 0, 1), |k| (k.out, k.inp, k.k));
            new_layers.push(NewLayer {
                path: p,
                kind: l.name(),
                out,
                inp,
                k,
            });
        }
    }
    MorphReport::closed_form(op, path.clone(), new_layers, nonzero_fraction(&weights))
}

fn collect_weights<'a, T: Scalar>(l: &'a Layer<T>, out: &mut Vec<&'a [T]>) {
    match l {
        Layer::ParallelSum(bs) => bs.iter().flatten().for_each(|l| collect_weights(l, out)),
        _ => out.extend(l.kernel().map(|k| k.weight.as_slice())),
    }
}

/// How `G` is split across branches (eq. 20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `G_i = G / n`.
    Equal,
    /// `G_i = G / n + N_i` with Gaussian `N_i` at `G`'s standard deviation and `sum N_i = 0`.
    Random,
}

/// Parameters of a stacked subnet morph (eq. 20).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StackedParams {
    /// Number of branches, at least 2.
    pub n: usize,
    /// How `G` is split.
    pub split: Split,
    /// Deepen every branch with these parameters (sequential morph of each path).
    pub branch_depth: Option<DepthParams>,
}

/// Replaces the layer at `path` by a [`Layer::ParallelSum`] of `n` branches whose filters sum
/// to `G` (eq. 20); `G`'s bias goes to the first branch.
///
/// # Errors
/// [`MorphError::InvalidParameter`] if `n < 2` or the nesting gets too deep; as [`deepen`]
/// when branches are deepened.
pub fn stacked<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &StackedParams,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    let invalid = |what| MorphError::InvalidParameter {
        layer: path.clone(),
        what,
    };
    if params.n < 2 {
        return Err(invalid("a stacked subnet needs at least 2 branches"));
    }
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, path, false)?;
    let g = linear_kernel(seq, i, path, "subnet")?.cast::<f64>();
    let n = params.n;
    let std = std_dev(&g.weight);
    let noise: Vec<Vec<f64>> = match params.split {
        Split::Equal => alloc::vec![alloc::vec![0.0; g.weight.len()]; n],
        Split::Random => {
            let z: Vec<Vec<f64>> = (0..n).map(|_| rng.normals(g.weight.len(), std)).collect();
            let mean: Vec<f64> = (0..g.weight.len())
                .map(|e| z.iter().map(|zi| zi[e]).sum::<f64>() / n as f64)
                .collect();
            z.into_iter()
                .map(|zi| zi.iter().zip(&mean).map(|(a, m)| a - m).collect())
                .collect()
        }
    };
    let branches = noise
        .iter()
        .enumerate()
        .map(|(b, nb)| {
            let mut layer = seq[i].clone();
            if let Some(k) = layer.kernel_mut() {
                for ((w, g), e) in k.weight.iter_mut().zip(&g.weight).zip(nb) {
                    *w = T::of_f64(g / n as f64 + e);
                }
                if b > 0 {
                    k.bias.iter_mut().for_each(|v| *v = T::zero());
                }
            }
            alloc::vec![layer]
        })
        .collect();
    seq[i] = Layer::ParallelSum(branches);
    let (mut child, mut r) = finish(
        net,
        layers,
        MorphReport::closed_form("stacked", path.clone(), Vec::new(), 1.0),
    )?;
    if let Some(depth) = &params.branch_depth {
        for b in 0..n {
            let bp = path
                .child(b, 0)
                .ok_or_else(|| invalid("layers nested too deep for a stacked subnet"))?;
            let (next, br) = deepen(&child, &bp, depth, rng)?;
            child = next;
            r.residual = r.residual.max(br.residual);
            r.solves += br.solves;
            r.algorithm = br.algorithm;
            r.condition7 = Some(r.condition7.unwrap_or(true) && br.condition7.unwrap_or(true));
        }
    }
    let summary = subnet_report("stacked", &child, path, 1);
    r.new_layers = summary.new_layers;
    r.nonzero_fraction = summary.nonzero_fraction;
    finish(net, child.into_layers(), r)
}
