//! # netmorph-bench
//!
//! Inputs for the criterion benchmarks (`cargo bench -p netmorph-bench`) and the side-by-side
//! comparison scripts in `bench/scripts/`.
#![deny(missing_docs)]

pub mod reproduce;

use netmorph_core::solve::algorithm::Algorithm;
use netmorph_core::{Conv2d, Kernel, Layer, Network, Rng, Scalar, Shape};

/// One depth-solve benchmark: `G (channels, channels, 3, 3) -> C_l` with `K_1`, `K_2`.
#[derive(Clone, Copy, Debug)]
pub struct DepthCase {
    /// Name printed by the benchmarks.
    pub name: &'static str,
    /// `C_{l-1} = C_{l+1}`.
    pub channels: usize,
    /// `C_l`.
    pub c_l: usize,
    /// `K_1`.
    pub k1: usize,
    /// `K_2`.
    pub k2: usize,
    /// Algorithm.
    pub algorithm: Algorithm,
}

/// The two cases: Algorithm 1 on (64,64,3,3) -> 256 with `K_1 = K_2 = 3`, and
/// Algorithm 2 on (256,256,3,3) -> 1024 with `K_1 = 3`, `K_2 = 1`.
pub const DEPTH_CASES: [DepthCase; 2] = [
    DepthCase {
        name: "alg1_64x64x3x3_to_256_k3k3",
        channels: 64,
        c_l: 256,
        k1: 3,
        k2: 3,
        algorithm: Algorithm::General,
    },
    DepthCase {
        name: "alg2_256x256x3x3_to_1024_k3k1",
        channels: 256,
        c_l: 1024,
        k1: 3,
        k2: 1,
        algorithm: Algorithm::Practical,
    },
];

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
