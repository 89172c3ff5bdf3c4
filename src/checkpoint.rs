//! Checkpoints: a model file that also records where training stands (epochs and steps done,
//! the optimiser's momentum and iteration), so that an interrupted run resumes exactly where
//! it stopped. Sample orders and augmentation are drawn from the seed, the epoch and the step,
//! so the checkpoint only has to carry the seed and batch size to reproduce them.
//!
//! A checkpoint is still a model file: `netmorph eval`, `inspect`, `predict` and
//! [`crate::model_file::load`] read it as the network it holds.

use std::fmt;
use std::path::{Path, PathBuf};

use netmorph_core::train::Sgd;
use netmorph_core::{Network, Scalar};
use serde_json::json;

use crate::data::InputScale;
use crate::fit::{FitConfig, TrainState};
use crate::model_file::{load_checkpoint, save_checkpoint, ModelFileError, ScaledNetwork};

/// Why a checkpoint could not be written, read or resumed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file itself (I/O, corrupt, a plain model).
    File(ModelFileError),
    /// The training state entry is malformed.
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The run being resumed uses another seed or batch size than the checkpointed one, so
    /// it could not continue the same sample order.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// `"seed"` or `"batch"`.
        what: &'static str,
        /// The checkpoint's value.
        saved: u64,
        /// The value asked for now.
        given: u64,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "{e}"),
            Self::State { path, reason } => write!(
                f,
                "{}: bad training state in the checkpoint: {reason}; resume from another checkpoint or train from the model with `netmorph continue`",
                path.display()
            ),
            Self::Mismatch {
                path,
                what,
                saved,
                given,
            } => write!(
                f,
                "{}: the checkpoint was taken with --{what} {saved}, this run asks for {given}; pass --{what} {saved} to resume it",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::File(e) => Some(e),
            _ => None,
        }
    }
}

/// Writes `net` and `state` (of a run with `config`) to `path`, atomically.
///
/// # Errors
/// [`CheckpointError::File`] if the file cannot be written; the target is then untouched.
pub fn save<T: Scalar>(
    net: (&Network<T>, InputScale),
    state: &TrainState<T>,
    config: &FitConfig,
    path: &Path,
) -> Result<(), CheckpointError> {
    let meta = json!({
        "epoch": state.epoch,
        "step": state.step,
        // The bits, so the resumed epoch's mean loss is the uninterrupted one.
        "loss_sum_bits": format!("{:016x}", state.loss_sum.to_bits()),
        "iteration": state.sgd.iteration(),
        "seed": config.seed,
        "batch": config.batch,
    });
    save_checkpoint(net, meta, state.sgd.velocity(), path).map_err(CheckpointError::File)
}

/// Reads a checkpoint for a run with `config` over `steps` steps per epoch (its optimiser
/// settings apply from here on; its seed and batch size must be the checkpoint's).
///
/// # Errors
/// [`CheckpointError`]: unreadable file, a plain model, malformed state (an epoch past the
/// run's, a step past the epoch's, an iteration that does not match them, a non-finite loss),
/// or a seed or batch size that differs from the checkpoint's.
pub fn load<T: Scalar>(
    path: &Path,
    config: &FitConfig,
    steps: usize,
) -> Result<(ScaledNetwork<T>, TrainState<T>), CheckpointError> {
    let (net, meta, momentum) = load_checkpoint(path).map_err(CheckpointError::File)?;
    let bad = |reason: String| CheckpointError::State {
        path: path.to_path_buf(),
        reason,
    };
    let number = |key: &str| {
        meta[key]
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| bad(format!("`{key}` missing or not a number")))
    };
    for (what, given) in [("seed", config.seed), ("batch", config.batch as u64)] {
        let saved = meta[what]
            .as_u64()
            .ok_or_else(|| bad(format!("`{what}` missing or not a number")))?;
        if saved != given {
            return Err(CheckpointError::Mismatch {
                path: path.to_path_buf(),
                what,
                saved,
                given,
            });
        }
    }
    let loss_sum = meta["loss_sum_bits"]
        .as_str()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .map(f64::from_bits)
        .ok_or_else(|| bad("`loss_sum_bits` missing or not hexadecimal".into()))?;
    let (epoch, step, iteration) = (number("epoch")?, number("step")?, number("iteration")?);
    if epoch > config.epochs {
        return Err(bad(format!(
            "it is at epoch {epoch}, past this run's {} epochs; pass the --epochs of the interrupted run",
            config.epochs
        )));
    }
    if step > steps || epoch.checked_mul(steps).and_then(|e| e.checked_add(step)) != Some(iteration)
    {
        return Err(bad(format!(
            "epoch {epoch}, step {step} and iteration {iteration} do not fit {steps} steps per epoch; pass the same --data, --limit and --batch as the interrupted run"
        )));
    }
    if !(loss_sum.is_finite() && loss_sum >= 0.0) {
        return Err(bad(format!("the epoch's loss sum is {loss_sum}")));
    }
    let state = TrainState {
        epoch,
        step,
        loss_sum,
        sgd: Sgd::resume(config.sgd, momentum, iteration),
    };
    if !state.sgd.fits(&net.0) {
        return Err(bad(
            "its momentum tensors are not shaped like its network".into()
        ));
    }
    Ok((net, state))
}

/// The default checkpoint path for a run writing `out`: `model.safetensors` ->
/// `model.ckpt.safetensors`.
pub fn path_for(out: &Path) -> PathBuf {
    out.with_extension("ckpt.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_path_sits_beside_the_model() {
        assert_eq!(
            path_for(Path::new("runs/model.safetensors")),
            PathBuf::from("runs/model.ckpt.safetensors")
        );
    }

    #[test]
    fn a_mismatch_names_the_flag_to_pass() {
        let e = CheckpointError::Mismatch {
            path: "c.safetensors".into(),
            what: "batch",
            saved: 100,
            given: 64,
        };
        assert!(e.to_string().contains("pass --batch 100"));
    }
}
