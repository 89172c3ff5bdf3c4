//! Layer paths from C: `const size_t *path, size_t path_len`, the indices of the command
//! line's dotted paths (`3` is top-level layer 3; `3.1.0` is layer 0 of branch 1 of the
//! parallel block at 3; and so on), and the layers and sequences they name. A path that leaves
//! the network is [`NmStatus::ErrArgument`] with a message that names it and says where it
//! leaves.
//!
//! [`NmStatus::ErrArgument`]: crate::NmStatus::ErrArgument

use facade::net::MAX_PATH_DEPTH;
use facade::{Layer, LayerPath, Network};

use crate::layer::NmLayerKind;
use crate::ptr;
use crate::status::{Error, Result};

/// `ix` as the command line writes it, `3.1.0`.
fn dotted(ix: &[usize]) -> String {
    ix.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The `path_len` indices at `path` (parameter `path`); NULL is allowed when `path_len` is 0.
///
/// # Safety
/// `path` is NULL or points to `path_len` values.
unsafe fn indices<'a>(path: *const usize, path_len: usize) -> Result<&'a [usize]> {
    if path_len == 0 {
        return Ok(&[]);
    }
    // SAFETY: the caller's promise.
    unsafe { ptr::slice(path, path_len, "path") }
}

/// The path of a layer from the caller's `path` and `path_len`: at least one index (the
/// top-level layer), at most [`MAX_PATH_DEPTH`].
///
/// # Safety
/// `path` is NULL or points to `path_len` values.
pub(crate) unsafe fn layer_path(path: *const usize, path_len: usize) -> Result<LayerPath> {
    // SAFETY: the caller's promise.
    let ix = unsafe { indices(path, path_len) }?;
    if ix.is_empty() {
        return Err(Error::argument(
            "`path_len` is 0; a layer path starts with a top-level layer index",
        ));
    }
    LayerPath::from_slice(ix).ok_or_else(|| {
        Error::argument(format_args!(
            "layer path {} has {} indices, but layers nest at most {MAX_PATH_DEPTH} deep",
            dotted(ix),
            ix.len()
        ))
    })
}

/// The layers of the sequence `seq` names: the top level for `[]`, branch `b` of the parallel
/// block at path `p` for `p` followed by `b`. The error says where `seq` leaves the network.
fn sequence<'a>(
    net: &'a Network<f32>,
    seq: &[usize],
) -> std::result::Result<&'a [Layer<f32>], String> {
    let mut layers = net.layers();
    for (depth, pair) in seq.chunks(2).enumerate() {
        let block = &seq[..2 * depth + 1];
        let layer = member(layers, &seq[..2 * depth], pair[0])?;
        let Layer::ParallelSum(branches) = layer else {
            let kind = NmLayerKind::of(layer);
            return Err(format!(
                "layer {} is {} {} layer, not a parallel block; only a parallel block has branches",
                dotted(block),
                kind.article(),
                kind.name()
            ));
        };
        let Some(&b) = pair.get(1) else {
            return Err(format!(
                "it ends at the parallel block {0}, not at a branch; add a branch index (e.g. {0}.0)",
                dotted(block)
            ));
        };
        layers = branches.get(b).ok_or_else(|| {
            format!(
                "the parallel block {} has {} branches",
                dotted(block),
                branches.len()
            )
        })?;
    }
    Ok(layers)
}

/// Layer `i` of `layers`, the sequence at `seq`; the error says how many there are.
fn member<'a>(
    layers: &'a [Layer<f32>],
    seq: &[usize],
    i: usize,
) -> std::result::Result<&'a Layer<f32>, String> {
    layers.get(i).ok_or_else(|| {
        let n = layers.len();
        if seq.is_empty() {
            format!("the model has {n} top-level layers")
        } else {
            format!("branch {} has {n} layers", dotted(seq))
        }
    })
}

/// The layer at `path` in `net`.
pub(crate) fn layer_at<'a>(net: &'a Network<f32>, path: &LayerPath) -> Result<&'a Layer<f32>> {
    let ix = &path.0[..];
    let found = match ix.split_last() {
        None => Err("it is empty".to_string()),
        Some((_, seq)) if seq.len() % 2 == 1 => Err(format!(
            "it ends at a branch; add the index of a layer in it (e.g. {}.0)",
            dotted(ix)
        )),
        Some((&i, seq)) => sequence(net, seq).and_then(|layers| member(layers, seq, i)),
    };
    found.map_err(|why| {
        Error::argument(format_args!(
            "layer path {} does not exist: {why}",
            dotted(ix)
        ))
    })
}

/// The sequence of layers the caller's `path` names: the top level when `path_len` is 0
/// (`path` may then be NULL), else a parallel block's path followed by a branch index.
///
/// # Safety
/// `path` is NULL or points to `path_len` values.
pub(crate) unsafe fn sequence_at(
    net: &Network<f32>,
    path: *const usize,
    path_len: usize,
) -> Result<&[Layer<f32>]> {
    // SAFETY: the caller's promise.
    let ix = unsafe { indices(path, path_len) }?;
    sequence(net, ix)
        .map_err(|why| Error::argument(format_args!("path {} names no branch: {why}", dotted(ix))))
}
