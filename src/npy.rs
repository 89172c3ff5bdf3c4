//! NumPy `.npy` files (format versions 1.0-3.0) of little-endian `f4`/`f8`, C order.

use std::fmt;
use std::path::{Path, PathBuf};

/// An array read from a `.npy` file, widened to f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f64>,
    /// Whether the file stored `f4` (else `f8`).
    pub f32: bool,
}

/// A `.npy` file that cannot be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum NpyError {
    /// Reading or writing failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a supported `.npy` file.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Format { path, reason } => write!(
                f,
                "{}: {reason}; save it with numpy.save(path, array.astype(numpy.float32)) (C order)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for NpyError {}

/// Reads a `.npy` file of `<f4` or `<f8` values in C order.
///
/// # Errors
/// [`NpyError`] for unreadable files, other dtypes, Fortran order or a length that disagrees
/// with the shape.
pub fn read(path: &Path) -> Result<Array, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: &str| NpyError::Format {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY".as_slice() {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported .npy format version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("header runs past the end of the file"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let f32 = if header.contains("'<f4'") {
        true
    } else if header.contains("'<f8'") {
        false
    } else {
        return Err(bad(
            "dtype must be little-endian float32 ('<f4') or float64 ('<f8')",
        ));
    };
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in the header"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad("shape is not a tuple of integers"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = &bytes[start + header_len..];
    let count: usize = shape.iter().product();
    let width = if f32 { 4 } else { 8 };
    if body.len() != count * width {
        return Err(bad("data length disagrees with the shape"));
    }
    let data = if f32 {
        body.chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()
    };
    Ok(Array { shape, data, f32 })
}

/// The bytes of a version 1.0 `.npy` file holding `data` with `shape`, as `<f4` or `<f8`.
pub fn to_bytes(shape: &[usize], data: &[f64], f32: bool) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {tuple}, }}",
        if f32 { "<f4" } else { "<f8" }
    );
    // Pad so that the data starts on a 64-byte boundary, ending in a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        if f32 {
            out.extend_from_slice(&(*v as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}
