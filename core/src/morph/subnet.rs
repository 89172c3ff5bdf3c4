//! Subnet morphing (section 3.5): one layer into a sequential subnet of `P + 1` layers
//! (eq. 19, practical version), and into an `n`-way stacked subnet whose branch outputs are
//! summed (eq. 20), each branch optionally deepened further.
//!
//! The sequential version solves eq. (19) as a chain of eq. (6) solves: `G` into `F_l` and a
//! remainder of kernel `sum_{p>0} K_{l+p} - (P - 1)`, the remainder into `F_{l+1}` and a smaller
//! remainder, and so on; every remainder runs unpadded, so padding transfer (morphism notes,
//! section 2) keeps every stage exact at the borders.

use alloc::vec::Vec;

use super::cost::{self, reserve};
use super::depth::{cast_kernel, deepen, DepthParams};
use super::{finish, linear_kernel, locate, nonzero_fraction, MorphError, MorphReport, NewLayer};
use crate::alloc_try;
use crate::solve::algorithm::{std_dev, Algorithm, SolveOptions};
use crate::{ActKind, Layer, LayerPath, Network, Rng, Scalar};

/// Most layers in one sequential subnet.
pub const MAX_SUBNET_LAYERS: usize = 8;

/// Most branches of a stacked subnet. The child sums the branches' outputs, and every branch
/// holds `G / n` plus noise at `G`'s scale: the sum rounds once per branch, so its error grows
/// like `n` times the scalar's precision. At 64 branches an f32 child stays within about
/// `64 * 2^-24 = 4e-6` of the parent relative to the output's scale, well inside the
/// preservation tolerance of f32 networks (1e-4); far more branches would not preserve the
/// function to f32 precision, and each one costs a full copy of `G` in memory and work.
pub const MAX_BRANCHES: usize = 64;

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
    reserve(cost::sequential(net, path, params)?)?;
    let p = params.widths.len();
    let (mut child, mut stage) = (net.clone(), path.clone());
    let (mut residual, mut solves, mut cond) = (0.0f64, 0, true);
    for s in 0..p {
        let depth = stage_depth(params, s, path)?;
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

/// The checks of a sequential subnet's parameters: `P >= 1` widths, `P + 1` odd kernels.
pub(crate) fn check_sequential(
    path: &LayerPath,
    params: &SequentialParams,
) -> Result<(), MorphError> {
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
    Ok(())
}

/// The depth morph of stage `s` of a sequential subnet (checked by [`check_sequential`]):
/// `F_{l+s}` with `C_{l+s}` and `K_{l+s}`, and a remainder of kernel
/// `sum_{q>s} K_{l+q} - (P - 1 - s)` (eq. 19 as a chain of eq. 6).
pub(crate) fn stage_depth(
    params: &SequentialParams,
    s: usize,
    path: &LayerPath,
) -> Result<DepthParams, MorphError> {
    let p = params.widths.len();
    let sum = params.kernels[s + 1..]
        .iter()
        .try_fold(1usize, |a, k| a.checked_add(*k))
        .ok_or_else(|| MorphError::TooLarge {
            layer: path.clone(),
            what: "sum of the subnet's kernel sizes",
        })?;
    Ok(DepthParams {
        c_l: params.widths[s],
        k1: params.kernels[s],
        // Every kernel is odd, so at least 1: the sum is at least `p - s + 1`.
        k2: sum - (p - s),
        algorithm: params.algorithm,
        activation: params.activation,
        solve: params.solve,
    })
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
/// [`MorphError::InvalidParameter`] if `n < 2` or the nesting gets too deep;
/// [`MorphError::TooManyBranches`] if `n > MAX_BRANCHES`; as [`deepen`] when branches are
/// deepened.
pub fn stacked<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &StackedParams,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    reserve(cost::stacked(net, path, params)?)?;
    let (mut child, mut r) = stack(net, path, params, rng)?;
    if let Some(depth) = &params.branch_depth {
        for b in 0..params.n {
            let bp = branch_path(path, b)?;
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

/// The checks of a stacked subnet's branch count: `2 <= n <= MAX_BRANCHES`.
pub(crate) fn check_branches(path: &LayerPath, n: usize) -> Result<(), MorphError> {
    if n < 2 {
        return Err(MorphError::InvalidParameter {
            layer: path.clone(),
            what: "a stacked subnet needs at least 2 branches",
        });
    }
    if n > MAX_BRANCHES {
        return Err(MorphError::TooManyBranches {
            layer: path.clone(),
            requested: n,
            max: MAX_BRANCHES,
        });
    }
    Ok(())
}

/// The path of the only layer of branch `b` of the block that replaces `path`.
pub(crate) fn branch_path(path: &LayerPath, b: usize) -> Result<LayerPath, MorphError> {
    path.child(b, 0)
        .ok_or_else(|| MorphError::InvalidParameter {
            layer: path.clone(),
            what: "layers nested too deep for a stacked subnet",
        })
}

/// The stacked child before any branch is deepened.
fn stack<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &StackedParams,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, path, false)?;
    let g = cast_kernel::<T, f64>(linear_kernel(&seq[i], path, "subnet")?)?;
    let n = params.n;
    // Random split: zero-mean Gaussian noise per branch, `sum_b N_b = 0`.
    let mut noise = alloc_try::with_capacity(if params.split == Split::Random { n } else { 0 })?;
    if params.split == Split::Random {
        let std = std_dev(&g.weight);
        for _ in 0..n {
            let mut z = alloc_try::filled(g.weight.len(), 0.0)?;
            rng.fill_normals(&mut z, std);
            noise.push(z);
        }
        let mean = (0..g.weight.len())
            .map(|e| noise.iter().map(|z: &Vec<f64>| z[e]).sum::<f64>() / n as f64);
        let mean = alloc_try::collected(g.weight.len(), mean)?;
        for z in &mut noise {
            z.iter_mut().zip(&mean).for_each(|(a, m)| *a -= m);
        }
    }
    let mut branches = alloc_try::with_capacity(n)?;
    for b in 0..n {
        let mut layer = seq[i].clone();
        if let Some(k) = layer.kernel_mut() {
            for (e, (w, g)) in k.weight.iter_mut().zip(&g.weight).enumerate() {
                *w = T::of_f64(g / n as f64 + noise.get(b).map_or(0.0, |z| z[e]));
            }
            if b > 0 {
                k.bias.iter_mut().for_each(|v| *v = T::zero());
            }
        }
        branches.push(alloc::vec![layer]);
    }
    seq[i] = Layer::ParallelSum(branches);
    finish(
        net,
        layers,
        MorphReport::closed_form("stacked", path.clone(), Vec::new(), 1.0),
    )
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::{Kernel, Shape, Tensor};

    #[test]
    fn stacked_subnets_have_at_most_max_branches() {
        let mut rng = Rng::seed(5);
        let mut k = Kernel::<f32>::zeros(3, 2, 1);
        rng.fill_normals(&mut k.weight, 1.0);
        let net = Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap();
        let path = LayerPath::top(0);
        let params = |n| StackedParams {
            n,
            split: Split::Random,
            branch_depth: None,
        };
        // Before, n = 100000 ran for minutes.
        for n in [MAX_BRANCHES + 1, 100_000, usize::MAX] {
            let e = stacked(&net, &path, &params(n), &mut rng)
                .map(|r| r.1)
                .unwrap_err();
            let want = MorphError::TooManyBranches {
                layer: path.clone(),
                requested: n,
                max: MAX_BRANCHES,
            };
            assert_eq!(e, want);
        }
        // The largest stack still preserves an f32 network: one rounding per branch (see
        // `MAX_BRANCHES`).
        let (child, _) = stacked(&net, &path, &params(MAX_BRANCHES), &mut rng).unwrap();
        let x = Tensor::random(4, net.input_shape(), &mut rng);
        let (diff, scale) = child
            .forward(&x)
            .unwrap()
            .max_abs_diff(&net.forward(&x).unwrap());
        let tol = MAX_BRANCHES as f64 * f64::from(f32::EPSILON);
        assert!(diff <= tol * scale.max(1.0), "{diff} vs {scale}");
    }
}
