//! Training throughput of netmorph on generated data, the netmorph half of
//! `bench/scripts/train_vs_torch.py`:
//!
//! ```text
//! cargo run --release -p netmorph-bench --example train_throughput -- cifar10_quick 100 2 30
//! cargo run --release -p netmorph-bench --example train_throughput -- cifar_222 100 0 30 gpu
//! ```
//!
//! Arguments: model (`cifar10_quick`, `cifar_222` or `mlp`: 784-50-10 with ReLU), batch,
//! threads (CPU), timed steps, device (`cpu`, default; `gpu`, or `gpu:ADAPTER` with an index
//! or a part of the adapter's name). Three untimed warm-up steps come first. Prints one line
//! with the mean throughput (`images_per_second`) and the throughput of the median step,
//! which shrugs off a noisy neighbour. On a GPU, steps are queued without waiting (as
//! `netmorph train --device gpu` does), so only the mean is measured: the clock stops when
//! the last step's loss has come back, and the median field repeats the mean.
use std::time::Instant;

use netmorph::arch::parse;
use netmorph::device::{AdapterChoice, Gpu, Trainer};
use netmorph::fit::step;
use netmorph_core::train::{Schedule, Sgd, SgdConfig};
use netmorph_core::{Rng, Shape, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let model = arg(0, "cifar10_quick");
    let batch: usize = arg(1, "100").parse()?;
    let threads: usize = arg(2, "2").parse()?;
    let steps: usize = arg(3, "30").parse::<usize>()?.max(1);
    let device = arg(4, "cpu");
    let (spec, input) = match model.as_str() {
        "cifar10_quick" => ("(5:32)(5:32)(5:64)", Shape::image(3, 32, 32)),
        "cifar_222" => (
            "(5:32x4)(1:32)(5:32x4)(1:32)(5:64x4)(1:64)",
            Shape::image(3, 32, 32),
        ),
        "mlp" => ("mlp(50)", Shape::image(1, 28, 28)),
        other => {
            return Err(
                format!("unknown model {other:?}: use cifar10_quick, cifar_222 or mlp").into(),
            )
        }
    };
    // As the `netmorph` program does.
    netmorph::fit::retain_freed_memory();
    let mut rng = Rng::seed(7);
    let mut net = parse(spec)?.build::<f32>(input, 10, &mut rng)?;
    let mut sgd = Sgd::new(SgdConfig {
        lr: 0.001,
        momentum: 0.9,
        weight_decay: 0.004,
        bias_lr_mult: 2.0,
        a_lr_mult: 1.0,
        schedule: Schedule::Constant,
    });
    let x = Tensor::<f32>::random(batch, input, &mut rng);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    if let Some(adapter) = device.strip_prefix("gpu") {
        let choice: AdapterChoice = adapter.trim_start_matches(':').parse()?;
        let gpu = Gpu::open(&choice)?;
        let mut trainer = Trainer::new(&gpu, &net, &sgd)?;
        for _ in 0..3 {
            trainer.step(&x, &labels)?;
        }
        trainer.losses()?;
        let start = Instant::now();
        for _ in 0..steps {
            trainer.step(&x, &labels)?;
        }
        let losses = trainer.losses()?;
        let rate = (steps * batch) as f64 / start.elapsed().as_secs_f64();
        if losses.iter().any(|l| !l.is_finite()) {
            return Err("the loss became NaN".into());
        }
        println!(
            "model={model} batch={batch} device=gpu adapter={} kernels_per_step={} steps={steps} images_per_second={rate:.1} median_step_images_per_second={rate:.1}",
            // One whitespace-free field, as the scripts split on whitespace.
            gpu.name().replace(char::is_whitespace, "_"),
            trainer.kernels_per_step(batch)?
        );
        return Ok(());
    }
    for _ in 0..3 {
        step(&mut net, &mut sgd, &x, &labels, threads)?;
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        step(&mut net, &mut sgd, &x, &labels, threads)?;
        times.push(start.elapsed().as_secs_f64());
    }
    let total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "model={model} batch={batch} threads={threads} steps={steps} images_per_second={:.1} median_step_images_per_second={:.1}",
        (steps * batch) as f64 / total,
        batch as f64 / median
    );
    Ok(())
}
