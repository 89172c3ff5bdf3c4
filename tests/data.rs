//! IDX reading on generated files (raw and gzip), clear errors for missing or malformed files,
//! and real Fashion-MNIST (installed by `.ci/run` with `apt-get install -y dataset-fashion-mnist`).

mod common;

use common::temp_dir;

use std::io::Write;
use std::path::Path;

use netmorph::data::{
    augment, fashion_mnist, parse_idx, read_idx, Augment, DataError, Dataset, DatasetError,
    InputScale, FASHION_MNIST_DIR,
};
use netmorph::train::{train_step, Schedule, Sgd, SgdConfig};
use netmorph::{Kernel, Layer, Network, Rng, Shape, Tensor};

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter()
        .for_each(|d| out.extend_from_slice(&d.to_be_bytes()));
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(path: &Path, bytes: &[u8], gz: bool) {
    std::fs::write(path, if gz { gzip(bytes) } else { bytes.to_vec() }).unwrap();
}

/// Writes `<prefix>-images-idx3-ubyte` (`n` images of `h x w`, all pixels 7) and
/// `<prefix>-labels-idx1-ubyte` into `dir`.
fn write_split(dir: &Path, prefix: &str, [n, h, w]: [u32; 3], labels: &[u8]) {
    let pixels = vec![7; (n * h * w) as usize];
    write(
        &dir.join(format!("{prefix}-images-idx3-ubyte")),
        &idx_bytes(&[n, h, w], &pixels),
        false,
    );
    write(
        &dir.join(format!("{prefix}-labels-idx1-ubyte")),
        &idx_bytes(&[labels.len() as u32], labels),
        false,
    );
}

/// A consistent data set of `n` samples of `shape`, labels `i % classes`.
fn dataset(n: usize, shape: Shape, classes: usize) -> Dataset {
    let data = (0..n * shape.len()).map(|i| i as f32).collect();
    Dataset {
        x: Tensor::new(n, shape, data).unwrap(),
        y: (0..n).map(|i| i % classes.max(1)).collect(),
        classes,
    }
}

