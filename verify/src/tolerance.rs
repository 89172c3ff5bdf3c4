//! Every tolerance the checks use, with the reason for its size.

/// Preservation of an f64 network: max |child - parent| / max |parent| (the bound).
/// The solves run in f64 to ~1e-13 relative; compositions of up to 8 morphs and the
/// forward pass's own rounding stay two orders of magnitude below this.
pub const PRESERVE_F64: f64 = 1e-9;

/// Preservation of an f32 network (the bound). Each morph rounds its new f64
/// parameters to f32 once (~6e-8 relative), and the forward pass runs in f32.
pub const PRESERVE_F32: f64 = 1e-4;

/// Core forward pass (f64) against the naive oracle: identical math, different summation
/// order, so only a few ulps per accumulated term.
pub const ORACLE_F64: f64 = 1e-12;

/// Core forward pass (f32) against the f64 oracle on the same weights: f32 rounding over
/// sums of up to a few hundred terms.
pub const ORACLE_F32: f64 = 1e-4;

/// Composed filter `F_{l+1} (*) F_l` against zero-padded `G`, relative to max |G|, for f64
/// networks: the solver's own tolerance (1e-11) plus the composition's rounding.
pub const COMPOSE_F64: f64 = 1e-10;

/// The same for f32 networks: the factors are rounded to f32 after the solve, so the product
/// carries f32 rounding amplified by the factors' scale relative to `G`.
pub const COMPOSE_F32: f64 = 1e-4;

/// Algorithm 1 under condition (7) must fill at least this fraction of the new parameters.
pub const NONZERO_GENERAL: f64 = 0.99;

/// Preservation bound for scalar type named `name` (`"f32"` or `"f64"`).
pub fn preserve(name: &str) -> f64 {
    if name == "f32" {
        PRESERVE_F32
    } else {
        PRESERVE_F64
    }
}
