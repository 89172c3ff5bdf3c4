//! The data flow of an ONNX graph, read as netmorph's structure: a chain of single-input
//! nodes from the graph input to its output, where `Add` of two computed values joins
//! parallel branches that fork from one value.
//!
//! Every computed value gets its *spine predecessor*: the data input of its node, or for an
//! `Add` join the fork its two operands branch from (their nearest common value along the
//! spines). [`Graph::structure`] then walks back from the output along the spine, reading a
//! join as a P-activation (the pattern `export` writes) or as a parallel sum whose branches
//! are walked back to the fork in turn.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::super::proto::{data_type, GraphProto, NodeProto, TensorProto};
use super::super::OnnxError;

/// Most nodes a graph may have: a netmorph layer takes at most four (a P-activation), so
/// this allows networks of thousands of layers while bounding the work on hostile files.
pub const MAX_NODES: usize = 10_000;

/// Deepest nesting of parallel blocks read (netmorph's layer paths allow three).
const MAX_NESTING: usize = 8;

/// One step of the network, in forward order.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Item {
    /// A node with one computed input (its other inputs constant).
    Node(usize),
    /// `Add(Mul(phi(x), s), Mul(x, a))`: a P-activation. `phi` is `None` when the first
    /// `Mul` takes `x` itself (the identity).
    PActivation {
        /// The `Add` node.
        add: usize,
        /// The node computing `phi(x)`.
        phi: Option<usize>,
        /// The `Mul` by `s = 1 - a`.
        mul_phi: usize,
        /// The `Mul` by `a`.
        mul_x: usize,
    },
    /// Branches from one value, summed in order by `Add` nodes.
    Parallel {
        /// The last (outermost) `Add` node.
        add: usize,
        /// The branches.
        branches: Vec<Vec<Item>>,
    },
}

/// Where a computed value sits on the spine.
#[derive(Clone, Copy, Debug)]
struct Spine<'a> {
    /// Steps from the graph input.
    depth: usize,
    /// The previous value on the spine (`None` for the graph input).
    prev: Option<&'a str>,
}

/// An ONNX graph indexed for reading: producers, constants and the spine.
pub(super) struct Graph<'a> {
    /// The nodes.
    pub nodes: &'a [NodeProto],
    /// The graph input netmorph's network takes.
    pub input: &'a str,
    /// The graph output.
    pub output: &'a str,
    producer: HashMap<&'a str, usize>,
    constants: HashMap<&'a str, Source<'a>>,
    spine: HashMap<&'a str, Spine<'a>>,
}

