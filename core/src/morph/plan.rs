//! [`MorphOp`]: every morph of this crate as one value, and [`apply_plan`] for a sequence.

use alloc::vec::Vec;

use super::baseline::{id_morph, net2wider};
use super::depth::{deepen, insert_identity, DepthParams, InsertParams};
use super::kernel::grow_kernel;
use super::subnet::{sequential, stacked, SequentialParams, StackedParams};
use super::width::widen;
use super::{MorphError, MorphReport};
use core::mem::size_of;

use crate::alloc_try::Count;
use crate::{Layer, LayerPath, Network, Rng, Scalar};

/// More than the most top-level layers one operation adds: a sequential subnet of
/// [`MAX_SUBNET_LAYERS`](super::subnet::MAX_SUBNET_LAYERS) layers with an activation between
/// each pair replaces one layer.
const MAX_ADDED: usize = 2 * super::subnet::MAX_SUBNET_LAYERS;

/// One morph operation and where it applies.
#[derive(Clone, Debug, PartialEq)]
pub enum MorphOp {
    /// [`deepen`]: `G -> F_l, phi^1, F_{l+1}`.
    Depth {
        /// Parent layer.
        layer: LayerPath,
        /// Sizes and algorithm.
        params: DepthParams,
    },
    /// [`insert_identity`]: two new layers where the parent computes the identity.
    InsertIdentity {
        /// Insertion point.
        at: LayerPath,
        /// Sizes and algorithm.
        params: InsertParams,
    },
    /// [`widen`].
    Width {
        /// Layer whose output is widened.
        layer: LayerPath,
        /// New channel count.
        width: usize,
    },
    /// [`grow_kernel`].
    Kernel {
        /// Convolution layer.
        layer: LayerPath,
        /// New kernel size.
        k: usize,
    },
    /// [`sequential`] subnet (eq. 19).
    Sequential {
        /// Parent layer.
        layer: LayerPath,
        /// Widths and kernels.
        params: SequentialParams,
    },
    /// [`stacked`] subnet (eq. 20).
    Stacked {
        /// Parent layer.
        layer: LayerPath,
        /// Branches and split.
        params: StackedParams,
    },
    /// [`id_morph`] baseline.
    IdMorph {
        /// Layer after which (and after whose activation) the identity goes.
        layer: LayerPath,
        /// Identity kernel size for convolutions.
        k: usize,
    },
    /// [`net2wider`] baseline.
    Net2Wider {
        /// Layer whose output is widened.
        layer: LayerPath,
        /// New channel count.
        width: usize,
        /// Noise on replicas' outgoing weights (0: exact).
        noise: f64,
    },
}

impl MorphOp {
    /// Applies the operation to `net`.
    ///
    /// # Errors
    /// The operation's [`MorphError`].
    pub fn apply<T: Scalar>(
        &self,
        net: &Network<T>,
        rng: &mut Rng,
    ) -> Result<(Network<T>, MorphReport), MorphError> {
        match self {
            Self::Depth { layer, params } => deepen(net, layer, params, rng),
            Self::InsertIdentity { at, params } => insert_identity(net, at, params, rng),
            Self::Width { layer, width } => widen(net, layer, *width, rng),
            Self::Kernel { layer, k } => grow_kernel(net, layer, *k),
            Self::Sequential { layer, params } => sequential(net, layer, params, rng),
            Self::Stacked { layer, params } => stacked(net, layer, params, rng),
            Self::IdMorph { layer, k } => id_morph(net, layer, *k),
            Self::Net2Wider {
                layer,
                width,
                noise,
            } => net2wider(net, layer, *width, *noise, rng),
        }
    }

