//! [`Network`]: an input shape and a validated sequence of layers.

use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;

use super::layer::{Kernel, Layer, Shape};
use super::pool::MAX_POOL_PLANE;
use crate::alloc_try::{product, AllocError};
use crate::{Scalar, Tensor};

/// Maximum nesting of a [`LayerPath`]: top level, branch, layer, branch, layer, ...
pub const MAX_PATH_DEPTH: usize = 8;

/// Address of a layer: `[i]` is the i-th top-level layer; `[i, b, j]` is layer `j` of branch
/// `b` of the [`Layer::ParallelSum`] at top-level index `i`, and so on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LayerPath(pub heapless::Vec<usize, MAX_PATH_DEPTH>);

impl LayerPath {
    /// The top-level layer `i`.
    pub fn top(i: usize) -> Self {
        let mut v = heapless::Vec::new();
        // A fresh vector has room for one element.
        let _ = v.push(i);
        Self(v)
    }

    /// Builds a path from indices; `None` if deeper than [`MAX_PATH_DEPTH`].
    pub fn from_slice(ix: &[usize]) -> Option<Self> {
        heapless::Vec::from_slice(ix).ok().map(Self)
    }

    /// The same path with the last index replaced by `i`.
    pub fn with_last(&self, i: usize) -> Self {
        let mut p = self.clone();
        if let Some(last) = p.0.last_mut() {
            *last = i;
        }
        p
    }

    /// This path extended by `branch` then `layer`; `None` if too deep.
    pub fn child(&self, branch: usize, layer: usize) -> Option<Self> {
        let mut p = self.clone();
        p.0.push(branch).ok()?;
        p.0.push(layer).ok()?;
        Some(p)
    }

    /// The index within the innermost sequence.
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(0)
    }
}

impl fmt::Display for LayerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, i) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(".")?;
            }
            write!(f, "{i}")?;
        }
        Ok(())
    }
}

/// Why a network is malformed or an input does not fit it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NetError {
    /// A layer's input has the wrong number of channels or features.
    ChannelMismatch {
        /// The layer.
        layer: LayerPath,
        /// Channels the layer's parameters expect.
        expected: usize,
        /// Channels its input has.
        found: usize,
    },
    /// A dense layer received an image blob.
    DenseNeedsFlat {
        /// The layer.
        layer: LayerPath,
        /// The image shape it received.
        found: Shape,
    },
    /// A convolution or pooling window (after padding) is larger than its input.
    WindowTooLarge {
        /// The layer.
        layer: LayerPath,
        /// Window size.
        k: usize,
        /// Input shape.
        input: Shape,
    },
    /// A pooling stride larger than both its window and its input: every stride from
    /// `useful` on places the same windows.
    PoolStride {
        /// The layer.
        layer: LayerPath,
        /// The stride.
        stride: usize,
        /// The largest stride that means something here.
        useful: usize,
    },
    /// A stride, kernel or pooling size of zero.
    ZeroSize {
        /// The layer.
        layer: LayerPath,
    },
    /// Weight or bias vectors whose lengths disagree with the declared sizes.
    ParamLength {
        /// The layer.
        layer: LayerPath,
    },
    /// A parallel block without branches, or whose branches produce different shapes.
    Branches {
        /// The block.
        layer: LayerPath,
    },
    /// Nesting deeper than [`MAX_PATH_DEPTH`].
    TooDeep,
    /// A max pooling whose input planes hold more than `u32::MAX` values (training records
    /// each maximum's position as a `u32`).
    PlaneTooLarge {
        /// The layer.
        layer: LayerPath,
        /// Input shape.
        input: Shape,
    },
    /// The input tensor does not have the network's input shape.
    InputShape {
        /// The network's input shape.
        expected: Shape,
        /// The tensor's sample shape.
        found: Shape,
    },
    /// A size of a layer (or, for the empty path, of the network's input) overflows `usize` or
    /// exceeds what one allocation can hold (`isize::MAX` bytes per sample): such a network
    /// could never run.
    TooLarge {
        /// The layer; empty for the network's input.
        layer: LayerPath,
        /// Which size (`"output"`, `"padded input"`, `"weight count"`, ...).
        what: &'static str,
    },
    /// The input shape has a zero channel count, height or width.
    EmptyInput {
        /// The input shape.
        input: Shape,
    },
    /// A tensor's value count is not its batch size times its sample size (its fields are
    /// public, so nothing else enforces it).
    InputLength {
        /// Batch size.
        n: usize,
        /// Sample shape.
        shape: Shape,
        /// Values the tensor holds.
        found: usize,
    },
    /// A trace given to [`Network::backward`] was recorded by another network.
    Trace,
    /// A buffer for a layer's output or gradient could not be allocated.
    Alloc {
        /// Bytes requested.
        bytes: usize,
    },
}

