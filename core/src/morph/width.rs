//! Width morphing (section 3.4.1, eq. 12-18): widen the blob `B_l` produced by layer `l` from
//! `C_l` to `C~_l` channels.
//!
//! New channels need `F~_l(c, .) (*) F~_{l+1}(., c) = 0` (eq. 18): one side zero, the other
//! random at the scale of the existing weights. We zero the side with fewer parameters, unless
//! a new channel would not stay zero through the activations in between (`phi(0) != 0`, e.g.
//! sigmoid), where only zeroing the outgoing side is exact (morphism notes, section 7), or a
//! ReLU lies in between: a zero-input ReLU unit sits on its kink and gets no gradient, so it
//! could never start learning; zeroing the outgoing side keeps it trainable. Then a
//! random permutation of the `C~_l` channels, applied to `F_l`'s rows and bias, the
//! P-activations' `a`, and `F_{l+1}`'s input columns (whole `H'W'` blocks after a Flatten).

use alloc::vec::Vec;

use super::cost::{self, reserve};
use super::{
    finish, linear_kernel, locate, locate_ref, nonzero_fraction, MorphError, MorphReport, NewLayer,
};
use crate::alloc_try;
use crate::solve::algorithm::std_dev_of;
use crate::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Scalar};

/// The stretch of a sequence from a widened layer `l` to the layer `l + 1` consuming its
/// channels.
pub(crate) struct Span {
    /// Index of layer `l`.
    pub i: usize,
    /// Index of layer `l + 1`.
    pub j: usize,
    /// Columns of `F_{l+1}` per channel of `B_l` (`H' W'` after a Flatten, else 1).
    pub block: usize,
}

/// Finds the consumer of layer `seq[i]`'s channels: the next dense/conv layer, through
/// activations, pooling and at most one Flatten.
pub(crate) fn find_consumer<T: Scalar>(
    net: &Network<T>,
    seq: &[Layer<T>],
    path: &LayerPath,
) -> Result<Span, MorphError> {
    let i = path.last();
    let mut block = 1;
    for (j, l) in seq.iter().enumerate().skip(i + 1) {
        match l {
            Layer::Dense(_) | Layer::Conv2d(_) => return Ok(Span { i, j, block }),
            Layer::Activation(_) | Layer::MaxPool2d(_) | Layer::AvgPool2d(_) => {}
            Layer::Flatten if block == 1 => {
                let s =
                    net.shape_before(&path.with_last(j))
                        .ok_or_else(|| MorphError::NoConsumer {
                            layer: path.clone(),
                        })?;
                block = s.h * s.w;
            }
            Layer::Flatten | Layer::ParallelSum(_) => break,
        }
    }
    Err(MorphError::NoConsumer {
        layer: path.clone(),
    })
}

/// One channel of the widened blob, in child order.
pub(crate) struct Channel<T> {
    /// Row of `F~_l` (`C_{l-1} K^2` values).
    pub incoming: Vec<T>,
    /// Its bias.
    pub bias: T,
    /// Parent channel whose P-activation `a` it copies; `None` for `a = 0` (plain phi).
    pub a_from: Option<usize>,
    /// Its `F~_{l+1}` columns, `C_{l+1}` runs of `block K_2^2` values.
    pub outgoing: Vec<T>,
}

/// Parent channel `c` of the span, outgoing columns scaled by `scale`.
pub(crate) fn parent_channel<T: Scalar>(
    seq: &[Layer<T>],
    span: &Span,
    c: usize,
    scale: T,
) -> Result<Channel<T>, MorphError> {
    let (f1, f2) = kernels(seq, span);
    let row = f1.inp * f1.k * f1.k;
    let run = span.block * f2.k * f2.k;
    let mut outgoing = alloc_try::with_capacity(f2.out * run)?;
    for o in 0..f2.out {
        let start = (o * f2.inp + c * span.block) * f2.k * f2.k;
        outgoing.extend(f2.weight[start..start + run].iter().map(|v| *v * scale));
    }
    Ok(Channel {
        incoming: alloc_try::copied(&f1.weight[c * row..(c + 1) * row])?,
        bias: f1.bias[c],
        a_from: Some(c),
        outgoing,
    })
}