    /// [`MorphOp::apply`] within a heap budget: the morph runs only if its bound
    /// ([`MorphOp::cost`]'s `workspace_bytes`: the child and every temporary) fits in
    /// `budget` bytes, beyond what is already allocated (the parent, the caller's data).
    /// Otherwise it returns [`MorphError::OverBudget`] before allocating anything. A device
    /// passes the heap it has left.
    ///
    /// # Errors
    /// [`MorphError::OverBudget`], or the operation's [`MorphError`].
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::morph::{plan::MorphOp, MorphError};
    /// use netmorph_core::{Kernel, Layer, LayerPath, Network, Rng, Shape};
    /// let layers = vec![Layer::Dense(Kernel::<f32>::zeros(8, 4, 1)), Layer::Dense(Kernel::zeros(2, 8, 1))];
    /// let net = Network::new(Shape::flat(4), layers).unwrap();
    /// let op = MorphOp::Width { layer: LayerPath::top(0), width: 16 };
    /// let needs = op.cost(&net).unwrap().workspace_bytes;
    /// assert!(matches!(op.apply_within(&net, &mut Rng::seed(1), needs - 1), Err(MorphError::OverBudget { .. })));
    /// let (child, _) = op.apply_within(&net, &mut Rng::seed(1), needs).unwrap();
    /// assert_eq!(child.output_shape(), net.output_shape());
    /// ```
    pub fn apply_within<T: Scalar>(
        &self,
        net: &Network<T>,
        rng: &mut Rng,
        budget: usize,
    ) -> Result<(Network<T>, MorphReport), MorphError> {
        let needs = self.cost(net)?.workspace_bytes;
        if needs > budget {
            return Err(MorphError::OverBudget { needs, budget });
        }
        self.apply(net, rng)
    }

    /// [`MorphOp::apply_within`] on `net` itself: the child replaces the parent, and only the
    /// top-level layers from the one the operation addresses on are copied, so a device never
    /// holds two copies of the layers before it (an MLP's large input layer, when a later
    /// layer grows). `budget` bounds the heap the morph may hold beyond what is allocated
    /// now; [`MorphOp::cost_in_place`] gives that amount before anything runs.
    ///
    /// The child is the one [`MorphOp::apply`] would return with the same `rng`: every
    /// operation reads only its layer and the layers after it.
    ///
    /// # Errors
    /// As [`MorphOp::apply_within`]; `net` is then unchanged.
    ///
    /// # Panics
    /// Only on a bug in a morph (each returns its errors); the network is then left without
    /// layers.
    ///
    /// # Examples
    /// ```
    /// use netmorph_core::morph::{depth::DepthParams, plan::MorphOp};
    /// use netmorph_core::{Kernel, Layer, LayerPath, Network, Rng, Shape};
    /// let mut rng = Rng::seed(5);
    /// let mut big = Kernel::<f32>::zeros(32, 784, 1);
    /// big.weight = rng.normals(32 * 784, 0.05).iter().map(|v| *v as f32).collect();
    /// let mut small = Kernel::<f32>::zeros(10, 32, 1);
    /// small.weight = rng.normals(320, 0.2).iter().map(|v| *v as f32).collect();
    /// let mut net = Network::new(Shape::flat(784), vec![Layer::Dense(big), Layer::Dense(small)]).unwrap();
    /// let op = MorphOp::Depth { layer: LayerPath::top(1), params: DepthParams::new(16, 1, 1) };
    /// let (copy, whole) = (op.cost_in_place(&net).unwrap(), op.cost(&net).unwrap());
    /// assert!(whole.workspace_bytes - copy > 90_000); // the 784 x 32 layer (98 KiB) is not copied
    /// let report = op.apply_in_place(&mut net, &mut rng, copy).unwrap();
    /// assert_eq!(net.layers().len(), 4);
    /// assert_eq!(report.layer, LayerPath::top(1));
    /// ```
    pub fn apply_in_place<T: Scalar>(
        &self,
        net: &mut Network<T>,
        rng: &mut Rng,
        budget: usize,
    ) -> Result<MorphReport, MorphError> {
        let needs = self.cost_in_place(net)?;
        if needs > budget {
            return Err(MorphError::OverBudget { needs, budget });
        }
        let (lo, local) = self.on_tail(net)?;
        let tail_input =
            net.shape_before(&LayerPath::top(lo))
                .ok_or_else(|| MorphError::NoSuchLayer {
                    layer: self.path().clone(),
                })?;
        let output = net.output_shape();
        let mut head = net.take_layers();
        // The whole list moves as it is (`split_off(0)` would allocate a buffer as large).
        let tail = if lo == 0 {
            core::mem::take(&mut head)
        } else {
            head.split_off(lo)
        };
        let tail = Network::from_validated(tail_input, output, tail);
        let head_params: usize = head.iter().map(Layer::param_count).sum();
        let result = local.apply(&tail, rng).and_then(|(child, report)| {
            // Room for the child's layers before the parent's are let go (nothing is lost if
            // it cannot be had).
            if lo > 0 {
                head.try_reserve_exact(child.layers().len())
                    .map_err(|_| MorphError::Alloc {
                        bytes: child.layers().len().saturating_mul(size_of::<Layer<T>>()),
                    })?;
            }
            Ok((child, report))
        });
        let (layers, result) = match result {
            Ok((child, mut report)) => {
                report.params_before += head_params;
                report.params_after += head_params;
                shift(&mut report.layer, lo);
                report
                    .new_layers
                    .iter_mut()
                    .for_each(|l| shift(&mut l.path, lo));
                drop(tail);
                (child.into_layers(), Ok(report))
            }
            Err(mut e) => {
                if let Some(layer) = e.layer_mut() {
                    shift(layer, lo);
                }
                (tail.into_layers(), Err(e))
            }
        };
        if head.is_empty() {
            head = layers;
        } else {
            // Within capacity: reserved above, or the parent's own buffer.
            head.extend(layers);
        }
        // The child's tail takes the same input and gives the same output as the parent's.
        net.put_layers(head);
        result
    }

