//! Depth morphing (section 3.1-3.3): replace a dense or convolution layer `G` by
//! `F_l`, a P-activation with `a = 1` (eq. 10-11), and `F_{l+1}`, with `F_{l+1} (*) F_l = G~`
//! (eq. 6); and insertion of new layers where the parent computes the identity.
//!
//! Borders (morphism notes, section 2): `F_l` takes the parent's whole padding plus
//! `(K~ - K) / 2` and `F_{l+1}` runs unpadded, so the middle blob carries the true values in its
//! border ring and every output pixel, borders included, equals the parent's. Biases (section
//! 3): `F_l`'s bias is zero and `F_{l+1}` takes `G`'s. Strided parents are deepened only with
//! `K_2 = 1` (stride on `F_l`, a `1 x 1` `F_{l+1}`), the case that stays exact.

use alloc::vec;
use alloc::vec::Vec;

use super::cost::{self, reserve};
use super::{finish, linear_kernel, locate, nonzero_fraction, MorphError, MorphReport, NewLayer};
use crate::alloc_try;
use crate::solve::algorithm::{
    decompose_sized, Algorithm, Decomposition, Precision, SolveError, SolveOptions,
};
use crate::{ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng, Scalar};

/// Parameters of a depth morph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthParams {
    /// `C_l`: channels (features) of the new middle blob.
    pub c_l: usize,
    /// `K_1`: kernel of the first new layer (odd; 1 for dense layers).
    pub k1: usize,
    /// `K_2`: kernel of the second new layer (odd; 1 for dense layers).
    pub k2: usize,
    /// Deconvolution algorithm.
    pub algorithm: Algorithm,
    /// Base function of the inserted P-activation (starts at `a = 1`, the identity).
    pub activation: ActKind,
    /// Solver tolerance, iteration budget and precision.
    pub solve: SolveOptions,
}

impl DepthParams {
    /// `C_l`, `K_1`, `K_2` with the automatic algorithm, a ReLU family P-activation and
    /// default solver options.
    pub fn new(c_l: usize, k1: usize, k2: usize) -> Self {
        Self {
            c_l,
            k1,
            k2,
            algorithm: Algorithm::Auto,
            activation: ActKind::Relu,
            solve: SolveOptions::default(),
        }
    }
}

/// Deepens the dense or convolution layer at `path` (eq. 6, 10-11).
///
/// # Errors
/// [`MorphError`] if `path` is not a dense/conv layer, a kernel is even, the receptive
/// field `K_1 + K_2 - 1` is too small, the layer is strided with `K_2 > 1`, the layer holds
/// NaN/inf, or the deconvolution cannot reach zero residual; [`MorphError::TooLarge`] or
/// [`MorphError::Alloc`] if the child or the solver's workspace does not fit (see
/// [`super::plan::MorphOp::cost`]).
///
/// # Examples
/// ```
/// use netmorph_core::morph::depth::{deepen, DepthParams};
/// use netmorph_core::{Conv2d, Kernel, Layer, LayerPath, Network, Rng, Shape, Tensor};
/// let mut rng = Rng::seed(0);
/// let mut k = Kernel::<f64>::zeros(4, 3, 3);
/// k.weight = rng.normals(4 * 3 * 9, 0.3);
/// let net = Network::new(Shape::image(3, 8, 8), vec![Layer::Conv2d(Conv2d { kernel: k, stride: 1, pad: 1 })]).unwrap();
/// let (child, report) = deepen(&net, &LayerPath::top(0), &DepthParams::new(16, 3, 3), &mut rng).unwrap();
/// assert_eq!(child.layers().len(), 3);
/// let x = Tensor::random(2, net.input_shape(), &mut rng);
/// let (diff, scale) = child.forward(&x).unwrap().max_abs_diff(&net.forward(&x).unwrap());
/// assert!(diff <= 1e-9 * scale, "{diff}");
/// assert!(report.nonzero_fraction > 0.99);
/// ```
pub fn deepen<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    params: &DepthParams,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    reserve(cost::depth(net, path, params)?)?;
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, path, false)?;
    let g = linear_kernel(&seq[i], path, "depth")?;
    let (stride, pad) = match &seq[i] {
        Layer::Conv2d(c) => (c.stride, c.pad),
        _ => (1, 0),
    };
    let conv = matches!(seq[i], Layer::Conv2d(_));
    let kt = params.k1 + params.k2 - 1;
    let geometry = (conv, stride, pad + (kt - g.k) / 2);
    let (new, solved) = solve_split(g, path, params, geometry, rng)?;
    let report = report_depth("depth", path, &new, &solved);
    seq.splice(i..=i, new);
    finish(net, layers, report)
}

