//! Mini-batch training and evaluation over a [`Dataset`], with per-epoch metrics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use netmorph_core::net::Gradients;
use netmorph_core::train::{combine, softmax_cross_entropy, Sgd, SgdConfig, TrainError};
use netmorph_core::{LayerPath, Network, Rng, Scalar, Tensor};

use crate::data::{augment, Augment, Dataset};

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Optimiser.
    pub sgd: SgdConfig,
    /// Seed for the sample order.
    pub seed: u64,
    /// Threads per step: each computes the gradients of a slice of the batch (1: no threads).
    pub threads: usize,
    /// Augmentation of training batches, if any.
    pub augment: Option<Augment>,
}

/// Where a training run stands: with the network, all a checkpoint needs to resume exactly
/// (sample orders and augmentation are drawn from the seed, the epoch and the step).
#[derive(Clone, Debug)]
pub struct TrainState<T> {
    /// Epochs finished.
    pub epoch: usize,
    /// Steps finished in the epoch after those.
    pub step: usize,
    /// Sum of batch loss times batch size over those steps (for the epoch's mean loss).
    pub loss_sum: f64,
    /// Optimiser: momentum and the iteration the schedule counts from.
    pub sgd: Sgd<T>,
}

impl<T: Scalar> TrainState<T> {
    /// The start of a run.
    pub fn new(config: &FitConfig) -> Self {
        Self {
            epoch: 0,
            step: 0,
            loss_sum: 0.0,
            sgd: Sgd::new(config.sgd),
        }
    }
}

/// How [`fit`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch ran.
    Finished,
    /// The stop flag was raised; the state says where to resume.
    Interrupted,
}

/// The seed of `epoch`'s sample order, or with `step` of that step's augmentation.
fn derived_seed(seed: u64, epoch: usize, step: Option<usize>) -> u64 {
    let mut rng = Rng::seed(seed ^ (epoch as u64).rotate_left(32));
    match step {
        None => rng.next_u64(),
        Some(s) => rng.next_u64() ^ Rng::seed(s as u64 + 1).next_u64(),
    }
}

/// Metrics after one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Test loss after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch, in `[0, 1]`.
    pub test_accuracy: f64,
    /// Training throughput.
    pub images_per_second: f64,
}

/// Asks glibc's allocator to keep freed memory in the process: every training step frees and
/// allocates the same large buffers (activations, patch matrices, gradients), and memory handed
/// back to the system costs a page fault per 4 KiB when the next step takes it again (about a
/// tenth of a cifar10_quick step on this machine). Training programs call it once at start;
/// it does nothing on other platforms.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before training starts
    // and glibc serialises it against allocations.
    unsafe {
        // Chunks up to 32 MiB (glibc's largest threshold) come from the heap, not mmap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // Never trim the heap top back to the system.
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Mean softmax cross-entropy and accuracy of `net` on `data`, in batches of 500.
///
/// # Errors
/// [`TrainError`] if the data does not fit the network.
pub fn evaluate<T: Scalar>(net: &Network<T>, data: &Dataset) -> Result<(f64, f64), TrainError> {
    let (mut loss, mut hits) = (0.0, 0usize);
    let all: Vec<usize> = (0..data.y.len()).collect();
    for chunk in all.chunks(500) {
        let (x, y) = data.batch(chunk);
        let x = cast(&x);
        let out = net.forward(&x).map_err(TrainError::Net)?;
        loss += softmax_cross_entropy(&out, &y)?.0 * chunk.len() as f64;
        let classes = out.shape.len();
        hits += out
            .data
            .chunks_exact(classes)
            .zip(&y)
            .filter(|(row, y)| argmax(row) == **y)
            .count();
    }
    let n = data.y.len().max(1) as f64;
    Ok((loss / n, hits as f64 / n))
}

fn argmax<T: Scalar>(row: &[T]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, T::neg_infinity()), |best, (i, v)| {
            if *v > best.1 {
                (i, *v)
            } else {
                best
            }
        })
        .0
}

/// Samples (f32, as data sets hold them) in a network's scalar type `T` (exact: every f32 is
/// an f64).
pub fn cast<T: Scalar>(x: &Tensor<f32>) -> Tensor<T> {
    Tensor {
        n: x.n,
        shape: x.shape,
        data: x.data.iter().map(|v| T::of_f64(f64::from(*v))).collect(),
    }
}

