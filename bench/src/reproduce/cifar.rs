//! Lines of growth on CIFAR-10 ([`Sequence`]): a parent trained, then morphed step by step,
//! NetMorph against Net2Net at every step, every architecture from scratch for the same total
//! epochs, and the controls.
//!
//! - Experiment 2 (the paper's Fig. 8 and Table 1, [`Sequence::depth`]): cifar_111
//!   (cifar10_quick) -> cifar_211 -> cifar_222 -> cifar_2222 (-> cifar_3333).
//! - Experiment 3 (Fig. 9, [`Sequence::kernel_width`], [`Sequence::tanh_width`]): cifar_base ->
//!   cifar_ksize -> cifar_width, and width morphing from a TanH parent.
//!
//! Experiment 2's morphs, on Caffe's cifar10_quick template (`src/arch.rs`):
//! - 111 -> 211: the first convolution `(5:32)` becomes `(5:128)(1:32)`;
//! - 211 -> 222: the same for the second `(5:32)` and the third `(5:64) -> (5:256)(1:64)`;
//! - 222 -> 2222: a fourth subnet `(5:256)(1:64)` where the parent computes the identity,
//!   after the third subnet's activation (a trailing P-activation keeps the template's ReLU);
//! - 2222 -> 3333: every subnet's `1 x 1` convolution `(1:C)` becomes `(3:4C)(1:C)`.
//!
//! NetMorph: depth morphs with Algorithm 2 (`depth@i,cl=..,k1=..,k2=1`) and identity
//! insertion (`insert@..`). Net2Net: the same new layers from identity filters
//! (Net2DeeperNet) widened by replicating channels (Net2WiderNet). Net2DeeperNet repeats the
//! activation after the new identity, which needs an idempotent activation; the
//! P-activations earlier steps inserted have trained away from `a = 1` and are not, so here
//! every identity follows a new P-activation at `a = 1` (the identity function), exactly as
//! NetMorph places its P-activations. Both children are checked against the target
//! architecture built from its spec (`arch::parse`), layer by layer.
//!
//! Controls (issue 11, item 4): `fresh` is the NetMorph child with its new layers freshly
//! initialised (the template's Gaussian weights, zero bias, plain activations), so it does
//! not compute the parent's function; `parent trained on` continues the parent.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use netmorph::data::Dataset;
use netmorph::morph::baseline::net2wider;
use netmorph::morph::depth::{DepthParams, InsertParams};
use netmorph::morph::plan::MorphOp;
use netmorph::morph::MorphReport;
use netmorph::solve::algorithm::Algorithm;
use netmorph::{ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng};

use super::{fail, load, percent, preserved, probes, Data, Outcome, Output, Record, Training};

/// One step of the growth sequence.
struct Step {
    /// The child's name (`211`, ...).
    name: &'static str,
    /// Its architecture spec.
    spec: &'static str,
    /// NetMorph's operations on the parent, in order.
    netmorph: Vec<MorphOp>,
    /// Net2Net's edits on the parent, in order (`None`: Net2Net has no such morph, and its
    /// line continues from NetMorph's child).
    net2net: Option<Vec<Edit>>,
}

/// A line of growth: a parent architecture and the steps that grow it.
pub struct Sequence {
    /// The parent's name (`111`, `base`).
    parent: &'static str,
    /// Its spec.
    spec: &'static str,
    /// The hidden activation: the template's ReLU, or TanH (every activation replaced).
    act: ActKind,
    /// The steps.
    steps: Vec<Step>,
    /// The plot's title.
    title: &'static str,
}

/// A Net2Net edit: Net2DeeperNet's identity (with a P-activation at `a = 1` beside it) or
/// Net2WiderNet.
enum Edit {
    /// An identity convolution `k x k` at top-level index `at`, after a new P-ReLU at
    /// `a = 1` (where the new layer follows a convolution directly) or before one
    /// (`act_after`: where it follows an activation already).
    Identity {
        at: usize,
        k: usize,
        act_after: bool,
    },
    /// Net2WiderNet of the convolution at `layer` to `width` channels.
    Wider { layer: usize, width: usize },
}

