//! Solvers for the network morphism equation (6) and its sequential form (19).
//!
//! All solves run in `f64`, whatever the network's scalar type: an f32 network's filters are
//! widened, decomposed, and rounded once at the end, so the child is exact to f32 rounding.

pub mod algorithm;
pub mod deconv;
pub mod lstsq;

use crate::alloc_try::Count;

/// Values of a `rows x cols` faer matrix: faer pads each column to a multiple of 8 `f64`s
/// (64 bytes).
pub(crate) fn mat_values(rows: Count, cols: Count) -> Count {
    (rows + 7) * cols
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
