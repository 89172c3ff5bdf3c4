//! Experiment 5 (the paper's Fig. 3 and section 4.2): how full the embedded filters are.
//!
//! - **Non-zero fraction across channel sizes.** A `3 x 3` convolution `C -> C` with a ReLU
//!   gets a new layer where the parent computes the identity: IdMorph's identity filter
//!   (`idmorph@0,k=3`: `C` non-zeros of `9 C^2`) against NetMorph's decomposition of the
//!   identity through `4C` channels, the paper's practice (`insert@2,cl=4C,k1=3,k2=3`,
//!   Algorithms 1 and 2; condition (7) needs `C_l >= 25 C / 9` here).
//! - **Histograms of the new filters' values**, for the paper's cifar_111 -> cifar_211 morph of
//!   cifar10_quick's first convolution `(5:32) -> (5:32x4)(1:32)`: NetMorph
//!   (`depth@0,cl=128,k1=5,k2=1`, Algorithm 2) against Net2Net (IdMorph's `1 x 1` identity,
//!   then Net2WiderNet of the first layer to 128 channels). The paper reports a normal
//!   distribution for NetMorph and two peaks, at 0 and 0.5, for Net2Net.

use std::fmt::Write as _;
use std::time::Instant;

use netmorph::morph::depth::{DepthParams, InsertParams};
use netmorph::morph::plan::MorphOp;
use netmorph::plot::{svg_with, Axis, Scale, Series};
use netmorph::solve::algorithm::Algorithm;
use netmorph::{ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape};

use super::{fail, load, Data, Failure, Outcome, Output, Record, Training};

/// Sizes of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Channel sizes `C` of the occupancy table.
    pub channels: Vec<usize>,
    /// CIFAR-10 folder, and the epochs cifar10_quick is trained before its first layer is
    /// morphed (0: the histograms use a freshly initialised network, and no data is read).
    pub cifar: Option<(std::path::PathBuf, usize)>,
    /// Training images for that parent (0: all).
    pub limit: usize,
}

impl Settings {
    /// The full run: `C` from 8 to 256, cifar10_quick trained 5 epochs on all of CIFAR-10.
    pub fn full(cifar: std::path::PathBuf) -> Self {
        Self {
            channels: vec![8, 16, 32, 64, 128, 256],
            cifar: Some((cifar, 5)),
            limit: 0,
        }
    }

    /// CI's run: `C` up to 32, an untrained cifar10_quick.
    pub fn quick() -> Self {
        Self {
            channels: vec![8, 16, 32],
            cifar: None,
            limit: 0,
        }
    }
}

/// `conv 3x3 C -> C, ReLU` on `C x 8 x 8` inputs, Gaussian `1/sqrt(fan_in)` weights.
fn conv_relu(c: usize, rng: &mut Rng) -> Outcome<Network<f32>> {
    let mut k = Kernel::zeros(c, c, 3);
    k.weight = rng
        .normals(k.weight.len(), 1.0 / ((9 * c) as f64).sqrt())
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let layers = vec![
        Layer::Conv2d(Conv2d {
            kernel: k,
            stride: 1,
            pad: 1,
        }),
        Layer::Activation(PActivation::plain(ActKind::Relu, c)),
    ];
    Network::new(Shape::image(c, 8, 8), layers).map_err(|e| fail("building the conv layer")(&e))
}

/// The non-zero fraction of the weights of the new layers of `op` on `net`, or why the
/// morph failed.
fn occupancy(net: &Network<f32>, op: &MorphOp, rng: &mut Rng) -> String {
    match op.apply(net, rng) {
        Ok((_, report)) => format!("{:.4}", report.nonzero_fraction),
        Err(e) => format!("fails: {e}"),
    }
}

/// The weights of the layer at `path`.
fn weights(net: &Network<f32>, path: &LayerPath) -> Vec<f64> {
    net.get(path)
        .and_then(Layer::kernel)
        .map(|k| k.weight.iter().map(|v| f64::from(*v)).collect())
        .unwrap_or_default()
}