/// `depth@i,cl=..,k1=..,k2=1` with Algorithm 2 (the paper's choice for these morphs).
fn depth(i: usize, c_l: usize, k1: usize) -> MorphOp {
    MorphOp::Depth {
        layer: LayerPath::top(i),
        params: DepthParams {
            algorithm: Algorithm::Practical,
            ..DepthParams::new(c_l, k1, 1)
        },
    }
}

impl Sequence {
    /// Experiment 2: cifar_111 -> 211 -> 222 -> 2222 -> 3333, layer indices as the template
    /// lays them out (see the tests).
    pub fn depth() -> Self {
        Self {
            parent: "111",
            spec: "(5:32)(5:32)(5:64)",
            act: ActKind::Relu,
            steps: depth_steps(),
            title: "CIFAR-10: cifar_111 -> 211 -> 222 -> ...",
        }
    }

    /// Experiment 3: cifar_base -> cifar_ksize (every subnet's `1 x 1` convolution grown to
    /// `3 x 3`, NetMorph only: Net2Net has no kernel morph) -> cifar_width (every subnet's
    /// first convolution doubled, NetMorph's width morph against Net2WiderNet).
    pub fn kernel_width() -> Self {
        // cifar_base: 0 conv 5:32, 1 relu, 2 conv 1:32, 3 max pool, 4 relu, 5 conv 5:32,
        // 6 relu, 7 conv 1:32, 8 relu, 9 avg pool, 10 conv 5:64, 11 relu, 12 conv 1:64, ...
        let kernel = |i| MorphOp::Kernel {
            layer: LayerPath::top(i),
            k: 3,
        };
        Self {
            parent: "base",
            spec: BASE,
            act: ActKind::Relu,
            steps: vec![
                Step {
                    name: "ksize",
                    spec: "[(5:32)(3:32)]x2[(5:64)(3:64)]",
                    netmorph: vec![kernel(12), kernel(7), kernel(2)],
                    net2net: None,
                },
                width_step("width", "[(5:64)(3:32)]x2[(5:128)(3:64)]"),
            ],
            title: "CIFAR-10: cifar_base -> ksize -> width",
        }
    }

    /// Experiment 3's second part: width morphing straight from a TanH parent (cifar_base
    /// with every activation a TanH).
    pub fn tanh_width() -> Self {
        Self {
            parent: "base-tanh",
            spec: BASE,
            act: ActKind::Tanh,
            steps: vec![width_step("width-tanh", "[(5:64)(1:32)]x2[(5:128)(1:64)]")],
            title: "CIFAR-10, TanH: cifar_base -> width",
        }
    }

    /// The names of the first `n` steps.
    fn names(&self, n: usize) -> Vec<&'static str> {
        self.steps.iter().take(n).map(|s| s.name).collect()
    }
}

/// cifar_base (Table 1).
const BASE: &str = "[(5:32)(1:32)]x2[(5:64)(1:64)]";

/// Every subnet's first convolution of cifar_ksize (or cifar_base) doubled: cifar_width (or
/// its `1 x 1` version), `spec`.
fn width_step(name: &'static str, spec: &'static str) -> Step {
    let widths = [(10, 128), (5, 64), (0, 64)];
    Step {
        name,
        spec,
        netmorph: widths
            .iter()
            .map(|&(i, width)| MorphOp::Width {
                layer: LayerPath::top(i),
                width,
            })
            .collect(),
        net2net: Some(
            widths
                .iter()
                .map(|&(layer, width)| Edit::Wider { layer, width })
                .collect(),
        ),
    }
}

