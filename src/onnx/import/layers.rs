//! One node (or a P-activation's four) to one netmorph layer, with the constants read and
//! checked against the shape of the value the node receives.

use netmorph_core::{ActKind, Conv2d, Kernel, Layer, PActivation, Pool, Scalar, Shape};

use super::super::proto::NodeProto;
use super::super::tensor::{self, Decoded};
use super::super::OnnxError;
use super::attrs::Attrs;
use super::graph::{op, unsupported, Graph};

/// Most per-channel values the reader makes up, over all layers: the `a` of plain
/// activations (which ONNX does not store) and per-channel constants broadcast from one
/// value. Their counts come from the graph's declared input shape, which no stored data
/// bounds.
pub const MAX_SYNTHESIZED: usize = 1 << 26;

/// A computed value: one sample's netmorph shape, and whether ONNX holds it as
/// `[N, C, H, W]` (else `[N, C]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Blob {
    pub shape: Shape,
    pub rank4: bool,
}

/// What a node becomes.
pub(super) enum Step<T> {
    /// A new layer, and whether its output is `[N, C, H, W]`.
    Layer(Layer<T>, bool),
    /// A constant added onto the bias of the layer before it.
    Bias(Vec<T>),
    /// A flat value reshaped between `[N, C]` and `[N, C, 1, 1]` (`rank4`): no layer.
    Reshaped {
        /// Whether the result is `[N, C, 1, 1]`.
        rank4: bool,
    },
}

/// Reads nodes of one graph as layers.
pub(super) struct Reader<'g, 'a> {
    /// The graph.
    pub graph: &'g Graph<'a>,
    /// The batch size the graph input declares, if fixed (a `Reshape` may name it).
    pub batch: Option<i64>,
    /// Per-channel values made up so far (see [`MAX_SYNTHESIZED`]).
    pub synthesized: usize,
}

