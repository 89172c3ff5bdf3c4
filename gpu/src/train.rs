//! Training on the GPU. [`Trainer`] uploads a core [`Network`] and its optimiser state once;
//! every step then writes only the batch and its labels, records the forward pass, the loss,
//! the backward pass and the SGD update into one command buffer and submits it without
//! waiting. The batch losses collect in a GPU buffer and come back when asked for
//! ([`Trainer::losses`]); the network comes back as an ordinary core network
//! ([`Trainer::network`]) to be morphed, saved or uploaded again.
//!
//! Activations are channel-major over the batch on the GPU (value `(c, s, y, x)` at
//! `((c N + s) H + y) W + x`): a convolution is then one product `W col` for the whole batch,
//! and each P-activation channel is one contiguous run. Batches are reordered on upload.

use std::marker::PhantomData;

use netmorph_core::train::{Sgd, SgdConfig};
use netmorph_core::{ActKind, Conv2d, Kernel, Layer, Network, Pool, Shape, Tensor};

use crate::kernels::{Command, Op, Threads};
use crate::matmul::{splits, Axis, Bind, Fused, Operands, Product, Region};
use crate::{Gpu, GpuError, Real};

/// Batch losses that wait on the GPU before they are read back; a step past this many
/// reads them first.
pub(crate) const SLOTS: usize = 1024;

/// Size of the `Step` uniform in values of the scalar type: learning rates of weights,
/// biases and `a`, momentum, weight decay, then the slot (a `u32` padded to one value).
const STEP_VALUES: u64 = 6;

/// Which learning rate a parameter takes: [`Params`] groups the tensors by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rate {
    Weight,
    Bias,
    A,
}

/// Every parameter tensor on the GPU in three buffers laid out alike (values, gradients,
/// velocity): weights first, then biases, then P-activations' `a`, each tensor from an
/// offset the adapter can bind, zeros between them. One dispatch then updates them all.
struct Params {
    w: wgpu::Buffer,
    g: wgpu::Buffer,
    v: wgpu::Buffer,
    layout: Layout,
}

/// Where [`Params`] places the tensors.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Each tensor's first value and length, in [`tensors`]' order.
    at: Vec<(usize, usize)>,
    /// Values in each buffer.
    len: usize,
    /// Where the weights and the biases end.
    ends: [usize; 2],
}

/// Where [`Params`] places `tensors` (lengths and rates), with starts on multiples of
/// `align` values; `None` when the sizes overflow.
fn layout(tensors: &[(usize, Rate)], align: usize) -> Option<Layout> {
    let mut at = vec![(0, 0); tensors.len()];
    let mut next = 0usize;
    let mut ends = [0; 2];
    for rate in [Rate::Weight, Rate::Bias, Rate::A] {
        for (i, (len, r)) in tensors.iter().enumerate() {
            if *r == rate {
                at[i] = (next, *len);
                // An empty tensor still takes a value: bindings are never empty.
                next = next
                    .checked_add((*len).max(1))?
                    .checked_next_multiple_of(align)?;
            }
        }
        match rate {
            Rate::Weight => ends[0] = next,
            Rate::Bias => ends[1] = next,
            Rate::A => {}
        }
    }
    Some(Layout {
        at,
        len: next,
        ends,
    })
}

impl Params {
    /// Uploads `weights` and `velocity` (zeros where `None`); gradients start as NaN.
    fn new<T: Real>(
        gpu: &Gpu,
        weights: &[(&[T], Rate)],
        velocity: Option<&[(&[T], Rate)]>,
    ) -> Result<Self, GpuError> {
        let align = (gpu.device.limits().min_storage_buffer_offset_alignment as usize)
            .div_ceil(size_of::<T>())
            .max(1);
        let lens: Vec<(usize, Rate)> = weights.iter().map(|(w, r)| (w.len(), *r)).collect();
        let layout = layout(&lens, align)
            .ok_or_else(|| GpuError::Shape("the parameters' sizes overflow".into()))?;
        gpu.check_len::<T>("parameters", layout.len)?;
        let place = |tensors: Option<&[(&[T], Rate)]>, fill: T| {
            let mut all = vec![T::zero(); layout.len];
            for (i, (start, n)) in layout.at.iter().enumerate() {
                let dst = &mut all[*start..start + n];
                match tensors {
                    Some(t) => dst.copy_from_slice(t[i].0),
                    None => dst.fill(fill),
                }
            }
            all
        };
        Ok(Self {
            w: gpu.upload("parameters", &place(Some(weights), T::zero()))?,
            g: gpu.upload("gradients", &place(None, T::nan()))?,
            v: gpu.upload("velocity", &place(velocity, T::zero()))?,
            layout,
        })
    }

    /// Tensor `i` of `buffer` (one of the three).
    fn region<T>(&self, buffer: &wgpu::Buffer, i: usize) -> Option<Region> {
        let (start, n) = *self.layout.at.get(i)?;
        let size = size_of::<T>() as u64;
        Some(Region {
            buffer: buffer.clone(),
            offset: start as u64 * size,
            bytes: n.max(1) as u64 * size,
        })
    }

