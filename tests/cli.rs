//! The `netmorph` command end to end on small slices of real Fashion-MNIST (the demo itself
//! runs in `.ci/run`, in release).

mod common;

use common::{run, temp_dir};

use std::process::Command;

/// `netmorph train` of softmax regression on the first `limit` Fashion-MNIST images into
/// `out`, with `extra` arguments.
fn train_mlp(out: &str, limit: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "train",
        "--arch",
        "mlp()",
        "--data",
        "fashion-mnist",
        "--limit",
        limit,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn unknown_commands_fail_with_usage() {
    let (code, _, err) = run(&["frobnicate"]);
    assert_ne!(code, 0);
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn train_morph_eval_inspect_on_fashion_mnist() {
    let dir = temp_dir("flow");
    let parent = dir.join("parent.safetensors");
    let child = dir.join("child.safetensors");
    let report = dir.join("report.json");
    let p = parent.to_str().unwrap();
    let c = child.to_str().unwrap();
    let (code, out, err) = train_mlp(p, "2000", &["--epochs", "1", "--lr", "0.001", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"test_accuracy\""), "{out}");
    let (code, out, err) = run(&[
        "morph",
        p,
        "--op",
        "depth@1,cl=20,act=tanh",
        "--op",
        "width@1,to=24",
        "--out",
        c,
        "--data",
        "fashion-mnist",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("depth") && out.contains("width"), "{out}");
    let json = std::fs::read_to_string(&report).unwrap();
    assert!(
        json.contains("\"op\":\"depth\"") && json.contains("\"max_rel_deviation\""),
        "{json}"
    );
    // Parent and child both evaluate, and score the same on the test set.
    let eval = |model: &str| {
        let (code, out, err) = run(&["eval", model, "--data", "fashion-mnist"]);
        assert_eq!(code, 0, "eval {model}: {err}");
        // "... accuracy 81.23% ...": the percentage, as printed.
        let acc = out
            .split("accuracy ")
            .nth(1)
            .and_then(|t| t.split_once('%'))
            .map(|(pct, _)| pct.to_string());
        acc.unwrap_or_else(|| panic!("eval {model} printed no accuracy: {out}"))
    };
    let (parent_acc, child_acc) = (eval(p), eval(c));
    assert!(parent_acc.parse::<f64>().is_ok(), "{parent_acc}");
    assert_eq!(parent_acc, child_acc);
    let (code, out, err) = run(&["eval", c, "--data", "fashion-mnist", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["images"], 10000, "{out}");
    let json_acc = v["test_accuracy"].as_f64().unwrap();
    assert_eq!(format!("{:.2}", 100.0 * json_acc), child_acc, "{out}");
    let (code, out, _) = run(&["inspect", c, "--json"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("\"type\":\"activation\"") && out.contains("\"params\":"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_fail_clearly_without_partial_outputs() {
    let dir = temp_dir("bad");
    let model = dir.join("m.safetensors");
    let m = model.to_str().unwrap();
    let out = dir.join("out.safetensors");
    let o = out.to_str().unwrap();
    // A truncated model file.
    std::fs::write(&model, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let (code, _, err) = run(&["morph", m, "--op", "width@0,to=3", "--out", o]);
    assert_ne!(code, 0);
    assert!(
        err.contains("m.safetensors") && err.contains("corrupt"),
        "{err}"
    );
    // An operation naming a missing layer.
    let (code, _, err) = train_mlp(m, "200", &["--epochs", "1"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["morph", m, "--op", "depth@7,cl=20", "--out", o]);
    assert_ne!(code, 0);
    assert!(err.contains("no layer 7"), "{err}");
    let (code, _, err) = run(&["morph", m, "--op", "depth@1", "--out", o]);
    assert_ne!(code, 0);
    assert!(err.contains("missing `cl=`"), "{err}");
    // Missing data.
    let (code, _, err) = run(&["eval", m, "--data", "/nonexistent/data"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("apt-get install -y dataset-fashion-mnist"),
        "{err}"
    );
    // A bad architecture.
    let (code, _, err) = run(&[
        "train",
        "--arch",
        "(4:32)",
        "--data",
        "fashion-mnist",
        "--out",
        o,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("odd kernel"), "{err}");
    // A schedule that does not parse; resuming from a model that is not a checkpoint.
    let train = |extra: &[&str]| train_mlp(o, "200", extra);
    let (code, _, err) = train(&["--schedule", "step:0:0.1"]);
    assert_ne!(code, 0);
    assert!(err.contains("step:EVERY:GAMMA"), "{err}");
    let (code, _, err) = train(&["--resume", m]);
    assert_ne!(code, 0);
    assert!(err.contains("not a checkpoint"), "{err}");
    assert!(!out.exists(), "a failed command left {o}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn grow_writes_model_csv_and_plot() {
    let dir = temp_dir("grow");
    let (model, csv, plot) = (
        dir.join("g.safetensors"),
        dir.join("g.csv"),
        dir.join("g.svg"),
    );
    let (code, out, err) = run(&[
        "grow",
        "--arch",
        "mlp()",
        "--data",
        "fashion-mnist",
        "--limit",
        "1000",
        "--epochs",
        "1",
        "--lr",
        "0.001",
        "--schedule",
        "cosine",
        "--crop",
        "2",
        "--flip",
        "--stage-lr",
        "0.01",
        "--a-lr-mult",
        "10",
        "--stage",
        "1:depth@1,cl=20,act=tanh",
        "--stage",
        "1:width@1,to=30",
        "--out",
        model.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stage 2: width"), "{out}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 4, "{rows}");
    assert!(
        rows.lines().nth(3).unwrap().starts_with("stage 2,3,"),
        "{rows}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 3);
    let (code, _, err) = run(&[
        "grow",
        "--arch",
        "mlp()",
        "--data",
        "fashion-mnist",
        "--stage",
        "x:width@1,to=3",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not a number of epochs"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_reads_and_writes_npy() {
    use netmorph::{Kernel, Layer, Network, Shape};
    let dir = temp_dir("predict");
    let mut k = Kernel::<f32>::zeros(2, 3, 1);
    k.weight = vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.0];
    k.bias = vec![0.25, -0.5];
    let net = Network::new(Shape::flat(3), vec![Layer::Dense(k)]).unwrap();
    let model = dir.join("m.safetensors");
    netmorph::model_file::save(&net, &model).unwrap();
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    std::fs::write(
        &x,
        netmorph::npy::to_bytes(&[2, 3], &[1.0f64, 0.0, 2.0, -1.0, 4.0, 1.0]),
    )
    .unwrap();
    let (code, _, err) = run(&[
        "predict",
        model.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let out = netmorph::npy::read(&y).unwrap();
    assert_eq!(out.shape, vec![2, 2]);
    // An f32 model computes and writes f32, whatever the input's precision.
    assert_eq!(
        out.values,
        netmorph::npy::Values::F32(vec![7.25, -1.5, 10.25, 2.5])
    );
    // A batch of the wrong width.
    std::fs::write(&x, netmorph::npy::to_bytes(&[2, 2], &[0.0f32; 4])).unwrap();
    let (code, _, err) = run(&[
        "predict",
        model.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("does not fit the model"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_writes_a_checkpoint_that_resumes_to_the_uninterrupted_model() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = temp_dir("interrupt");
    let out = dir.join("model.safetensors");
    let ckpt = dir.join("model.ckpt.safetensors");
    let args = |epochs: &str, out: &str| -> Vec<String> {
        [
            "train",
            "--arch",
            "mlp(20)",
            "--data",
            "fashion-mnist",
            "--limit",
            "1000",
            "--batch",
            "10",
            "--threads",
            "1",
            "--seed",
            "4",
            "--json",
            "--epochs",
            epochs,
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_netmorph"))
        .args(args("1000", out.to_str().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first epoch is reported: the run is then mid-training.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"epoch\":1"), "{first}");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("checkpoint written"), "{err}");
    assert!(ckpt.exists(), "{err}");
    assert!(!out.exists(), "an interrupted run must not write the model");
    // "stopped at epoch E, step S": resume and finish epoch E.
    let epoch = err
        .split("stopped at epoch ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .to_string();
    let mut resume = args(&epoch, out.to_str().unwrap());
    resume.extend(["--resume".to_string(), ckpt.to_str().unwrap().to_string()]);
    let resume: Vec<&str> = resume.iter().map(String::as_str).collect();
    let (code, _, err) = run(&resume);
    assert_eq!(code, 0, "{err}");
    let straight = dir.join("straight.safetensors");
    let args = args(&epoch, straight.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&straight).unwrap(),
        "the resumed model differs from the uninterrupted one"
    );
}

#[test]
fn the_input_scale_travels_with_the_model() {
    let dir = temp_dir("scale");
    let model = dir.join("pixels.safetensors");
    let child = dir.join("child.safetensors");
    let m = model.to_str().unwrap();
    let data = ["--data", "fashion-mnist"];
    let extra = [
        "--epochs",
        "1",
        "--lr",
        "0.00001",
        "--input-scale",
        "pixels",
        "--json",
    ];
    let (code, out, err) = train_mlp(m, "500", &extra);
    assert_eq!(code, 0, "{err}");
    let trained = out
        .lines()
        .find_map(|l| l.split("\"test_accuracy\":").nth(1))
        .and_then(|v| v.split([',', '}']).next())
        .map(str::to_string)
        .expect("an epoch line");
    let (code, out, err) = run(&["inspect", m, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"input_scale\":\"pixels\""), "{out}");
    // Evaluation and morphs feed the model what it was trained on: the same accuracy.
    let (code, out, err) = run(&["eval", m, data[0], data[1], "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("\"test_accuracy\":{trained},")),
        "{out} vs {trained}"
    );
    let c = child.to_str().unwrap();
    let (code, _, err) = run(&["morph", m, "--op", "depth@1,cl=20,act=relu", "--out", c]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["eval", c, data[0], data[1], "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("\"test_accuracy\":{trained},")),
        "{out} vs {trained}"
    );
    // A contradicting flag is refused, naming the stored scale.
    let (code, _, err) = run(&["eval", m, data[0], data[1], "--input-scale", "standard"]);
    assert_ne!(code, 0);
    assert!(err.contains("trained on pixels inputs"), "{err}");
    let (code, _, err) = run(&["eval", m, data[0], data[1], "--input-scale", "huge"]);
    assert_ne!(code, 0);
    assert!(err.contains("use `standard` or `pixels`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ops_lists_every_operation_with_an_example() {
    let (code, out, err) = run(&["ops"]);
    assert_eq!(code, 0, "{err}");
    for op in netmorph::ops::OPERATIONS {
        assert!(
            out.contains(&format!("--op \"{}\"", op.example)),
            "{}: {out}",
            op.name
        );
        for key in op.keys {
            assert!(out.contains(key.name), "{}.{}: {out}", op.name, key.name);
        }
    }
    assert!(
        out.contains("Condition (7)") && out.contains("PATH"),
        "{out}"
    );
}

#[test]
#[cfg(feature = "gpu")]
fn train_on_the_gpu_matches_the_cpu_and_bad_adapters_are_named() {
    let (code, _, err) = train_mlp("/dev/null", "100", &["--adapter", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--device gpu"), "{err}");
    let Some(gpu) = common::gpu("cli gpu") else {
        return;
    };
    let (code, _, err) = train_mlp(
        "/dev/null",
        "100",
        &["--device", "gpu", "--adapter", "no such adapter, surely"],
    );
    assert_ne!(code, 0);
    assert!(err.contains(gpu.name()), "the choices are listed: {err}");
    let dir = temp_dir("gpu");
    let mut accuracy = Vec::new();
    for device in ["cpu", "gpu"] {
        let out = dir.join(format!("{device}.safetensors"));
        let args = [
            "--epochs", "2", "--lr", "0.001", "--json", "--device", device,
        ];
        let (code, stdout, err) = train_mlp(out.to_str().unwrap(), "1000", &args);
        assert_eq!(code, 0, "{err}");
        if device == "gpu" {
            assert!(err.contains(gpu.name()), "the adapter is named: {err}");
            assert!(
                err.contains("of GPU memory"),
                "the estimate is printed: {err}"
            );
        }
        let last = stdout.lines().last().unwrap_or_default().to_string();
        let field = last
            .split("\"test_accuracy\":")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse::<f64>().ok());
        accuracy.push(field.unwrap_or_else(|| panic!("no accuracy in {stdout}")));
    }
    // The same steps in f32 on both sides; summation order only moves the last digits.
    assert!(
        (accuracy[0] - accuracy[1]).abs() <= 0.002,
        "cpu {} vs gpu {}",
        accuracy[0],
        accuracy[1]
    );
}
