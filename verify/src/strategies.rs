//! proptest strategies, valid by construction: random networks (dense and conv stacks with
//! pooling and flatten, random widths and kernels, ReLU/TanH/Sigmoid/identity, non-zero
//! biases) and random morph plans of 1-8 operations of every kind.
//!
//! Weights come from the crate's seeded [`Rng`] with a seed the strategy draws, so every case
//! replays and shrinks through proptest.

use netmorph_core::morph::depth::{DepthParams, InsertParams};
use netmorph_core::morph::kernel::largest_useful_kernel;
use netmorph_core::morph::plan::MorphOp;
use netmorph_core::morph::subnet::{SequentialParams, Split, StackedParams};
use netmorph_core::morph::width::consumer;
use netmorph_core::solve::algorithm::{condition7, Algorithm, SolveOptions};
use netmorph_core::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Pool, Rng, Scalar, Shape,
};
use proptest::prelude::*;

/// Any of the four activation functions.
pub fn act_kind() -> impl Strategy<Value = ActKind> {
    prop_oneof![
        Just(ActKind::Relu),
        Just(ActKind::Tanh),
        Just(ActKind::Sigmoid),
        Just(ActKind::Identity)
    ]
}

/// One convolution block of a generated network.
#[derive(Clone, Debug)]
pub struct ConvSpec {
    out: usize,
    k: usize,
    pad: usize,
    stride: usize,
    act: ActKind,
    pool: Option<(bool, bool)>,
}

fn conv_spec() -> impl Strategy<Value = ConvSpec> {
    (
        1usize..5,
        prop_oneof![Just(1usize), Just(3), Just(5)],
        0usize..3,
        prop_oneof![4 => Just(1usize), 1 => Just(2)],
        act_kind(),
        proptest::option::of((any::<bool>(), any::<bool>())),
    )
        .prop_map(|(out, k, pad, stride, act, pool)| ConvSpec {
            out,
            k,
            pad,
            stride,
            act,
            pool,
        })
}

