//! IDX files (the MNIST format), raw or gzip-compressed, and Fashion-MNIST.

use std::cmp::Ordering;
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

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads an IDX file of unsigned bytes (type code `0x08`), gzip-compressed (detected by its
/// magic bytes) or raw; see [`parse_idx`].
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read; [`DataError::Malformed`] with
/// [`parse_idx`]'s reason.
pub fn read_idx(path: &Path) -> Result<Idx, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
        hint: INSTALL_HINT,
    })?;
    parse_idx(&raw).map_err(|reason| DataError::Malformed {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses the bytes of an IDX file of unsigned bytes (type code `0x08`), gzip-compressed
/// (detected by its magic bytes) or raw. A gzip stream is decompressed only as far as the
/// header's dimensions say, so a stream that expands further is refused without being
/// expanded.
///
/// # Errors
/// The reason, for a bad magic number, an unsupported element type, a header shorter than
/// its dimension count, dimensions whose product overflows, a value count that disagrees
/// with the dimensions, or a corrupt gzip stream.
///
/// # Examples
/// ```
/// use netmorph::data::parse_idx;
/// let idx = parse_idx(&[0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 7, 9]).unwrap();
/// assert_eq!((idx.dims, idx.data), (vec![1, 2], vec![7, 9]));
/// assert!(parse_idx(&[0, 0, 8, 1, 0, 0, 0, 3, 7]).unwrap_err().contains("need 3"));
/// ```
pub fn parse_idx(bytes: &[u8]) -> Result<Idx, String> {
    if bytes.starts_with(&GZIP_MAGIC) {
        parse_stream(flate2::read::GzDecoder::new(bytes))
    } else {
        parse_stream(bytes)
    }
}

/// [`parse_idx`] on a reader of the uncompressed bytes.
fn parse_stream(mut r: impl Read) -> Result<Idx, String> {
    let magic = read_up_to(&mut r, 4)?;
    let [0, 0, kind, rank] = magic[..] else {
        return Err("no IDX magic number".into());
    };
    if kind != 0x08 {
        return Err(format!(
            "element type 0x{kind:02x}; only unsigned bytes (0x08) are supported"
        ));
    }
    let header = read_up_to(&mut r, 4 * u64::from(rank))?;
    if header.len() < 4 * usize::from(rank) {
        return Err("header shorter than its dimension count".into());
    }
    let dims = header
        .chunks_exact(4)
        .map(|b| usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| "a dimension does not fit in memory addresses".to_string())?;
    let len = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    // One byte more than the header promises tells a longer body from an exact one.
    let data = read_up_to(
        &mut r,
        u64::try_from(len).map_or(u64::MAX, |l| l.saturating_add(1)),
    )?;
    match data.len().cmp(&len) {
        Ordering::Equal => Ok(Idx { dims, data }),
        Ordering::Less => Err(format!(
            "{} values after the header, dimensions {dims:?} need {len}",
            data.len()
        )),
        Ordering::Greater => Err(format!(
            "more values after the header than dimensions {dims:?} need ({len})"
        )),
    }
}

/// Up to `n` bytes from `r`, fewer if it ends first.
fn read_up_to(r: &mut impl Read, n: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.by_ref()
        .take(n)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    Ok(out)
}

/// One split of an MNIST-format set: `<prefix>-images-idx3-ubyte[.gz]` and
/// `<prefix>-labels-idx1-ubyte[.gz]`, pixels scaled to `[0, 1]`; also the images' path.
/// Not yet validated: the class count comes from both splits.
fn split(dir: &Path, prefix: &str) -> Result<(Dataset, PathBuf), DataError> {
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
    let set = Dataset {
        x: Tensor {
            n,
            shape: Shape::image(1, h, w),
            data,
        },
        y,
        classes,
    };
    Ok((set, ipath))
}

/// Fashion-MNIST's training and test splits from `dir` (by default [`FASHION_MNIST_DIR`]).
///
/// The class count is one more than the largest label of either split.
///
/// # Errors
/// [`DataError`] naming the missing or malformed file and how to get it;
/// [`DataError::Invalid`] naming the images file of a split that fails
/// [`Dataset::validate`] (no images, images of no pixels, fewer than two classes).
pub fn fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let (mut train, train_path) = split(dir, "train")?;
    let (mut test, test_path) = split(dir, "t10k")?;
    let classes = train.classes.max(test.classes);
    for (set, path) in [(&mut train, train_path), (&mut test, test_path)] {
        set.classes = classes;
        set.validate()
            .map_err(|source| DataError::Invalid { path, source })?;
    }
    Ok((train, test))
}
