//! The C ABI called as C calls it (raw pointers, lengths, status codes), through the rlib:
//! models (an MLP, or built from the caller's arrays and checked against the core's own
//! network), training, introspection and write-back by layer path (nested layers included),
//! morphs and their reports checked against an independent naive forward pass over
//! `nm_model_layer`'s view, files, and every error path. (A caught panic is tested in
//! `src/status.rs`, where a panicking body can be passed to the guard directly; no exported
//! function panics on any input.)

use std::ffi::{c_char, c_int, CStr};
use std::ptr::{null, null_mut};

use facade::{ActKind, Conv2d, Kernel, Layer, Network, PActivation, Rng, Shape, Tensor};
use netmorph_c::*;

/// Tolerances, each with its reason.
mod tol {
    /// A morph's child against its parent, both in f32: the library refuses more than 1e-4
    /// (`facade::ops::tolerance::<f32>()`); on these small networks children stay near 1e-7.
    pub const MORPH: f64 = 1e-5;
    /// The naive f64 forward pass against `nm_forward` on the same f32 parameters: f32
    /// rounding of sums over at most a few hundred terms.
    pub const ORACLE: f64 = 1e-5;
    /// A decomposition's relative residual (solved in f64): the solver accepts nothing above
    /// its default tolerance.
    pub fn residual() -> f64 {
        facade::solve::algorithm::SolveOptions::default().tol
    }
}