/// Where training steps run. [`fit_on`] calls [`Engine::start`] once, then steps and
/// evaluations, then [`Engine::finish`], which leaves the network and optimiser state in
/// the caller's `net` and `sgd`. [`Cpu`] updates them in place at every step; a GPU engine
/// ([`crate::device::GpuEngine`]) keeps them on the GPU in between.
pub trait Engine<T: Scalar> {
    /// Whether each step updates the caller's network and optimiser in place (the CPU), or
    /// only [`Engine::finish`] brings them back (a GPU).
    const IN_PLACE: bool;

    /// Takes the network and optimiser state the run starts from.
    ///
    /// # Errors
    /// [`TrainError::Device`] when the engine cannot take this network.
    fn start(&mut self, net: &Network<T>, sgd: &Sgd<T>) -> Result<(), TrainError>;

    /// One SGD step on a batch. Returns the mean losses of the steps whose loss became
    /// known by now, in order: this step's on the CPU; on a GPU, every few steps those
    /// queued since the last report.
    ///
    /// # Errors
    /// Any [`TrainError`].
    fn step(
        &mut self,
        net: &mut Network<T>,
        sgd: &mut Sgd<T>,
        x: &Tensor<f32>,
        labels: &[usize],
    ) -> Result<Vec<f64>, TrainError>;

    /// The mean losses of every step not yet reported (waits for them).
    ///
    /// # Errors
    /// [`TrainError::Device`].
    fn losses(&mut self) -> Result<Vec<f64>, TrainError>;

    /// Mean softmax cross-entropy and accuracy of the network as trained so far on `data`.
    ///
    /// # Errors
    /// [`TrainError`] if the data does not fit the network, the loss is not finite or the
    /// device fails.
    fn evaluate(&mut self, net: &Network<T>, data: &Dataset) -> Result<(f64, f64), TrainError>;

    /// Leaves the network and optimiser state as trained so far in `net` and `sgd`.
    ///
    /// # Errors
    /// [`TrainError::Device`].
    fn finish(&mut self, net: &mut Network<T>, sgd: &mut Sgd<T>) -> Result<(), TrainError>;
}

/// Training on the CPU: [`step`] with this many threads, [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Threads per step.
    pub threads: usize,
}

impl<T: Scalar> Engine<T> for Cpu {
    const IN_PLACE: bool = true;

    fn start(&mut self, _: &Network<T>, _: &Sgd<T>) -> Result<(), TrainError> {
        Ok(())
    }

    fn step(
        &mut self,
        net: &mut Network<T>,
        sgd: &mut Sgd<T>,
        x: &Tensor<f32>,
        labels: &[usize],
    ) -> Result<Vec<f64>, TrainError> {
        step(net, sgd, &cast(x), labels, self.threads).map(|loss| vec![loss])
    }

    fn losses(&mut self) -> Result<Vec<f64>, TrainError> {
        Ok(Vec::new())
    }

    fn evaluate(&mut self, net: &Network<T>, data: &Dataset) -> Result<(f64, f64), TrainError> {
        evaluate(net, data)
    }

    fn finish(&mut self, _: &mut Network<T>, _: &mut Sgd<T>) -> Result<(), TrainError> {
        Ok(())
    }
}

/// [`fit_on`] on the CPU with `config.threads` threads.
///
/// # Errors
/// As [`fit_on`].
pub fn fit<T: Scalar>(
    net: &mut Network<T>,
    data: (&Dataset, &Dataset),
    config: &FitConfig,
    state: &mut TrainState<T>,
    stop: &AtomicBool,
    progress: impl FnMut(usize, usize, usize, f64),
    on_epoch: impl FnMut(&EpochStats),
) -> Result<(Vec<EpochStats>, Outcome), TrainError> {
    let mut cpu = Cpu {
        threads: config.threads,
    };
    fit_on(&mut cpu, net, data, config, state, stop, progress, on_epoch)
}

/// The losses of steps reported by an engine, matched with the sizes of their batches.
struct Reported {
    /// Sizes of the batches stepped on whose losses have not come yet, oldest first.
    waiting: VecDeque<usize>,
    /// Samples whose loss is in the state's `loss_sum`.
    samples: usize,
}

impl Reported {
    /// Adds `losses` (the oldest waiting steps', in order) to `state`'s loss sum.
    fn absorb<T: Scalar>(
        &mut self,
        losses: Vec<f64>,
        state: &mut TrainState<T>,
    ) -> Result<(), TrainError> {
        for loss in losses {
            if !loss.is_finite() {
                return Err(TrainError::NonFinite);
            }
            let n = self.waiting.pop_front().unwrap_or(0);
            state.loss_sum += loss * n as f64;
            self.samples += n;
        }
        Ok(())
    }
}

