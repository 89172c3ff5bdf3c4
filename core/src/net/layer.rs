//! Layer types: weights in PyTorch layout (dense `[out, in]`, conv `[out, in, k, k]`).

use alloc::vec::Vec;

use crate::alloc_try::{self, AllocError};
use crate::Scalar;

/// Shape of one sample's blob: channels, height, width. Flat features are `(c, 1, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Channels (or features for flat blobs).
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// An image blob `(c, h, w)`.
    pub const fn image(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }
    /// A flat blob of `n` features, `(n, 1, 1)`.
    pub const fn flat(n: usize) -> Self {
        Self { c: n, h: 1, w: 1 }
    }
    /// Number of values per sample, saturating at `usize::MAX` (a validated [`Network`] never
    /// gets near it; use [`Shape::checked_len`] for shapes from elsewhere).
    ///
    /// [`Network`]: crate::Network
    pub const fn len(&self) -> usize {
        self.c.saturating_mul(self.h).saturating_mul(self.w)
    }
    /// Number of values per sample, or `None` if `c * h * w` overflows `usize`.
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::Shape;
    /// assert_eq!(Shape::image(3, 32, 32).checked_len(), Some(3072));
    /// assert_eq!(Shape::image(1 << 32, 1 << 32, 1).checked_len(), None);
    /// ```
    pub const fn checked_len(&self) -> Option<usize> {
        match self.c.checked_mul(self.h) {
            Some(ch) => ch.checked_mul(self.w),
            None => None,
        }
    }
    /// Whether the blob holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the blob is flat (`h == w == 1`).
    pub const fn is_flat(&self) -> bool {
        self.h == 1 && self.w == 1
    }
}

/// The weights of a linear map: `out` filters over `inp` channels with a square `k x k`
/// kernel (`k = 1` for dense layers). `weight` is `[out, inp, k, k]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel<T> {
    /// Output channels (C_{l+1} for the parent layer G).
    pub out: usize,
    /// Input channels (C_{l-1}).
    pub inp: usize,
    /// Kernel size K (square).
    pub k: usize,
    /// `[out, inp, k, k]`, row-major.
    pub weight: Vec<T>,
    /// `[out]`.
    pub bias: Vec<T>,
}

impl<T: Scalar> Kernel<T> {
    /// A kernel filled with zeros.
    ///
    /// # Panics
    /// If `out * inp * k * k` overflows `usize` or the weights cannot be allocated (networks
    /// and morphs build their kernels fallibly and report such sizes as errors).
    #[track_caller]
    pub fn zeros(out: usize, inp: usize, k: usize) -> Self {
        match Self::try_zeros(out, inp, k) {
            Ok(kernel) => kernel,
            Err(e) => panic!(
                "Kernel::zeros({out}, {inp}, {k}) needs {} bytes, more than can be allocated",
                e.bytes
            ),
        }
    }

    /// [`Kernel::zeros`] that reports a size it cannot allocate (`usize::MAX` bytes when the
    /// weight count overflows).
    pub(crate) fn try_zeros(out: usize, inp: usize, k: usize) -> Result<Self, AllocError> {
        let len = alloc_try::product(&[out, inp, k, k]).ok_or(AllocError { bytes: usize::MAX })?;
        Ok(Self {
            out,
            inp,
            k,
            weight: alloc_try::filled(len, T::zero())?,
            bias: alloc_try::filled(out, T::zero())?,
        })
    }

    /// Index of `weight[o, i, y, x]`.
    #[inline]
    pub fn at(&self, o: usize, i: usize, y: usize, x: usize) -> usize {
        ((o * self.inp + i) * self.k + y) * self.k + x
    }

    /// Number of parameters (weights and biases).
    pub fn param_count(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    /// Whether every weight and bias is finite.
    pub fn is_finite(&self) -> bool {
        self.weight.iter().chain(&self.bias).all(|v| v.is_finite())
    }

    /// Converts every value to another scalar type.
    pub fn cast<U: Scalar>(&self) -> Kernel<U> {
        Kernel {
            out: self.out,
            inp: self.inp,
            k: self.k,
            weight: self.weight.iter().map(|v| U::of_f64(v.as_f64())).collect(),
            bias: self.bias.iter().map(|v| U::of_f64(v.as_f64())).collect(),
        }
    }
}

/// A 2-D convolution (cross-correlation, as in every framework) with square kernel,
/// stride and symmetric explicit zero padding.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d<T> {
    /// Filters and bias.
    pub kernel: Kernel<T>,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

/// Pooling geometry (unpadded windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Window size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Caffe-style output size `ceil((h - k) / stride) + 1` instead of `floor`; windows that
    /// run past the border are clipped (average pooling divides by the clipped size).
    pub ceil: bool,
}

impl Pool {
    /// Output length along one axis for input length `n`, or `None` if the window does not fit.
    pub fn out_len(&self, n: usize) -> Option<usize> {
        if n < self.k || self.stride == 0 || self.k == 0 {
            return None;
        }
        let span = n - self.k;
        let mut out = if self.ceil {
            span.div_ceil(self.stride) + 1
        } else {
            span / self.stride + 1
        };
        // Caffe: the last window must start inside the input.
        if (out - 1) * self.stride >= n {
            out -= 1;
        }
        Some(out)
    }
}

/// The base function phi of a P-activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActKind {
    /// `max(x, 0)`; its P-activation family is PReLU.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x`.
    Identity,
}