/// Parameters of an identity insertion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InsertParams {
    /// The depth parameters of the two new layers (`C_l`, `K_1`, `K_2`, algorithm, activation).
    pub depth: DepthParams,
    /// Also put a P-activation (`a = 1`) after the second new layer (morphism notes, section 4).
    pub trailing_activation: bool,
}

/// Inserts two new layers at `at` (an index in a sequence, possibly one past its end) where
/// the parent computes the identity: decomposes `G = I` (`1 x 1`, zero-padded to `K~`) as in
/// the paper's cifar_222 to cifar_2222 growth. Flat blobs get dense layers (`K_1 = K_2 = 1`),
/// image blobs get convolutions.
///
/// # Errors
/// As [`deepen`]; [`MorphError::NoSuchLayer`] if `at` is not an insertion point.
pub fn insert_identity<T: Scalar>(
    net: &Network<T>,
    at: &LayerPath,
    params: &InsertParams,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    reserve(cost::insert(net, at, params)?)?;
    let shape = net
        .shape_before(at)
        .ok_or_else(|| MorphError::NoSuchLayer { layer: at.clone() })?;
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, at, true)?;
    let conv = !shape.is_flat();
    let mut g = Kernel::try_zeros(shape.c, shape.c, 1)?;
    for c in 0..shape.c {
        g.weight[c * shape.c + c] = T::one();
    }
    let p = &params.depth;
    let kt = p.k1 + p.k2 - 1;
    let (mut new, solved) = solve_split(&g, at, p, (conv, 1, (kt - 1) / 2), rng)?;
    if params.trailing_activation {
        let a = alloc_try::filled(shape.c, T::one())?;
        new.push(Layer::Activation(PActivation {
            kind: p.activation,
            a,
        }));
    }
    let report = report_depth("insert", at, &new, &solved);
    seq.splice(i..i, new);
    finish(net, layers, report)
}

/// A copy of `k` in `F` (rounded to nearest when `F` is narrower).
pub(crate) fn cast_kernel<T: Scalar, F: Scalar>(k: &Kernel<T>) -> Result<Kernel<F>, MorphError> {
    let cast = |v: &[T]| alloc_try::collected(v.len(), v.iter().map(|x| F::of_f64(x.as_f64())));
    Ok(Kernel {
        out: k.out,
        inp: k.inp,
        k: k.k,
        weight: cast(&k.weight)?,
        bias: cast(&k.bias)?,
    })
}

/// The checks of a depth morph's parameters for a layer with `conv`olution or dense kernel
/// of size `k` and `stride`: `C_l >= 1`, odd `K_1` and `K_2`, `K_1 = K_2 = 1` for dense
/// layers, `K_2 = 1` for strided ones, and `K~ = K_1 + K_2 - 1` covering `K` (eq. 6).
pub(crate) fn check_depth(
    path: &LayerPath,
    p: &DepthParams,
    (conv, k, stride): (bool, usize, usize),
) -> Result<(), MorphError> {
    if p.c_l == 0 {
        return Err(MorphError::InvalidParameter {
            layer: path.clone(),
            what: "C_l must be at least 1",
        });
    }
    for k in [p.k1, p.k2] {
        if k % 2 == 0 {
            return Err(MorphError::KernelNotOdd {
                layer: path.clone(),
                kernel: k,
            });
        }
    }
    if !conv && (p.k1 != 1 || p.k2 != 1) {
        return Err(MorphError::InvalidParameter {
            layer: path.clone(),
            what: "dense layers are deepened with K_1 = K_2 = 1",
        });
    }
    if stride > 1 && p.k2 != 1 {
        return Err(MorphError::Strided {
            layer: path.clone(),
            stride,
            k2: p.k2,
        });
    }
    crate::solve::algorithm::receptive(k, p.k1, p.k2).map_err(|e| solve_error(path, e))
}

/// A solver's error as the morph's: allocation failures keep their kind.
fn solve_error(path: &LayerPath, source: SolveError) -> MorphError {
    match source {
        SolveError::Alloc { bytes } => MorphError::Alloc { bytes },
        source => MorphError::Solve {
            layer: path.clone(),
            source,
        },
    }
}

/// What a decomposition reports, whatever scalar it ran in.
pub(crate) struct Solved {
    algorithm: Algorithm,
    condition7: bool,
    residual: f64,
    solves: usize,
}

