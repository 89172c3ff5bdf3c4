//! The network morphism equation (6) as linear deconvolution problems.
//!
//! Symbols (paper section 3.1): parent filter `G` of shape `(C_{l+1}, C_{l-1}, K, K)`, child
//! filters `F_l` `(C_l, C_{l-1}, K_1, K_1)` and `F_{l+1}` `(C_{l+1}, C_l, K_2, K_2)`,
//! `K~ = K_1 + K_2 - 1`, and `G~` the centred zero-padding of `G` to `K~`. With
//! cross-correlation layers (morphism notes, section 1), eq. (6) reads
//!
//! `G~[o, i, t] = sum_m sum_{p + q = t} F_{l+1}[o, m, p] F_l[m, i, q]`,
//!
//! i.e. the full 2-D convolution of the spatial kernels, summed over the middle channel `m`.
//!
//! Fixing one factor makes (6) linear in the other, and the system splits by a channel of
//! the fixed side (morphism notes, section 6): solving for `F_l`, every input channel `i`
//! shares one matrix `A` (`C_{l+1} K~^2` rows, `C_l K_1^2` columns); solving for `F_{l+1}`,
//! every output channel `o` shares one. When the fixed factor is `1 x 1`, `A` is a
//! Kronecker product `H (x) I`, and one `C x C_l` problem serves every spatial tap.

use alloc::vec::Vec;

use crate::gemm::matmul;
use faer::{Accum, Mat, MatMut, MatRef};

use super::lstsq::{closest, closest_workspace, SolveMethod};
use super::{kernel_values, mat_values, par};
use crate::alloc_try::{AllocError, Count};
use crate::{Kernel, Scalar};

/// Eq. (6): the composed filter `F_{l+1} (*) F_l` of shape `(f2.out, f1.inp, K_1 + K_2 - 1)`.
/// Biases are ignored (the result's bias is zero).
///
/// Computed as `K_2^2` matrix products, one per tap `p` of `F_{l+1}`:
/// `R_p = F_{l+1}[:, :, p] F_l` with `F_l` viewed as its row-major `C_l x (C_{l-1} K_1^2)`
/// matrix, then `G~[:, i, p + q] += R_p[:, (i, q)]`.
///
/// # Panics
/// If `f2.inp != f1.out`, a kernel's weight length disagrees with its sizes, or the result
/// cannot be allocated (checked sizes: [`decompose`](super::algorithm::decompose)).
#[track_caller]
pub fn compose<F: Scalar>(f2: &Kernel<F>, f1: &Kernel<F>) -> Kernel<F> {
    assert_eq!(f2.inp, f1.out, "compose: middle channels differ");
    let (co, cm, ci) = (f2.out, f2.inp, f1.inp);
    let (k1, k2) = (f1.k, f2.k);
    let (kt, k1s, k2s) = (k1 + k2 - 1, k1 * k1, k2 * k2);
    let f1m = MatRef::from_row_major_slice(&f1.weight, cm, ci * k1s);
    let mut g = Kernel::zeros(co, ci, kt);
    let mut r = Mat::<F>::zeros(co, ci * k1s);
    for p in 0..k2s {
        let tap = Mat::from_fn(co, cm, |o, m| f2.weight[(o * cm + m) * k2s + p]);
        matmul(
            r.as_mut(),
            Accum::Replace,
            tap.as_ref(),
            f1m,
            F::one(),
            par(),
        );
        let (py, px) = (p / k2, p % k2);
        for j in 0..ci * k1s {
            let (i, q) = (j / k1s, j % k1s);
            let col = r.col_as_slice(j);
            for (o, v) in col.iter().enumerate() {
                let at = g.at(o, i, py + q / k1, px + q % k1);
                g.weight[at] += *v;
            }
        }
    }
    g
}

/// `G~`: `g` zero-padded (centred) to kernel size `k`. The bias is kept.
///
/// # Panics
/// If `k < g.k` or `k - g.k` is odd, if `g`'s weight length disagrees with its sizes, or if
/// the padded kernel cannot be allocated.
#[track_caller]
pub fn pad_centered<F: Scalar>(g: &Kernel<F>, k: usize) -> Kernel<F> {
    match try_pad_centered(g, k) {
        Ok(out) => out,
        Err(e) => panic!("pad_centered: {} bytes cannot be allocated", e.bytes),
    }
}

