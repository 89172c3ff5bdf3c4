//! Kernel-size morphing (section 3.4.2): grow a convolution's kernel from `K` to `K~` by
//! zero-padding the filter and adding `(K~ - K) / 2` to the layer's padding (Fig. 5). Exact at
//! every pixel, borders included, and for any stride.
//!
//! # The largest useful kernel
//!
//! Along an axis of `n` input pixels, output `o` of a layer with kernel `K`, padding `p` and
//! stride `s` reads input rows `a_o .. a_o + K - 1` with `a_o = o s - p`. Growing the kernel by
//! `r` on each side adds the rows `a_o - r` and `a_o + K - 1 + r`. The top one is an input
//! row for some output only while `r <= a_last = (out - 1) s - p`, the bottom one only while
//! `r <= n - K + p` (the bottom edge seen from the first window). Past
//! `R = max(a_last, n - K + p)` on both axes, the new outermost ring of taps multiplies zero
//! padding for every output of every input: its weights never change the output and never
//! receive a gradient, so the child would only pay for them (a `999 x 999` kernel on a
//! `32 x 32` input costs a thousand times the work of a `31 x 31` one). Kernel growth
//! therefore stops at `K + 2 R` ([`MorphError::KernelBeyondInput`]). For a "same"
//! convolution (stride 1, `p = (K - 1) / 2`) on an `H x W` input that is
//! `2 max(H, W) - 1`; the same bound holds for the identity layers of
//! [`super::baseline::id_morph`] (`K = 1`, no padding).

use super::cost::{self, reserve};
use super::{finish, linear_kernel, locate, nonzero_fraction, MorphError, MorphReport, NewLayer};
use crate::solve::deconv::try_pad_centered;
use crate::{Layer, LayerPath, Network, Scalar, Shape};

/// The largest kernel size `K + 2 R` whose outermost taps still read the input of a
/// convolution with kernel `k`, padding `pad` and `stride` on `input` (see the module
/// documentation), saturating at `usize::MAX`: the limit of [`grow_kernel`] for that layer,
/// and with `(1, 0, 1, blob)` the limit of the identity kernels of
/// [`super::baseline::id_morph`] on `blob`. `None` unless the geometry is valid (`stride >= 1`
/// and the window fits the padded input, as in every valid network).
///
/// # Examples
/// ```
/// use netmorph_core::morph::kernel::largest_useful_kernel;
/// use netmorph_core::Shape;
/// // A "same" 3x3 convolution on 32x32: up to 2 * 32 - 1.
/// assert_eq!(largest_useful_kernel(3, 1, 1, Shape::image(16, 32, 32)), Some(63));
/// // Unpadded, stride 2 on 7x5: the last window starts at row 4, so a ring 4 rows out still
/// // reaches row 0.
/// assert_eq!(largest_useful_kernel(3, 0, 2, Shape::image(1, 7, 5)), Some(11));
/// assert_eq!(largest_useful_kernel(9, 0, 1, Shape::image(1, 7, 5)), None);
/// ```
pub fn largest_useful_kernel(k: usize, pad: usize, stride: usize, input: Shape) -> Option<usize> {
    if stride == 0 {
        return None;
    }
    let reach = |n: usize| {
        let span = pad.checked_mul(2)?.checked_add(n)?.checked_sub(k)?;
        // `a_last + pad = (out - 1) s`, where the last window starts in the padded input.
        let last = span / stride * stride;
        Some(last.saturating_sub(pad).max((n + pad).saturating_sub(k)))
    };
    let r = reach(input.h)?.max(reach(input.w)?);
    Some(r.saturating_mul(2).saturating_add(k))
}

/// The checks of a kernel growth from `current` to `k` on a layer with padding `pad` and
/// `stride` over `input`.
pub(crate) fn check_growth(
    path: &LayerPath,
    current: usize,
    k: usize,
    (pad, stride, input): (usize, usize, Shape),
) -> Result<(), MorphError> {
    if k < current || (k - current) % 2 != 0 {
        return Err(MorphError::KernelSize {
            layer: path.clone(),
            current,
            requested: k,
        });
    }
    // Layers of a validated network always have a valid geometry.
    let max = largest_useful_kernel(current, pad, stride, input).unwrap_or(usize::MAX);
    if k > max {
        return Err(MorphError::KernelBeyondInput {
            layer: path.clone(),
            requested: k,
            max,
        });
    }
    Ok(())
}

