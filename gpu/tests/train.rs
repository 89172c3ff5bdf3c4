//! Training on the GPU against the CPU: gradients of every layer kind (all GPU buffers start
//! as NaN, so an element a kernel fails to write fails the test), ten SGD steps with
//! momentum, weight decay, learning-rate multipliers and a schedule, evaluation, and a
//! morphed child trained on.
//!
//! Under `CI=true` a missing adapter fails the tests; elsewhere they print that they skipped.

use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::train::{softmax_cross_entropy, train_step, Schedule, Sgd, SgdConfig};
use netmorph_core::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Pool, Rng, Scalar, Shape,
    Tensor,
};
use netmorph_gpu::testing::supports_or_skip;
use netmorph_gpu::train::Trainer;
use netmorph_gpu::{memory, Gpu, GpuError, Real};

mod common;
use common::{gpu, relative_error, values};

fn kernel(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<f32> {
    let mut kernel = Kernel::zeros(out, inp, k);
    let scale = 1.0 / ((inp * k * k) as f32).sqrt();
    kernel.weight = values::<f32>(rng, kernel.weight.len())
        .iter()
        .map(|v| v * scale)
        .collect();
    kernel.bias = values::<f32>(rng, out).iter().map(|v| v * 0.1).collect();
    kernel
}

fn conv(out: usize, inp: usize, k: usize, stride: usize, pad: usize, rng: &mut Rng) -> Layer<f32> {
    Layer::Conv2d(Conv2d {
        kernel: kernel(out, inp, k, rng),
        stride,
        pad,
    })
}

/// A P-activation with `a` strictly inside (0, 1), so both of its parts matter.
fn act(kind: ActKind, channels: usize, rng: &mut Rng) -> Layer<f32> {
    Layer::Activation(PActivation {
        kind,
        a: (0..channels)
            .map(|_| (0.2 + 0.6 * rng.uniform()) as f32)
            .collect(),
    })
}

/// Every layer kind but parallel blocks: convolutions with padding, stride 2 and 1 x 1,
/// the four activations, overlapping max pooling and average pooling in ceil mode, both
/// with a last window clipped at the border (10 -> 10 -> 5 -> 3 -> 3 -> 2 pixels).
fn conv_net(rng: &mut Rng) -> Network<f32> {
    let ceil = |k, stride| Pool {
        k,
        stride,
        ceil: true,
    };
    let layers = vec![
        conv(4, 3, 3, 1, 1, rng),
        act(ActKind::Relu, 4, rng),
        Layer::MaxPool2d(ceil(3, 2)),
        conv(5, 4, 3, 2, 1, rng),
        act(ActKind::Tanh, 5, rng),
        conv(6, 5, 1, 1, 0, rng),
        act(ActKind::Sigmoid, 6, rng),
        Layer::AvgPool2d(ceil(2, 2)),
        Layer::Flatten,
        Layer::Dense(kernel(7, 6 * 2 * 2, 1, rng)),
        act(ActKind::Identity, 7, rng),
        Layer::Dense(kernel(3, 7, 1, rng)),
    ];
    Network::new(Shape::image(3, 10, 10), layers).expect("a valid network")
}

/// Flat layers with parallel blocks in the middle: three branches, one branch, and a layer
/// beside an empty branch (the identity).
fn parallel_net(rng: &mut Rng) -> Network<f32> {
    let layers = vec![
        Layer::Dense(kernel(6, 5, 1, rng)),
        Layer::ParallelSum(vec![
            vec![
                Layer::Dense(kernel(4, 6, 1, rng)),
                act(ActKind::Tanh, 4, rng),
            ],
            vec![Layer::Dense(kernel(4, 6, 1, rng))],
            vec![
                Layer::Dense(kernel(4, 6, 1, rng)),
                act(ActKind::Sigmoid, 4, rng),
            ],
        ]),
        act(ActKind::Relu, 4, rng),
        Layer::ParallelSum(vec![vec![Layer::Dense(kernel(4, 4, 1, rng))]]),
        Layer::ParallelSum(vec![vec![Layer::Dense(kernel(4, 4, 1, rng))], vec![]]),
        Layer::Dense(kernel(3, 4, 1, rng)),
    ];
    Network::new(Shape::flat(5), layers).expect("a valid network")
}

/// A first layer whose product is split along its long k (600 inputs, one output tile),
/// with an activation after it: the activation runs where the parts are summed.
fn split_net(rng: &mut Rng) -> Network<f32> {
    let layers = vec![
        Layer::Dense(kernel(4, 600, 1, rng)),
        act(ActKind::Tanh, 4, rng),
        Layer::Dense(kernel(3, 4, 1, rng)),
    ];
    Network::new(Shape::flat(600), layers).expect("a valid network")
}

fn batch<T: Scalar>(net: &Network<T>, n: usize, rng: &mut Rng) -> (Tensor<T>, Vec<usize>) {
    let shape = net.input_shape();
    let x = Tensor::new(n, shape, values(rng, n * shape.len())).expect("sizes agree");
    let classes = net.output_shape().len();
    let y = (0..n).map(|i| (i * 7 + 3) % classes).collect();
    (x, y)
}

/// Every parameter tensor of `layers`, depth first.
fn flat<T: Scalar>(layers: &[Layer<T>]) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    for l in layers {
        match l {
            Layer::ParallelSum(bs) => bs.iter().for_each(|b| out.extend(flat(b))),
            Layer::Activation(p) => out.push(p.a.clone()),
            l => {
                if let Some(k) = l.kernel() {
                    out.push(k.weight.clone());
                    out.push(k.bias.clone());
                }
            }
        }
    }
    out
}

