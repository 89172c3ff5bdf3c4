//! Backward pass: gradients of a scalar loss with respect to every parameter (weights, biases,
//! P-activation `a`) and to the input, given the loss's gradient at the output.
//!
//! Convolutions use the same patch matrices as the forward pass (see `patches`):
//! `dW = dY cols^T`; the input gradient of a stride-1 layer with padding below `K` is the
//! convolution of `dY` with the flipped filters, that of other layers `W^T dY` added back onto
//! the input pixels (col2im).

use alloc::vec::Vec;

use faer::{Accum, MatMut, MatRef, Par};

use super::forward::{forward_layer, forward_layer_ref};
use super::layer::Shape;
use super::layer::{ActKind, Conv2d, Kernel, Layer, PActivation};
use super::network::{check_length, infer_layer, LayerPath, NetError, Network};
use super::patches::Patches;
use super::pool::{avg_pool_backward, max_pool_argmax, max_pool_backward};
use super::reduce::{sum, sum_by};
use crate::alloc_try;
use crate::gemm::matmul;
use crate::{Scalar, Tensor};

/// What a training forward pass keeps for the backward pass: every layer's input.
#[derive(Clone, Debug)]
pub struct Trace<T> {
    steps: Vec<Step<T>>,
}

#[derive(Clone, Debug)]
enum Step<T> {
    /// The layer's input.
    Input(Tensor<T>),
    /// A parallel block's input and each branch's trace.
    Branches(Tensor<T>, Vec<Trace<T>>),
    /// A max pooling's input batch size and shape, and where each output's maximum sits.
    MaxPool(usize, Shape, Vec<u32>),
    /// A flatten's input batch size and shape (its gradient is `dY` reshaped).
    Flatten(usize, Shape),
}

/// Gradients of a loss: a layer list shaped like the network's, whose parameters hold the
/// gradients (weights, biases, `a`), and the gradient with respect to the input.
#[derive(Clone, Debug)]
pub struct Gradients<T> {
    pub(crate) layers: Vec<Layer<T>>,
    input: Option<Tensor<T>>,
}

impl<T: Scalar> Gradients<T> {
    /// Per-layer gradients, in the network's structure.
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    /// Gradient with respect to the network's input; `None` from
    /// [`Network::param_gradients`], which skips it.
    pub fn input(&self) -> Option<&Tensor<T>> {
        self.input.as_ref()
    }
}

impl<T: Scalar> Network<T> {
    /// Forward pass that also records what [`Network::backward`] needs.
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn forward_trace(&self, x: &Tensor<T>) -> Result<(Tensor<T>, Trace<T>), NetError> {
        self.check_input(x)?;
        trace_seq(self.layers(), x.try_clone()?)
    }

    /// [`Network::forward_trace`] on a batch the trace may keep (no copy of the input).
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn forward_trace_owned(&self, x: Tensor<T>) -> Result<(Tensor<T>, Trace<T>), NetError> {
        self.check_input(&x)?;
        trace_seq(self.layers(), x)
    }

    /// Gradients of a loss whose gradient at the output is `dy`, for the forward pass that
    /// produced `trace`.
    ///
    /// # Errors
    /// [`NetError::InputShape`] if `dy` does not have the output's shape and batch size;
    /// [`NetError::InputLength`] if it does not hold `dy.n` samples' values;
    /// [`NetError::Trace`] if the trace was recorded by another network;
    /// [`NetError::Alloc`] if a gradient cannot be allocated.
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::{Kernel, Layer, Network, Shape, Tensor};
    /// let mut k = Kernel::<f64>::zeros(1, 2, 1);
    /// k.weight = vec![2.0, -1.0];
    /// let net = Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap();
    /// let x = Tensor::new(1, Shape::flat(2), vec![3.0, 5.0]).unwrap();
    /// let (y, trace) = net.forward_trace(&x).unwrap();
    /// let g = net.backward(&trace, &Tensor::new(1, y.shape, vec![1.0]).unwrap()).unwrap();
    /// assert_eq!(g.input().unwrap().data, vec![2.0, -1.0]); // dy/dx = W
    /// assert_eq!(g.layers()[0].kernel().unwrap().weight, vec![3.0, 5.0]); // dy/dW = x
    /// ```
    pub fn backward(&self, trace: &Trace<T>, dy: &Tensor<T>) -> Result<Gradients<T>, NetError> {
        self.backward_with(trace, dy, true)
    }

