//! The Net2Net baselines (Chen, Goodfellow and Shlens, 2015), for comparison with NetMorph.
//!
//! * IdMorph / Net2DeeperNet (eq. 8): insert an identity layer (`F_{l+1} = I`) after a layer's
//!   activation and repeat the activation. Exact only for idempotent activations
//!   (`phi o phi = phi`: ReLU, identity); TanH and Sigmoid are refused. Its filter has `O(C)`
//!   non-zeros (Fig. 3a).
//! * Net2WiderNet: new units replicate random existing ones; each replicated unit's outgoing
//!   weights are divided by its replica count. Optional noise on the replicas' outgoing weights
//!   breaks the symmetry at the price of exactness.

use alloc::vec;

use super::cost::{self, reserve};
use super::width::{apply_channels, parent_channel, span_layers, widening};
use super::{finish, linear_kernel, locate, nonzero_fraction, MorphError, MorphReport, NewLayer};
use crate::alloc_try;
use crate::solve::algorithm::std_dev_of;
use crate::{ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng, Scalar};

/// IdMorph: inserts an identity layer (kernel `k`, odd, for convolutions; dense layers use 1)
/// after the layer at `path` and its activation, followed by a copy of that activation.
///
/// # Errors
/// [`MorphError::NotIdempotent`] if the activation after the layer is not idempotent
/// (TanH, Sigmoid, or a P-activation with `a` strictly between 0 and 1);
/// [`MorphError::KernelNotOdd`]; [`MorphError::NotMorphable`];
/// [`MorphError::KernelBeyondInput`] for a `k` past `2 max(H, W) - 1` on an `H x W` blob
/// (taps that only ever read zero padding, see [`super::kernel`]); [`MorphError::TooLarge`]
/// or [`MorphError::Alloc`] for an identity kernel that does not fit in memory.
///
/// # Examples
/// ```
/// use netmorph_core::morph::baseline::id_morph;
/// use netmorph_core::morph::MorphError;
/// use netmorph_core::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Shape};
/// let layers = vec![Layer::Dense(Kernel::<f64>::zeros(3, 2, 1)), Layer::Activation(PActivation::plain(ActKind::Tanh, 3))];
/// let net = Network::new(Shape::flat(2), layers).unwrap();
/// assert!(matches!(id_morph(&net, &LayerPath::top(0), 1), Err(MorphError::NotIdempotent { .. })));
/// ```
pub fn id_morph<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    k: usize,
) -> Result<(Network<T>, MorphReport), MorphError> {
    reserve(cost::id_morph(net, path, k)?)?;
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, path, false)?;
    let c = linear_kernel(&seq[i], path, "idmorph")?.out;
    let conv = matches!(seq[i], Layer::Conv2d(_));
    let k = if conv { k } else { 1 };
    let mut id = Kernel::try_zeros(c, c, k)?;
    for ch in 0..c {
        let at = id.at(ch, ch, k / 2, k / 2);
        id.weight[at] = T::one();
    }
    let nz = nonzero_fraction(&[&id.weight]);
    let new = NewLayer {
        path: path.with_last(i + 2),
        kind: if conv { "conv2d" } else { "dense" },
        out: c,
        inp: c,
        k,
    };
    let id_layer = if conv {
        Layer::Conv2d(Conv2d {
            kernel: id,
            stride: 1,
            pad: k / 2,
        })
    } else {
        Layer::Dense(id)
    };
    let inserted = match next_activation(seq, i, path)? {
        Some(p) => {
            let a = alloc_try::copied(&p.a)?;
            let kind = p.kind;
            vec![id_layer, Layer::Activation(PActivation { kind, a })]
        }
        None => vec![id_layer],
    };
    let at = if inserted.len() == 2 { i + 2 } else { i + 1 };
    let new = NewLayer {
        path: path.with_last(at),
        ..new
    };
    seq.splice(at..at, inserted);
    finish(
        net,
        layers,
        MorphReport::closed_form("idmorph", path.clone(), vec![new], nz),
    )
}

/// Net2WiderNet's `noise` must be finite and non-negative.
pub(crate) fn check_noise(path: &LayerPath, noise: f64) -> Result<(), MorphError> {
    if noise >= 0.0 && noise.is_finite() {
        Ok(())
    } else {
        Err(MorphError::InvalidParameter {
            layer: path.clone(),
            what: "Net2WiderNet noise must be a finite number >= 0",
        })
    }
}

/// The activation right after `seq[i]`, if any, checked idempotent (IdMorph repeats it).
pub(crate) fn next_activation<'a, T: Scalar>(
    seq: &'a [Layer<T>],
    i: usize,
    path: &LayerPath,
) -> Result<Option<&'a PActivation<T>>, MorphError> {
    let Some(Layer::Activation(p)) = seq.get(i + 1) else {
        return Ok(None);
    };
    let idempotent = p.kind == ActKind::Identity
        || (p.kind == ActKind::Relu && p.a.iter().all(|a| *a == T::zero() || *a == T::one()));
    if idempotent {
        Ok(Some(p))
    } else {
        Err(MorphError::NotIdempotent {
            layer: path.with_last(i + 1),
            activation: p.kind.name(),
        })
    }
}

/// Net2WiderNet: widens the layer at `path` to `width` channels by replicating random
/// existing channels; `noise` (a fraction of the outgoing weights' standard deviation, 0 for
/// an exact morph) perturbs the replicas' outgoing weights.
///
/// # Errors
/// As [`super::width::widen`]; [`MorphError::InvalidParameter`] for a negative or non-finite
/// `noise`.
pub fn net2wider<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    width: usize,
    noise: f64,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    check_noise(path, noise)?;
    reserve(cost::width(net, path, width, "net2wider")?)?;
    let (c, span) = widening(net, path, width, "net2wider")?;
    let mut layers = net.layers().to_vec();
    let (seq, _) = locate(&mut layers, path, false)?;
    let out_std = seq[span.j].kernel().map_or(0.0, |k| std_dev_of(&k.weight));
    let source = (0..width).map(|j| if j < c { j } else { rng.below(c) });
    let source = alloc_try::collected(width, source)?;
    let mut count = alloc_try::filled(c, 0usize)?;
    source.iter().for_each(|s| count[*s] += 1);
    let mut channels = alloc_try::with_capacity(width)?;
    for &s in &source {
        let mut ch = parent_channel(seq, &span, s, T::of_f64(1.0 / count[s] as f64))?;
        if noise > 0.0 && count[s] > 1 {
            ch.outgoing
                .iter_mut()
                .for_each(|v| *v += T::of_f64(noise * out_std * rng.normal()));
        }
        channels.push(ch);
    }
    let nz = apply_channels(seq, &span, width, |j| &channels[j])?;
    let new_layers = span_layers(seq, &span, path);
    let mut report = MorphReport::closed_form("net2wider", path.clone(), new_layers, nz);
    // The first `c` channels are the parent's own; the rest are replicas.
    report.channels = alloc_try::collected(width, (0..width).map(|j| (j < c).then_some(j)))?;
    finish(net, layers, report)
}