/// Tensor by tensor, the norm-wise relative error of `got` against `want` is at most `tol`.
fn assert_close<T: Scalar>(what: &str, got: &[Layer<T>], want: &[Layer<T>], tol: f64) {
    let (got, want) = (flat(got), flat(want));
    assert_eq!(got.len(), want.len(), "{what}: tensors");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let e = relative_error(g, w);
        assert!(
            e <= tol,
            "{what}: tensor {i}: relative error {e:e} > {tol:e}"
        );
    }
}

fn config(momentum: f64, schedule: Schedule) -> SgdConfig {
    SgdConfig {
        lr: 0.05,
        momentum,
        weight_decay: 5e-3,
        bias_lr_mult: 2.0,
        a_lr_mult: 0.5,
        schedule,
    }
}

/// The GPU's gradients in `T` against the CPU's, within `tol` per tensor.
fn gradients_match<T: Real>(gpu: &Gpu, tol: f64) {
    let mut rng = Rng::seed(10);
    for (name, net, n) in [
        ("conv", conv_net(&mut rng).cast::<T>(), 6),
        ("parallel", parallel_net(&mut rng).cast::<T>(), 9),
        ("split", split_net(&mut rng).cast::<T>(), 5),
    ] {
        let (x, y) = batch(&net, n, &mut rng);
        let (logits, trace) = net.forward_trace(&x).expect("forward");
        let (loss, dlogits) = softmax_cross_entropy(&logits, &y).expect("loss");
        let want = net.param_gradients(&trace, &dlogits).expect("backward");
        let sgd = Sgd::new(config(0.9, Schedule::Constant));
        let mut trainer = Trainer::new(gpu, &net, &sgd).expect("upload");
        let got = trainer.gradients(&x, &y).expect("GPU gradients");
        assert_close(name, &got, want.layers(), tol);
        let losses = trainer.losses().expect("losses");
        assert_eq!(losses.len(), 1);
        assert!(
            (losses[0] - loss).abs() <= tol * loss,
            "{name}: loss {} vs {loss}",
            losses[0]
        );
        // No update happened.
        assert_close(
            name,
            trainer.network().expect("download").layers(),
            net.layers(),
            0.0,
        );
    }
}

#[test]
fn gradients_of_every_layer_kind_match_the_cpu() {
    let Some(gpu) = gpu("gradients") else { return };
    gradients_match::<f32>(&gpu, 1e-5);
}

