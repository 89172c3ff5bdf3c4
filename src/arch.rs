//! Architecture specs in the paper's notation (section 4.2), built on the Caffe
//! `cifar10_quick` template, and MLP specs.
//!
//! # Grammar
//!
//! ```text
//! spec    := mlp | conv
//! conv    := item+
//! item    := group [ "x" N ]
//! group   := layer | "[" layer+ "]"
//! layer   := "(" K ":" C [ "x" M ] ")"      a K x K convolution with C * M outputs
//! mlp     := "mlp(" [ H { "," H } ] ")"      hidden widths; "mlp()" is softmax regression
//! ```
//!
//! `[...]` groups layers into a subnet and `xN` repeats a layer or subnet. Without brackets
//! every layer starts a new subnet, except a `1 x 1` layer, which joins the subnet before it
//! (the paper's morph-inserted `1 x 1` layers: `(5:32x4)(1:32)(5:32)(5:64)` is cifar_211).
//! So `(5:32)(5:32)(5:64)`, `(5:32)x2(5:64)` and `[(5:32)]x2[(5:64)]` are all cifar10_quick.
//!
//! # Template (Caffe's cifar10_quick)
//!
//! Convolutions have padding `K / 2` and are followed by ReLU. Pooling windows are 3 with
//! stride 2, unpadded, with Caffe's ceil output size (32 -> 16 -> 8 -> 4): a max-pool after the
//! first subnet (placed before its ReLU, as in Caffe), and average pools after the second and
//! after the last subnet; subnets in between (inserted by subnet morphing, cifar_222 ->
//! cifar_2222) add no pooling. Then flatten, a 64-unit dense layer and the class layer, with no
//! ReLU between them. Gaussian fillers: std 1e-4 for the first convolution, 0.01 for the
//! others, 0.1 for the dense layers; zero biases. MLPs use ReLU hidden layers with
//! `1 / sqrt(fan_in)` Gaussian weights.

use std::fmt;

use netmorph_core::{
    ActKind, Conv2d, Kernel, Layer, NetError, Network, PActivation, Pool, Rng, Scalar, Shape,
};

/// One convolution of a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvLayer {
    /// Kernel size.
    pub k: usize,
    /// Output channels.
    pub c: usize,
}

/// A parsed architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Convolutional subnets on the cifar10_quick template.
    Conv(Vec<Vec<ConvLayer>>),
    /// Hidden widths of a multi-layer perceptron.
    Mlp(Vec<usize>),
}

/// A spec that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchError {
    /// Character offset of the problem.
    pub at: usize,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for ArchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "architecture spec: expected {} at character {}; write e.g. `(5:32)(5:32)(5:64)`, `[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]x2` or `mlp(50)`",
            self.expected, self.at
        )
    }
}

impl std::error::Error for ArchError {}

/// Most layers a spec may describe (convolutions, or hidden layers of an MLP). The paper's
/// deepest network has 8 convolutions; the bound keeps a typo such as `x999999999` from
/// reserving memory for a billion layers while parsing.
pub const MAX_LAYERS: usize = 1024;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, expected: &'static str) -> ArchError {
        ArchError {
            at: self.i,
            expected,
        }
    }
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ArchError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }
    fn number(&mut self, what: &'static str) -> Result<usize, ArchError> {
        self.skip_ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or(ArchError {
                at: start,
                expected: what,
            })
    }
    fn layer(&mut self) -> Result<ConvLayer, ArchError> {
        self.expect(b'(', "`(`")?;
        let k = self.number("a kernel size >= 1")?;
        if k % 2 == 0 {
            return Err(ArchError {
                at: self.i - 1,
                expected: "an odd kernel size",
            });
        }
        self.expect(b':', "`:` between kernel size and channels")?;
        let mut c = self.number("a channel count >= 1")?;
        if self.eat(b'x') {
            let at = self.i;
            c = c
                .checked_mul(self.number("a channel multiplier >= 1")?)
                .ok_or(ArchError {
                    at,
                    expected: "a channel count times multiplier that fits in 64 bits",
                })?;
        }
        self.expect(b')', "`)`")?;
        Ok(ConvLayer { k, c })
    }
    /// Counts `more` layers (`None`: overflowed) into `total`, refusing more than
    /// [`MAX_LAYERS`].
    fn room(&self, more: Option<usize>, total: &mut usize) -> Result<(), ArchError> {
        *total = more
            .and_then(|m| total.checked_add(m))
            .filter(|t| *t <= MAX_LAYERS)
            .ok_or_else(|| self.err("at most 1024 convolutions in all (fewer repetitions)"))?;
        Ok(())
    }
    fn repeat(&mut self) -> Result<usize, ArchError> {
        if self.eat(b'x') {
            self.number("a repetition count >= 1")
        } else {
            Ok(1)
        }
    }
}