/// Experiment 2's steps.
fn depth_steps() -> Vec<Step> {
    vec![
        Step {
            name: "211",
            spec: "(5:32x4)(1:32)(5:32)(5:64)",
            netmorph: vec![depth(0, 128, 5)],
            net2net: Some(vec![
                Edit::Identity {
                    at: 1,
                    k: 1,
                    act_after: false,
                },
                Edit::Wider {
                    layer: 0,
                    width: 128,
                },
            ]),
        },
        Step {
            name: "222",
            spec: "[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]",
            // cifar_211: 0 conv 5:128, 1 act, 2 conv 1:32, 3 max pool, 4 relu, 5 conv 5:32,
            // 6 relu, 7 avg pool, 8 conv 5:64, ...: the later layer first.
            netmorph: vec![depth(8, 256, 5), depth(5, 128, 5)],
            net2net: Some(vec![
                Edit::Identity {
                    at: 9,
                    k: 1,
                    act_after: false,
                },
                Edit::Wider {
                    layer: 8,
                    width: 256,
                },
                Edit::Identity {
                    at: 6,
                    k: 1,
                    act_after: false,
                },
                Edit::Wider {
                    layer: 5,
                    width: 128,
                },
            ]),
        },
        Step {
            name: "2222",
            spec: "[(5:32x4)(1:32)]x2[(5:64x4)(1:64)]x2",
            // cifar_222: ... 10 conv 5:256, 11 act, 12 conv 1:64, 13 relu, 14 avg pool.
            netmorph: vec![MorphOp::InsertIdentity {
                at: LayerPath::top(14),
                params: InsertParams {
                    depth: DepthParams {
                        algorithm: Algorithm::Practical,
                        ..DepthParams::new(256, 5, 1)
                    },
                    trailing_activation: true,
                },
            }],
            net2net: Some(vec![
                Edit::Identity {
                    at: 14,
                    k: 1,
                    act_after: true,
                },
                Edit::Identity {
                    at: 14,
                    k: 5,
                    act_after: true,
                },
                Edit::Wider {
                    layer: 14,
                    width: 256,
                },
            ]),
        },
        Step {
            name: "3333",
            spec: "[(5:32x4)(3:32x4)(1:32)]x2[(5:64x4)(3:64x4)(1:64)]x2",
            // cifar_2222: the 1x1 convolutions at 2, 7, 12 and 16.
            netmorph: vec![
                depth(16, 256, 3),
                depth(12, 256, 3),
                depth(7, 128, 3),
                depth(2, 128, 3),
            ],
            net2net: Some(vec![
                Edit::Identity {
                    at: 16,
                    k: 3,
                    act_after: true,
                },
                Edit::Identity {
                    at: 12,
                    k: 3,
                    act_after: true,
                },
                Edit::Identity {
                    at: 7,
                    k: 3,
                    act_after: true,
                },
                Edit::Identity {
                    at: 2,
                    k: 3,
                    act_after: true,
                },
            ]),
        },
    ]
}

/// Applies Net2Net's edits.
fn net2net(parent: &Network<f32>, edits: &[Edit], rng: &mut Rng) -> Outcome<Network<f32>> {
    let mut net = parent.clone();
    for edit in edits {
        net = match *edit {
            Edit::Identity { at, k, act_after } => {
                let c = net
                    .shape_before(&LayerPath::top(at))
                    .ok_or_else(|| fail("Net2DeeperNet")(&format!("no layer {at}")))?
                    .c;
                let mut id = Kernel::zeros(c, c, k);
                for ch in 0..c {
                    let p = id.at(ch, ch, k / 2, k / 2);
                    id.weight[p] = 1.0;
                }
                let mut layers = net.into_layers();
                let mut new = vec![
                    Layer::Activation(PActivation {
                        kind: ActKind::Relu,
                        a: vec![1.0; c],
                    }),
                    Layer::Conv2d(Conv2d {
                        kernel: id,
                        stride: 1,
                        pad: k / 2,
                    }),
                ];
                if act_after {
                    new.reverse();
                }
                layers.splice(at..at, new);
                Network::new(parent.input_shape(), layers).map_err(|e| fail("Net2DeeperNet")(&e))?
            }
            Edit::Wider { layer, width } => {
                net2wider(&net, &LayerPath::top(layer), width, 0.0, rng)
                    .map_err(|e| fail("Net2WiderNet")(&e))?
                    .0
            }
        };
    }
    Ok(net)
}

