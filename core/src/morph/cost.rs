//! [`MorphOp::cost`]: what a morph will cost, computed from the sizes alone before it runs (as
//! faer's `*_scratch` functions do for its factorisations). Nothing proportional to the
//! requested sizes is allocated.
//!
//! `params_after` is the child's exact parameter count. `workspace_bytes` bounds the heap the
//! morph holds at once while it runs, the child it returns included and the parent excluded.
//! It adds up, with checked arithmetic:
//!
//! - the copy of the parent's layers that the morph edits into the child (a slot per layer, a
//!   vector per branch, every parameter) and the growth of the edited sequence;
//! - the new or rewritten kernels and activations and their temporaries: the `f64` copy of
//!   `G` the solvers start from, a width morph's channels and shuffle, a stacked subnet's
//!   branch noise;
//! - for depth and subnet morphs, the solver's workspace: the bound on
//!   [`decompose`](crate::solve::algorithm::decompose) derived from the matrices Algorithms 1
//!   and 2 build (the deconvolution matrix of eq. 6 or its Kronecker form, the Gram or SVD
//!   factorisation of the least-squares solve, the compositions that measure the residual);
//! - for chains of depth morphs (sequential subnets, eq. 19; deepened stacked branches,
//!   eq. 20), the largest stage: the child held between stages and the stage's own copy;
//! - [`BOOKKEEPING`] bytes for reports and paths.
//!
//! Not counted: the allocator's own per-block overhead and the packing buffers of faer's
//! matrix products (sized by the CPU's caches and kept per thread from its first product).
//! A test allocator checks the bound against what each kind of morph allocates.
//!
//! Every morph function first checks its cost (returning the same errors as `cost`), then
//! asks the allocator once for `workspace_bytes` and gives it back, so that a request the
//! machine cannot serve fails with [`MorphError::Alloc`] before any work.

use alloc::vec::Vec;
use core::mem::size_of;

use super::baseline::{check_noise, next_activation};
use super::depth::{check_depth, DepthParams, InsertParams};
use super::kernel::{check_growth, largest_useful_kernel};
use super::plan::MorphOp;
use super::subnet::{
    branch_path, check_branches, check_sequential, stage_depth, SequentialParams, Split,
    StackedParams,
};
use super::width::{kernels, widening, Channel};
use super::{linear_kernel, locate_ref, MorphError};
use crate::alloc_try::{self, Count};
use crate::solve::algorithm::{workspace_bytes, Precision};
use crate::solve::kernel_values;
use crate::{Layer, LayerPath, Network, Scalar};

/// Bytes every morph may spend on reports, paths and other small vectors.
pub const BOOKKEEPING: usize = 16 << 10;

/// What a morph costs, known before it runs ([`MorphOp::cost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MorphCost {
    /// The parent's parameter count.
    pub params_before: usize,
    /// The child's exact parameter count.
    pub params_after: usize,
    /// An upper bound of the heap the morph holds at once, in bytes: the child it builds and
    /// every temporary, the solver's workspace included (see the [module
    /// documentation](self) for what is counted).
    pub workspace_bytes: usize,
}