/// The kernels of `F_l` and `F_{l+1}` of a span.
pub(crate) fn kernels<'a, T: Scalar>(
    seq: &'a [Layer<T>],
    span: &Span,
) -> (&'a crate::Kernel<T>, &'a crate::Kernel<T>) {
    match (seq[span.i].kernel(), seq[span.j].kernel()) {
        (Some(a), Some(b)) => (a, b),
        // `find_consumer` and `linear_kernel` checked both ends.
        _ => unreachable!("span ends are dense or conv layers"),
    }
}

/// Rewrites `F_l`, the activations in between and `F_{l+1}` for the `width` channels
/// `channel(0), channel(1), ...` (child order). Returns the fraction of non-zero values in
/// the two rewritten weight tensors.
pub(crate) fn apply_channels<'c, T: Scalar + 'c>(
    seq: &mut [Layer<T>],
    span: &Span,
    width: usize,
    channel: impl Fn(usize) -> &'c Channel<T>,
) -> Result<f64, MorphError> {
    let (f1, f2) = kernels(seq, span);
    let (row, run) = (f1.inp * f1.k * f1.k, span.block * f2.k * f2.k);
    let mut g1 = Kernel {
        out: width,
        inp: f1.inp,
        k: f1.k,
        weight: alloc_try::with_capacity(width * row)?,
        bias: alloc_try::collected(width, (0..width).map(|c| channel(c).bias))?,
    };
    (0..width).for_each(|c| g1.weight.extend_from_slice(&channel(c).incoming));
    let mut g2 = Kernel {
        out: f2.out,
        inp: width * span.block,
        k: f2.k,
        weight: alloc_try::with_capacity(f2.out * width * run)?,
        bias: alloc_try::copied(&f2.bias)?,
    };
    for o in 0..f2.out {
        (0..width).for_each(|c| {
            g2.weight
                .extend_from_slice(&channel(c).outgoing[o * run..][..run])
        });
    }
    let nz = nonzero_fraction(&[&g1.weight, &g2.weight]);
    if let Some(k) = seq[span.i].kernel_mut() {
        *k = g1;
    }
    if let Some(k) = seq[span.j].kernel_mut() {
        *k = g2;
    }
    for l in &mut seq[span.i + 1..span.j] {
        if let Layer::Activation(p) = l {
            let a = (0..width).map(|c| channel(c).a_from.map_or(T::zero(), |s| p.a[s]));
            p.a = alloc_try::collected(width, a)?;
        }
    }
    Ok(nz)
}

/// The report entries for a widened span.
pub(crate) fn span_layers<T: Scalar>(
    seq: &[Layer<T>],
    span: &Span,
    path: &LayerPath,
) -> Vec<NewLayer> {
    let (f1, f2) = kernels(seq, span);
    [(span.i, f1), (span.j, f2)]
        .into_iter()
        .map(|(ix, k)| NewLayer {
            path: path.with_last(ix),
            kind: seq[ix].name(),
            out: k.out,
            inp: k.inp,
            k: k.k,
        })
        .collect()
}

