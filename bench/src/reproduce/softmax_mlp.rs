//! Experiment 1 (the paper's Fig. 7, Fashion-MNIST in place of MNIST): softmax regression ->
//! an MLP with 50 hidden units, through a PReLU and through a PTanH, with controls.
//!
//! Arms, per seed, all from the same trained parent (except `scratch`):
//! - `NetMorph PReLU` / `NetMorph PTanH`: `depth@1,cl=50` (layer 0 flattens) through a P-activation at `a = 1`
//!   (eq. 6, 10-11), exact.
//! - `Net2Net PReLU` / `Net2Net PTanH`: Net2DeeperNet then Net2WiderNet. Softmax regression has
//!   no hidden activation to repeat, so the identity `10 x 10` layer goes after a new
//!   P-activation at `a = 1` (the identity, hence idempotent), and Net2WiderNet replicates the
//!   10 hidden units up to 50. Net2Net proper needs an idempotent activation; with a plain TanH
//!   the library's IdMorph refuses, and the table quotes its error.
//! - `fresh PReLU` / `fresh PTanH` (control): the NetMorph child's architecture with every new
//!   layer freshly initialised as from scratch (Gaussian `1/sqrt(fan_in)`, plain activation
//!   `a = 0`): the function is not preserved.
//! - `parent trained on` (control): the parent, the same epochs and schedule as the children.
//! - `scratch PReLU` / `scratch PTanH`: the MLP from scratch for the parent's and the child's
//!   epochs together, on the children's schedule.

use std::fmt::Write as _;
use std::time::Instant;

use netmorph::morph::baseline::{id_morph, net2wider};
use netmorph::morph::depth::DepthParams;
use netmorph::morph::plan::MorphOp;
use netmorph::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape};

use super::{fail, load, percent, preserved, Data, Outcome, Output, Record, Training};

/// Sizes and schedule of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Seeds (one full run per seed).
    pub seeds: Vec<u64>,
    /// Training images (0: all 60,000).
    pub limit: usize,
    /// Test images (0: all 10,000).
    pub test_limit: usize,
    /// Epochs of the parent.
    pub parent_epochs: usize,
    /// Epochs after the morph.
    pub child_epochs: usize,
    /// Hidden units of the child.
    pub hidden: usize,
    /// The parent's training.
    pub parent: Training,
    /// The children's (and the controls') training.
    pub child: Training,
}

impl Settings {
    /// The full run: three seeds, all of Fashion-MNIST, 10 + 20 epochs (the schedule of the
    /// README's Fashion-MNIST example).
    pub fn full() -> Self {
        Self {
            seeds: vec![0, 1, 2],
            limit: 0,
            test_limit: 0,
            parent_epochs: 10,
            child_epochs: 20,
            hidden: 50,
            parent: Training {
                lr: 0.003,
                momentum: 0.9,
                weight_decay: 0.0,
                batch: 100,
                a_lr_mult: 1.0,
                cosine: true,
            },
            child: Training {
                lr: 0.03,
                momentum: 0.9,
                weight_decay: 0.0,
                batch: 100,
                a_lr_mult: 100.0,
                cosine: true,
            },
        }
    }

    /// CI's run: one seed, 3,000 training and 2,000 test images, 2 + 2 epochs.
    pub fn quick() -> Self {
        Self {
            seeds: vec![0],
            limit: 3000,
            test_limit: 2000,
            parent_epochs: 2,
            child_epochs: 2,
            ..Self::full()
        }
    }
}

/// The softmax regression's dense layer (`mlp()` flattens first).
const SOFTMAX: usize = 1;

/// The two hidden activations, as arm suffixes.
const ACTS: [(ActKind, &str); 2] = [(ActKind::Relu, "PReLU"), (ActKind::Tanh, "PTanH")];

/// A Gaussian `1/sqrt(fan_in)` dense layer with zero bias (the arch module's initialisation).
fn dense(out: usize, inp: usize, rng: &mut Rng) -> Layer<f32> {
    let mut k = Kernel::zeros(out, inp, 1);
    k.weight = rng
        .normals(k.weight.len(), 1.0 / (inp as f64).sqrt())
        .into_iter()
        .map(|v| v as f32)
        .collect();
    Layer::Dense(k)
}