/// [`pad_centered`] for any scalar, reporting a kernel it cannot allocate.
///
/// # Panics
/// As [`pad_centered`], but for the allocation.
#[track_caller]
pub(crate) fn try_pad_centered<T: Scalar>(
    g: &Kernel<T>,
    k: usize,
) -> Result<Kernel<T>, AllocError> {
    assert!(
        k >= g.k && (k - g.k) % 2 == 0,
        "pad_centered: {} -> {k}",
        g.k
    );
    let off = (k - g.k) / 2;
    let mut out = Kernel::try_zeros(g.out, g.inp, k)?;
    out.bias.clone_from(&g.bias);
    for o in 0..g.out {
        for i in 0..g.inp {
            for y in 0..g.k {
                let src = g.at(o, i, y, 0);
                let dst = out.at(o, i, y + off, off);
                out.weight[dst..dst + g.k].copy_from_slice(&g.weight[src..src + g.k]);
            }
        }
    }
    Ok(out)
}

/// The same filter with its two channel axes swapped: `(out, inp, k) -> (inp, out, k)`.
///
/// # Panics
/// If `f`'s weight length disagrees with its sizes, or the copy cannot be allocated.
#[track_caller]
pub fn transpose_channels<F: Scalar>(f: &Kernel<F>) -> Kernel<F> {
    let mut t = Kernel::zeros(f.inp, f.out, f.k);
    let kk = f.k * f.k;
    for o in 0..f.out {
        for i in 0..f.inp {
            let (s, d) = (f.at(o, i, 0, 0), t.at(i, o, 0, 0));
            t.weight[d..d + kk].copy_from_slice(&f.weight[s..s + kk]);
        }
    }
    t
}

/// `max |F_{l+1} (*) F_l - G~|`, relative to `max |G~|` (absolute when `G~` is zero).
///
/// # Panics
/// As [`compose`].
#[track_caller]
pub fn relative_residual<F: Scalar>(g_tilde: &Kernel<F>, f2: &Kernel<F>, f1: &Kernel<F>) -> f64 {
    let c = compose(f2, f1);
    let scale = max_abs(&g_tilde.weight);
    let err = c
        .weight
        .iter()
        .zip(&g_tilde.weight)
        // `f64::max` skips NaN: a non-finite difference must fail the exactness check.
        .fold(0.0f64, |m, (a, b)| {
            let d = (*a - *b).as_f64().abs();
            if d.is_finite() {
                m.max(d)
            } else {
                f64::INFINITY
            }
        });
    if scale > 0.0 {
        err / scale
    } else {
        err
    }
}

/// Largest absolute value (0 for an empty slice).
pub fn max_abs<F: Scalar>(v: &[F]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.as_f64().abs()))
}

/// Fixes `F_{l+1}` and returns the `F_l` closest to `f1_init` that satisfies (6) for `g_tilde`
/// (least squares when no exact solution exists).
///
/// # Panics
/// If the kernels' sizes do not chain (`G~` `(C_{l+1}, C_{l-1}, K_1 + K_2 - 1)`, `F_{l+1}`
/// `(C_{l+1}, C_l, K_2)`, `F_l` `(C_l, C_{l-1}, K_1)`) or disagree with their weight lengths;
/// [`decompose`](super::algorithm::decompose) checks its inputs and its workspace first.
#[track_caller]
pub fn solve_f1<F: Scalar>(
    g_tilde: &Kernel<F>,
    f2: &Kernel<F>,
    f1_init: &Kernel<F>,
) -> (Kernel<F>, SolveMethod) {
    if f2.k == 1 {
        // A = F_{l+1} (x) I: `F_{l+1} X = G~` with X's columns the (input channel, tap)
        // pairs, which is exactly the row-major layout of `F_l` and `G~`: no copies.
        let (co, cm, cols) = (f2.out, f2.inp, g_tilde.inp * g_tilde.k * g_tilde.k);
        let a = MatRef::from_row_major_slice(&f2.weight, co, cm);
        let b = MatRef::from_row_major_slice(&g_tilde.weight, co, cols);
        let mut f1 = f1_init.clone();
        let x = MatMut::from_row_major_slice_mut(&mut f1.weight, cm, cols);
        let method = closest(a, b, x, None);
        return (f1, method);
    }
    let (x, method) = solve_factor(
        f2,
        &transpose_channels(g_tilde),
        &transpose_channels(f1_init),
    );
    (transpose_channels(&x), method)
}

