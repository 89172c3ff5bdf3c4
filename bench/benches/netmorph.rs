//! Criterion benchmarks. `cargo bench -p netmorph-bench -- depth_solve`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use netmorph_bench::{conv_parent, DEPTH_CASES};
use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::{LayerPath, Rng, Scalar};

/// The two depth solves: G (64,64,3,3) -> C_l = 256, K_1 = K_2 = 3 with Algorithm 1,
/// and G (256,256,3,3) -> C_l = 1024, K_1 = 3, K_2 = 1 with Algorithm 2.
fn depth_solve_for<T: Scalar>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("depth_solve_{}", T::NAME));
    group.sample_size(10);
    let cases = [
        (
            "alg1_64x64x3x3_to_256_k3k3",
            64,
            256,
            3,
            3,
            Algorithm::General,
        ),
        (
            "alg2_256x256x3x3_to_1024_k3k1",
            256,
            1024,
            3,
            1,
            Algorithm::Practical,
        ),
    ];
    for (name, ch, c_l, k1, k2, algorithm) in cases {
        let net = conv_parent::<T>(ch, ch, 3, 8, 1);
        let mut params = DepthParams::new(c_l, k1, k2);
        params.algorithm = algorithm;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            let mut rng = Rng::seed(2);
            b.iter(
                || match deepen(&net, &LayerPath::top(0), &params, &mut rng) {
                    Ok(r) => r,
                    Err(e) => panic!("{e}"),
                },
            );
        });
    }
    group.finish();
}

fn depth_solve(c: &mut Criterion) {
    depth_solve_for::<f32>(c);
    depth_solve_for::<f64>(c);
}

criterion_group!(benches, depth_solve);
criterion_main!(benches);