/// `kind (out, inp, k)` of every layer: what an architecture check compares (P-activation
/// values and weights aside).
fn structure(net: &Network<f32>) -> Vec<String> {
    net.layers()
        .iter()
        .map(|l| match (l, l.kernel()) {
            (Layer::Activation(a), _) => format!("activation {:?} ({})", a.kind, a.a.len()),
            (_, Some(k)) => format!("{} ({}, {}, {})", l.name(), k.out, k.inp, k.k),
            _ => l.name().to_string(),
        })
        .collect()
}

/// Fails unless `child` has the layers `spec` builds.
fn check_architecture(
    child: &Network<f32>,
    spec: &str,
    act: ActKind,
    arm: &str,
    train: &Dataset,
) -> Outcome<()> {
    let reference = build(spec, act, train, 0)?;
    let (a, b) = (structure(child), structure(&reference));
    if a == b {
        Ok(())
    } else {
        Err(fail(format!("{arm}: the child is not {spec}"))(&format!(
            "{a:?} vs {b:?}"
        )))
    }
}

/// The network `spec` describes, freshly initialised from `seed`.
///
/// Weights are He-initialised (Gaussian, `sqrt(2 / fan_in)`; `sqrt(1 / fan_in)` for the class
/// layer), biases zero. The template's own initialisation (Caffe's cifar10_quick: `1e-4`
/// for the first convolution, `0.01` for the others) stalls the deeper networks at chance
/// when they are trained from scratch on standardised inputs (cifar_222 stayed at 10% for
/// its first epochs even on Caffe's 0-255 input scale): a scratch baseline that cannot
/// train would flatter the morphs.
fn build(spec: &str, act: ActKind, train: &Dataset, seed: u64) -> Outcome<Network<f32>> {
    let mut rng = Rng::seed(seed);
    let net = netmorph::arch::parse(spec)
        .map_err(|e| fail(spec)(&e))?
        .build(train.x.shape, train.classes, &mut rng)
        .map_err(|e| fail(spec)(&e))?;
    let last = net.layers().len().saturating_sub(1);
    let layers = net
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            // The template's ReLUs become plain `act`s.
            Layer::Activation(a) => Layer::Activation(PActivation::plain(act, a.a.len())),
            l => {
                let mut l = l.clone();
                if let Some(k) = l.kernel_mut() {
                    let gain = if i == last { 1.0 } else { 2.0 };
                    let std = (gain / (k.inp * k.k * k.k) as f64).sqrt();
                    k.weight = rng
                        .normals(k.weight.len(), std)
                        .into_iter()
                        .map(|v| v as f32)
                        .collect();
                    k.bias.iter_mut().for_each(|b| *b = 0.0);
                }
                l
            }
        })
        .collect();
    Network::new(net.input_shape(), layers).map_err(|e| fail(spec)(&e))
}

/// `child` with the layers the reports name as new replaced by `fresh`'s (the same
/// architecture, freshly initialised), and every activation among them plain (`a = 0`).
fn refresh(
    child: &Network<f32>,
    reports: &[MorphReport],
    fresh: &Network<f32>,
) -> Outcome<Network<f32>> {
    let mut layers = child.layers().to_vec();
    for r in reports {
        for n in &r.new_layers {
            let i = n.path.0[0];
            layers[i] = match &fresh.layers()[i] {
                Layer::Activation(a) => Layer::Activation(PActivation::plain(a.kind, a.a.len())),
                l => l.clone(),
            };
        }
    }
    Network::new(child.input_shape(), layers).map_err(|e| fail("fresh control")(&e))
}