/// Fixes `F_l` and returns the `F_{l+1}` closest to `f2_init` that satisfies (6) for `g_tilde`.
///
/// # Panics
/// As [`solve_f1`].
#[track_caller]
pub fn solve_f2<F: Scalar>(
    g_tilde: &Kernel<F>,
    f1: &Kernel<F>,
    f2_init: &Kernel<F>,
) -> (Kernel<F>, SolveMethod) {
    solve_factor(&transpose_channels(f1), g_tilde, f2_init)
}

/// The sizes of one step of eq. (6): `C_{l+1}`, `C_{l-1}`, `C_l`, `K_1`, `K_2` and
/// `K~ = K_1 + K_2 - 1`, as checked counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    /// `C_{l+1}`.
    pub(crate) co: Count,
    /// `C_{l-1}`.
    pub(crate) ci: Count,
    /// `C_l`.
    pub(crate) cm: Count,
    /// `K_1`.
    pub(crate) k1: Count,
    /// `K_2`.
    pub(crate) k2: Count,
    /// `K~`.
    pub(crate) kt: Count,
}

impl Sizes {
    /// The sizes for `G` `(co, ci)` split through `cm` channels with kernels `k1`, `k2` (at
    /// least 1).
    pub(crate) fn new(co: usize, ci: usize, cm: usize, k1: usize, k2: usize) -> Self {
        Self {
            co: co.into(),
            ci: ci.into(),
            cm: cm.into(),
            k1: k1.into(),
            k2: k2.into(),
            kt: Count::of(k1) + k2.saturating_sub(1),
        }
    }
}

/// An upper bound of the values (of `F`) [`compose`] holds at once: the composed kernel, one
/// tap's product and the tap.
pub(crate) fn compose_workspace<F>(s: &Sizes) -> Count {
    kernel_values(s.co, s.ci, s.kt)
        + mat_values::<F>(s.co, s.ci * s.k1 * s.k1)
        + mat_values::<F>(s.co, s.cm)
}

/// An upper bound of the values (of `F`) [`solve_f1`] holds at once, its result and
/// [`closest`]'s workspace included. With a `1 x 1` `F_{l+1}`: the copy of `F_l` and one
/// `C_{l+1} x C_l` system with `C_{l-1} K~^2` right-hand sides; otherwise the transposed `G~`
/// and `F_l`, the solution and its transpose, and [`solve_factor`]'s workspace.
pub(crate) fn solve_f1_workspace<F: Scalar>(s: &Sizes) -> Count {
    let f1 = kernel_values(s.cm, s.ci, s.k1);
    if s.k2 == Count::of(1) {
        return f1 + closest_workspace::<F>(s.co, s.cm, s.ci * s.kt * s.kt);
    }
    kernel_values(s.co, s.ci, s.kt)
        + f1 * 2
        + solve_factor_workspace::<F>((s.co, s.cm, s.k2), s.ci, s.k1, s.kt)
}

/// An upper bound of the values (of `F`) [`solve_f2`] holds at once: the transposed `F_l` and
/// [`solve_factor`]'s workspace.
pub(crate) fn solve_f2_workspace<F: Scalar>(s: &Sizes) -> Count {
    kernel_values(s.cm, s.ci, s.k1)
        + solve_factor_workspace::<F>((s.ci, s.cm, s.k1), s.co, s.k2, s.kt)
}