/// Ten steps (and one after a download and upload) in `T` against the CPU's, parameters,
/// velocity and losses within `tol`.
fn steps_match<T: Real>(gpu: &Gpu, tol: f64) {
    let mut rng = Rng::seed(11);
    let schedule = Schedule::Step {
        every: 4,
        gamma: 0.5,
    };
    for (name, net, momentum) in [
        ("conv, momentum", conv_net(&mut rng).cast::<T>(), 0.9),
        (
            "parallel, momentum",
            parallel_net(&mut rng).cast::<T>(),
            0.9,
        ),
        ("conv, plain SGD", conv_net(&mut rng).cast::<T>(), 0.0),
        ("split, momentum", split_net(&mut rng).cast::<T>(), 0.9),
    ] {
        let batches: Vec<_> = (0..10).map(|i| batch(&net, 4 + i % 3, &mut rng)).collect();
        let mut cpu = net.clone();
        let mut sgd = Sgd::new(config(momentum, schedule));
        let mut trainer = Trainer::new(gpu, &net, &sgd).expect("upload");
        let mut want_losses = Vec::new();
        for (x, y) in &batches {
            want_losses.push(train_step(&mut cpu, &mut sgd, x, y).expect("CPU step"));
            trainer.step(x, y).expect("GPU step");
        }
        let losses = trainer.losses().expect("losses");
        assert_eq!(losses.len(), 10);
        for (g, w) in losses.iter().zip(&want_losses) {
            assert!((g - w).abs() <= tol * w, "{name}: loss {g} vs {w}");
        }
        let got = trainer.network().expect("download");
        assert_close(name, got.layers(), cpu.layers(), tol);
        let state = trainer.sgd().expect("optimiser");
        assert_eq!(state.iteration(), 10);
        match (state.velocity(), sgd.velocity()) {
            (Some(g), Some(w)) => assert_close(name, g, w, tol),
            (None, None) => assert_eq!(momentum, 0.0),
            _ => panic!("{name}: velocity kept on one side only"),
        }
        // The downloaded state resumes: one more step on each side still agrees.
        let mut resumed = Trainer::new(gpu, &got, &state).expect("upload again");
        let (x, y) = &batches[0];
        train_step(&mut cpu, &mut sgd, x, y).expect("CPU step");
        resumed.step(x, y).expect("GPU step");
        let again = resumed.network().expect("download");
        assert_close(name, again.layers(), cpu.layers(), tol);
    }
}

#[test]
fn ten_steps_match_the_cpu() {
    let Some(gpu) = gpu("ten steps") else { return };
    steps_match::<f32>(&gpu, 1e-4);
}

/// Evaluation in `T` against the CPU: hits exactly, the loss within `tol`.
fn evaluation_matches<T: Real>(gpu: &Gpu, tol: f64) {
    let mut rng = Rng::seed(12);
    let net = conv_net(&mut rng).cast::<T>();
    let batches: Vec<_> = [8, 8, 5]
        .iter()
        .map(|n| batch(&net, *n, &mut rng))
        .collect();
    let (mut loss, mut hits) = (0.0, 0);
    for (x, y) in &batches {
        let logits = net.forward(x).expect("forward");
        loss += softmax_cross_entropy(&logits, y).expect("loss").0 * x.n as f64;
        let classes = logits.shape.len();
        hits += logits
            .data
            .chunks_exact(classes)
            .zip(y)
            .filter(|(row, y)| {
                let best = row
                    .iter()
                    .enumerate()
                    .fold(
                        (0, T::neg_infinity()),
                        |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
                    );
                best.0 == **y
            })
            .count();
    }
    let sgd = Sgd::new(config(0.9, Schedule::Constant));
    let mut trainer = Trainer::new(gpu, &net, &sgd).expect("upload");
    let (got_loss, got_hits, samples) = trainer
        .evaluate(batches.iter().map(|(x, y)| (x, y.as_slice())))
        .expect("evaluate");
    assert_eq!(samples, 21);
    assert_eq!(got_hits, hits);
    assert!(
        (got_loss - loss).abs() <= tol * loss,
        "{got_loss} vs {loss}"
    );
}

#[test]
fn evaluation_matches_the_cpu() {
    let Some(gpu) = gpu("evaluation") else { return };
    evaluation_matches::<f32>(&gpu, 1e-5);
}

/// The same checks in f64, to f64 precision: the kernels are the f32 ones over another
/// `real`, but exp, log and tanh are computed from arithmetic there (`real_f64.wgsl`).
#[test]
fn in_f64_gradients_steps_and_evaluation_match_the_cpu_to_f64_precision() {
    let Some(gpu) = gpu("f64") else { return };
    if !supports_or_skip::<f64>(&gpu, "f64") {
        return;
    }
    gradients_match::<f64>(&gpu, 1e-12);
    steps_match::<f64>(&gpu, 1e-11);
    evaluation_matches::<f64>(&gpu, 1e-12);
}

