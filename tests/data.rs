//! IDX reading on generated files (raw and gzip), clear errors for missing or malformed files,
//! and real Fashion-MNIST (installed by `.ci/run` with `apt-get install -y dataset-fashion-mnist`).

use std::io::Write;
use std::path::{Path, PathBuf};

use netmorph::data::{fashion_mnist, read_idx, DataError, FASHION_MNIST_DIR};
use netmorph::train::{train_step, Schedule, Sgd, SgdConfig};
use netmorph::{Kernel, Layer, Network, Rng, Shape};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netmorph-data-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter()
        .for_each(|d| out.extend_from_slice(&d.to_be_bytes()));
    out.extend_from_slice(data);
    out
}

fn write(path: &Path, bytes: &[u8], gz: bool) {
    let mut f = std::fs::File::create(path).unwrap();
    if gz {
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    } else {
        f.write_all(bytes).unwrap();
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