/// Sizes and schedule of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// CIFAR-10 folder.
    pub cifar: PathBuf,
    /// Training images (0: all 50,000).
    pub limit: usize,
    /// Test images (0: all 10,000).
    pub test_limit: usize,
    /// The steps to run (2: up to 222, 3: 2222, 4: 3333).
    pub steps: usize,
    /// Epochs of the parent.
    pub parent_epochs: usize,
    /// Epochs after each morph.
    pub step_epochs: usize,
    /// The parent's training.
    pub parent: Training,
    /// Every child's (and control's) training.
    pub child: Training,
    /// Seed.
    pub seed: u64,
    /// More seeds the parent alone is trained with, for its spread.
    pub parent_seeds: Vec<u64>,
}

impl Settings {
    /// The full run, sized to fit about 90 minutes on 2 cores: 20,000 training images (every
    /// class alike), all 10,000 test images, up to cifar_2222 (about twice cifar_222's time
    /// per image). cifar_3333 takes about 6x cifar_222's per image and does not fit: `steps`
    /// reaches it.
    pub fn full(cifar: PathBuf) -> Self {
        Self {
            cifar,
            limit: 20_000,
            test_limit: 0,
            steps: 3,
            parent_epochs: 10,
            step_epochs: 5,
            parent: Training {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 0.004,
                batch: 100,
                a_lr_mult: 10.0,
                cosine: true,
            },
            child: Training {
                lr: 0.005,
                momentum: 0.9,
                weight_decay: 0.004,
                batch: 100,
                a_lr_mult: 10.0,
                cosine: true,
            },
            seed: 0,
            parent_seeds: vec![1, 2],
        }
    }

    /// CI's run: 500 training and 500 test images, every step, one epoch each.
    pub fn quick(cifar: PathBuf) -> Self {
        Self {
            limit: 500,
            test_limit: 500,
            steps: 4,
            parent_epochs: 1,
            step_epochs: 1,
            parent_seeds: Vec::new(),
            ..Self::full(cifar)
        }
    }

    /// Trains the parent alone with `extra` more seeds (1, 2, ...) for its spread; `None`
    /// keeps the run's default.
    pub fn set_parent_seeds(&mut self, extra: Option<u64>) {
        if let Some(extra) = extra {
            self.parent_seeds = (1..=extra).map(|i| self.seed.wrapping_add(i)).collect();
        }
    }
}

