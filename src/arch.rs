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
            c *= self.number("a channel multiplier >= 1")?;
        }
        self.expect(b')', "`)`")?;
        Ok(ConvLayer { k, c })
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
            subnets.extend(std::iter::repeat_n(group, n));
        } else {
            let layer = p.layer()?;
            let n = p.repeat()?;
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

impl Arch {
    /// Builds the network for `input` samples and `classes` outputs with the template above.
    ///
    /// # Errors
    /// [`NetError`] if the input is too small for the pooling windows.
    pub fn build<T: Scalar>(
        &self,
        input: Shape,
        classes: usize,
        rng: &mut Rng,
    ) -> Result<Network<T>, NetError> {
        let mut layers = Vec::new();
        let relu = |c: usize| Layer::Activation(PActivation::plain(ActKind::Relu, c));
        let mut s = input;
        match self {
            Self::Mlp(hidden) => {
                layers.push(Layer::Flatten);
                let mut width = input.len();
                for &h in hidden {
                    layers.push(Layer::Dense(gaussian(
                        h,
                        width,
                        1,
                        1.0 / (width as f64).sqrt(),
                        rng,
                    )));
                    layers.push(relu(h));
                    width = h;
                }
                layers.push(Layer::Dense(gaussian(
                    classes,
                    width,
                    1,
                    1.0 / (width as f64).sqrt(),
                    rng,
                )));
            }
            Self::Conv(subnets) => {
                let pool = Pool {
                    k: 3,
                    stride: 2,
                    ceil: true,
                };
                let last = subnets.len() - 1;
                let mut first = true;
                for (si, subnet) in subnets.iter().enumerate() {
                    for (li, l) in subnet.iter().enumerate() {
                        let std = if first { 1e-4 } else { 0.01 };
                        first = false;
                        layers.push(Layer::Conv2d(Conv2d {
                            kernel: gaussian(l.c, s.c, l.k, std, rng),
                            stride: 1,
                            pad: l.k / 2,
                        }));
                        s = Shape::image(l.c, s.h, s.w);
                        let end_of_subnet = li + 1 == subnet.len();
                        if si == 0 && end_of_subnet {
                            layers.push(Layer::MaxPool2d(pool));
                            s = Shape::image(
                                s.c,
                                pool.out_len(s.h).unwrap_or(0),
                                pool.out_len(s.w).unwrap_or(0),
                            );
                        }
                        layers.push(relu(l.c));
                        if end_of_subnet && si > 0 && (si == 1 || si == last) {
                            layers.push(Layer::AvgPool2d(pool));
                            s = Shape::image(
                                s.c,
                                pool.out_len(s.h).unwrap_or(0),
                                pool.out_len(s.w).unwrap_or(0),
                            );
                        }
                    }
                }
                layers.push(Layer::Flatten);
                layers.push(Layer::Dense(gaussian(64, s.len(), 1, 0.1, rng)));
                layers.push(Layer::Dense(gaussian(classes, 64, 1, 0.1, rng)));
            }
        }
        Network::new(input, layers)
    }
}