/// `flatten, inputs -> hidden (act) -> classes`, freshly initialised, plain activation
/// (`a = 0`).
fn mlp(
    input: Shape,
    hidden: usize,
    classes: usize,
    act: ActKind,
    rng: &mut Rng,
) -> Outcome<Network<f32>> {
    let layers = vec![
        Layer::Flatten,
        dense(hidden, input.len(), rng),
        Layer::Activation(PActivation::plain(act, hidden)),
        dense(classes, hidden, rng),
    ];
    Network::new(input, layers).map_err(|e| fail("building the MLP")(&e))
}

/// Net2Net for softmax regression: `[G, phi^1, I]` (identity after a P-activation at
/// `a = 1`), then Net2WiderNet of the hidden units to `hidden`.
fn net2net(
    parent: &Network<f32>,
    hidden: usize,
    act: ActKind,
    rng: &mut Rng,
) -> Outcome<Network<f32>> {
    let classes = parent.output_shape().c;
    let mut id = Kernel::zeros(classes, classes, 1);
    for c in 0..classes {
        id.weight[c * classes + c] = 1.0;
    }
    let mut layers = parent.layers().to_vec();
    layers.push(Layer::Activation(PActivation {
        kind: act,
        a: vec![1.0; classes],
    }));
    layers.push(Layer::Dense(id));
    let deeper =
        Network::new(parent.input_shape(), layers).map_err(|e| fail("Net2DeeperNet")(&e))?;
    let (wider, _) = net2wider(&deeper, &LayerPath::top(SOFTMAX), hidden, 0.0, rng)
        .map_err(|e| fail("Net2WiderNet")(&e))?;
    Ok(wider)
}

/// What the library's IdMorph says to a plain TanH after the parent's layer.
fn net2net_tanh_refusal(parent: &Network<f32>) -> String {
    let mut layers = parent.layers().to_vec();
    layers.push(Layer::Activation(PActivation::plain(
        ActKind::Tanh,
        parent.output_shape().c,
    )));
    match Network::new(parent.input_shape(), layers) {
        Ok(net) => match id_morph(&net, &LayerPath::top(SOFTMAX), 1) {
            Err(e) => e.to_string(),
            Ok(_) => "IdMorph accepted a plain TanH (unexpected)".into(),
        },
        Err(e) => e.to_string(),
    }
}

