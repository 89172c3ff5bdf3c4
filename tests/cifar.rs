//! CIFAR-10 readers on a slice of the shared JPEG copy and on generated binary batches.

use std::path::{Path, PathBuf};

use netmorph::data::{cifar10, cifar10_binary_split, cifar10_jpeg_split, DataError};
use netmorph::Shape;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/cifar10-jpeg")
}

#[test]
fn jpeg_slice_reads_ten_balanced_classes() {
    let test = cifar10_jpeg_split(&shared().join("test"), 20).unwrap();
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

#[test]
fn binary_batches_round_trip_pixels_and_labels() {
    let dir = std::env::temp_dir().join(format!("netmorph-cifar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = |label: u8, value: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| value.wrapping_add((i / 1024) as u8)));
        r
    };
    for i in 1..=5 {
        std::fs::write(
            dir.join(format!("data_batch_{i}.bin")),
            [record(i, 10 * i), record(9, 0)].concat(),
        )
        .unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), record(3, 200)).unwrap();
    let (train, test) = cifar10(&dir, 0).unwrap();
    assert_eq!(train.y, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    assert_eq!(test.y, vec![3]);
    // Channel-major: red plane, then green (+1), then blue (+2).
    assert_eq!(test.x.data[0] * 255.0, 200.0);
    assert_eq!(test.x.data[1024] * 255.0, 201.0);
    assert_eq!(test.x.data[2048] * 255.0, 202.0);
    std::fs::write(dir.join("test_batch.bin"), [0u8; 100]).unwrap();
    let err = cifar10_binary_split(&[dir.join("test_batch.bin")]).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { .. }) && err.to_string().contains("3073-byte records"),
        "{err}"
    );
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