    /// The tensors of `buffer` (one of the three), downloaded at once.
    fn download<T: Real>(&self, gpu: &Gpu, buffer: &wgpu::Buffer) -> Result<Vec<Vec<T>>, GpuError> {
        let all = gpu.download::<T>(buffer, self.layout.len)?;
        Ok(self
            .layout
            .at
            .iter()
            .map(|(start, n)| all[*start..start + n].to_vec())
            .collect())
    }
}

/// The parameter tensors of `layers` in the order every walk here takes: weights then bias
/// of each dense or convolution layer, `a` of each P-activation, branches in order.
fn tensors<'a, T>(layers: &'a [Layer<T>], out: &mut Vec<(&'a [T], Rate)>) {
    for l in layers {
        match l {
            Layer::Dense(k) | Layer::Conv2d(Conv2d { kernel: k, .. }) => {
                out.push((&k.weight, Rate::Weight));
                out.push((&k.bias, Rate::Bias));
            }
            Layer::Activation(p) => out.push((&p.a, Rate::A)),
            Layer::ParallelSum(bs) => bs.iter().for_each(|b| tensors(b, out)),
            Layer::MaxPool2d(_) | Layer::AvgPool2d(_) | Layer::Flatten => {}
        }
    }
}

/// Overwrites the parameter tensors of `layers`, in [`tensors`]' order, from `values`.
fn fill<T>(layers: &mut [Layer<T>], values: &mut impl Iterator<Item = Vec<T>>) {
    for l in layers {
        match l {
            Layer::Dense(k) | Layer::Conv2d(Conv2d { kernel: k, .. }) => {
                k.weight = values.next().unwrap_or_default();
                k.bias = values.next().unwrap_or_default();
            }
            Layer::Activation(p) => p.a = values.next().unwrap_or_default(),
            Layer::ParallelSum(bs) => bs.iter_mut().for_each(|b| fill(b, values)),
            Layer::MaxPool2d(_) | Layer::AvgPool2d(_) | Layer::Flatten => {}
        }
    }
}

/// An activation on the GPU: its values and, where some layer needs it, its gradient.
struct Blob {
    val: wgpu::Buffer,
    grad: Option<wgpu::Buffer>,
    shape: Shape,
}

/// How far a submission runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Forward,
    Backward,
    Update,
}

/// The buffers and commands of a step at one batch size.
struct Plan {
    n: usize,
    /// Bytes of the storage buffers it made.
    bytes: u64,
    input: wgpu::Buffer,
    labels: wgpu::Buffer,
    /// Forward pass, loss and metrics.
    forward: Vec<Command>,
    /// Backward pass: every parameter's gradient.
    backward: Vec<Command>,
    /// SGD update.
    update: Vec<Command>,
}

/// The forward product `Y = W X + b` of a dense or convolution layer, waiting to be
/// recorded; each operand with its length in values.
struct Held {
    p: Product,
    w: (Region, usize),
    x: (wgpu::Buffer, usize),
    bias: Region,
    y: (wgpu::Buffer, usize),
}

/// Builds a [`Plan`]: walks the layers once, creating each output and gradient buffer and
/// the forward and backward commands of each layer.
struct Builder<'a, T> {
    gpu: &'a Gpu,
    params: &'a Params,
    step: &'a wgpu::Buffer,
    n: usize,
    next_param: usize,
    forward: Vec<Command>,
    /// Each layer's backward commands, in forward order (they run reversed).
    backward: Vec<Vec<Command>>,
    /// The longest ones vector made so far, and its length.
    ones: Option<(wgpu::Buffer, usize)>,
    /// The forward product of the last dense or convolution layer, until the next layer
    /// says whether an activation fuses into it.
    held: Option<Held>,
    real: PhantomData<T>,
}

/// `a * b` for sizes, or a [`GpuError::Shape`] naming `what`.
fn mul(what: &str, a: usize, b: usize) -> Result<usize, GpuError> {
    a.checked_mul(b)
        .ok_or_else(|| GpuError::Shape(format!("{what}: {a} x {b} values overflow")))
}

fn u(v: usize) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::Shape(format!("{v} exceeds 32-bit indices")))
}