    /// [`Network::backward`] without the gradient with respect to the input (what training
    /// needs): the first layer skips its input-gradient products.
    ///
    /// # Errors
    /// As [`Network::backward`].
    pub fn param_gradients(
        &self,
        trace: &Trace<T>,
        dy: &Tensor<T>,
    ) -> Result<Gradients<T>, NetError> {
        self.backward_with(trace, dy, false)
    }

    fn backward_with(
        &self,
        trace: &Trace<T>,
        dy: &Tensor<T>,
        need_dx: bool,
    ) -> Result<Gradients<T>, NetError> {
        let batch = trace.steps.first().map_or(dy.n, |s| match s {
            Step::Input(t) | Step::Branches(t, _) => t.n,
            Step::MaxPool(n, ..) | Step::Flatten(n, _) => *n,
        });
        if dy.shape != self.output_shape() || dy.n != batch {
            return Err(NetError::InputShape {
                expected: self.output_shape(),
                found: dy.shape,
            });
        }
        check_length(dy)?;
        if trace_output(self.layers(), &trace.steps, self.input_shape(), batch).is_none() {
            return Err(NetError::Trace);
        }
        let (input, layers) = backward_seq(self.layers(), &trace.steps, dy.try_clone()?, need_dx)?;
        Ok(Gradients { layers, input })
    }
}

/// The output shape of `layers` if `steps` is what they record on `n` samples of `input`
/// (so the backward pass's shapes all agree), else `None`.
fn trace_output<T: Scalar>(
    layers: &[Layer<T>],
    steps: &[Step<T>],
    input: Shape,
    n: usize,
) -> Option<Shape> {
    if layers.len() != steps.len() {
        return None;
    }
    let mut shape = input;
    for (l, step) in layers.iter().zip(steps) {
        let out = infer_layer(l, shape, &LayerPath::default()).ok()?;
        let fits = |x: &Tensor<T>| x.n == n && x.shape == shape;
        let recorded = match (l, step) {
            (Layer::ParallelSum(bs), Step::Branches(x, traces)) => {
                fits(x)
                    && bs.len() == traces.len()
                    && bs
                        .iter()
                        .zip(traces)
                        .all(|(b, t)| trace_output(b, &t.steps, shape, n).is_some())
            }
            (Layer::MaxPool2d(_), Step::MaxPool(m, s, at)) => {
                (*m, *s) == (n, shape) && out.len().checked_mul(n) == Some(at.len())
            }
            (Layer::Flatten, Step::Flatten(m, s)) => (*m, *s) == (n, shape),
            (
                Layer::Dense(_) | Layer::Conv2d(_) | Layer::AvgPool2d(_) | Layer::Activation(_),
                Step::Input(x),
            ) => fits(x),
            _ => false,
        };
        if !recorded {
            return None;
        }
        shape = out;
    }
    Some(shape)
}

fn trace_seq<T: Scalar>(
    layers: &[Layer<T>],
    mut x: Tensor<T>,
) -> Result<(Tensor<T>, Trace<T>), NetError> {
    let mut steps = Vec::with_capacity(layers.len());
    for l in layers {
        if let Layer::ParallelSum(bs) = l {
            let mut sum: Option<Tensor<T>> = None;
            let mut traces = Vec::with_capacity(bs.len());
            for b in bs {
                let (y, t) = trace_seq(b, x.try_clone()?)?;
                traces.push(t);
                sum = Some(match sum {
                    None => y,
                    Some(mut s) => {
                        s.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += *b);
                        s
                    }
                });
            }
            let input = x;
            x = match sum {
                Some(s) => s,
                None => input.try_clone()?,
            };
            steps.push(Step::Branches(input, traces));
        } else if let Layer::MaxPool2d(p) = l {
            let out = infer_layer(l, x.shape, &LayerPath::default())?;
            let (y, argmax) = max_pool_argmax(p, &x, out)?;
            steps.push(Step::MaxPool(x.n, x.shape, argmax));
            x = y;
        } else if let Layer::Flatten = l {
            steps.push(Step::Flatten(x.n, x.shape));
            x = forward_layer(l, x)?;
        } else {
            let y = forward_layer_ref(l, &x)?;
            steps.push(Step::Input(x));
            x = y;
        }
    }
    Ok((x, Trace { steps }))
}

/// A sequence's input gradient (if asked for) and its layers' gradients.
type SeqGradients<T> = (Option<Tensor<T>>, Vec<Layer<T>>);

