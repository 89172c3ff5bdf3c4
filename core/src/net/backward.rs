//! Backward pass: gradients of a scalar loss with respect to every parameter (weights, biases,
//! P-activation `a`) and to the input, given the loss's gradient at the output.
//!
//! Convolutions use the same im2col patch matrices as the forward pass: `dW = dY cols^T`,
//! `dcols = W^T dY`, then col2im (the adjoint of im2col) back onto the input.

use alloc::vec::Vec;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::forward::{col2im, forward_layer, im2col, window};
use super::layer::{Conv2d, Kernel, Layer, PActivation, Pool};
use super::network::{NetError, Network};
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
}

/// Gradients of a loss: a layer list shaped like the network's, whose parameters hold the
/// gradients (weights, biases, `a`), and the gradient with respect to the input.
#[derive(Clone, Debug)]
pub struct Gradients<T> {
    pub(crate) layers: Vec<Layer<T>>,
    input: Tensor<T>,
}

impl<T: Scalar> Gradients<T> {
    /// Per-layer gradients, in the network's structure.
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    /// Gradient with respect to the network's input.
    pub fn input(&self) -> &Tensor<T> {
        &self.input
    }
}

impl<T: Scalar> Network<T> {
    /// Forward pass that also records what [`Network::backward`] needs.
    ///
    /// # Errors
    /// [`NetError::InputShape`] if the samples do not have [`Network::input_shape`].
    pub fn forward_trace(&self, x: &Tensor<T>) -> Result<(Tensor<T>, Trace<T>), NetError> {
        if x.shape != self.input_shape() {
            return Err(NetError::InputShape {
                expected: self.input_shape(),
                found: x.shape,
            });
        }
        Ok(trace_seq(self.layers(), x.clone()))
    }

    /// Gradients of a loss whose gradient at the output is `dy`, for the forward pass that
    /// produced `trace`.
    ///
    /// # Errors
    /// [`NetError::InputShape`] if `dy` does not have the output's shape and batch size, or
    /// the trace does not come from this network.
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
    /// assert_eq!(g.input().data, vec![2.0, -1.0]); // dy/dx = W
    /// assert_eq!(g.layers()[0].kernel().unwrap().weight, vec![3.0, 5.0]); // dy/dW = x
    /// ```
    pub fn backward(&self, trace: &Trace<T>, dy: &Tensor<T>) -> Result<Gradients<T>, NetError> {
        let batch = trace.steps.first().map_or(dy.n, |s| match s {
            Step::Input(t) | Step::Branches(t, _) => t.n,
        });
        if dy.shape != self.output_shape()
            || dy.n != batch
            || trace.steps.len() != self.layers().len()
        {
            return Err(NetError::InputShape {
                expected: self.output_shape(),
                found: dy.shape,
            });
        }
        let (input, layers) = backward_seq(self.layers(), &trace.steps, dy.clone());
        Ok(Gradients { layers, input })
    }
}