/// Decomposes the kernel `g` (eq. 6) in the precision `p.solve` names, with sizes
/// [`check_depth`] accepted, into the layers `[F_l, phi^1, F_{l+1}]` of [`split_layers`]
/// placed by `(conv, stride, pad)`.
pub(crate) fn solve_split<T: Scalar>(
    g: &Kernel<T>,
    path: &LayerPath,
    p: &DepthParams,
    geometry: (bool, usize, usize),
    rng: &mut Rng,
) -> Result<(Vec<Layer<T>>, Solved), MorphError> {
    match p.solve.precision {
        Precision::F64 => solve_split_in::<T, f64>(g, path, p, geometry, rng),
        Precision::F32 => solve_split_in::<T, f32>(g, path, p, geometry, rng),
    }
}

/// [`solve_split`] in `F`.
fn solve_split_in<T: Scalar, F: Scalar>(
    g: &Kernel<T>,
    path: &LayerPath,
    p: &DepthParams,
    (conv, stride, pad): (bool, usize, usize),
    rng: &mut Rng,
) -> Result<(Vec<Layer<T>>, Solved), MorphError> {
    let bias = &g.bias;
    let g = cast_kernel::<T, F>(g)?;
    if !g.is_finite() {
        // An f64 weight past f32's range.
        return Err(solve_error(
            path,
            SolveError::InvalidInput {
                what: "the layer's weights do not fit the solve's precision; solve in f64",
            },
        ));
    }
    let d = decompose_sized(&g, p.c_l, p.k1, p.k2, p.algorithm, &p.solve, rng)
        .map_err(|e| solve_error(path, e))?;
    let new = split_layers(&d, bias, conv, (stride, pad), p.activation)?;
    let solved = Solved {
        algorithm: d.algorithm,
        condition7: d.condition7,
        residual: d.residual,
        solves: d.solves,
    };
    Ok((new, solved))
}

/// `[F_l, phi^1, F_{l+1}]` in `T` from the decomposition `d` of `G`: `F_l` with zero bias,
/// stride and padding `(stride, pad)`; `F_{l+1}` with `G`'s bias (`bias`, in `T`: it is
/// not solved for, so it keeps its precision), stride 1 and no padding.
fn split_layers<T: Scalar, F: Scalar>(
    d: &Decomposition<F>,
    bias: &[T],
    conv: bool,
    (stride, pad): (usize, usize),
    act: ActKind,
) -> Result<Vec<Layer<T>>, MorphError> {
    let cast = |v: &[F]| alloc_try::collected(v.len(), v.iter().map(|x| T::of_f64(x.as_f64())));
    let kernel = |f: &Kernel<F>, bias: Vec<T>| -> Result<Kernel<T>, MorphError> {
        Ok(Kernel {
            out: f.out,
            inp: f.inp,
            k: f.k,
            weight: cast(&f.weight)?,
            bias,
        })
    };
    let c_l = d.f1.out;
    let f1 = kernel(&d.f1, alloc_try::filled(c_l, T::zero())?)?;
    let f2 = kernel(&d.f2, alloc_try::copied(bias)?)?;
    let wrap = |kernel: Kernel<T>, stride: usize, pad: usize| {
        if conv {
            Layer::Conv2d(Conv2d {
                kernel,
                stride,
                pad,
            })
        } else {
            Layer::Dense(kernel)
        }
    };
    let act = PActivation {
        kind: act,
        a: alloc_try::filled(c_l, T::one())?,
    };
    Ok(vec![
        wrap(f1, stride, pad),
        Layer::Activation(act),
        wrap(f2, 1, 0),
    ])
}