impl MorphOp {
    /// What [`MorphOp::apply`] will cost on `net`: the child's parameter count and a bound of
    /// the memory it needs, from the sizes alone (nothing proportional to them is allocated,
    /// and the only work proportional to the parent is a scan of the affected kernels for
    /// NaN). A caller compares `workspace_bytes` with the memory it can spare before it
    /// commits to a morph.
    ///
    /// # Errors
    /// The errors `apply` would return for the request before any solve (a missing layer,
    /// an invalid parameter, a kernel past the input, ...); [`MorphError::TooLarge`] if the
    /// child's parameter count or the workspace overflows `usize`.
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::morph::plan::MorphOp;
    /// use netmorph_core::{Kernel, Layer, LayerPath, Network, Rng, Shape};
    /// let layers = vec![Layer::Dense(Kernel::<f32>::zeros(3, 2, 1)), Layer::Dense(Kernel::zeros(1, 3, 1))];
    /// let net = Network::new(Shape::flat(2), layers).unwrap();
    /// let op = MorphOp::Width { layer: LayerPath::top(0), width: 5 };
    /// let cost = op.cost(&net).unwrap();
    /// let (child, _) = op.apply(&net, &mut Rng::seed(1)).unwrap();
    /// assert_eq!(cost.params_after, child.param_count());
    /// assert!(cost.workspace_bytes > 0);
    /// let huge = MorphOp::Width { layer: LayerPath::top(0), width: 1 << 62 };
    /// assert!(huge.cost(&net).is_err());
    /// ```
    pub fn cost<T: Scalar>(&self, net: &Network<T>) -> Result<MorphCost, MorphError> {
        match self {
            Self::Depth { layer, params } => depth(net, layer, params),
            Self::InsertIdentity { at, params } => insert(net, at, params),
            Self::Width { layer, width: w } => width(net, layer, *w, "width"),
            Self::Kernel { layer, k } => kernel(net, layer, *k),
            Self::Sequential { layer, params } => sequential(net, layer, params),
            Self::Stacked { layer, params } => stacked(net, layer, params),
            Self::IdMorph { layer, k } => id_morph(net, layer, *k),
            Self::Net2Wider {
                layer,
                width: w,
                noise,
            } => {
                check_noise(layer, *noise)?;
                width(net, layer, *w, "net2wider")
            }
        }
    }
}

/// Asks the allocator for `cost.workspace_bytes` at once and gives it back.
///
/// # Errors
/// [`MorphError::Alloc`] if it cannot.
pub(crate) fn reserve(cost: MorphCost) -> Result<(), MorphError> {
    Ok(alloc_try::probe(cost.workspace_bytes)?)
}

/// The cost from checked counts.
fn done(
    net_params: usize,
    path: &LayerPath,
    params_after: Count,
    workspace: Count,
) -> Result<MorphCost, MorphError> {
    let too_large = |what| MorphError::TooLarge {
        layer: path.clone(),
        what,
    };
    Ok(MorphCost {
        params_before: net_params,
        params_after: params_after
            .get()
            .ok_or_else(|| too_large("parameter count"))?,
        workspace_bytes: (workspace + BOOKKEEPING)
            .get()
            .ok_or_else(|| too_large("workspace"))?,
    })
}

/// Bytes a copy of `layers` holds: a slot per layer, a vector per branch, every parameter.
pub(crate) fn layers_bytes<T: Scalar>(layers: &[Layer<T>]) -> Count {
    layers.iter().fold(Count::of(0), |acc, l| {
        let inside = match l {
            Layer::ParallelSum(bs) => bs.iter().fold(Count::of(0), |a, b| {
                a + size_of::<Vec<Layer<T>>>() + layers_bytes(b)
            }),
            _ => Count::of(l.param_count()) * size_of::<T>(),
        };
        acc + size_of::<Layer<T>>() + inside
    })
}

/// Bytes of layer slots while `added` layers are spliced into a sequence of `len`: the old
/// buffer, the grown one (at most twice as long, at least 4) and the spliced-in layers.
fn splice_bytes<T>(len: usize, added: usize) -> Count {
    (Count::of(len) * 4 + Count::of(added) * 2 + 8) * size_of::<Layer<T>>()
}

/// One depth morph (eq. 6) of a kernel `G` `(co, ci, k)` in a sequence of `len` layers:
/// the parameters it adds and removes and the heap it needs beyond its copy of the network.
struct DepthStep {
    added: Count,
    removed: Count,
    extra: Count,
}