impl NetError {
    /// The path of the layer the error names, if it names one.
    pub(crate) fn layer_mut(&mut self) -> Option<&mut LayerPath> {
        match self {
            Self::ChannelMismatch { layer, .. }
            | Self::DenseNeedsFlat { layer, .. }
            | Self::WindowTooLarge { layer, .. }
            | Self::PoolStride { layer, .. }
            | Self::ZeroSize { layer }
            | Self::ParamLength { layer }
            | Self::Branches { layer }
            | Self::PlaneTooLarge { layer, .. }
            | Self::TooLarge { layer, .. } => Some(layer),
            Self::TooDeep
            | Self::InputShape { .. }
            | Self::EmptyInput { .. }
            | Self::InputLength { .. }
            | Self::Trace
            | Self::Alloc { .. } => None,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelMismatch { layer, expected, found } => write!(
                f,
                "layer {layer} expects {expected} input channels but receives {found}; \
                 make its input size match the previous layer's output"
            ),
            Self::DenseNeedsFlat { layer, found } => write!(
                f,
                "dense layer {layer} receives an image blob {}x{}x{}; insert a Flatten layer before it",
                found.c, found.h, found.w
            ),
            Self::WindowTooLarge { layer, k, input } => write!(
                f,
                "layer {layer}: window {k} does not fit its {}x{} input; use a smaller kernel or more padding",
                input.h, input.w
            ),
            Self::PoolStride { layer, stride, useful } => write!(
                f,
                "pooling layer {layer}: stride {stride} is larger than its window and its input, \
                 where every stride from {useful} on places the same windows; use {useful}"
            ),
            Self::ZeroSize { layer } => {
                write!(f, "layer {layer} has a zero kernel, stride or size; use sizes of at least 1")
            }
            Self::ParamLength { layer } => write!(
                f,
                "layer {layer}: weight or bias length disagrees with its declared sizes; rebuild the layer"
            ),
            Self::Branches { layer } => write!(
                f,
                "parallel block {layer} has no branches or branches of different output shapes; \
                 give every branch the same output shape"
            ),
            Self::TooDeep => write!(f, "layers nested deeper than {MAX_PATH_DEPTH} levels; flatten the structure"),
            Self::PlaneTooLarge { layer, input } => write!(
                f,
                "max pooling {layer}: its {}x{} input planes exceed {MAX_POOL_PLANE} values; \
                 downsample the input before it",
                input.h, input.w
            ),
            Self::InputShape { expected, found } => write!(
                f,
                "input samples are {}x{}x{} but the network takes {}x{}x{}; reshape the input",
                found.c, found.h, found.w, expected.c, expected.h, expected.w
            ),
            Self::TooLarge { layer, what } if layer.0.is_empty() => write!(
                f,
                "the network's {what} exceeds the largest possible allocation (isize::MAX bytes); \
                 use a smaller input"
            ),
            Self::TooLarge { layer, what } => write!(
                f,
                "layer {layer}: its {what} exceeds the largest possible allocation (isize::MAX \
                 bytes); use smaller sizes, kernels or padding"
            ),
            Self::EmptyInput { input } => write!(
                f,
                "the input shape {}x{}x{} holds no values; give it at least one channel, row and column",
                input.c, input.h, input.w
            ),
            Self::InputLength { n, shape, found } => {
                write!(f, "the tensor holds {found} values but {n} samples of {}x{}x{} need ", shape.c, shape.h, shape.w)?;
                match shape.checked_len().and_then(|l| l.checked_mul(*n)) {
                    Some(need) => write!(f, "{need}")?,
                    None => write!(f, "more than usize::MAX")?,
                }
                write!(f, "; build tensors with Tensor::new, which checks the length")
            }
            Self::Trace => write!(
                f,
                "the trace was recorded by a different network; run forward_trace on the network \
                 you differentiate"
            ),
            Self::Alloc { bytes } => write!(
                f,
                "could not allocate {bytes} bytes for a layer's output or gradient; use a smaller batch"
            ),
        }
    }
}

