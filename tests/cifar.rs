//! CIFAR-10 readers on data generated here (a JPEG folder and binary batches, so the tests
//! pass on a plain clone), and on the shared JPEG copy where it is present (`CI=true` makes
//! its absence a failure).

mod common;

use common::temp_dir;

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use netmorph::data::{
    cifar10, cifar10_binary_split, cifar10_jpeg_split, DataError, DatasetError, CIFAR10_CLASSES,
    CIFAR10_RECORD,
};
use netmorph::Shape;

/// JPEG quality of the generated images: the highest, so decoded pixels stay close.
const QUALITY: u8 = 100;
/// Largest |decoded - encoded| pixel difference accepted, in [0, 1] units: at quality 100 the
/// colour conversion and 4:2:0 chroma subsampling of our smooth gradients (4 levels per pixel)
/// move a pixel by a few levels; a transposed or channel-swapped layout is off by up to 124.
const JPEG_TOL: f32 = 8.0 / 255.0;

/// Images per class in the generated folders.
const TRAIN_PER_CLASS: usize = 3;
const TEST_PER_CLASS: usize = 2;

/// Pixel (x, y) of image `i` of class `class`, RGB: red rises along x, green along y, blue
/// tells the class and the image apart.
fn pixel(class: usize, i: usize, x: usize, y: usize) -> [u8; 3] {
    let blue = 10 + 20 * class + 5 * i;
    [4 * x + 2, 4 * y + 2, blue].map(|v| u8::try_from(v).unwrap())
}

