//! CIFAR-10: the JPEG folder layout (`train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`) and
//! the original binary batches (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`).

use std::path::{Path, PathBuf};

use netmorph_core::{Shape, Tensor};

use super::{DataError, Dataset};

/// The classes in the usual label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// A sample: 3 channels of 32x32.
const SHAPE: Shape = Shape::image(3, 32, 32);

const HINT: &str = "point --data at a CIFAR-10 folder: `train/` and `test/` with one sub-folder of JPEGs per class, or the binary batches";

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
        hint: HINT,
    }
}

/// Reads one split of the JPEG layout; `limit` caps the images per class (0: all). Pixels are
/// scaled to `[0, 1]`, NCHW. The classes are interleaved (the first image of every class,
/// then the second, ...), so that the first `n` images of the split, which `--limit` and
/// [`Dataset::head`] take, hold every class alike rather than the first class only.
///
/// # Errors
/// [`DataError`] naming the missing folder or the file that is not a 32x32 RGB JPEG;
/// [`DataError::Invalid`] if the class folders hold no JPEGs.
pub fn cifar10_jpeg_split(dir: &Path, limit: usize) -> Result<Dataset, DataError> {
    let mut per_class = Vec::with_capacity(CIFAR10_CLASSES.len());
    for class in CIFAR10_CLASSES {
        let folder = dir.join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(io(&folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect();
        files.sort();
        if limit > 0 {
            files.truncate(limit);
        }
        per_class.push(files);
    }
    let longest = per_class.iter().map(Vec::len).max().unwrap_or(0);
    let order = (0..longest).flat_map(|i| {
        per_class
            .iter()
            .enumerate()
            .filter_map(move |(label, files)| files.get(i).map(|f| (label, f)))
    });
    let (mut data, mut y) = (Vec::new(), Vec::new());
    for (label, file) in order {
        let img = image::open(file)
            .map_err(|e| DataError::Malformed {
                path: file.clone(),
                reason: e.to_string(),
            })?
            .to_rgb8();
        if img.dimensions() != (32, 32) {
            return Err(DataError::Malformed {
                path: file.clone(),
                reason: format!("{:?} pixels, CIFAR-10 images are 32x32", img.dimensions()),
            });
        }
        let raw = img.into_raw();
        for c in 0..3 {
            data.extend(raw.iter().skip(c).step_by(3).map(|&v| f32::from(v) / 255.0));
        }
        y.push(label);
    }
    let set = Dataset {
        x: Tensor {
            n: y.len(),
            shape: SHAPE,
            data,
        },
        y,
        classes: CIFAR10_CLASSES.len(),
    };
    set.validate().map_err(|source| DataError::Invalid {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(set)
}

/// Bytes of one binary record: a label byte, then 1024 red, 1024 green and 1024 blue bytes
/// (32x32, row-major).
pub const CIFAR10_RECORD: usize = 1 + SHAPE.len();

/// Parses the bytes of one binary batch file: whole [`CIFAR10_RECORD`]-byte records, pixels
/// scaled to `[0, 1]`, NCHW. Not validated: an empty file gives an empty data set.
///
/// # Errors
/// The reason, for a length that is not a whole number of records or a label above 9.
///
/// # Examples
/// ```
/// use netmorph::data::{parse_cifar10_binary, CIFAR10_RECORD};
/// let mut record = vec![255u8; CIFAR10_RECORD];
/// record[0] = 7;
/// let set = parse_cifar10_binary(&record).unwrap();
/// assert_eq!((set.x.n, set.y, set.x.data[3071]), (1, vec![7], 1.0));
/// assert!(parse_cifar10_binary(&record[1..]).unwrap_err().contains("3073-byte records"));
/// ```
pub fn parse_cifar10_binary(bytes: &[u8]) -> Result<Dataset, String> {
    if !bytes.len().is_multiple_of(CIFAR10_RECORD) {
        return Err(format!(
            "{} bytes is not a whole number of {CIFAR10_RECORD}-byte records",
            bytes.len()
        ));
    }
    let records = bytes.chunks_exact(CIFAR10_RECORD);
    let mut y = Vec::with_capacity(records.len());
    let mut data = Vec::with_capacity(bytes.len() - records.len());
    for (i, rec) in records.enumerate() {
        if usize::from(rec[0]) >= CIFAR10_CLASSES.len() {
            return Err(format!("record {i} has label {} (classes are 0-9)", rec[0]));
        }
        y.push(usize::from(rec[0]));
        data.extend(rec[1..].iter().map(|&v| f32::from(v) / 255.0));
    }
    Ok(Dataset {
        x: Tensor {
            n: y.len(),
            shape: SHAPE,
            data,
        },
        y,
        classes: CIFAR10_CLASSES.len(),
    })
}

/// Reads binary batch files (see [`parse_cifar10_binary`]) into one data set.
///
/// # Errors
/// [`DataError`] naming the missing file or a length that is not a whole number of records;
/// [`DataError::Invalid`] (naming the first file's folder) if the files hold no records.
pub fn cifar10_binary_split(files: &[PathBuf]) -> Result<Dataset, DataError> {
    let mut set = Dataset {
        x: Tensor {
            n: 0,
            shape: SHAPE,
            data: Vec::new(),
        },
        y: Vec::new(),
        classes: CIFAR10_CLASSES.len(),
    };
    for file in files {
        let bytes = std::fs::read(file).map_err(io(file))?;
        let batch = parse_cifar10_binary(&bytes).map_err(|reason| DataError::Malformed {
            path: file.clone(),
            reason,
        })?;
        set.x.data.extend(batch.x.data);
        set.y.extend(batch.y);
    }
    set.x.n = set.y.len();
    let folder = files
        .first()
        .and_then(|f| f.parent())
        .unwrap_or(Path::new("."));
    set.validate().map_err(|source| DataError::Invalid {
        path: folder.to_path_buf(),
        source,
    })?;
    Ok(set)
}

/// CIFAR-10's training and test splits from `dir`: binary batches if `data_batch_1.bin` is
/// there, else the JPEG layout. `limit` caps the JPEG images per class (0: all).
///
/// # Errors
/// [`DataError`] naming what is missing or malformed.
pub fn cifar10(dir: &Path, limit: usize) -> Result<(Dataset, Dataset), DataError> {
    if dir.join("data_batch_1.bin").exists() {
        let train: Vec<PathBuf> = (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect();
        return Ok((
            cifar10_binary_split(&train)?,
            cifar10_binary_split(&[dir.join("test_batch.bin")])?,
        ));
    }
    Ok((
        cifar10_jpeg_split(&dir.join("train"), limit)?,
        cifar10_jpeg_split(&dir.join("test"), limit)?,
    ))
}
