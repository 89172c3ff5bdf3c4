//! The crate's error type.

use std::fmt;

/// Why a GPU operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter at all: no GPU driver, or no Vulkan/Metal/DX12 loader.
    NoAdapter,
    /// The adapter asked for is not among those found.
    AdapterNotFound {
        /// What was asked for (an index or a name).
        wanted: String,
        /// The adapters found, one per line.
        available: String,
    },
    /// The adapter would not give a device.
    RequestDevice(String),
    /// Sizes that disagree with each other or do not fit the adapter's limits.
    Shape(String),
    /// The GPU reported an error while running (validation, out of memory, device lost).
    Device(String),
    /// The adapter lacks a feature the work needs (f64 kernels need Vulkan and SHADER_F64).
    Unsupported(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAdapter => write!(
                f,
                "no GPU adapter found: install a Vulkan driver (on Debian/Ubuntu, \
                 `apt-get install mesa-vulkan-drivers libvulkan1` gives the software adapter), \
                 or run on the CPU"
            ),
            Self::AdapterNotFound { wanted, available } => write!(
                f,
                "no GPU adapter matches {wanted:?}; choose one of these by index or by a \
                 part of its name:\n{available}"
            ),
            Self::RequestDevice(e) => write!(f, "the GPU adapter refused a device: {e}"),
            Self::Shape(e) => write!(f, "GPU operation with bad sizes: {e}"),
            Self::Device(e) => write!(f, "the GPU reported an error: {e}"),
            Self::Unsupported(e) => write!(f, "not supported by this GPU adapter: {e}"),
        }
    }
}

impl std::error::Error for GpuError {}
