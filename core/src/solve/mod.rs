//! Solvers for the network morphism equation (6) and its sequential form (19).
//!
//! All solves run in `f64`, whatever the network's scalar type: an f32 network's filters are
//! widened, decomposed, and rounded once at the end, so the child is exact to f32 rounding.

pub mod algorithm;
pub mod deconv;
pub mod lstsq;

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
