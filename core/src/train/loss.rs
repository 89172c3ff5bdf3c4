//! Softmax cross-entropy on flat logits.

use alloc::vec::Vec;

use super::TrainError;
use crate::net::check_length;
use crate::{Scalar, Tensor};

/// Mean softmax cross-entropy of `logits` (`n` samples of `C` classes, flat) against `labels`,
/// and its gradient with respect to the logits, `(softmax - onehot) / n`. The loss is
/// accumulated in f64; the log-sum-exp is shifted by the row maximum.
///
/// # Errors
/// [`TrainError::Labels`] if `labels.len() != n`, a label is `>= C` or `C` is zero;
/// [`TrainError::Net`] with [`NetError::InputLength`] if `logits` does not hold `n * C`
/// values, with [`NetError::Alloc`] if the gradient cannot be allocated;
/// [`TrainError::NonFinite`] if the loss is not finite.
///
/// [`NetError::InputLength`]: crate::NetError::InputLength
/// [`NetError::Alloc`]: crate::NetError::Alloc
///
/// # Examples
/// ```
/// use netmorph_core::train::softmax_cross_entropy;
/// use netmorph_core::{Shape, Tensor};
/// let logits = Tensor::new(1, Shape::flat(2), vec![0.0f64, 0.0]).unwrap();
/// let (loss, grad) = softmax_cross_entropy(&logits, &[1]).unwrap();
/// assert!((loss - std::f64::consts::LN_2).abs() < 1e-12);
/// assert_eq!(grad.data, vec![0.5, -0.5]);
/// ```
pub fn softmax_cross_entropy<T: Scalar>(
    logits: &Tensor<T>,
    labels: &[usize],
) -> Result<(f64, Tensor<T>), TrainError> {
    let classes = logits.shape.len();
    check_length(logits).map_err(TrainError::Net)?;
    if classes == 0 || labels.len() != logits.n || labels.iter().any(|&l| l >= classes) {
        return Err(TrainError::Labels {
            samples: logits.n,
            labels: labels.len(),
            classes,
        });
    }
    let mut grad =
        Tensor::try_zeros(logits.n, logits.shape).map_err(|e| TrainError::Net(e.into()))?;
    let inv_n = 1.0 / logits.n.max(1) as f64;
    let mut loss = 0.0;
    // exp(v - max) per class, computed once: softmax = e / sum e.
    let mut e = Vec::with_capacity(classes);
    for ((row, g), &label) in logits
        .data
        .chunks_exact(classes)
        .zip(grad.data.chunks_exact_mut(classes))
        .zip(labels)
    {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.as_f64()));
        e.clear();
        e.extend(row.iter().map(|v| libm::exp(v.as_f64() - max)));
        let sum: f64 = e.iter().sum();
        loss += max + libm::log(sum) - row[label].as_f64();
        for (j, (ej, gj)) in e.iter().zip(g.iter_mut()).enumerate() {
            *gj = T::of_f64((ej / sum - if j == label { 1.0 } else { 0.0 }) * inv_n);
        }
    }
    let loss = loss * inv_n;
    if !loss.is_finite() {
        return Err(TrainError::NonFinite);
    }
    Ok((loss, grad))
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::{NetError, Shape};

    #[test]
    fn malformed_logits_and_labels_are_errors() {
        let logits = |n, c, len| Tensor::<f32> {
            n,
            shape: Shape::flat(c),
            data: vec![0.0; len],
        };
        let e = softmax_cross_entropy(&logits(2, 3, 5), &[0, 1]).unwrap_err();
        let length = NetError::InputLength {
            n: 2,
            shape: Shape::flat(3),
            found: 5,
        };
        assert_eq!(e, TrainError::Net(length));
        let labels = |samples, labels, classes| TrainError::Labels {
            samples,
            labels,
            classes,
        };
        let e = softmax_cross_entropy(&logits(2, 3, 6), &[0]).unwrap_err();
        assert_eq!(e, labels(2, 1, 3));
        let e = softmax_cross_entropy(&logits(2, 3, 6), &[0, 3]).unwrap_err();
        assert_eq!(e, labels(2, 2, 3));
        // No classes: before, an empty batch panicked in `chunks_exact(0)`.
        let e = softmax_cross_entropy(&logits(0, 0, 0), &[]).unwrap_err();
        assert_eq!(e, labels(0, 0, 0));
        assert!(softmax_cross_entropy(&logits(2, 3, 6), &[0, 2]).is_ok());
    }
}
