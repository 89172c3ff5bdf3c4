//! Where a morph put its parent's parameters, so that optimizer state can follow them.
//!
//! A morph rebuilds the network, but most of the child's values are the parent's own: layers
//! the morph did not touch, a widened layer's old channels (shuffled among the new ones, eq.
//! 12-18), a grown kernel's old taps (centred, section 3.4.2). [`origins`] says, for every
//! tensor of the child, which parent tensor it continues and, along each axis, which parent
//! index every child index came from. Momentum or Adam moments copied along these maps let
//! training go on without restarting the optimizer; positions without a parent (new layers,
//! new channels, new taps, Net2WiderNet's replicas) start from zero state.
//!
//! Tensors are named as in model files (`layers.3.weight`,
//! `layers.3.branches.1.0.bias`, see `docs/format.md`).

use std::fmt;
use std::ops::Range;

use netmorph_core::morph::width::consumer;
use netmorph_core::morph::MorphReport;
use netmorph_core::{Kernel, Layer, LayerPath, Network, Scalar};

/// Along one axis of a child tensor: `None` when every index is the parent's own, else the
/// parent index behind each child index (`None` for a position the morph created).
pub type AxisMap = Option<Vec<Option<usize>>>;

/// Where one tensor of the child came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    /// The child tensor's name.
    pub child: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The parent tensor it continues and that tensor's shape; `None` for a tensor the morph
    /// created.
    pub parent: Option<(String, Vec<usize>)>,
    /// One map per axis of the child tensor (empty when `parent` is `None`).
    pub index: Vec<AxisMap>,
}

/// A child that does not line up with its parent and report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarryError {
    /// What did not line up.
    pub reason: String,
}

impl fmt::Display for CarryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot trace the child's parameters to the parent's: {}; pass the parent, the child and the report of the same morph",
            self.reason
        )
    }
}

impl std::error::Error for CarryError {}

fn unaligned(reason: String) -> CarryError {
    CarryError { reason }
}

/// The origin of every tensor of `child`, which `report`'s morph made from `parent`.
///
/// # Errors
/// [`CarryError`] when `child` and `report` are not what that morph of `parent` gives.
///
/// # Examples
/// ```
/// use netmorph::carry::origins;
/// use netmorph::{Kernel, Layer, Network, Rng, Shape};
/// let mut rng = Rng::seed(1);
/// let mut k = Kernel::<f64>::zeros(3, 2, 1);
/// k.weight = rng.normals(6, 1.0);
/// let out = Kernel::<f64>::zeros(2, 3, 1);
/// let net = Network::new(Shape::flat(2), vec![Layer::Dense(k), Layer::Dense(out)]).unwrap();
/// let op = netmorph::ops::parse_op("width@0,to=5").unwrap();
/// let (child, report) = op.apply(&net, &mut rng).unwrap();
/// let o = origins(&net, &child, &report).unwrap();
/// assert_eq!(o[0].child, "layers.0.weight");
/// // Three of the five rows are the parent's, shuffled among two new ones.
/// let rows = o[0].index[0].as_ref().unwrap();
/// assert_eq!(rows.iter().flatten().count(), 3);
/// ```
pub fn origins<T: Scalar>(
    parent: &Network<T>,
    child: &Network<T>,
    report: &MorphReport,
) -> Result<Vec<Origin>, CarryError> {
    let plan = Plan::new(parent, child, report)?;
    let mut out = Vec::new();
    plan.walk(child.layers(), &[], &mut out)?;
    Ok(out)
}

/// How the morph's sequence lines up, and what a width morph did to it.
struct Plan<'a, T> {
    parent: &'a Network<T>,
    /// The path of the sequence the morph changed (pairs of block index and branch).
    prefix: Vec<usize>,
    /// For each layer of the child's sequence, its parent index (`None`: created).
    align: Vec<Option<usize>>,
    /// A width morph: the widened layer, its consumer and the channels' origins.
    width: Option<(usize, usize, &'a [Option<usize>])>,
}