impl ActKind {
    /// phi(x).
    #[inline]
    pub fn apply<T: Scalar>(self, x: T) -> T {
        match self {
            Self::Relu => x.max(T::zero()),
            Self::Tanh => x.tanh_act(),
            Self::Sigmoid => T::one() / (T::one() + (-x).exp()),
            Self::Identity => x,
        }
    }

    /// `(phi(x), phi'(x))` (ReLU: `phi'(0) = 0`), sharing the one evaluation of phi that
    /// TanH and sigmoid need for both.
    #[inline]
    pub fn phi_and_derivative<T: Scalar>(self, x: T) -> (T, T) {
        match self {
            Self::Relu => (
                x.max(T::zero()),
                if x > T::zero() { T::one() } else { T::zero() },
            ),
            Self::Tanh => {
                let t = x.tanh_act();
                (t, T::one() - t * t)
            }
            Self::Sigmoid => {
                let s = self.apply(x);
                (s, s * (T::one() - s))
            }
            Self::Identity => (x, T::one()),
        }
    }

    /// Lower-case name (`"relu"`, `"tanh"`, `"sigmoid"`, `"identity"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Identity => "identity",
        }
    }
}

/// A P-activation (section 3.3, eq. 9): `phi^a(x) = (1 - a) phi(x) + a x`, one learnable
/// `a` per channel. `a = 0` is the plain activation, `a = 1` the identity.
#[derive(Clone, Debug, PartialEq)]
pub struct PActivation<T> {
    /// The base function phi.
    pub kind: ActKind,
    /// One `a` per channel, in `[0, 1]`.
    pub a: Vec<T>,
}

impl<T: Scalar> PActivation<T> {
    /// The plain activation phi (every `a = 0`) over `channels` channels.
    pub fn plain(kind: ActKind, channels: usize) -> Self {
        Self {
            kind,
            a: alloc::vec![T::zero(); channels],
        }
    }

    /// The identity member of the family (every `a = 1`), as inserted by depth morphs.
    pub fn linear(kind: ActKind, channels: usize) -> Self {
        Self {
            kind,
            a: alloc::vec![T::one(); channels],
        }
    }

    /// phi^a(x) for channel parameter `a`.
    #[inline]
    pub fn eval(kind: ActKind, a: T, x: T) -> T {
        if a == T::one() {
            x
        } else {
            (T::one() - a) * kind.apply(x) + a * x
        }
    }
}

/// One layer of a network.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer<T> {
    /// Fully connected layer on a flat blob (`Kernel::k == 1`).
    Dense(Kernel<T>),
    /// 2-D convolution.
    Conv2d(Conv2d<T>),
    /// Max pooling.
    MaxPool2d(Pool),
    /// Average pooling.
    AvgPool2d(Pool),
    /// `(c, h, w) -> (c h w, 1, 1)`, channel-major (PyTorch's `flatten`).
    Flatten,
    /// P-activation, per channel.
    Activation(PActivation<T>),
    /// Branches run on the same input; their outputs are summed (stacked subnets, eq. 20).
    ParallelSum(Vec<Vec<Layer<T>>>),
}

impl<T: Scalar> Layer<T> {
    /// The kernel of a dense or convolution layer.
    pub fn kernel(&self) -> Option<&Kernel<T>> {
        match self {
            Self::Dense(k) => Some(k),
            Self::Conv2d(c) => Some(&c.kernel),
            _ => None,
        }
    }

    /// Mutable kernel of a dense or convolution layer.
    pub fn kernel_mut(&mut self) -> Option<&mut Kernel<T>> {
        match self {
            Self::Dense(k) => Some(k),
            Self::Conv2d(c) => Some(&mut c.kernel),
            _ => None,
        }
    }

    /// Number of learnable parameters, branches included.
    pub fn param_count(&self) -> usize {
        match self {
            Self::Dense(k) => k.param_count(),
            Self::Conv2d(c) => c.kernel.param_count(),
            Self::Activation(p) => p.a.len(),
            Self::ParallelSum(bs) => bs.iter().flatten().map(Self::param_count).sum(),
            _ => 0,
        }
    }

    /// Short type name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense(_) => "dense",
            Self::Conv2d(_) => "conv2d",
            Self::MaxPool2d(_) => "maxpool2d",
            Self::AvgPool2d(_) => "avgpool2d",
            Self::Flatten => "flatten",
            Self::Activation(_) => "activation",
            Self::ParallelSum(_) => "parallel_sum",
        }
    }

    /// Converts every parameter to another scalar type.
    pub fn cast<U: Scalar>(&self) -> Layer<U> {
        match self {
            Self::Dense(k) => Layer::Dense(k.cast()),
            Self::Conv2d(c) => Layer::Conv2d(Conv2d {
                kernel: c.kernel.cast(),
                stride: c.stride,
                pad: c.pad,
            }),
            Self::MaxPool2d(p) => Layer::MaxPool2d(*p),
            Self::AvgPool2d(p) => Layer::AvgPool2d(*p),
            Self::Flatten => Layer::Flatten,
            Self::Activation(p) => Layer::Activation(PActivation {
                kind: p.kind,
                a: p.a.iter().map(|v| U::of_f64(v.as_f64())).collect(),
            }),
            Self::ParallelSum(bs) => Layer::ParallelSum(
                bs.iter()
                    .map(|b| b.iter().map(Self::cast).collect())
                    .collect(),
            ),
        }
    }
}