fn random_kernel<T: Scalar>(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<T> {
    let mut kern = Kernel::zeros(out, inp, k);
    let std = 1.0 / ((inp * k * k) as f64).sqrt();
    kern.weight = rng
        .normals(kern.weight.len(), std)
        .into_iter()
        .map(T::of_f64)
        .collect();
    // Non-zero biases: the paper ignores them, a correct morph must not.
    kern.bias = rng.normals(out, 0.5).into_iter().map(T::of_f64).collect();
    kern
}

fn activation<T: Scalar>(kind: ActKind, c: usize, learned: bool, rng: &mut Rng) -> Layer<T> {
    let mut p = PActivation::plain(kind, c);
    if learned {
        p.a = (0..c).map(|_| T::of_f64(rng.uniform())).collect();
    }
    Layer::Activation(p)
}

/// Builds a network from specs; sizes that would not fit are adjusted, never rejected.
fn build<T: Scalar>(
    input: Shape,
    convs: &[ConvSpec],
    head: Option<(usize, ActKind)>,
    out: usize,
    learned_a: bool,
    seed: u64,
) -> Network<T> {
    let mut rng = Rng::seed(seed);
    let mut layers = Vec::new();
    let mut s = input;
    for c in convs {
        let mut pad = c.pad.min(c.k / 2);
        if s.h + 2 * pad < c.k || s.w + 2 * pad < c.k {
            pad = c.k / 2;
        }
        let stride = if s.h.min(s.w) >= 4 { c.stride } else { 1 };
        layers.push(Layer::Conv2d(Conv2d {
            kernel: random_kernel(c.out, s.c, c.k, &mut rng),
            stride,
            pad,
        }));
        s = Shape::image(
            c.out,
            (s.h + 2 * pad - c.k) / stride + 1,
            (s.w + 2 * pad - c.k) / stride + 1,
        );
        layers.push(activation(c.act, c.out, learned_a, &mut rng));
        if let Some((max, ceil)) = c.pool {
            if s.h >= 2 && s.w >= 2 {
                let p = Pool {
                    k: 2,
                    stride: 2,
                    ceil,
                };
                layers.push(if max {
                    Layer::MaxPool2d(p)
                } else {
                    Layer::AvgPool2d(p)
                });
                s = Shape::image(
                    s.c,
                    p.out_len(s.h).unwrap_or(1),
                    p.out_len(s.w).unwrap_or(1),
                );
            }
        }
    }
    if !s.is_flat() {
        layers.push(Layer::Flatten);
        s = Shape::flat(s.len());
    }
    if let Some((hidden, act)) = head {
        layers.push(Layer::Dense(random_kernel(hidden, s.c, 1, &mut rng)));
        layers.push(activation(act, hidden, learned_a, &mut rng));
        s = Shape::flat(hidden);
    }
    layers.push(Layer::Dense(random_kernel(out, s.c, 1, &mut rng)));
    match Network::new(input, layers) {
        Ok(n) => n,
        Err(e) => panic!("strategy built an invalid network: {e}"),
    }
}

/// Convolutional networks: 1-3 conv blocks (kernel 1/3/5, padding, stride 1 or 2, activation,
/// optional max/avg pooling with floor or ceil size), Flatten, optional hidden dense layer,
/// dense output.
pub fn convnet<T: Scalar>() -> impl Strategy<Value = Network<T>> {
    (
        1usize..4,
        5usize..10,
        5usize..10,
        prop::collection::vec(conv_spec(), 1..4),
        proptest::option::of((1usize..6, act_kind())),
        1usize..4,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(c, h, w, convs, head, out, learned, seed)| {
            build(Shape::image(c, h, w), &convs, head, out, learned, seed)
        })
}

/// Multi-layer perceptrons: 0-2 hidden dense layers with activations, dense output.
pub fn mlp<T: Scalar>() -> impl Strategy<Value = Network<T>> {
    (
        1usize..7,
        prop::collection::vec((1usize..7, act_kind()), 0..3),
        1usize..4,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(inp, hidden, out, learned, seed)| {
            let mut rng = Rng::seed(seed);
            let mut layers = Vec::new();
            let mut c = inp;
            for (h, act) in hidden {
                layers.push(Layer::Dense(random_kernel(h, c, 1, &mut rng)));
                layers.push(activation(act, h, learned, &mut rng));
                c = h;
            }
            layers.push(Layer::Dense(random_kernel(out, c, 1, &mut rng)));
            match Network::new(Shape::flat(inp), layers) {
                Ok(n) => n,
                Err(e) => panic!("strategy built an invalid network: {e}"),
            }
        })
}

/// Either kind of network.
pub fn network<T: Scalar>() -> impl Strategy<Value = Network<T>> {
    prop_oneof![2 => convnet::<T>(), 1 => mlp::<T>()]
}

/// Networks whose function is smooth everywhere (for finite-difference gradient checks):
/// ReLU becomes TanH and max pooling becomes average pooling; everything else as
/// [`network`]. ReLU and max pooling have their own kink-free checks.
pub fn smooth_network<T: Scalar>() -> impl Strategy<Value = Network<T>> {
    network::<T>().prop_map(|net| {
        let layers = net.layers().iter().map(smooth_layer).collect();
        match Network::new(net.input_shape(), layers) {
            Ok(n) => n,
            Err(e) => panic!("smoothing changed the structure: {e}"),
        }
    })
}

fn smooth_layer<T: Scalar>(l: &Layer<T>) -> Layer<T> {
    match l {
        Layer::Activation(p) if p.kind == ActKind::Relu => Layer::Activation(PActivation {
            kind: ActKind::Tanh,
            a: p.a.clone(),
        }),
        Layer::MaxPool2d(p) => Layer::AvgPool2d(*p),
        other => other.clone(),
    }
}

/// The kinds of operation a plan draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Depth morph.
    Depth,
    /// Identity insertion.
    Insert,
    /// Width morph.
    Width,
    /// Kernel-size morph.
    Kernel,
    /// Sequential subnet.
    Sequential,
    /// Stacked subnet.
    Stacked,
    /// IdMorph baseline.
    IdMorph,
    /// Net2WiderNet baseline (exact, without noise).
    Net2Wider,
}

/// An abstract operation: a kind and random numbers that [`concretize`] turns into valid
/// parameters for whatever network the plan has grown into by then.
#[derive(Clone, Copy, Debug)]
pub struct OpChoice {
    /// Operation kind.
    pub kind: OpKind,
    /// Picks the target layer.
    pub pick: usize,
    /// Sizes and options.
    pub r: [usize; 4],
}

/// One abstract operation of any kind.
pub fn op_choice() -> impl Strategy<Value = OpChoice> {
    (
        prop_oneof![
            Just(OpKind::Depth),
            Just(OpKind::Insert),
            Just(OpKind::Width),
            Just(OpKind::Kernel),
            Just(OpKind::Sequential),
            Just(OpKind::Stacked),
            Just(OpKind::IdMorph),
            Just(OpKind::Net2Wider)
        ],
        any::<usize>(),
        any::<[usize; 4]>(),
    )
        .prop_map(|(kind, pick, r)| OpChoice { kind, pick, r })
}

