//! `export-onnx` and `import-onnx`: a model file as an ONNX model and back
//! (`netmorph::onnx`; `docs/onnx.md`).

use std::path::Path;

use netmorph::memory::{values_bytes, Budget};
use netmorph::model_file::{load_scaled, precision, save_scaled, ModelFileError};
use netmorph::onnx::OnnxError;
use netmorph::Scalar;

use crate::args::with_precision;
use crate::error::{CliError, Result};

/// Copies of the parameters an export holds at once: the network, the initializers' bytes
/// and the encoded message.
const EXPORT_COPIES: u64 = 3;

/// Bytes an import holds per byte of the ONNX file, at most: the file, the decoded message,
/// the parameters in the model's precision (twice the file's bytes for f32 constants read
/// into an f64 network), the network and the model file's serialization. Not counted: the
/// per-channel values import makes up rather than reads (`netmorph::onnx::MAX_SYNTHESIZED`,
/// at most 512 MiB in f64), which follow declared shapes, not the file's size; counting
/// them at their cap would refuse every import under a small `--max-memory`.
const IMPORT_COPIES: u64 = 8;

/// `netmorph export-onnx`.
pub fn export(model: &Path, out: &Path, budget: Budget) -> Result<()> {
    netmorph::atomic::check_outputs(&[out], &[(model, "model")])?;
    with_precision!(precision(model)?, export_as(model, out, budget))
}

fn export_as<T: Scalar>(model: &Path, out: &Path, budget: Budget) -> Result<()> {
    let (net, scale) = load_scaled::<T>(model)?;
    budget.check(
        &format!("exporting {}", model.display()),
        values_bytes::<T>(net.param_count()).and_then(|b| b.checked_mul(EXPORT_COPIES)),
    )?;
    let bytes = netmorph::onnx::export_scaled(&net, scale).map_err(|e| onnx_error(model, &e))?;
    netmorph::atomic::write(out, &bytes)?;
    println!(
        "wrote {} ({} parameters, {}, ONNX opset {}; inputs scaled {})",
        out.display(),
        net.param_count(),
        T::NAME,
        netmorph::onnx::OPSET,
        scale.name()
    );
    Ok(())
}

/// `netmorph import-onnx`: the network in the precision of the ONNX model's input.
pub fn import(input: &Path, out: &Path, budget: Budget) -> Result<()> {
    netmorph::atomic::check_outputs(&[out], &[(input, "ONNX model")])?;
    let io = |source| ModelFileError::Io {
        path: input.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(input).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
        .into());
    }
    budget.check(
        &format!("importing {}", input.display()),
        meta.len().checked_mul(IMPORT_COPIES),
    )?;
    let bytes = std::fs::read(input).map_err(io)?;
    let precision = netmorph::onnx::precision(&bytes).map_err(|e| onnx_error(input, &e))?;
    with_precision!(precision, import_as(input, &bytes, out))
}

fn import_as<T: Scalar>(input: &Path, bytes: &[u8], out: &Path) -> Result<()> {
    let (net, scale) =
        netmorph::onnx::import_scaled::<T>(bytes).map_err(|e| onnx_error(input, &e))?;
    save_scaled(&net, scale, out)?;
    println!(
        "wrote {} ({} layers, {} parameters, {}, inputs scaled {})",
        out.display(),
        net.layers().len(),
        net.param_count(),
        T::NAME,
        scale.name()
    );
    Ok(())
}

/// `e`, met reading or writing the ONNX side of `path`.
fn onnx_error(path: &Path, e: &OnnxError) -> CliError {
    CliError::Context {
        context: path.display().to_string(),
        source: Box::new(CliError::Usage(e.to_string())),
    }
}