fn depth_step<T: Scalar>(
    (co, ci, k): (usize, usize, usize),
    p: &DepthParams,
    len: usize,
    trailing: usize,
) -> DepthStep {
    let (cm, s) = (Count::of(p.c_l), size_of::<T>());
    let f1 = kernel_values(cm, ci.into(), p.k1.into());
    let f2 = kernel_values(co.into(), cm, p.k2.into());
    let g = kernel_values(co.into(), ci.into(), k.into());
    let precision = p.solve.precision;
    let solve = Count::from(workspace_bytes(ci, p.c_l, co, p.k1, p.k2, precision));
    let added = f1 + f2 + cm + trailing;
    // `G` in the solve's precision; the new layers in `T` (with `F_l`'s zero bias and `G`'s
    // bias built separately) and their vector.
    let layers = (added + cm + co) * s + Count::of(4) * size_of::<Layer<T>>();
    let g_copy = g * match precision {
        Precision::F64 => size_of::<f64>(),
        Precision::F32 => size_of::<f32>(),
    };
    DepthStep {
        added,
        removed: g,
        extra: g_copy + solve + layers + splice_bytes::<T>(len, 4),
    }
}

/// Cost of [`super::depth::deepen`].
pub(crate) fn depth<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &DepthParams,
) -> Result<MorphCost, MorphError> {
    let (seq, i) = locate_ref(net, path, false)?;
    let g = linear_kernel(&seq[i], path, "depth")?;
    let stride = match &seq[i] {
        Layer::Conv2d(c) => c.stride,
        _ => 1,
    };
    let conv = matches!(seq[i], Layer::Conv2d(_));
    check_depth(path, params, (conv, g.k, stride))?;
    let step = depth_step::<T>((g.out, g.inp, g.k), params, seq.len(), 0);
    let params_after = Count::of(net.param_count()).less(step.removed) + step.added;
    let workspace = layers_bytes(net.layers()) + step.extra;
    done(net.param_count(), path, params_after, workspace)
}

/// Cost of [`super::depth::insert_identity`].
pub(crate) fn insert<T: Scalar>(
    net: &Network<T>,
    at: &LayerPath,
    params: &InsertParams,
) -> Result<MorphCost, MorphError> {
    let shape = net
        .shape_before(at)
        .ok_or_else(|| MorphError::NoSuchLayer { layer: at.clone() })?;
    let (seq, _) = locate_ref(net, at, true)?;
    check_depth(at, &params.depth, (!shape.is_flat(), 1, 1))?;
    let trailing = if params.trailing_activation {
        shape.c
    } else {
        0
    };
    let step = depth_step::<T>((shape.c, shape.c, 1), &params.depth, seq.len(), trailing);
    let params_after = Count::of(net.param_count()) + step.added;
    // `G = I` is built in `T` before its copy in the solve's precision.
    let identity = kernel_values(shape.c.into(), shape.c.into(), Count::of(1)) * size_of::<T>();
    let workspace = layers_bytes(net.layers()) + step.extra + identity;
    done(net.param_count(), at, params_after, workspace)
}

/// Cost of [`super::width::widen`] and [`super::baseline::net2wider`] (`op`).
pub(crate) fn width<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    width: usize,
    op: &'static str,
) -> Result<MorphCost, MorphError> {
    let (c, span) = widening(net, path, width, op)?;
    let (seq, _) = locate_ref(net, path, false)?;
    let (f1, f2) = kernels(seq, &span);
    // Values per channel: its row of `F_l`, its columns of `F_{l+1}` (within kernels that
    // exist, so no overflow), its bias and its `a` in each activation in between.
    let n_in = f1.inp * f1.k * f1.k;
    let n_out = f2.out * span.block * f2.k * f2.k;
    let acts = seq[span.i + 1..span.j]
        .iter()
        .filter(|l| matches!(l, Layer::Activation(_)))
        .count();
    let per_channel = Count::of(n_in) + n_out + 1 + acts;
    let params_after = Count::of(net.param_count()) + per_channel * (width - c);
    let s = size_of::<T>();
    // Every channel (a parent's copy or a new one), its place in the shuffle (or its source
    // for Net2WiderNet), the replica counts, the report's channel origins, and the rewritten
    // kernels and activations.
    let channels =
        Count::of(width) * (Count::of(size_of::<Channel<T>>()) + (Count::of(n_in) + n_out) * s);
    let order = Count::of(width) * (size_of::<usize>() + size_of::<Option<usize>>())
        + Count::of(c) * size_of::<usize>();
    let rewritten = (per_channel * width + f2.out) * s;
    let workspace = layers_bytes(net.layers()) + channels + order + rewritten;
    done(net.param_count(), path, params_after, workspace)
}

