//! # netmorph-bench
//!
//! Inputs for the criterion benchmarks (`cargo bench -p netmorph-bench`) and the side-by-side
//! comparison scripts in `bench/scripts/`.
#![deny(missing_docs)]

use netmorph_core::{Conv2d, Kernel, Layer, Network, Rng, Scalar, Shape};

/// A one-layer network holding a random `(c_out, c_in, k, k)` convolution (padding `k / 2`)
/// on `size x size` inputs: the parent `G` of the depth-solve benchmarks.
///
/// # Panics
/// If `k > size + 2 (k / 2)` (it never is for the benchmark shapes).
pub fn conv_parent<T: Scalar>(
    c_out: usize,
    c_in: usize,
    k: usize,
    size: usize,
    seed: u64,
) -> Network<T> {
    let mut rng = Rng::seed(seed);
    let mut kernel = Kernel::zeros(c_out, c_in, k);
    let std = 1.0 / ((c_in * k * k) as f64).sqrt();
    kernel.weight = rng
        .normals(kernel.weight.len(), std)
        .into_iter()
        .map(T::of_f64)
        .collect();
    kernel.bias = rng.normals(c_out, 0.1).into_iter().map(T::of_f64).collect();
    let conv = Conv2d {
        kernel,
        stride: 1,
        pad: k / 2,
    };
    match Network::new(Shape::image(c_in, size, size), vec![Layer::Conv2d(conv)]) {
        Ok(n) => n,
        Err(e) => panic!("benchmark parent invalid: {e}"),
    }
}