/// An upper bound of the values (of `F`) [`solve_factor`] holds at once for `h` `(a, m, K_h)`,
/// `nc` right-hand-side channels, unknown kernel `ku` and `K~ = kt`: the solution; with a
/// `1 x 1` `h` the two rearranged right-hand sides and one `a x m` system; otherwise the
/// deconvolution matrix `A` (`a K~^2 x m K_u^2`), the structured Gram matrix's intermediates
/// and the `A` system.
pub(crate) fn solve_factor_workspace<F: Scalar>(
    (an, mn, kh): (Count, Count, Count),
    nc: Count,
    ku: Count,
    kt: Count,
) -> Count {
    let x = kernel_values(nc, mn, ku);
    if kh == Count::of(1) {
        let rhs = nc * kt * kt;
        return x
            + mat_values::<F>(an, rhs)
            + mat_values::<F>(mn, nc * ku * ku)
            + closest_workspace::<F>(an, mn, rhs);
    }
    let (rows, cols) = (an * kt * kt, mn * ku * ku);
    let taps = kh * kh * an;
    // `structured_gram`'s tap products and their Gram matrix, its (tap, tap) pairs (two
    // `usize`, two values' worth each) and one column's sums.
    let gram = mat_values::<F>(taps, mn) + mat_values::<F>(taps, taps) + ku * ku * 2 + an;
    x + rows * cols + gram + closest_workspace::<F>(rows, cols, nc)
}

/// Solves `sum_m sum_{p + q = t} H[a, m, p] X[c, m, q] = R[c, a, t]` for `X` (closest to
/// `x0`), for every column channel `c` with one factorisation.
///
/// `h`: `(a, m, K_h)`; `rhs`: `(c, a, K_u + K_h - 1)`; `x0`: `(c, m, K_u)`.
pub(crate) fn solve_factor<F: Scalar>(
    h: &Kernel<F>,
    rhs: &Kernel<F>,
    x0: &Kernel<F>,
) -> (Kernel<F>, SolveMethod) {
    let (an, mn, kh, ku, kt, nc) = (h.out, h.inp, h.k, x0.k, rhs.k, rhs.out);
    let (ku2, kt2) = (ku * ku, kt * kt);
    let mut x = Kernel::zeros(nc, mn, ku);
    if kh == 1 {
        // A = H (x) I: one (a x m) problem, columns (c, t) with t == q.
        let hm = MatRef::from_row_major_slice(&h.weight, an, mn);
        let b = Mat::from_fn(an, nc * kt2, |a, j| {
            rhs.weight[(j / kt2 * an + a) * kt2 + j % kt2]
        });
        let mut sol = Mat::from_fn(mn, nc * ku2, |m, j| {
            x0.weight[(j / ku2 * mn + m) * ku2 + j % ku2]
        });
        let method = closest(hm, b.as_ref(), sol.as_mut(), None);
        for c in 0..nc {
            for q in 0..ku2 {
                let col = sol.col(c * ku2 + q);
                for m in 0..mn {
                    x.weight[(c * mn + m) * ku2 + q] = col[m];
                }
            }
        }
        return (x, method);
    }
    let (rows, cols) = (an * kt2, mn * ku2);
    // A[(a, t), (m, q)] = H[a, m, t - q], filled row by row.
    let mut a = alloc::vec![F::zero(); rows * cols];
    for ai in 0..an {
        for ty in 0..kt {
            for tx in 0..kt {
                let row = &mut a[(ai * kt2 + ty * kt + tx) * cols..][..cols];
                for m in 0..mn {
                    for qy in ty.saturating_sub(kh - 1)..=ty.min(ku - 1) {
                        for qx in tx.saturating_sub(kh - 1)..=tx.min(ku - 1) {
                            row[m * ku2 + qy * ku + qx] = h.weight[h.at(ai, m, ty - qy, tx - qx)];
                        }
                    }
                }
            }
        }
    }
    let a = MatRef::from_row_major_slice(&a, rows, cols);
    let b = MatRef::from_column_major_slice(&rhs.weight, rows, nc);
    x.weight.copy_from_slice(&x0.weight);
    let gram = (rows <= cols).then(|| structured_gram(h, ku, kt));
    let method = closest(
        a,
        b,
        MatMut::from_column_major_slice_mut(&mut x.weight, cols, nc),
        gram,
    );
    (x, method)
}