impl<T: Real> Builder<'_, T> {
    /// The next parameter tensor's values and gradient.
    fn param(&mut self) -> Result<(Region, Region), GpuError> {
        let (i, p) = (self.next_param, self.params);
        let (Some(w), Some(g)) = (p.region::<T>(&p.w, i), p.region::<T>(&p.g, i)) else {
            return Err(GpuError::Shape(
                "the network has more parameters than uploaded".into(),
            ));
        };
        self.next_param += 1;
        Ok((w, g))
    }

    fn values(&self, what: &str, shape: Shape) -> Result<(wgpu::Buffer, usize), GpuError> {
        let len = mul(what, self.n, shape.len())?;
        Ok((self.gpu.poisoned::<T>(what, len)?, len))
    }

    /// A new activation of `shape` with a gradient buffer, and that buffer.
    fn blob(&self, what: &str, shape: Shape) -> Result<(Blob, wgpu::Buffer), GpuError> {
        let (val, _) = self.values(what, shape)?;
        let (grad, _) = self.values(what, shape)?;
        let blob = Blob {
            val,
            grad: Some(grad.clone()),
            shape,
        };
        Ok((blob, grad))
    }

    /// `len` ones (the bias gradients' right-hand side), shared by the layers of the plan.
    fn ones(&mut self, len: usize) -> Result<wgpu::Buffer, GpuError> {
        match &self.ones {
            Some((buf, have)) if *have >= len => Ok(buf.clone()),
            _ => {
                let buf = self.gpu.upload("ones", &vec![T::one(); len])?;
                self.ones = Some((buf.clone(), len));
                Ok(buf)
            }
        }
    }

    fn op(
        &self,
        op: Op,
        params: &[u32],
        buffers: &[&dyn Bind],
        threads: Threads,
    ) -> Result<Command, GpuError> {
        self.gpu
            .dispatch::<T>(op, params, buffers, self.step, threads)
            .map(Command::Run)
    }

    /// The product `p` into `ops.c`, split along k (partial products, then their sum) when
    /// its output has too few tiles to fill the GPU; returns one or two commands. An
    /// activation in `ops` runs in the last one's epilogue.
    fn product(&self, p: Product, ops: &Operands<'_>) -> Result<Vec<Command>, GpuError> {
        let parts = splits(&p);
        if parts == 1 {
            return Ok(vec![Command::Run(self.gpu.matmul_dispatch::<T>(&p, ops)?)]);
        }
        let len = ops.c.1;
        let partial_len = mul("partial products", len, parts)?;
        let partial = self.gpu.poisoned::<T>("partial products", partial_len)?;
        let split = Operands {
            c: (&partial, partial_len),
            splits: parts,
            act: None,
            ..*ops
        };
        let mut params = vec![0, 0, 0, u(len)?, u(parts)?];
        let mut buffers: Vec<&dyn Bind> = vec![&partial, ops.c.0];
        if let Some(f) = &ops.act {
            f.check(&p)?;
            params.extend([f.kind + 1, u(p.n)?]);
            buffers.extend([f.a.0, f.y.0]);
        }
        Ok(vec![
            Command::Run(self.gpu.matmul_dispatch::<T>(&p, &split)?),
            self.op(Op::SumSplits, &params, &buffers, Threads::Each(len))?,
        ])
    }

    /// Layers `layers` on `x`; returns the output.
    fn seq(&mut self, layers: &[Layer<T>], mut x: Blob) -> Result<Blob, GpuError> {
        for l in layers {
            x = self.layer(l, &x)?;
        }
        self.flush(None)?;
        Ok(x)
    }

    /// Records the held forward product of a dense or convolution layer, with `act` in
    /// its epilogue if given.
    fn flush(&mut self, act: Option<Fused<'_>>) -> Result<(), GpuError> {
        let Some(f) = self.held.take() else {
            return Ok(());
        };
        let ops = Operands {
            a: (&f.w.0, f.w.1),
            b: (&f.x.0, f.x.1),
            bias: Some((&f.bias, f.p.m, Axis::Rows)),
            c: (&f.y.0, f.y.1),
            splits: 1,
            act,
        };
        let fwd = self.product(f.p, &ops)?;
        self.forward.extend(fwd);
        Ok(())
    }

    fn layer(&mut self, l: &Layer<T>, x: &Blob) -> Result<Blob, GpuError> {
        // Only an activation fuses into the product before it.
        if !matches!(l, Layer::Activation(_)) {
            self.flush(None)?;
        }
        match l {
            Layer::Dense(k) => self.linear(k, 1, 0, x),
            Layer::Conv2d(c) => self.linear(&c.kernel, c.stride, c.pad, x),
            Layer::MaxPool2d(p) => self.pool(p, true, x),
            Layer::AvgPool2d(p) => self.pool(p, false, x),
            Layer::Flatten => self.flatten(x),
            Layer::Activation(p) => self.activation(p.kind, x),
            Layer::ParallelSum(bs) => self.parallel(bs, x),
        }
    }

    /// A dense layer (`k = 1` on a flat blob) or a convolution: `Y = W col(X) + b`.
    fn linear(
        &mut self,
        kernel: &Kernel<T>,
        stride: usize,
        pad: usize,
        x: &Blob,
    ) -> Result<Blob, GpuError> {
        let (w, dw) = self.param()?;
        let (bias, db) = self.param()?;
        let (s, k) = (x.shape, kernel.k);
        let span = |len: usize| {
            (len + 2 * pad)
                .checked_sub(k)
                .map(|v| v / stride.max(1) + 1)
        };
        let (Some(oh), Some(ow)) = (span(s.h), span(s.w)) else {
            return Err(GpuError::Shape(format!("a {k} x {k} window on {s:?}")));
        };
        let out = Shape::image(kernel.out, oh, ow);
        let (y, dy) = self.blob("activation", out)?;
        let rows = mul("patch", kernel.inp, k * k)?;
        let cols = mul("patch", self.n, oh * ow)?;
        // A 1 x 1 kernel at stride 1 without padding reads the input as it is.
        let direct = k == 1 && stride == 1 && pad == 0;
        let col = if direct {
            None
        } else {
            let len = mul("patches", rows, cols)?;
            Some((self.gpu.poisoned::<T>("patches", len)?, len))
        };
        let conv = [s.c, self.n, s.h, s.w, k, stride, pad, oh, ow]
            .map(u)
            .into_iter()
            .collect::<Result<Vec<u32>, _>>()?;
        let x_len = mul("input", self.n, s.len())?;
        let (b_buf, b_len) = match &col {
            Some((buf, len)) => {
                let mut p = conv.clone();
                p.push(u(*len)?);
                let im2col = self.op(Op::Im2col, &p, &[&x.val, buf], Threads::Each(*len))?;
                self.forward.push(im2col);
                (buf, *len)
            }
            None => (&x.val, x_len),
        };
        let y_len = mul("output", kernel.out, cols)?;
        // Recorded when the next layer is known: an activation fuses into it.
        self.held = Some(Held {
            p: Product::row_major(kernel.out, rows, cols),
            w: (w.clone(), kernel.weight.len()),
            x: (b_buf.clone(), b_len),
            bias: bias.clone(),
            y: (y.val.clone(), y_len),
        });
        let dy = &dy;
        let ones = self.ones(cols)?;
        // dW = dY col^T.
        let mut back = self.product(
            Product {
                b_row: 1,
                b_col: cols,
                ..Product::row_major(kernel.out, cols, rows)
            },
            &Operands {
                a: (dy, y_len),
                b: (b_buf, b_len),
                bias: None,
                c: (&dw, kernel.weight.len()),
                splits: 1,
                act: None,
            },
        )?;
        // db = dY 1.
        back.extend(self.product(
            Product::row_major(kernel.out, cols, 1),
            &Operands {
                a: (dy, y_len),
                b: (&ones, cols),
                bias: None,
                c: (&db, kernel.out),
                splits: 1,
                act: None,
            },
        )?);
        if let Some(dx) = &x.grad {
            // dcol = W^T dY, into the patches (read for the last time above) or dX itself.
            let target: (&dyn Bind, usize) =
                col.as_ref().map_or((dx, x_len), |(buf, len)| (buf, *len));
            back.extend(self.product(
                Product {
                    a_row: 1,
                    a_col: rows,
                    ..Product::row_major(rows, kernel.out, cols)
                },
                &Operands {
                    a: (&w, kernel.weight.len()),
                    b: (dy, y_len),
                    bias: None,
                    c: target,
                    splits: 1,
                    act: None,
                },
            )?);
            if let Some((buf, _)) = &col {
                let mut p = conv;
                p.push(u(x_len)?);
                back.push(self.op(Op::Col2im, &p, &[buf, dx], Threads::Each(x_len))?);
            }
        }
        self.backward.push(back);
        Ok(y)
    }

    fn pool(&mut self, p: &Pool, max: bool, x: &Blob) -> Result<Blob, GpuError> {
        let s = x.shape;
        let (Some(oh), Some(ow)) = (p.out_len(s.h), p.out_len(s.w)) else {
            return Err(GpuError::Shape(format!(
                "a {} x {} pool on {s:?}",
                p.k, p.k
            )));
        };
        let (y, dy) = self.blob("pooled", Shape::image(s.c, oh, ow))?;
        let planes = mul("planes", s.c, self.n)?;
        let y_len = mul("pooled", planes, oh * ow)?;
        let x_len = mul("input", planes, s.h * s.w)?;
        let params = [planes, s.h, s.w, oh, ow, p.k, p.stride, y_len]
            .map(u)
            .into_iter()
            .collect::<Result<Vec<u32>, _>>()?;
        let dy = &dy;
        let mut back = Vec::new();
        if max {
            let winner = self.gpu.upload("winners", &vec![u32::MAX; y_len])?;
            let fwd = self.op(
                Op::MaxForward,
                &params,
                &[&x.val, &y.val, &winner],
                Threads::Each(y_len),
            )?;
            self.forward.push(fwd);
            if let Some(dx) = &x.grad {
                back.push(self.op(
                    Op::MaxBackward,
                    &params,
                    &[dy, dx, &winner],
                    Threads::Each(x_len),
                )?);
            }
        } else {
            let fwd = self.op(
                Op::AvgForward,
                &params,
                &[&x.val, &y.val],
                Threads::Each(y_len),
            )?;
            self.forward.push(fwd);
            if let Some(dx) = &x.grad {
                back.push(self.op(Op::AvgBackward, &params, &[dy, dx], Threads::Each(x_len))?);
            }
        }
        self.backward.push(back);
        Ok(y)
    }

    fn flatten(&mut self, x: &Blob) -> Result<Blob, GpuError> {
        let s = x.shape;
        let (y, dy) = self.blob("flat", Shape::flat(s.len()))?;
        let len = mul("flatten", self.n, s.len())?;
        let params = [s.c, self.n, s.h * s.w, len]
            .map(u)
            .into_iter()
            .collect::<Result<Vec<u32>, _>>()?;
        let fwd = self.op(Op::Flatten, &params, &[&x.val, &y.val], Threads::Each(len))?;
        self.forward.push(fwd);
        let mut back = Vec::new();
        if let Some(dx) = &x.grad {
            back.push(self.op(Op::Unflatten, &params, &[&dy, dx], Threads::Each(len))?);
        }
        self.backward.push(back);
        Ok(y)
    }

    fn activation(&mut self, kind: ActKind, x: &Blob) -> Result<Blob, GpuError> {
        let (a, da) = self.param()?;
        let s = x.shape;
        let (y, dy) = self.blob("activated", s)?;
        let len = mul("activation", self.n, s.len())?;
        let plane = mul("activation", self.n, s.h * s.w)?;
        let phi = match kind {
            ActKind::Relu => 0,
            ActKind::Tanh => 1,
            ActKind::Sigmoid => 2,
            ActKind::Identity => 3,
        };
        let params = [phi, u(len)?, u(plane)?];
        if self.held.is_some() {
            // x is the output of the product before (every other layer records it): y
            // comes out of that product's pass.
            self.flush(Some(Fused {
                kind: phi,
                a: (&a, s.c),
                y: (&y.val, len),
            }))?;
        } else {
            self.flush(None)?;
            let fwd = self.op(
                Op::ActForward,
                &params,
                &[&x.val, &a, &y.val],
                Threads::Each(len),
            )?;
            self.forward.push(fwd);
        }
        let dy = &dy;
        let mut back = vec![self.op(
            Op::ActDa,
            &params,
            &[&x.val, &a, dy, &da],
            Threads::Groups(s.c),
        )?];
        if let Some(dx) = &x.grad {
            back.push(self.op(
                Op::ActBackward,
                &params,
                &[&x.val, &a, dy, dx],
                Threads::Each(len),
            )?);
        }
        self.backward.push(back);
        Ok(y)
    }

    /// Branches on the same input, outputs summed. Backward: the output's gradient is
    /// copied to every branch, and the branches' input gradients are summed.
    fn parallel(&mut self, branches: &[Vec<Layer<T>>], x: &Blob) -> Result<Blob, GpuError> {
        let len = mul("parallel", self.n, x.shape.len())?;
        // The sum of the branches' input gradients runs last in the backward pass, so it
        // is pushed first.
        let at = self.backward.len();
        self.backward.push(Vec::new());
        let mut outs = Vec::with_capacity(branches.len());
        let mut dxs = Vec::with_capacity(branches.len());
        for b in branches {
            let dx = x
                .grad
                .as_ref()
                .map(|_| self.values("branch gradient", x.shape).map(|v| v.0))
                .transpose()?;
            let input = Blob {
                val: x.val.clone(),
                grad: dx.clone(),
                shape: x.shape,
            };
            dxs.extend(dx);
            outs.push(self.seq(b, input)?);
        }
        let Some(shape) = outs.first().map(|o| o.shape) else {
            return Err(GpuError::Shape("a parallel block without branches".into()));
        };
        let (y, dy) = self.blob("sum", shape)?;
        let y_len = mul("sum", self.n, shape.len())?;
        let sum = |me: &Self, parts: &[&wgpu::Buffer], to: &wgpu::Buffer, n: usize| {
            let mut cmds = Vec::new();
            let params = [0, 0, 0, u(n)?];
            match parts {
                [only] => cmds.push(Command::Copy {
                    from: (*only).clone(),
                    to: to.clone(),
                    bytes: (size_of::<T>() * n) as u64,
                }),
                // The first two added into `to`, the others added to it in place (one
                // buffer is never bound twice).
                [a, b, rest @ ..] => {
                    cmds.push(me.op(Op::Add, &params, &[*a, to, *b], Threads::Each(n))?);
                    for p in rest {
                        cmds.push(me.op(Op::Accumulate, &params, &[*p, to], Threads::Each(n))?);
                    }
                }
                [] => {}
            }
            Ok::<_, GpuError>(cmds)
        };
        let vals: Vec<&wgpu::Buffer> = outs.iter().map(|o| &o.val).collect();
        let fwd = sum(self, &vals, &y.val, y_len)?;
        self.forward.extend(fwd);
        if let Some(dx) = &x.grad {
            let parts: Vec<&wgpu::Buffer> = dxs.iter().collect();
            self.backward[at] = sum(self, &parts, dx, len)?;
        }
        let copies = outs
            .iter()
            .filter_map(|o| o.grad.as_ref())
            .map(|g| Command::Copy {
                from: dy.clone(),
                to: g.clone(),
                bytes: (size_of::<T>() * y_len) as u64,
            })
            .collect();
        self.backward.push(copies);
        Ok(y)
    }
}

