//! Times the two benchmark depth morphs end to end (`deepen`, f32 and f64) and prints one line
//! per case, `case scalar median_seconds`, for `bench/scripts/depth_solve_vs_scipy.py`.
//!
//! `cargo run --release -p netmorph-bench --example depth_solve [repeats]`

use std::time::Instant;

use netmorph_bench::{conv_parent, DEPTH_CASES};
use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::{LayerPath, Rng, Scalar};

fn time<T: Scalar>(repeats: usize) -> Result<(), String> {
    for case in DEPTH_CASES {
        let net = conv_parent::<T>(case.channels, case.channels, 3, 8, 1);
        let mut params = DepthParams::new(case.c_l, case.k1, case.k2);
        params.algorithm = case.algorithm;
        let mut rng = Rng::seed(2);
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = Instant::now();
            let (_, report) =
                deepen(&net, &LayerPath::top(0), &params, &mut rng).map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64());
            if report.residual > params.solve.tol {
                return Err(format!("{}: residual {:e}", case.name, report.residual));
            }
        }
        times.sort_by(f64::total_cmp);
        println!("{} {} {:.6}", case.name, T::NAME, times[times.len() / 2]);
    }
    Ok(())
}

fn main() {
    let repeats = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    if let Err(e) = time::<f32>(repeats).and_then(|()| time::<f64>(repeats)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
