//! IDX files (the MNIST format), raw or gzip-compressed, and Fashion-MNIST.

use std::io::Read;
use std::path::{Path, PathBuf};

use netmorph_core::{Shape, Tensor};

use super::{DataError, Dataset};

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

const INSTALL_HINT: &str = "install Fashion-MNIST with `apt-get install -y dataset-fashion-mnist` or pass the folder holding the IDX files";

/// An IDX array of unsigned bytes: its dimensions and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type code `0x08`), gzip-compressed (detected by its
/// magic bytes) or raw.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read; [`DataError::Malformed`] for a bad magic
/// number, an unsupported element type, or a length that disagrees with the header.
pub fn read_idx(path: &Path) -> Result<Idx, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
        hint: INSTALL_HINT,
    })?;
    let malformed = |reason: String| DataError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| malformed(format!("gzip: {e}")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(malformed("no IDX magic number".into()));
    }
    if bytes[2] != 0x08 {
        return Err(malformed(format!(
            "element type 0x{:02x}; only unsigned bytes (0x08) are supported",
            bytes[2]
        )));
    }
    let rank = usize::from(bytes[3]);
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(malformed("header shorter than its dimension count".into()));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| malformed("dimensions overflow".into()))?;
    if bytes.len() - header != len {
        return Err(malformed(format!(
            "{} values after the header, dimensions {dims:?} need {len}",
            bytes.len() - header
        )));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// One split of an MNIST-format set: `<prefix>-images-idx3-ubyte[.gz]` and
/// `<prefix>-labels-idx1-ubyte[.gz]`, pixels scaled to `[0, 1]`.
fn split(dir: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let find = |kind: &str| -> PathBuf {
        let base = dir.join(format!("{prefix}-{kind}-ubyte"));
        let gz = PathBuf::from(format!("{}.gz", base.display()));
        if gz.exists() {
            gz
        } else {
            base
        }
    };
    let (ipath, lpath) = (find("images-idx3"), find("labels-idx1"));
    let images = read_idx(&ipath)?;
    let labels = read_idx(&lpath)?;
    let [n, h, w] = images.dims[..] else {
        return Err(DataError::Malformed {
            path: ipath,
            reason: format!("images must have 3 dimensions, found {:?}", images.dims),
        });
    };
    if labels.dims != [n] {
        return Err(DataError::Malformed {
            path: lpath,
            reason: format!("{:?} labels for {n} images", labels.dims),
        });
    }
    let y: Vec<usize> = labels.data.iter().map(|&l| usize::from(l)).collect();
    let classes = y.iter().max().map_or(0, |m| m + 1);
    let data = images.data.iter().map(|&p| f32::from(p) / 255.0).collect();
    Ok(Dataset {
        x: Tensor {
            n,
            shape: Shape::image(1, h, w),
            data,
        },
        y,
        classes,
    })
}

/// Fashion-MNIST's training and test splits from `dir` (by default [`FASHION_MNIST_DIR`]).
///
/// # Errors
/// [`DataError`] naming the missing or malformed file and how to get it.
pub fn fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let mut train = split(dir, "train")?;
    let mut test = split(dir, "t10k")?;
    let classes = train.classes.max(test.classes);
    train.classes = classes;
    test.classes = classes;
    Ok((train, test))
}
