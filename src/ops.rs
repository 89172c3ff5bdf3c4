//! Morph operations written on the command line: `OP@PATH[,key=value...]`.
//!
//! [`OPERATIONS`] documents every operation and key (`netmorph ops` prints it as [`help`]);
//! unknown and repeated keys are errors. `PATH` is a layer index (`3`) or a dotted path into
//! parallel blocks (`3.1.0`: layer 0 of branch 1 of the block at index 3). Examples:
//! `depth@3,cl=64,k1=3,k2=3,act=tanh`, `width@0,to=12`, `kernel@0,k=5`.

use std::collections::HashMap;
use std::fmt;

use netmorph_core::morph::depth::{DepthParams, InsertParams};
use netmorph_core::morph::plan::MorphOp;
use netmorph_core::morph::subnet::{SequentialParams, Split, StackedParams};
use netmorph_core::solve::algorithm::{Algorithm, SolveOptions};
use netmorph_core::{ActKind, LayerPath};

/// A malformed operation string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    /// The operation as written.
    pub op: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operation `{}`: {}; write e.g. `depth@3,cl=64,k1=3,k2=3` or `width@0,to=12`",
            self.op, self.reason
        )
    }
}

impl std::error::Error for OpError {}

/// Parses one operation.
///
/// # Errors
/// [`OpError`] naming the problem.
///
/// # Examples
/// ```
/// use netmorph::ops::parse_op;
/// use netmorph::morph::plan::MorphOp;
/// assert!(matches!(parse_op("width@0,to=12").unwrap(), MorphOp::Width { width: 12, .. }));
/// assert!(parse_op("width@0").is_err());
/// ```
pub fn parse_op(text: &str) -> Result<MorphOp, OpError> {
    let fail = |reason: String| OpError {
        op: text.to_string(),
        reason,
    };
    let (name, rest) = text
        .split_once('@')
        .ok_or_else(|| fail("missing `@PATH`".into()))?;
    let mut parts = rest.split(',');
    let path_text = parts.next().unwrap_or_default();
    let indices = path_text
        .split('.')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            fail(format!(
                "layer path `{path_text}` is not a dotted list of indices"
            ))
        })?;
    let path =
        LayerPath::from_slice(&indices).ok_or_else(|| fail("layer path nested too deep".into()))?;
    let doc = OPERATIONS.iter().find(|d| d.name == name).ok_or_else(|| {
        let names: Vec<&str> = OPERATIONS.iter().map(|d| d.name).collect();
        fail(format!(
            "unknown operation `{name}` ({}; `netmorph ops` describes them)",
            names.join(", ")
        ))
    })?;
    let mut kv = HashMap::new();
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| fail(format!("`{part}` is not key=value")))?;
        let k = k.trim();
        if !doc.keys.iter().any(|key| key.name == k) {
            let keys: Vec<&str> = doc.keys.iter().map(|key| key.name).collect();
            return Err(fail(format!(
                "`{name}` has no key `{k}` (its keys: {})",
                keys.join(", ")
            )));
        }
        if kv.insert(k.to_string(), v.trim().to_string()).is_some() {
            return Err(fail(format!("key `{k}` is given twice")));
        }
    }
    let num = |key: &str, default: Option<usize>| -> Result<usize, OpError> {
        match (kv.get(key), default) {
            (Some(v), _) => v
                .parse()
                .map_err(|_| fail(format!("`{key}={v}` is not a non-negative integer"))),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(fail(format!("missing `{key}=`"))),
        }
    };
    let list = |key: &str| -> Result<Vec<usize>, OpError> {
        let v = kv
            .get(key)
            .ok_or_else(|| fail(format!("missing `{key}=`")))?;
        v.split('/')
            .map(|x| {
                x.parse()
                    .map_err(|_| fail(format!("`{key}={v}` is not a /-separated list of integers")))
            })
            .collect()
    };
    let algorithm = match kv.get("alg").map(String::as_str) {
        None | Some("auto") => Algorithm::Auto,
        Some("general") => Algorithm::General,
        Some("practical") => Algorithm::Practical,
        Some(other) => {
            return Err(fail(format!(
                "unknown algorithm `{other}` (auto, general, practical)"
            )))
        }
    };
    let activation = match kv.get("act").map(String::as_str) {
        None | Some("relu") => ActKind::Relu,
        Some("tanh") => ActKind::Tanh,
        Some("sigmoid") => ActKind::Sigmoid,
        Some("identity") => ActKind::Identity,
        Some(other) => {
            return Err(fail(format!(
                "unknown activation `{other}` (relu, tanh, sigmoid, identity)"
            )))
        }
    };
    let solve = match kv.get("solve").map(String::as_str) {
        None | Some("f64") => SolveOptions::default(),
        Some("f32") => SolveOptions::f32(),
        Some(other) => {
            return Err(fail(format!(
                "unknown solve precision `{other}` (f64, f32)"
            )))
        }
    };
    let depth = |cl: usize| -> Result<DepthParams, OpError> {
        let mut p = DepthParams::new(cl, num("k1", Some(1))?, num("k2", Some(1))?);
        p.algorithm = algorithm;
        p.activation = activation;
        p.solve = solve;
        Ok(p)
    };
    let op = match name {
        "depth" => MorphOp::Depth {
            layer: path,
            params: depth(num("cl", None)?)?,
        },
        "insert" => MorphOp::InsertIdentity {
            at: path,
            params: InsertParams {
                depth: depth(num("cl", None)?)?,
                trailing_activation: match kv.get("trailing").map(String::as_str) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(fail(format!("`trailing={other}` must be true or false")))
                    }
                },
            },
        },
        "width" => MorphOp::Width {
            layer: path,
            width: num("to", None)?,
        },
        "kernel" => MorphOp::Kernel {
            layer: path,
            k: num("k", None)?,
        },
        "subnet" => {
            let too_many = || fail("at most 8 layers in a subnet".into());
            MorphOp::Sequential {
                layer: path,
                params: SequentialParams {
                    widths: heapless::Vec::from_slice(&list("widths")?).map_err(|_| too_many())?,
                    kernels: heapless::Vec::from_slice(&list("kernels")?)
                        .map_err(|_| too_many())?,
                    algorithm,
                    activation,
                    solve,
                },
            }
        }
        "stack"
            if !kv.contains_key("cl")
                && ["k1", "k2", "alg", "act", "solve"]
                    .iter()
                    .any(|k| kv.contains_key(*k)) =>
        {
            return Err(fail(
                "k1, k2, alg, act and solve deepen the branches: give `cl=` too".into(),
            ))
        }
        "stack" => MorphOp::Stacked {
            layer: path,
            params: StackedParams {
                n: num("n", Some(2))?,
                split: match kv.get("split").map(String::as_str) {
                    None | Some("equal") => Split::Equal,
                    Some("random") => Split::Random,
                    Some(other) => {
                        return Err(fail(format!("unknown split `{other}` (equal, random)")))
                    }
                },
                branch_depth: kv
                    .contains_key("cl")
                    .then(|| depth(num("cl", None)?))
                    .transpose()?,
            },
        },
        "idmorph" => MorphOp::IdMorph {
            layer: path,
            k: num("k", Some(1))?,
        },
        "net2wider" => MorphOp::Net2Wider {
            layer: path,
            width: num("to", None)?,
            noise: match kv.get("noise") {
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| fail(format!("`noise={v}` is not a finite number >= 0")))?,
                None => 0.0,
            },
        },
        other => {
            return Err(fail(format!(
                "operation `{other}` is documented but not parsed"
            )))
        }
    };
    Ok(op)
}