/// A model owned by a test, freed on drop (so failing tests do not leak either).
struct Model(*mut NmModel);

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: made by the library, freed once.
        unsafe { nm_model_free(self.0) }
    }
}

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next call on this thread.
    unsafe { CStr::from_ptr(nm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[track_caller]
fn ok(status: NmStatus) {
    assert_eq!(status, NmStatus::Ok, "{}", last_error());
    assert_eq!(last_error(), "");
}

/// `status` is `expected` with a message containing `needle`.
#[track_caller]
fn fails(status: NmStatus, expected: NmStatus, needle: &str) {
    assert_eq!(status, expected, "{}", last_error());
    let message = last_error();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

fn mlp(sizes: &[usize], seed: u64) -> Model {
    let mut m = null_mut();
    // SAFETY: valid pointers and length.
    ok(unsafe { nm_model_new_mlp(sizes.as_ptr(), sizes.len(), seed, &mut m) });
    assert!(!m.is_null());
    Model(m)
}

fn size(m: &Model, get: unsafe extern "C" fn(*const NmModel, *mut usize) -> NmStatus) -> usize {
    let mut v = usize::MAX;
    // SAFETY: a live model and a valid output.
    ok(unsafe { get(m.0, &mut v) });
    v
}

fn forward(m: &Model, x: &[f32]) -> Vec<f32> {
    let (inp, out) = (size(m, nm_model_input_len), size(m, nm_model_output_len));
    let n = x.len() / inp;
    let mut y = vec![f32::NAN; n * out];
    // SAFETY: buffers of the lengths passed.
    ok(unsafe { nm_forward(m.0, x.as_ptr(), n, x.len(), y.as_mut_ptr(), y.len()) });
    y
}

fn inputs(n: usize, len: usize, seed: u64) -> Vec<f32> {
    Rng::seed(seed)
        .normals(n * len, 1.0)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// The number of layers in the sequence `path` names (`[]`: the top level).
fn layer_count(m: &Model, path: &[usize]) -> usize {
    let mut n = usize::MAX;
    // SAFETY: a live model, a path of the length passed, a valid output.
    ok(unsafe { nm_model_layer_count(m.0, path.as_ptr(), path.len(), &mut n) });
    n
}

/// The layer at `path`.
fn layer(m: &Model, path: &[usize]) -> NmLayerInfo {
    let mut info = std::mem::MaybeUninit::<NmLayerInfo>::uninit();
    // SAFETY: a live model, a path of the length passed, a valid output.
    ok(unsafe { nm_model_layer(m.0, path.as_ptr(), path.len(), info.as_mut_ptr()) });
    // SAFETY: written by the call.
    unsafe { info.assume_init() }
}

/// The top-level layers.
fn layers(m: &Model) -> Vec<NmLayerInfo> {
    (0..layer_count(m, &[])).map(|i| layer(m, &[i])).collect()
}

/// `len` floats borrowed from the model (`len == 0` <=> NULL, as documented).
fn borrowed<'a>(p: *const f32, len: usize) -> &'a [f32] {
    assert_eq!(p.is_null(), len == 0);
    if len == 0 {
        return &[];
    }
    // SAFETY: the model lives and is unchanged while the test reads it.
    unsafe { std::slice::from_raw_parts(p, len) }
}

/// The independent oracle: the model's function on flat samples in f64 from the parameters
/// `nm_model_layer` exposes (dense, P-activation, flatten, and parallel blocks, whose branches
/// it walks by path).
fn naive_forward(m: &Model, x: &[f32]) -> Vec<f64> {
    let inp = size(m, nm_model_input_len);
    x.chunks(inp)
        .flat_map(|sample| naive_sequence(m, &[], sample.iter().map(|&v| f64::from(v)).collect()))
        .collect()
}

/// The sequence at `prefix` (`[]`: the top level) on one flat sample.
fn naive_sequence(m: &Model, prefix: &[usize], mut cur: Vec<f64>) -> Vec<f64> {
    for i in 0..layer_count(m, prefix) {
        let path = [prefix, &[i]].concat();
        let l = layer(m, &path);
        match l.kind {
            NmLayerKind::Flatten => {}
            NmLayerKind::Dense => {
                assert_eq!(l.r#in, cur.len());
                let (w, b) = (
                    borrowed(l.weight, l.weight_len),
                    borrowed(l.bias, l.bias_len),
                );
                cur = (0..l.out)
                    .map(|o| {
                        let row = &w[o * l.r#in..(o + 1) * l.r#in];
                        row.iter()
                            .zip(&cur)
                            .fold(f64::from(b[o]), |acc, (&w, &v)| acc + f64::from(w) * v)
                    })
                    .collect();
            }
            NmLayerKind::Activation => {
                let a = borrowed(l.a, l.a_len);
                for (v, &a) in cur.iter_mut().zip(a) {
                    let phi = match l.function {
                        NmActivation::Relu => v.max(0.0),
                        NmActivation::Tanh => v.tanh(),
                        NmActivation::Sigmoid => 1.0 / (1.0 + (-*v).exp()),
                        NmActivation::Identity => *v,
                    };
                    *v = (1.0 - f64::from(a)) * phi + f64::from(a) * *v;
                }
            }
            NmLayerKind::ParallelSum => {
                let outputs: Vec<Vec<f64>> = (0..l.branches)
                    .map(|b| naive_sequence(m, &[&path[..], &[b]].concat(), cur.clone()))
                    .collect();
                cur = (0..outputs[0].len())
                    .map(|j| outputs.iter().map(|o| o[j]).sum())
                    .collect();
            }
            other => panic!("{other:?} is not in the naive oracle"),
        }
    }
    cur
}

/// `max |a - b| / max |b|`.
fn rel(a: &[f64], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(a, &b)| (a - f64::from(b)).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

/// Data from a fixed random linear rule: `n` samples of `inp` values, labels below `out`.
fn data(n: usize, inp: usize, out: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let x = inputs(n, inp, seed);
    let rule = inputs(out, inp, seed + 1);
    let labels = x
        .chunks(inp)
        .map(|s| {
            let score = |o: usize| -> f32 {
                rule[o * inp..][..inp]
                    .iter()
                    .zip(s)
                    .map(|(r, v)| r * v)
                    .sum()
            };
            (0..out)
                .max_by(|&a, &b| score(a).total_cmp(&score(b)))
                .unwrap() as u32
        })
        .collect();
    (x, labels)
}

fn step(m: &Model, x: &[f32], labels: &[u32], lr: f32, momentum: f32) -> f32 {
    let mut loss = f32::NAN;
    // SAFETY: buffers of the lengths passed.
    ok(unsafe {
        nm_sgd_step(
            m.0,
            x.as_ptr(),
            x.len(),
            labels.as_ptr(),
            labels.len(),
            lr,
            momentum,
            &mut loss,
        )
    });
    loss
}

/// Runs a morph of `parent` (`f` calls the function with the child and report outputs),
/// returning the child and the report, after checking what every report must say: the two
/// models' parameter counts, and a deviation within the f32 bound. Runs it again with a NULL
/// report, which must make the same child (compared on `x`).
fn morph(
    parent: &Model,
    x: &[f32],
    f: impl Fn(*mut *mut NmModel, *mut NmMorphReport) -> NmStatus,
) -> (Model, NmMorphReport) {
    let mut child = null_mut();
    let mut report = std::mem::MaybeUninit::<NmMorphReport>::uninit();
    ok(f(&mut child, report.as_mut_ptr()));
    assert!(!child.is_null());
    let child = Model(child);
    // SAFETY: written on success.
    let report = unsafe { report.assume_init() };
    assert_eq!(report.params_before, size(parent, nm_model_param_count));
    assert_eq!(report.params_after, size(&child, nm_model_param_count));
    assert!(report.max_rel_deviation <= tol::MORPH, "{report:?}");
    let mut again = null_mut();
    ok(f(&mut again, null_mut()));
    assert_eq!(
        forward(&Model(again), x),
        forward(&child, x),
        "same call, same child"
    );
    (child, report)
}

fn op_morph(m: &Model, op: &CStr, seed: u64, x: &[f32]) -> (Model, NmMorphReport) {
    // SAFETY: a live model, a C string, valid outputs.
    morph(m, x, |c, r| unsafe {
        nm_morph(m.0, op.as_ptr(), seed, c, r)
    })
}

#[test]
fn an_mlp_has_the_sizes_asked_for_and_its_layers_are_introspectable() {
    let m = mlp(&[20, 16, 5], 42);
    assert_eq!(size(&m, nm_model_input_len), 20);
    assert_eq!(size(&m, nm_model_output_len), 5);
    assert_eq!(
        size(&m, nm_model_param_count),
        20 * 16 + 16 + 16 + 16 * 5 + 5
    );
    let info = layers(&m);
    let kinds: Vec<_> = info.iter().map(|l| l.kind).collect();
    use NmLayerKind::*;
    assert_eq!(kinds, [Flatten, Dense, Activation, Dense]);
    assert_eq!(
        (
            info[1].out,
            info[1].r#in,
            info[1].weight_len,
            info[1].bias_len
        ),
        (16, 20, 320, 16)
    );
    assert_eq!((info[2].function, info[2].a_len), (NmActivation::Relu, 16));
    assert!(
        borrowed(info[2].a, 16).iter().all(|&a| a == 0.0),
        "a plain ReLU"
    );
    assert!(info[0].weight.is_null() && info[0].a.is_null());
    let (mut c, mut h, mut w) = (0, 0, 0);
    // SAFETY: a live model and valid outputs.
    ok(unsafe { nm_model_input_shape(m.0, &mut c, &mut h, &mut w) });
    assert_eq!((c, h, w), (20, 1, 1));
    let x = inputs(32, 20, 3);
    assert!(rel(&naive_forward(&m, &x), &forward(&m, &x)) <= tol::ORACLE);
    // The same seed makes the same model.
    assert_eq!(forward(&mlp(&[20, 16, 5], 42), &x), forward(&m, &x));
    assert_ne!(forward(&mlp(&[20, 16, 5], 43), &x), forward(&m, &x));
}

#[test]
fn training_lowers_the_loss_and_a_morphed_child_computes_the_same_function() {
    let parent = mlp(&[20, 16, 5], 42);
    let (x, labels) = data(64, 20, 5, 9);
    let first = step(&parent, &x, &labels, 0.05, 0.9);
    let mut last = first;
    for _ in 0..30 {
        last = step(&parent, &x, &labels, 0.05, 0.9);
    }
    assert!(last < 0.7 * first, "{first} -> {last}");
    let y = forward(&parent, &x);
    assert!(rel(&naive_forward(&parent, &x), &y) <= tol::ORACLE);

    // SAFETY (all morphs): live models, paths of the lengths passed and valid outputs.
    let act = NmActivation::Tanh as i32;
    let (deeper, report) = morph(&parent, &x, |c, r| unsafe {
        nm_deepen(parent.0, [1].as_ptr(), 1, 16, 1, 1, act, 7, c, r)
    });
    assert!(report.params_after > report.params_before, "{report:?}");
    assert_eq!(report.new_layers, 3, "F_l, the P-activation, F_l+1");
    assert!(
        matches!(
            report.algorithm,
            NmAlgorithm::General | NmAlgorithm::Practical
        ),
        "{report:?}"
    );
    assert!(
        matches!(report.condition7, 0 | 1) && report.solves >= 1,
        "{report:?}"
    );
    assert!(report.residual <= tol::residual(), "{report:?}");
    let (wider, report) = morph(&deeper, &x, |c, r| unsafe {
        nm_widen(deeper.0, [1].as_ptr(), 1, 24, 8, c, r)
    });
    assert_eq!(
        (
            report.algorithm,
            report.condition7,
            report.solves,
            report.residual
        ),
        (NmAlgorithm::None, -1, 0, 0.0),
        "a width morph is closed-form"
    );
    assert_eq!(
        report.params_after - report.params_before,
        8 * (20 + 1) + 8 + 8 * 16
    );
    let (third, _) = op_morph(&wider, c"depth@3,cl=16,act=sigmoid", 9, &x);
    for (child, layers_after) in [(&deeper, 6), (&wider, 6), (&third, 8)] {
        assert_eq!(layer_count(child, &[]), layers_after);
        let dev = rel(&naive_forward(child, &x), &y);
        assert!(dev <= tol::MORPH, "{dev}");
        let mut measured = f64::NAN;
        // SAFETY: live models and a valid output.
        ok(unsafe { nm_check_preservation(parent.0, child.0, 64, 1, &mut measured) });
        assert!(measured <= tol::MORPH, "{measured}");
    }
    let info = layers(&deeper);
    assert_eq!((info[2].function, info[2].a_len), (NmActivation::Tanh, 16));
    assert!(
        borrowed(info[2].a, 16).iter().all(|&a| a == 1.0),
        "the new P-activation is linear"
    );
    assert_eq!((layers(&wider)[1].out, layers(&wider)[3].r#in), (24, 24));
    // The parent is untouched, and the child trains.
    assert_eq!(forward(&parent, &x), y);
    assert!(step(&third, &x, &labels, 0.05, 0.9).is_finite());
}

#[test]
fn momentum_lives_in_the_model_and_a_child_starts_without_it() {
    let (x, labels) = data(16, 6, 3, 4);
    let a = mlp(&[6, 5, 3], 1);
    step(&a, &x, &labels, 0.1, 0.9);
    // A copy through a file has the weights but not the momentum.
    let dir = tempdir();
    let path = dir.file("a.safetensors");
    // SAFETY: a live model and a C string.
    ok(unsafe { nm_model_save(a.0, path.as_ptr()) });
    let copy = load(&path);
    assert_eq!(forward(&copy, &x), forward(&a, &x));
    // Children of the two (same op, same seed) are identical: neither carries momentum.
    // SAFETY: live models, paths of the lengths passed and valid outputs.
    let (child_a, _) = morph(&a, &x, |c, r| unsafe {
        nm_widen(a.0, [1].as_ptr(), 1, 7, 3, c, r)
    });
    let (child_copy, _) = morph(&copy, &x, |c, r| unsafe {
        nm_widen(copy.0, [1].as_ptr(), 1, 7, 3, c, r)
    });
    step(&child_a, &x, &labels, 0.1, 0.9);
    step(&child_copy, &x, &labels, 0.1, 0.9);
    assert_eq!(forward(&child_a, &x), forward(&child_copy, &x));
    // The parents' second steps differ: `a` remembers its first step's velocity.
    step(&a, &x, &labels, 0.1, 0.9);
    step(&copy, &x, &labels, 0.1, 0.9);
    assert_ne!(forward(&a, &x), forward(&copy, &x));
}

/// A temporary folder, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn file(&self, name: &str) -> std::ffi::CString {
        std::ffi::CString::new(self.0.join(name).into_os_string().into_encoded_bytes()).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "netmorph-capi-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn load(path: &CStr) -> Model {
    let mut m = null_mut();
    // SAFETY: a C string and a valid output.
    ok(unsafe { nm_model_load(path.as_ptr(), &mut m) });
    Model(m)
}

#[test]
fn a_saved_model_loads_bit_identical_and_an_f64_file_is_converted() {
    let dir = tempdir();
    let m = mlp(&[7, 9, 4], 5);
    let path = dir.file("m.safetensors");
    // SAFETY: a live model and a C string.
    ok(unsafe { nm_model_save(m.0, path.as_ptr()) });
    let x = inputs(8, 7, 2);
    assert_eq!(forward(&load(&path), &x), forward(&m, &x));

    let mut rng = Rng::seed(3);
    let mut k = Kernel::<f64>::zeros(4, 7, 1);
    k.weight = rng.normals(28, 0.5);
    let net = Network::new(
        Shape::flat(7),
        vec![
            Layer::Dense(k),
            Layer::Activation(PActivation::plain(ActKind::Tanh, 4)),
        ],
    )
    .unwrap();
    let f64_path = dir.file("f64.safetensors");
    facade::model_file::save(&net, std::path::Path::new(f64_path.to_str().unwrap())).unwrap();
    let loaded = load(&f64_path);
    let reference = net
        .forward(
            &Tensor::new(8, Shape::flat(7), x.iter().map(|&v| f64::from(v)).collect()).unwrap(),
        )
        .unwrap();
    let y = forward(&loaded, &x);
    let dev = reference
        .data
        .iter()
        .zip(&y)
        .map(|(r, &y)| (r - f64::from(y)).abs())
        .fold(0.0, f64::max);
    assert!(dev <= tol::ORACLE, "{dev}");
}

/// An `NmLayerSpec` with every field 0 (NULL, false): what C's `{0}` initialiser gives.
fn blank() -> NmLayerSpec {
    NmLayerSpec {
        kind: 0,
        out: 0,
        r#in: 0,
        kernel: 0,
        stride: 0,
        padding: 0,
        ceil_mode: 0,
        function: 0,
        weight: null(),
        weight_len: 0,
        bias: null(),
        bias_len: 0,
        a: null(),
        a_len: 0,
    }
}

/// The spec of a facade layer, pointing into it: an independent path to `nm_model_new`'s
/// input (from the core's types, not from `nm_model_layer`).
fn spec(layer: &Layer<f32>) -> NmLayerSpec {
    let mut s = blank();
    let code = |kind: NmLayerKind| kind as c_int;
    if let Some(k) = layer.kernel() {
        (s.out, s.r#in, s.kernel, s.stride) = (k.out, k.inp, k.k, 1);
        (s.weight, s.weight_len, s.bias, s.bias_len) = (
            k.weight.as_ptr(),
            k.weight.len(),
            k.bias.as_ptr(),
            k.bias.len(),
        );
    }
    match layer {
        Layer::Dense(_) => s.kind = code(NmLayerKind::Dense),
        Layer::Conv2d(c) => {
            (s.kind, s.stride, s.padding) = (code(NmLayerKind::Conv2d), c.stride, c.pad)
        }
        Layer::Activation(p) => {
            s.kind = code(NmLayerKind::Activation);
            s.function = match p.kind {
                ActKind::Relu => NmActivation::Relu,
                ActKind::Tanh => NmActivation::Tanh,
                ActKind::Sigmoid => NmActivation::Sigmoid,
                ActKind::Identity => NmActivation::Identity,
            } as c_int;
            (s.out, s.a, s.a_len) = (p.a.len(), p.a.as_ptr(), p.a.len());
        }
        Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
            s.kind = code(if matches!(layer, Layer::MaxPool2d(_)) {
                NmLayerKind::Maxpool
            } else {
                NmLayerKind::Avgpool
            });
            (s.kernel, s.stride, s.ceil_mode) = (p.k, p.stride, c_int::from(p.ceil));
        }
        Layer::Flatten => s.kind = code(NmLayerKind::Flatten),
        Layer::ParallelSum(_) => panic!("nm_model_new takes no parallel sums"),
    }
    s
}

/// The spec that rebuilds the layer `info` describes (same fields; `kind` and `function` as
/// codes).
fn spec_of(info: &NmLayerInfo) -> NmLayerSpec {
    NmLayerSpec {
        kind: info.kind as c_int,
        out: info.out,
        r#in: info.r#in,
        kernel: info.kernel,
        stride: info.stride,
        padding: info.padding,
        ceil_mode: c_int::from(info.ceil_mode),
        function: info.function as c_int,
        weight: info.weight,
        weight_len: info.weight_len,
        bias: info.bias,
        bias_len: info.bias_len,
        a: info.a,
        a_len: info.a_len,
    }
}

/// `nm_model_new(specs, input)`, which must succeed.
fn new_model(specs: &[NmLayerSpec], input: Shape) -> Model {
    let mut m = null_mut();
    // SAFETY: specs whose arrays live for the call, a valid output.
    ok(unsafe {
        nm_model_new(
            specs.as_ptr(),
            specs.len(),
            input.c,
            input.h,
            input.w,
            &mut m,
        )
    });
    assert!(!m.is_null());
    Model(m)
}

/// `f32` values drawn from N(0, std^2).
fn normals(rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
    rng.normals(n, std).into_iter().map(|v| v as f32).collect()
}

/// A small image network through every kind `nm_model_new` takes: conv 2 -> 4 (3x3, pad 1),
/// a ReLU P-activation with `a` in (0, 1), max pooling, a 1x1 conv with stride, average
/// pooling (ceil mode), flatten, dense 4 -> 3, a tanh P-activation.
fn image_net(seed: u64) -> Network<f32> {
    let mut rng = Rng::seed(seed);
    let mut kernel = |out, inp, k| {
        let mut kernel = Kernel::<f32>::zeros(out, inp, k);
        kernel.weight = normals(&mut rng, kernel.weight.len(), 0.5);
        kernel.bias = normals(&mut rng, out, 0.1);
        kernel
    };
    let (c1, c2, dense) = (kernel(4, 2, 3), kernel(4, 4, 1), kernel(3, 4, 1));
    let pool = |k, stride, ceil| facade::Pool { k, stride, ceil };
    Network::new(
        Shape::image(2, 6, 6),
        vec![
            Layer::Conv2d(Conv2d {
                kernel: c1,
                stride: 1,
                pad: 1,
            }),
            Layer::Activation(PActivation {
                kind: ActKind::Relu,
                a: vec![0.0, 0.25, 0.5, 1.0],
            }),
            Layer::MaxPool2d(pool(2, 2, false)),
            Layer::Conv2d(Conv2d {
                kernel: c2,
                stride: 2,
                pad: 0,
            }),
            Layer::AvgPool2d(pool(2, 2, true)),
            Layer::Flatten,
            Layer::Dense(dense),
            Layer::Activation(PActivation::plain(ActKind::Tanh, 3)),
        ],
    )
    .unwrap()
}

#[test]
fn a_model_built_from_the_callers_arrays_is_the_network_they_describe() {
    let net = image_net(2);
    let callers = net.clone();
    let m = new_model(
        &callers.layers().iter().map(spec).collect::<Vec<_>>(),
        net.input_shape(),
    );
    // The model holds copies: the caller's arrays may go once the call returned.
    drop(callers);
    let x = inputs(5, 72, 4);
    let reference = net
        .forward(&Tensor::new(5, net.input_shape(), x.clone()).unwrap())
        .unwrap();
    assert_eq!(
        forward(&m, &x),
        reference.data,
        "the core's forward pass, bit for bit"
    );
    assert_eq!(size(&m, nm_model_param_count), net.param_count());
    let info = layers(&m);
    for (info, layer) in info.iter().zip(net.layers()) {
        let (w, b) = layer
            .kernel()
            .map_or((&[][..], &[][..]), |k| (&k.weight[..], &k.bias[..]));
        assert_eq!(borrowed(info.weight, info.weight_len), w);
        assert_eq!(borrowed(info.bias, info.bias_len), b);
        if let Layer::Activation(p) = layer {
            assert_eq!(borrowed(info.a, info.a_len), p.a);
        }
    }
    assert_eq!(
        (
            info[3].kind,
            info[3].stride,
            info[4].kind,
            info[4].ceil_mode
        ),
        (NmLayerKind::Conv2d, 2, NmLayerKind::Avgpool, true)
    );
    // A model rebuilt from its own layer descriptions computes the same bits.
    let specs: Vec<NmLayerSpec> = info.iter().map(spec_of).collect();
    assert_eq!(
        forward(&new_model(&specs, net.input_shape()), &x),
        forward(&m, &x)
    );
    // Fields a kind does not read are ignored: here a dense layer's kernel and padding.
    let flat = mlp(&[6, 5, 3], 8);
    let mut specs: Vec<NmLayerSpec> = layers(&flat).iter().map(spec_of).collect();
    (specs[1].kernel, specs[1].padding) = (7, 2);
    let rebuilt = new_model(&specs, Shape::flat(6));
    let x = inputs(4, 6, 1);
    assert_eq!(forward(&rebuilt, &x), forward(&flat, &x));
    // It trains as the model it copies (neither has momentum yet).
    let labels = [0, 1, 2, 0];
    for m in [&flat, &rebuilt] {
        step(m, &x, &labels, 0.1, 0.9);
        step(m, &x, &labels, 0.1, 0.9);
    }
    assert_eq!(forward(&rebuilt, &x), forward(&flat, &x));
}

/// `nm_model_new(specs, input)` fails with `status` and a message containing `needle`, and
/// leaves `*out` NULL.
#[track_caller]
fn new_fails(specs: &[NmLayerSpec], input: Shape, status: NmStatus, needle: &str) {
    let mut m = std::ptr::dangling_mut::<NmModel>(); // not NULL: a failure resets it
                                                     // SAFETY: specs whose arrays live for the call, a valid output.
    let got = unsafe {
        nm_model_new(
            specs.as_ptr(),
            specs.len(),
            input.c,
            input.h,
            input.w,
            &mut m,
        )
    };
    fails(got, status, needle);
    assert!(m.is_null());
}

#[test]
fn a_bad_layer_spec_is_refused_naming_the_layer_and_what_it_needs() {
    let net = image_net(3);
    let good: Vec<NmLayerSpec> = net.layers().iter().map(spec).collect();
    let input = net.input_shape();
    let arg = NmStatus::ErrArgument;
    let with = |i: usize, edit: &dyn Fn(&mut NmLayerSpec)| {
        let mut specs = good.clone();
        edit(&mut specs[i]);
        specs
    };
    new_fails(
        &with(6, &|s| s.weight_len -= 1),
        input,
        arg,
        "layers[6]: `weight_len` is 11 but this dense layer needs 12 (out x in = 3 x 4)",
    );
    new_fails(
        &with(0, &|s| s.bias_len = 5),
        input,
        arg,
        "layers[0]: `bias_len` is 5 but this conv2d layer needs 4 (out = 4)",
    );
    new_fails(
        &with(0, &|s| s.weight_len = 70),
        input,
        arg,
        "needs 72 (out x in x kernel x kernel = 4 x 2 x 3 x 3)",
    );
    new_fails(
        &with(1, &|s| s.a_len = 3),
        input,
        arg,
        "layers[1]: `a_len` is 3 but this activation layer needs 4 (one per channel, out = 4)",
    );
    new_fails(
        &with(6, &|s| (s.a, s.a_len) = (good[1].a, 4)),
        input,
        arg,
        "layers[6]: `a_len` is 4, but a dense layer has no `a`; pass 0",
    );
    new_fails(
        &with(2, &|s| s.ceil_mode = 7),
        input,
        arg,
        "ceil_mode 7: give 1 (round the output size up) or 0 (down)",
    );
    new_fails(
        &with(2, &|s| (s.weight, s.weight_len) = (good[0].weight, 1)),
        input,
        arg,
        "layers[2]: `weight_len` is 1, but a maxpool layer has no `weight`",
    );
    let huge = with(0, &|s| {
        (s.out, s.r#in, s.kernel) = (1 << 20, 1 << 20, 1 << 20)
    });
    new_fails(
        &huge,
        input,
        arg,
        "layers[0]: its weight count out x in x kernel x kernel",
    );
    new_fails(&huge, input, arg, "overflows size_t");
    // Values: finite, and `a` in [0, 1].
    let mut weights = net.layers()[6].kernel().unwrap().weight.clone();
    weights[5] = f32::NAN;
    new_fails(
        &with(6, &|s| s.weight = weights.as_ptr()),
        input,
        arg,
        "layers[6]: `weight[5]` is NaN; parameters must be finite",
    );
    let bias = [0.0, f32::NEG_INFINITY, 0.0, 0.0];
    new_fails(
        &with(0, &|s| s.bias = bias.as_ptr()),
        input,
        arg,
        "`bias[1]` is -inf",
    );
    let a = [0.0, 0.5, 1.5, 1.0];
    new_fails(
        &with(1, &|s| s.a = a.as_ptr()),
        input,
        arg,
        "layers[1]: `a[2]` is 1.5; a P-activation's `a` must be in [0, 1]",
    );
    // Codes taken as int: out-of-range values are errors.
    new_fails(
        &with(5, &|s| s.kind = 9),
        input,
        arg,
        "layers[5]: kind 9 is not an NmLayerKind",
    );
    new_fails(&with(5, &|s| s.kind = -1), input, arg, "kind -1");
    new_fails(
        &with(7, &|s| s.function = 4),
        input,
        arg,
        "layers[7]: activation 4 is not an NmActivation",
    );
    new_fails(
        &with(5, &|s| s.kind = NmLayerKind::ParallelSum as c_int),
        input,
        arg,
        "layers[5]: a parallel sum cannot be given",
    );
    // NULL: the specs, an array with a length, the output.
    new_fails(
        &with(0, &|s| s.weight = null()),
        input,
        NmStatus::ErrNull,
        "layers[0]: `weight` is NULL",
    );
    let mut m = null_mut();
    // SAFETY (all): NULL where tested, valid pointers elsewhere.
    unsafe {
        fails(
            nm_model_new(null(), 1, 2, 6, 6, &mut m),
            NmStatus::ErrNull,
            "`layers`",
        );
        fails(
            nm_model_new(good.as_ptr(), good.len(), 2, 6, 6, null_mut()),
            NmStatus::ErrNull,
            "`out`",
        );
    }
    new_fails(&[], input, arg, "n_layers is 0");
    // Parameters that would not fit in memory are refused before any array is read (these
    // are NULL: reading them first would be NM_STATUS_ERR_NULL).
    let big = 1usize << 31;
    let huge = NmLayerSpec {
        kind: NmLayerKind::Dense as c_int,
        out: big,
        r#in: big,
        weight_len: big * big,
        bias_len: big,
        ..blank()
    };
    new_fails(&[huge], Shape::flat(big), arg, "the network's parameters");
    // Layers that do not make a network: the core's validation, named.
    new_fails(
        &good,
        Shape::image(3, 6, 6),
        arg,
        "the layers do not make a network for 3x6x6 inputs: layer 0 expects 2 input channels but receives 3",
    );
    let mut no_flatten = good.clone();
    no_flatten.drain(4..6); // the average pooling and the flatten
    new_fails(
        &no_flatten,
        input,
        arg,
        "dense layer 4 receives an image blob 4x2x2",
    );
    new_fails(&good, Shape::image(2, 1, 1), arg, "does not fit");
    new_fails(&good, Shape::image(2, 0, 6), arg, "holds no values");
    new_fails(
        &with(2, &|s| s.stride = 0),
        input,
        arg,
        "layer 2 has a zero kernel, stride or size",
    );
}

#[test]
fn kernel_morphs_need_a_convolution() {
    let dense = mlp(&[6, 5, 3], 1);
    let mut child = std::ptr::dangling_mut::<NmModel>(); // not NULL: a failure resets it
                                                         // SAFETY: a live model, a path of the length passed and a valid output.
    let status = unsafe { nm_grow_kernel(dense.0, [1].as_ptr(), 1, 3, &mut child, null_mut()) };
    fails(status, NmStatus::ErrMorph, "kernel morph");
    assert!(child.is_null());

    let conv = new_model(
        &image_net(2).layers().iter().map(spec).collect::<Vec<_>>(),
        Shape::image(2, 6, 6),
    );
    let x = inputs(4, 72, 3);
    // SAFETY: a live model, a path of the length passed and valid outputs.
    let (grown, report) = morph(&conv, &x, |c, r| unsafe {
        nm_grow_kernel(conv.0, [0].as_ptr(), 1, 5, c, r)
    });
    assert_eq!(
        (layers(&grown)[0].kernel, layers(&grown)[0].padding),
        (5, 2)
    );
    assert_eq!(report.params_after - report.params_before, 4 * 2 * (25 - 9));
    assert_eq!(
        (
            report.algorithm,
            report.condition7,
            report.solves,
            report.residual
        ),
        (NmAlgorithm::None, -1, 0, 0.0)
    );
    assert!(report.nonzero_fraction < 1.0, "zero taps: {report:?}");
    let mut dev = f64::NAN;
    // SAFETY: live models and a valid output.
    ok(unsafe { nm_check_preservation(conv.0, grown.0, 16, 0, &mut dev) });
    assert!(dev <= tol::MORPH, "{dev}");
    // Inside a parallel block: one branch's kernel grows, the other's stays.
    let (stacked, _) = op_morph(&conv, c"stack@0,n=2", 1, &x);
    let inside = [0usize, 1, 0];
    // SAFETY: a live model, a path of the length passed and valid outputs.
    let (grown, report) = morph(&stacked, &x, |c, r| unsafe {
        nm_grow_kernel(stacked.0, inside.as_ptr(), 3, 5, c, r)
    });
    assert_eq!(
        (
            layer(&grown, &inside).kernel,
            layer(&grown, &[0, 0, 0]).kernel
        ),
        (5, 3)
    );
    assert_eq!(report.params_after - report.params_before, 4 * 2 * (25 - 9));
}

/// `nm_model_set_layer(m, path, weight, bias, a)`.
fn set_layer(m: &Model, path: &[usize], weight: &[f32], bias: &[f32], a: &[f32]) -> NmStatus {
    // SAFETY: a live model used by this thread only; buffers of the lengths passed.
    unsafe {
        nm_model_set_layer(
            m.0,
            path.as_ptr(),
            path.len(),
            weight.as_ptr(),
            weight.len(),
            bias.as_ptr(),
            bias.len(),
            a.as_ptr(),
            a.len(),
        )
    }
}

#[test]
fn weights_written_back_read_back_and_a_failed_write_changes_nothing() {
    let m = mlp(&[6, 5, 3], 4);
    let (x, labels) = data(8, 6, 3, 2);
    step(&m, &x, &labels, 0.1, 0.9);
    let mut rng = Rng::seed(11);
    let (w, b) = (normals(&mut rng, 15, 0.5), normals(&mut rng, 3, 0.1));
    ok(set_layer(&m, &[3], &w, &b, &[]));
    let a = [0.0, 0.25, 0.5, 0.75, 1.0];
    ok(set_layer(&m, &[2], &[], &[], &a));
    let info = layers(&m);
    assert_eq!(borrowed(info[3].weight, info[3].weight_len), w);
    assert_eq!(borrowed(info[3].bias, info[3].bias_len), b);
    assert_eq!(borrowed(info[2].a, info[2].a_len), a);
    let y = forward(&m, &x);
    assert!(rel(&naive_forward(&m, &x), &y) <= tol::ORACLE);
    assert_eq!(size(&m, nm_model_param_count), 6 * 5 + 5 + 5 + 5 * 3 + 3);
    // The arrays may be the model's own: layer 1's bias written from its own pointer, and
    // NULL for an empty array.
    let l1 = layers(&m)[1];
    // SAFETY: the model's own arrays, of the lengths it gave; NULL with length 0.
    ok(unsafe { nm_model_set_layer(m.0, [1].as_ptr(), 1, l1.weight, 30, l1.bias, 5, null(), 0) });
    assert_eq!(forward(&m, &x), y);

    // All or nothing: each failure leaves every output bit as it was.
    let bits = forward(&m, &x);
    let arg = NmStatus::ErrArgument;
    let mut nan = w.clone();
    nan[14] = f32::NAN;
    // The path, weight, bias and a of a write, and what its message says.
    type Write<'a> = (&'a [usize], &'a [f32], &'a [f32], &'a [f32], &'a str);
    let bad: [Write; 11] = [
        (
            &[3],
            &w[..14],
            &b,
            &[],
            "layer 3: `weight_len` is 14 but this dense layer needs 15 (out x in = 3 x 5)",
        ),
        (
            &[3],
            &w,
            &[],
            &[],
            "layer 3: `bias_len` is 0 but this dense layer needs 3 (out = 3)",
        ),
        (
            &[3],
            &w,
            &b,
            &a,
            "layer 3: `a_len` is 5, but a dense layer has no `a`; pass 0",
        ),
        (
            &[3],
            &nan,
            &b,
            &[],
            "layer 3: `weight[14]` is NaN; parameters must be finite",
        ),
        (
            &[2],
            &[],
            &[],
            &[0.0, 0.5, 2.0, 0.5, 0.5],
            "layer 2: `a[2]` is 2; a P-activation's `a` must be in [0, 1]",
        ),
        (&[2], &[], &[], &a[..4], "one per channel, out = 5"),
        (&[2], &w, &[], &a, "an activation layer has no `weight`"),
        (
            &[0],
            &[],
            &[],
            &[],
            "layer 0: a flatten layer has no parameters to set",
        ),
        (
            &[4],
            &w,
            &b,
            &[],
            "layer path 4 does not exist: the model has 4 top-level layers",
        ),
        (&[], &w, &b, &[], "`path_len` is 0"),
        (
            &[3, 0, 0],
            &w,
            &b,
            &[],
            "layer 3 is a dense layer, not a parallel block",
        ),
    ];
    for (path, w, b, a, needle) in bad {
        fails(set_layer(&m, path, w, b, a), arg, needle);
        assert!(
            last_error().starts_with("nm_model_set_layer: "),
            "{}",
            last_error()
        );
        assert_eq!(forward(&m, &x), bits);
    }
    // The model still trains: the momentum it had is kept.
    assert!(step(&m, &x, &labels, 0.1, 0.9).is_finite());
}

#[test]
fn nested_layers_are_reached_by_paths() {
    let parent = mlp(&[20, 16, 5], 42);
    let (x, labels) = data(32, 20, 5, 9);
    for _ in 0..5 {
        step(&parent, &x, &labels, 0.05, 0.9);
    }
    let y = forward(&parent, &x);
    // Layer 3 (dense 16 -> 5) becomes a parallel block of two branches of one layer each.
    let (stacked, report) = op_morph(&parent, c"stack@3,n=2", 3, &x);
    assert_eq!(report.params_after, report.params_before + 16 * 5 + 5);
    let block = layer(&stacked, &[3]);
    assert_eq!((block.kind, block.branches), (NmLayerKind::ParallelSum, 2));
    assert!(block.weight.is_null() && block.a.is_null());
    assert_eq!(
        (
            layer_count(&stacked, &[3, 0]),
            layer_count(&stacked, &[3, 1])
        ),
        (1, 1)
    );
    let inner = layer(&stacked, &[3, 1, 0]);
    assert_eq!(
        (inner.kind, inner.out, inner.r#in),
        (NmLayerKind::Dense, 5, 16)
    );
    assert!(rel(&naive_forward(&stacked, &x), &y) <= tol::MORPH);

    // A typed morph inside it: deepen branch 1's layer, then widen the new first layer.
    let act = NmActivation::Sigmoid as c_int;
    let deep = [3usize, 1, 0];
    // SAFETY (both): live models, paths of the lengths passed and valid outputs.
    let (deeper, report) = morph(&stacked, &x, |c, r| unsafe {
        nm_deepen(stacked.0, deep.as_ptr(), 3, 8, 1, 1, act, 5, c, r)
    });
    assert_eq!(report.new_layers, 3);
    assert!(report.params_after > report.params_before, "{report:?}");
    assert!(report.residual <= tol::residual(), "{report:?}");
    assert_ne!(report.algorithm, NmAlgorithm::None);
    assert_eq!(layer_count(&deeper, &[3, 1]), 3);
    let mid = layer(&deeper, &[3, 1, 1]);
    assert_eq!(
        (mid.kind, mid.function, mid.a_len),
        (NmLayerKind::Activation, NmActivation::Sigmoid, 8)
    );
    let (wider, _) = morph(&deeper, &x, |c, r| unsafe {
        nm_widen(deeper.0, deep.as_ptr(), 3, 12, 6, c, r)
    });
    assert_eq!(
        (
            layer(&wider, &[3, 1, 0]).out,
            layer(&wider, &[3, 1, 2]).r#in
        ),
        (12, 12)
    );
    for child in [&deeper, &wider] {
        let dev = rel(&naive_forward(child, &x), &y);
        assert!(dev <= tol::MORPH, "{dev}");
    }

    // Read and write at a nested path: the branch's activation, then its last layer.
    let a = [0.5f32; 12];
    ok(set_layer(&wider, &[3, 1, 1], &[], &[], &a));
    assert_eq!(borrowed(layer(&wider, &[3, 1, 1]).a, 12), a);
    let zero = (vec![0.0f32; 12 * 5], vec![0.0f32; 5]);
    ok(set_layer(&wider, &[3, 1, 2], &zero.0, &zero.1, &[]));
    // Branch 1 now outputs zeros, so the block computes branch 0: G / 2 plus G's bias.
    let branch0 = layer(&wider, &[3, 0, 0]);
    let g = layers(&parent)[3];
    let twice: Vec<f32> = borrowed(branch0.weight, 80)
        .iter()
        .map(|w| 2.0 * w)
        .collect();
    assert_eq!(twice, borrowed(g.weight, 80));
    assert!(rel(&naive_forward(&wider, &x), &forward(&wider, &x)) <= tol::ORACLE);

    // Paths that leave the network are named, with where they leave it.
    let mut info = std::mem::MaybeUninit::<NmLayerInfo>::uninit();
    let mut n = 0;
    let arg = NmStatus::ErrArgument;
    for (path, needle) in [
        (&[9][..], "layer path 9 does not exist: the model has 4 top-level layers"),
        (&[3, 2, 0], "layer path 3.2.0 does not exist: the parallel block 3 has 2 branches"),
        (&[3, 1, 3], "layer path 3.1.3 does not exist: branch 3.1 has 3 layers"),
        (&[3, 1], "layer path 3.1 does not exist: it ends at a branch; add the index of a layer in it (e.g. 3.1.0)"),
        (&[1, 0, 0], "layer path 1.0.0 does not exist: layer 1 is a dense layer, not a parallel block"),
        (&[3, 1, 0, 0, 0], "layer 3.1.0 is a dense layer, not a parallel block"),
        (&[0; 9], "layer path 0.0.0.0.0.0.0.0.0 has 9 indices, but layers nest at most 8 deep"),
        (&[], "`path_len` is 0"),
    ] {
        // SAFETY: a live model, a path of the length passed, a valid output.
        let status = unsafe { nm_model_layer(wider.0, path.as_ptr(), path.len(), info.as_mut_ptr()) };
        fails(status, arg, needle);
        // SAFETY: as above.
        let status = unsafe {
            nm_widen(wider.0, path.as_ptr(), path.len(), 20, 0, &mut null_mut(), null_mut())
        };
        fails(status, arg, needle);
    }
    for (path, needle) in [
        (&[3][..], "path 3 names no branch: it ends at the parallel block 3, not at a branch; add a branch index (e.g. 3.0)"),
        (&[1], "path 1 names no branch: layer 1 is a dense layer, not a parallel block"),
        (&[3, 5], "path 3.5 names no branch: the parallel block 3 has 2 branches"),
        (&[3, 1, 1, 0], "layer 3.1.1 is an activation layer"),
    ] {
        // SAFETY: a live model, a path of the length passed, a valid output.
        let status = unsafe { nm_model_layer_count(wider.0, path.as_ptr(), path.len(), &mut n) };
        fails(status, arg, needle);
    }
}

#[test]
fn null_pointers_are_refused_by_name() {
    let m = mlp(&[4, 3], 0);
    let (mut n, mut child, mut dev) = (0usize, null_mut(), 0.0);
    let x = [0.0f32; 4];
    let mut y = [0.0f32; 3];
    let mut info = std::mem::MaybeUninit::<NmLayerInfo>::uninit();
    let null_m: *const NmModel = null();
    // SAFETY: every call passes NULL somewhere and valid pointers elsewhere.
    unsafe {
        let e = NmStatus::ErrNull;
        fails(nm_model_new_mlp(null(), 2, 0, &mut child), e, "`sizes`");
        fails(
            nm_model_new_mlp([4usize, 3].as_ptr(), 2, 0, null_mut()),
            e,
            "`out`",
        );
        fails(nm_model_load(null(), &mut child), e, "`path`");
        fails(nm_model_save(null_m, c"x".as_ptr()), e, "`m`");
        fails(nm_model_save(m.0, null()), e, "`path`");
        fails(nm_model_input_len(null_m, &mut n), e, "`m`");
        fails(nm_model_output_len(m.0, null_mut()), e, "`out`");
        fails(nm_model_param_count(null_m, &mut n), e, "`m`");
        fails(
            nm_model_input_shape(m.0, &mut n, null_mut(), &mut n),
            e,
            "`height`",
        );
        let top = [0usize];
        fails(nm_model_layer_count(null_m, null(), 0, &mut n), e, "`m`");
        fails(nm_model_layer_count(m.0, null(), 1, &mut n), e, "`path`");
        fails(
            nm_model_layer(m.0, top.as_ptr(), 1, null_mut()),
            e,
            "`info`",
        );
        fails(
            nm_model_layer(null_m, top.as_ptr(), 1, info.as_mut_ptr()),
            e,
            "`m`",
        );
        fails(
            nm_model_layer(m.0, null(), 1, info.as_mut_ptr()),
            e,
            "`path`",
        );
        let w = [0.0f32; 12];
        let b = [0.0f32; 3];
        let dense = [1usize];
        fails(
            nm_model_set_layer(
                null_mut(),
                dense.as_ptr(),
                1,
                w.as_ptr(),
                12,
                b.as_ptr(),
                3,
                null(),
                0,
            ),
            e,
            "`m`",
        );
        fails(
            nm_model_set_layer(m.0, null(), 1, w.as_ptr(), 12, b.as_ptr(), 3, null(), 0),
            e,
            "`path`",
        );
        fails(
            nm_model_set_layer(m.0, dense.as_ptr(), 1, null(), 12, b.as_ptr(), 3, null(), 0),
            e,
            "layer 1: `weight` is NULL",
        );
        fails(
            nm_model_set_layer(m.0, dense.as_ptr(), 1, w.as_ptr(), 12, null(), 3, null(), 0),
            e,
            "layer 1: `bias` is NULL",
        );
        fails(
            nm_forward(null_m, x.as_ptr(), 1, 4, y.as_mut_ptr(), 3),
            e,
            "`m`",
        );
        fails(nm_forward(m.0, null(), 1, 4, y.as_mut_ptr(), 3), e, "`x`");
        fails(nm_forward(m.0, x.as_ptr(), 1, 4, null_mut(), 3), e, "`y`");
        fails(
            nm_sgd_step(
                null_mut(),
                x.as_ptr(),
                4,
                [0u32].as_ptr(),
                1,
                0.1,
                0.0,
                null_mut(),
            ),
            e,
            "`m`",
        );
        fails(
            nm_sgd_step(m.0, null(), 4, [0u32].as_ptr(), 1, 0.1, 0.0, null_mut()),
            e,
            "`x`",
        );
        fails(
            nm_sgd_step(m.0, x.as_ptr(), 4, null(), 1, 0.1, 0.0, null_mut()),
            e,
            "`labels`",
        );
        fails(
            nm_morph(null_m, c"width@1,to=5".as_ptr(), 0, &mut child, null_mut()),
            e,
            "`m`",
        );
        fails(nm_morph(m.0, null(), 0, &mut child, null_mut()), e, "`op`");
        fails(
            nm_morph(m.0, c"width@1,to=5".as_ptr(), 0, null_mut(), null_mut()),
            e,
            "`child`",
        );
        let p = dense.as_ptr();
        fails(
            nm_deepen(null_m, p, 1, 4, 1, 1, 0, 0, &mut child, null_mut()),
            e,
            "`m`",
        );
        fails(
            nm_deepen(m.0, null(), 1, 4, 1, 1, 0, 0, &mut child, null_mut()),
            e,
            "`path`",
        );
        fails(
            nm_widen(null_m, p, 1, 4, 0, &mut child, null_mut()),
            e,
            "`m`",
        );
        fails(
            nm_widen(m.0, null(), 1, 4, 0, &mut child, null_mut()),
            e,
            "`path`",
        );
        fails(
            nm_grow_kernel(m.0, p, 1, 3, null_mut(), null_mut()),
            e,
            "`child`",
        );
        fails(
            nm_grow_kernel(m.0, null(), 1, 3, &mut child, null_mut()),
            e,
            "`path`",
        );
        fails(
            nm_check_preservation(null_m, m.0, 4, 0, &mut dev),
            e,
            "`parent`",
        );
        fails(
            nm_check_preservation(m.0, null_m, 4, 0, &mut dev),
            e,
            "`child`",
        );
        fails(
            nm_check_preservation(m.0, m.0, 4, 0, null_mut()),
            e,
            "`max_rel_deviation`",
        );
        nm_model_free(null_mut());
    }
    assert!(child.is_null());
}

#[test]
fn short_buffers_are_refused_and_nothing_is_written_past_them() {
    let m = mlp(&[4, 6, 3], 0);
    let x = inputs(2, 4, 1);
    const SENTINEL: f32 = -7.5;
    let mut y = [SENTINEL; 8];
    // SAFETY (all): the lengths passed are at most the buffers' (the point is they are short).
    unsafe {
        let e = NmStatus::ErrArgument;
        fails(
            nm_forward(m.0, x.as_ptr(), 2, 8, y.as_mut_ptr(), 5),
            e,
            "`y` holds 5 floats",
        );
        assert_eq!(y, [SENTINEL; 8], "nothing written");
        fails(
            nm_forward(m.0, x.as_ptr(), 2, 7, y.as_mut_ptr(), 6),
            e,
            "`x` holds 7 floats",
        );
        assert_eq!(y, [SENTINEL; 8], "nothing written");
        fails(
            nm_forward(m.0, x.as_ptr(), usize::MAX, 8, y.as_mut_ptr(), 6),
            e,
            "need more",
        );
        fails(
            nm_forward(m.0, x.as_ptr(), 1, usize::MAX, y.as_mut_ptr(), 6),
            e,
            "no buffer",
        );
        // Exactly enough: n * output_len values and not one more.
        ok(nm_forward(m.0, x.as_ptr(), 2, 8, y.as_mut_ptr(), 6));
        assert!(y[..6].iter().all(|v| *v != SENTINEL) && y[6..] == [SENTINEL; 2]);
        // One sample from a longer buffer reads only the first.
        ok(nm_forward(m.0, x.as_ptr(), 1, 8, y.as_mut_ptr(), 3));
        assert_eq!(y[..3], forward(&m, &x[..4])[..]);
        let labels = [0u32, 1];
        fails(
            nm_sgd_step(m.0, x.as_ptr(), 7, labels.as_ptr(), 2, 0.1, 0.0, null_mut()),
            e,
            "`x` holds 7",
        );
        fails(
            nm_sgd_step(
                m.0,
                x.as_ptr(),
                8,
                [0u32, 3].as_ptr(),
                2,
                0.1,
                0.0,
                null_mut(),
            ),
            e,
            "labels[1] = 3",
        );
        fails(
            nm_sgd_step(m.0, x.as_ptr(), 8, labels.as_ptr(), 0, 0.1, 0.0, null_mut()),
            e,
            "empty",
        );
        fails(
            nm_sgd_step(m.0, x.as_ptr(), 8, labels.as_ptr(), 2, 0.0, 0.0, null_mut()),
            e,
            "learning rate",
        );
        fails(
            nm_sgd_step(
                m.0,
                x.as_ptr(),
                8,
                labels.as_ptr(),
                2,
                f32::NAN,
                0.0,
                null_mut(),
            ),
            e,
            "learning rate",
        );
        fails(
            nm_sgd_step(m.0, x.as_ptr(), 8, labels.as_ptr(), 2, 0.1, 1.0, null_mut()),
            e,
            "momentum",
        );
        let mut info = std::mem::MaybeUninit::<NmLayerInfo>::uninit();
        fails(
            nm_model_layer(m.0, [4].as_ptr(), 1, info.as_mut_ptr()),
            e,
            "layer path 4 does not exist: the model has 4 top-level layers",
        );
        let mut child = null_mut();
        fails(
            nm_model_new_mlp([4usize].as_ptr(), 1, 0, &mut child),
            e,
            "1 sizes",
        );
        fails(
            nm_model_new_mlp([4usize, 0, 3].as_ptr(), 3, 0, &mut child),
            e,
            "sizes[1] is 0",
        );
        let huge = [usize::MAX / 2, usize::MAX / 2, 3];
        fails(
            nm_model_new_mlp(huge.as_ptr(), 3, 0, &mut child),
            e,
            "parameters",
        );
        assert!(child.is_null());
    }
}

#[test]
fn bad_operations_files_and_morphs_have_their_status_and_a_message() {
    let m = mlp(&[4, 6, 3], 0);
    let other = mlp(&[5, 3], 0);
    let mut child = null_mut();
    let mut dev = 0.0;
    let dir = tempdir();
    let corrupt = dir.file("corrupt.safetensors");
    std::fs::write(corrupt.to_str().unwrap(), b"not a model").unwrap();
    // A failed morph leaves its report as it was.
    let sentinel = NmMorphReport {
        params_before: 7,
        params_after: 7,
        nonzero_fraction: -1.0,
        residual: -1.0,
        solves: 7,
        algorithm: NmAlgorithm::Auto,
        condition7: 7,
        new_layers: 7,
        max_rel_deviation: -1.0,
    };
    let mut report = sentinel;
    let r = &raw mut report;
    let one = [1usize];
    // SAFETY (all): valid pointers.
    unsafe {
        let arg = NmStatus::ErrArgument;
        fails(
            nm_morph(m.0, c"depth@1".as_ptr(), 0, &mut child, r),
            arg,
            "missing `cl=`",
        );
        fails(
            nm_morph(m.0, c"frob@1".as_ptr(), 0, &mut child, r),
            arg,
            "unknown operation",
        );
        let not_utf8: [c_char; 3] = [-1, -2, 0];
        fails(
            nm_morph(m.0, not_utf8.as_ptr(), 0, &mut child, r),
            arg,
            "UTF-8",
        );
        fails(
            nm_deepen(m.0, one.as_ptr(), 1, 8, 1, 1, 4, 0, &mut child, r),
            arg,
            "activation 4",
        );
        fails(
            nm_morph(m.0, c"depth@9,cl=8".as_ptr(), 0, &mut child, r),
            arg,
            "there is no layer 9",
        );
        fails(
            nm_widen(m.0, one.as_ptr(), 1, 2, 0, &mut child, r),
            NmStatus::ErrMorph,
            "",
        );
        fails(
            nm_deepen(m.0, one.as_ptr(), 1, 2, 1, 1, 0, 0, &mut child, r),
            NmStatus::ErrMorph,
            "C_l",
        );
        assert_eq!(report, sentinel);
        fails(
            nm_model_load(c"/nonexistent/m.safetensors".as_ptr(), &mut child),
            NmStatus::ErrIo,
            "/nonexistent",
        );
        fails(
            nm_model_load(corrupt.as_ptr(), &mut child),
            NmStatus::ErrModel,
            "corrupt",
        );
        fails(
            nm_model_save(m.0, c"/nonexistent/dir/m.safetensors".as_ptr()),
            NmStatus::ErrIo,
            "",
        );
        fails(
            nm_check_preservation(m.0, other.0, 4, 0, &mut dev),
            arg,
            "differ in shape",
        );
        fails(
            nm_check_preservation(m.0, m.0, 0, 0, &mut dev),
            arg,
            "probes is 0",
        );
        ok(nm_check_preservation(m.0, m.0, 3, 0, &mut dev));
        assert_eq!(dev, 0.0);
    }
    assert!(child.is_null());
}

#[test]
fn a_diverging_step_is_a_training_error_and_leaves_the_model_unchanged() {
    let m = mlp(&[4, 6, 3], 0);
    let (x, labels) = data(8, 4, 3, 6);
    let bits = |m: &Model| {
        forward(m, &x)
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    let e = NmStatus::ErrArgument;
    let mut poisoned = x.clone();
    poisoned[5] = f32::NAN;
    // SAFETY (all): valid buffers.
    unsafe {
        let step = |x: &[f32], lr: f32| {
            nm_sgd_step(
                m.0,
                x.as_ptr(),
                x.len(),
                labels.as_ptr(),
                8,
                lr,
                0.9,
                null_mut(),
            )
        };
        fails(step(&poisoned, 0.1), e, "x[5] is NaN");
        // A rate of 1e30 overflows the weights within a few steps; the failing step changes
        // nothing.
        for i in 0..20 {
            let before = bits(&m);
            match step(&x, 1e30) {
                NmStatus::Ok => assert!(i < 19, "never diverged"),
                status => {
                    fails(status, NmStatus::ErrTrain, "lower the learning rate");
                    assert_eq!(bits(&m), before);
                    return;
                }
            }
        }
    }
}

#[test]
fn the_last_error_is_per_thread_and_cleared_by_a_success() {
    let m = mlp(&[4, 3], 0);
    let mut n = 0;
    // SAFETY: NULL output: refused.
    fails(
        unsafe { nm_model_layer_count(m.0, null(), 0, null_mut()) },
        NmStatus::ErrNull,
        "`n`",
    );
    std::thread::spawn(|| assert_eq!(last_error(), ""))
        .join()
        .unwrap();
    assert!(last_error().starts_with("nm_model_layer_count: "));
    // SAFETY: valid pointers.
    ok(unsafe { nm_model_layer_count(m.0, null(), 0, &mut n) });
}

#[test]
fn the_committed_header_is_what_cbindgen_makes() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/check-header.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(2) && text.contains("cbindgen not found") {
        eprintln!("skipped: {text}");
        return;
    }
    assert!(out.status.success(), "{text}");
}