    /// The heap [`MorphOp::apply_in_place`] may hold beyond what is allocated before it: its
    /// [`MorphOp::cost`] without the copy of the layers before the one it addresses, plus the
    /// layer lists it splits and joins (the tail's slots, and a list long enough for the
    /// child).
    ///
    /// # Errors
    /// As [`MorphOp::cost`].
    pub fn cost_in_place<T: Scalar>(&self, net: &Network<T>) -> Result<usize, MorphError> {
        let whole = self.cost(net)?.workspace_bytes;
        let (lo, _) = self.on_tail(net)?;
        let layers = net.layers();
        let head = super::cost::layers_bytes(&layers[..lo]).get().unwrap_or(0);
        // The child's top level has at most MAX_ADDED more layers than the parent's.
        let slots = Count::of(layers.len() - lo) + layers.len() + MAX_ADDED;
        let lists = (slots * size_of::<Layer<T>>())
            .get()
            .ok_or_else(|| MorphError::TooLarge {
                layer: self.path().clone(),
                what: "layer list",
            })?;
        whole
            .saturating_sub(head)
            .checked_add(lists)
            .ok_or_else(|| MorphError::TooLarge {
                layer: self.path().clone(),
                what: "workspace",
            })
    }

    /// The top-level index the operation's path starts at, and the operation addressed
    /// relative to the layers from that index on.
    fn on_tail<T: Scalar>(&self, net: &Network<T>) -> Result<(usize, MorphOp), MorphError> {
        let missing = || MorphError::NoSuchLayer {
            layer: self.path().clone(),
        };
        let lo = *self.path().0.first().ok_or_else(missing)?;
        if lo > net.layers().len() {
            return Err(missing());
        }
        let mut local = self.clone();
        local.path_mut().0[0] = 0;
        Ok((lo, local))
    }

    /// The layer (or insertion point) the operation addresses.
    pub fn path(&self) -> &LayerPath {
        match self {
            Self::Depth { layer, .. }
            | Self::Width { layer, .. }
            | Self::Kernel { layer, .. }
            | Self::Sequential { layer, .. }
            | Self::Stacked { layer, .. }
            | Self::IdMorph { layer, .. }
            | Self::Net2Wider { layer, .. } => layer,
            Self::InsertIdentity { at, .. } => at,
        }
    }

    fn path_mut(&mut self) -> &mut LayerPath {
        match self {
            Self::Depth { layer, .. }
            | Self::Width { layer, .. }
            | Self::Kernel { layer, .. }
            | Self::Sequential { layer, .. }
            | Self::Stacked { layer, .. }
            | Self::IdMorph { layer, .. }
            | Self::Net2Wider { layer, .. } => layer,
            Self::InsertIdentity { at, .. } => at,
        }
    }