/// Runs the experiment and writes its results.
///
/// # Errors
/// Data that cannot be read, a morph, check or training that fails, a file that cannot be
/// written.
pub fn run(settings: &Settings, seq: &Sequence, out: &Output) -> Outcome<()> {
    let start = Instant::now();
    let (train, test) = load(
        Data::Cifar10(settings.cifar.clone()),
        settings.limit,
        settings.test_limit,
    )?;
    let n = train.y.len();
    let seed = settings.seed;
    let mut record = Record::default();
    let mut rng = Rng::seed(seed ^ 0xdee9);
    let mut parent = build(seq.spec, seq.act, &train, seed)?;
    println!("cifar_{}: {} epochs", seq.parent, settings.parent_epochs);
    let config = settings.parent.config(settings.parent_epochs, n, seed);
    let t0 = Instant::now();
    record.train(
        seq.parent,
        seed,
        &mut parent,
        (&train, &test),
        &config,
        (0, 0.0),
    )?;
    let mut seconds = t0.elapsed().as_secs_f64();
    let mut epoch = settings.parent_epochs;
    // The parent's spread over seeds.
    let mut parents: Vec<f64> = record
        .arm(seq.parent, seed)
        .last()
        .map(|r| r.test_accuracy)
        .into_iter()
        .collect();
    for &other in &settings.parent_seeds {
        let mut net = build(seq.spec, seq.act, &train, other)?;
        let config = settings.parent.config(settings.parent_epochs, n, other);
        let stats = record.train(
            seq.parent,
            other,
            &mut net,
            (&train, &test),
            &config,
            (0, 0.0),
        )?;
        parents.extend(stats.last().map(|s| s.test_accuracy));
    }
    // The two lines of growth: NetMorph's and Net2Net's children, each from its own parent.
    let (mut nm, mut n2n) = (parent.clone(), parent.clone());
    let mut n2n_seconds = seconds;
    let ctx = Context {
        settings,
        seq,
        out,
        seed,
        parents,
        sizes: (train.y.len(), test.y.len()),
        start,
    };
    let steps = settings.steps.min(seq.steps.len());
    let mut after = Vec::new();
    let mut controls = Vec::new();
    // The arm whose network the next step morphs.
    let mut prev = seq.parent.to_string();
    let x = probes(&test, 200);
    for (s, step) in seq.steps.iter().take(steps).enumerate() {
        let config =
            settings
                .child
                .config(settings.step_epochs, n, seed.wrapping_add(1 + s as u64));
        let tm = Instant::now();
        let mut reports = Vec::new();
        let mut child = nm.clone();
        for op in &step.netmorph {
            let (next, r) = op
                .apply(&child, &mut rng)
                .map_err(|e| fail(format!("NetMorph {}", step.name))(&e))?;
            reports.push(r);
            child = next;
        }
        let nm_morph = tm.elapsed().as_secs_f64();
        check_architecture(&child, step.spec, seq.act, "NetMorph", &train)?;
        let dev_nm = preserved(&nm, &child, &x, &format!("NetMorph {}", step.name))?;
        let arm_nm = format!("NetMorph {}", step.name);
        let arm_fresh = format!("fresh {}", step.name);
        let arm_on = format!("{prev} trained on");
        let parent_acc = record
            .arm(&prev, seed)
            .last()
            .map_or(0.0, |r| r.test_accuracy);
        let a_nm = record.point(&arm_nm, seed, &child, &test, (epoch, seconds + nm_morph))?;
        // Net2Net's child, where Net2Net has the morph.
        let mut n2n_arm = None;
        if let Some(edits) = &step.net2net {
            let tn = Instant::now();
            let n2n_child = net2net(&n2n, edits, &mut rng)?;
            let n2n_morph = tn.elapsed().as_secs_f64();
            check_architecture(&n2n_child, step.spec, seq.act, "Net2Net", &train)?;
            let dev = preserved(&n2n, &n2n_child, &x, &format!("Net2Net {}", step.name))?;
            let arm = format!("Net2Net {}", step.name);
            let at = (epoch, n2n_seconds + n2n_morph);
            let acc = record.point(&arm, seed, &n2n_child, &test, at)?;
            n2n_arm = Some((arm, n2n_child, at, acc, dev));
        }
        let fresh = refresh(
            &child,
            &reports,
            &build(
                step.spec,
                seq.act,
                &train,
                seed.wrapping_add(100 + s as u64),
            )?,
        )?;
        let a_fresh = record.point(&arm_fresh, seed, &fresh, &test, (epoch, seconds + nm_morph))?;
        after.push((
            step.name,
            parent_acc,
            a_nm,
            n2n_arm.as_ref().map(|a| (a.3, a.4)),
            a_fresh,
            reports
                .iter()
                .map(|r| r.nonzero_fraction)
                .fold(1.0f64, f64::min),
            dev_nm,
        ));
        let mut on = nm.clone();
        record.train(
            &arm_on,
            seed,
            &mut on,
            (&train, &test),
            &config,
            (epoch, seconds),
        )?;
        let mut fresh = fresh;
        let at = (epoch, seconds + nm_morph);
        record.train(&arm_fresh, seed, &mut fresh, (&train, &test), &config, at)?;
        controls.push((arm_on, arm_fresh));
        record.train(&arm_nm, seed, &mut child, (&train, &test), &config, at)?;
        seconds = record
            .arm(&arm_nm, seed)
            .last()
            .map_or(seconds, |r| r.seconds);
        n2n = match n2n_arm {
            Some((arm, mut net, at, _, _)) => {
                record.train(&arm, seed, &mut net, (&train, &test), &config, at)?;
                n2n_seconds = record
                    .arm(&arm, seed)
                    .last()
                    .map_or(n2n_seconds, |r| r.seconds);
                net
            }
            // Without a Net2Net morph its line takes NetMorph's child.
            None => {
                n2n_seconds = seconds;
                child.clone()
            }
        };
        epoch += settings.step_epochs;
        nm = child;
        prev = arm_nm;
        // The same architecture from scratch, for the same total epochs.
        let mut scratch = build(
            step.spec,
            seq.act,
            &train,
            seed.wrapping_add(200 + s as u64),
        )?;
        let config = settings
            .child
            .config(epoch, n, seed.wrapping_add(300 + s as u64));
        record.train(
            &format!("scratch {}", step.name),
            seed,
            &mut scratch,
            (&train, &test),
            &config,
            (0, 0.0),
        )?;
        if s + 1 < steps {
            publish(&ctx, &record, &after, &controls)?;
        }
    }
    publish(&ctx, &record, &after, &controls)
}

