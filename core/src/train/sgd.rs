//! Stochastic gradient descent with momentum, weight decay and a learning-rate schedule
//! (Caffe's update: `v = m v + lr (g + wd w)`, `w -= v`).

use alloc::vec::Vec;

use super::TrainError;
use crate::net::Gradients;
use crate::{Layer, Network, Scalar};

/// Learning rate over iterations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` iterations (Caffe's "step" policy).
    Step {
        /// Iterations per step.
        every: usize,
        /// Factor per step.
        gamma: f64,
    },
    /// Cosine decay from the base rate to `min` over `total` iterations.
    Cosine {
        /// Iterations of the decay.
        total: usize,
        /// Final rate.
        min: f64,
    },
}

/// Optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum `m`.
    pub momentum: f64,
    /// L2 weight decay on weights (not on biases or `a`).
    pub weight_decay: f64,
    /// Learning-rate multiplier for biases (Caffe's cifar10_quick uses 2).
    pub bias_lr_mult: f64,
    /// Learning-rate multiplier for the P-activations' `a`. A morphed child starts with
    /// `a = 1` (linear); at the weights' rate its `a` barely moves, so the child stays
    /// nearly linear. A larger rate lets it become non-linear (section 3.3).
    pub a_lr_mult: f64,
    /// Schedule.
    pub schedule: Schedule,
}

impl SgdConfig {
    /// The learning rate at iteration `iter`.
    pub fn lr_at(&self, iter: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step { every, gamma } => {
                self.lr * libm::pow(gamma, (iter / every.max(1)) as f64)
            }
            Schedule::Cosine { total, min } => {
                let t = (iter.min(total) as f64) / total.max(1) as f64;
                min + 0.5 * (self.lr - min) * (1.0 + libm::cos(core::f64::consts::PI * t))
            }
        }
    }
}

/// SGD state: the configuration, the momentum buffers and the iteration count.
#[derive(Clone, Debug)]
pub struct Sgd<T> {
    config: SgdConfig,
    velocity: Option<Vec<Layer<T>>>,
    iter: usize,
}

impl<T: Scalar> Sgd<T> {
    /// A fresh optimiser (zero momentum, iteration 0).
    pub fn new(config: SgdConfig) -> Self {
        Self {
            config,
            velocity: None,
            iter: 0,
        }
    }

    /// An optimiser that picks up saved state: the momentum buffers (shaped like the
    /// network's layers, as [`Sgd::velocity`] gives them; `None` for zero momentum) and the
    /// iterations done, which the schedule counts from.
    pub fn resume(config: SgdConfig, velocity: Option<Vec<Layer<T>>>, iter: usize) -> Self {
        Self {
            config,
            velocity,
            iter,
        }
    }

    /// Whether the momentum buffers (if any yet) are shaped like `net`'s layers, as a resumed
    /// optimiser's must be.
    pub fn fits(&self, net: &crate::Network<T>) -> bool {
        self.velocity
            .as_deref()
            .is_none_or(|v| same_structure(v, net.layers()))
    }

    /// Iterations done.
    pub fn iteration(&self) -> usize {
        self.iter
    }

    /// The settings.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// The momentum buffers, shaped like the network's layers (parameters hold the
    /// velocities); `None` before the first step, and with zero momentum unless a velocity was
    /// resumed (plain SGD keeps none).
    pub fn velocity(&self) -> Option<&[Layer<T>]> {
        self.velocity.as_deref()
    }

    /// Applies one update to `net` with `grads`; P-activation `a` is clamped to `[0, 1]`.
    ///
    /// # Errors
    /// [`TrainError::Structure`] if `grads` (or the momentum state) does not have the
    /// network's structure; the network is then left unchanged.
    pub fn step(&mut self, net: &mut Network<T>, grads: &Gradients<T>) -> Result<(), TrainError> {
        if !same_structure(net.layers(), grads.layers()) {
            return Err(TrainError::Structure);
        }
        // Without momentum there is no velocity to keep (none is allocated: on a small
        // device it would be a third copy of the parameters).
        let mut velocity = match self.velocity.take() {
            Some(v) if same_structure(net.layers(), &v) => Some(v),
            Some(_) => return Err(TrainError::Structure),
            None if self.config.momentum == 0.0 => None,
            None => Some(zeroed(grads.layers())),
        };
        let lr = self.config.lr_at(self.iter);
        update_seq(
            net.layers_mut(),
            grads.layers(),
            velocity.as_deref_mut(),
            &self.config,
            lr,
        );
        self.velocity = velocity;
        self.iter += 1;
        Ok(())
    }
}

fn zeroed<T: Scalar>(layers: &[Layer<T>]) -> Vec<Layer<T>> {
    let mut v = layers.to_vec();
    for_each_param(&mut v, &mut |x: &mut T| *x = T::zero());
    v
}

/// Combines the gradients of two disjoint sub-batches into those of their union:
/// `a = wa a + wb b` (with `wa`, `wb` the sub-batches' shares of the union), so that batches can
/// be split across threads.
///
/// # Errors
/// [`TrainError::Structure`] if the two come from differently shaped networks.
pub fn combine<T: Scalar>(
    a: &mut Gradients<T>,
    b: &Gradients<T>,
    wa: T,
    wb: T,
) -> Result<(), TrainError> {
    if !same_structure(&a.layers, &b.layers) {
        return Err(TrainError::Structure);
    }
    zip_params(&mut a.layers, &b.layers, &mut |x, y| {
        x.iter_mut()
            .zip(y)
            .for_each(|(x, y)| *x = wa * *x + wb * *y);
    });
    Ok(())
}

