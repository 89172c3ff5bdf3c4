//! Kernel-size morphing (section 3.4.2): grow a convolution's kernel from `K` to `K~` by
//! zero-padding the filter and adding `(K~ - K) / 2` to the layer's padding (Fig. 5). Exact at
//! every pixel, borders included, and for any stride.

use super::{finish, linear_kernel, locate, nonzero_fraction, MorphError, MorphReport, NewLayer};
use crate::solve::deconv::pad_centered;
use crate::{Layer, LayerPath, Network, Scalar};

/// Grows the kernel of the convolution at `path` to `k` (`k - K` even and non-negative).
///
/// # Errors
/// [`MorphError::KernelSize`] if `k` is smaller than the current kernel or differs from it by
/// an odd amount; [`MorphError::NotMorphable`] for a non-convolution layer;
/// [`MorphError::NonFinite`].
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
/// ```
pub fn grow_kernel<T: Scalar>(
    net: &Network<T>,
    path: &LayerPath,
    k: usize,
) -> Result<(Network<T>, MorphReport), MorphError> {
    let mut layers = net.layers().to_vec();
    let (seq, i) = locate(&mut layers, path, false)?;
    let current = linear_kernel(seq, i, path, "kernel")?.k;
    let Layer::Conv2d(conv) = &mut seq[i] else {
        return Err(MorphError::NotMorphable {
            layer: path.clone(),
            found: seq[i].name(),
            op: "kernel",
        });
    };
    if k < current || (k - current) % 2 != 0 {
        return Err(MorphError::KernelSize {
            layer: path.clone(),
            current,
            requested: k,
        });
    }
    let padded: crate::Kernel<T> = pad_centered(&conv.kernel.cast(), k).cast();
    conv.kernel.weight = padded.weight;
    conv.kernel.k = k;
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
