//! `predict`: run a saved model on a `.npy` batch, in the model's precision.

use std::path::Path;

use netmorph::memory::{forward_bytes, Budget};
use netmorph::model_file::{load, precision};
use netmorph::npy::Values;
use netmorph::{Scalar, Tensor};

use crate::args::with_precision;
use crate::error::{CliError, Result};

/// `netmorph predict`.
pub fn run(model: &Path, input: &Path, output: &Path, budget: Budget) -> Result<()> {
    netmorph::atomic::check_outputs(&[output], &[(model, "model"), (input, "input array")])?;
    with_precision!(precision(model)?, predict_as(model, input, output, budget))
}

fn predict_as<T: Scalar>(model: &Path, input: &Path, output: &Path, budget: Budget) -> Result<()> {
    let net = load::<T>(model)?;
    // The file's bytes and their values in `T` are alive at once.
    let size = std::fs::metadata(input).map_or(0, |m| m.len());
    let per_value = (core::mem::size_of::<T>() as u64).div_ceil(4) + 1;
    budget.check(
        &format!("reading {}", input.display()),
        size.checked_mul(per_value),
    )?;
    let array = netmorph::npy::read(input)?;
    let shape = net.input_shape();
    // N x C x H x W as the model takes it, or N x features for flat models and flat batches.
    let n = match array.shape[..] {
        [n, c, h, w] if (c, h, w) == (shape.c, shape.h, shape.w) => n,
        [n, len] if Some(len) == shape.checked_len() => n,
        _ => {
            return Err(CliError::Usage(format!(
                "{}: input of shape {:?} does not fit the model, which takes N x {} x {} x {} (or N x {})",
                input.display(),
                array.shape,
                shape.c,
                shape.h,
                shape.w,
                shape.len()
            )))
        }
    };
    budget.check(
        &format!("the forward pass of {n} samples"),
        forward_bytes(&net, n),
    )?;
    // An f32 array into an f32 model is taken as is; other pairs convert (f64 -> f32 rounds).
    let data: Vec<T> = match array.values {
        Values::F32(v) => v.into_iter().map(|x| T::of_f64(f64::from(x))).collect(),
        Values::F64(v) => v.into_iter().map(T::of_f64).collect(),
    };
    let y = net.forward(&Tensor { n, shape, data })?;
    let bytes = netmorph::npy::to_bytes(&[n, y.shape.len()], &y.data);
    netmorph::atomic::write(output, &bytes)?;
    println!(
        "wrote {} ({n} x {}, {})",
        output.display(),
        y.shape.len(),
        T::NAME
    );
    Ok(())
}