/// One step's numbers right after its morph: its name, the parent's accuracy, NetMorph's,
/// Net2Net's (with its output change), the fresh control's, the smallest non-zero fraction of
/// NetMorph's new filters, and NetMorph's output change.
type AfterMorph = (&'static str, f64, f64, Option<(f64, f64)>, f64, f64, f64);

/// What [`publish`] needs besides the record.
struct Context<'a> {
    settings: &'a Settings,
    seq: &'a Sequence,
    out: &'a Output,
    seed: u64,
    parents: Vec<f64>,
    sizes: (usize, usize),
    start: Instant,
}

/// Writes the results of the steps done so far (`controls` has one entry per step): after
/// every step, so that a run stopped early keeps what it finished.
fn publish(
    ctx: &Context<'_>,
    record: &Record,
    after: &[AfterMorph],
    controls: &[(String, String)],
) -> Outcome<()> {
    let Context {
        settings,
        seq,
        out,
        seed,
        ref parents,
        sizes,
        start,
    } = *ctx;
    let mut t = String::new();
    let names = seq.names(controls.len());
    let _ = writeln!(t, "## Test accuracy at the end of each step\n\n| network | NetMorph | Net2Net | scratch (same total epochs) | fresh new layers (control) | parent trained on (control) |\n|---|---|---|---|---|---|");
    let last = |arm: &str| record.arm(arm, seed).last().map(|r| r.test_accuracy);
    let _ = writeln!(
        t,
        "| cifar_{}, the parent (seeds {:?}: {}) | {} | | | | |",
        seq.parent,
        std::iter::once(seed)
            .chain(settings.parent_seeds.iter().copied())
            .collect::<Vec<_>>(),
        percent(parents),
        percent(&last(seq.parent).into_iter().collect::<Vec<_>>())
    );
    for (name, (on, fresh)) in names.iter().zip(controls) {
        let cell = |arm: &str| record.last_cell(arm, seed);
        let _ = writeln!(
            t,
            "| cifar_{name} | {} | {} | {} | {} | {} |",
            cell(&format!("NetMorph {name}")),
            cell(&format!("Net2Net {name}")),
            cell(&format!("scratch {name}")),
            cell(fresh),
            cell(on)
        );
    }
    let _ = writeln!(t, "\n## Right after each morph (before any training)\n\n| step | parent | NetMorph | Net2Net | fresh (control) | max relative output change, NetMorph / Net2Net (200 test images) | smallest non-zero fraction of NetMorph's new filters |\n|---|---|---|---|---|---|---|");
    for (name, p, a, n2n, c, nz, da) in after {
        let (b, db) = n2n.map_or(("-".into(), "-".into()), |(b, db)| {
            (format!("{:.2}%", 100.0 * b), format!("{db:.1e}"))
        });
        let _ = writeln!(
            t,
            "| -> {name} | {:.2}% | {:.2}% | {b} | {:.2}% | {da:.1e} / {db} | {:.3} |",
            100.0 * p,
            100.0 * a,
            100.0 * c,
            nz
        );
    }
    t.push_str(&time_to_accuracy(record, seq.parent, &names, seed));
    print!("{t}");
    let mut arms = vec![seq.parent.to_string()];
    for name in &names {
        arms.push(format!("NetMorph {name}"));
        arms.push(format!("Net2Net {name}"));
    }
    for name in &names {
        arms.push(format!("scratch {name}"));
    }
    let arm_refs: Vec<&str> = arms.iter().map(String::as_str).collect();
    let plot = record.series(&arm_refs, seed);
    let notes = format!(
        "CIFAR-10 ({} training, {} test images, standardised per channel, no augmentation), seed {seed}. \
         cifar_{}: {} epochs, {}. Each step: {} epochs, {}. Scratch networks: the total \
         epochs up to their step, on the children's schedule. Steps run: {:?}.",
        sizes.0,
        sizes.1,
        seq.parent,
        settings.parent_epochs,
        settings.parent.describe(),
        settings.step_epochs,
        settings.child.describe(),
        names
    );
    let run = out.run_notes(&notes, start.elapsed().as_secs_f64());
    let svg = netmorph::plot::svg(seq.title, &plot);
    out.write(record, &svg, &t, &run)
}

