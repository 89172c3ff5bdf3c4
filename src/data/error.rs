//! Why a data set cannot be read ([`DataError`]) or is unusable once read ([`DatasetError`]).

use std::fmt;
use std::path::PathBuf;

use netmorph_core::Shape;

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
    /// The files are well-formed but the data set they hold cannot be trained or evaluated on
    /// (see [`super::Dataset::validate`]).
    Invalid {
        /// The file or folder holding the data set.
        path: PathBuf,
        /// What is wrong.
        source: DatasetError,
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
            Self::Invalid { path, source } => write!(
                f,
                "{} does not hold a usable data set: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Invalid { source, .. } => Some(source),
            Self::Malformed { .. } => None,
        }
    }
}

/// Why a [`super::Dataset`] in memory is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatasetError {
    /// No samples at all.
    Empty,
    /// Samples of zero values (a zero channel count, height or width).
    EmptySample {
        /// The sample shape.
        shape: Shape,
    },
    /// The sample values are not `n` samples of the sample shape.
    Length {
        /// Samples.
        n: usize,
        /// The sample shape.
        shape: Shape,
        /// Values present.
        found: usize,
    },
    /// Not one label per sample.
    Labels {
        /// Labels present.
        labels: usize,
        /// Samples.
        samples: usize,
    },
    /// A label outside `0..classes`.
    Label {
        /// The sample.
        index: usize,
        /// Its label.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// Fewer than two classes: nothing to classify.
    TooFewClasses {
        /// Number of classes.
        classes: usize,
    },
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it has no samples; point --data at a folder with images"),
            Self::EmptySample { shape } => write!(
                f,
                "its samples are {}x{}x{} (channels x height x width), which holds no values; check the image files' dimensions",
                shape.c, shape.h, shape.w
            ),
            Self::Length { n, shape, found } => write!(
                f,
                "{n} samples of {}x{}x{} need {} values, found {found}; the data set is inconsistent",
                shape.c,
                shape.h,
                shape.w,
                n.checked_mul(shape.len())
                    .map_or_else(|| "more than usize::MAX".to_string(), |v| v.to_string())
            ),
            Self::Labels { labels, samples } => write!(
                f,
                "{labels} labels for {samples} samples; every sample needs exactly one label"
            ),
            Self::Label {
                index,
                label,
                classes,
            } => write!(
                f,
                "sample {index} has label {label}, but there are {classes} classes (labels 0 to {}); fix the labels or the class count",
                classes.saturating_sub(1)
            ),
            Self::TooFewClasses { classes } => write!(
                f,
                "it has {classes} class(es); a classifier needs at least 2, so check that the labels file is complete"
            ),
        }
    }
}

impl std::error::Error for DatasetError {}