impl<'a> Graph<'a> {
    /// Indexes `g`.
    ///
    /// # Errors
    /// [`OnnxError::Graph`] for too many nodes, a value produced twice, sparse initializers,
    /// or not exactly one computed input and one output.
    pub fn new(g: &'a GraphProto) -> Result<Self, OnnxError> {
        if g.node.len() > MAX_NODES {
            return Err(graph(format!(
                "it has {} nodes, more than the {MAX_NODES} netmorph reads",
                g.node.len()
            )));
        }
        if let Some(s) = g.sparse_initializer.first() {
            let name = s
                .values
                .as_ref()
                .and_then(|v| v.name.as_deref())
                .unwrap_or("");
            return Err(OnnxError::Tensor {
                name: name.to_string(),
                reason: "it is a sparse initializer, which netmorph does not read; store it dense"
                    .into(),
            });
        }
        let mut constants: HashMap<&str, Source> = g
            .initializer
            .iter()
            .map(|t| (t.name.as_deref().unwrap_or(""), Source::Initializer(t)))
            .collect();
        let mut producer = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for out in n.output.iter().filter(|o| !o.is_empty()) {
                if producer.insert(out.as_str(), i).is_some()
                    || constants.contains_key(out.as_str())
                {
                    return Err(graph(format!("the value \"{out}\" is defined twice")));
                }
            }
            // Constants, and `Identity` nodes passing one on (in node order: ONNX graphs are
            // topologically sorted).
            let source = match (op(n), &n.input[..]) {
                ("Constant", _) => Some(Source::Node(i)),
                ("Identity", [from]) => constants.get(from.as_str()).copied(),
                _ => None,
            };
            if let (Some(source), [out, ..]) = (source, &n.output[..]) {
                constants.insert(out.as_str(), source);
            }
        }
        // Older exporters list initializers among the inputs too: those are constants.
        let inputs: Vec<&str> = g
            .input
            .iter()
            .map(|v| v.name.as_deref().unwrap_or(""))
            .filter(|n| !matches!(constants.get(n), Some(Source::Initializer(_))))
            .collect();
        let [input] = inputs[..] else {
            return Err(graph(format!(
                "it has {} inputs besides its initializers ({}); netmorph networks take one",
                inputs.len(),
                inputs.join(", ")
            )));
        };
        // A node that redefines the input would make the value its own predecessor.
        if producer.contains_key(input) {
            return Err(graph(format!(
                "the value \"{input}\" is defined twice (the graph input and a node output)"
            )));
        }
        let [output] = &g.output[..] else {
            return Err(graph(format!(
                "it has {} outputs; netmorph networks give one",
                g.output.len()
            )));
        };
        let mut this = Self {
            nodes: &g.node,
            input,
            output: output.name.as_deref().unwrap_or(""),
            producer,
            constants,
            spine: HashMap::new(),
        };
        this.index_spine();
        Ok(this)
    }

    /// The constant tensor `name` is, through `Identity` nodes: an initializer or a
    /// `Constant` node's value; `None` for a computed value.
    ///
    /// # Errors
    /// [`OnnxError::Unsupported`] for a `Constant` node whose value is not a tensor, float(s)
    /// or int(s).
    pub fn constant(&self, name: &str) -> Result<Option<Cow<'a, TensorProto>>, OnnxError> {
        match self.constants.get(name).copied() {
            None => Ok(None),
            Some(Source::Initializer(t)) => Ok(Some(Cow::Borrowed(t))),
            Some(Source::Node(i)) => constant_node(&self.nodes[i]).map(Some),
        }
    }

    /// Whether `name` is a constant (see [`Graph::constant`]).
    pub fn is_constant(&self, name: &str) -> bool {
        self.constants.contains_key(name)
    }

    /// The node's inputs that are computed (not constants, not omitted).
    pub fn data_inputs(&self, n: &'a NodeProto) -> Vec<&'a str> {
        n.input
            .iter()
            .map(String::as_str)
            .filter(|i| !i.is_empty() && !self.is_constant(i))
            .collect()
    }

    /// The node producing `value`.
    pub fn producer(&self, value: &str) -> Option<usize> {
        self.producer.get(value).copied()
    }

    /// Spine predecessors and depths of every value computed from the input, in node order
    /// (ONNX graphs are topologically sorted; a node whose inputs come later gets none, and
    /// is reported if the network needs it).
    fn index_spine(&mut self) {
        self.spine.insert(
            self.input,
            Spine {
                depth: 0,
                prev: None,
            },
        );
        for n in self.nodes {
            let data = self.data_inputs(n);
            let prev = match (op(n), &data[..]) {
                (_, [x]) => self.spine.contains_key(x).then_some(*x),
                ("Add", [a, b]) => self.fork(a, b),
                _ => None,
            };
            let Some(prev) = prev else { continue };
            let depth = self.spine[prev].depth + 1;
            // `new` checked that every value is defined once, so no entry is overwritten and
            // every spine leads back to the input.
            for out in n.output.iter().filter(|o| !o.is_empty()) {
                self.spine.insert(
                    out,
                    Spine {
                        depth,
                        prev: Some(prev),
                    },
                );
            }
        }
    }

    /// The nearest common value on the spines of `a` and `b`.
    fn fork(&self, a: &'a str, b: &'a str) -> Option<&'a str> {
        let (mut a, mut b) = (a, b);
        let (mut sa, mut sb) = (*self.spine.get(a)?, *self.spine.get(b)?);
        while a != b {
            if sa.depth >= sb.depth {
                a = sa.prev?;
                sa = self.spine[a];
            } else {
                b = sb.prev?;
                sb = self.spine[b];
            }
        }
        Some(a)
    }

    /// The network's structure, from the graph input to its output.
    ///
    /// # Errors
    /// [`OnnxError::Graph`] or [`OnnxError::Unsupported`] naming the value or node where the
    /// data flow is not a chain with parallel branches.
    pub fn structure(&self) -> Result<Vec<Item>, OnnxError> {
        let mut walk = Walk {
            graph: self,
            visited: HashSet::new(),
        };
        walk.seq(self.output, self.input, 0)
    }

    /// Why the computed value `v` has no place on the spine: the first node back from it
    /// that cannot be read, or the value that comes from nowhere.
    fn unreachable(&self, mut v: &'a str) -> OnnxError {
        if self.is_constant(v) {
            return graph(format!(
                "its output \"{v}\" is a constant, not computed from the input \"{}\"",
                self.input
            ));
        }
        for _ in 0..=self.nodes.len() {
            let Some(i) = self.producer(v) else { break };
            let n = &self.nodes[i];
            let data = self.data_inputs(n);
            let reason = match (op(n), data.len()) {
                (_, 0) => "it computes a value from constants alone; netmorph reads constants \
                           from initializers and Constant nodes only (fold constants first, e.g. \
                           with onnxsim)"
                    .to_string(),
                ("Add", 2) | (_, 1) => match data.iter().find(|d| !self.spine.contains_key(*d)) {
                    Some(d) => {
                        v = d;
                        continue;
                    }
                    None => "its inputs are computed by nodes after it (the graph must be \
                             topologically sorted)"
                        .to_string(),
                },
                (_, k) => format!(
                    "it takes {k} computed inputs ({}); netmorph layers take one, and only Add \
                     joins two branches",
                    data.join(", ")
                ),
            };
            return unsupported(n, reason);
        }
        graph(format!(
            "the value \"{v}\" is neither the graph input \"{}\", a constant nor the output of \
             an earlier node (the graph must be topologically sorted)",
            self.input
        ))
    }
}