#[test]
fn reads_raw_and_gzip_idx() {
    let dir = temp_dir("idx");
    let values: Vec<u8> = (0..24).collect();
    for gz in [false, true] {
        let path = dir.join(format!("a{gz}"));
        write(&path, &idx_bytes(&[2, 3, 4], &values), gz);
        let idx = read_idx(&path).unwrap();
        assert_eq!(idx.dims, vec![2, 3, 4]);
        assert_eq!(idx.data, values);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_files_are_named_with_the_problem() {
    let dir = temp_dir("bad");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("magic", vec![1, 2, 3, 4, 5], "magic"),
        (
            "type",
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            "element type",
        ),
        ("short", idx_bytes(&[10], &[1, 2, 3]), "need 10"),
        ("header", vec![0, 0, 8, 3, 0, 0], "header"),
    ];
    for (name, bytes, words) in cases {
        let path = dir.join(name);
        write(&path, &bytes, false);
        let err = read_idx(&path).unwrap_err();
        assert!(matches!(err, DataError::Malformed { .. }), "{name}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(words) && msg.contains(name), "{msg}");
    }
    // Labels that disagree with the images.
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(&[2, 2, 2], &[0; 8]),
        false,
    );
    write(
        &dir.join("train-labels-idx1-ubyte"),
        &idx_bytes(&[3], &[0; 3]),
        false,
    );
    let err = fashion_mnist(&dir).unwrap_err();
    assert!(err.to_string().contains("labels for 2 images"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parse_idx_checks_every_header_derived_size() {
    let msg = |bytes: &[u8]| parse_idx(bytes).unwrap_err();
    // Dimensions whose product overflows: refused before anything is allocated.
    let e = msg(&idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]));
    assert!(e.contains("overflow"), "{e}");
    // More values than the header promises, raw and compressed.
    let long = idx_bytes(&[3], &[1, 2, 3, 4]);
    for bytes in [long.clone(), gzip(&long)] {
        let e = msg(&bytes);
        assert!(e.contains("more values") && e.contains("(3)"), "{e}");
    }
    // A corrupt gzip stream.
    let mut broken = gzip(&idx_bytes(&[4], &[1, 2, 3, 4]));
    let mid = broken.len() / 2;
    broken[mid] ^= 0xff;
    broken.truncate(broken.len() - 4);
    assert!(parse_idx(&broken).is_err());
    // Zero-sized arrays are well-formed IDX (the loaders refuse them as data sets).
    let idx = parse_idx(&idx_bytes(&[20, 0, 0], &[])).unwrap();
    assert_eq!((idx.dims, idx.data.len()), (vec![20, 0, 0], 0));
}

#[test]
fn gzip_is_expanded_only_as_far_as_the_header_says() {
    // 64 MiB of zeros behind a header promising 10 values: refused after reading 11.
    let mut bomb = idx_bytes(&[10], &[]);
    bomb.resize(bomb.len() + (64 << 20), 0);
    let e = parse_idx(&gzip(&bomb)).unwrap_err();
    assert!(
        e.contains("more values after the header than dimensions [10] need (10)"),
        "{e}"
    );
}

#[test]
fn unusable_mnist_sets_are_refused_at_load() {
    let cases: [(&str, [u32; 3], &[u8], DatasetError); 3] = [
        // Images of 0x0 pixels used to panic later ("chunk size must be non-zero").
        (
            "pixels",
            [20, 0, 0],
            &[1; 20],
            DatasetError::EmptySample {
                shape: Shape::image(1, 0, 0),
            },
        ),
        ("images", [0, 28, 28], &[], DatasetError::Empty),
        (
            "classes",
            [3, 2, 2],
            &[0, 0, 0],
            DatasetError::TooFewClasses { classes: 1 },
        ),
    ];
    for (name, dims, labels, expected) in cases {
        let dir = temp_dir(name);
        write_split(&dir, "train", dims, labels);
        write_split(&dir, "t10k", dims, labels);
        match fashion_mnist(&dir) {
            Err(DataError::Invalid { path, source }) => {
                assert_eq!(source, expected, "{name}");
                assert!(
                    path.ends_with("train-images-idx3-ubyte"),
                    "{name}: {path:?}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The message names the file and says what is wrong.
    let dir = temp_dir("pixels-msg");
    write_split(&dir, "train", [20, 0, 0], &[1; 20]);
    write_split(&dir, "t10k", [20, 0, 0], &[1; 20]);
    let msg = fashion_mnist(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte")
            && msg.contains("1x0x0")
            && msg.contains("no values"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_refuses_each_kind_of_unusable_set() {
    let good = dataset(4, Shape::image(2, 2, 3), 3);
    assert_eq!(good.validate(), Ok(()));
    let mut bad_label = good.clone();
    bad_label.y[2] = 3;
    let mut short_y = good.clone();
    short_y.y.pop();
    let mut short_x = good.clone();
    short_x.x.data.pop();
    let mut one_class = good.clone();
    one_class.classes = 1;
    one_class.y = vec![0; 4];
    let cases = [
        (
            bad_label,
            DatasetError::Label {
                index: 2,
                label: 3,
                classes: 3,
            },
            "label 3",
        ),
        (
            short_y,
            DatasetError::Labels {
                labels: 3,
                samples: 4,
            },
            "3 labels for 4 samples",
        ),
        (
            short_x,
            DatasetError::Length {
                n: 4,
                shape: Shape::image(2, 2, 3),
                found: 47,
            },
            "need 48 values, found 47",
        ),
        (
            one_class,
            DatasetError::TooFewClasses { classes: 1 },
            "at least 2",
        ),
        (
            dataset(0, Shape::flat(3), 2),
            DatasetError::Empty,
            "no samples",
        ),
        (
            dataset(5, Shape::image(3, 0, 4), 2),
            DatasetError::EmptySample {
                shape: Shape::image(3, 0, 4),
            },
            "3x0x4",
        ),
    ];
    for (set, expected, words) in cases {
        let e = set.validate().unwrap_err();
        assert!(e.to_string().contains(words), "{e}");
        assert_eq!(e, expected);
    }
}

#[test]
fn statistics_scaling_batches_and_augmentation_survive_odd_input() {
    // Samples of no values, and a set whose values fall short of n samples.
    let mut empty = dataset(20, Shape::image(2, 0, 0), 2);
    assert_eq!(empty.channel_stats(), vec![(0.0, 0.0); 2]);
    empty.scale(&[(1.0, 2.0)], InputScale::Standard);
    let (x, y) = empty.batch(&[0, 19, 20, usize::MAX]);
    assert_eq!((x.n, x.data.len(), y), (2, 0, vec![0, 1]));
    augment(
        &mut empty.x,
        Augment {
            crop: 2,
            flip: true,
        },
        &mut Rng::seed(1),
    );
    let mut ragged = dataset(3, Shape::image(2, 1, 2), 2);
    ragged.x.data.truncate(10);
    ragged.y.truncate(2);
    // Sample 2 is cut short, so it is skipped.
    let (x, y) = ragged.batch(&[2, 1, 0]);
    assert_eq!((x.n, y), (2, vec![1, 0]));
    assert_eq!(x.data, vec![4.0, 5.0, 6.0, 7.0, 0.0, 1.0, 2.0, 3.0]);
    assert_eq!(ragged.head(10).x.n, 2);
    // Statistics over the two whole samples: channel 0 holds 0, 1, 4, 5 and channel 1
    // holds 2, 3, 6, 7 (variance 4.25 each); scaling with fewer statistics than channels
    // leaves the rest as they are.
    let stats = ragged.channel_stats();
    assert_eq!(stats, vec![(2.5, 4.25f64.sqrt()), (4.5, 4.25f64.sqrt())]);
    ragged.scale(&stats[..1], InputScale::Pixels);
    assert_eq!(ragged.x.data[..4], [-637.5, -382.5, 2.0, 3.0]);
}

#[test]
fn missing_data_says_how_to_get_it() {
    let err = fashion_mnist(Path::new("/nonexistent/fashion")).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/fashion/train-images-idx3-ubyte")
            && msg.contains("apt-get install -y dataset-fashion-mnist"),
        "{msg}"
    );
}

#[test]
fn fashion_mnist_loads_and_trains() {
    let (train, test) = fashion_mnist(Path::new(FASHION_MNIST_DIR)).unwrap();
    assert_eq!(
        (train.y.len(), test.y.len(), train.classes),
        (60_000, 10_000, 10)
    );
    assert_eq!(train.x.shape, Shape::image(1, 28, 28));
    for c in 0..10 {
        assert_eq!(train.y.iter().filter(|&&y| y == c).count(), 6000);
    }
    assert!(train.x.data.iter().all(|v| (0.0..=1.0).contains(v)));
    // Softmax regression on a small slice learns well above chance (10%).
    let stats = train.channel_stats();
    let (mut train, mut test) = (train.head(5000), test.head(1000));
    train.normalize(&stats);
    test.normalize(&stats);
    let flat = |d: &netmorph::data::Dataset| {
        let mut x = d.x.clone();
        x.shape = Shape::flat(784);
        x
    };
    let mut net = Network::new(
        Shape::flat(784),
        vec![Layer::Dense(Kernel::zeros(10, 784, 1))],
    )
    .unwrap();
    let config = SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.0,
        bias_lr_mult: 1.0,
        a_lr_mult: 1.0,
        schedule: Schedule::Constant,
    };
    let mut sgd = Sgd::new(config);
    let mut rng = Rng::seed(1);
    let xs = flat(&train);
    let flat_train = netmorph::data::Dataset {
        x: xs,
        y: train.y.clone(),
        classes: 10,
    };
    for _ in 0..3 {
        for chunk in rng.permutation(5000).chunks(100) {
            let (x, y) = flat_train.batch(chunk);
            train_step(&mut net, &mut sgd, &x, &y).unwrap();
        }
    }
    let out = net.forward(&flat(&test)).unwrap();
    let hits = out
        .data
        .chunks_exact(10)
        .zip(&test.y)
        .filter(|(row, y)| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|m| m.0)
                == Some(**y)
        })
        .count();
    assert!(hits >= 700, "{hits}/1000 correct");
}