/// The largest relative deviation, `max |child - parent| / max |parent|`, that an exact morph
/// of a network in `T` may show on its probes: 1e-4 for f32 (each morph rounds its new
/// parameters to f32 once, and the forward pass runs in f32) and 1e-9 for f64 (the solves
/// reach ~1e-13). The bounds the property tests hold every morph to.
pub fn tolerance<T: netmorph_core::Scalar>() -> f64 {
    if T::NAME == "f32" {
        1e-4
    } else {
        1e-9
    }
}

/// One key of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key.
    pub name: &'static str,
    /// Its default (`None`: required).
    pub default: Option<&'static str>,
    /// What it sets.
    pub meaning: &'static str,
}

/// One operation: its name, what it does, its keys and an example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpDoc {
    /// The name before `@`.
    pub name: &'static str,
    /// What it does, and where the paper describes it.
    pub summary: &'static str,
    /// The keys it accepts.
    pub keys: &'static [KeyDoc],
    /// A complete operation string.
    pub example: &'static str,
}

const fn key(name: &'static str, default: Option<&'static str>, meaning: &'static str) -> KeyDoc {
    KeyDoc {
        name,
        default,
        meaning,
    }
}

const CL: KeyDoc = key(
    "cl",
    None,
    "C_l, channels (features) of the new middle blob",
);
const K1: KeyDoc = key("k1", Some("1"), "K_1, kernel of the first new layer (odd)");
const K2: KeyDoc = key("k2", Some("1"), "K_2, kernel of the second new layer (odd)");
const ALG: KeyDoc = key(
    "alg",
    Some("auto"),
    "auto (Algorithm 1, else 2), general (Algorithm 1) or practical (Algorithm 2)",
);
const SOLVE: KeyDoc = key(
    "solve",
    Some("f64"),
    "f64 or f32: the precision of the solves (f32 for devices without fast f64; residual ~1e-6)",
);
const ACT: KeyDoc = key(
    "act",
    Some("relu"),
    "relu, tanh, sigmoid or identity: the new P-activation's phi (it starts as the identity, a = 1)",
);