fn report_depth<T: Scalar>(
    op: &'static str,
    path: &LayerPath,
    new: &[Layer<T>],
    d: &Solved,
) -> MorphReport {
    let weights: Vec<&[T]> = new
        .iter()
        .filter_map(|l| l.kernel().map(|k| k.weight.as_slice()))
        .collect();
    let new_layers = new
        .iter()
        .enumerate()
        .map(|(j, l)| {
            let (out, inp, k) = match (l, l.kernel()) {
                (_, Some(k)) => (k.out, k.inp, k.k),
                (Layer::Activation(a), None) => (a.a.len(), a.a.len(), 1),
                _ => (0, 0, 1),
            };
            NewLayer {
                path: path.with_last(path.last() + j),
                kind: l.name(),
                out,
                inp,
                k,
            }
        })
        .collect();
    MorphReport {
        op,
        layer: path.clone(),
        new_layers,
        params_before: 0,
        params_after: 0,
        nonzero_fraction: nonzero_fraction(&weights),
        algorithm: Some(d.algorithm),
        condition7: Some(d.condition7),
        residual: d.residual,
        solves: d.solves,
        channels: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Shape, Tensor};

    fn net<T: Scalar>(conv: bool, seed: u64) -> Network<T> {
        let mut rng = Rng::seed(seed);
        let (out, inp, k) = if conv { (6, 4, 3) } else { (10, 24, 1) };
        let mut g = Kernel::<T>::zeros(out, inp, k);
        rng.fill_normals(&mut g.weight, 1.0 / libm::sqrt((inp * k * k) as f64));
        rng.fill_normals(&mut g.bias, 0.3);
        let (input, layer) = if conv {
            let c = Conv2d {
                kernel: g,
                stride: 1,
                pad: 1,
            };
            (Shape::image(inp, 7, 7), Layer::Conv2d(c))
        } else {
            (Shape::flat(inp), Layer::Dense(g))
        };
        Network::new(input, vec![layer]).unwrap()
    }

    /// `max |child - parent| / max |parent|` on random probes.
    fn deviation<T: Scalar>(parent: &Network<T>, child: &Network<T>) -> f64 {
        let x = Tensor::random(8, parent.input_shape(), &mut Rng::seed(99));
        let (d, scale) = child
            .forward(&x)
            .unwrap()
            .max_abs_diff(&parent.forward(&x).unwrap());
        d / scale
    }

    #[test]
    fn f32_solves_preserve_f32_networks() {
        for conv in [false, true] {
            let parent = net::<f32>(conv, 1);
            let (k1, k2, c_l) = if conv { (3, 3, 24) } else { (1, 1, 32) };
            for algorithm in [Algorithm::General, Algorithm::Practical] {
                let mut p = DepthParams::new(c_l, k1, k2);
                p.algorithm = algorithm;
                p.solve = SolveOptions::f32();
                let (child, report) =
                    deepen(&parent, &LayerPath::top(0), &p, &mut Rng::seed(2)).unwrap();
                assert!(
                    report.residual <= 1e-5,
                    "{conv} {algorithm:?}: {}",
                    report.residual
                );
                let dev = deviation(&parent, &child);
                assert!(dev <= 2e-5, "{conv} {algorithm:?}: {dev}");
                assert!(report.nonzero_fraction > 0.9);
            }
            let insert = InsertParams {
                depth: DepthParams {
                    solve: SolveOptions::f32(),
                    ..DepthParams::new(c_l, k1, k2)
                },
                trailing_activation: false,
            };
            let (child, report) =
                insert_identity(&parent, &LayerPath::top(1), &insert, &mut Rng::seed(3)).unwrap();
            assert!(report.residual <= 1e-5);
            assert!(deviation(&parent, &child) <= 2e-5);
        }
    }

    #[test]
    fn f32_solves_refuse_f64_weights_past_f32_range() {
        let mut parent = net::<f64>(false, 6).into_layers();
        if let Layer::Dense(k) = &mut parent[0] {
            k.weight[3] = 1e39;
        }
        let parent = Network::new(Shape::flat(24), parent).unwrap();
        let mut p = DepthParams::new(32, 1, 1);
        p.solve = SolveOptions::f32();
        let err = deepen(&parent, &LayerPath::top(0), &p, &mut Rng::seed(1)).unwrap_err();
        assert!(
            matches!(
                &err,
                MorphError::Solve {
                    source: SolveError::InvalidInput { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(alloc::format!("{err}").contains("solve in f64"), "{err}");
        // In f64 the same layer deepens.
        p.solve = SolveOptions::default();
        assert!(deepen(&parent, &LayerPath::top(0), &p, &mut Rng::seed(1)).is_ok());
    }

    #[test]
    fn f32_solves_cost_less_and_default_tolerance_rejects_them() {
        let parent = net::<f32>(false, 4);
        let layer = LayerPath::top(0);
        let mut p = DepthParams::new(32, 1, 1);
        let f64_cost = cost::depth(&parent, &layer, &p).unwrap().workspace_bytes;
        p.solve = SolveOptions::f32();
        let f32_cost = cost::depth(&parent, &layer, &p).unwrap().workspace_bytes;
        assert!(f32_cost < f64_cost, "{f32_cost} >= {f64_cost}");
        // f64's tolerance asked of an f32 solve: the solve cannot meet it and says so.
        p.solve.tol = 1e-11;
        p.algorithm = Algorithm::Practical;
        let err = deepen(&parent, &layer, &p, &mut Rng::seed(5)).unwrap_err();
        assert!(matches!(
            err,
            MorphError::Solve {
                source: SolveError::NotConverged { .. },
                ..
            }
        ));
    }
}