/// A network training on the GPU, in f32 or (where [`Gpu::supports`] it) f64. See the
/// [module docs](self).
pub struct Trainer<T: Real = f32> {
    gpu: Gpu,
    net: Network<T>,
    config: SgdConfig,
    iter: usize,
    params: Params,
    /// The `Step` uniform of `shaders/common.wgsl`: five values of `T` and the slot.
    step: wgpu::Buffer,
    /// `SLOTS` pairs (loss sum, hits).
    metrics: wgpu::Buffer,
    /// Slots written since the last read, and the batch size of each.
    written: Vec<usize>,
    /// Mean losses of steps read back but not yet taken by [`Trainer::losses`].
    pending: Vec<f64>,
    plans: Vec<Plan>,
}

impl<T: Real> Trainer<T> {
    /// Uploads `net`'s parameters and `sgd`'s velocity (zeros if it has none yet) and
    /// iteration count.
    ///
    /// # Errors
    /// [`GpuError::Shape`] when a tensor does not fit the adapter or `sgd`'s velocity does
    /// not match `net`; [`GpuError::Device`] when the GPU fails; [`GpuError::Unsupported`]
    /// for f64 on an adapter without it.
    pub fn new(gpu: &Gpu, net: &Network<T>, sgd: &Sgd<T>) -> Result<Self, GpuError> {
        // Compiles the f64 kernels now, so that an adapter without them fails here.
        gpu.kernels::<T>()?;
        let mut weights = Vec::new();
        tensors(net.layers(), &mut weights);
        let mut velocity = Vec::new();
        if let Some(v) = sgd.velocity() {
            tensors(v, &mut velocity);
            if velocity.len() != weights.len()
                || velocity
                    .iter()
                    .zip(&weights)
                    .any(|(v, w)| v.0.len() != w.0.len())
            {
                return Err(GpuError::Shape(
                    "the optimiser's momentum belongs to another network".into(),
                ));
            }
        }
        let velocity = sgd.velocity().map(|_| velocity.as_slice());
        let params = Params::new(gpu, &weights, velocity)?;
        let step = gpu.scoped(|| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step"),
                size: STEP_VALUES * size_of::<T>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(Self {
            gpu: gpu.clone(),
            net: net.clone(),
            config: *sgd.config(),
            iter: sgd.iteration(),
            params,
            step,
            metrics: gpu.poisoned::<T>("metrics", 2 * SLOTS)?,
            written: Vec::new(),
            pending: Vec::new(),
            plans: Vec::new(),
        })
    }

    /// The plan for batches of `n`, built the first time.
    fn plan(&mut self, n: usize) -> Result<&Plan, GpuError> {
        if let Some(at) = self.plans.iter().position(|p| p.n == n) {
            return Ok(&self.plans[at]);
        }
        // Plans hold every activation of a batch: keep two (the training batch and an
        // epoch's last, smaller one), dropping the oldest for a third.
        if self.plans.len() == 2 {
            self.plans.remove(0);
        }
        // Sizes from the shapes first: nothing is allocated for a batch they overflow.
        if crate::memory::plan_bytes(&self.net, n).is_none() {
            return Err(GpuError::Shape(format!(
                "a batch of {n}: the buffers' sizes overflow"
            )));
        }
        let before = self.gpu.stored();
        let mut b = Builder {
            gpu: &self.gpu,
            params: &self.params,
            step: &self.step,
            n,
            next_param: 0,
            forward: Vec::new(),
            backward: Vec::new(),
            ones: None,
            held: None,
            real: PhantomData,
        };
        let shape = self.net.input_shape();
        let (input, _) = b.values("input", shape)?;
        let x = Blob {
            val: input.clone(),
            grad: None,
            shape,
        };
        let logits = b.seq(self.net.layers(), x)?;
        let classes = logits.shape.len();
        // Each step writes the real ones.
        let labels = self.gpu.upload("labels", &vec![0u32; n])?;
        let per_sample = b.values("losses", Shape::flat(2))?.0;
        let dlogits = logits
            .grad
            .clone()
            .ok_or_else(|| GpuError::Shape("a network without layers".into()))?;
        let softmax = b.op(
            Op::Softmax,
            &[u(classes)?, u(n)?],
            &[&logits.val, &labels, &dlogits, &per_sample],
            Threads::Each(n),
        )?;
        let metrics = b.op(
            Op::Metrics,
            &[u(n)?],
            &[&per_sample, &self.metrics],
            Threads::Groups(1),
        )?;
        b.forward.extend([softmax, metrics]);
        let backward: Vec<Command> = b.backward.drain(..).rev().flatten().collect();
        let (p, l) = (&self.params, &self.params.layout);
        let update = vec![b.op(
            Op::Sgd,
            &[u(l.len)?, u(l.ends[0])?, u(l.ends[1])?],
            &[&p.w, &p.g, &p.v],
            Threads::Each(l.len),
        )?];
        let forward = b.forward;
        self.plans.push(Plan {
            n,
            bytes: self.gpu.stored() - before,
            input,
            labels,
            forward,
            backward,
            update,
        });
        Ok(&self.plans[self.plans.len() - 1])
    }

    /// Checks a batch and writes it, its labels and this step's uniform values.
    fn load(&mut self, x: &Tensor<T>, labels: &[usize], lr: f64) -> Result<(), GpuError> {
        let (shape, classes) = (self.net.input_shape(), self.net.output_shape().len());
        if x.shape != shape || x.n == 0 || Some(x.data.len()) != x.n.checked_mul(shape.len()) {
            return Err(GpuError::Shape(format!(
                "a batch of {} samples of {:?} ({} values) for a network on {shape:?}",
                x.n,
                x.shape,
                x.data.len()
            )));
        }
        if labels.len() != x.n {
            return Err(GpuError::Shape(format!(
                "{} labels for {} samples",
                labels.len(),
                x.n
            )));
        }
        if let Some(bad) = labels.iter().find(|l| **l >= classes) {
            return Err(GpuError::Shape(format!(
                "label {bad} for a network of {classes} classes (labels must be below it)"
            )));
        }
        let c = &self.config;
        let mut step = Vec::with_capacity(STEP_VALUES as usize * size_of::<T>());
        for v in [
            lr,
            lr * c.bias_lr_mult,
            lr * c.a_lr_mult,
            c.momentum,
            c.weight_decay,
        ] {
            step.extend_from_slice(bytemuck::bytes_of(&T::of_f64(v)));
        }
        step.extend_from_slice(&(self.written.len() as u32).to_ne_bytes());
        step.resize(STEP_VALUES as usize * size_of::<T>(), 0);
        // Samples are row-major (s, c, p) on the host and channel-major (c, s, p) here.
        let plane = shape.h * shape.w;
        let mut cm = vec![T::zero(); x.data.len()];
        for (s, sample) in x.data.chunks_exact(shape.len()).enumerate() {
            for (c, values) in sample.chunks_exact(plane).enumerate() {
                let at = (c * x.n + s) * plane;
                cm[at..at + plane].copy_from_slice(values);
            }
        }
        let ids: Vec<u32> = labels.iter().map(|l| *l as u32).collect();
        let (queue, step_buf) = (self.gpu.queue.clone(), self.step.clone());
        let plan = self.plan(x.n)?;
        queue.write_buffer(&plan.input, 0, bytemuck::cast_slice(&cm));
        queue.write_buffer(&plan.labels, 0, bytemuck::cast_slice(&ids));
        queue.write_buffer(&step_buf, 0, &step);
        self.written.push(x.n);
        Ok(())
    }

    /// Submits the plan for `n` up to `last` without waiting.
    fn submit(&self, n: usize, last: Stage) -> Result<(), GpuError> {
        let Some(plan) = self.plans.iter().find(|p| p.n == n) else {
            return Ok(());
        };
        self.gpu.submit(|e| {
            Gpu::record(e, &plan.forward);
            if last >= Stage::Backward {
                Gpu::record(e, &plan.backward);
            }
            if last >= Stage::Update {
                Gpu::record(e, &plan.update);
            }
        })
    }

    /// Queues one SGD step on a batch (`x` row-major as on the CPU, `labels` below the
    /// number of classes); returns without waiting for the GPU.
    ///
    /// # Errors
    /// [`GpuError::Shape`] when the batch does not fit the network or a buffer does not fit
    /// the adapter; [`GpuError::Device`] when the GPU fails.
    pub fn step(&mut self, x: &Tensor<T>, labels: &[usize]) -> Result<(), GpuError> {
        if self.written.len() == SLOTS {
            self.flush_steps()?;
        }
        let lr = self.config.lr_at(self.iter);
        self.load(x, labels, lr)?;
        self.submit(x.n, Stage::Update)?;
        self.iter += 1;
        Ok(())
    }

    /// The gradients of the mean loss on a batch with respect to every parameter, in the
    /// network's layout (as the core's `Network::param_gradients` gives them), without an
    /// update. The batch's loss counts among [`Trainer::losses`].
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn gradients(
        &mut self,
        x: &Tensor<T>,
        labels: &[usize],
    ) -> Result<Vec<Layer<T>>, GpuError> {
        if self.written.len() == SLOTS {
            self.flush_steps()?;
        }
        self.load(x, labels, 0.0)?;
        self.submit(x.n, Stage::Backward)?;
        Ok(self.download(&self.params.g)?.into_layers())
    }

    /// Reads the written metrics slots back: mean losses of training steps go to
    /// `pending`; returns every slot's (loss sum, hits, samples).
    fn read_slots(&mut self) -> Result<Vec<(f64, f64, usize)>, GpuError> {
        if self.written.is_empty() {
            return Ok(Vec::new());
        }
        let values = self
            .gpu
            .download::<T>(&self.metrics, 2 * self.written.len())?;
        let slots: Vec<(f64, f64, usize)> = values
            .chunks_exact(2)
            .zip(&self.written)
            .map(|(v, n)| (v[0].as_f64(), v[1].as_f64(), *n))
            .collect();
        self.written.clear();
        Ok(slots)
    }

    /// Moves the losses of the training steps in the slots to `pending`.
    fn flush_steps(&mut self) -> Result<(), GpuError> {
        let read = self.read_slots()?;
        self.pending
            .extend(read.iter().map(|(sum, _, n)| sum / (*n).max(1) as f64));
        Ok(())
    }

    /// The mean loss of every step queued since the last call, in order (waits for them).
    ///
    /// # Errors
    /// [`GpuError::Device`] when the GPU fails.
    pub fn losses(&mut self) -> Result<Vec<f64>, GpuError> {
        self.flush_steps()?;
        Ok(std::mem::take(&mut self.pending))
    }

    /// Loss sum, correct predictions and samples of the network as it stands on `batches`
    /// (no update).
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn evaluate<'b>(
        &mut self,
        batches: impl IntoIterator<Item = (&'b Tensor<T>, &'b [usize])>,
    ) -> Result<(f64, usize, usize), GpuError> {
        // Steps queued before keep their losses.
        self.flush_steps()?;
        let (mut loss, mut hits, mut samples) = (0.0, 0.0, 0);
        let mut add = |slots: Vec<(f64, f64, usize)>| {
            for (l, h, n) in slots {
                loss += l;
                hits += h;
                samples += n;
            }
        };
        for (x, y) in batches {
            if self.written.len() == SLOTS {
                add(self.read_slots()?);
            }
            self.load(x, y, 0.0)?;
            self.submit(x.n, Stage::Forward)?;
        }
        add(self.read_slots()?);
        Ok((loss, hits as usize, samples))
    }