/// Runs the experiment and writes its results.
///
/// # Errors
/// Data that cannot be read, a morph or training that fails, a file that cannot be written.
pub fn run(settings: &Settings, out: &Output) -> Outcome<()> {
    let start = Instant::now();
    let (train, test) = load(Data::FashionMnist, settings.limit, settings.test_limit)?;
    let n = train.y.len();
    let (p_epochs, c_epochs) = (settings.parent_epochs, settings.child_epochs);
    let mut record = Record::default();
    // Per seed: (arm, deviation at the morph) and the refusal message.
    let mut deviations: Vec<(String, f64)> = Vec::new();
    let mut refusal = String::new();
    for &seed in &settings.seeds {
        println!("seed {seed}: softmax regression, {p_epochs} epochs");
        let arch = netmorph::arch::parse("mlp()").map_err(|e| fail("mlp()")(&e))?;
        let mut parent: Network<f32> = arch
            .build(train.x.shape, train.classes, &mut Rng::seed(seed))
            .map_err(|e| fail("building the parent")(&e))?;
        let config = settings.parent.config(p_epochs, n, seed);
        let t0 = Instant::now();
        record.train(
            "parent",
            seed,
            &mut parent,
            (&train, &test),
            &config,
            (0, 0.0),
        )?;
        let parent_seconds = t0.elapsed().as_secs_f64();
        let child_config = settings.child.config(c_epochs, n, seed.wrapping_add(1));
        let mut on = parent.clone();
        record.train(
            "parent trained on",
            seed,
            &mut on,
            (&train, &test),
            &child_config,
            (p_epochs, parent_seconds),
        )?;
        refusal = net2net_tanh_refusal(&parent);
        for (act, name) in ACTS {
            let mut rng = Rng::seed(seed ^ 0x6d6c70);
            let t = Instant::now();
            let op = MorphOp::Depth {
                layer: LayerPath::top(SOFTMAX),
                params: DepthParams {
                    activation: act,
                    ..DepthParams::new(settings.hidden, 1, 1)
                },
            };
            let (netmorph, _) = op
                .apply(&parent, &mut rng)
                .map_err(|e| fail(format!("NetMorph {name}"))(&e))?;
            let n2n = net2net(&parent, settings.hidden, act, &mut rng)?;
            let morph_seconds = t.elapsed().as_secs_f64() / 2.0;
            let fresh = mlp(train.x.shape, settings.hidden, train.classes, act, &mut rng)?;
            let arms = [
                (format!("NetMorph {name}"), netmorph, true),
                (format!("Net2Net {name}"), n2n, true),
                (format!("fresh {name}"), fresh, false),
            ];
            for (arm, mut net, exact) in arms {
                if exact {
                    deviations.push((arm.clone(), preserved(&parent, &net, &test.x, &arm)?));
                }
                let at = (p_epochs, parent_seconds + morph_seconds);
                record.point(&arm, seed, &net, &test, at)?;
                record.train(&arm, seed, &mut net, (&train, &test), &child_config, at)?;
            }
            let mut scratch = mlp(train.x.shape, settings.hidden, train.classes, act, &mut rng)?;
            let config = settings
                .child
                .config(p_epochs + c_epochs, n, seed.wrapping_add(2));
            record.train(
                &format!("scratch {name}"),
                seed,
                &mut scratch,
                (&train, &test),
                &config,
                (0, 0.0),
            )?;
        }
    }
    let table = table(settings, &record, &deviations, &refusal);
    print!("{table}");
    let arms = [
        "parent",
        "parent trained on",
        "NetMorph PReLU",
        "Net2Net PReLU",
        "fresh PReLU",
        "scratch PReLU",
        "NetMorph PTanH",
        "Net2Net PTanH",
        "fresh PTanH",
        "scratch PTanH",
    ];
    let plot = record.series(&arms, settings.seeds[0]);
    let notes = format!(
        "Fashion-MNIST ({} training, {} test images), seeds {:?}. Parent: softmax regression, \
         {p_epochs} epochs, {}. Children and controls: {c_epochs} epochs, {}; scratch MLPs: \
         {} epochs on the children's schedule. The plot shows seed {}. Arms are described in \
         `bench/src/reproduce/softmax_mlp.rs`.",
        train.y.len(),
        test.y.len(),
        settings.seeds,
        settings.parent.describe(),
        settings.child.describe(),
        p_epochs + c_epochs,
        settings.seeds[0]
    );
    let run = out.run_notes(&notes, start.elapsed().as_secs_f64());
    let svg = netmorph::plot::svg("Fashion-MNIST: softmax regression -> MLP(50)", &plot);
    out.write(&record, &svg, &table, &run)
}

/// The last accuracy of `arm` in every seed.
fn finals(record: &Record, arm: &str, seeds: &[u64]) -> Vec<f64> {
    seeds
        .iter()
        .filter(|s| record.diverged(arm, **s).is_none())
        .filter_map(|s| record.arm(arm, *s).last().map(|r| r.test_accuracy))
        .collect()
}

/// [`percent`] of the seeds' final accuracies, and how many seeds diverged.
fn final_cell(record: &Record, arm: &str, seeds: &[u64]) -> String {
    let v = finals(record, arm, seeds);
    let diverged = seeds
        .iter()
        .filter(|s| record.diverged(arm, **s).is_some())
        .count();
    match (v.is_empty(), diverged) {
        (_, 0) => percent(&v),
        (true, _) => "diverged (NaN loss) in every seed".into(),
        (false, d) => format!("{} ({d} of {} seeds diverged)", percent(&v), seeds.len()),
    }
}