/// Parses a spec.
///
/// # Errors
/// [`ArchError`] with the character offset and what was expected there.
///
/// # Examples
/// ```
/// use netmorph::arch::{parse, Arch, ConvLayer};
/// let quick = parse("(5:32)x2(5:64)").unwrap();
/// assert_eq!(quick, parse("[(5:32)]x2[(5:64)]").unwrap());
/// let Arch::Conv(subnets) = parse("(5:32x4)(1:32)(5:32)(5:64)").unwrap() else { unreachable!() };
/// assert_eq!(subnets[0], vec![ConvLayer { k: 5, c: 128 }, ConvLayer { k: 1, c: 32 }]);
/// assert!(parse("(4:32)").is_err());
/// ```
pub fn parse(spec: &str) -> Result<Arch, ArchError> {
    let trimmed = spec.trim();
    let mut p = Parser {
        s: spec.as_bytes(),
        i: spec.len() - spec.trim_start().len(),
    };
    if trimmed.starts_with("mlp") {
        p.i += 3;
        p.expect(b'(', "`(` after `mlp`")?;
        let mut hidden = Vec::new();
        if !p.eat(b')') {
            loop {
                if hidden.len() == MAX_LAYERS {
                    return Err(p.err("at most 1024 hidden layers"));
                }
                hidden.push(p.number("a hidden width >= 1")?);
                if p.eat(b')') {
                    break;
                }
                p.expect(b',', "`,` or `)`")?;
            }
        }
        p.skip_ws();
        return if p.i == p.s.len() {
            Ok(Arch::Mlp(hidden))
        } else {
            Err(p.err("the end of the spec"))
        };
    }
    let mut subnets: Vec<Vec<ConvLayer>> = Vec::new();
    let mut layers = 0usize;
    loop {
        p.skip_ws();
        if p.i == p.s.len() {
            break;
        }
        if p.eat(b'[') {
            let mut group = vec![p.layer()?];
            while !p.eat(b']') {
                group.push(p.layer()?);
            }
            let n = p.repeat()?;
            p.room(n.checked_mul(group.len()), &mut layers)?;
            subnets.extend(std::iter::repeat_n(group, n));
        } else {
            let layer = p.layer()?;
            let n = p.repeat()?;
            p.room(Some(n), &mut layers)?;
            for _ in 0..n {
                match subnets.last_mut() {
                    Some(last) if layer.k == 1 => last.push(layer),
                    _ => subnets.push(vec![layer]),
                }
            }
        }
    }
    if subnets.is_empty() {
        return Err(p.err("at least one layer such as `(5:32)`"));
    }
    Ok(Arch::Conv(subnets))
}

fn gaussian<T: Scalar>(out: usize, inp: usize, k: usize, std: f64, rng: &mut Rng) -> Kernel<T> {
    let mut kern = Kernel::zeros(out, inp, k);
    kern.weight = rng
        .normals(kern.weight.len(), std)
        .into_iter()
        .map(T::of_f64)
        .collect();
    kern
}

/// A layer of a spec before its weights are drawn.
enum Planned {
    /// Weights `[out, inp, k, k]` drawn with standard deviation `std`; `k = 0` for dense.
    Linear {
        out: usize,
        inp: usize,
        k: usize,
        std: f64,
    },
    MaxPool,
    AvgPool,
    Relu(usize),
    Flatten,
}

/// Parameters of planned layers (`None` on overflow).
fn count(plan: &[Planned]) -> Option<usize> {
    plan.iter().try_fold(0usize, |total, l| {
        let n = match *l {
            Planned::Linear { out, inp, k, .. } => {
                let k = k.max(1);
                out.checked_mul(inp)?
                    .checked_mul(k.checked_mul(k)?)?
                    .checked_add(out)?
            }
            Planned::Relu(c) => c,
            Planned::MaxPool | Planned::AvgPool | Planned::Flatten => 0,
        };
        total.checked_add(n)
    })
}

/// Caffe's cifar10_quick pooling: 3 x 3 windows, stride 2, ceil output size.
const POOL: Pool = Pool {
    k: 3,
    stride: 2,
    ceil: true,
};

