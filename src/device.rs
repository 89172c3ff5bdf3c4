//! Training on a GPU through [`netmorph_gpu`]: [`GpuEngine`] is the [`Engine`] that
//! [`fit_on`](crate::fit::fit_on) drives. The network and the optimiser's momentum are
//! uploaded once per run, stay on the GPU while it trains, and come back at the end (or when
//! the run is interrupted); batch losses come back every [`REPORT_EVERY`] steps. f32
//! networks train on every adapter, f64 networks where the adapter has 64-bit floats
//! ([`Gpu::supports`]); neither is ever converted to the other.
//!
//! ```no_run
//! use netmorph::device::{AdapterChoice, Gpu, GpuEngine};
//!
//! let gpu = Gpu::open(&AdapterChoice::Default)?;
//! println!("training on {}", gpu.name());
//! let engine = GpuEngine::new(gpu, 100);
//! // fit_on(&mut engine, &mut net, (&train, &test), &config, &mut state, &stop, ..)
//! # drop(engine);
//! # Ok::<(), netmorph::device::GpuError>(())
//! ```

use netmorph_core::train::{Sgd, TrainError};
use netmorph_core::{Network, Scalar, Tensor};
pub use netmorph_gpu::train::Trainer;
pub use netmorph_gpu::{AdapterChoice, AdapterSummary, Gpu, GpuError};

use crate::data::Dataset;
use crate::fit::{cast, Engine};

/// Steps between two reads of the batch losses: each read waits for the GPU to finish the
/// steps queued so far.
pub const REPORT_EVERY: usize = 25;

/// Batches evaluated per wait for the GPU.
const EVAL_GROUP: usize = 20;

/// Training on a GPU. See the [module docs](self).
pub struct GpuEngine {
    gpu: Gpu,
    trainer: Option<Run>,
    eval_batch: usize,
    since_report: usize,
}

/// The trainer of the run under way, in the network's own scalar type.
enum Run {
    Single(Trainer<f32>),
    Double(Trainer<f64>),
}

/// `$body` with `$t` bound to the run's trainer, whichever its type.
macro_rules! on_trainer {
    ($run:expr, $t:ident => $body:expr) => {
        match $run {
            Run::Single($t) => $body,
            Run::Double($t) => $body,
        }
    };
}

fn device(e: GpuError) -> TrainError {
    TrainError::Device(format!("on the GPU: {e}"))
}

impl GpuEngine {
    /// An engine on `gpu` that evaluates in batches of `eval_batch` (use the training batch:
    /// the GPU then reuses the training step's buffers).
    pub fn new(gpu: Gpu, eval_batch: usize) -> Self {
        Self {
            gpu,
            trainer: None,
            eval_batch: eval_batch.max(1),
            since_report: 0,
        }
    }

    /// The adapter.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn trainer(&mut self) -> Result<&mut Run, TrainError> {
        self.trainer
            .as_mut()
            .ok_or_else(|| TrainError::Device("the GPU engine was not started".into()))
    }
}

/// `sgd` in another scalar type; exact here, where both are the same type.
fn cast_sgd<T: Scalar, U: Scalar>(sgd: &Sgd<T>) -> Sgd<U> {
    Sgd::resume(
        *sgd.config(),
        sgd.velocity().map(|v| v.iter().map(|l| l.cast()).collect()),
        sgd.iteration(),
    )
}

impl<T: Scalar> Engine<T> for GpuEngine {
    const IN_PLACE: bool = false;

    /// # Errors
    /// [`TrainError::Device`] for an f64 network on an adapter without 64-bit floats
    /// (nothing converts f64 to f32 silently), or when the upload fails.
    fn start(&mut self, net: &Network<T>, sgd: &Sgd<T>) -> Result<(), TrainError> {
        // The casts below are between a type and itself: exact.
        let run = match T::NAME {
            "f32" => Trainer::new(&self.gpu, &net.cast(), &cast_sgd(sgd)).map(Run::Single),
            "f64" if self.gpu.supports::<f64>() => {
                Trainer::new(&self.gpu, &net.cast(), &cast_sgd(sgd)).map(Run::Double)
            }
            name => {
                return Err(TrainError::Device(format!(
                    "{} has no {name} kernels (f64 needs a Vulkan adapter with SHADER_F64); \
                     train this {name} network on the CPU (--device cpu) or as f32 \
                     (--dtype f32)",
                    self.gpu.name(),
                )))
            }
        };
        self.trainer = Some(run.map_err(device)?);
        self.since_report = 0;
        Ok(())
    }

    fn step(
        &mut self,
        _: &mut Network<T>,
        _: &mut Sgd<T>,
        x: &Tensor<f32>,
        labels: &[usize],
    ) -> Result<Vec<f64>, TrainError> {
        self.since_report += 1;
        let report = self.since_report >= REPORT_EVERY;
        if report {
            self.since_report = 0;
        }
        let run = self.trainer()?;
        match run {
            Run::Single(t) => t.step(x, labels),
            Run::Double(t) => t.step(&cast(x), labels),
        }
        .map_err(device)?;
        if report {
            return on_trainer!(run, t => t.losses()).map_err(device);
        }
        Ok(Vec::new())
    }

    fn losses(&mut self) -> Result<Vec<f64>, TrainError> {
        self.since_report = 0;
        on_trainer!(self.trainer()?, t => t.losses()).map_err(device)
    }

    fn evaluate(&mut self, _: &Network<T>, data: &Dataset) -> Result<(f64, f64), TrainError> {
        let batch = self.eval_batch.min(data.y.len()).max(1);
        let run = self.trainer()?;
        let all: Vec<usize> = (0..data.y.len()).collect();
        let (mut loss, mut hits) = (0.0, 0usize);
        for group in all.chunks(batch.saturating_mul(EVAL_GROUP)) {
            let batches: Vec<(Tensor<f32>, Vec<usize>)> =
                group.chunks(batch).map(|c| data.batch(c)).collect();
            let (l, h, _) = match run {
                Run::Single(t) => t.evaluate(batches.iter().map(|(x, y)| (x, y.as_slice()))),
                Run::Double(t) => {
                    let wide: Vec<_> = batches.iter().map(|(x, y)| (cast(x), y)).collect();
                    t.evaluate(wide.iter().map(|(x, y)| (x, y.as_slice())))
                }
            }
            .map_err(device)?;
            loss += l;
            hits += h;
        }
        let n = data.y.len().max(1) as f64;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite);
        }
        Ok((loss / n, hits as f64 / n))
    }

    fn finish(&mut self, net: &mut Network<T>, sgd: &mut Sgd<T>) -> Result<(), TrainError> {
        let run = self.trainer()?;
        on_trainer!(run, t => {
            *net = t.network().map_err(device)?.cast();
            *sgd = cast_sgd(&t.sgd().map_err(device)?);
        });
        Ok(())
    }
}