    /// Whether the operation preserves the function exactly (everything but Net2WiderNet
    /// with noise).
    pub fn is_exact(&self) -> bool {
        !matches!(self, Self::Net2Wider { noise, .. } if *noise > 0.0)
    }
}

/// Applies `ops` in order.
///
/// # Errors
/// The first failing operation's index and error.
///
/// # Examples
/// ```
/// use netmorph_core::morph::plan::{apply_plan, MorphOp};
/// use netmorph_core::{ActKind, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape};
/// let mut rng = Rng::seed(2);
/// let mut k = Kernel::<f64>::zeros(3, 2, 1);
/// k.weight = rng.normals(6, 1.0);
/// let net = Network::new(Shape::flat(2), vec![Layer::Dense(k)]).unwrap();
/// let ops = [MorphOp::Depth { layer: LayerPath::top(0), params: netmorph_core::morph::depth::DepthParams::new(5, 1, 1) },
///            MorphOp::Width { layer: LayerPath::top(0), width: 8 }];
/// let (child, reports) = apply_plan(&net, &ops, &mut rng).unwrap();
/// assert_eq!(reports.len(), 2);
/// assert_eq!(child.layers().len(), 3);
/// ```
pub fn apply_plan<T: Scalar>(
    net: &Network<T>,
    ops: &[MorphOp],
    rng: &mut Rng,
) -> Result<(Network<T>, Vec<MorphReport>), (usize, MorphError)> {
    let mut cur = net.clone();
    let mut reports = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let (next, r) = op.apply(&cur, rng).map_err(|e| (i, e))?;
        cur = next;
        reports.push(r);
    }
    Ok((cur, reports))
}

/// A morph plan of at most `N` operations in a fixed-capacity list: a device declares its
/// growth schedule without a heap allocation, and its reports come back the same way.
///
/// # Examples
/// ```
/// use netmorph_core::morph::depth::DepthParams;
/// use netmorph_core::morph::plan::{MorphOp, Plan};
/// use netmorph_core::{Kernel, Layer, LayerPath, Network, Rng, Shape};
/// let mut rng = Rng::seed(3);
/// let mut k = Kernel::<f32>::zeros(3, 4, 1);
/// k.weight = rng.normals(12, 0.5).iter().map(|v| *v as f32).collect();
/// let net = Network::new(Shape::flat(4), vec![Layer::Dense(k)]).unwrap();
/// let mut plan = Plan::<2>::new();
/// plan.push(MorphOp::Depth { layer: LayerPath::top(0), params: DepthParams::new(6, 1, 1) }).unwrap();
/// plan.push(MorphOp::Width { layer: LayerPath::top(0), width: 9 }).unwrap();
/// assert!(plan.push(MorphOp::Width { layer: LayerPath::top(0), width: 10 }).is_err()); // full
/// let (child, reports) = plan.apply_within(&net, &mut rng, 1 << 20).unwrap();
/// assert_eq!((child.layers().len(), reports.len()), (3, 2));
/// // Too small a budget: the first morph is refused before it allocates.
/// assert_eq!(plan.apply_within(&net, &mut rng, 1024).unwrap_err().0, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan<const N: usize> {
    ops: heapless::Vec<MorphOp, N>,
}

impl<const N: usize> Plan<N> {
    /// An empty plan.
    pub const fn new() -> Self {
        Self {
            ops: heapless::Vec::new(),
        }
    }