impl Reader<'_, '_> {
    /// Node `i` on input `x`.
    ///
    /// # Errors
    /// [`OnnxError::Unsupported`] naming the node for an operator, attribute or constant
    /// netmorph cannot represent; [`OnnxError::Tensor`] for a constant that cannot be read.
    pub fn node<T: Scalar>(&mut self, i: usize, x: Blob) -> Result<Step<T>, OnnxError> {
        let n = &self.graph.nodes[i];
        if let Some(d) = n
            .domain
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "ai.onnx")
        {
            return Err(unsupported(
                n,
                format!(
                    "its operator comes from the domain \"{d}\"; netmorph reads the default \
                     ONNX operators"
                ),
            ));
        }
        if n.output.iter().filter(|o| !o.is_empty()).count() != 1 {
            return Err(unsupported(
                n,
                "it has more than one output (netmorph layers have one)".into(),
            ));
        }
        let layer = |l, rank4| Ok(Step::Layer(l, rank4));
        match op(n) {
            "Conv" => layer(self.conv(n, x)?, true),
            "Gemm" => layer(self.gemm(n, x)?, false),
            "MatMul" => layer(self.matmul(n, x)?, false),
            "Add" => {
                Attrs::new(n, &[])?;
                Ok(Step::Bias(self.per_channel(
                    n,
                    self.constant_input(n)?,
                    x,
                )?))
            }
            "Relu" | "Tanh" | "Sigmoid" | "Identity" => {
                Attrs::new(n, &[])?;
                let kind = kind(op(n)).unwrap_or(ActKind::Identity);
                self.synthesize(n, x.shape.c)?;
                layer(
                    Layer::Activation(PActivation::plain(kind, x.shape.c)),
                    x.rank4,
                )
            }
            "PRelu" => {
                Attrs::new(n, &[])?;
                let a = self.per_channel(n, self.operand(n, 1)?, x)?;
                layer(
                    Layer::Activation(PActivation {
                        kind: ActKind::Relu,
                        a,
                    }),
                    x.rank4,
                )
            }
            "MaxPool" | "AveragePool" => layer(pool(n, x)?, true),
            "Flatten" => {
                let axis = Attrs::new(n, &["axis"])?.int("axis", 1)?;
                let rank = if x.rank4 { 4 } else { 2 };
                if axis != 1 && axis != 1 - rank {
                    return Err(unsupported(
                        n,
                        format!(
                            "axis {axis} is not supported; netmorph flattens from axis 1 \
                             ([N, C, H, W] -> [N, C H W])"
                        ),
                    ));
                }
                layer(Layer::Flatten, false)
            }
            "Reshape" => self.reshape(n, x),
            "Mul" => Err(unsupported(
                n,
                "a Mul by a constant is read only inside a P-activation, \
                 Add(Mul(phi(x), 1 - a), Mul(x, a))"
                    .into(),
            )),
            _ => Err(unsupported(
                n,
                "netmorph has no layer for this operator (it reads Conv, Gemm, MatMul and Add of \
                 a bias, Relu, Tanh, Sigmoid, PRelu, Identity, MaxPool, AveragePool, Flatten, \
                 Reshape to [N, F], and Add of two branches)"
                    .into(),
            )),
        }
    }

    /// The P-activation `Add(Mul(phi(x), s), Mul(x, a))` on `x`: `s` must be `1 - a` (to
    /// within rounding: 4 units in the last place of `T`).
    ///
    /// # Errors
    /// As [`Reader::node`], naming the `Add` node.
    pub fn p_activation<T: Scalar>(
        &mut self,
        add: usize,
        phi: Option<usize>,
        (mul_phi, mul_x): (usize, usize),
        x: Blob,
    ) -> Result<Layer<T>, OnnxError> {
        let nodes = self.graph.nodes;
        let n = &nodes[add];
        for i in [Some(add), phi, Some(mul_phi), Some(mul_x)]
            .into_iter()
            .flatten()
        {
            Attrs::new(&nodes[i], &[])?;
        }
        let kind = phi
            .and_then(|i| kind(op(&nodes[i])))
            .unwrap_or(ActKind::Identity);
        let s = self.per_channel::<T>(&nodes[mul_phi], self.constant_input(&nodes[mul_phi])?, x)?;
        let a = self.per_channel::<T>(&nodes[mul_x], self.constant_input(&nodes[mul_x])?, x)?;
        let ulps = T::of_f64(4.0) * T::epsilon();
        if let Some(c) = (0..a.len())
            .find(|&c| (s[c] - (T::one() - a[c])).abs() > ulps * a[c].abs().max(T::one()))
        {
            return Err(unsupported(
                n,
                format!(
                    "it adds Mul(phi(x), s) and Mul(x, a), a P-activation only where s = 1 - a, \
                 but channel {c} has s = {} and a = {}",
                    s[c], a[c]
                ),
            ));
        }
        Ok(Layer::Activation(PActivation { kind, a }))
    }

    /// The constant operand of an `Add` or `Mul` of a computed value and a constant, which
    /// may come first or second.
    fn constant_input<T: Scalar>(&self, n: &NodeProto) -> Result<Decoded<T>, OnnxError> {
        let i = n
            .input
            .iter()
            .position(|v| self.graph.is_constant(v))
            .unwrap_or(1);
        self.operand(n, i)
    }

    /// Input `i` of `n` as a constant of floats.
    fn operand<T: Scalar>(&self, n: &NodeProto, i: usize) -> Result<Decoded<T>, OnnxError> {
        let name = n.input.get(i).map_or("", String::as_str);
        match self.graph.constant(name)? {
            Some(t) => tensor::floats(&t, name),
            None => Err(unsupported(
                n,
                format!(
                    "its input {i} (\"{name}\") is computed, where netmorph needs a constant (an \
                 initializer or a Constant node)"
                ),
            )),
        }
    }

    /// Input `i` of `n` if given (not omitted), as a constant.
    fn optional<T: Scalar>(
        &self,
        n: &NodeProto,
        i: usize,
    ) -> Result<Option<Decoded<T>>, OnnxError> {
        match n.input.get(i) {
            Some(v) if !v.is_empty() => self.operand(n, i).map(Some),
            _ => Ok(None),
        }
    }

    /// A constant that broadcasts per channel onto `x` (`[C]`, `[C, 1, 1]`, `[1, C, 1, 1]`,
    /// `[1]`, ...), as `C` values.
    fn per_channel<T: Scalar>(
        &mut self,
        n: &NodeProto,
        t: Decoded<T>,
        x: Blob,
    ) -> Result<Vec<T>, OnnxError> {
        let rank = if x.rank4 { 4 } else { 2 };
        let c = x.shape.c;
        let fits = t.dims.len() <= rank
            && t.dims.iter().enumerate().all(|(j, &d)| {
                let axis = rank - t.dims.len() + j;
                d == 1 || (axis == 1 && d == c)
            });
        if !fits {
            return Err(unsupported(
                n,
                format!(
                    "its constant of shape {:?} does not broadcast per channel onto its input of \
                 {} channels ([N, C{}])",
                    t.dims,
                    c,
                    if x.rank4 { ", H, W" } else { "" }
                ),
            ));
        }
        match t.values[..] {
            [v] if c > 1 => {
                self.synthesize(n, c)?;
                Ok(vec![v; c])
            }
            _ => Ok(t.values),
        }
    }

    /// Counts `c` made-up values against [`MAX_SYNTHESIZED`].
    fn synthesize(&mut self, n: &NodeProto, c: usize) -> Result<(), OnnxError> {
        self.synthesized = self.synthesized.saturating_add(c);
        if self.synthesized > MAX_SYNTHESIZED {
            return Err(unsupported(
                n,
                format!(
                    "the activations need more than {MAX_SYNTHESIZED} per-channel values that the \
                 file does not store; netmorph refuses such sizes from a file"
                ),
            ));
        }
        Ok(())
    }

    fn conv<T: Scalar>(&self, n: &NodeProto, x: Blob) -> Result<Layer<T>, OnnxError> {
        let at = Attrs::new(
            n,
            &[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "group",
                "auto_pad",
            ],
        )?;
        image(&at, x)?;
        let group = at.int("group", 1)?;
        if group != 1 {
            return Err(at.fail(format!(
                "group {group} is not supported; netmorph convolutions connect every input \
                 channel (group 1)"
            )));
        }
        at.no_dilation("convolutions")?;
        let w = self.operand::<T>(n, 1)?;
        let [out, inp, kh, kw] = w.dims[..] else {
            return Err(at.fail(format!(
                "its weight has shape {:?}; a 2-D convolution's is [out, in, k, k]",
                w.dims
            )));
        };
        if kh != kw {
            return Err(at.fail(format!(
                "its {kh}x{kw} kernel is not square; netmorph's kernels are"
            )));
        }
        check_weight(&at, &w.dims, inp, x)?;
        let k = at.kernel(Some(kh))?;
        let (stride, pad) = (at.stride()?, at.pad()?);
        let bias = self.bias(n, 2, out)?;
        Ok(Layer::Conv2d(Conv2d {
            kernel: Kernel {
                out,
                inp,
                k,
                weight: w.values,
                bias,
            },
            stride,
            pad,
        }))
    }

    /// `Y = A B' + C` with `B` constant: a dense layer (`transB` 1 stores `B` as netmorph
    /// does, `[out, in]`; 0 as `[in, out]`).
    fn gemm<T: Scalar>(&mut self, n: &NodeProto, x: Blob) -> Result<Layer<T>, OnnxError> {
        let at = Attrs::new(n, &["alpha", "beta", "transA", "transB"])?;
        flat(&at, x)?;
        let (alpha, beta) = (at.float("alpha", 1.0)?, at.float("beta", 1.0)?);
        let has_bias = n.input.get(2).is_some_and(|v| !v.is_empty());
        if alpha != 1.0 || (has_bias && beta != 1.0) {
            return Err(at.fail(format!(
                "alpha {alpha} and beta {beta} are not supported; netmorph's dense layers have \
                 alpha = beta = 1"
            )));
        }
        if at.flag("transA")? {
            return Err(at.fail("transA 1 is not supported: the input is [N, F]".into()));
        }
        let w = self.operand::<T>(n, 1)?;
        let kernel = if at.flag("transB")? {
            let [out, inp] = w.dims[..] else {
                return Err(matrix(&at, &w.dims));
            };
            check_weight(&at, &w.dims, inp, x)?;
            Kernel {
                out,
                inp,
                k: 1,
                weight: w.values,
                bias: Vec::new(),
            }
        } else {
            transposed(&at, w, x)?
        };
        // `C` broadcasts onto `[N, out]`: per output, or one value for all.
        let out = Blob {
            shape: Shape::flat(kernel.out),
            rank4: false,
        };
        let bias = match self.optional::<T>(n, 2)? {
            Some(c) => self.per_channel(n, c, out)?,
            None => vec![T::zero(); kernel.out],
        };
        Ok(Layer::Dense(Kernel { bias, ..kernel }))
    }

    /// `Y = A B` with `B` constant (`[in, out]`): a dense layer without bias (an `Add`
    /// after it gives one).
    fn matmul<T: Scalar>(&self, n: &NodeProto, x: Blob) -> Result<Layer<T>, OnnxError> {
        let at = Attrs::new(n, &[])?;
        flat(&at, x)?;
        let kernel = transposed(&at, self.operand::<T>(n, 1)?, x)?;
        Ok(Layer::Dense(Kernel {
            bias: vec![T::zero(); kernel.out],
            ..kernel
        }))
    }

    /// A convolution's bias, input `i` of `n`: `[out]` (zeros if omitted).
    fn bias<T: Scalar>(&self, n: &NodeProto, i: usize, out: usize) -> Result<Vec<T>, OnnxError> {
        match self.optional::<T>(n, i)? {
            None => Ok(vec![T::zero(); out]),
            Some(b) if b.dims == [out] => Ok(b.values),
            Some(b) => Err(unsupported(
                n,
                format!("its bias has shape {:?} where [{out}] is expected", b.dims),
            )),
        }
    }

    /// A `Reshape` that flattens `x` to `[N, F]` (a flatten layer where `x` is an image
    /// with more than one pixel), or takes a flat `x` from `[N, C]` to `[N, C, 1, 1]` and
    /// back (no layer: netmorph holds both alike).
    fn reshape<T: Scalar>(&self, n: &NodeProto, x: Blob) -> Result<Step<T>, OnnxError> {
        let at = Attrs::new(n, &["allowzero"])?;
        let allowzero = at.flag("allowzero")?;
        let name = n.input.get(1).map_or("", String::as_str);
        let Some(t) = self.graph.constant(name)? else {
            return Err(at.fail(format!(
                "its target shape \"{name}\" is computed; netmorph reads a Reshape whose shape \
                 is a constant"
            )));
        };
        let target = tensor::ints(&t, name)?.values;
        let features = i64::try_from(x.shape.len()).unwrap_or(i64::MAX);
        let batch = |b: i64| b == -1 || (b == 0 && !allowzero) || Some(b) == self.batch;
        // `-1` for the batch: the rest must hold one sample exactly.
        let sample = |b: i64, c: i64| c == features || (c == -1 && b != -1);
        match target[..] {
            [b, c] if batch(b) && sample(b, c) => Ok(if x.shape.is_flat() {
                Step::Reshaped { rank4: false }
            } else {
                Step::Layer(Layer::Flatten, false)
            }),
            [b, c, 1, 1] if x.shape.is_flat() && batch(b) && sample(b, c) => {
                Ok(Step::Reshaped { rank4: true })
            }
            _ => Err(at.fail(format!(
                "it reshapes to {target:?}; netmorph reads a Reshape only as a flatten to \
                 [N, {features}] ([N, -1], [0, -1] or [-1, {features}]) or, for a flat input, \
                 to [N, {features}, 1, 1]"
            ))),
        }
    }
}