/// Cost of [`super::kernel::grow_kernel`].
pub(crate) fn kernel<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    k: usize,
) -> Result<MorphCost, MorphError> {
    let (seq, i) = locate_ref(net, path, false)?;
    let g = linear_kernel(&seq[i], path, "kernel")?;
    let Layer::Conv2d(conv) = &seq[i] else {
        return Err(MorphError::NotMorphable {
            layer: path.clone(),
            found: seq[i].name(),
            op: "kernel",
        });
    };
    let input = net
        .shape_before(path)
        .ok_or_else(|| MorphError::NoSuchLayer {
            layer: path.clone(),
        })?;
    check_growth(path, g.k, k, (conv.pad, conv.stride, input))?;
    let grown = kernel_values(g.out.into(), g.inp.into(), k.into());
    let params_after = Count::of(net.param_count()).less(g.param_count()) + grown;
    let workspace = layers_bytes(net.layers()) + grown * size_of::<T>();
    done(net.param_count(), path, params_after, workspace)
}

/// Cost of [`super::subnet::sequential`]: `P` depth morphs in a row, each on the child of the
/// one before (eq. 19).
pub(crate) fn sequential<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &SequentialParams,
) -> Result<MorphCost, MorphError> {
    check_sequential(path, params)?;
    let (seq, i) = locate_ref(net, path, false)?;
    let g = linear_kernel(&seq[i], path, "depth")?;
    let conv = matches!(seq[i], Layer::Conv2d(_));
    let mut stride = match &seq[i] {
        Layer::Conv2d(c) => c.stride,
        _ => 1,
    };
    let (s, slot) = (size_of::<T>(), size_of::<Layer<T>>());
    let (co, mut ci, mut k, mut len) = (g.out, g.inp, g.k, seq.len());
    let mut params_after = Count::of(net.param_count());
    // The child between stages: the parent's copy, later the last stage's child, whose
    // edited sequence may have grown to twice its length.
    let mut held = layers_bytes(net.layers());
    let mut peak = Count::of(0);
    let mut stage = path.clone();
    for st in 0..params.widths.len() {
        let d = stage_depth(params, st, path)?;
        check_depth(&stage, &d, (conv, k, stride))?;
        let step = depth_step::<T>((co, ci, k), &d, len, 0);
        // `deepen` copies the held child and edits the copy.
        peak = peak.max(held * 2 + step.extra);
        params_after = params_after.less(step.removed) + step.added;
        held = held.less(step.removed * s) + step.added * s + (Count::of(len) + 6) * slot;
        (ci, k, stride, len) = (d.c_l, d.k2, 1, len + 2);
        stage = stage.with_last(stage.last() + 2);
    }
    done(net.param_count(), path, params_after, peak)
}