/// Experiment 6 for this run: the wall time (morphs and training since the parent started)
/// until NetMorph's line first reaches the final accuracy of the same architecture from
/// scratch.
fn time_to_accuracy(record: &Record, parent: &str, names: &[&str], seed: u64) -> String {
    let mut t = String::from("\n## Time to the scratch network's final accuracy\n\n| network | scratch final | scratch time | NetMorph line reaches it at | NetMorph time (parent included) | speed-up |\n|---|---|---|---|---|---|\n");
    for name in names {
        let scratch = record.arm(&format!("scratch {name}"), seed);
        let Some(last) = scratch.last() else { continue };
        // NetMorph's line: the parent, then each step's child up to this one.
        let mut line: Vec<_> = record.arm(parent, seed);
        for n in names
            .iter()
            .take_while(|n| *n != name)
            .chain(std::iter::once(name))
        {
            line.extend(record.arm(&format!("NetMorph {n}"), seed));
        }
        let hit = line
            .iter()
            .find(|r| r.test_accuracy >= last.test_accuracy && r.train_loss.is_some());
        let cell = match hit {
            Some(r) => format!(
                "epoch {} | {:.0} s | {:.2}x",
                r.epoch,
                r.seconds,
                last.seconds / r.seconds.max(1e-9)
            ),
            None => "not reached | - | -".into(),
        };
        let _ = writeln!(
            t,
            "| cifar_{name} | {:.2}% | {:.0} s | {cell} |",
            100.0 * last.test_accuracy,
            last.seconds
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmorph::{Shape, Tensor};

    /// Every step of every sequence: NetMorph's and Net2Net's children have the target
    /// architecture and compute the parent's function (on untrained parents).
    #[test]
    fn every_step_reaches_its_architecture_exactly() {
        let train = Dataset {
            x: Tensor::zeros(1, Shape::image(3, 32, 32)),
            y: vec![0],
            classes: 10,
        };
        let mut rng = Rng::seed(1);
        let x = Tensor::random(2, Shape::image(3, 32, 32), &mut rng);
        for seq in [
            Sequence::depth(),
            Sequence::kernel_width(),
            Sequence::tanh_width(),
        ] {
            let mut nm = build(seq.spec, seq.act, &train, 0).unwrap();
            let mut n2n = nm.clone();
            for step in &seq.steps {
                let mut child = nm.clone();
                for op in &step.netmorph {
                    child = op.apply(&child, &mut rng).unwrap().0;
                }
                check_architecture(&child, step.spec, seq.act, "NetMorph", &train).unwrap();
                preserved(&nm, &child, &x, step.name).unwrap();
                if let Some(edits) = &step.net2net {
                    let n2n_child = net2net(&n2n, edits, &mut rng).unwrap();
                    check_architecture(&n2n_child, step.spec, seq.act, "Net2Net", &train).unwrap();
                    preserved(&n2n, &n2n_child, &x, step.name).unwrap();
                    n2n = n2n_child;
                } else {
                    n2n = child.clone();
                }
                nm = child;
            }
        }
    }
}