impl<'a, T: Scalar> Plan<'a, T> {
    fn new(
        parent: &'a Network<T>,
        child: &Network<T>,
        report: &'a MorphReport,
    ) -> Result<Self, CarryError> {
        let path = &report.layer.0;
        let Some((&i, prefix)) = path.split_last() else {
            return Err(unaligned("the report names no layer".into()));
        };
        let (pseq, cseq) = (
            sequence(parent.layers(), prefix)?,
            sequence(child.layers(), prefix)?,
        );
        let added = cseq
            .len()
            .checked_sub(pseq.len())
            .ok_or_else(|| unaligned("the child has fewer layers than the parent".into()))?;
        let first_new = report.new_layers.first().map_or(i, |l| l.path.last());
        // Replacing morphs remove layer `i` and put their layers in its place; inserting
        // ones add layers; the rest reshape layers in place.
        let (removed, created): (Option<usize>, Range<usize>) = match report.op {
            "depth" | "sequential" | "stacked" => (Some(i), i..i + added + 1),
            "insert" => (None, i..i + added),
            "idmorph" => (None, first_new..first_new + added),
            _ if added == 0 => (None, 0..0),
            op => return Err(unaligned(format!("`{op}` added {added} layers"))),
        };
        let mut align = Vec::with_capacity(cseq.len());
        let mut next = 0;
        for ci in 0..cseq.len() {
            if created.contains(&ci) {
                align.push(None);
                continue;
            }
            if removed == Some(next) {
                next += 1;
            }
            align.push(Some(next));
            next += 1;
        }
        if removed == Some(next) {
            next += 1;
        }
        if next != pseq.len() {
            return Err(unaligned(format!(
                "`{}` at {} leaves {} of the parent's {} layers, the child has {}",
                report.op,
                report.layer,
                next,
                pseq.len(),
                cseq.len()
            )));
        }
        let width = match report.op {
            "width" | "net2wider" => {
                let j = consumer(parent, &report.layer)
                    .map_err(|e| unaligned(e.to_string()))?
                    .last();
                Some((i, j, report.channels.as_slice()))
            }
            _ => None,
        };
        Ok(Self {
            parent,
            prefix: prefix.to_vec(),
            align,
            width,
        })
    }

    /// The parent path of the child layer at `path`, `None` if the morph created it.
    fn parent_path(&self, path: &[usize]) -> Option<Vec<usize>> {
        let d = self.prefix.len();
        if path.len() > d && path[..d] == self.prefix[..] {
            let mut p = path.to_vec();
            p[d] = self.align.get(path[d]).copied().flatten()?;
            Some(p)
        } else {
            Some(path.to_vec())
        }
    }

    /// The width morph's part at `path`: `(widened, consumer, channels)` flags for a layer of
    /// the morphed sequence.
    fn width_role(&self, path: &[usize]) -> Option<(usize, usize, usize, &'a [Option<usize>])> {
        let (i, j, channels) = self.width?;
        let (&ci, prefix) = path.split_last()?;
        (prefix == self.prefix.as_slice()).then_some((ci, i, j, channels))
    }

    fn walk(
        &self,
        layers: &[Layer<T>],
        at: &[usize],
        out: &mut Vec<Origin>,
    ) -> Result<(), CarryError> {
        for (li, layer) in layers.iter().enumerate() {
            let path: Vec<usize> = at.iter().copied().chain([li]).collect();
            if let Layer::ParallelSum(branches) = layer {
                for (b, seq) in branches.iter().enumerate() {
                    let inner: Vec<usize> = path.iter().copied().chain([b]).collect();
                    self.walk(seq, &inner, out)?;
                }
                continue;
            }
            let from = match self.parent_path(&path) {
                Some(p) => Some(self.parent_layer(&p, layer)?),
                None => None,
            };
            self.tensors(layer, &path, from, out)?;
        }
        Ok(())
    }

    /// The parent layer at `path`, which must be of `layer`'s type.
    fn parent_layer(
        &self,
        path: &[usize],
        layer: &Layer<T>,
    ) -> Result<(Vec<usize>, &'a Layer<T>), CarryError> {
        let found = LayerPath::from_slice(path).and_then(|p| self.parent.get(&p));
        match found {
            Some(l) if l.name() == layer.name() => Ok((path.to_vec(), l)),
            _ => Err(unaligned(format!(
                "the child's {} at {} has no counterpart in the parent",
                layer.name(),
                name(path)
            ))),
        }
    }

