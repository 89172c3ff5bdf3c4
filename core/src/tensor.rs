//! [`Tensor`]: a batch of samples in NCHW layout.

use alloc::vec::Vec;

use crate::alloc_try::{self, AllocError};
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
    /// Wraps `data`; `None` if its length is not `n * shape.len()` (or that overflows).
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::{Shape, Tensor};
    /// assert!(Tensor::new(2, Shape::flat(3), vec![0.0f32; 6]).is_some());
    /// assert!(Tensor::new(2, Shape::flat(3), vec![0.0f32; 5]).is_none());
    /// assert!(Tensor::<f32>::new(usize::MAX, Shape::flat(2), vec![]).is_none());
    /// ```
    pub fn new(n: usize, shape: Shape, data: Vec<T>) -> Option<Self> {
        (Self::values(n, shape) == Some(data.len())).then_some(Self { n, shape, data })
    }

    /// A batch of zeros.
    ///
    /// # Panics
    /// If `n * shape.len()` overflows or the values cannot be allocated.
    #[track_caller]
    pub fn zeros(n: usize, shape: Shape) -> Self {
        match Self::try_zeros(n, shape) {
            Ok(t) => t,
            Err(e) => panic!(
                "Tensor::zeros needs {} bytes, more than can be allocated",
                e.bytes
            ),
        }
    }

    /// A batch of standard normal values (non-zero and non-symmetric, the probes that
    /// preservation checks need).
    ///
    /// # Panics
    /// As [`Tensor::zeros`].
    #[track_caller]
    pub fn random(n: usize, shape: Shape, rng: &mut Rng) -> Self {
        let mut t = Self::zeros(n, shape);
        t.data.iter_mut().for_each(|v| *v = T::of_f64(rng.normal()));
        t
    }

    /// `n * shape.len()`, or `None` on overflow.
    fn values(n: usize, shape: Shape) -> Option<usize> {
        shape.checked_len()?.checked_mul(n)
    }

    /// `n * shape.len()`, or an [`AllocError`] of `usize::MAX` bytes on overflow.
    fn batch_len(n: usize, shape: Shape) -> Result<usize, AllocError> {
        Self::values(n, shape).ok_or(AllocError { bytes: usize::MAX })
    }

    /// An empty buffer with room for exactly `n` samples of `shape`.
    pub(crate) fn buffer(n: usize, shape: Shape) -> Result<Vec<T>, AllocError> {
        alloc_try::with_capacity(Self::batch_len(n, shape)?)
    }

    /// [`Tensor::zeros`] that reports a size it cannot allocate.
    pub(crate) fn try_zeros(n: usize, shape: Shape) -> Result<Self, AllocError> {
        let data = alloc_try::filled(Self::batch_len(n, shape)?, T::zero())?;
        Ok(Self { n, shape, data })
    }

    /// A copy that reports a size it cannot allocate.
    pub(crate) fn try_clone(&self) -> Result<Self, AllocError> {
        Ok(Self {
            n: self.n,
            shape: self.shape,
            data: alloc_try::copied(&self.data)?,
        })
    }

    /// Sample `i` as a slice.
    ///
    /// # Panics
    /// If the tensor holds fewer than `i + 1` samples.
    #[track_caller]
    pub fn sample(&self, i: usize) -> &[T] {
        let len = self.shape.len();
        let at = i
            .checked_mul(len)
            .and_then(|a| Some(a..a.checked_add(len)?));
        match at.and_then(|r| self.data.get(r)) {
            Some(s) => s,
            None => panic!(
                "Tensor::sample({i}) of a tensor with {} values",
                self.data.len()
            ),
        }
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