/// Trains `net` with `engine` on the `(train, test)` pair's `train` from `state` up to
/// `config.epochs` epochs, evaluating on `test` after every epoch; `progress` is called after
/// every step with (epoch, steps done in the epoch, steps per epoch, mean loss of the steps
/// whose loss is known, NaN before the first) and `on_epoch` after every epoch. `stop` is
/// checked before every step: once raised, `fit_on` returns [`Outcome::Interrupted`] and
/// `state` (with `net`) resumes the run exactly where it stopped.
///
/// # Errors
/// [`TrainError`] (a NaN loss, data that does not fit the network, a failing device). On
/// the CPU the network keeps the last good update and `state` says where it stands; on a
/// GPU the network and `state` stay as they were before this call.
#[allow(clippy::too_many_arguments)]
pub fn fit_on<T: Scalar, E: Engine<T>>(
    engine: &mut E,
    net: &mut Network<T>,
    (train, test): (&Dataset, &Dataset),
    config: &FitConfig,
    state: &mut TrainState<T>,
    stop: &AtomicBool,
    mut progress: impl FnMut(usize, usize, usize, f64),
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<(Vec<EpochStats>, Outcome), TrainError> {
    let at_start = (state.epoch, state.step, state.loss_sum);
    // The loop, as a closure called once: an error from any of its steps comes here first.
    let result = (|| -> Result<(Vec<EpochStats>, Outcome), TrainError> {
        // Grown per epoch: `epochs` is the user's number and may be huge.
        let mut stats = Vec::new();
        let batch = config.batch.max(1);
        let steps = train.y.len().div_ceil(batch);
        engine.start(net, &state.sgd)?;
        // Steps already taken in this epoch (a resumed run) count with the loss sum they have.
        let mut reported = Reported {
            waiting: VecDeque::new(),
            samples: state.step.saturating_mul(batch).min(train.y.len()),
        };
        while state.epoch < config.epochs {
            let epoch = state.epoch + 1;
            let start = Instant::now();
            let order =
                Rng::seed(derived_seed(config.seed, epoch, None)).permutation(train.y.len());
            let mut images = 0usize;
            for (done, chunk) in order.chunks(batch).enumerate().skip(state.step) {
                if stop.load(Ordering::Relaxed) {
                    reported.absorb(engine.losses()?, state)?;
                    engine.finish(net, &mut state.sgd)?;
                    return Ok((stats, Outcome::Interrupted));
                }
                let (mut x, y) = train.batch(chunk);
                if let Some(aug) = config.augment {
                    let mut rng = Rng::seed(derived_seed(config.seed, epoch, Some(done)));
                    augment(&mut x, aug, &mut rng);
                }
                reported.waiting.push_back(chunk.len());
                let losses = engine.step(net, &mut state.sgd, &x, &y)?;
                reported.absorb(losses, state)?;
                state.step = done + 1;
                images += chunk.len();
                let known = reported.samples;
                progress(
                    epoch,
                    done + 1,
                    steps,
                    if known == 0 {
                        f64::NAN
                    } else {
                        state.loss_sum / known as f64
                    },
                );
            }
            reported.absorb(engine.losses()?, state)?;
            let seconds = start.elapsed().as_secs_f64();
            let (test_loss, test_accuracy) = engine.evaluate(net, test)?;
            let s = EpochStats {
                epoch,
                train_loss: state.loss_sum / train.y.len().max(1) as f64,
                test_loss,
                test_accuracy,
                images_per_second: images as f64 / seconds.max(1e-9),
            };
            state.epoch = epoch;
            state.step = 0;
            state.loss_sum = 0.0;
            reported.samples = 0;
            on_epoch(&s);
            stats.push(s);
        }
        engine.finish(net, &mut state.sgd)?;
        Ok((stats, Outcome::Finished))
    })();
    if result.is_err() && !E::IN_PLACE {
        (state.epoch, state.step, state.loss_sum) = at_start;
    }
    result
}

/// Mean loss, mean gradients and sample count of one part of a batch.
type PartMean<T> = (f64, Gradients<T>, usize);

/// The sample-weighted mean of parts' mean losses and gradients, merged as they come (`None`
/// without parts).
///
/// # Errors
/// The first part's error; [`TrainError::Structure`] for gradients of different networks.
fn weighted_mean<T: Scalar>(
    parts: impl Iterator<Item = Result<PartMean<T>, TrainError>>,
) -> Result<Option<PartMean<T>>, TrainError> {
    let mut mean: Option<PartMean<T>> = None;
    for part in parts {
        let (l, g, m) = part?;
        mean = Some(match mean {
            None => (l, g, m),
            Some((loss, mut grads, n)) => {
                let total = (n + m) as f64;
                let (wa, wb) = (n as f64 / total, m as f64 / total);
                combine(&mut grads, &g, T::of_f64(wa), T::of_f64(wb))?;
                (loss * wa + l * wb, grads, n + m)
            }
        });
    }
    Ok(mean)
}

/// Activation values one forward and backward pass inside [`step`] aims to hold per layer:
/// 2 MiB of f32, about what a core's share of the caches keeps between one layer's output
/// and the next layer's read.
const PASS_VALUES: usize = 1 << 19;

/// Samples per forward and backward pass inside [`step`]: as many as keep the widest layer's
/// activations within 2^19 values, 2 MiB in f32 (for cifar10_quick 16, whose first convolution outputs
/// 32x32x32 values per sample; an MLP on 784 inputs passes whole slices, where smaller
/// passes only cost matrix-product efficiency).
pub fn pass_samples<T: Scalar>(net: &Network<T>) -> usize {
    let widest = (0..net.layers().len())
        .filter_map(|i| net.shape_before(&LayerPath::top(i)))
        .chain([net.output_shape()])
        .map(|s| s.len())
        .max()
        .unwrap_or(1);
    (PASS_VALUES / widest.max(1)).max(1)
}

/// One SGD step with the batch split into `threads` slices whose gradients are computed in
/// parallel (each slice in passes of at most [`pass_samples`] samples) and combined (weighted
/// by size), then one update: the same step as
/// [`train_step`](netmorph_core::train::train_step) up to floating-point summation
/// order. Returns the batch loss before the update.
///
/// # Errors
/// Any [`TrainError`]; on error the network is unchanged.
pub fn step<T: Scalar>(
    net: &mut Network<T>,
    sgd: &mut Sgd<T>,
    x: &Tensor<T>,
    labels: &[usize],
    threads: usize,
) -> Result<f64, TrainError> {
    let len = x.shape.len();
    let per = x.n.div_ceil(threads.max(1)).max(1);
    let parts: Vec<_> = labels.chunks(per).enumerate().collect();
    let shared: &Network<T> = net;
    let chunk = pass_samples(shared);
    // Mean loss and gradients of one pass over samples `start..start + ys.len()`.
    let pass = |start: usize, ys: &[usize]| {
        let xs = Tensor {
            n: ys.len(),
            shape: x.shape,
            data: x.data[start * len..(start + ys.len()) * len].to_vec(),
        };
        let (logits, trace) = shared.forward_trace_owned(xs).map_err(TrainError::Net)?;
        let (loss, dlogits) = softmax_cross_entropy(&logits, ys)?;
        let grads = shared
            .param_gradients(&trace, &dlogits)
            .map_err(TrainError::Net)?;
        Ok::<_, TrainError>((loss, grads))
    };
    // A slice's mean loss and gradients, and its size (`None` for an empty slice).
    let work = |&(i, ys): &(usize, &[usize])| {
        let passes = ys.chunks(chunk).enumerate();
        weighted_mean(passes.map(|(j, ys)| {
            pass(i * per + j * chunk, ys).map(|(loss, grads)| (loss, grads, ys.len()))
        }))
    };
    // The calling thread takes the first slice and rayon's pool the others: its threads stay
    // between steps (spawning threads every step cost more than a small network's whole
    // step), and the caller does not sleep while they work. A panicking task is re-raised by
    // rayon (a bug in the crate, not bad input).
    let mut results: Vec<Option<Result<_, TrainError>>> = parts.iter().map(|_| None).collect();
    rayon::in_place_scope(|s| {
        let mut slots = results.iter_mut().zip(&parts);
        let first = slots.next();
        for (slot, part) in slots {
            s.spawn(|_| *slot = Some(work(part)));
        }
        if let Some((slot, part)) = first {
            *slot = Some(work(part));
        }
    });
    let slices = results.into_iter().flatten().filter_map(Result::transpose);
    let Some((loss, grads, _)) = weighted_mean(slices)? else {
        return Err(TrainError::Labels {
            samples: x.n,
            labels: 0,
            classes: 0,
        });
    };
    sgd.step(net, &grads)?;
    Ok(loss)
}