/// Every operation [`parse_op`] accepts.
pub const OPERATIONS: &[OpDoc] = &[
    OpDoc {
        name: "depth",
        summary: "replace dense or conv layer G by F_l, a P-activation and F_l+1 with F_l+1 * F_l = G (eq. 6, Algorithms 1-2)",
        keys: &[CL, K1, K2, ALG, ACT, SOLVE],
        example: "depth@3,cl=64,k1=3,k2=3,act=tanh",
    },
    OpDoc {
        name: "insert",
        summary: "insert two new layers before PATH where the parent computes the identity (section 4.2)",
        keys: &[
            CL,
            K1,
            K2,
            ALG,
            ACT,
            SOLVE,
            key("trailing", Some("false"), "true: also a P-activation after the second layer"),
        ],
        example: "insert@4,cl=32,k1=3,k2=1",
    },
    OpDoc {
        name: "width",
        summary: "widen a layer's output to more channels; the consumer's new inputs are zero (eq. 12-18)",
        keys: &[key("to", None, "the new channel count (at least the current one)")],
        example: "width@0,to=12",
    },
    OpDoc {
        name: "kernel",
        summary: "grow a convolution's kernel by zero taps and padding (section 3.4.2)",
        keys: &[key("k", None, "the new kernel size (current + an even number)")],
        example: "kernel@0,k=5",
    },
    OpDoc {
        name: "subnet",
        summary: "replace a layer by a sequence of layers (eq. 19)",
        keys: &[
            key("widths", None, "/-separated channels of the new blobs, one fewer than kernels"),
            key("kernels", None, "/-separated kernel sizes of the new layers (at most 8)"),
            ALG,
            ACT,
            SOLVE,
        ],
        example: "subnet@0,widths=16,kernels=3/3",
    },
    OpDoc {
        name: "stack",
        summary: "replace a layer by n parallel branches whose sum is the layer (eq. 20)",
        keys: &[
            key("n", Some("2"), "branches"),
            key("split", Some("equal"), "equal (G / n each) or random (random parts that sum to G)"),
            key("cl", Some("no deepening"), "deepen every branch with this C_l (k1, k2, alg, act and solve need it)"),
            K1,
            K2,
            ALG,
            ACT,
            SOLVE,
        ],
        example: "stack@3,n=2,cl=12,k1=5,k2=3",
    },
    OpDoc {
        name: "idmorph",
        summary: "baseline IdMorph / Net2DeeperNet: an identity layer after PATH's activation",
        keys: &[key("k", Some("1"), "the identity's kernel size for convolutions (odd)")],
        example: "idmorph@1,k=3",
    },
    OpDoc {
        name: "net2wider",
        summary: "baseline Net2WiderNet: widen by replicating channels",
        keys: &[
            key("to", None, "the new channel count"),
            key("noise", Some("0"), "noise on the replicas' outgoing weights (0: exact)"),
        ],
        example: "net2wider@0,to=12",
    },
];

/// The text `netmorph ops` prints: every operation with its keys and an example, how layer
/// paths are counted, and how condition (7) is read.
pub fn help() -> String {
    let mut out =
        String::from("Morph operations: OP@PATH[,key=value...], applied in the order given.\n\n");
    for op in OPERATIONS {
        out += &format!("{}  {}\n", op.name, op.summary);
        for k in op.keys {
            let default = k
                .default
                .map_or("required".to_string(), |d| format!("default {d}"));
            out += &format!("    {:<9} {} ({default})\n", k.name, k.meaning);
        }
        out += &format!("    example: --op \"{}\"\n\n", op.example);
    }
    out += "\
PATH: a layer index as `netmorph inspect` lists it (`3`), or a dotted path into a parallel
block (`3.1.0`: layer 0 of branch 1 of the block at index 3). Activations, pooling and
flatten layers count. In a chain of --op, each path refers to the network the operations
before it produced: `depth@0` turns layer 0 into three layers, so the old layer 1 is then 3.

Condition (7) (Algorithm 1 reaches zero residual in one solve):
    max(C_l C_l-1 K1^2, C_l+1 C_l K2^2) >= C_l+1 C_l-1 (K1 + K2 - 1)^2
(the paper prints min; one solve of the factor with more unknowns is already exact) counts
G~, the parent's K x K kernel zero-padded to K1 + K2 - 1, not G itself: for a 3x3 layer
4 -> 8 with cl=10,k1=3,k2=3 the factors have 360 and 720 parameters, G has 288 but G~ has
800, so (7) fails. The padding of a padded parent layer goes to F_l (plus
(K1 + K2 - 1 - K) / 2) and F_l+1 runs unpadded, so borders stay exact. alg=auto runs
Algorithm 1 when (7) holds and Algorithm 2 otherwise (or when Algorithm 1 misses zero).
";
    out
}

