//! A small, seeded, `no_std` random number generator (xoshiro256++ seeded by SplitMix64).
//!
//! Every random choice in netmorph takes an explicit [`Rng`], so a morph with the same seed
//! produces bit-identical children on every platform.

use alloc::vec::Vec;

use crate::Scalar;

/// xoshiro256++ (Blackman and Vigna), seeded through SplitMix64.
///
/// # Examples
/// ```
/// use netmorph_core::Rng;
/// let mut a = Rng::seed(7);
/// let mut b = Rng::seed(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    /// The second normal of the last polar-method pair.
    spare: Option<f64>,
}

impl Rng {
    /// Creates a generator from a 64-bit seed.
    pub fn seed(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
            spare: None,
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias worth measuring for `n < 2^32`.
    ///
    /// # Panics
    /// If `n == 0`.
    #[track_caller]
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below needs a non-empty range");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal sample (Marsaglia's polar method: one logarithm per two samples, no
    /// trigonometry; the second sample of each pair is kept for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = libm::sqrt(-2.0 * libm::log(s) / s);
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }

    /// `n` independent normal samples with standard deviation `std`.
    pub fn normals(&mut self, n: usize, std: f64) -> Vec<f64> {
        let mut v = alloc::vec![0.0; n];
        self.fill_normals(&mut v, std);
        v
    }

    /// Fills `out` with independent normal samples of standard deviation `std`, rounded to
    /// `T` (the values [`Rng::normals`] gives, for buffers the caller allocated).
    pub(crate) fn fill_normals<T: Scalar>(&mut self, out: &mut [T], std: f64) {
        out.iter_mut()
            .for_each(|v| *v = T::of_f64(std * self.normal()));
    }

    /// `n` independent samples uniform on `[-sqrt(3) std, sqrt(3) std)` (standard deviation
    /// `std`): ten times cheaper than normals, for large random initialisations.
    pub fn uniforms(&mut self, n: usize, std: f64) -> Vec<f64> {
        let half = std * libm::sqrt(3.0);
        (0..n)
            .map(|_| half * (2.0 * self.uniform() - 1.0))
            .collect()
    }

    /// A uniformly random permutation of `0..n` (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }

    /// Shuffles `p` uniformly (Fisher-Yates; [`Rng::permutation`] shuffles `0..n`).
    pub(crate) fn shuffle(&mut self, p: &mut [usize]) {
        for i in (1..p.len()).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::seed(1);
        let xs = r.normals(20_000, 1.0);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut r = Rng::seed(3);
        let mut p = r.permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
