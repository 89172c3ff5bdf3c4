//! `eval`: test loss and accuracy of a saved model, in its precision and on its input scale.

use std::path::Path;

use netmorph::fit::evaluate;
use netmorph::memory::{forward_bytes, Budget};
use netmorph::model_file::{load_scaled, precision};
use netmorph::Scalar;

use crate::args::{input_scale, load_data, with_precision, DataArgs};
use crate::error::Result;
use crate::training::fits;

/// `netmorph eval`.
pub fn run(model: &Path, data: &DataArgs, json: bool, budget: Budget) -> Result<()> {
    with_precision!(precision(model)?, eval_as(model, data, json, budget))
}

fn eval_as<T: Scalar>(model: &Path, data: &DataArgs, json: bool, budget: Budget) -> Result<()> {
    let (net, stored) = load_scaled::<T>(model)?;
    let (_, test) = load_data(
        &data.data,
        (0, data.test_limit),
        input_scale(data, Some(stored))?,
        budget,
    )?;
    fits(&net, &test)?;
    // `evaluate` runs batches of 500.
    budget.check("the forward passes", forward_bytes(&net, 500))?;
    let (loss, acc) = evaluate(&net, &test)?;
    if json {
        println!(
            "{{\"test_loss\":{loss},\"test_accuracy\":{acc},\"images\":{}}}",
            test.y.len()
        );
    } else {
        println!(
            "test loss {loss:.4}, test accuracy {:.2}% on {} images ({})",
            100.0 * acc,
            test.y.len(),
            T::NAME
        );
    }
    Ok(())
}
