//! Solvers for the network morphism equation (6) and its sequential form (19).
//!
//! Every solver is generic over the scalar it solves in. Morphs solve in `f64` by default,
//! whatever the network's scalar: an f32 network's filters are widened, decomposed, and
//! rounded once at the end, so the child is exact to f32 rounding. A device without fast
//! `f64` can solve in `f32` instead ([`algorithm::Precision::F32`]): the residual is then
//! about `1e-6` and the child moves by a few f32 ulps more.
//!
//! On large layers the first solve of either algorithm draws its fixed factor as a
//! block-diagonal kernel times a random rotation of the middle channels (`mixing`): the
//! factor is as dense and random as any draw, and the solve splits into small systems, one
//! per block (a `(512, 512, 3, 3)` layer through 2048 channels with `K_1 = K_2 = 3`: 32
//! systems of 400 x 576 per input channel instead of one of 12,800 x 18,432).

pub mod algorithm;
pub mod deconv;
mod factor;
pub mod lstsq;
mod mixing;

use crate::alloc_try::Count;

/// Values of a `rows x cols` faer matrix of `F`: faer pads each column to a multiple of 64
/// bytes (8 `f64`s, 16 `f32`s).
pub(crate) fn mat_values<F>(rows: Count, cols: Count) -> Count {
    let lane = 64 / core::mem::size_of::<F>().clamp(1, 64);
    (rows + (lane - 1)) * cols
}

/// Values of a kernel `(out, inp, k, k)` with its `out` biases.
pub(crate) fn kernel_values(out: Count, inp: Count, k: Count) -> Count {
    out * inp * k * k + out
}

/// Parallelism for the solvers' matmuls: every core with the `rayon` feature, else sequential.
pub(crate) fn par() -> faer::Par {
    #[cfg(feature = "rayon")]
    {
        faer::Par::rayon(0)
    }
    #[cfg(not(feature = "rayon"))]
    {
        faer::Par::Seq
    }
}