/// A constant's origin.
#[derive(Clone, Copy)]
enum Source<'a> {
    Initializer(&'a TensorProto),
    Node(usize),
}

/// The walk back from the output: which nodes it has read (each belongs to one layer).
struct Walk<'g, 'a> {
    graph: &'g Graph<'a>,
    visited: HashSet<usize>,
}

impl<'a> Walk<'_, 'a> {
    /// The items from `start` to `end`, walking back along the spine.
    fn seq(
        &mut self,
        end: &'a str,
        start: &'a str,
        nesting: usize,
    ) -> Result<Vec<Item>, OnnxError> {
        if nesting > MAX_NESTING {
            return Err(graph(format!(
                "parallel branches are nested deeper than {MAX_NESTING} levels"
            )));
        }
        let g = self.graph;
        let mut items = Vec::new();
        let mut v = end;
        while v != start {
            let Some(spine) = g.spine.get(v) else {
                return Err(g.unreachable(v));
            };
            let (Some(prev), Some(i)) = (spine.prev, g.producer(v)) else {
                return Err(graph(format!(
                    "the branches ending in \"{end}\" do not start from \"{start}\""
                )));
            };
            let n = self.visit(i)?;
            let data = g.data_inputs(n);
            if data.len() == 2 {
                items.push(self.join(i, data[0], data[1], prev, nesting)?);
            } else {
                items.push(Item::Node(i));
            }
            v = prev;
        }
        items.reverse();
        Ok(items)
    }

    /// The `Add` node `add` of computed `a` and `b`, which fork from `fork`.
    fn join(
        &mut self,
        add: usize,
        a: &'a str,
        b: &'a str,
        fork: &'a str,
        nesting: usize,
    ) -> Result<Item, OnnxError> {
        if let Some(item) = self.p_activation(add, a, b, fork)? {
            return Ok(item);
        }
        // `Add(Add(b0, b1), b2)`: branches summed left to right, as netmorph sums them.
        let mut ends = vec![b];
        let mut first = a;
        while let Some(i) = self
            .graph
            .producer(first)
            .filter(|&i| self.is_join_from(i, fork))
        {
            let data = self.graph.data_inputs(self.visit(i)?);
            ends.push(data[1]);
            first = data[0];
        }
        ends.push(first);
        ends.reverse();
        let branches = ends
            .into_iter()
            .map(|e| self.seq(e, fork, nesting + 1))
            .collect::<Result<_, _>>()?;
        Ok(Item::Parallel { add, branches })
    }

    /// Whether node `i` is an unread `Add` of two values forking from `fork` that is not a
    /// P-activation.
    fn is_join_from(&self, i: usize, fork: &str) -> bool {
        let g = self.graph;
        let n = &g.nodes[i];
        let data = g.data_inputs(n);
        op(n) == "Add"
            && data.len() == 2
            && !self.visited.contains(&i)
            && n.output
                .first()
                .and_then(|o| g.spine.get(o.as_str()))
                .and_then(|s| s.prev)
                == Some(fork)
            && self.match_p_activation(data[0], data[1], fork).is_none()
    }

    /// `Add(Mul(phi(x), s), Mul(x, a))` with `x` the fork, read as one item.
    fn p_activation(
        &mut self,
        add: usize,
        a: &'a str,
        b: &'a str,
        fork: &str,
    ) -> Result<Option<Item>, OnnxError> {
        let Some((phi, mul_phi, mul_x)) = self.match_p_activation(a, b, fork) else {
            return Ok(None);
        };
        for i in phi.into_iter().chain([mul_phi, mul_x]) {
            self.visit(i)?;
        }
        Ok(Some(Item::PActivation {
            add,
            phi,
            mul_phi,
            mul_x,
        }))
    }

    /// The nodes `(phi, mul_phi, mul_x)` if `a + b` (in either order) is a P-activation of
    /// `x`.
    fn match_p_activation(
        &self,
        a: &str,
        b: &str,
        x: &str,
    ) -> Option<(Option<usize>, usize, usize)> {
        let g = self.graph;
        // The computed input of a `Mul` by a constant, and the node.
        let mul = |v: &str| {
            let i = g.producer(v)?;
            let n = &g.nodes[i];
            let data = g.data_inputs(n);
            (op(n) == "Mul" && n.input.len() == 2 && data.len() == 1).then(|| (data[0], i))
        };
        [(a, b), (b, a)].into_iter().find_map(|(u, w)| {
            let (phi_out, mul_phi) = mul(u)?;
            let (_, mul_x) = mul(w).filter(|(from, _)| *from == x)?;
            if phi_out == x {
                return Some((None, mul_phi, mul_x));
            }
            let i = g.producer(phi_out)?;
            let n = &g.nodes[i];
            let is_phi = matches!(op(n), "Relu" | "Tanh" | "Sigmoid" | "Identity");
            (is_phi && g.data_inputs(n) == [x]).then_some((Some(i), mul_phi, mul_x))
        })
    }

    /// Marks node `i` as read; a node read twice feeds two layers.
    fn visit(&mut self, i: usize) -> Result<&'a NodeProto, OnnxError> {
        let n = &self.graph.nodes[i];
        if !self.visited.insert(i) {
            return Err(unsupported(
                n,
                "its output feeds more than one layer; netmorph networks are chains with \
                 parallel branches that meet only in Add"
                    .into(),
            ));
        }
        Ok(n)
    }
}

