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

const HINT: &str = "point --data at a CIFAR-10 folder: `train/` and `test/` with one sub-folder of JPEGs per class, or the binary batches";

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
        hint: HINT,
    }
}

/// Reads one split of the JPEG layout; `limit` caps the images per class (0: all). Pixels are
/// scaled to `[0, 1]`, NCHW.
///
/// # Errors
/// [`DataError`] naming the missing folder or the file that is not a 32x32 RGB JPEG.
pub fn cifar10_jpeg_split(dir: &Path, limit: usize) -> Result<Dataset, DataError> {
    let shape = Shape::image(3, 32, 32);
    let (mut data, mut y) = (Vec::new(), Vec::new());
    for (label, class) in CIFAR10_CLASSES.iter().enumerate() {
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
        for file in files {
            let img = image::open(&file)
                .map_err(|e| DataError::Malformed {
                    path: file.clone(),
                    reason: e.to_string(),
                })?
                .to_rgb8();
            if img.dimensions() != (32, 32) {
                return Err(DataError::Malformed {
                    path: file,
                    reason: format!("{:?} pixels, CIFAR-10 images are 32x32", img.dimensions()),
                });
            }
            let raw = img.into_raw();
            for c in 0..3 {
                data.extend(raw.iter().skip(c).step_by(3).map(|&v| f32::from(v) / 255.0));
            }
            y.push(label);
        }
    }
    Ok(Dataset {
        x: Tensor {
            n: y.len(),
            shape,
            data,
        },
        y,
        classes: 10,
    })
}

/// Reads binary batch files (each record: a label byte, then 1024 red, 1024 green and 1024 blue
/// bytes).
///
/// # Errors
/// [`DataError`] naming the missing file or a length that is not a whole number of records.
pub fn cifar10_binary_split(files: &[PathBuf]) -> Result<Dataset, DataError> {
    let (mut data, mut y) = (Vec::new(), Vec::new());
    for file in files {
        let bytes = std::fs::read(file).map_err(io(file))?;
        if bytes.len() % 3073 != 0 {
            return Err(DataError::Malformed {
                path: file.clone(),
                reason: format!(
                    "{} bytes is not a whole number of 3073-byte records",
                    bytes.len()
                ),
            });
        }
        for rec in bytes.chunks_exact(3073) {
            if rec[0] > 9 {
                return Err(DataError::Malformed {
                    path: file.clone(),
                    reason: format!("label {} (classes are 0-9)", rec[0]),
                });
            }
            y.push(usize::from(rec[0]));
            data.extend(rec[1..].iter().map(|&v| f32::from(v) / 255.0));
        }
    }
    Ok(Dataset {
        x: Tensor {
            n: y.len(),
            shape: Shape::image(3, 32, 32),
            data,
        },
        y,
        classes: 10,
    })
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