    /// Appends `op`.
    ///
    /// # Errors
    /// Gives `op` back when the plan already holds `N` operations (as `heapless::Vec::push`
    /// does: the caller keeps what did not fit, and nothing is boxed on a device).
    #[allow(clippy::result_large_err)]
    pub fn push(&mut self, op: MorphOp) -> Result<(), MorphOp> {
        self.ops.push(op)
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[MorphOp] {
        &self.ops
    }

    /// Applies the operations in order, each within `budget` bytes beyond what is allocated
    /// when the plan starts: from the second on, the intermediate child it morphs counts
    /// against the budget too.
    ///
    /// # Errors
    /// The first failing operation's index and error ([`MorphError::OverBudget`] when it
    /// would not fit); nothing of that operation was allocated.
    pub fn apply_within<T: Scalar>(
        &self,
        net: &Network<T>,
        rng: &mut Rng,
        budget: usize,
    ) -> Result<(Network<T>, heapless::Vec<MorphReport, N>), (usize, MorphError)> {
        let mut reports = heapless::Vec::new();
        let mut cur: Option<Network<T>> = None;
        for (i, op) in self.ops.iter().enumerate() {
            let input = cur.as_ref().unwrap_or(net);
            // An intermediate child and the reports so far are held while the next morph runs.
            let held = cur
                .as_ref()
                .map_or(Some(0), network_bytes)
                .and_then(|h| h.checked_add(reports.iter().map(report_bytes).sum()));
            let left = held.and_then(|h| budget.checked_sub(h)).unwrap_or(0);
            let (next, report) = op.apply_within(input, rng, left).map_err(|e| (i, e))?;
            cur = Some(next);
            // Cannot fail: the plan holds at most N operations.
            let _ = reports.push(report);
        }
        Ok((cur.unwrap_or_else(|| net.clone()), reports))
    }
}

/// Heap bytes a report holds (its new layers and channel origins).
fn report_bytes(r: &MorphReport) -> usize {
    r.new_layers.len() * size_of::<super::NewLayer>()
        + r.channels.len() * size_of::<Option<usize>>()
}

/// Heap bytes of `net`'s layers (as [`MorphOp::cost`] counts a copy of them).
fn network_bytes<T: Scalar>(net: &Network<T>) -> Option<usize> {
    super::cost::layers_bytes(net.layers()).get()
}

/// `path` moved `lo` top-level layers on.
fn shift(path: &mut LayerPath, lo: usize) {
    if let Some(first) = path.0.first_mut() {
        *first += lo;
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::morph::depth::InsertParams;
    use crate::morph::subnet::{Split, StackedParams};
    use crate::solve::algorithm::SolveOptions;
    use crate::{ActKind, Conv2d, Kernel, PActivation, Shape};

    fn kernel(out: usize, inp: usize, k: usize, rng: &mut Rng) -> Kernel<f32> {
        let mut w = Kernel::zeros(out, inp, k);
        rng.fill_normals(&mut w.weight, 0.4);
        rng.fill_normals(&mut w.bias, 0.1);
        w
    }

    fn relu(c: usize) -> Layer<f32> {
        Layer::Activation(PActivation::plain(ActKind::Relu, c))
    }

    /// conv 3 -> 4, ReLU, conv 4 -> 5, ReLU, flatten, dense, ReLU, dense.
    fn net(rng: &mut Rng) -> Network<f32> {
        let conv = |out, inp, rng: &mut Rng| {
            Layer::Conv2d(Conv2d {
                kernel: kernel(out, inp, 3, rng),
                stride: 1,
                pad: 1,
            })
        };
        let layers = vec![
            conv(4, 3, rng),
            relu(4),
            conv(5, 4, rng),
            relu(5),
            Layer::Flatten,
            Layer::Dense(kernel(6, 5 * 16, 1, rng)),
            relu(6),
            Layer::Dense(kernel(3, 6, 1, rng)),
        ];
        Network::new(Shape::image(3, 4, 4), layers).unwrap()
    }

    #[test]
    fn in_place_gives_the_child_apply_gives_and_keeps_the_parent_on_error() {
        let mut rng = Rng::seed(1);
        let parent = net(&mut rng);
        let mut f32_depth = DepthParams::new(10, 3, 3);
        f32_depth.solve = SolveOptions::f32();
        let ops = [
            MorphOp::Depth {
                layer: LayerPath::top(2),
                params: f32_depth,
            },
            MorphOp::Depth {
                layer: LayerPath::top(5),
                params: DepthParams::new(8, 1, 1),
            },
            MorphOp::InsertIdentity {
                at: LayerPath::top(8),
                params: InsertParams {
                    depth: DepthParams::new(4, 1, 1),
                    trailing_activation: true,
                },
            },
            MorphOp::Width {
                layer: LayerPath::top(2),
                width: 7,
            },
            MorphOp::Kernel {
                layer: LayerPath::top(2),
                k: 5,
            },
            MorphOp::Stacked {
                layer: LayerPath::top(5),
                params: StackedParams {
                    n: 2,
                    split: Split::Random,
                    branch_depth: None,
                },
            },
            MorphOp::IdMorph {
                layer: LayerPath::top(2),
                k: 3,
            },
            MorphOp::Net2Wider {
                layer: LayerPath::top(5),
                width: 9,
                noise: 0.0,
            },
        ];
        for op in ops {
            let (child, report) = op.apply(&parent, &mut Rng::seed(3)).unwrap();
            let mut net = parent.clone();
            let needs = op.cost_in_place(&net).unwrap();
            let over = op.apply_in_place(&mut net, &mut Rng::seed(3), needs - 1);
            assert!(matches!(over, Err(MorphError::OverBudget { .. })), "{op:?}");
            assert_eq!(net, parent);
            let in_place = op
                .apply_in_place(&mut net, &mut Rng::seed(3), needs)
                .unwrap();
            assert_eq!(net, child, "{op:?}");
            assert_eq!(in_place, report, "{op:?}");
        }
        // A failing morph leaves the network as it was.
        let mut net = parent.clone();
        let bad = MorphOp::Width {
            layer: LayerPath::top(5),
            width: 2,
        };
        assert!(matches!(
            bad.apply_in_place(&mut net, &mut rng, usize::MAX),
            Err(MorphError::Narrower { .. })
        ));
        let missing = MorphOp::Kernel {
            layer: LayerPath::top(9),
            k: 5,
        };
        assert!(missing
            .apply_in_place(&mut net, &mut rng, usize::MAX)
            .is_err());
        // Fails inside the solve, after the layers were split: they are put back.
        let mut general = DepthParams::new(1, 1, 1);
        general.algorithm = crate::solve::algorithm::Algorithm::General;
        general.solve.max_iter = 2;
        let unsolvable = MorphOp::Depth {
            layer: LayerPath::top(5),
            params: general,
        };
        let in_place = unsolvable.apply_in_place(&mut net, &mut rng, usize::MAX);
        // The error names the layer in the whole network, as `apply`'s does.
        assert!(
            matches!(&in_place, Err(MorphError::Solve { layer, .. }) if *layer == LayerPath::top(5)),
            "{in_place:?}"
        );
        assert_eq!(net, parent);
    }
}

#[cfg(all(test, feature = "std"))]
mod peak_tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::heap_meter::{peak_of, warm_up};
    use crate::{ActKind, Kernel, PActivation, Shape};

    /// `apply_in_place` holds no more than `cost_in_place`, on long layer lists (where the
    /// lists it splits and joins dominate) and on short ones, at every position.
    #[test]
    fn in_place_peaks_stay_within_cost_in_place() {
        warm_up();
        let mut rng = Rng::seed(4);
        for relus in [3, 400, 2000] {
            let mut layers: Vec<Layer<f32>> = vec![Layer::Dense(Kernel::zeros(4, 4, 1))];
            layers.extend(
                (0..relus).map(|_| Layer::Activation(PActivation::plain(ActKind::Relu, 4))),
            );
            layers.push(Layer::Dense(Kernel::zeros(3, 4, 1)));
            let parent = Network::new(Shape::flat(4), layers).unwrap();
            let ops = [
                MorphOp::Width {
                    layer: LayerPath::top(0),
                    width: 6,
                },
                MorphOp::Depth {
                    layer: LayerPath::top(0),
                    params: DepthParams::new(5, 1, 1),
                },
                MorphOp::Depth {
                    layer: LayerPath::top(relus + 1),
                    params: DepthParams::new(5, 1, 1),
                },
                MorphOp::InsertIdentity {
                    at: LayerPath::top(relus + 2),
                    params: InsertParams {
                        depth: DepthParams::new(4, 1, 1),
                        trailing_activation: true,
                    },
                },
            ];
            for op in ops {
                let mut net = parent.clone();
                let needs = op.cost_in_place(&net).unwrap();
                let (r, peak) = peak_of(|| op.apply_in_place(&mut net, &mut rng, needs));
                r.unwrap();
                assert!(peak <= needs, "{relus} {op:?}: {peak} > {needs}");
            }
        }
    }
}