/// Backward through a sequence; the input gradient of its first layer only if `need_dx`.
/// `steps` must be what `layers` recorded (see [`trace_output`]).
fn backward_seq<T: Scalar>(
    layers: &[Layer<T>],
    steps: &[Step<T>],
    mut dy: Tensor<T>,
    need_dx: bool,
) -> Result<SeqGradients<T>, NetError> {
    let mut grads = Vec::with_capacity(layers.len());
    for (i, (l, step)) in layers.iter().zip(steps).enumerate().rev() {
        let want = need_dx || i > 0;
        let (dx, g) = match (l, step) {
            (Layer::ParallelSum(bs), Step::Branches(x, traces)) => {
                let mut dx = if want && bs.is_empty() {
                    Some(dy.try_clone()?)
                } else {
                    None
                };
                let mut gs = Vec::with_capacity(bs.len());
                for (b, t) in bs.iter().zip(traces) {
                    let (dxb, gb) = backward_seq(b, &t.steps, dy.try_clone()?, want)?;
                    dx = match (dx, dxb) {
                        (Some(mut d), Some(db)) => {
                            d.data.iter_mut().zip(&db.data).for_each(|(a, v)| *a += *v);
                            Some(d)
                        }
                        (d, db) => d.or(db),
                    };
                    gs.push(gb);
                }
                debug_assert!(!want || dx.as_ref().is_some_and(|d| d.shape == x.shape));
                (dx, Layer::ParallelSum(gs))
            }
            (_, Step::Input(x)) => backward_layer(l, x, &dy, want)?,
            (_, Step::Flatten(n, shape)) => {
                grads.push(Layer::Flatten);
                // The same values in the input's shape: no copy.
                dy.n = *n;
                dy.shape = *shape;
                continue;
            }
            (_, Step::MaxPool(n, shape, argmax)) => {
                let dx = if want {
                    Some(max_pool_backward(argmax, &dy, *n, *shape)?)
                } else {
                    None
                };
                (dx, l.clone())
            }
            // `backward_with` checked the trace against the layers.
            (_, Step::Branches(..)) => unreachable!("trace does not match the network"),
        };
        grads.push(g);
        if let Some(dx) = dx {
            dy = dx;
        }
    }
    grads.reverse();
    Ok((need_dx.then_some(dy), grads))
}

/// One layer's parameter gradients, and its input gradient if `want`.
fn backward_layer<T: Scalar>(
    l: &Layer<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
    want: bool,
) -> Result<(Option<Tensor<T>>, Layer<T>), NetError> {
    Ok(match l {
        Layer::Dense(k) => {
            let (dx, g) = dense_backward(k, x, dy, want)?;
            (dx, Layer::Dense(g))
        }
        Layer::Conv2d(c) => {
            let (dx, kernel) = conv_backward(c, x, dy, want)?;
            (
                dx,
                Layer::Conv2d(Conv2d {
                    kernel,
                    stride: c.stride,
                    pad: c.pad,
                }),
            )
        }
        Layer::AvgPool2d(p) => {
            let dx = if want {
                Some(avg_pool_backward(p, x, dy)?)
            } else {
                None
            };
            (dx, l.clone())
        }
        Layer::Activation(p) => {
            let (dx, g) = act_backward(p, x, dy)?;
            (want.then_some(dx), Layer::Activation(g))
        }
        // Handled by `backward_seq`.
        Layer::ParallelSum(_) => unreachable!("parallel blocks carry branch traces"),
        Layer::MaxPool2d(_) => unreachable!("max pooling records where its maxima are"),
        Layer::Flatten => unreachable!("flatten records its input shape"),
    })
}

/// `dW = dY^T X`, `db = sum_n dY`, `dX = dY W`.
fn dense_backward<T: Scalar>(
    k: &Kernel<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
    want: bool,
) -> Result<(Option<Tensor<T>>, Kernel<T>), NetError> {
    let mut g = Kernel::try_zeros(k.out, k.inp, 1)?;
    let xm = MatRef::from_row_major_slice(&x.data, x.n, k.inp);
    let dym = MatRef::from_row_major_slice(&dy.data, x.n, k.out);
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, k.inp);
    matmul(
        MatMut::from_row_major_slice_mut(&mut g.weight, k.out, k.inp),
        Accum::Replace,
        dym.transpose(),
        xm,
        T::one(),
        Par::Seq,
    );
    for row in dy.data.chunks_exact(k.out) {
        g.bias.iter_mut().zip(row).for_each(|(b, v)| *b += *v);
    }
    if !want {
        return Ok((None, g));
    }
    let mut dx = Tensor::try_zeros(x.n, x.shape)?;
    matmul(
        MatMut::from_row_major_slice_mut(&mut dx.data, x.n, k.inp),
        Accum::Replace,
        dym,
        wm,
        T::one(),
        Par::Seq,
    );
    Ok((Some(dx), g))
}

