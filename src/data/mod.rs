//! Data sets: labelled image batches for training and evaluation.

mod augment;
mod cifar;
mod error;
mod idx;

use netmorph_core::{Shape, Tensor};

pub use augment::{augment, Augment};
pub use cifar::{
    cifar10, cifar10_binary_split, cifar10_jpeg_split, parse_cifar10_binary, CIFAR10_CLASSES,
    CIFAR10_RECORD,
};
pub use error::{DataError, DatasetError};
pub use idx::{fashion_mnist, parse_idx, read_idx, Idx, FASHION_MNIST_DIR};

/// A labelled data set held in memory, NCHW f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Samples.
    pub x: Tensor<f32>,
    /// One label per sample, below `classes`.
    pub y: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Checks that the data set can be trained or evaluated on: at least one sample, samples
    /// of at least one value, `x` holding exactly `n` samples, one label per sample, at least
    /// two classes and every label below `classes`. The loaders call it on what they read.
    ///
    /// # Errors
    /// The first [`DatasetError`] found, in that order.
    ///
    /// # Examples
    /// ```
    /// use netmorph::data::{Dataset, DatasetError};
    /// use netmorph::{Shape, Tensor};
    /// let x = Tensor::new(2, Shape::flat(1), vec![0.5f32, 1.0]).unwrap();
    /// let mut d = Dataset { x, y: vec![0, 1], classes: 2 };
    /// assert_eq!(d.validate(), Ok(()));
    /// d.y[1] = 2;
    /// assert_eq!(d.validate(), Err(DatasetError::Label { index: 1, label: 2, classes: 2 }));
    /// ```
    pub fn validate(&self) -> Result<(), DatasetError> {
        let Tensor { n, shape, ref data } = self.x;
        if n == 0 {
            return Err(DatasetError::Empty);
        }
        if shape.is_empty() {
            return Err(DatasetError::EmptySample { shape });
        }
        if n.checked_mul(shape.len()) != Some(data.len()) {
            return Err(DatasetError::Length {
                n,
                shape,
                found: data.len(),
            });
        }
        if self.y.len() != n {
            return Err(DatasetError::Labels {
                labels: self.y.len(),
                samples: n,
            });
        }
        if self.classes < 2 {
            return Err(DatasetError::TooFewClasses {
                classes: self.classes,
            });
        }
        match self.y.iter().position(|&l| l >= self.classes) {
            Some(index) => Err(DatasetError::Label {
                index,
                label: self.y[index],
                classes: self.classes,
            }),
            None => Ok(()),
        }
    }

    /// The samples at `idx`, in that order. Indices without a sample (past the end of `x` or
    /// of `y`) are skipped, so the batch may be shorter than `idx`.
    ///
    /// # Examples
    /// ```
    /// use netmorph::data::Dataset;
    /// use netmorph::{Shape, Tensor};
    /// let x = Tensor::new(3, Shape::flat(1), vec![10.0f32, 11.0, 12.0]).unwrap();
    /// let d = Dataset { x, y: vec![0, 1, 0], classes: 2 };
    /// let (x, y) = d.batch(&[2, 0, 7]);
    /// assert_eq!((x.n, x.data, y), (2, vec![12.0, 10.0], vec![0, 0]));
    /// ```
    pub fn batch(&self, idx: &[usize]) -> (Tensor<f32>, Vec<usize>) {
        let len = self.x.shape.len();
        let (mut data, mut y) = (Vec::new(), Vec::with_capacity(idx.len()));
        for &i in idx.iter().filter(|&&i| i < self.x.n) {
            let sample = i
                .checked_mul(len)
                .and_then(|start| self.x.data.get(start..start.checked_add(len)?));
            if let (Some(sample), Some(&label)) = (sample, self.y.get(i)) {
                data.extend_from_slice(sample);
                y.push(label);
            }
        }
        (
            Tensor {
                n: y.len(),
                shape: self.x.shape,
                data,
            },
            y,
        )
    }

    /// The first `n` samples (all if fewer).
    pub fn head(&self, n: usize) -> Self {
        let idx: Vec<usize> = (0..n.min(self.y.len())).collect();
        let (x, y) = self.batch(&idx);
        Self {
            x,
            y,
            classes: self.classes,
        }
    }

    /// Per-channel mean and standard deviation over all samples and pixels (`(0, 0)` for a
    /// channel without values).
    ///
    /// # Examples
    /// ```
    /// use netmorph::data::Dataset;
    /// use netmorph::{Shape, Tensor};
    /// // Two samples of two 1x1 channels.
    /// let x = Tensor::new(2, Shape::image(2, 1, 1), vec![1.0f32, 5.0, 3.0, 5.0]).unwrap();
    /// let d = Dataset { x, y: vec![0, 1], classes: 2 };
    /// assert_eq!(d.channel_stats(), vec![(2.0, 1.0), (5.0, 0.0)]);
    /// ```
    pub fn channel_stats(&self) -> Vec<(f64, f64)> {
        let Shape { c, h, w } = self.x.shape;
        let len = self.x.shape.len();
        if len == 0 {
            // No values; also, a chunk size of 0 panics.
            return vec![(0.0, 0.0); c];
        }
        // (count, sum, sum of squares) per channel.
        let mut acc = vec![(0.0f64, 0.0f64, 0.0f64); c];
        for sample in self.x.data.chunks_exact(len) {
            for (plane, (n, sum, sq)) in sample.chunks_exact(h * w).zip(&mut acc) {
                for v in plane {
                    let v = f64::from(*v);
                    *n += 1.0;
                    *sum += v;
                    *sq += v * v;
                }
            }
        }
        acc.into_iter()
            .map(|(n, sum, sq)| {
                let mean = sum / n.max(1.0);
                (mean, (sq / n.max(1.0) - mean * mean).max(0.0).sqrt())
            })
            .collect()
    }

    /// Subtracts each channel's mean and divides by its standard deviation (statistics from
    /// the training set, applied to every split).
    pub fn normalize(&mut self, stats: &[(f64, f64)]) {
        self.scale(stats, InputScale::Standard);
    }

    /// Scales the samples as `scale` says, with the training set's per-channel `(mean, std)`
    /// `stats` (from [`Dataset::channel_stats`]; applied to every split). Channels without
    /// statistics are left as they are.
    pub fn scale(&mut self, stats: &[(f64, f64)], scale: InputScale) {
        let plane = self.x.shape.h * self.x.shape.w;
        let len = self.x.shape.len();
        if len == 0 {
            // No values; also, a chunk size of 0 panics.
            return;
        }
        for sample in self.x.data.chunks_exact_mut(len) {
            for (values, (mean, std)) in sample.chunks_exact_mut(plane).zip(stats) {
                let factor = match scale {
                    // Samples hold pixels / 255.
                    InputScale::Pixels => 255.0,
                    InputScale::Standard if *std > 0.0 => 1.0 / std,
                    InputScale::Standard => 1.0,
                };
                for v in values {
                    *v = ((f64::from(*v) - mean) * factor) as f32;
                }
            }
        }
    }
}

/// How samples are scaled before they reach a network; stored in model files, so that every
/// command feeds a model what it was trained on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputScale {
    /// Zero mean and unit variance per channel (the training set's statistics).
    #[default]
    Standard,
    /// The channel's mean subtracted from 0-255 pixel values: Caffe's scale (its CIFAR-10
    /// examples subtract a mean image), which Caffe's cifar10_quick solver settings (conv1
    /// filler std 1e-4, lr 0.001) are tuned to.
    Pixels,
}

impl InputScale {
    /// The name used on the command line and in model files: `standard` or `pixels`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Pixels => "pixels",
        }
    }

    /// The scale named `name` (see [`InputScale::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Standard, Self::Pixels]
            .into_iter()
            .find(|s| s.name() == name)
    }
}
