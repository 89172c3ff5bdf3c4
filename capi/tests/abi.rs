//! The C ABI called as C calls it (raw pointers, lengths, status codes), through the rlib:
//! models, training, introspection, morphs checked against an independent naive forward pass
//! over `nm_model_layer`'s view, files, and every error path. (A caught panic is tested in
//! `src/status.rs`, where a panicking body can be passed to the guard directly; no exported
//! function panics on any input.)

use std::ffi::{c_char, CStr};
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

fn layers(m: &Model) -> Vec<NmLayerInfo> {
    (0..size(m, nm_model_layer_count))
        .map(|i| {
            let mut info = std::mem::MaybeUninit::<NmLayerInfo>::uninit();
            // SAFETY: a live model and a valid output.
            ok(unsafe { nm_model_layer(m.0, i, info.as_mut_ptr()) });
            // SAFETY: written by the call.
            unsafe { info.assume_init() }
        })
        .collect()
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
/// `nm_model_layer` exposes (dense, P-activation, flatten).
fn naive_forward(m: &Model, x: &[f32]) -> Vec<f64> {
    let inp = size(m, nm_model_input_len);
    let info = layers(m);
    x.chunks(inp)
        .flat_map(|sample| {
            let mut cur: Vec<f64> = sample.iter().map(|&v| f64::from(v)).collect();
            for l in &info {
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
                    other => panic!("{other:?} is not in the naive oracle"),
                }
            }
            cur
        })
        .collect()
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

/// Runs a morph function, returning the child.
fn morphed(f: impl FnOnce(*mut *mut NmModel) -> NmStatus) -> Model {
    let mut child = null_mut();
    ok(f(&mut child));
    assert!(!child.is_null());
    Model(child)
}

fn op_morph(m: &Model, op: &CStr, seed: u64) -> Model {
    // SAFETY: a live model, a C string, a valid output.
    morphed(|c| unsafe { nm_morph(m.0, op.as_ptr(), seed, c) })
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

    // SAFETY (all morphs): a live parent and valid outputs.
    let act = NmActivation::Tanh as i32;
    let deeper = morphed(|c| unsafe { nm_deepen(parent.0, 1, 16, 1, 1, act, 7, c) });
    let wider = morphed(|c| unsafe { nm_widen(deeper.0, 1, 24, 8, c) });
    let third = op_morph(&wider, c"depth@3,cl=16,act=sigmoid", 9);
    for (child, layers_after) in [(&deeper, 6), (&wider, 6), (&third, 8)] {
        assert_eq!(size(child, nm_model_layer_count), layers_after);
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
    // SAFETY: live models and valid outputs.
    let child_a = morphed(|c| unsafe { nm_widen(a.0, 1, 7, 3, c) });
    let child_copy = morphed(|c| unsafe { nm_widen(copy.0, 1, 7, 3, c) });
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

#[test]
fn kernel_morphs_need_a_convolution() {
    let dense = mlp(&[6, 5, 3], 1);
    let mut child = std::ptr::dangling_mut::<NmModel>(); // not NULL: a failure resets it
                                                         // SAFETY: a live model and a valid output.
    let status = unsafe { nm_grow_kernel(dense.0, 1, 3, &mut child) };
    fails(status, NmStatus::ErrMorph, "kernel morph");
    assert!(child.is_null());

    let mut rng = Rng::seed(2);
    let mut k = Kernel::<f32>::zeros(4, 2, 3);
    k.weight = rng.normals(72, 0.3).into_iter().map(|v| v as f32).collect();
    let net = Network::new(
        Shape::image(2, 6, 6),
        vec![
            Layer::Conv2d(Conv2d {
                kernel: k,
                stride: 1,
                pad: 1,
            }),
            Layer::Activation(PActivation::plain(ActKind::Relu, 4)),
            Layer::Flatten,
            Layer::Dense(Kernel::zeros(3, 144, 1)),
        ],
    )
    .unwrap();
    let dir = tempdir();
    let path = dir.file("conv.safetensors");
    facade::model_file::save(&net, std::path::Path::new(path.to_str().unwrap())).unwrap();
    let conv = load(&path);
    let info = layers(&conv);
    assert_eq!(
        (
            info[0].kind,
            info[0].kernel,
            info[0].padding,
            info[0].stride
        ),
        (NmLayerKind::Conv2d, 3, 1, 1)
    );
    // SAFETY: a live model and a valid output.
    let grown = morphed(|c| unsafe { nm_grow_kernel(conv.0, 0, 5, c) });
    assert_eq!(
        (layers(&grown)[0].kernel, layers(&grown)[0].padding),
        (5, 2)
    );
    let mut dev = f64::NAN;
    // SAFETY: live models and a valid output.
    ok(unsafe { nm_check_preservation(conv.0, grown.0, 16, 0, &mut dev) });
    assert!(dev <= tol::MORPH, "{dev}");
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
        fails(nm_model_layer_count(null_m, &mut n), e, "`m`");
        fails(nm_model_layer(m.0, 0, null_mut()), e, "`info`");
        fails(nm_model_layer(null_m, 0, info.as_mut_ptr()), e, "`m`");
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
            nm_morph(null_m, c"width@1,to=5".as_ptr(), 0, &mut child),
            e,
            "`m`",
        );
        fails(nm_morph(m.0, null(), 0, &mut child), e, "`op`");
        fails(
            nm_morph(m.0, c"width@1,to=5".as_ptr(), 0, null_mut()),
            e,
            "`child`",
        );
        fails(nm_deepen(null_m, 1, 4, 1, 1, 0, 0, &mut child), e, "`m`");
        fails(nm_widen(null_m, 1, 4, 0, &mut child), e, "`m`");
        fails(nm_grow_kernel(m.0, 1, 3, null_mut()), e, "`child`");
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
            nm_model_layer(m.0, 4, info.as_mut_ptr()),
            e,
            "the model has 4 layers",
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
    // SAFETY (all): valid pointers.
    unsafe {
        let arg = NmStatus::ErrArgument;
        fails(
            nm_morph(m.0, c"depth@1".as_ptr(), 0, &mut child),
            arg,
            "missing `cl=`",
        );
        fails(
            nm_morph(m.0, c"frob@1".as_ptr(), 0, &mut child),
            arg,
            "unknown operation",
        );
        let not_utf8: [c_char; 3] = [-1, -2, 0];
        fails(
            nm_morph(m.0, not_utf8.as_ptr(), 0, &mut child),
            arg,
            "UTF-8",
        );
        fails(
            nm_deepen(m.0, 1, 8, 1, 1, 4, 0, &mut child),
            arg,
            "activation 4",
        );
        fails(
            nm_morph(m.0, c"depth@9,cl=8".as_ptr(), 0, &mut child),
            NmStatus::ErrMorph,
            "9",
        );
        fails(nm_widen(m.0, 1, 2, 0, &mut child), NmStatus::ErrMorph, "");
        fails(
            nm_deepen(m.0, 1, 2, 1, 1, 0, 0, &mut child),
            NmStatus::ErrMorph,
            "C_l",
        );
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
        unsafe { nm_model_layer_count(m.0, null_mut()) },
        NmStatus::ErrNull,
        "`n`",
    );
    std::thread::spawn(|| assert_eq!(last_error(), ""))
        .join()
        .unwrap();
    assert!(last_error().starts_with("nm_model_layer_count: "));
    // SAFETY: valid pointers.
    ok(unsafe { nm_model_layer_count(m.0, &mut n) });
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