/// MaxPool or AveragePool: square unpadded windows, equal strides, ceil mode either way.
/// `count_include_pad` is accepted either way: without padding, ONNX Runtime and PyTorch
/// divide a window clipped at the border by its clipped size, as netmorph does.
fn pool<T: Scalar>(n: &NodeProto, x: Blob) -> Result<Layer<T>, OnnxError> {
    let avg = op(n) == "AveragePool";
    let last = if avg {
        "count_include_pad"
    } else {
        "storage_order"
    };
    let at = Attrs::new(
        n,
        &[
            "kernel_shape",
            "strides",
            "pads",
            "ceil_mode",
            "dilations",
            "auto_pad",
            last,
        ],
    )?;
    image(&at, x)?;
    at.no_dilation("pooling windows")?;
    at.flag(last)?;
    if at.pad()? != 0 {
        return Err(at.fail(
            "padded pooling is not supported; netmorph's pooling windows are unpadded".into(),
        ));
    }
    let p = Pool {
        k: at.kernel(None)?,
        stride: at.stride()?,
        ceil: at.flag("ceil_mode")?,
    };
    Ok(if avg {
        Layer::AvgPool2d(p)
    } else {
        Layer::MaxPool2d(p)
    })
}

/// The activation an operator computes.
fn kind(op: &str) -> Option<ActKind> {
    match op {
        "Relu" => Some(ActKind::Relu),
        "Tanh" => Some(ActKind::Tanh),
        "Sigmoid" => Some(ActKind::Sigmoid),
        "Identity" => Some(ActKind::Identity),
        _ => None,
    }
}

