//! The one scalar bound every generic item in the crate uses.

use core::fmt::{Debug, Display};

/// A real floating-point scalar: `f32` or `f64`.
///
/// Networks and forward passes run in `T`; the morph solvers always work in `f64`
/// (see [`crate::solve`]) and convert back with [`Scalar::of_f64`], which is what makes
/// f32 morphs exact to f32 rounding.
pub trait Scalar:
    num_traits::Float
    + faer::traits::RealField
    + Copy
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// Converts from `f64`, rounding to nearest.
    fn of_f64(x: f64) -> Self;
    /// Converts to `f64` (exact for both implementations).
    fn as_f64(self) -> f64;
    /// Short name of the type, for reports (`"f32"`, `"f64"`).
    const NAME: &'static str;
    /// `tanh` as the TanH activation computes it: for `f32` evaluated in `f64` and rounded
    /// once (faster than `tanhf` and correctly rounded but for rare ties), for `f64`
    /// [`num_traits::Float::tanh`].
    fn tanh_act(self) -> Self;
}

impl Scalar for f32 {
    fn of_f64(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    const NAME: &'static str = "f32";
    #[inline]
    fn tanh_act(self) -> Self {
        crate::net::tanh_f32(self)
    }
}

impl Scalar for f64 {
    fn of_f64(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    const NAME: &'static str = "f64";
    #[inline]
    fn tanh_act(self) -> Self {
        num_traits::Float::tanh(self)
    }
}