impl Arch {
    /// The layers of the template for `input` samples and `classes` outputs, without
    /// weights; `None` if a size overflows.
    fn plan(&self, input: Shape, classes: usize) -> Option<Vec<Planned>> {
        let mut layers = Vec::new();
        let fan_in = |width: usize| 1.0 / (width as f64).sqrt();
        let pooled = |s: Shape| {
            Shape::image(
                s.c,
                POOL.out_len(s.h).unwrap_or(0),
                POOL.out_len(s.w).unwrap_or(0),
            )
        };
        let mut s = input;
        let mut width = input.c.checked_mul(input.h)?.checked_mul(input.w)?;
        match self {
            Self::Mlp(hidden) => {
                let dense = |out: usize, inp: usize| Planned::Linear {
                    out,
                    inp,
                    k: 0,
                    std: fan_in(inp),
                };
                layers.push(Planned::Flatten);
                for &h in hidden {
                    layers.push(dense(h, width));
                    layers.push(Planned::Relu(h));
                    width = h;
                }
                layers.push(dense(classes, width));
            }
            Self::Conv(subnets) => {
                let last = subnets.len().saturating_sub(1);
                let mut first = true;
                for (si, subnet) in subnets.iter().enumerate() {
                    for (li, l) in subnet.iter().enumerate() {
                        let std = if first { 1e-4 } else { 0.01 };
                        first = false;
                        layers.push(Planned::Linear {
                            out: l.c,
                            inp: s.c,
                            k: l.k,
                            std,
                        });
                        s = Shape::image(l.c, s.h, s.w);
                        let end_of_subnet = li + 1 == subnet.len();
                        if si == 0 && end_of_subnet {
                            layers.push(Planned::MaxPool);
                            s = pooled(s);
                        }
                        layers.push(Planned::Relu(l.c));
                        if end_of_subnet && si > 0 && (si == 1 || si == last) {
                            layers.push(Planned::AvgPool);
                            s = pooled(s);
                        }
                    }
                }
                let flat = s.c.checked_mul(s.h)?.checked_mul(s.w)?;
                layers.push(Planned::Flatten);
                layers.push(Planned::Linear {
                    out: 64,
                    inp: flat,
                    k: 0,
                    std: 0.1,
                });
                layers.push(Planned::Linear {
                    out: classes,
                    inp: 64,
                    k: 0,
                    std: 0.1,
                });
            }
        }
        Some(layers)
    }

    /// Parameters of the network [`Arch::build`] makes for `input` samples and `classes`
    /// outputs, computed without building it (`None` if the count overflows `usize`): what
    /// a caller checks against its memory before building.
    ///
    /// # Examples
    /// ```
    /// use netmorph::arch::parse;
    /// use netmorph::{Rng, Shape};
    /// let mlp = parse("mlp(50)").unwrap();
    /// assert_eq!(mlp.param_count(Shape::image(1, 28, 28), 10), Some(784 * 50 + 50 + 50 + 50 * 10 + 10));
    /// assert_eq!(parse("mlp(18446744073709551615)").unwrap().param_count(Shape::image(1, 28, 28), 10), None);
    /// let quick = parse("(5:32)(5:32)(5:64)").unwrap();
    /// let net = quick.build::<f32>(Shape::image(3, 32, 32), 10, &mut Rng::seed(0)).unwrap();
    /// assert_eq!(quick.param_count(Shape::image(3, 32, 32), 10), Some(net.param_count()));
    /// ```
    pub fn param_count(&self, input: Shape, classes: usize) -> Option<usize> {
        count(&self.plan(input, classes)?)
    }

    /// Builds the network for `input` samples and `classes` outputs with the template above.
    /// Its size is the caller's to check first ([`Arch::param_count`]).
    ///
    /// # Errors
    /// [`BuildError`] if a size overflows or the input is too small for the pooling windows.
    pub fn build<T: Scalar>(
        &self,
        input: Shape,
        classes: usize,
        rng: &mut Rng,
    ) -> Result<Network<T>, BuildError> {
        let plan = self
            .plan(input, classes)
            .filter(|p| count(p).is_some())
            .ok_or(BuildError::Overflow)?;
        let layers = plan
            .into_iter()
            .map(|l| match l {
                Planned::Linear {
                    out,
                    inp,
                    k: 0,
                    std,
                } => Layer::Dense(gaussian(out, inp, 1, std, rng)),
                Planned::Linear { out, inp, k, std } => Layer::Conv2d(Conv2d {
                    kernel: gaussian(out, inp, k, std, rng),
                    stride: 1,
                    pad: k / 2,
                }),
                Planned::MaxPool => Layer::MaxPool2d(POOL),
                Planned::AvgPool => Layer::AvgPool2d(POOL),
                Planned::Relu(c) => Layer::Activation(PActivation::plain(ActKind::Relu, c)),
                Planned::Flatten => Layer::Flatten,
            })
            .collect();
        Network::new(input, layers).map_err(BuildError::Net)
    }
}

/// Why [`Arch::build`] cannot make a network.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The parameter count overflows `usize`.
    Overflow,
    /// The layers do not fit the input (too small for the pooling windows).
    Net(NetError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflow => write!(
                f,
                "the architecture's parameter count overflows 64 bits; use fewer or narrower layers"
            ),
            Self::Net(e) => write!(f, "the architecture does not fit the data: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Net(e) => Some(e),
            Self::Overflow => None,
        }
    }
}