fn trace_seq<T: Scalar>(layers: &[Layer<T>], mut x: Tensor<T>) -> (Tensor<T>, Trace<T>) {
    let mut steps = Vec::with_capacity(layers.len());
    for l in layers {
        if let Layer::ParallelSum(bs) = l {
            let mut sum: Option<Tensor<T>> = None;
            let mut traces = Vec::with_capacity(bs.len());
            for b in bs {
                let (y, t) = trace_seq(b, x.clone());
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
            x = sum.unwrap_or_else(|| input.clone());
            steps.push(Step::Branches(input, traces));
        } else {
            let y = forward_layer(l, x.clone());
            steps.push(Step::Input(x));
            x = y;
        }
    }
    (x, Trace { steps })
}

fn backward_seq<T: Scalar>(
    layers: &[Layer<T>],
    steps: &[Step<T>],
    mut dy: Tensor<T>,
) -> (Tensor<T>, Vec<Layer<T>>) {
    let mut grads = Vec::with_capacity(layers.len());
    for (l, step) in layers.iter().zip(steps).rev() {
        let (dx, g) = match (l, step) {
            (Layer::ParallelSum(bs), Step::Branches(x, traces)) => {
                let mut dx = Tensor::zeros(x.n, x.shape);
                let mut gs = Vec::with_capacity(bs.len());
                for (b, t) in bs.iter().zip(traces) {
                    let (dxb, gb) = backward_seq(b, &t.steps, dy.clone());
                    dx.data
                        .iter_mut()
                        .zip(&dxb.data)
                        .for_each(|(a, v)| *a += *v);
                    gs.push(gb);
                }
                (dx, Layer::ParallelSum(gs))
            }
            (_, Step::Input(x)) => backward_layer(l, x, &dy),
            // Traces are built by `trace_seq` over the same layers.
            (_, Step::Branches(..)) => unreachable!("trace does not match the network"),
        };
        grads.push(g);
        dy = dx;
    }
    grads.reverse();
    (dy, grads)
}

fn backward_layer<T: Scalar>(l: &Layer<T>, x: &Tensor<T>, dy: &Tensor<T>) -> (Tensor<T>, Layer<T>) {
    match l {
        Layer::Dense(k) => {
            let (dx, g) = dense_backward(k, x, dy);
            (dx, Layer::Dense(g))
        }
        Layer::Conv2d(c) => {
            let (dx, kernel) = conv_backward(c, x, dy);
            (
                dx,
                Layer::Conv2d(Conv2d {
                    kernel,
                    stride: c.stride,
                    pad: c.pad,
                }),
            )
        }
        Layer::MaxPool2d(p) => (pool_backward(p, x, dy, true), l.clone()),
        Layer::AvgPool2d(p) => (pool_backward(p, x, dy, false), l.clone()),
        Layer::Flatten => (
            Tensor {
                n: x.n,
                shape: x.shape,
                data: dy.data.clone(),
            },
            Layer::Flatten,
        ),
        Layer::Activation(p) => {
            let (dx, g) = act_backward(p, x, dy);
            (dx, Layer::Activation(g))
        }
        // Handled by `backward_seq`.
        Layer::ParallelSum(_) => unreachable!("parallel blocks carry branch traces"),
    }
}

/// `dW = dY^T X`, `db = sum_n dY`, `dX = dY W`.
fn dense_backward<T: Scalar>(
    k: &Kernel<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
) -> (Tensor<T>, Kernel<T>) {
    let mut g = Kernel::zeros(k.out, k.inp, 1);
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
    let mut dx = Tensor::zeros(x.n, x.shape);
    matmul(
        MatMut::from_row_major_slice_mut(&mut dx.data, x.n, k.inp),
        Accum::Replace,
        dym,
        wm,
        T::one(),
        Par::Seq,
    );
    (dx, g)
}

fn conv_backward<T: Scalar>(
    c: &Conv2d<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
) -> (Tensor<T>, Kernel<T>) {
    let k = &c.kernel;
    let out = dy.shape;
    let (rows, px) = (k.inp * k.k * k.k, out.h * out.w);
    let mut g = Kernel::zeros(k.out, k.inp, k.k);
    let mut dx = Tensor::zeros(x.n, x.shape);
    let mut cols = alloc::vec![T::zero(); rows * px];
    let mut dcols = alloc::vec![T::zero(); rows * px];
    let wm = MatRef::from_row_major_slice(&k.weight, k.out, rows);
    let len = x.shape.len();
    for img in 0..x.n {
        im2col(x.sample(img), x.shape, c, out, &mut cols);
        let dyi = dy.sample(img);
        let dym = MatRef::from_row_major_slice(dyi, k.out, px);
        matmul(
            MatMut::from_row_major_slice_mut(&mut g.weight, k.out, rows),
            Accum::Add,
            dym,
            MatRef::from_row_major_slice(&cols, rows, px).transpose(),
            T::one(),
            Par::Seq,
        );
        for (o, plane) in dyi.chunks_exact(px).enumerate() {
            g.bias[o] += plane.iter().fold(T::zero(), |a, b| a + *b);
        }
        matmul(
            MatMut::from_row_major_slice_mut(&mut dcols, rows, px),
            Accum::Replace,
            wm.transpose(),
            dym,
            T::one(),
            Par::Seq,
        );
        col2im(
            &dcols,
            x.shape,
            c,
            out,
            &mut dx.data[img * len..(img + 1) * len],
        );
    }
    (dx, g)
}

/// Max pooling sends each output gradient to the first maximum of its window; average
/// pooling spreads it evenly over the (clipped) window.
fn pool_backward<T: Scalar>(p: &Pool, x: &Tensor<T>, dy: &Tensor<T>, max: bool) -> Tensor<T> {
    let (h, w) = (x.shape.h, x.shape.w);
    let out = dy.shape;
    let mut dx = Tensor::zeros(x.n, x.shape);
    let planes = x
        .data
        .chunks_exact(h * w)
        .zip(dx.data.chunks_exact_mut(h * w));
    for ((plane, dplane), dyp) in planes.zip(dy.data.chunks_exact(out.h * out.w)) {
        for oy in 0..out.h {
            for ox in 0..out.w {
                let (y0, y1, x0, x1) = window(p, x.shape, oy, ox);
                let g = dyp[oy * out.w + ox];
                if max {
                    let mut best = (y0 * w + x0, plane[y0 * w + x0]);
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            if plane[iy * w + ix] > best.1 {
                                best = (iy * w + ix, plane[iy * w + ix]);
                            }
                        }
                    }
                    dplane[best.0] += g;
                } else {
                    let share = g / T::of_f64(((y1 - y0) * (x1 - x0)) as f64);
                    for iy in y0..y1 {
                        dplane[iy * w + x0..iy * w + x1]
                            .iter_mut()
                            .for_each(|v| *v += share);
                    }
                }
            }
        }
    }
    dx
}

/// `dX = dY ((1 - a) phi'(X) + a)`, `da_c = sum dY (X - phi(X))` over the channel's values.
fn act_backward<T: Scalar>(
    p: &PActivation<T>,
    x: &Tensor<T>,
    dy: &Tensor<T>,
) -> (Tensor<T>, PActivation<T>) {
    let plane = x.shape.h * x.shape.w;
    let mut dx = Tensor::zeros(x.n, x.shape);
    let mut da = alloc::vec![T::zero(); p.a.len()];
    let samples = x
        .data
        .chunks_exact(x.shape.len())
        .zip(dy.data.chunks_exact(x.shape.len()));
    for ((xs, dys), dxs) in samples.zip(dx.data.chunks_exact_mut(x.shape.len())) {
        for (c, (a, dac)) in p.a.iter().zip(da.iter_mut()).enumerate() {
            let range = c * plane..(c + 1) * plane;
            for ((xv, g), d) in xs[range.clone()]
                .iter()
                .zip(&dys[range.clone()])
                .zip(&mut dxs[range])
            {
                *d = *g * ((T::one() - *a) * p.kind.derivative(*xv) + *a);
                *dac += *g * (*xv - p.kind.apply(*xv));
            }
        }
    }
    (
        dx,
        PActivation {
            kind: p.kind,
            a: da,
        },
    )
}