/// Mean, standard deviation and the fraction of exact zeros.
fn summary(v: &[f64]) -> (f64, f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let zeros = v.iter().filter(|x| **x == 0.0).count() as f64 / n;
    (mean, std, zeros)
}

/// A histogram of `v` over `[-range, range]` in `bins` bins, as (bin centre, fraction).
fn histogram(v: &[f64], range: f64, bins: usize) -> Vec<(f64, f64)> {
    let mut counts = vec![0usize; bins];
    for x in v {
        let b = ((x + range) / (2.0 * range) * bins as f64).floor();
        if b >= 0.0 && (b as usize) < bins {
            counts[b as usize] += 1;
        }
    }
    let n = v.len().max(1) as f64;
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                -range + (i as f64 + 0.5) * 2.0 * range / bins as f64,
                *c as f64 / n,
            )
        })
        .collect()
}

/// Runs the experiment and writes its results.
///
/// # Errors
/// A morph that fails, data that cannot be read, a file that cannot be written.
pub fn run(settings: &Settings, out: &Output) -> Outcome<()> {
    let start = Instant::now();
    let mut rng = Rng::seed(0);
    let mut t = String::from(
        "## Non-zero fraction of the embedded filters\n\n\
         A new layer after `conv 3x3 C -> C, ReLU`, where the parent computes the identity.\n\n\
         | C | IdMorph (`idmorph@0,k=3`) | NetMorph, Algorithm 1 (`insert@2,cl=4C,k1=3,k2=3`) | NetMorph, Algorithm 2 |\n|---|---|---|---|\n",
    );
    for &c in &settings.channels {
        let net = conv_relu(c, &mut rng)?;
        let id = occupancy(
            &net,
            &MorphOp::IdMorph {
                layer: LayerPath::top(0),
                k: 3,
            },
            &mut rng,
        );
        let insert = |algorithm| MorphOp::InsertIdentity {
            at: LayerPath::top(2),
            params: InsertParams {
                depth: DepthParams {
                    algorithm,
                    ..DepthParams::new(4 * c, 3, 3)
                },
                trailing_activation: false,
            },
        };
        let general = occupancy(&net, &insert(Algorithm::General), &mut rng);
        let practical = occupancy(&net, &insert(Algorithm::Practical), &mut rng);
        let _ = writeln!(t, "| {c} | {id} | {general} | {practical} |");
        println!("C = {c}: IdMorph {id}, NetMorph {general} / {practical}");
    }
    // The histograms: cifar10_quick's first convolution.
    let arch =
        netmorph::arch::parse("(5:32)(5:32)(5:64)").map_err(|e| fail("cifar10_quick")(&e))?;
    let mut record = Record::default();
    let (parent, trained): (Network<f32>, String) = match &settings.cifar {
        Some((dir, epochs)) if *epochs > 0 => {
            let (train, test) = load(Data::Cifar10(dir.clone()), settings.limit, 0)?;
            let mut net = arch
                .build(train.x.shape, train.classes, &mut Rng::seed(0))
                .map_err(|e| fail("building cifar10_quick")(&e))?;
            let training = Training {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 0.004,
                batch: 100,
                a_lr_mult: 1.0,
                cosine: true,
            };
            let config = training.config(*epochs, train.y.len(), 0);
            let stats = record.train(
                "cifar10_quick",
                0,
                &mut net,
                (&train, &test),
                &config,
                (0, 0.0),
            )?;
            let acc = stats.last().map_or(0.0, |s| s.test_accuracy);
            (
                net,
                format!(
                    "cifar10_quick trained {epochs} epochs on {} CIFAR-10 images ({}; test accuracy {:.2}%)",
                    train.y.len(),
                    training.describe(),
                    100.0 * acc
                ),
            )
        }
        _ => (
            arch.build(Shape::image(3, 32, 32), 10, &mut Rng::seed(0))
                .map_err(|e| fail("building cifar10_quick")(&e))?,
            "an untrained cifar10_quick (the template's Caffe initialisation)".into(),
        ),
    };
    let first = LayerPath::top(0);
    let netmorph = MorphOp::Depth {
        layer: first.clone(),
        params: DepthParams {
            algorithm: Algorithm::Practical,
            ..DepthParams::new(128, 5, 1)
        },
    };
    let (nm_child, nm_report) = netmorph
        .apply(&parent, &mut rng)
        .map_err(|e| fail("NetMorph 111 -> 211")(&e))?;
    let (id_child, id_report) = MorphOp::IdMorph {
        layer: first.clone(),
        k: 1,
    }
    .apply(&parent, &mut rng)
    .map_err(|e| fail("IdMorph")(&e))?;
    // IdMorph puts the identity right after the convolution (a max pooling, not an
    // activation, follows it in cifar10_quick).
    let identity = id_report
        .new_layers
        .first()
        .map(|n| n.path.clone())
        .ok_or_else(|| Failure("IdMorph reported no new layer".into()))?;
    let (n2n_child, _) = MorphOp::Net2Wider {
        layer: first.clone(),
        width: 128,
        noise: 0.0,
    }
    .apply(&id_child, &mut rng)
    .map_err(|e| fail("Net2WiderNet")(&e))?;
    // NetMorph's child: conv 5x5 (F_l), P-ReLU, conv 1x1 (F_{l+1}); Net2Net's: conv 5x5,
    // ReLU, the 1x1 identity, ReLU.
    let nm_new = weights(&nm_child, &LayerPath::top(2));
    let n2n_new = weights(&n2n_child, &identity);
    let parent_w = weights(&parent, &first);
    let range = nm_new
        .iter()
        .chain(&n2n_new)
        .fold(0.0f64, |m, v| m.max(v.abs()))
        * 1.05;
    let plot = [
        Series {
            name: "NetMorph F_l+1 (1x1)".into(),
            points: histogram(&nm_new, range, 61),
        },
        Series {
            name: "Net2Net identity (1x1)".into(),
            points: histogram(&n2n_new, range, 61),
        },
    ];
    let _ = writeln!(
        t,
        "\n## The new 1x1 layer of cifar_111 -> cifar_211\n\nParent: {trained}. Its first \
         layer's weights: mean {:.4}, std {:.4}. NetMorph residual {:.1e}.\n\n\
         | new layer | values | mean | std | exact zeros | largest |\n|---|---|---|---|---|---|",
        summary(&parent_w).0,
        summary(&parent_w).1,
        nm_report.residual
    );
    for (name, v) in [
        ("NetMorph `F_{l+1}`", &nm_new),
        ("Net2Net identity, widened", &n2n_new),
    ] {
        let (mean, std, zeros) = summary(v);
        let largest = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let _ = writeln!(
            t,
            "| {name} | {} | {mean:.4} | {std:.4} | {:.1}% | {largest:.4} |",
            v.len(),
            100.0 * zeros
        );
    }
    print!("{t}");
    let notes = format!(
        "Occupancy: channel sizes {:?}, random Gaussian `1/sqrt(fan_in)` layers, seed 0. \
         Histograms: {trained}; 61 bins over ±{range:.3}; the fraction axis is logarithmic \
         (empty bins are not drawn).",
        settings.channels
    );
    let run = out.run_notes(&notes, start.elapsed().as_secs_f64());
    let x = Axis {
        label: "weight value",
        scale: Scale::Linear,
    };
    let y = Axis {
        label: "fraction of the layer's weights",
        scale: Scale::Log,
    };
    let svg = svg_with(
        "values of the embedded 1x1 filters (cifar_111 -> 211)",
        (x, y),
        &plot,
    );
    out.write(&record, &svg, &t, &run)
}