    /// The network as trained so far, downloaded: an ordinary core network.
    ///
    /// # Errors
    /// [`GpuError::Device`] when the GPU fails; [`GpuError::Shape`] if the downloaded
    /// network does not validate (a bug).
    pub fn network(&self) -> Result<Network<T>, GpuError> {
        self.download(&self.params.w)
    }

    /// The network with the tensors of `buffer` (values, gradients or velocity) as its
    /// parameters.
    fn download(&self, buffer: &wgpu::Buffer) -> Result<Network<T>, GpuError> {
        let values = self.params.download::<T>(&self.gpu, buffer)?;
        let mut layers = self.net.layers().to_vec();
        fill(&mut layers, &mut values.into_iter());
        Network::new(self.net.input_shape(), layers)
            .map_err(|e| GpuError::Shape(format!("the downloaded network: {e}")))
    }

    /// The optimiser as it stands: its velocity downloaded, and the iteration count.
    ///
    /// # Errors
    /// As [`Trainer::network`].
    pub fn sgd(&self) -> Result<Sgd<T>, GpuError> {
        // Without momentum the CPU keeps no velocity, and neither does its state here.
        let velocity = if self.config.momentum == 0.0 {
            None
        } else {
            Some(self.download(&self.params.v)?.into_layers())
        };
        Ok(Sgd::resume(self.config, velocity, self.iter))
    }