impl core::error::Error for NetError {}

impl From<AllocError> for NetError {
    fn from(e: AllocError) -> Self {
        Self::Alloc { bytes: e.bytes }
    }
}

/// A feed-forward network: an input shape and a sequence of layers, validated on construction.
///
/// # Examples
/// ```
/// use netmorph_core::{ActKind, Kernel, Layer, Network, PActivation, Shape};
/// let net = Network::<f64>::new(
///     Shape::flat(3),
///     vec![
///         Layer::Dense(Kernel::zeros(4, 3, 1)),
///         Layer::Activation(PActivation::plain(ActKind::Relu, 4)),
///         Layer::Dense(Kernel::zeros(2, 4, 1)),
///     ],
/// )
/// .unwrap();
/// assert_eq!(net.output_shape(), Shape::flat(2));
/// assert_eq!(net.param_count(), 3 * 4 + 4 + 4 + 4 * 2 + 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T> {
    input: Shape,
    output: Shape,
    layers: Vec<Layer<T>>,
}

impl<T: Scalar> Network<T> {
    /// Validates `layers` against `input` and builds the network.
    ///
    /// Every size the forward and backward passes derive from the geometry (a blob per
    /// sample, a padded input, a kernel's weight count, the patch matrix of one output row of a
    /// convolution) must fit one allocation, `isize::MAX` bytes: a larger one could never be
    /// stored, and refusing it here keeps every size and offset those passes compute inside
    /// `usize`.
    ///
    /// # Errors
    /// A [`NetError`] naming the first layer whose parameters or geometry do not fit;
    /// [`NetError::EmptyInput`] for an input shape with a zero dimension;
    /// [`NetError::TooLarge`] for a size that overflows or exceeds one allocation.
    pub fn new(input: Shape, layers: Vec<Layer<T>>) -> Result<Self, NetError> {
        if input.c == 0 || input.h == 0 || input.w == 0 {
            return Err(NetError::EmptyInput { input });
        }
        let root = LayerPath::default();
        fits::<T>(input.checked_len(), &root, "input sample")?;
        let output = infer_seq(&layers, input, &root)?;
        Ok(Self {
            input,
            output,
            layers,
        })
    }

    /// Sample shape the network takes.
    pub fn input_shape(&self) -> Shape {
        self.input
    }

    /// Sample shape the network produces.
    pub fn output_shape(&self) -> Shape {
        self.output
    }

    /// The top-level layers.
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    /// Mutable parameters; the structure must not change (the optimiser only updates values).
    pub(crate) fn layers_mut(&mut self) -> &mut [Layer<T>] {
        &mut self.layers
    }

    /// Takes the layers out, leaving none: the network is invalid until
    /// [`Network::put_layers`] gives it layers with the same input and output shapes.
    pub(crate) fn take_layers(&mut self) -> Vec<Layer<T>> {
        core::mem::take(&mut self.layers)
    }

    /// Puts back layers from the same input shape to the same output shape (see
    /// [`Network::take_layers`]).
    pub(crate) fn put_layers(&mut self, layers: Vec<Layer<T>>) {
        self.layers = layers;
    }

    /// A network from layers already validated from `input` to `output` (a tail of a valid
    /// network, with the shape before it as `input`).
    pub(crate) fn from_validated(input: Shape, output: Shape, layers: Vec<Layer<T>>) -> Self {
        Self {
            input,
            output,
            layers,
        }
    }

    /// Gives the layers back.
    pub fn into_layers(self) -> Vec<Layer<T>> {
        self.layers
    }