#[test]
fn a_morphed_child_trains_on_the_gpu_as_on_the_cpu() {
    let Some(gpu) = gpu("morphed child") else {
        return;
    };
    let mut rng = Rng::seed(13);
    let parent = conv_net(&mut rng);
    let (child, _) = deepen(
        &parent,
        &LayerPath::top(0),
        &DepthParams::new(8, 3, 3),
        &mut rng,
    )
    .expect("deepen");
    let (x, y) = batch(&parent, 6, &mut rng);
    // Function preserved on the GPU too: the child's loss is the parent's.
    let sgd = Sgd::new(config(0.9, Schedule::Constant));
    let (p_loss, _, _) = Trainer::new(&gpu, &parent, &sgd)
        .and_then(|mut t| t.evaluate([(&x, y.as_slice())]))
        .expect("parent on the GPU");
    let mut trainer = Trainer::new(&gpu, &child, &sgd).expect("upload the child");
    let (c_loss, _, _) = trainer.evaluate([(&x, y.as_slice())]).expect("child");
    assert!(
        (c_loss - p_loss).abs() <= 1e-5 * p_loss,
        "{c_loss} vs {p_loss}"
    );
    let mut cpu = child.clone();
    let mut cpu_sgd = sgd.clone();
    for _ in 0..5 {
        train_step(&mut cpu, &mut cpu_sgd, &x, &y).expect("CPU step");
        trainer.step(&x, &y).expect("GPU step");
    }
    let got = trainer.network().expect("download");
    assert_close("child", got.layers(), cpu.layers(), 1e-4);
}

#[test]
fn batches_that_do_not_fit_are_errors() {
    let Some(gpu) = gpu("bad batches") else {
        return;
    };
    let mut rng = Rng::seed(14);
    let net = parallel_net(&mut rng);
    let sgd = Sgd::new(config(0.9, Schedule::Constant));
    let mut trainer = Trainer::new(&gpu, &net, &sgd).expect("upload");
    let (x, mut y) = batch(&net, 4, &mut rng);
    let wrong = Tensor::new(4, Shape::flat(6), values::<f32>(&mut rng, 24)).expect("sizes agree");
    assert!(matches!(trainer.step(&wrong, &y), Err(GpuError::Shape(_))));
    assert!(matches!(trainer.step(&x, &y[..3]), Err(GpuError::Shape(_))));
    y[2] = 3;
    let e = trainer.step(&x, &y).expect_err("label 3 of 3 classes");
    assert!(e.to_string().contains("labels"), "{e}");
    // Nothing was queued by the refused steps.
    assert!(trainer.losses().expect("losses").is_empty());
    let other = conv_net(&mut rng);
    let mut momentum = Sgd::new(config(0.9, Schedule::Constant));
    let (cx, cy) = batch(&other, 2, &mut rng);
    let mut cpu = other.clone();
    train_step(&mut cpu, &mut momentum, &cx, &cy).expect("CPU step");
    assert!(matches!(
        Trainer::new(&gpu, &net, &momentum),
        Err(GpuError::Shape(_))
    ));
}

/// What a step launches for dense -> ReLU -> dense: the first product with the activation
/// in its epilogue, the second, the loss and its metrics (4); the second layer's weight,
/// bias and input gradients, the activation's two backward kernels, the first layer's
/// weight and bias gradients (7); one update of every parameter (1). Unfused, the
/// activation and the five tensors' updates would add five.
#[test]
fn a_step_fuses_the_activation_and_the_updates() {
    let Some(gpu) = gpu("fusion") else { return };
    let mut rng = Rng::seed(15);
    let layers = vec![
        Layer::Dense(kernel(6, 5, 1, &mut rng)),
        act(ActKind::Relu, 6, &mut rng),
        Layer::Dense(kernel(3, 6, 1, &mut rng)),
    ];
    let net = Network::new(Shape::flat(5), layers).expect("a valid network");
    let sgd = Sgd::new(config(0.9, Schedule::Constant));
    let mut trainer = Trainer::new(&gpu, &net, &sgd).expect("upload");
    assert_eq!(trainer.kernels_per_step(8).expect("plan"), 12);
}

/// The memory estimate from shapes alone is what a plan allocates, byte for byte, and the
/// bound on a run holds what the trainer holds.
#[test]
fn plans_allocate_what_the_estimate_says() {
    let Some(gpu) = gpu("memory") else { return };
    let mut rng = Rng::seed(16);
    for (name, net) in [
        ("conv", conv_net(&mut rng)),
        ("parallel", parallel_net(&mut rng)),
    ] {
        let sgd = Sgd::new(config(0.9, Schedule::Constant));
        let mut trainer = Trainer::new(&gpu, &net, &sgd).expect("upload");
        for n in [7, 3] {
            let before = trainer.bytes();
            trainer.kernels_per_step(n).expect("plan");
            assert_eq!(
                Some(trainer.bytes() - before),
                memory::plan_bytes(&net, n),
                "{name}, batch {n}"
            );
        }
        let bound = memory::training_bytes(&net, 7).expect("no overflow");
        assert!(
            trainer.bytes() <= bound,
            "{name}: {} > {bound}",
            trainer.bytes()
        );
    }
}