/// Cost of [`super::subnet::stacked`]: `n` copies of `G` summed (eq. 20), then a depth morph
/// of each branch if asked.
pub(crate) fn stacked<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &StackedParams,
) -> Result<MorphCost, MorphError> {
    check_branches(path, params.n)?;
    let (seq, i) = locate_ref(net, path, false)?;
    let g = linear_kernel(&seq[i], path, "subnet")?;
    branch_path(path, 0)?;
    let (n, s, slot) = (params.n, size_of::<T>(), size_of::<Layer<T>>());
    let branch_vec = size_of::<Vec<Layer<T>>>();
    let (g_params, w) = (g.param_count(), g.weight.len());
    let parent = layers_bytes(net.layers());
    // `G` in f64; with a random split, each branch's noise and their mean; the branches.
    let noise = match params.split {
        Split::Random => (Count::of(n) * w + w) * 8 + Count::of(n) * branch_vec,
        Split::Equal => Count::of(0),
    };
    let branches = Count::of(n) * (Count::of(g_params) * s + slot + branch_vec);
    let stacking = parent + Count::of(g_params) * 8 + noise + branches;
    let stacked = parent.less(g_params * s) + branches;
    let mut params_after = Count::of(net.param_count()) + Count::of(g_params) * (n - 1);
    let mut peak = stacking;
    if let Some(depth) = &params.branch_depth {
        let stride = match &seq[i] {
            Layer::Conv2d(c) => c.stride,
            _ => 1,
        };
        let conv = matches!(seq[i], Layer::Conv2d(_));
        check_depth(&branch_path(path, 0)?, depth, (conv, g.k, stride))?;
        let step = depth_step::<T>((g.out, g.inp, g.k), depth, 1, 0);
        // A deepened branch: three layers (four slots) instead of one.
        let deepened = step.added * s + slot * 3;
        let child = |b: usize| stacked.less(Count::of(b) * g_params * s) + deepened * b;
        // The child held before stage `b` grows or shrinks linearly in `b`.
        let held = child(0).max(child(n - 1));
        peak = peak.max(held * 2 + step.extra);
        params_after = Count::of(net.param_count()).less(g_params) + step.added * n;
    }
    done(net.param_count(), path, params_after, peak)
}

