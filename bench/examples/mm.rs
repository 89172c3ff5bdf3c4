//! Matmul throughput by operand layout (`cargo run --release -p netmorph-bench --example mm`).
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use std::time::Instant;
fn main() {
    let (m, k, n) = (256, 1024, 2304);
    let av: Vec<f64> = (0..m * k).map(|i| (i % 7) as f64).collect();
    let bv: Vec<f64> = (0..k * n).map(|i| (i % 5) as f64).collect();
    let mut cv = vec![0.0; m * n];
    let flops = 2.0 * (m * k * n) as f64;
    for (name, rowmajor) in [("col-major", false), ("row-major", true)] {
        for _ in 0..3 {
            let t = Instant::now();
            if rowmajor {
                let a = MatRef::from_row_major_slice(&av, m, k);
                let b = MatRef::from_row_major_slice(&bv, k, n);
                matmul(
                    MatMut::from_row_major_slice_mut(&mut cv, m, n),
                    Accum::Replace,
                    a,
                    b,
                    1.0,
                    Par::rayon(0),
                );
            } else {
                let a = MatRef::from_column_major_slice(&av, m, k);
                let b = MatRef::from_column_major_slice(&bv, k, n);
                matmul(
                    MatMut::from_column_major_slice_mut(&mut cv, m, n),
                    Accum::Replace,
                    a,
                    b,
                    1.0,
                    Par::rayon(0),
                );
            }
            println!(
                "{name}: {:.1} GFLOP/s",
                flops / t.elapsed().as_secs_f64() / 1e9
            );
        }
    }
    // A^T (k x m, a transposed row-major view) times an m x n row-major matrix.
    let y: Vec<f64> = (0..m * n).map(|i| (i % 3) as f64).collect();
    let mut x = vec![0.0; k * n];
    for _ in 0..3 {
        let t = Instant::now();
        let a = MatRef::from_row_major_slice(&av, m, k);
        matmul(
            MatMut::from_row_major_slice_mut(&mut x, k, n),
            Accum::Add,
            a.transpose(),
            MatRef::from_column_major_slice(&y, m, n),
            1.0,
            Par::rayon(0),
        );
        println!(
            "A^T y into row-major: {:.1} GFLOP/s",
            flops / t.elapsed().as_secs_f64() / 1e9
        );
    }
    let _ = Mat::<f64>::zeros(1, 1);
}