    /// Total number of learnable parameters.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(Layer::param_count).sum()
    }

    /// Checks that `x` holds samples of the input shape, `x.n * input.len()` values.
    pub(crate) fn check_input(&self, x: &Tensor<T>) -> Result<(), NetError> {
        if x.shape != self.input {
            return Err(NetError::InputShape {
                expected: self.input,
                found: x.shape,
            });
        }
        check_length(x)
    }

    /// The layer at `path`, if any.
    pub fn get(&self, path: &LayerPath) -> Option<&Layer<T>> {
        let (seq, i) = seq_at(&self.layers, &path.0)?;
        seq.get(i)
    }

    /// The same network with every parameter converted to `U`.
    pub fn cast<U: Scalar>(&self) -> Network<U> {
        Network {
            input: self.input,
            output: self.output,
            layers: self.layers.iter().map(Layer::cast).collect(),
        }
    }

    /// Sample shape entering the layer at `path` (for `path` one past the end of its sequence,
    /// the shape leaving the sequence).
    pub fn shape_before(&self, path: &LayerPath) -> Option<Shape> {
        let mut shape = self.input;
        let mut seq: &[Layer<T>] = &self.layers;
        let ix = &path.0;
        let mut d = 0;
        loop {
            let i = *ix.get(d)?;
            if i > seq.len() {
                return None;
            }
            for l in &seq[..i] {
                shape = infer_layer(l, shape, &LayerPath::default()).ok()?;
            }
            if d + 1 == ix.len() {
                return Some(shape);
            }
            let Some(Layer::ParallelSum(bs)) = seq.get(i) else {
                return None;
            };
            seq = bs.get(*ix.get(d + 1)?)?;
            d += 2;
        }
    }
}

/// The sequence holding `path` and the index within it.
pub(crate) fn seq_at<'a, T>(
    layers: &'a [Layer<T>],
    ix: &[usize],
) -> Option<(&'a [Layer<T>], usize)> {
    match ix {
        [i] => Some((layers, *i)),
        [i, b, rest @ ..] => match layers.get(*i)? {
            Layer::ParallelSum(bs) => seq_at(bs.get(*b)?, rest),
            _ => None,
        },
        _ => None,
    }
}

/// Mutable sequence holding `path` and the index within it.
pub(crate) fn seq_at_mut<'a, T>(
    layers: &'a mut Vec<Layer<T>>,
    ix: &[usize],
) -> Option<(&'a mut Vec<Layer<T>>, usize)> {
    match ix {
        [i] => Some((layers, *i)),
        [i, b, rest @ ..] => match layers.get_mut(*i)? {
            Layer::ParallelSum(bs) => seq_at_mut(bs.get_mut(*b)?, rest),
            _ => None,
        },
        _ => None,
    }
}

fn infer_seq<T: Scalar>(
    layers: &[Layer<T>],
    input: Shape,
    prefix: &LayerPath,
) -> Result<Shape, NetError> {
    let mut shape = input;
    for (i, l) in layers.iter().enumerate() {
        let mut path = prefix.clone();
        path.0.push(i).map_err(|_| NetError::TooDeep)?;
        shape = infer_layer(l, shape, &path)?;
    }
    Ok(shape)
}

/// Checks that a tensor holds `n * shape.len()` values.
pub(crate) fn check_length<T>(x: &Tensor<T>) -> Result<(), NetError> {
    if x.shape.checked_len().and_then(|l| l.checked_mul(x.n)) == Some(x.data.len()) {
        Ok(())
    } else {
        Err(NetError::InputLength {
            n: x.n,
            shape: x.shape,
            found: x.data.len(),
        })
    }
}

/// `len` if it fits one allocation of `T`s (`isize::MAX` bytes), else [`NetError::TooLarge`].
fn fits<T>(len: Option<usize>, layer: &LayerPath, what: &'static str) -> Result<usize, NetError> {
    len.filter(|n| *n <= isize::MAX as usize / size_of::<T>())
        .ok_or_else(|| NetError::TooLarge {
            layer: layer.clone(),
            what,
        })
}

/// Output shape of one layer for input `s`.
pub(crate) fn infer_layer<T: Scalar>(
    l: &Layer<T>,
    s: Shape,
    path: &LayerPath,
) -> Result<Shape, NetError> {
    let out = infer_geometry(l, s, path)?;
    fits::<T>(out.checked_len(), path, "output")?;
    Ok(out)
}

