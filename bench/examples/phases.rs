//! Times the phases of the benchmark depth morphs (`cargo run --release -p netmorph-bench --example phases`).
use netmorph_bench::conv_parent;
use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::solve::algorithm::{decompose, Algorithm, SolveOptions};
use netmorph_core::{LayerPath, Rng};
use std::time::Instant;
fn main() {
    for (c, cl, k1, k2, alg) in [
        (64, 256, 3, 3, Algorithm::General),
        (256, 1024, 3, 1, Algorithm::Practical),
    ] {
        let net = conv_parent::<f32>(c, c, 3, 8, 1);
        let g = net.layers()[0].kernel().unwrap().cast::<f64>();
        let mut p = DepthParams::new(cl, k1, k2);
        p.algorithm = alg;
        let mut rng = Rng::seed(3);
        for _ in 0..3 {
            let t = Instant::now();
            let d = decompose(&g, cl, k1, k2, alg, &SolveOptions::default(), &mut rng).unwrap();
            let td = t.elapsed();
            let t = Instant::now();
            let _ = deepen(&net, &LayerPath::top(0), &p, &mut rng).unwrap();
            println!(
                "{c}->{cl} k{k1}/{k2}: decompose {td:?} (residual {:.1e}) deepen {:?}",
                d.residual,
                t.elapsed()
            );
        }
    }
}