/// How far a child's outputs are from its parent's on the probes.
#[derive(Clone, Copy, Debug)]
pub struct Deviation {
    /// `max |child - parent|`.
    pub abs: f64,
    /// `abs / max |parent|`.
    pub rel: f64,
}

/// How far `child` outputs are from the parent's `reference` (the morphism notes' measure:
/// max-abs, relative to max |parent|). An output that is not finite where the parent's is, or
/// differs from a non-finite parent output, counts as an infinite deviation: a plain maximum
/// would skip the NaN; outputs of different lengths are an infinite deviation too.
pub fn deviation<T: netmorph_core::Scalar>(child: &[T], reference: &[T]) -> Deviation {
    let (mut abs, mut scale) = (0.0f64, 0.0f64);
    for (c, p) in child.iter().zip(reference) {
        let (c, p) = (c.as_f64(), p.as_f64());
        if p.is_finite() {
            scale = scale.max(p.abs());
        }
        let d = (c - p).abs();
        if d.is_finite() {
            abs = abs.max(d);
        } else if c.to_bits() != p.to_bits() {
            abs = f64::INFINITY;
        }
    }
    if child.len() != reference.len() {
        abs = f64::INFINITY;
    }
    Deviation {
        abs,
        rel: abs / scale.max(f64::MIN_POSITIVE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_example_parses_and_every_key_is_accepted() {
        for op in OPERATIONS {
            parse_op(op.example).unwrap_or_else(|e| panic!("{}: {e}", op.example));
            for k in op.keys {
                let value = match k.name {
                    "alg" => "practical",
                    "act" => "tanh",
                    "solve" => "f32",
                    "split" => "random",
                    "trailing" => "true",
                    "widths" => "4",
                    "kernels" => "1/1",
                    _ => "3",
                };
                let base = op
                    .example
                    .split(',')
                    .filter(|p| !p.starts_with(&format!("{}=", k.name)));
                let text = base
                    .chain([format!("{}={value}", k.name).as_str()])
                    .collect::<Vec<_>>()
                    .join(",");
                parse_op(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            }
        }
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused() {
        let unknown = parse_op("width@0,to=12,cll=3").unwrap_err();
        assert!(
            unknown.reason.contains("no key `cll`") && unknown.reason.contains("to"),
            "{unknown}"
        );
        let twice = parse_op("width@0,to=12,to=14").unwrap_err();
        assert!(twice.reason.contains("twice"), "{twice}");
        let stack = parse_op("stack@0,n=2,k1=3").unwrap_err();
        assert!(stack.reason.contains("give `cl=`"), "{stack}");
        let trailing = parse_op("insert@0,cl=3,trailing=yes").unwrap_err();
        assert!(trailing.reason.contains("true or false"), "{trailing}");
        let op = parse_op("frob@0").unwrap_err();
        assert!(op.reason.contains("unknown operation"), "{op}");
    }

    #[test]
    fn non_finite_outputs_are_an_infinite_deviation() {
        let parent = [1.0f32, -2.0, f32::INFINITY];
        let same = deviation(&parent, &parent);
        assert_eq!((same.abs, same.rel), (0.0, 0.0));
        let moved = deviation(&[1.0f32, -2.5, f32::INFINITY], &parent);
        assert_eq!((moved.abs, moved.rel), (0.5, 0.25));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let d = deviation(&[bad, -2.0, f32::INFINITY], &parent);
            assert!(d.rel.is_infinite(), "{bad}: {d:?}");
            let d = deviation(&[1.0, -2.0, bad], &parent);
            assert_eq!(d.abs.is_infinite(), bad != f32::INFINITY, "{bad}: {d:?}");
        }
        assert!(deviation(&[1.0f64], &[1.0, 2.0]).abs.is_infinite());
    }
}