/// [`infer_layer`] before the output's size check.
fn infer_geometry<T: Scalar>(l: &Layer<T>, s: Shape, path: &LayerPath) -> Result<Shape, NetError> {
    let layer = path.clone();
    match l {
        Layer::Dense(k) => {
            check_kernel(k, &layer)?;
            if !s.is_flat() {
                return Err(NetError::DenseNeedsFlat { layer, found: s });
            }
            if k.k != 1 {
                return Err(NetError::ParamLength { layer });
            }
            channels(k.inp, s.c, &layer)?;
            Ok(Shape::flat(k.out))
        }
        Layer::Conv2d(c) => {
            check_kernel(&c.kernel, &layer)?;
            if c.stride == 0 {
                return Err(NetError::ZeroSize { layer });
            }
            channels(c.kernel.inp, s.c, &layer)?;
            let k = c.kernel.k;
            let padded = |n: usize| c.pad.checked_mul(2).and_then(|p| p.checked_add(n));
            let (h, w) = match (padded(s.h), padded(s.w)) {
                (Some(h), Some(w)) => (h, w),
                _ => {
                    return Err(NetError::TooLarge {
                        layer,
                        what: "padded input",
                    })
                }
            };
            fits::<T>(product(&[s.c, h, w]), &layer, "padded input")?;
            if h < k || w < k {
                return Err(NetError::WindowTooLarge { layer, k, input: s });
            }
            let out = Shape::image(c.kernel.out, (h - k) / c.stride + 1, (w - k) / c.stride + 1);
            // The forward pass copies at least one output row's patches at a time.
            fits::<T>(
                product(&[s.c, k, k, out.w]),
                &layer,
                "patch matrix of one output row",
            )?;
            Ok(out)
        }
        Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
            if p.k == 0 || p.stride == 0 {
                return Err(NetError::ZeroSize { layer });
            }
            // Max pooling keeps `stride` phases of a row: a stride past the window and the
            // input would size them by nothing but the stride.
            let useful = p.k.max(s.h).max(s.w);
            if p.stride > useful {
                return Err(NetError::PoolStride {
                    layer,
                    stride: p.stride,
                    useful,
                });
            }
            if matches!(l, Layer::MaxPool2d(_))
                && s.h.checked_mul(s.w).is_none_or(|n| n > MAX_POOL_PLANE)
            {
                return Err(NetError::PlaneTooLarge { layer, input: s });
            }
            match (p.out_len(s.h), p.out_len(s.w)) {
                (Some(h), Some(w)) => Ok(Shape::image(s.c, h, w)),
                _ => Err(NetError::WindowTooLarge {
                    layer,
                    k: p.k,
                    input: s,
                }),
            }
        }
        Layer::Flatten => Ok(Shape::flat(s.len())),
        Layer::Activation(a) => {
            channels(a.a.len(), s.c, &layer)?;
            Ok(s)
        }
        Layer::ParallelSum(bs) => {
            let mut out = None;
            for (b, seq) in bs.iter().enumerate() {
                let mut p = path.clone();
                p.0.push(b).map_err(|_| NetError::TooDeep)?;
                let o = infer_seq(seq, s, &p)?;
                if out.is_some_and(|x| x != o) {
                    return Err(NetError::Branches { layer });
                }
                out = Some(o);
            }
            out.ok_or(NetError::Branches { layer })
        }
    }
}

fn channels(expected: usize, found: usize, layer: &LayerPath) -> Result<(), NetError> {
    if expected == found {
        Ok(())
    } else {
        Err(NetError::ChannelMismatch {
            layer: layer.clone(),
            expected,
            found,
        })
    }
}