/// A plan of 1-8 abstract operations.
pub fn plan() -> impl Strategy<Value = Vec<OpChoice>> {
    prop::collection::vec(op_choice(), 1..9)
}

/// Every dense or convolution layer, branches included, with its path.
pub fn linear_layers<T: Scalar>(net: &Network<T>) -> Vec<LayerPath> {
    fn walk<T: Scalar>(seq: &[Layer<T>], prefix: &[usize], out: &mut Vec<LayerPath>) {
        for (i, l) in seq.iter().enumerate() {
            let mut p = prefix.to_vec();
            p.push(i);
            match l {
                Layer::Dense(_) | Layer::Conv2d(_) => out.extend(LayerPath::from_slice(&p)),
                Layer::ParallelSum(bs) => {
                    for (b, br) in bs.iter().enumerate() {
                        let mut q = p.clone();
                        q.push(b);
                        walk(br, &q, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(net.layers(), &[], &mut out);
    out
}

fn odd(r: usize, choices: &[usize]) -> usize {
    choices[r % choices.len()]
}

/// Turns an abstract choice into a valid operation for `net`. A kind with no valid target in
/// `net` (a kernel morph on an MLP, say) becomes a depth morph, which always has one.
pub fn concretize<T: Scalar>(net: &Network<T>, ch: &OpChoice) -> MorphOp {
    let linear = linear_layers(net);
    let pick_from = |cands: &[LayerPath]| cands.get(ch.pick % cands.len().max(1)).cloned();
    let info = |p: &LayerPath| match net.get(p) {
        Some(Layer::Conv2d(c)) => (true, c.stride, c.kernel.k, c.kernel.inp, c.kernel.out),
        Some(Layer::Dense(k)) => (false, 1, 1, k.inp, k.out),
        _ => (false, 1, 1, 1, 1),
    };
    let [r0, r1, r2, r3] = ch.r;
    let with_consumer: Vec<LayerPath> = linear
        .iter()
        .filter(|p| consumer(net, p).is_ok())
        .cloned()
        .collect();
    let op = match ch.kind {
        OpKind::Depth => None,
        OpKind::Insert => {
            let at = LayerPath::top(r0 % (net.layers().len() + 1));
            let shape = net.shape_before(&at).unwrap_or(net.input_shape());
            let (k1, k2) = if shape.is_flat() {
                (1, 1)
            } else {
                (odd(r1, &[1, 3]), odd(r2, &[1, 3]))
            };
            let mut depth = DepthParams::new(shape.c + r3 % 3, k1, k2);
            depth.activation = [ActKind::Relu, ActKind::Tanh, ActKind::Sigmoid][r3 % 3];
            Some(MorphOp::InsertIdentity {
                at,
                params: InsertParams {
                    depth,
                    trailing_activation: r1 % 2 == 0,
                },
            })
        }
        OpKind::Width => pick_from(&with_consumer).map(|layer| {
            let width = info(&layer).4 + 1 + r0 % 3;
            MorphOp::Width { layer, width }
        }),
        OpKind::Net2Wider => pick_from(&with_consumer).map(|layer| {
            let width = info(&layer).4 + 1 + r0 % 3;
            MorphOp::Net2Wider {
                layer,
                width,
                noise: 0.0,
            }
        }),
        OpKind::Kernel => {
            let convs: Vec<LayerPath> = linear.iter().filter(|p| info(p).0).cloned().collect();
            pick_from(&convs).and_then(|layer| {
                let k = info(&layer).2 + 2 * (1 + r0 % 2);
                // Taps that only ever read zero padding are refused: stay within the input.
                let max = match (net.get(&layer), net.shape_before(&layer)) {
                    (Some(Layer::Conv2d(c)), Some(input)) => {
                        largest_useful_kernel(c.kernel.k, c.pad, c.stride, input)
                    }
                    _ => None,
                }?;
                let k = if k > max { k - 2 } else { k };
                (k <= max).then_some(MorphOp::Kernel { layer, k })
            })
        }
        OpKind::Sequential => pick_from(&linear).map(|layer| {
            let (conv, stride, k, inp, out) = info(&layer);
            let p = 1 + r0 % 2;
            let mut kernels = heapless::Vec::new();
            // One layer carries the receptive field, the others are 1x1: every stage then has
            // an expanding factor (Algorithm 2) whatever the widths below.
            let big = if stride > 1 { 0 } else { r1 % (p + 1) };
            for s in 0..=p {
                let _ = kernels.push(if s == big && conv {
                    k + 2 * (r2 % 2)
                } else {
                    1
                });
            }
            if stride > 1 {
                // Strided layers stay exact only with the strided factor first.
                kernels[0] = k;
            }
            let base = inp.max(out);
            let widths = (0..p).map(|s| base + (r3 % 3) + s).collect();
            MorphOp::Sequential {
                layer,
                params: SequentialParams {
                    widths,
                    kernels,
                    algorithm: Algorithm::Auto,
                    activation: [ActKind::Relu, ActKind::Tanh, ActKind::Sigmoid][r2 % 3],
                    solve: Default::default(),
                },
            }
        }),
        OpKind::Stacked => {
            let shallow: Vec<LayerPath> =
                linear.iter().filter(|p| p.0.len() <= 3).cloned().collect();
            pick_from(&shallow).map(|layer| {
                let (_, _, k, inp, out) = info(&layer);
                let branch_depth =
                    (r2 % 2 == 0).then(|| DepthParams::new(inp.max(out) + r3 % 2, k, 1));
                MorphOp::Stacked {
                    layer,
                    params: StackedParams {
                        n: 2 + r0 % 2,
                        split: if r1 % 2 == 0 {
                            Split::Equal
                        } else {
                            Split::Random
                        },
                        branch_depth,
                    },
                }
            })
        }
        OpKind::IdMorph => {
            let ok: Vec<LayerPath> = linear
                .iter()
                .filter(|p| {
                    let next = p.with_last(p.last() + 1);
                    match net.get(&next) {
                        Some(Layer::Activation(a)) => {
                            a.kind == ActKind::Identity
                                || (a.kind == ActKind::Relu
                                    && a.a.iter().all(|v| *v == T::zero() || *v == T::one()))
                        }
                        _ => true,
                    }
                })
                .cloned()
                .collect();
            pick_from(&ok).map(|layer| {
                // A 3 x 3 identity on a blob of one pixel would only read zero padding.
                let blob = net.shape_before(&layer.with_last(layer.last() + 1));
                let k = if blob.is_some_and(|b| b.h.max(b.w) >= 2) {
                    odd(r0, &[1, 3])
                } else {
                    1
                };
                MorphOp::IdMorph { layer, k }
            })
        }
    };
    op.unwrap_or_else(|| depth_op(net, &linear, ch))
}

fn depth_op<T: Scalar>(net: &Network<T>, linear: &[LayerPath], ch: &OpChoice) -> MorphOp {
    let layer = linear[ch.pick % linear.len()].clone();
    let (conv, stride, k, inp, out) = match net.get(&layer) {
        Some(Layer::Conv2d(c)) => (true, c.stride, c.kernel.k, c.kernel.inp, c.kernel.out),
        Some(Layer::Dense(kern)) => (false, 1, 1, kern.inp, kern.out),
        _ => (false, 1, 1, 1, 1),
    };
    let [r0, r1, r2, r3] = ch.r;
    let (mut k1, k2) = if conv && stride == 1 {
        (odd(r0, &[1, 3, 5]), odd(r1, &[1, 3]))
    } else {
        (k, 1)
    };
    if k1 + k2 - 1 < k {
        k1 = k;
    }
    // Algorithm 1 needs condition (7); find the smallest C_l meeting it, plus one: at the
    // boundary the deconvolution can be rank deficient (see `Algorithm::Auto`).
    let general_cl = (1..=64).find(|&c| condition7(inp, c, out, k1, k2));
    let (algorithm, c_l) = match (r2 % 3, general_cl) {
        (0, Some(c)) if c <= 48 => (Algorithm::General, c + 1 + r3 % 3),
        _ => {
            // Algorithm 2: make F_l expand G (C_l >= C_{l+1}, K_1 >= K).
            k1 = k1.max(k);
            (Algorithm::Practical, out.max(1) + r3 % 4)
        }
    };
    let mut params = DepthParams::new(c_l, k1, k2);
    params.algorithm = algorithm;
    params.activation = [
        ActKind::Relu,
        ActKind::Tanh,
        ActKind::Sigmoid,
        ActKind::Identity,
    ][r3 % 4];
    // f32 networks: half of the depth morphs solve in f32, as a device without fast f64
    // would (f64 networks keep f64 solves: an f32 solve would cost them 9 digits).
    if T::NAME == "f32" && (r2 / 3) % 2 == 0 {
        params.solve = SolveOptions::f32();
    }
    MorphOp::Depth { layer, params }
}