    fn tensors(
        &self,
        layer: &Layer<T>,
        path: &[usize],
        from: Option<(Vec<usize>, &Layer<T>)>,
        out: &mut Vec<Origin>,
    ) -> Result<(), CarryError> {
        let role = self.width_role(path);
        let base = name(path);
        let from_base = from.as_ref().map(|(p, _)| name(p));
        let mut push = |suffix: &str, shape: Vec<usize>, pshape: Option<Vec<usize>>, index| {
            out.push(Origin {
                child: format!("{base}.{suffix}"),
                shape,
                parent: from_base
                    .as_ref()
                    .zip(pshape)
                    .map(|(b, s)| (format!("{b}.{suffix}"), s)),
                index,
            });
        };
        match (layer, from.map(|(_, l)| l)) {
            (Layer::Dense(_) | Layer::Conv2d(_), from) => {
                let (Some(k), pk) = (layer.kernel(), from.and_then(Layer::kernel)) else {
                    return Ok(());
                };
                let conv = matches!(layer, Layer::Conv2d(_));
                let wshape = |k: &Kernel<T>| {
                    if conv {
                        vec![k.out, k.inp, k.k, k.k]
                    } else {
                        vec![k.out, k.inp]
                    }
                };
                let Some(pk) = pk else {
                    push("weight", wshape(k), None, Vec::new());
                    push("bias", vec![k.out], None, Vec::new());
                    return Ok(());
                };
                let rows = match role {
                    Some((ci, i, _, channels)) if ci == i => {
                        channel_map(channels, (k.out, pk.out), false, path)?
                    }
                    _ => same(k.out, pk.out, "output channels", path)?,
                };
                let cols = match role {
                    Some((ci, _, j, channels)) if ci == j => {
                        channel_map(channels, (k.inp, pk.inp), true, path)?
                    }
                    _ => same(k.inp, pk.inp, "input channels", path)?,
                };
                let mut index = vec![rows.clone(), cols];
                if conv {
                    let taps = centred(k.k, pk.k, path)?;
                    index.extend([taps.clone(), taps]);
                }
                push("weight", wshape(k), Some(wshape(pk)), index);
                push("bias", vec![k.out], Some(vec![pk.out]), vec![rows]);
            }
            (Layer::Activation(a), from) => {
                let Some(Layer::Activation(pa)) = from else {
                    push("a", vec![a.a.len()], None, Vec::new());
                    return Ok(());
                };
                let map = match role {
                    Some((ci, i, j, channels)) if i < ci && ci < j => {
                        channel_map(channels, (a.a.len(), pa.a.len()), false, path)?
                    }
                    _ => same(a.a.len(), pa.a.len(), "channels", path)?,
                };
                push("a", vec![a.a.len()], Some(vec![pa.a.len()]), vec![map]);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The layer sequence at `prefix` (pairs of block index and branch).
fn sequence<'a, T>(layers: &'a [Layer<T>], prefix: &[usize]) -> Result<&'a [Layer<T>], CarryError> {
    let mut seq = layers;
    for pair in prefix.chunks(2) {
        seq = match (pair, pair.first().and_then(|&l| seq.get(l))) {
            (&[_, b], Some(Layer::ParallelSum(bs))) => bs.get(b).map(Vec::as_slice),
            _ => None,
        }
        .ok_or_else(|| unaligned(format!("no branch at {}", name(prefix))))?;
    }
    Ok(seq)
}

/// The axis map of a widened blob's `channels` (child order, parent channel or `None`) on an
/// axis of `child` entries whose parent had `parent`: one entry per channel, or for the
/// consumer, `child / channels` consecutive entries per channel (a block of `H' W'` columns
/// after a Flatten).
fn channel_map(
    channels: &[Option<usize>],
    (child, parent): (usize, usize),
    consumer: bool,
    path: &[usize],
) -> Result<AxisMap, CarryError> {
    let n = channels.len();
    let fits = if consumer {
        n > 0 && child % n == 0
    } else {
        child == n
    };
    if !fits {
        return Err(unaligned(format!(
            "{} has {child} channels where the report's width morph made {n}",
            name(path)
        )));
    }
    let block = child / n;
    let map: Vec<Option<usize>> = (0..child)
        .map(|c| channels[c / block].map(|s| s * block + c % block))
        .collect();
    if map.iter().flatten().any(|&p| p >= parent) {
        return Err(unaligned(format!(
            "the report's width morph takes channels of {} that its parent does not have",
            name(path)
        )));
    }
    Ok(Some(map))
}

/// The axis map of an axis the morph did not change (`child == parent`).
fn same(child: usize, parent: usize, what: &str, path: &[usize]) -> Result<AxisMap, CarryError> {
    if child == parent {
        Ok(None)
    } else {
        Err(unaligned(format!(
            "{} has {child} {what} where the parent has {parent}",
            name(path)
        )))
    }
}

/// The taps of a kernel grown from `parent` to `child` (centred, section 3.4.2).
fn centred(child: usize, parent: usize, path: &[usize]) -> Result<AxisMap, CarryError> {
    if child == parent {
        return Ok(None);
    }
    match child.checked_sub(parent) {
        Some(d) if d % 2 == 0 => Ok(Some(
            (0..child)
                .map(|t| t.checked_sub(d / 2).filter(|&p| p < parent))
                .collect(),
        )),
        _ => Err(unaligned(format!(
            "{} has a {child}x{child} kernel where the parent's is {parent}x{parent}",
            name(path)
        ))),
    }
}

/// `layers.3` for `[3]`, `layers.3.branches.1.0` for `[3, 1, 0]`.
fn name(path: &[usize]) -> String {
    let mut s = String::from("layers");
    for (n, c) in path.iter().enumerate() {
        if n % 2 == 1 {
            s.push_str(".branches");
        }
        s.push_str(&format!(".{c}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::parse_op;
    use netmorph_core::{ActKind, Conv2d, PActivation, Pool, Rng, Shape};

    /// A conv net whose every tensor is random (so equal values mean carried values).
    fn net(rng: &mut Rng) -> Network<f64> {
        let conv = |rng: &mut Rng, out, inp, k| {
            let mut kernel = Kernel::zeros(out, inp, k);
            kernel.weight = rng.normals(out * inp * k * k, 1.0);
            kernel.bias = rng.normals(out, 1.0);
            Layer::Conv2d(Conv2d {
                kernel,
                stride: 1,
                pad: k / 2,
            })
        };
        let mut act = PActivation::plain(ActKind::Relu, 4);
        act.a = vec![0.0, 0.25, 0.0, 1.0];
        let mut dense = Kernel::zeros(3, 4 * 3 * 3, 1);
        dense.weight = rng.normals(3 * 36, 1.0);
        dense.bias = rng.normals(3, 1.0);
        let layers = vec![
            conv(rng, 4, 2, 3),
            Layer::Activation(act),
            Layer::MaxPool2d(Pool {
                k: 2,
                stride: 2,
                ceil: true,
            }),
            conv(rng, 4, 4, 3),
            Layer::Activation(PActivation::plain(ActKind::Relu, 4)),
            Layer::Flatten,
            Layer::Dense(dense),
        ];
        Network::new(Shape::image(2, 5, 5), layers).unwrap()
    }

    fn values<T: Scalar>(net: &Network<T>, name: &str) -> Vec<f64> {
        let bytes = crate::model_file::to_bytes(net).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Row-major flat index of `ix` in `shape`.
    fn flat(ix: &[usize], shape: &[usize]) -> usize {
        ix.iter().zip(shape).fold(0, |a, (i, n)| a * n + i)
    }

    /// Every carried value equals the parent's value it came from; every parent tensor is
    /// continued at most once; the child's tensors are all listed.
    fn check(op: &str, exact_values: bool) {
        let mut rng = Rng::seed(7);
        let parent = net(&mut rng);
        let (child, report) = parse_op(op).unwrap().apply(&parent, &mut rng).unwrap();
        let list = origins(&parent, &child, &report).unwrap();
        let bytes = crate::model_file::to_bytes(&child).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(list.len(), st.len(), "{op}");
        let mut seen = std::collections::HashSet::new();
        let mut carried = 0;
        for o in &list {
            assert_eq!(st.tensor(&o.child).unwrap().shape(), o.shape, "{op}");
            let Some((pname, pshape)) = &o.parent else {
                continue;
            };
            assert!(seen.insert(pname.clone()), "{op}: {pname} continued twice");
            let (cv, pv) = (values(&child, &o.child), values(&parent, pname));
            for (at, &value) in cv.iter().enumerate() {
                let mut rest = at;
                let mut cix = vec![0; o.shape.len()];
                for (c, &n) in cix.iter_mut().zip(&o.shape).rev() {
                    *c = rest % n;
                    rest /= n;
                }
                let pix: Option<Vec<usize>> = cix
                    .iter()
                    .zip(&o.index)
                    .map(|(&c, m)| m.as_ref().map_or(Some(c), |m| m[c]))
                    .collect();
                if let Some(pix) = pix {
                    carried += 1;
                    let p = pv[flat(&pix, pshape)];
                    if exact_values {
                        assert_eq!(value, p, "{op}: {} {cix:?} <- {pname} {pix:?}", o.child);
                    }
                }
            }
        }
        assert!(carried > 0, "{op}");
    }

    #[test]
    fn carried_values_are_the_parents_for_every_op() {
        for op in [
            "width@0,to=7",
            "width@3,to=6",
            "kernel@3,k=5",
            "depth@3,cl=5,k1=3,k2=3",
            "depth@6,cl=8",
            "insert@3,cl=4,k1=3,k2=1",
            "idmorph@3,k=3",
            "stack@3,n=2",
            "subnet@0,widths=6,kernels=3/3",
        ] {
            check(op, true);
        }
        // Net2WiderNet divides a replicated channel's outgoing weights: places, not values.
        check("net2wider@3,to=7", false);
    }

    #[test]
    fn ops_inside_a_parallel_block_are_traced() {
        let mut rng = Rng::seed(3);
        let parent = net(&mut rng);
        let (stacked, _) = parse_op("stack@3,n=2")
            .unwrap()
            .apply(&parent, &mut rng)
            .unwrap();
        let (child, report) = parse_op("kernel@3.1.0,k=5")
            .unwrap()
            .apply(&stacked, &mut rng)
            .unwrap();
        let list = origins(&stacked, &child, &report).unwrap();
        let grown = list
            .iter()
            .find(|o| o.child == "layers.3.branches.1.0.weight")
            .unwrap();
        assert_eq!(
            grown.parent.as_ref().unwrap().0,
            "layers.3.branches.1.0.weight"
        );
        assert_eq!(
            grown.index[2].as_ref().unwrap(),
            &vec![None, Some(0), Some(1), Some(2), None]
        );
    }

    #[test]
    fn a_mismatched_report_is_an_error() {
        let mut rng = Rng::seed(5);
        let parent = net(&mut rng);
        let (child, _) = parse_op("depth@3,cl=5,k1=3")
            .unwrap()
            .apply(&parent, &mut rng)
            .unwrap();
        let (_, other) = parse_op("kernel@0,k=5")
            .unwrap()
            .apply(&parent, &mut rng)
            .unwrap();
        let e = origins(&parent, &child, &other).unwrap_err();
        assert!(e.to_string().contains("kernel"), "{e}");
        // A width report paired with a child of another morph that kept the layer count.
        let (grown, _) = parse_op("kernel@3,k=5")
            .unwrap()
            .apply(&parent, &mut rng)
            .unwrap();
        for op in ["width@0,to=7", "width@3,to=6"] {
            let (_, width) = parse_op(op).unwrap().apply(&parent, &mut rng).unwrap();
            let e = origins(&parent, &grown, &width).unwrap_err();
            assert!(e.to_string().contains("channels"), "{op}: {e}");
        }
    }
}