/// The tensor a `Constant` node holds.
fn constant_node<'a>(n: &'a NodeProto) -> Result<Cow<'a, TensorProto>, OnnxError> {
    let [attr] = &n.attribute[..] else {
        return Err(unsupported(
            n,
            "a Constant node needs exactly one value attribute".into(),
        ));
    };
    let scalar = |data_type: i32| TensorProto {
        data_type: Some(data_type),
        name: n.output.first().cloned(),
        ..TensorProto::default()
    };
    let list = |len: usize| vec![i64::try_from(len).unwrap_or(i64::MAX)];
    Ok(match (attr.name.as_deref().unwrap_or(""), &attr.t) {
        ("value", Some(t)) => Cow::Borrowed(t),
        ("value_float", _) => Cow::Owned(TensorProto {
            float_data: vec![attr.f.unwrap_or(0.0)],
            ..scalar(data_type::FLOAT)
        }),
        ("value_floats", _) => Cow::Owned(TensorProto {
            dims: list(attr.floats.len()),
            float_data: attr.floats.clone(),
            ..scalar(data_type::FLOAT)
        }),
        ("value_int", _) => Cow::Owned(TensorProto {
            int64_data: vec![attr.i.unwrap_or(0)],
            ..scalar(data_type::INT64)
        }),
        ("value_ints", _) => Cow::Owned(TensorProto {
            dims: list(attr.ints.len()),
            int64_data: attr.ints.clone(),
            ..scalar(data_type::INT64)
        }),
        (other, _) => {
            return Err(unsupported(
                n,
                format!(
                    "its attribute `{other}` is not read; netmorph reads constants given as \
                     value (a tensor), value_float(s) or value_int(s)"
                ),
            ))
        }
    })
}

/// The node's operator (`""` if unset).
pub(super) fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// [`OnnxError::Unsupported`] for node `n`.
pub(super) fn unsupported(n: &NodeProto, reason: String) -> OnnxError {
    OnnxError::Unsupported {
        node: n.name.clone().unwrap_or_default(),
        op_type: op(n).to_string(),
        reason,
    }
}

fn graph(reason: String) -> OnnxError {
    OnnxError::Graph(reason)
}
