//! Softmax cross-entropy on flat logits.

use alloc::vec::Vec;

use super::TrainError;
use crate::{Scalar, Tensor};

/// Mean softmax cross-entropy of `logits` (`n` samples of `C` classes, flat) against `labels`,
/// and its gradient with respect to the logits, `(softmax - onehot) / n`. The loss is
/// accumulated in f64; the log-sum-exp is shifted by the row maximum.
///
/// # Errors
/// [`TrainError::Labels`] if `labels.len() != n` or a label is `>= C`;
/// [`TrainError::NonFinite`] if the loss is not finite.
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
    if labels.len() != logits.n || labels.iter().any(|&l| l >= classes) {
        return Err(TrainError::Labels {
            samples: logits.n,
            labels: labels.len(),
            classes,
        });
    }
    let mut grad = Tensor::zeros(logits.n, logits.shape);
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