fn check_kernel<T: Scalar>(k: &Kernel<T>, layer: &LayerPath) -> Result<(), NetError> {
    if k.out == 0 || k.inp == 0 || k.k == 0 {
        return Err(NetError::ZeroSize {
            layer: layer.clone(),
        });
    }
    let len = fits::<T>(product(&[k.out, k.inp, k.k, k.k]), layer, "weight count")?;
    if k.weight.len() != len || k.bias.len() != k.out {
        return Err(NetError::ParamLength {
            layer: layer.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;
    use crate::net::layer::{ActKind, Conv2d, PActivation, Pool};

    fn conv(k: usize, pad: usize) -> Layer<f32> {
        Layer::Conv2d(Conv2d {
            kernel: Kernel::zeros(1, 1, k),
            stride: 1,
            pad,
        })
    }

    #[test]
    fn sizes_past_usize_or_one_allocation_are_refused() {
        let input = Shape::image(1, 4, 4);
        // `h + 2 pad` wraps around: before, a release build accepted it and the forward pass
        // panicked in its patch copy.
        let e = Network::new(input, vec![conv(1, usize::MAX / 2)]).unwrap_err();
        assert_eq!(
            e,
            NetError::TooLarge {
                layer: LayerPath::top(0),
                what: "padded input"
            }
        );
        assert!(
            e.to_string()
                .starts_with("layer 0: its padded input exceeds"),
            "{e}"
        );
        // Padding that fits `usize`, but a padded sample no allocation can hold.
        let e = Network::new(input, vec![conv(1, 1 << 30)]).unwrap_err();
        assert!(
            matches!(
                e,
                NetError::TooLarge {
                    what: "padded input",
                    ..
                }
            ),
            "{e}"
        );
        // A weight count `out * in * k * k` that overflows (no weights need to exist).
        let huge = Kernel::<f32> {
            out: 1 << 32,
            inp: 1 << 32,
            k: 1,
            weight: Vec::new(),
            bias: Vec::new(),
        };
        let e = Network::new(Shape::flat(1 << 32), vec![Layer::Dense(huge)]).unwrap_err();
        assert!(
            matches!(
                e,
                NetError::TooLarge {
                    what: "weight count",
                    ..
                }
            ),
            "{e}"
        );
        // An input sample whose `c h w` overflows.
        let e = Network::<f32>::new(Shape::image(1 << 40, 1 << 30, 1), vec![]).unwrap_err();
        assert_eq!(
            e,
            NetError::TooLarge {
                layer: LayerPath::default(),
                what: "input sample"
            }
        );
        assert!(
            e.to_string().starts_with("the network's input sample"),
            "{e}"
        );
        // Large but representable geometry still builds.
        assert!(Network::new(Shape::image(1, 1, 1), vec![conv(1, 1 << 20)]).is_ok());
    }

    #[test]
    fn empty_inputs_are_refused() {
        // Before, this network built, and its forward pass panicked in `chunks_exact(0)`.
        let relu = Layer::Activation(PActivation::plain(ActKind::Relu, 2));
        for input in [
            Shape::image(2, 0, 3),
            Shape::image(2, 3, 0),
            Shape::image(0, 3, 3),
        ] {
            let e = Network::<f64>::new(input, vec![relu.clone()]).unwrap_err();
            assert_eq!(e, NetError::EmptyInput { input });
        }
    }

    #[test]
    fn pooling_strides_past_window_and_input_are_refused() {
        let pool = |stride| Pool {
            k: 2,
            stride,
            ceil: false,
        };
        let input = Shape::image(1, 5, 7);
        let e =
            Network::<f32>::new(input, alloc::vec![Layer::MaxPool2d(pool(1 << 40))]).unwrap_err();
        assert!(matches!(e, NetError::PoolStride { useful: 7, .. }), "{e}");
        let net = Network::<f32>::new(input, alloc::vec![Layer::MaxPool2d(pool(7))]).unwrap();
        assert_eq!(net.output_shape(), Shape::image(1, 1, 1));
    }

    #[test]
    fn max_pooling_refuses_planes_beyond_u32_offsets() {
        let pool = Pool {
            k: 2,
            stride: 2,
            ceil: false,
        };
        let huge = Shape::image(1, 1 << 16, 1 << 16);
        let e = Network::<f32>::new(huge, alloc::vec![Layer::MaxPool2d(pool)]).unwrap_err();
        assert!(matches!(e, NetError::PlaneTooLarge { .. }), "{e}");
        // Average pooling records no positions; a plane just inside the limit is fine.
        assert!(Network::<f32>::new(huge, alloc::vec![Layer::AvgPool2d(pool)]).is_ok());
        let fits = Shape::image(1, 1 << 16, (1 << 16) - 1);
        assert!(Network::<f32>::new(fits, alloc::vec![Layer::MaxPool2d(pool)]).is_ok());
    }
}