/// A `[in, out]` weight for input `x` as a kernel `[out, in]`.
fn transposed<T: Scalar>(at: &Attrs, w: Decoded<T>, x: Blob) -> Result<Kernel<T>, OnnxError> {
    let [inp, out] = w.dims[..] else {
        return Err(matrix(at, &w.dims));
    };
    check_weight(at, &w.dims, inp, x)?;
    let weight = (0..out)
        .flat_map(|o| (0..inp).map(move |i| i * out + o))
        .map(|ix| w.values[ix])
        .collect();
    Ok(Kernel {
        out,
        inp,
        k: 1,
        weight,
        bias: Vec::new(),
    })
}

/// Refuses a weight with an empty axis, or whose input size is not `x`'s channels (features).
/// The stored values bound the product of the axes; only with every axis at least 1 do they
/// bound each axis, and so everything sized by the output count (the bias, the next blob).
fn check_weight(at: &Attrs, dims: &[usize], inp: usize, x: Blob) -> Result<(), OnnxError> {
    if dims.contains(&0) {
        return Err(at.fail(format!("its weight has shape {dims:?}, with an empty axis")));
    }
    if inp != x.shape.c {
        return Err(at.fail(format!(
            "its weight takes {inp} input channels (features) but its input has {}",
            x.shape.c
        )));
    }
    Ok(())
}

fn matrix(at: &Attrs, dims: &[usize]) -> OnnxError {
    at.fail(format!(
        "its weight has shape {dims:?}; a dense layer's is a matrix"
    ))
}

/// Refuses a flat input where an image is needed.
fn image(at: &Attrs, x: Blob) -> Result<(), OnnxError> {
    if x.rank4 {
        Ok(())
    } else {
        Err(at.fail("its input is a flat [N, F] value; it needs [N, C, H, W]".into()))
    }
}

/// Refuses an image input where a flat one is needed.
fn flat(at: &Attrs, x: Blob) -> Result<(), OnnxError> {
    if x.rank4 {
        Err(at.fail(
            "its input is [N, C, H, W]; netmorph's dense layers take [N, F] (flatten first)".into(),
        ))
    } else {
        Ok(())
    }
}