/// `dW = dY cols^T` and `db = sum dY` per sample and band; `dX` either as the stride-1
/// convolution of `dY` with the flipped, transposed filters ([`flipped`]: one GEMM with a
/// `C_out K K` inner dimension, the same shape of work as the forward pass) or, for strided
/// layers and padding of `K` or more, as `col2im(W^T dY)`.
fn conv_backward<T: Scalar>(
    c: &Conv2d<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
    want: bool,
) -> Result<(Option<Tensor<T>>, Kernel<T>), NetError> {
    let k = &c.kernel;
    let out = dy.shape;
    let px = out.h * out.w;
    let transposed = if want { flipped(c)? } else { None };
    let scatter = want && transposed.is_none();
    let mut bias = alloc::vec![T::zero(); k.out];
    let mut dx = Tensor::try_zeros(if scatter { x.n } else { 0 }, x.shape)?;
    let mut patches = Patches::new(c, x.shape, out)?;
    patches.reserve_gradients(scatter)?;
    let len = x.shape.len();
    for img in 0..x.n {
        let dyi = dy.sample(img);
        for (o, plane) in dyi.chunks_exact(px).enumerate() {
            bias[o] += sum(plane);
        }
        patches.load(x.sample(img));
        for band in patches.bands() {
            let dym = MatRef::from_row_major_slice(dyi, k.out, px)
                .subcols(band.start * out.w, band.len() * out.w);
            patches.add_weight_gradient(x.sample(img), band.clone(), dym);
            if scatter {
                let dxs = &mut dx.data[img * len..(img + 1) * len];
                patches.add_input_gradient(band, dym, dxs);
            }
        }
        if scatter {
            patches.finish_input_gradient(&mut dx.data[img * len..(img + 1) * len]);
        }
    }
    let g = Kernel {
        out: k.out,
        inp: k.inp,
        k: k.k,
        weight: patches.weight_gradient()?,
        bias,
    };
    let dx = match transposed {
        Some(t) => Some(forward_layer_ref(&Layer::Conv2d(t), dy)?),
        None => scatter.then_some(dx),
    };
    Ok((dx, g))
}

/// For a stride-1 convolution with padding `p < K`: the convolution whose output is the input
/// gradient, `dX = conv(dY; W')` with `W'[i, o, a, b] = W[o, i, K-1-a, K-1-b]`, padding
/// `K - 1 - p` and no bias. `None` for other layers.
fn flipped<T: Scalar>(c: &Conv2d<T>) -> Result<Option<Conv2d<T>>, NetError> {
    let k = &c.kernel;
    if c.stride != 1 || c.pad >= k.k {
        return Ok(None);
    }
    let mut t = Kernel::try_zeros(k.inp, k.out, k.k)?;
    for o in 0..k.out {
        for i in 0..k.inp {
            for a in 0..k.k {
                for b in 0..k.k {
                    let at = t.at(i, o, a, b);
                    t.weight[at] = k.weight[k.at(o, i, k.k - 1 - a, k.k - 1 - b)];
                }
            }
        }
    }
    Ok(Some(Conv2d {
        kernel: t,
        stride: 1,
        pad: k.k - 1 - c.pad,
    }))
}

