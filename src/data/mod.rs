//! Data sets: labelled image batches for training and evaluation.

mod augment;
mod cifar;
mod idx;

use std::fmt;
use std::path::PathBuf;

use netmorph_core::{Shape, Tensor};

pub use augment::{augment, Augment};
pub use cifar::{cifar10, cifar10_binary_split, cifar10_jpeg_split, CIFAR10_CLASSES};
pub use idx::{fashion_mnist, read_idx, Idx, FASHION_MNIST_DIR};

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
    /// The samples at `idx`, in that order.
    pub fn batch(&self, idx: &[usize]) -> (Tensor<f32>, Vec<usize>) {
        let len = self.x.shape.len();
        let data = idx
            .iter()
            .flat_map(|&i| self.x.data[i * len..(i + 1) * len].iter().copied())
            .collect();
        let n = idx.len();
        (
            Tensor {
                n,
                shape: self.x.shape,
                data,
            },
            idx.iter().map(|&i| self.y[i]).collect(),
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

    /// Per-channel mean and standard deviation over all samples and pixels.
    pub fn channel_stats(&self) -> Vec<(f64, f64)> {
        let Shape { c, h, w } = self.x.shape;
        let plane = h * w;
        (0..c)
            .map(|ch| {
                let vals = self
                    .x
                    .data
                    .chunks_exact(c * plane)
                    .flat_map(|s| s[ch * plane..(ch + 1) * plane].iter());
                let (mut n, mut sum, mut sq) = (0.0f64, 0.0f64, 0.0f64);
                for v in vals {
                    let v = f64::from(*v);
                    n += 1.0;
                    sum += v;
                    sq += v * v;
                }
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
    /// `stats` (from [`Dataset::channel_stats`]; applied to every split).
    pub fn scale(&mut self, stats: &[(f64, f64)], scale: InputScale) {
        let plane = self.x.shape.h * self.x.shape.w;
        let c = self.x.shape.c;
        for sample in self.x.data.chunks_exact_mut(c * plane) {
            for (ch, (mean, std)) in stats.iter().enumerate().take(c) {
                let scale = match scale {
                    // Samples hold pixels / 255.
                    InputScale::Pixels => 255.0,
                    InputScale::Standard if *std > 0.0 => 1.0 / std,
                    InputScale::Standard => 1.0,
                };
                for v in &mut sample[ch * plane..(ch + 1) * plane] {
                    *v = ((f64::from(*v) - mean) * scale) as f32;
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

/// Why a data set could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// A file is missing or unreadable.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// A file's contents are not what its format requires.
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source, hint } => {
                write!(f, "cannot read {}: {source}; {hint}", path.display())
            }
            Self::Malformed { path, reason } => write!(
                f,
                "{} is malformed ({reason}); download or install the data set again",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Malformed { .. } => None,
        }
    }
}