/// Widens the dense or convolution layer at `path` to `width` output channels (eq. 12-18).
///
/// # Errors
/// [`MorphError::Narrower`] if `width` is below the current width;
/// [`MorphError::NoConsumer`] if no dense/conv layer follows in the same sequence;
/// [`MorphError::NotMorphable`], [`MorphError::NonFinite`].
///
/// # Examples
/// ```
/// use netmorph_core::morph::width::widen;
/// use netmorph_core::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape, Tensor};
/// let mut rng = Rng::seed(4);
/// let mut k1 = Kernel::<f64>::zeros(3, 2, 1);
/// k1.weight = rng.normals(6, 1.0);
/// let mut k2 = Kernel::<f64>::zeros(1, 3, 1);
/// k2.weight = rng.normals(3, 1.0);
/// let layers = vec![Layer::Dense(k1), Layer::Activation(PActivation::plain(ActKind::Sigmoid, 3)), Layer::Dense(k2)];
/// let net = Network::new(Shape::flat(2), layers).unwrap();
/// let (child, _) = widen(&net, &LayerPath::top(0), 7, &mut rng).unwrap();
/// let x = Tensor::random(4, Shape::flat(2), &mut rng);
/// let (d, s) = child.forward(&x).unwrap().max_abs_diff(&net.forward(&x).unwrap());
/// assert!(d <= 1e-12 * s);
/// ```
pub fn widen<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    width: usize,
    rng: &mut Rng,
) -> Result<(Network<T>, MorphReport), MorphError> {
    reserve(cost::width(net, path, width, "width")?)?;
    let (c, span) = widening(net, path, width, "width")?;
    let mut layers = net.layers().to_vec();
    let (seq, _) = locate(&mut layers, path, false)?;
    let (f1, f2) = kernels(seq, &span);
    // The value a new channel with zero incoming weights and bias takes after the
    // activations in between (new channels get a = 0, the plain function).
    let zero_through = seq[span.i + 1..span.j]
        .iter()
        .fold(T::zero(), |v, l| match l {
            Layer::Activation(p) => PActivation::eval(p.kind, T::zero(), v),
            _ => v,
        });
    // A new ReLU unit with zero input sits on the kink, where relu'(0) = 0: neither its
    // incoming nor its outgoing weights would ever receive a gradient (a dead unit). Our
    // gradient checks found this; such spans zero the outgoing side instead.
    let kinked = seq[span.i + 1..span.j]
        .iter()
        .any(|l| matches!(l, Layer::Activation(p) if p.kind == ActKind::Relu));
    let (n_in, n_out) = (f1.inp * f1.k * f1.k, f2.out * span.block * f2.k * f2.k);
    let zero_incoming = zero_through == T::zero() && !kinked && n_in <= n_out;
    let std_of = |w: &[T]| {
        let s = std_dev_of(w);
        if s > 0.0 {
            s
        } else {
            1.0
        }
    };
    let (s_in, s_out) = (std_of(&f1.weight), std_of(&f2.weight));
    let mut channels = alloc_try::with_capacity(width)?;
    for ch in 0..c {
        channels.push(parent_channel(seq, &span, ch, T::one())?);
    }
    for _ in c..width {
        let mut incoming = alloc_try::filled(n_in, T::zero())?;
        let mut outgoing = alloc_try::filled(n_out, T::zero())?;
        if zero_incoming {
            rng.fill_normals(&mut outgoing, s_out);
        } else {
            rng.fill_normals(&mut incoming, s_in);
        }
        channels.push(Channel {
            incoming,
            bias: T::zero(),
            a_from: None,
            outgoing,
        });
    }
    let mut order = alloc_try::collected(width, 0..width)?;
    rng.shuffle(&mut order);
    let nz = apply_channels(seq, &span, width, |j| &channels[order[j]])?;
    let new_layers = span_layers(seq, &span, path);
    let mut report = MorphReport::closed_form("width", path.clone(), new_layers, nz);
    report.channels = alloc_try::collected(width, order.iter().map(|&o| (o < c).then_some(o)))?;
    finish(net, layers, report)
}

/// The checks both width morphs share: `path` is a finite dense/conv layer no wider than
/// `width`, with a finite consumer in its sequence. Returns the current width and the span.
pub(crate) fn widening<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    width: usize,
    op: &'static str,
) -> Result<(usize, Span), MorphError> {
    let (seq, i) = locate_ref(net, path, false)?;
    let c = linear_kernel(&seq[i], path, op)?.out;
    if width < c {
        return Err(MorphError::Narrower {
            layer: path.clone(),
            current: c,
            requested: width,
        });
    }
    let span = find_consumer(net, seq, path)?;
    linear_kernel(&seq[span.j], &path.with_last(span.j), op)?;
    Ok((c, span))
}

/// The dense or convolution layer that consumes the output channels of the layer at `path`
/// (the `l + 1` of a width morph).
///
/// # Errors
/// [`MorphError::NoSuchLayer`], [`MorphError::NotMorphable`] or [`MorphError::NoConsumer`].
pub fn consumer<T: Scalar>(net: &Network<T>, path: &LayerPath) -> Result<LayerPath, MorphError> {
    let (seq, i) = locate_ref(net, path, false)?;
    linear_kernel(&seq[i], path, "width")?;
    find_consumer(net, seq, path).map(|s| path.with_last(s.j))
}