/// Cost of [`super::baseline::id_morph`].
pub(crate) fn id_morph<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    k: usize,
) -> Result<MorphCost, MorphError> {
    if k % 2 == 0 {
        return Err(MorphError::KernelNotOdd {
            layer: path.clone(),
            kernel: k,
        });
    }
    let (seq, i) = locate_ref(net, path, false)?;
    let c = linear_kernel(&seq[i], path, "idmorph")?.out;
    let conv = matches!(seq[i], Layer::Conv2d(_));
    let k = if conv { k } else { 1 };
    if conv {
        // The identity layer sees the layer's output; its centre tap reaches every pixel.
        let blob =
            net.shape_before(&path.with_last(i + 1))
                .ok_or_else(|| MorphError::NoSuchLayer {
                    layer: path.clone(),
                })?;
        let max = largest_useful_kernel(1, 0, 1, blob).unwrap_or(usize::MAX);
        if k > max {
            return Err(MorphError::KernelBeyondInput {
                layer: path.clone(),
                requested: k,
                max,
            });
        }
    }
    let act = next_activation(seq, i, path)?.map_or(0, |p| p.a.len());
    let added = kernel_values(c.into(), c.into(), k.into()) + act;
    let params_after = Count::of(net.param_count()) + added;
    let workspace =
        layers_bytes(net.layers()) + added * size_of::<T>() + splice_bytes::<T>(seq.len(), 2);
    done(net.param_count(), path, params_after, workspace)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use alloc::vec;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::heap_meter::{peak_of, warm_up};
    use crate::morph::subnet::Split;
    use crate::solve::algorithm::{Algorithm, SolveOptions};
    use crate::{ActKind, Conv2d, Kernel, PActivation, Pool, Rng, Shape};

    fn random_kernel<T: Scalar>(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<T> {
        let mut kern = Kernel::zeros(out, inp, k);
        let std = 1.0 / libm::sqrt((inp * k * k) as f64);
        rng.fill_normals(&mut kern.weight, std);
        rng.fill_normals(&mut kern.bias, 0.5);
        kern
    }

    fn relu<T: Scalar>(c: usize) -> Layer<T> {
        Layer::Activation(PActivation::plain(ActKind::Relu, c))
    }

    /// conv (kernel 1, 3 or 5, stride 1 or 2), ReLU, optional pooling, conv 3, ReLU,
    /// flatten, dense, ReLU, dense.
    fn convnet<T: Scalar>(seed: u64) -> Network<T> {
        let mut rng = Rng::seed(seed);
        let input = Shape::image(1 + rng.below(3), 6 + rng.below(4), 6 + rng.below(4));
        let (c1, k1) = (2 + rng.below(3), [1, 3, 5][rng.below(3)]);
        let stride = 1 + rng.below(2);
        let mut layers = vec![
            Layer::Conv2d(Conv2d {
                kernel: random_kernel(c1, input.c, k1, &mut rng),
                stride,
                pad: k1 / 2,
            }),
            relu(c1),
        ];
        if rng.below(2) == 0 {
            let p = Pool {
                k: 2,
                stride: 2,
                ceil: true,
            };
            layers.push(Layer::MaxPool2d(p));
        }
        let c2 = 1 + rng.below(3);
        layers.push(Layer::Conv2d(Conv2d {
            kernel: random_kernel(c2, c1, 3, &mut rng),
            stride: 1,
            pad: 1,
        }));
        layers.push(relu(c2));
        layers.push(Layer::Flatten);
        let flat = Network::new(input, layers.clone())
            .unwrap()
            .output_shape()
            .c;
        layers.push(Layer::Dense(random_kernel(4, flat, 1, &mut rng)));
        layers.push(relu(4));
        layers.push(Layer::Dense(random_kernel(2, 4, 1, &mut rng)));
        Network::new(input, layers).unwrap()
    }

    /// dense, ReLU, dense, ReLU, dense.
    fn mlp<T: Scalar>(seed: u64) -> Network<T> {
        let mut rng = Rng::seed(seed);
        let (i, h1, h2) = (1 + rng.below(6), 1 + rng.below(6), 1 + rng.below(6));
        let layers = vec![
            Layer::Dense(random_kernel(h1, i, 1, &mut rng)),
            relu(h1),
            Layer::Dense(random_kernel(h2, h1, 1, &mut rng)),
            relu(h2),
            Layer::Dense(random_kernel(3, h2, 1, &mut rng)),
        ];
        Network::new(Shape::flat(i), layers).unwrap()
    }

    /// Every kind of morph, on the first layer of `net` (a convolution or dense layer with a
    /// ReLU and a consumer after it).
    fn every_op<T: Scalar>(net: &Network<T>) -> Vec<MorphOp> {
        let first = LayerPath::top(0);
        let (kern, stride) = match &net.layers()[0] {
            Layer::Conv2d(c) => (&c.kernel, c.stride),
            l => (l.kernel().unwrap(), 1),
        };
        let conv = matches!(net.layers()[0], Layer::Conv2d(_));
        // K~ covers K <= 5 with even slack; strided layers keep K_2 = 1.
        let (k1, k2) = match (conv, stride) {
            (false, _) => (1, 1),
            (true, 1) => (3, 3),
            (true, _) => (kern.k, 1),
        };
        let c_l = 3 * kern.out.max(kern.inp) * kern.k;
        let depth = |algorithm| {
            let mut p = DepthParams::new(c_l, k1, k2);
            p.algorithm = algorithm;
            p
        };
        let kernels = if k2 == 3 { [3, 1, 3] } else { [k1, 1, 1] };
        let mut ops = vec![
            MorphOp::Depth {
                layer: first.clone(),
                params: depth(Algorithm::General),
            },
            MorphOp::Depth {
                layer: first.clone(),
                params: depth(Algorithm::Practical),
            },
            MorphOp::InsertIdentity {
                at: LayerPath::top(2),
                params: InsertParams {
                    depth: DepthParams::new(kern.out + 2, k1.min(3), 1),
                    trailing_activation: true,
                },
            },
            MorphOp::Width {
                layer: first.clone(),
                width: kern.out + 3,
            },
            MorphOp::Sequential {
                layer: first.clone(),
                params: SequentialParams {
                    widths: heapless::Vec::from_slice(&[c_l, kern.out + 1]).unwrap(),
                    kernels: heapless::Vec::from_slice(&kernels).unwrap(),
                    algorithm: Algorithm::Auto,
                    activation: ActKind::Relu,
                    solve: SolveOptions::default(),
                },
            },
            MorphOp::Stacked {
                layer: first.clone(),
                params: StackedParams {
                    n: 3,
                    split: Split::Random,
                    branch_depth: None,
                },
            },
            MorphOp::Stacked {
                layer: first.clone(),
                params: StackedParams {
                    n: 2,
                    split: Split::Equal,
                    branch_depth: Some(depth(Algorithm::Auto)),
                },
            },
            MorphOp::IdMorph {
                layer: first.clone(),
                k: 3,
            },
            MorphOp::Net2Wider {
                layer: first.clone(),
                width: kern.out + 2,
                noise: 0.0,
            },
        ];
        // Solves in f32.
        for algorithm in [Algorithm::General, Algorithm::Practical] {
            let mut params = depth(algorithm);
            params.solve = SolveOptions::f32();
            ops.push(MorphOp::Depth {
                layer: first.clone(),
                params,
            });
        }
        if conv {
            ops.push(MorphOp::Kernel {
                layer: first,
                k: kern.k + 2,
            });
        }
        ops
    }

    /// `cost` agrees with `apply`: the same errors, the child's parameter count, and a
    /// workspace bound above the heap `apply` really held.
    fn check_cost<T: Scalar>(net: &Network<T>, op: &MorphOp, seed: u64) {
        let cost = op.cost(net);
        let (applied, peak) = peak_of(|| op.apply(net, &mut Rng::seed(seed)));
        match (cost, applied) {
            (Ok(c), Ok((child, _))) => {
                assert_eq!(c.params_before, net.param_count());
                assert_eq!(c.params_after, child.param_count(), "{op:?}");
                assert!(
                    peak <= c.workspace_bytes,
                    "{op:?}: {peak} > {}",
                    c.workspace_bytes
                );
            }
            (Err(e), Err(f)) => assert_eq!(e, f, "{op:?}"),
            // Algorithm 1 may not converge: only the solve tells.
            (Ok(_), Err(MorphError::Solve { .. })) => {}
            (c, a) => panic!("{op:?}: cost {c:?} but apply {:?}", a.map(|r| r.1)),
        }
    }

    fn costs_match_every_kind_of_morph<T: Scalar>() {
        warm_up();
        for seed in 0..12 {
            for net in [convnet::<T>(seed), mlp::<T>(seed)] {
                for op in every_op(&net) {
                    check_cost(&net, &op, seed);
                }
            }
        }
    }

    #[test]
    fn costs_match_every_kind_of_morph_f32() {
        costs_match_every_kind_of_morph::<f32>();
    }

    #[test]
    fn costs_match_every_kind_of_morph_f64() {
        costs_match_every_kind_of_morph::<f64>();
    }

    #[test]
    fn workspace_bounds_hold_where_the_solver_dominates() {
        warm_up();
        let mut rng = Rng::seed(3);
        // (C_{l-1}, C_{l+1}, K, C_l, K_1, K_2): Algorithm 1 over the deconvolution matrix,
        // Algorithm 2 in both cases, Kronecker systems, a rank-deficient SVD fallback.
        let cases = [
            (8, 12, 3, 40, 3, 3),
            (12, 8, 3, 16, 3, 3),
            (6, 10, 3, 12, 5, 1),
            (10, 6, 3, 12, 1, 3),
            (1, 1, 1, 3, 3, 3),
            (16, 24, 1, 64, 1, 1),
        ];
        for (ci, co, k, c_l, k1, k2) in cases {
            let conv = Conv2d {
                kernel: random_kernel::<f64>(co, ci, k, &mut rng),
                stride: 1,
                pad: k / 2,
            };
            let net = Network::new(Shape::image(ci, 10, 10), vec![Layer::Conv2d(conv)]).unwrap();
            for algorithm in [Algorithm::General, Algorithm::Practical, Algorithm::Auto] {
                let mut params = DepthParams::new(c_l, k1, k2);
                params.algorithm = algorithm;
                let op = MorphOp::Depth {
                    layer: LayerPath::top(0),
                    params,
                };
                check_cost(&net, &op, 7);
            }
        }
    }

    #[test]
    fn huge_requests_fail_fast_without_allocating() {
        let net = convnet::<f32>(1);
        let first = LayerPath::top(0);
        let seq = |widths: &[usize], kernels: &[usize]| SequentialParams {
            widths: heapless::Vec::from_slice(widths).unwrap(),
            kernels: heapless::Vec::from_slice(kernels).unwrap(),
            algorithm: Algorithm::Auto,
            activation: ActKind::Relu,
            solve: SolveOptions::default(),
        };
        let depth = |c_l, k1, k2| MorphOp::Depth {
            layer: first.clone(),
            params: DepthParams::new(c_l, k1, k2),
        };
        let huge = [
            depth(usize::MAX / 2, 1, 1),
            depth(1 << 40, 3, 3),
            depth(4, (1 << 40) + 1, 1),
            MorphOp::InsertIdentity {
                at: LayerPath::top(2),
                params: InsertParams {
                    depth: DepthParams::new(usize::MAX / 2, 1, 1),
                    trailing_activation: false,
                },
            },
            MorphOp::Width {
                layer: first.clone(),
                width: 1 << 60,
            },
            MorphOp::Net2Wider {
                layer: first.clone(),
                width: usize::MAX,
                noise: 0.0,
            },
            MorphOp::Kernel {
                layer: first.clone(),
                k: (1 << 40) + 1,
            },
            MorphOp::Sequential {
                layer: first.clone(),
                params: seq(&[1 << 62, 2], &[1, 1, 1]),
            },
            MorphOp::Sequential {
                layer: first.clone(),
                params: seq(&[2, 2], &[1, usize::MAX, usize::MAX]),
            },
            MorphOp::Stacked {
                layer: first.clone(),
                params: StackedParams {
                    n: 100_000,
                    split: Split::Random,
                    branch_depth: None,
                },
            },
            MorphOp::IdMorph {
                layer: first.clone(),
                k: (1 << 40) + 1,
            },
        ];
        for op in &huge {
            let (cost, peak) = peak_of(|| op.cost(&net));
            assert!(cost.is_err(), "{op:?}: {cost:?}");
            assert_eq!(peak, 0, "{op:?}");
            let start = Instant::now();
            let applied = op.apply(&net, &mut Rng::seed(1));
            assert_eq!(applied.map(|r| r.1).unwrap_err(), cost.unwrap_err());
            assert!(start.elapsed() < Duration::from_secs(1), "{op:?}");
        }
    }

    #[test]
    fn a_workspace_no_allocator_can_serve_fails_before_any_work() {
        // A width whose workspace fits `usize` but exceeds `isize::MAX` bytes, which no
        // allocation can hold (so the test never asks the operating system).
        let net = mlp::<f64>(2);
        let (op, cost) = (40..64)
            .map(|s| MorphOp::Width {
                layer: LayerPath::top(0),
                width: 1 << s,
            })
            .find_map(|op| {
                let cost = op.cost(&net).ok()?;
                (cost.workspace_bytes > isize::MAX as usize).then_some((op, cost))
            })
            .unwrap();
        let e = op.apply(&net, &mut Rng::seed(1)).map(|r| r.1).unwrap_err();
        assert_eq!(
            e,
            MorphError::Alloc {
                bytes: cost.workspace_bytes
            }
        );
    }
}
