//! The bad inputs of the hardening review (issue 8), each through the `netmorph` command: every
//! one must end in a one-line `error: ...` and exit status 1, without a panic (101), an abort
//! (134), a hang, a destroyed input or a stray temporary file. The data is generated here, so
//! the tests need no data set installed.

mod common;

use common::{netmorph, s, temp_dir};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netmorph::model_file::{save, to_bytes};
use netmorph::{ActKind, Conv2d, Kernel, Layer, Network, PActivation, Rng, Shape};

/// Runs `args` and checks the failure is a clean one: status 1, a single `error:` line naming
/// `expect`, within a few seconds (none of these may start real work).
#[track_caller]
fn refused(args: &[&str], expect: &str) {
    let start = Instant::now();
    let out = netmorph(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    assert!(
        lines[0].contains(expect),
        "{args:?}: expected {expect:?} in {err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{args:?} took {:?}",
        start.elapsed()
    );
}

/// An MNIST-format folder: `n` training and `n` test images of `h x w` pixels, labels
/// `0..classes` in turn.
fn idx_folder(dir: &Path, n: u32, (h, w): (u32, u32), classes: u8) -> PathBuf {
    let data = dir.join("idx");
    std::fs::create_dir_all(&data).unwrap();
    let mut rng = Rng::seed(u64::from(n));
    for split in ["train", "t10k"] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n, h, w] {
            images.extend_from_slice(&d.to_be_bytes());
        }
        let pixels = n as usize * h as usize * w as usize;
        images.extend((0..pixels).map(|_| rng.below(256) as u8));
        std::fs::write(data.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        let mut labels = vec![0, 0, 8, 1];
        labels.extend_from_slice(&n.to_be_bytes());
        labels.extend((0..n).map(|i| (i % u32::from(classes)) as u8));
        std::fs::write(data.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
    data
}

/// A small conv model on 1 x 8 x 8 inputs with 3 outputs, saved in `dir`.
fn conv_model(dir: &Path) -> PathBuf {
    let mut rng = Rng::seed(3);
    let mut k = Kernel::<f32>::zeros(4, 1, 3);
    k.weight = rng.normals(36, 0.3).into_iter().map(|v| v as f32).collect();
    let mut d = Kernel::<f32>::zeros(3, 4 * 8 * 8, 1);
    d.weight = rng
        .normals(3 * 256, 0.1)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let net = Network::new(
        Shape::image(1, 8, 8),
        vec![
            Layer::Conv2d(Conv2d {
                kernel: k,
                stride: 1,
                pad: 1,
            }),
            Layer::Activation(PActivation::plain(ActKind::Relu, 4)),
            Layer::Flatten,
            Layer::Dense(d),
        ],
    )
    .unwrap();
    let path = dir.join("conv.safetensors");
    save(&net, &path).unwrap();
    path
}

/// `model` with its architecture JSON changed by `edit`, written to `out`.
fn edit_arch(model: &Path, out: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(model).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let mut arch: serde_json::Value = serde_json::from_str(&meta["netmorph"]).unwrap();
    edit(&mut arch);
    meta.insert("netmorph".into(), arch.to_string());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<_> = st.tensors();
    std::fs::write(out, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
}

/// Every temporary file left in `dir`.
fn strays(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp-") || n.contains(".probe-"))
        .collect()
}

#[test]
fn overflowing_sizes_in_model_files_are_refused() {
    let dir = temp_dir("pad");
    let model = conv_model(&dir);
    let bad = dir.join("pad.safetensors");
    edit_arch(&model, &bad, |a| {
        a["layers"][0]["padding"] = serde_json::json!(9_223_372_036_854_775_808u64)
    });
    let data = idx_folder(&dir, 12, (8, 8), 3);
    let out = dir.join("out.safetensors");
    let x = dir.join("x.npy");
    std::fs::write(&x, netmorph::npy::to_bytes(&[2, 64], &[0.5f32; 128])).unwrap();
    let b = s(&bad);
    refused(&["inspect", b], "layer 0");
    refused(&["eval", b, "--data", s(&data)], "layer 0");
    refused(
        &["predict", b, "--input", s(&x), "--output", s(&out)],
        "layer 0",
    );
    refused(
        &["morph", b, "--op", "width@0,to=6", "--out", s(&out)],
        "layer 0",
    );
    refused(
        &["continue", b, "--data", s(&data), "--out", s(&out)],
        "layer 0",
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn npy_shapes_that_overflow_are_refused() {
    let dir = temp_dir("npy");
    let model = conv_model(&dir);
    let x = dir.join("x.npy");
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (288230376151711744, 784), }"
            .to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&x, &bytes).unwrap();
    let y = dir.join("y.npy");
    refused(
        &["predict", s(&model), "--input", s(&x), "--output", s(&y)],
        "x.npy",
    );
    // A big-endian array is refused, not read as little-endian.
    let be = String::from_utf8(bytes[10..].to_vec())
        .unwrap()
        .replace("'<f4'", "'>f4'")
        .replace("(288230376151711744, 784)", "(1, 64)                  ");
    let mut big = bytes[..10].to_vec();
    big.extend_from_slice(be.as_bytes());
    big.extend_from_slice(&[0u8; 256]);
    std::fs::write(&x, &big).unwrap();
    refused(
        &["predict", s(&model), "--input", s(&x), "--output", s(&y)],
        ">f4",
    );
    assert!(!y.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn architectures_too_large_for_memory_are_refused_before_allocating() {
    let dir = temp_dir("arch");
    let data = idx_folder(&dir, 12, (8, 8), 3);
    let out = dir.join("m.safetensors");
    let (d, o) = (s(&data), s(&out));
    for (arch, expect) in [
        ("mlp(999999999)", "needs about"),
        ("mlp(100000,100000)", "needs about"),
        ("mlp(18446744073709551615)", "needs about more than 16 EiB"),
        ("(5:999999999)", "needs about"),
        ("(999999999:1)", "needs about"),
        ("(5:100000)", "needs about"),
        ("(5:4294967297x4294967297)", "fits in 64 bits"),
        ("(5:8)x999999999", "at most 1024"),
        ("[(5:8)]x999999999", "at most 1024"),
    ] {
        refused(
            &[
                "train",
                "--arch",
                arch,
                "--data",
                d,
                "--out",
                o,
                "--max-memory",
                "1G",
            ],
            expect,
        );
    }
    // 2^64 - 1 epochs of 12 steps are more iterations than the schedule can count; 10^15
    // epochs is a long run, not an error (it ends with Ctrl-C and a checkpoint).
    refused(
        &[
            "train",
            "--arch",
            "mlp()",
            "--data",
            d,
            "--out",
            o,
            "--epochs",
            "18446744073709551615",
            "--batch",
            "1",
        ],
        "--epochs",
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_sets_too_large_for_memory_are_refused_before_loading() {
    let dir = temp_dir("databudget");
    // 2 x 2000 images of 32 x 32: 4 MiB stored, about 9 times that once loaded.
    let data = idx_folder(&dir, 2000, (32, 32), 3);
    let model = dir.join("m.safetensors");
    let (d, m) = (s(&data), s(&model));
    refused(
        &[
            "train",
            "--arch",
            "mlp()",
            "--data",
            d,
            "--out",
            m,
            "--max-memory",
            "16M",
        ],
        "loading --data",
    );
    let out = netmorph(&[
        "train",
        "--arch",
        "mlp()",
        "--data",
        d,
        "--epochs",
        "1",
        "--out",
        m,
        "--max-memory",
        "64M",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(
        &["eval", m, "--data", d, "--max-memory", "16M"],
        "loading --data",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn morphs_too_large_or_unbounded_are_refused() {
    let dir = temp_dir("morph");
    let model = conv_model(&dir);
    let out = dir.join("child.safetensors");
    let (m, o) = (s(&model), s(&out));
    for (op, expect) in [
        ("depth@0,cl=999999999999,k1=3,k2=3", "needs about"),
        ("depth@3,cl=18446744073709551615", "would exceed usize::MAX"),
        ("depth@0,cl=4,k1=999999999,k2=3", "would exceed usize::MAX"),
        ("depth@0,cl=4,k1=301,k2=3", "needs about"),
        ("depth@0,cl=4,k1=3,k2=18446744073709551615", "K_2"),
        ("width@0,to=99999999999", "needs about"),
        ("net2wider@0,to=99999999999", "needs about"),
        ("subnet@0,widths=99999999999,kernels=3/1", "needs about"),
        ("stack@0,n=100000000000,cl=4", "at most 64"),
    ] {
        refused(
            &["morph", m, "--op", op, "--out", o, "--max-memory", "1G"],
            expect,
        );
    }
    refused(
        &["morph", m, "--op", "kernel@0,k=999", "--out", o],
        "use at most 15",
    );
    refused(
        &["morph", m, "--op", "stack@0,n=100000", "--out", o],
        "at most 64 branches",
    );
    refused(
        &["morph", m, "--op", "width@0,to=6,to=8", "--out", o],
        "twice",
    );
    refused(
        &["morph", m, "--op", "width@0,too=6", "--out", o],
        "no key `too`",
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_images_and_bad_labels_are_refused() {
    let dir = temp_dir("empty");
    let model = conv_model(&dir);
    let out = dir.join("out.safetensors");
    let zero = idx_folder(&dir.join("zero"), 20, (0, 0), 3);
    let none = idx_folder(&dir.join("none"), 0, (8, 8), 3);
    for data in [&zero, &none] {
        let d = s(data);
        refused(
            &["train", "--arch", "mlp()", "--data", d, "--out", s(&out)],
            "--data",
        );
        refused(&["eval", s(&model), "--data", d], "--data");
        refused(
            &[
                "morph",
                s(&model),
                "--op",
                "width@0,to=6",
                "--out",
                s(&out),
                "--data",
                d,
            ],
            "--data",
        );
        refused(
            &["continue", s(&model), "--data", d, "--out", s(&out)],
            "--data",
        );
    }
    // Ten classes in the data, three outputs in the model.
    let ten = idx_folder(&dir.join("ten"), 20, (8, 8), 10);
    refused(
        &["continue", s(&model), "--data", s(&ten), "--out", s(&out)],
        "10 classes",
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn outputs_are_checked_before_any_work_and_inputs_survive() {
    let dir = temp_dir("out");
    let model = conv_model(&dir);
    let before = std::fs::read(&model).unwrap();
    let data = idx_folder(&dir, 12, (8, 8), 3);
    let x = dir.join("x.npy");
    std::fs::write(&x, netmorph::npy::to_bytes(&[2, 64], &[0.5f32; 128])).unwrap();
    let m = s(&model);
    refused(&["predict", m, "--input", s(&x), "--output", m], "destroy");
    refused(
        &["predict", m, "--input", s(&x), "--output", s(&x)],
        "input array",
    );
    refused(&["morph", m, "--op", "width@0,to=6", "--out", m], "destroy");
    refused(&["continue", m, "--data", s(&data), "--out", m], "destroy");
    let missing = dir.join("no/such/folder/m.safetensors");
    let started = Instant::now();
    refused(
        &[
            "train",
            "--arch",
            "mlp()",
            "--data",
            s(&data),
            "--epochs",
            "1000000",
            "--out",
            s(&missing),
        ],
        "does not exist",
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "trained before checking --out"
    );
    refused(
        &[
            "train",
            "--arch",
            "mlp()",
            "--data",
            s(&data),
            "--out",
            s(&dir),
        ],
        "is a folder",
    );
    let images = data.join("train-images-idx3-ubyte");
    let before_images = std::fs::read(&images).unwrap();
    refused(
        &[
            "train",
            "--arch",
            "mlp()",
            "--data",
            s(&data),
            "--out",
            s(&images),
        ],
        "data file",
    );
    assert_eq!(std::fs::read(&images).unwrap(), before_images);
    // A device is a fine output; its checkpoint would not go beside it.
    let out = netmorph(&[
        "train",
        "--arch",
        "mlp()",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--out",
        "/dev/null",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = dir.join("g.csv");
    refused(
        &[
            "grow",
            "--arch",
            "mlp()",
            "--data",
            s(&data),
            "--stage",
            "1:depth@1,cl=4",
            "--out",
            s(&csv),
            "--csv",
            s(&csv),
        ],
        "two outputs",
    );
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the model was changed"
    );
    assert_eq!(strays(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_edited_past_the_run_are_refused() {
    let dir = temp_dir("ckpt");
    let data = idx_folder(&dir, 30, (8, 8), 3);
    let model = dir.join("m.safetensors");
    let (d, m) = (s(&data), s(&model));
    let out = netmorph(&[
        "train", "--arch", "mlp()", "--data", d, "--epochs", "1", "--batch", "10", "--out", m,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A checkpoint of the same network at epoch 10^15.
    let net = netmorph::model_file::load::<f32>(&model).unwrap();
    let ckpt = dir.join("m.ckpt.safetensors");
    let config = netmorph::fit::FitConfig {
        epochs: 2,
        batch: 10,
        sgd: netmorph::train::SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            bias_lr_mult: 1.0,
            a_lr_mult: 1.0,
            schedule: netmorph::train::Schedule::Constant,
        },
        seed: 0,
        threads: 1,
        augment: None,
    };
    let state = netmorph::fit::TrainState::<f32>::new(&config);
    netmorph::checkpoint::save(
        (&net, netmorph::data::InputScale::Standard),
        &state,
        &config,
        &ckpt,
    )
    .unwrap();
    let edited = dir.join("edited.ckpt.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let mut st: serde_json::Value = serde_json::from_str(&meta["netmorph_checkpoint"]).unwrap();
    st["epoch"] = serde_json::json!(1_000_000_000_000_000u64);
    meta.insert("netmorph_checkpoint".into(), st.to_string());
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .tensors();
    std::fs::write(
        &edited,
        safetensors::serialize(tensors, Some(meta)).unwrap(),
    )
    .unwrap();
    let out2 = dir.join("m2.safetensors");
    refused(
        &[
            "continue",
            m,
            "--data",
            d,
            "--epochs",
            "2",
            "--batch",
            "10",
            "--resume",
            s(&edited),
            "--out",
            s(&out2),
        ],
        "past this run's 2 epochs",
    );
    // Momentum of another network (here: of none) is refused at load, not at the first step.
    let foreign = netmorph::fit::TrainState {
        sgd: netmorph::train::Sgd::resume(config.sgd, Some(Vec::new()), 0),
        ..netmorph::fit::TrainState::<f32>::new(&config)
    };
    netmorph::checkpoint::save(
        (&net, netmorph::data::InputScale::Standard),
        &foreign,
        &config,
        &ckpt,
    )
    .unwrap();
    refused(
        &[
            "continue",
            m,
            "--data",
            d,
            "--epochs",
            "2",
            "--batch",
            "10",
            "--resume",
            s(&ckpt),
            "--out",
            s(&out2),
        ],
        "not shaped like its network",
    );
    assert!(!out2.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stale_temporaries_are_removed_by_the_next_write() {
    let dir = temp_dir("stale");
    let data = idx_folder(&dir, 12, (8, 8), 3);
    let model = dir.join("m.safetensors");
    // What a process killed with `kill -9` during its write leaves (no such pid can run:
    // Linux pids stay below 2^22).
    let stale = dir.join(".m.safetensors.tmp-4194999");
    std::fs::write(&stale, vec![0u8; 1 << 20]).unwrap();
    let out = netmorph(&[
        "train",
        "--arch",
        "mlp()",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--out",
        s(&model),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(model.exists());
    assert_eq!(strays(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn a_double_ctrl_c_leaves_no_temporary_file() {
    let dir = temp_dir("sigint");
    let data = idx_folder(&dir, 2000, (16, 16), 3);
    let model = dir.join("m.safetensors");
    for wait_ms in [0u64, 2, 20] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netmorph"))
            .args([
                "train",
                "--arch",
                "mlp(256,256)",
                "--data",
                s(&data),
                "--epochs",
                "100000",
                "--batch",
                "10",
            ])
            .args(["--out", s(&model), "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the first epoch's line: training is under way.
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut first,
        )
        .unwrap();
        assert!(first.contains("\"epoch\":1"), "{first}");
        let pid = child.id().to_string();
        let sigint = || {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        };
        sigint();
        std::thread::sleep(Duration::from_millis(wait_ms));
        sigint();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "wait {wait_ms} ms");
        assert_eq!(strays(&dir), Vec::<String>::new(), "wait {wait_ms} ms");
        assert!(!model.exists(), "an interrupted run wrote its model");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn f64_models_stay_f64_through_every_command() {
    let dir = temp_dir("f64");
    let data = idx_folder(&dir, 40, (16, 16), 3);
    let (parent, child, grown) = (
        dir.join("p.safetensors"),
        dir.join("c.safetensors"),
        dir.join("g.safetensors"),
    );
    let d = s(&data);
    let ok = |args: &[&str]| {
        let out = netmorph(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    ok(&[
        "train",
        "--arch",
        "(3:4)(3:4)(3:8)",
        "--dtype",
        "f64",
        "--data",
        d,
        "--epochs",
        "1",
        "--batch",
        "10",
        "--out",
        s(&parent),
    ]);
    let text = ok(&[
        "morph",
        s(&parent),
        "--op",
        "depth@0,cl=8,k1=3,k2=3,act=tanh",
        "--op",
        "width@0,to=12",
        "--op",
        "kernel@0,k=5",
        "--out",
        s(&child),
        "--data",
        d,
    ]);
    assert!(text.contains("f64"), "{text}");
    for line in text.lines().filter(|l| l.contains("relative)")) {
        let rel: f64 = line
            .rsplit('(')
            .next()
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no relative deviation in {line}"));
        assert!(rel <= 1e-9, "{line}");
    }
    let inspect = ok(&["inspect", s(&child), "--json"]);
    assert!(inspect.contains("\"dtype\":\"f64\""), "{inspect}");
    ok(&[
        "continue",
        s(&child),
        "--data",
        d,
        "--epochs",
        "1",
        "--batch",
        "10",
        "--out",
        s(&grown),
    ]);
    assert_eq!(
        netmorph::model_file::precision(&grown).unwrap(),
        netmorph::model_file::Precision::F64
    );
    let eval = ok(&["eval", s(&grown), "--data", d]);
    assert!(eval.contains("(f64)"), "{eval}");
    // The child's file holds f64 tensors: reading it as f32 and back would lose bits.
    let bytes = std::fs::read(&child).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st
        .tensors()
        .iter()
        .all(|(_, t)| t.dtype() == safetensors::Dtype::F64));
    let net = netmorph::model_file::load::<f64>(&child).unwrap();
    assert_eq!(
        netmorph::model_file::from_bytes::<f64>(&to_bytes(&net).unwrap()).unwrap(),
        net
    );
    let x = dir.join("x.npy");
    std::fs::write(&x, netmorph::npy::to_bytes(&[2, 256], &[0.25f32; 512])).unwrap();
    let y = dir.join("y.npy");
    ok(&["predict", s(&child), "--input", s(&x), "--output", s(&y)]);
    assert!(matches!(
        netmorph::npy::read(&y).unwrap().values,
        netmorph::npy::Values::F64(_)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