/// Writes `train/<class>/NNNN.jpg` and `test/<class>/NNNN.jpg` under `dir`, plus a file that is
/// not a JPEG (which the reader must skip).
fn write_jpeg_folder(dir: &Path) {
    for (split, per_class) in [("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)] {
        for (class, name) in CIFAR10_CLASSES.iter().enumerate() {
            let folder = dir.join(split).join(name);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..per_class {
                let rgb: Vec<u8> = (0..32 * 32)
                    .flat_map(|p| pixel(class, i, p % 32, p / 32))
                    .collect();
                let file = std::fs::File::create(folder.join(format!("{i:04}.jpg"))).unwrap();
                JpegEncoder::new_with_quality(file, QUALITY)
                    .write_image(&rgb, 32, 32, ExtendedColorType::Rgb8)
                    .unwrap();
            }
            std::fs::write(folder.join("README.txt"), "not an image").unwrap();
        }
    }
}

/// Checks a split read from [`write_jpeg_folder`]'s layout: the classes interleaved (every
/// class's first image, then every class's second, ...), NCHW pixels within [`JPEG_TOL`] of
/// what was encoded.
fn check_jpeg_split(set: &netmorph::data::Dataset, per_class: usize) {
    assert_eq!(set.x.shape, Shape::image(3, 32, 32));
    assert_eq!(set.classes, 10);
    let labels: Vec<usize> = (0..10 * per_class).map(|s| s % 10).collect();
    assert_eq!(set.y, labels);
    assert_eq!(set.x.n, labels.len());
    // The first ten images hold every class: `--limit 10` is not one class.
    assert_eq!(set.head(10).y, (0..10).collect::<Vec<_>>());
    let mut worst = 0.0f32;
    for (s, sample) in set.x.data.chunks_exact(3 * 32 * 32).enumerate() {
        let (class, i) = (s % 10, s / 10);
        for (c, plane) in sample.chunks_exact(32 * 32).enumerate() {
            for (p, v) in plane.iter().enumerate() {
                let want = f32::from(pixel(class, i, p % 32, p / 32)[c]) / 255.0;
                worst = worst.max((v - want).abs());
            }
        }
    }
    assert!(worst <= JPEG_TOL, "a pixel is {} levels off", worst * 255.0);
}

#[test]
fn generated_jpeg_folder_reads_labels_shapes_and_pixels() {
    let dir = temp_dir("jpeg");
    write_jpeg_folder(&dir);
    let (train, test) = cifar10(&dir, 0).unwrap();
    check_jpeg_split(&train, TRAIN_PER_CLASS);
    check_jpeg_split(&test, TEST_PER_CLASS);
    // `limit` keeps the first files of each class.
    let two = cifar10_jpeg_split(&dir.join("train"), 2).unwrap();
    check_jpeg_split(&two, 2);
    // A missing class folder is an error naming it; so is an image of the wrong size.
    std::fs::remove_dir_all(dir.join("test/truck")).unwrap();
    let err = cifar10(&dir, 0).unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("test/truck"),
        "{err}"
    );
    let bad = dir.join("train/cat/0000.jpg");
    JpegEncoder::new_with_quality(std::fs::File::create(&bad).unwrap(), QUALITY)
        .write_image(&[0; 3 * 16 * 8], 16, 8, ExtendedColorType::Rgb8)
        .unwrap();
    let err = cifar10_jpeg_split(&dir.join("train"), 0).unwrap_err();
    assert!(
        err.to_string().contains("0000.jpg") && err.to_string().contains("32x32"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_class_folders_are_refused() {
    let dir = temp_dir("empty");
    for name in CIFAR10_CLASSES {
        std::fs::create_dir_all(dir.join(name)).unwrap();
    }
    match cifar10_jpeg_split(&dir, 0) {
        Err(DataError::Invalid { path, source }) => {
            assert_eq!((path, source), (dir.clone(), DatasetError::Empty));
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Record `r` of batch `b`: label and 3072 bytes that differ between records, channels and
/// pixels.
fn record(b: usize, r: usize) -> Vec<u8> {
    let label = u8::try_from((b + 3 * r) % 10).unwrap();
    let mut rec = vec![label];
    rec.extend((0..3072).map(|j| u8::try_from((b * 31 + r * 7 + j * 13) % 256).unwrap()));
    rec
}

#[test]
fn binary_batches_read_exactly() {
    let dir = temp_dir("binary");
    // Batches 1-5 of 3, 1, 0, 2 and 4 records; the test batch of 2.
    let sizes = [(1, 3), (2, 1), (3, 0), (4, 2), (5, 4), (6, 2)];
    for (b, n) in sizes {
        let name = if b == 6 {
            "test_batch.bin".to_string()
        } else {
            format!("data_batch_{b}.bin")
        };
        let bytes: Vec<u8> = (0..n).flat_map(|r| record(b, r)).collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let (train, test) = cifar10(&dir, 0).unwrap();
    for (set, batches) in [(&train, &sizes[..5]), (&test, &sizes[5..])] {
        let records: Vec<Vec<u8>> = batches
            .iter()
            .flat_map(|&(b, n)| (0..n).map(move |r| record(b, r)))
            .collect();
        assert_eq!(set.x.shape, Shape::image(3, 32, 32));
        assert_eq!(set.x.n, records.len());
        let labels: Vec<usize> = records.iter().map(|r| usize::from(r[0])).collect();
        assert_eq!(set.y, labels);
        // Channel-major as stored: red plane, green plane, blue plane, each row-major.
        let pixels: Vec<f32> = records
            .iter()
            .flat_map(|r| r[1..].iter().map(|&v| f32::from(v) / 255.0))
            .collect();
        assert_eq!(set.x.data, pixels);
    }
    assert_eq!((train.x.n, test.x.n), (10, 2));
    // A file that is not whole records, and a label outside 0-9.
    std::fs::write(dir.join("test_batch.bin"), [0u8; 100]).unwrap();
    let err = cifar10_binary_split(&[dir.join("test_batch.bin")]).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { .. }) && err.to_string().contains("3073-byte records"),
        "{err}"
    );
    let mut bad = record(6, 0);
    bad[0] = 10;
    std::fs::write(dir.join("test_batch.bin"), [record(6, 1), bad].concat()).unwrap();
    let err = cifar10_binary_split(&[dir.join("test_batch.bin")]).unwrap_err();
    assert!(err.to_string().contains("record 1 has label 10"), "{err}");
    // Files that hold no records.
    std::fs::write(dir.join("test_batch.bin"), b"").unwrap();
    let err = cifar10_binary_split(&[dir.join("test_batch.bin")]).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Invalid {
                source: DatasetError::Empty,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(CIFAR10_RECORD, 3073);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_cifar_folder_says_what_to_do() {
    let err = cifar10(Path::new("/nonexistent/cifar"), 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/cifar/train/airplane")
            && err.to_string().contains("--data"),
        "{err}"
    );
}

/// The shared JPEG copy of CIFAR-10, if it is here. Its absence fails under `CI=true` (where
/// it must be provided) and is reported as a skip elsewhere.
fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/cifar10-jpeg");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the shared CIFAR-10 copy {} is missing",
        dir.display()
    );
    eprintln!(
        "skipped: the shared CIFAR-10 copy {} is not here",
        dir.display()
    );
    None
}

#[test]
fn shared_jpeg_slice_reads_ten_balanced_classes() {
    let Some(dir) = shared() else { return };
    let test = cifar10_jpeg_split(&dir.join("test"), 20).unwrap();
    assert_eq!(test.x.shape, Shape::image(3, 32, 32));
    assert_eq!(test.y.len(), 200);
    for c in 0..10 {
        assert_eq!(test.y.iter().filter(|&&y| y == c).count(), 20);
    }
    assert!(test.x.data.iter().all(|v| (0.0..=1.0).contains(v)));
    // Real photographs: channels differ and pixels vary.
    let stats = test.channel_stats();
    assert!(
        stats.iter().all(|(m, s)| *m > 0.2 && *m < 0.8 && *s > 0.1),
        "{stats:?}"
    );
}
