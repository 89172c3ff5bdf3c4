//! A fully connected layer on the GPU: `Y = X W^T + b` and its backward pass, each as one
//! command buffer of [`Gpu::matmul`]'s kernel.

use netmorph_core::{Kernel, Tensor};

use crate::kernels::Command;
use crate::matmul::{Operands, Product};
use crate::{Gpu, GpuError};

/// Gradients of a dense layer (the layouts of [`Kernel`] and the input batch).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseGradients {
    /// `dL/dX`: `batch x inp`.
    pub input: Vec<f32>,
    /// `dL/dW`: `out x inp`.
    pub weight: Vec<f32>,
    /// `dL/db`: `out`.
    pub bias: Vec<f32>,
}

/// Checks that `kernel` is a dense kernel that takes `x`'s samples; returns the batch size.
fn check(kernel: &Kernel<f32>, x: &Tensor<f32>) -> Result<usize, GpuError> {
    if kernel.k != 1 {
        return Err(GpuError::Shape(format!(
            "a dense layer has 1 x 1 kernels, not {0} x {0}",
            kernel.k
        )));
    }
    if x.shape.len() != kernel.inp {
        return Err(GpuError::Shape(format!(
            "a dense layer of {} inputs given samples of {} values",
            kernel.inp,
            x.shape.len()
        )));
    }
    Ok(x.n)
}

/// `x W^T`: `A` is the batch (`batch x inp`), `B` the transposed weight.
fn forward_product(kernel: &Kernel<f32>, batch: usize) -> Product {
    Product {
        b_row: 1,
        b_col: kernel.inp,
        ..Product::row_major(batch, kernel.inp, kernel.out)
    }
}

/// The layer's output for a batch: `Y = X W^T + b` (`batch x out`).
///
/// # Errors
/// [`GpuError::Shape`] when `kernel` is not dense or `x`'s samples do not have `inp`
/// values; [`GpuError::Device`] when the GPU fails.
pub fn forward(gpu: &Gpu, kernel: &Kernel<f32>, x: &Tensor<f32>) -> Result<Vec<f32>, GpuError> {
    let batch = check(kernel, x)?;
    gpu.matmul(
        &forward_product(kernel, batch),
        &x.data,
        &kernel.weight,
        Some(&kernel.bias),
    )
}

/// Gradients of the layer given the batch `x` and `dy = dL/dY` (`batch x out`): three
/// products in one command buffer, `dX = dY W`, `dW = dY^T X`, `db = dY^T 1`.
///
/// # Errors
/// As [`forward`], and [`GpuError::Shape`] when `dy` is not `batch x out`.
pub fn backward(
    gpu: &Gpu,
    kernel: &Kernel<f32>,
    x: &Tensor<f32>,
    dy: &[f32],
) -> Result<DenseGradients, GpuError> {
    let batch = check(kernel, x)?;
    let (inp, out) = (kernel.inp, kernel.out);
    if Some(dy.len()) != batch.checked_mul(out) {
        return Err(GpuError::Shape(format!(
            "dY has {} values, not batch {batch} x {out} outputs",
            dy.len()
        )));
    }
    let bad = || GpuError::Shape(format!("{batch} x {inp} values overflow"));
    let dx_len = batch.checked_mul(inp).ok_or_else(bad)?;
    let w_len = out.checked_mul(inp).ok_or_else(bad)?;
    let (xb, wb, dyb) = (
        gpu.upload("X", &x.data)?,
        gpu.upload("W", &kernel.weight)?,
        gpu.upload("dY", dy)?,
    );
    let ones = gpu.upload("ones", &vec![1.0; batch])?;
    let (dxb, dwb, dbb) = (
        gpu.poisoned("dX", dx_len)?,
        gpu.poisoned("dW", w_len)?,
        gpu.poisoned("db", out)?,
    );
    // dY^T as A: element (o, s) at s * out + o.
    let dy_t = |n| Product {
        a_row: 1,
        a_col: out,
        ..Product::row_major(out, batch, n)
    };
    let products = [
        (
            Product::row_major(batch, out, inp),
            (&dyb, dy.len()),
            (&wb, w_len),
            (&dxb, dx_len),
        ),
        (
            dy_t(inp),
            (&dyb, dy.len()),
            (&xb, x.data.len()),
            (&dwb, w_len),
        ),
        (dy_t(1), (&dyb, dy.len()), (&ones, batch), (&dbb, out)),
    ];
    let dispatches = products
        .iter()
        .map(|(p, a, b, c)| {
            gpu.matmul_dispatch(
                p,
                &Operands {
                    a: *a,
                    b: *b,
                    bias: None,
                    c: *c,
                    splits: 1,
                },
            )
            .map(Command::Run)
        })
        .collect::<Result<Vec<_>, _>>()?;
    gpu.run(|e| Gpu::record(e, &dispatches))?;
    Ok(DenseGradients {
        input: gpu.download(&dxb, dx_len)?,
        weight: gpu.download(&dwb, w_len)?,
        bias: gpu.download(&dbb, out)?,
    })
}