/// Calls `f` on each pair of matching parameter slices of two networks of one structure.
fn zip_params<T: Scalar>(a: &mut [Layer<T>], b: &[Layer<T>], f: &mut impl FnMut(&mut [T], &[T])) {
    for (x, y) in a.iter_mut().zip(b) {
        match (x, y) {
            (Layer::ParallelSum(p), Layer::ParallelSum(q)) => {
                p.iter_mut().zip(q).for_each(|(u, v)| zip_params(u, v, f));
            }
            (Layer::Activation(p), Layer::Activation(q)) => f(&mut p.a, &q.a),
            (x, y) => {
                if let (Some(k), Some(g)) = (x.kernel_mut(), y.kernel()) {
                    f(&mut k.weight, &g.weight);
                    f(&mut k.bias, &g.bias);
                }
            }
        }
    }
}

fn for_each_param<T: Scalar>(layers: &mut [Layer<T>], f: &mut impl FnMut(&mut T)) {
    for l in layers {
        match l {
            Layer::Dense(k) | Layer::Conv2d(crate::Conv2d { kernel: k, .. }) => {
                k.weight
                    .iter_mut()
                    .chain(k.bias.iter_mut())
                    .for_each(&mut *f);
            }
            Layer::Activation(p) => p.a.iter_mut().for_each(&mut *f),
            Layer::ParallelSum(bs) => bs.iter_mut().for_each(|b| for_each_param(b, f)),
            _ => {}
        }
    }
}

fn same_structure<T: Scalar>(a: &[Layer<T>], b: &[Layer<T>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Layer::ParallelSum(p), Layer::ParallelSum(q)) => {
                p.len() == q.len() && p.iter().zip(q).all(|(u, v)| same_structure(u, v))
            }
            (Layer::Activation(p), Layer::Activation(q)) => p.a.len() == q.a.len(),
            _ => match (x.kernel(), y.kernel()) {
                (Some(k), Some(g)) => {
                    k.weight.len() == g.weight.len() && k.bias.len() == g.bias.len()
                }
                (None, None) => x.name() == y.name(),
                _ => false,
            },
        })
}

fn momentum_step<T: Scalar>(w: &mut [T], g: &[T], v: Option<&mut [T]>, m: f64, lr: f64, wd: f64) {
    let (m, lr, wd) = (T::of_f64(m), T::of_f64(lr), T::of_f64(wd));
    match v {
        Some(v) => {
            for ((w, g), v) in w.iter_mut().zip(g).zip(v) {
                *v = m * *v + lr * (*g + wd * *w);
                *w -= *v;
            }
        }
        // Plain SGD keeps no velocity: the update with `m = 0` (`0 v + u = u` for a finite `v`,
        // up to the sign of a zero).
        None => {
            for (w, g) in w.iter_mut().zip(g) {
                *w -= lr * (*g + wd * *w);
            }
        }
    }
}

fn update_seq<T: Scalar>(
    layers: &mut [Layer<T>],
    grads: &[Layer<T>],
    mut vel: Option<&mut [Layer<T>]>,
    c: &SgdConfig,
    lr: f64,
) {
    for (i, (l, g)) in layers.iter_mut().zip(grads).enumerate() {
        let v = vel.as_deref_mut().and_then(|v| v.get_mut(i));
        match (l, g) {
            (Layer::ParallelSum(bs), Layer::ParallelSum(gs)) => {
                let mut vs = match v {
                    Some(Layer::ParallelSum(vs)) => Some(vs),
                    _ => None,
                };
                for (j, (b, gb)) in bs.iter_mut().zip(gs).enumerate() {
                    let vb = vs.as_deref_mut().and_then(|vs| vs.get_mut(j));
                    update_seq(b, gb, vb.map(Vec::as_mut_slice), c, lr);
                }
            }
            (Layer::Activation(p), Layer::Activation(gp)) => {
                let va = match v {
                    Some(Layer::Activation(vp)) => Some(vp.a.as_mut_slice()),
                    _ => None,
                };
                momentum_step(&mut p.a, &gp.a, va, c.momentum, lr * c.a_lr_mult, 0.0);
                p.a.iter_mut()
                    .for_each(|a| *a = a.max(T::zero()).min(T::one()));
            }
            (l, g) => {
                if let (Some(k), Some(gk)) = (l.kernel_mut(), g.kernel()) {
                    let (vw, vb) = match v.and_then(Layer::kernel_mut) {
                        Some(vk) => (Some(vk.weight.as_mut_slice()), Some(vk.bias.as_mut_slice())),
                        None => (None, None),
                    };
                    momentum_step(
                        &mut k.weight,
                        &gk.weight,
                        vw,
                        c.momentum,
                        lr,
                        c.weight_decay,
                    );
                    let bias_lr = lr * c.bias_lr_mult;
                    momentum_step(&mut k.bias, &gk.bias, vb, c.momentum, bias_lr, 0.0);
                }
            }
        }
    }
}
