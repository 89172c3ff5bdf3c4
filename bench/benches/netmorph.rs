//! Criterion benchmarks. `cargo bench -p netmorph-bench -- depth_solve`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use netmorph_bench::{conv_parent, DEPTH_CASES};
use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::{LayerPath, Rng, Scalar};

/// The two depth solves ([`DEPTH_CASES`]), end to end through `deepen`.
fn depth_solve_for<T: Scalar>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("depth_solve_{}", T::NAME));
    group.sample_size(10);
    for case in DEPTH_CASES {
        let net = conv_parent::<T>(case.channels, case.channels, 3, 8, 1);
        let mut params = DepthParams::new(case.c_l, case.k1, case.k2);
        params.algorithm = case.algorithm;
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
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