/// Grows the kernel of the convolution at `path` to `k` (`k - K` even and non-negative).
///
/// # Errors
/// [`MorphError::KernelSize`] if `k` is smaller than the current kernel or differs from it by
/// an odd amount; [`MorphError::KernelBeyondInput`] past the largest useful kernel (see the
/// module documentation); [`MorphError::NotMorphable`] for a non-convolution layer;
/// [`MorphError::NonFinite`]; [`MorphError::TooLarge`] or [`MorphError::Alloc`] for a kernel
/// that does not fit in memory.
///
/// # Examples
/// ```
/// use netmorph_core::morph::kernel::grow_kernel;
/// use netmorph_core::{Conv2d, Kernel, Layer, LayerPath, Network, Shape};
/// let conv = Conv2d { kernel: Kernel::<f32>::zeros(2, 1, 3), stride: 1, pad: 1 };
/// let net = Network::new(Shape::image(1, 6, 6), vec![Layer::Conv2d(conv)]).unwrap();
/// let (child, _) = grow_kernel(&net, &LayerPath::top(0), 7).unwrap();
/// assert!(matches!(&child.layers()[0], Layer::Conv2d(c) if c.kernel.k == 7 && c.pad == 3));
/// assert!(grow_kernel(&net, &LayerPath::top(0), 4).is_err());
/// // 11 = 2 * 6 - 1 is the largest kernel whose border taps still see the 6 x 6 input.
/// assert!(grow_kernel(&net, &LayerPath::top(0), 11).is_ok());
/// assert!(grow_kernel(&net, &LayerPath::top(0), 13).is_err());
/// ```
pub fn grow_kernel<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    k: usize,
) -> Result<(Network<T>, MorphReport), MorphError> {
    reserve(cost::kernel(net, path, k)?)?;
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, path, false)?;
    let current = linear_kernel(&seq[i], path, "kernel")?.k;
    let Layer::Conv2d(conv) = &mut seq[i] else {
        return Err(MorphError::NotMorphable {
            layer: path.clone(),
            found: seq[i].name(),
            op: "kernel",
        });
    };
    conv.kernel = try_pad_centered(&conv.kernel, k)?;
    conv.pad += (k - current) / 2;
    let nz = nonzero_fraction(&[&conv.kernel.weight]);
    let new = NewLayer {
        path: path.clone(),
        kind: "conv2d",
        out: conv.kernel.out,
        inp: conv.kernel.inp,
        k,
    };
    finish(
        net,
        layers,
        MorphReport::closed_form("kernel", path.clone(), alloc::vec![new], nz),
    )
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::{Conv2d, Kernel};

    /// The largest kernel whose outermost ring of taps reads an input pixel for some output,
    /// by trying every ring of every output window.
    fn brute_force(k: usize, pad: usize, stride: usize, input: Shape) -> usize {
        let live = |n: usize, r: usize, outer: bool| -> bool {
            let out = (n + 2 * pad - k) / stride + 1;
            (0..out).any(|o| {
                let start = (o * stride) as i64 - pad as i64 - r as i64;
                let taps = k + 2 * r;
                (0..taps).any(|t| {
                    let on_ring = t == 0 || t == taps - 1;
                    (!outer || on_ring) && (0..n as i64).contains(&(start + t as i64))
                })
            })
        };
        // Ring `r` is live if a tap on it reads the input on both axes.
        let ring = |r: usize| {
            (live(input.h, r, true) && live(input.w, r, false))
                || (live(input.h, r, false) && live(input.w, r, true))
        };
        let r = (0..3 * (input.h.max(input.w) + 2 * pad + k))
            .filter(|r| ring(*r))
            .max();
        k + 2 * r.unwrap_or(0)
    }

    #[test]
    fn the_useful_kernel_bound_matches_a_brute_force_search() {
        for (h, w) in [(1, 1), (5, 5), (7, 4), (3, 9)] {
            for k in 1..=5 {
                for pad in 0..=3 {
                    for stride in 1..=3 {
                        if h + 2 * pad < k || w + 2 * pad < k {
                            continue;
                        }
                        let input = Shape::image(1, h, w);
                        let bound = largest_useful_kernel(k, pad, stride, input).unwrap();
                        let exact = brute_force(k, pad, stride, input);
                        // Never refuses a kernel whose new taps can read the input; exact for
                        // stride 1 (with larger strides the windows may skip the input).
                        assert!(bound >= exact, "{h}x{w} k {k} pad {pad} stride {stride}");
                        if stride == 1 {
                            assert_eq!(bound, exact, "{h}x{w} k {k} pad {pad}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_growth_stops_where_new_taps_only_see_padding() {
        let conv = Conv2d {
            kernel: Kernel::<f32>::zeros(2, 3, 3),
            stride: 1,
            pad: 1,
        };
        let net = Network::new(Shape::image(3, 32, 32), vec![Layer::Conv2d(conv)]).unwrap();
        let path = LayerPath::top(0);
        // Before, k = 999 built a 999 x 999 kernel and its forward pass ran for minutes.
        for k in [65, 999, (1 << 40) + 1] {
            let e = grow_kernel(&net, &path, k).map(|r| r.1).unwrap_err();
            let want = MorphError::KernelBeyondInput {
                layer: path.clone(),
                requested: k,
                max: 63,
            };
            assert_eq!(e, want);
        }
        let (child, _) = grow_kernel(&net, &path, 63).unwrap();
        assert!(matches!(&child.layers()[0], Layer::Conv2d(c) if c.kernel.k == 63 && c.pad == 31));
    }
}