/// `dX = dY ((1 - a) phi'(X) + a)`, `da_c = sum dY (X - phi(X))` over the channel's values.
fn act_backward<T: Scalar>(
    p: &PActivation<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
) -> Result<(Tensor<T>, PActivation<T>), NetError> {
    let plane = x.shape.h * x.shape.w;
    let mut dx = alloc_try::with_capacity(x.data.len())?;
    let mut da = alloc::vec![T::zero(); p.a.len()];
    let samples = x
        .data
        .chunks_exact(x.shape.len())
        .zip(dy.data.chunks_exact(x.shape.len()));
    // phi^a'(x) and x - phi(x) from one evaluation of phi.
    let terms = |a: T, x: T| {
        let (phi, d) = p.kind.phi_and_derivative(x);
        ((T::one() - a) * d + a, x - phi)
    };
    // `x - phi(x)` of one channel, for its `da` sum.
    let per_channel = plane > 1 && p.kind != ActKind::Relu;
    let mut resid = alloc_try::with_capacity(if per_channel { plane } else { 0 })?;
    for (xs, dys) in samples {
        if plane == 1 {
            // Flat samples, one value per channel: `da` gathers elementwise over the batch.
            for (((xv, g), a), dac) in xs.iter().zip(dys).zip(&p.a).zip(&mut da) {
                let (gain, r) = terms(*a, *xv);
                dx.push(*g * gain);
                *dac += *g * r;
            }
            continue;
        }
        for (c, (a, dac)) in p.a.iter().zip(da.iter_mut()).enumerate() {
            let range = c * plane..(c + 1) * plane;
            let (xc, gc) = (&xs[range.clone()], &dys[range]);
            if p.kind == ActKind::Relu {
                // The same arithmetic with phi' in {0, 1} hoisted out of the loop.
                let (on, off) = ((T::one() - *a) + *a, (T::one() - *a) * T::zero() + *a);
                dx.extend(
                    xc.iter()
                        .zip(gc)
                        .map(|(xv, g)| *g * if *xv > T::zero() { on } else { off }),
                );
                // x - relu(x) is x below zero and 0 above.
                *dac += sum_by(xc, gc, |x, g| {
                    g * (x - if x > T::zero() { x } else { T::zero() })
                });
            } else {
                resid.clear();
                for (xv, g) in xc.iter().zip(gc) {
                    let (gain, r) = terms(*a, *xv);
                    dx.push(*g * gain);
                    resid.push(r);
                }
                *dac += sum_by(&resid, gc, |r, g| g * r);
            }
        }
    }
    Ok((
        Tensor {
            n: x.n,
            shape: x.shape,
            data: dx,
        },
        PActivation {
            kind: p.kind,
            a: da,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_and_traces_that_do_not_fit_are_refused() {
        let dense = |inp| Layer::Dense(Kernel::<f64>::zeros(1, inp, 1));
        let net =
            Network::new(Shape::image(1, 2, 2), alloc::vec![Layer::Flatten, dense(4)]).unwrap();
        let x = Tensor::new(2, net.input_shape(), alloc::vec![0.5; 8]).unwrap();
        let (y, trace) = net.forward_trace(&x).unwrap();
        let short = Tensor {
            n: 2,
            shape: y.shape,
            data: alloc::vec![1.0],
        };
        let want = NetError::InputLength {
            n: 2,
            shape: y.shape,
            found: 1,
        };
        assert_eq!(net.backward(&trace, &short).unwrap_err(), want);
        assert_eq!(net.param_gradients(&trace, &short).unwrap_err(), want);
        // A trace of another network with as many layers and the same output: before, the
        // dense layer's backward pass hit faer's shape assertion on its 9-feature input.
        let other =
            Network::new(Shape::image(1, 3, 3), alloc::vec![Layer::Flatten, dense(9)]).unwrap();
        let (_, foreign) = other
            .forward_trace(&Tensor::new(2, other.input_shape(), alloc::vec![0.5; 18]).unwrap())
            .unwrap();
        let dy = Tensor::new(2, y.shape, alloc::vec![1.0, 1.0]).unwrap();
        assert_eq!(net.backward(&foreign, &dy).unwrap_err(), NetError::Trace);
        assert_eq!(
            net.param_gradients(&foreign, &dy).unwrap_err(),
            NetError::Trace
        );
        assert!(net.backward(&trace, &dy).is_ok());
    }

    #[test]
    fn flatten_passes_the_gradient_back_in_the_input_shape() {
        let mut k = Kernel::<f64>::zeros(1, 4, 1);
        k.weight = alloc::vec![1.0, 2.0, 3.0, 4.0];
        let input = Shape::image(1, 2, 2);
        let net = Network::new(input, alloc::vec![Layer::Flatten, Layer::Dense(k)]).unwrap();
        let x = Tensor::new(2, input, alloc::vec![0.5; 8]).unwrap();
        let (y, trace) = net.forward_trace(&x).unwrap();
        let dy = Tensor::new(2, y.shape, alloc::vec![1.0, -1.0]).unwrap();
        let g = net.backward(&trace, &dy).unwrap();
        let dx = g.input().unwrap();
        assert_eq!((dx.n, dx.shape), (2, input));
        assert_eq!(dx.data, [1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0]);
        assert!(matches!(g.layers()[0], Layer::Flatten));
    }
}