/// `table.md`.
fn table(
    settings: &Settings,
    record: &Record,
    deviations: &[(String, f64)],
    refusal: &str,
) -> String {
    let seeds = &settings.seeds;
    let total = settings.parent_epochs + settings.child_epochs;
    let mut t = String::from("## Final test accuracy\n\n| arm | epochs (parent + own) | test accuracy |\n|---|---|---|\n");
    let parent = finals(record, "parent", seeds);
    let _ = writeln!(
        t,
        "| parent (softmax regression) | {} | {} |",
        settings.parent_epochs,
        percent(&parent)
    );
    for arm in [
        "parent trained on",
        "NetMorph PReLU",
        "Net2Net PReLU",
        "fresh PReLU",
        "NetMorph PTanH",
        "Net2Net PTanH",
        "fresh PTanH",
    ] {
        let _ = writeln!(
            t,
            "| {arm} | {} + {} | {} |",
            settings.parent_epochs,
            settings.child_epochs,
            final_cell(record, arm, seeds)
        );
    }
    for arm in ["scratch PReLU", "scratch PTanH"] {
        let _ = writeln!(
            t,
            "| {arm} | {total} | {} |",
            final_cell(record, arm, seeds)
        );
    }
    let _ = writeln!(
        t,
        "\nNet2Net with a plain TanH (what the paper's Net2Net would need): IdMorph refuses: \"{refusal}\"\n"
    );
    t.push_str("## Right after the morph (before any training)\n\n| arm | parent | child | max relative output change |\n|---|---|---|---|\n");
    for arm in [
        "NetMorph PReLU",
        "Net2Net PReLU",
        "NetMorph PTanH",
        "Net2Net PTanH",
        "fresh PReLU",
        "fresh PTanH",
    ] {
        let at: Vec<f64> = seeds
            .iter()
            .filter_map(|s| record.arm(arm, *s).first().map(|r| r.test_accuracy))
            .collect();
        let dev = deviations
            .iter()
            .filter(|(a, _)| a == arm)
            .fold(None, |m: Option<f64>, (_, d)| {
                Some(m.map_or(*d, |m| m.max(*d)))
            });
        let _ = writeln!(
            t,
            "| {arm} | {} | {} | {} |",
            percent(&parent),
            percent(&at),
            dev.map_or("not preserved".into(), |d| format!("{d:.1e}"))
        );
    }
    t.push_str(&time_to_accuracy(settings, record));
    t
}

/// Experiment 6 for this run: wall time until the NetMorph child first reaches the final
/// accuracy of the same architecture trained from scratch.
fn time_to_accuracy(settings: &Settings, record: &Record) -> String {
    let mut t = String::from(
        "\n## Time to the scratch MLP's final accuracy\n\n| child | scratch final | scratch time | NetMorph reaches it at | NetMorph time (with the parent's / the child's alone) | speed-up (child alone) |\n|---|---|---|---|---|---|\n",
    );
    for (_, name) in ACTS {
        for &seed in &settings.seeds {
            let scratch = record.arm(&format!("scratch {name}"), seed);
            let child = record.arm(&format!("NetMorph {name}"), seed);
            let (Some(last), Some(first)) = (scratch.last(), child.first()) else {
                continue;
            };
            let hit = child.iter().find(|r| r.test_accuracy >= last.test_accuracy);
            let row = match hit {
                Some(r) => {
                    let alone = r.seconds - first.seconds;
                    format!(
                        "epoch {} | {:.1} s / {:.1} s | {:.1}x",
                        r.epoch,
                        r.seconds,
                        alone,
                        last.seconds / alone.max(1e-9)
                    )
                }
                None => "never | - | -".into(),
            };
            let _ = writeln!(
                t,
                "| NetMorph {name} (seed {seed}) | {:.2}% | {:.1} s | {row} |",
                100.0 * last.test_accuracy,
                last.seconds
            );
        }
    }
    t
}