    /// Kernel dispatches in one training step on batches of `n` (builds that batch size's
    /// plan, which may replace one of the two kept); each is a launch on the GPU, which
    /// small networks are bound by.
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn kernels_per_step(&mut self, n: usize) -> Result<usize, GpuError> {
        let plan = self.plan(n)?;
        Ok([&plan.forward, &plan.backward, &plan.update]
            .iter()
            .flat_map(|c| c.iter())
            .filter(|c| matches!(c, Command::Run(d) if d.groups.0 * d.groups.1 * d.groups.2 > 0))
            .count())
    }

    /// Bytes of the storage buffers this trainer holds: parameters, gradients, momentum,
    /// metrics and the plans of the batch sizes it keeps.
    pub fn bytes(&self) -> u64 {
        let p = &self.params;
        [&p.w, &p.g, &p.v, &self.metrics]
            .iter()
            .map(|b| b.size())
            .chain(self.plans.iter().map(|p| p.bytes))
            .sum()
    }

    /// The adapter this trainer runs on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_grouped_by_rate_on_aligned_starts() {
        use Rate::{Bias, Weight, A};
        // Walk order: a conv's weight and bias, an activation's a, a dense layer's weight
        // and bias, an empty a.
        let tensors = [
            (27, Weight),
            (3, Bias),
            (3, A),
            (70, Weight),
            (5, Bias),
            (0, A),
        ];
        assert_eq!(
            layout(&tensors, 16),
            Some(Layout {
                at: vec![(0, 27), (112, 3), (144, 3), (32, 70), (128, 5), (160, 0)],
                len: 176,
                ends: [112, 144],
            })
        );
        assert!(layout(&[(usize::MAX, Weight)], 16).is_none());
    }
}
