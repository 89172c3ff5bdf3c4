//! The command line's errors: the libraries' typed errors, each with the context it arose in.

use std::fmt;

use netmorph::arch::{ArchError, BuildError};
use netmorph::atomic::OutputError;
use netmorph::checkpoint::CheckpointError;
use netmorph::data::DataError;
use netmorph::memory::MemoryError;
use netmorph::model_file::ModelFileError;
use netmorph::morph::MorphError;
use netmorph::npy::NpyError;
use netmorph::ops::OpError;
use netmorph::train::TrainError;
use netmorph::NetError;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// A flag's value that cannot be used (the message says which and what to write).
    Usage(String),
    /// A model file.
    Model(ModelFileError),
    /// A checkpoint.
    Checkpoint(CheckpointError),
    /// A data set.
    Data(DataError),
    /// A `.npy` file.
    Npy(NpyError),
    /// An architecture spec.
    Arch(ArchError),
    /// Building an architecture.
    Build(BuildError),
    /// A morph operation string.
    Op(OpError),
    /// A morph.
    Morph(MorphError),
    /// A network and its input.
    Net(NetError),
    /// Training.
    Train(TrainError),
    /// Work that would not fit the memory budget.
    Memory(MemoryError),
    /// An output path.
    Output(OutputError),
    /// A child whose outputs moved further from the parent's than its precision allows.
    Deviation {
        /// max |child - parent| / max |parent| on the probes.
        relative: f64,
        /// The precision's bound.
        tolerance: f64,
    },
    /// `source`, met while doing `context`.
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        source: Box<CliError>,
    },
}

/// The command line's result.
pub type Result<T> = std::result::Result<T, CliError>;

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => write!(f, "{m}"),
            Self::Model(e) => write!(f, "{e}"),
            Self::Checkpoint(e) => write!(f, "{e}"),
            Self::Data(e) => write!(f, "{e}"),
            Self::Npy(e) => write!(f, "{e}"),
            Self::Arch(e) => write!(f, "{e}"),
            Self::Build(e) => write!(f, "{e}"),
            Self::Op(e) => write!(f, "{e}"),
            Self::Morph(e) => write!(f, "{e}"),
            Self::Net(e) => write!(f, "{e}"),
            Self::Train(e) => write!(f, "{e}"),
            Self::Memory(e) => write!(f, "{e}"),
            Self::Output(e) => write!(f, "{e}"),
            Self::Deviation {
                relative,
                tolerance,
            } => write!(
                f,
                "the child's outputs moved by {relative:.2e} relative to the parent's, more than the {tolerance:.0e} its precision allows; nothing was written (pass --allow-deviation to write it anyway)"
            ),
            Self::Context { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Usage(_) | Self::Deviation { .. } => None,
            Self::Model(e) => Some(e),
            Self::Checkpoint(e) => Some(e),
            Self::Data(e) => Some(e),
            Self::Npy(e) => Some(e),
            Self::Arch(e) => Some(e),
            Self::Build(e) => Some(e),
            Self::Op(e) => Some(e),
            Self::Morph(e) => Some(e),
            Self::Net(e) => Some(e),
            Self::Train(e) => Some(e),
            Self::Memory(e) => Some(e),
            Self::Output(e) => Some(e),
            Self::Context { source, .. } => Some(source.as_ref()),
        }
    }
}

macro_rules! from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        })*
    };
}

from!(
    Model(ModelFileError),
    Checkpoint(CheckpointError),
    Data(DataError),
    Npy(NpyError),
    Arch(ArchError),
    Build(BuildError),
    Op(OpError),
    Morph(MorphError),
    Net(NetError),
    Train(TrainError),
    Memory(MemoryError),
    Output(OutputError),
);

/// Adds what was being done to an error.
pub trait Context<T> {
    /// The error, as met while doing `what` (computed only on error).
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<CliError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| CliError::Context {
            context: what(),
            source: Box::new(e.into()),
        })
    }
}
