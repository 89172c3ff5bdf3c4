//! [`Tensor`]: a batch of samples in NCHW layout.

use alloc::vec::Vec;

use crate::net::Shape;
use crate::{Rng, Scalar};

/// A batch of `n` samples of shape `shape`, stored NCHW (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    /// Batch size.
    pub n: usize,
    /// Sample shape.
    pub shape: Shape,
    /// `n * shape.len()` values.
    pub data: Vec<T>,
}

impl<T: Scalar> Tensor<T> {
    /// Wraps `data`; `None` if its length is not `n * shape.len()`.
    pub fn new(n: usize, shape: Shape, data: Vec<T>) -> Option<Self> {
        (data.len() == n * shape.len()).then_some(Self { n, shape, data })
    }

    /// A batch of zeros.
    pub fn zeros(n: usize, shape: Shape) -> Self {
        Self {
            n,
            shape,
            data: alloc::vec![T::zero(); n * shape.len()],
        }
    }

    /// A batch of standard normal values (non-zero and non-symmetric, the probes that
    /// preservation checks need).
    pub fn random(n: usize, shape: Shape, rng: &mut Rng) -> Self {
        Self {
            n,
            shape,
            data: (0..n * shape.len())
                .map(|_| T::of_f64(rng.normal()))
                .collect(),
        }
    }

    /// Sample `i` as a slice.
    pub fn sample(&self, i: usize) -> &[T] {
        let len = self.shape.len();
        &self.data[i * len..(i + 1) * len]
    }

    /// `max |self - other|` and `max |other|` over all values, in f64 (the preservation
    /// measure of the morphism notes, section 10: never a signed sum).
    ///
    /// # Panics
    /// If the two tensors have different lengths.
    #[track_caller]
    pub fn max_abs_diff(&self, other: &Self) -> (f64, f64) {
        assert_eq!(
            self.data.len(),
            other.data.len(),
            "compared tensors differ in length"
        );
        self.data
            .iter()
            .zip(&other.data)
            .fold((0.0f64, 0.0f64), |(d, m), (a, b)| {
                let (a, b) = (a.as_f64(), b.as_f64());
                (d.max((a - b).abs()), m.max(b.abs()))
            })
    }
}
