//! `nm_sgd_step`: one step of SGD with momentum on softmax cross-entropy.

use facade::memory::{training_bytes, Budget};
use facade::train::{train_step, Schedule, Sgd, SgdConfig, TrainError};

use crate::forward::batch;
use crate::model::NmModel;
use crate::ptr::{self, Out};
use crate::status::{guard, Error, NmStatus};

/// One SGD step on a batch of `n` samples: forward, mean softmax cross-entropy against
/// `labels`, backward, update (Caffe's rule `v = momentum v + lr g`, `w -= v`; no weight
/// decay, no schedule, the same rate for weights, biases and P-activation `a`, which is
/// clamped to [0, 1]). The momentum lives in the model, carried from step to step (a new
/// `lr` or `momentum` applies from this step on); a morph's child starts with none.
///
/// `x` holds `n x input_len` floats (row-major; `x_len` is its length), `labels` `n` class
/// indices below `output_len`. Writes the batch's loss before the update to `*loss_out`
/// unless it is NULL.
///
/// Errors: `NM_STATUS_ERR_NULL` (`m`, `x`, `labels`); `NM_STATUS_ERR_ARGUMENT` for `n = 0`, a short
/// `x`, a NaN or infinite input, a label out of range, `lr` not finite and > 0, `momentum` not
/// in [0, 1), or a batch too large for memory; `NM_STATUS_ERR_TRAIN` if the loss is NaN or
/// infinite (the weights diverged: lower `lr`). On any error the model is unchanged.
///
/// # Safety
/// `m` is a live model that no other thread uses during the call; `x` points to `x_len`
/// floats, `labels` to `n` values; `loss_out` is NULL or valid for writing one float.
#[no_mangle]
pub unsafe extern "C" fn nm_sgd_step(
    m: *mut NmModel,
    x: *const f32,
    x_len: usize,
    labels: *const u32,
    n: usize,
    lr: f32,
    momentum: f32,
    loss_out: *mut f32,
) -> NmStatus {
    guard("nm_sgd_step", || {
        // SAFETY: the caller's promise (a live model used by this call only).
        let m = unsafe { m.as_mut() }.ok_or_else(|| Error::null("m"))?;
        if x.is_null() {
            return Err(Error::null("x"));
        }
        // SAFETY: the caller's promise.
        let labels = unsafe { ptr::slice(labels, n, "labels") }?;
        // SAFETY: NULL or valid for one write (the caller's promise).
        let loss_out = unsafe { Out::optional(loss_out) };
        if n == 0 {
            return Err(Error::argument("the batch is empty; pass n >= 1 samples"));
        }
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::argument(format_args!(
                "learning rate {lr} must be finite and > 0"
            )));
        }
        if !(0.0..1.0).contains(&momentum) {
            return Err(Error::argument(format_args!(
                "momentum {momentum} must be in [0, 1)"
            )));
        }
        let classes = m.net.output_shape().len();
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
            return Err(Error::argument(format_args!(
                "labels[{i}] = {} but the model has {classes} outputs (labels 0..{})",
                labels[i],
                classes - 1
            )));
        }
        Budget::new(None)
            .check("the training step", training_bytes(&m.net, n, 1))
            .map_err(Error::argument)?;
        // SAFETY: the caller's promise.
        let x = unsafe { batch(&m.net, x, x_len, n) }?;
        // A NaN behind a ReLU gives a finite loss but NaN gradients: refuse it up front.
        if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::argument(format_args!(
                "x[{i}] is {}; training needs finite inputs",
                x.data[i]
            )));
        }
        let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        let config = SgdConfig {
            lr: f64::from(lr),
            momentum: f64::from(momentum),
            weight_decay: 0.0,
            bias_lr_mult: 1.0,
            a_lr_mult: 1.0,
            schedule: Schedule::Constant,
        };
        let sgd = match m.sgd.take() {
            Some(s) if *s.config() == config => s,
            Some(s) => Sgd::resume(config, s.velocity().map(<[_]>::to_vec), s.iteration()),
            None => Sgd::new(config),
        };
        let sgd = m.sgd.insert(sgd);
        let loss = train_step(&mut m.net, sgd, &x, &labels).map_err(|e| match e {
            TrainError::NonFinite => Error::new(NmStatus::ErrTrain, e),
            _ => Error::argument(e),
        })?;
        if let Some(out) = loss_out {
            out.set(loss as f32);
        }
        Ok(())
    })
}
