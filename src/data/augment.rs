//! Training-time augmentation: random shifts (pad and crop) and horizontal flips.

use netmorph_core::{Rng, Tensor};

/// How to perturb training images, each independently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Shift by up to this many pixels along each axis, filling with zeros: the same as
    /// zero-padding by `crop` and cutting a random window of the original size (on normalised
    /// data zero is the channel mean).
    pub crop: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
}

/// Applies `aug` to every sample of `x` in place, drawing from `rng`.
///
/// # Examples
/// ```
/// use netmorph::data::{augment, Augment};
/// use netmorph::{Rng, Shape, Tensor};
/// let mut x = Tensor::<f32>::new(1, Shape::image(1, 1, 3), vec![1.0, 2.0, 3.0]).unwrap();
/// let before = x.clone();
/// augment(&mut x, Augment { crop: 0, flip: false }, &mut Rng::seed(1));
/// assert_eq!(x, before);
/// ```
pub fn augment(x: &mut Tensor<f32>, aug: Augment, rng: &mut Rng) {
    let (c, h, w) = (x.shape.c, x.shape.h, x.shape.w);
    if x.shape.is_empty() {
        // Nothing to move; also, a chunk size of 0 panics.
        return;
    }
    let mut src = vec![0.0f32; x.shape.len()];
    let span = 2 * aug.crop + 1;
    for sample in x.data.chunks_exact_mut(c * h * w) {
        // Output pixel (y, x) reads input (y + dy, x' + dx), x' mirrored when flipping.
        let dy = rng.below(span) as isize - aug.crop as isize;
        let dx = rng.below(span) as isize - aug.crop as isize;
        let flip = aug.flip && rng.below(2) == 1;
        if dy == 0 && dx == 0 && !flip {
            continue;
        }
        src.copy_from_slice(sample);
        for (plane, from) in sample.chunks_exact_mut(h * w).zip(src.chunks_exact(h * w)) {
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let iy = y as isize + dy;
                for (xo, v) in row.iter_mut().enumerate() {
                    let xm = if flip { w - 1 - xo } else { xo };
                    let ix = xm as isize + dx;
                    *v = if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                        from[iy as usize * w + ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