/// `A A^T` for the convolution operator of [`solve_factor`], from the small Gram matrix of
/// `H`'s taps: `(A A^T)[(a,t),(a',t')] = sum_q P[(t-q, a), (t'-q, a')]` with
/// `P[(p, a), (p', a')] = sum_m H[a, m, p] H[a', m, p']`. This replaces a
/// `rows x rows x cols` product by a `(a K_h^2)^2 x m` one.
fn structured_gram<F: Scalar>(h: &Kernel<F>, ku: usize, kt: usize) -> Mat<F> {
    let (an, mn, kh) = (h.out, h.inp, h.k);
    let kh2 = kh * kh;
    let kt2 = kt * kt;
    let m2 = Mat::from_fn(kh2 * an, mn, |r, m| {
        let (p, a) = (r / an, r % an);
        h.weight[h.at(a, m, p / kh, p % kh)]
    });
    let mut p = Mat::<F>::zeros(kh2 * an, kh2 * an);
    matmul(
        p.as_mut(),
        Accum::Replace,
        m2.as_ref(),
        m2.transpose(),
        F::one(),
        par(),
    );
    let rows = an * kt2;
    let mut g = Mat::<F>::zeros(rows, rows);
    let tap = |t: usize, q: usize| -> Option<usize> {
        let (py, px) = ((t / kt).checked_sub(q / ku)?, (t % kt).checked_sub(q % ku)?);
        (py < kh && px < kh).then_some(py * kh + px)
    };
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut acc = alloc::vec![F::zero(); an];
    for t in 0..kt2 {
        for t2 in 0..kt2 {
            pairs.clear();
            pairs.extend((0..ku * ku).filter_map(|q| Some((tap(t, q)?, tap(t2, q)?))));
            if pairs.is_empty() {
                continue;
            }
            // Column (a', t2) of the Gram matrix, rows (a, t): P is symmetric, so read
            // P[(p2, a'), (p1, a)] down a contiguous column.
            for a2 in 0..an {
                acc.iter_mut().for_each(|v| *v = F::zero());
                for &(p1, p2) in &pairs {
                    let col = &p.col_as_slice(p2 * an + a2)[p1 * an..(p1 + 1) * an];
                    acc.iter_mut().zip(col).for_each(|(s, v)| *s += *v);
                }
                let mut gcol = g.col_mut(a2 * kt2 + t2);
                for (a, v) in acc.iter().enumerate() {
                    gcol[a * kt2 + t] = *v;
                }
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn random(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<f64> {
        let mut f = Kernel::zeros(out, inp, k);
        f.weight = rng.normals(f.weight.len(), 1.0);
        f
    }

    #[test]
    fn structured_gram_matches_dense() {
        let mut rng = Rng::seed(5);
        let h = random(3, 4, 3, &mut rng);
        let (ku, kt) = (2, 4);
        let g = structured_gram(&h, ku, kt);
        let (kt2, ku2) = (kt * kt, ku * ku);
        let a = Mat::from_fn(3 * kt2, 4 * ku2, |r, col| {
            let (ai, t, m, q) = (r / kt2, r % kt2, col / ku2, col % ku2);
            match ((t / kt).checked_sub(q / ku), (t % kt).checked_sub(q % ku)) {
                (Some(py), Some(px)) if py < 3 && px < 3 => h.weight[h.at(ai, m, py, px)],
                _ => 0.0,
            }
        });
        let dense = &a * a.transpose();
        let diff = (&dense - &g).norm_max();
        assert!(diff < 1e-12, "{diff}");
    }

    #[test]
    fn solve_f1_and_f2_are_exact_when_underdetermined() {
        let mut rng = Rng::seed(9);
        let g = pad_centered(&random(3, 2, 3, &mut rng), 5);
        for (k1, k2, cm) in [(3, 3, 8), (5, 1, 4), (1, 5, 4)] {
            let f1 = random(cm, 2, k1, &mut rng);
            let f2 = random(3, cm, k2, &mut rng);
            if cm * k1 * k1 >= 3 * 25 {
                let (s1, _) = solve_f1(&g, &f2, &f1);
                assert!(relative_residual(&g, &f2, &s1) < 1e-12, "f1 {k1} {k2}");
            }
            if cm * k2 * k2 >= 2 * 25 {
                let (s2, _) = solve_f2(&g, &f1, &f2);
                assert!(relative_residual(&g, &s2, &f1) < 1e-12, "f2 {k1} {k2}");
            }
        }
    }
}
