//! Morph operations written on the command line: `OP@PATH[,key=value...]`.
//!
//! | op | keys (defaults) | morph |
//! |---|---|---|
//! | `depth` | `cl` (required), `k1` (1), `k2` (1), `alg` (auto/general/practical), `act` (relu) | [`netmorph_core::morph::depth::deepen`] |
//! | `insert` | as `depth`, plus `trailing` (true/false, false) | identity insertion before `PATH` |
//! | `width` | `to` (required) | width morph |
//! | `kernel` | `k` (required) | kernel-size morph |
//! | `subnet` | `widths` (`/`-separated), `kernels` (`/`-separated), `alg`, `act` | sequential subnet (eq. 19) |
//! | `stack` | `n` (2), `split` (equal/random), `cl`, `k1`, `k2` (deepen each branch when `cl` is given) | stacked subnet (eq. 20) |
//! | `idmorph` | `k` (1) | IdMorph / Net2DeeperNet |
//! | `net2wider` | `to` (required), `noise` (0) | Net2WiderNet |
//!
//! `PATH` is a layer index (`3`) or a dotted path into parallel blocks (`3.1.0`: layer 0 of
//! branch 1 of the block at index 3). Examples: `depth@3,cl=64,k1=3,k2=3,act=tanh`,
//! `width@0,to=12`, `kernel@0,k=5`.

use std::collections::HashMap;
use std::fmt;

use netmorph_core::morph::depth::{DepthParams, InsertParams};
use netmorph_core::morph::plan::MorphOp;
use netmorph_core::morph::subnet::{SequentialParams, Split, StackedParams};
use netmorph_core::solve::algorithm::Algorithm;
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
    let mut kv = HashMap::new();
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| fail(format!("`{part}` is not key=value")))?;
        kv.insert(k.trim().to_string(), v.trim().to_string());
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
    let depth = |cl: usize| -> Result<DepthParams, OpError> {
        let mut p = DepthParams::new(cl, num("k1", Some(1))?, num("k2", Some(1))?);
        p.algorithm = algorithm;
        p.activation = activation;
        Ok(p)
    };
    let op = match name {
        "depth" => MorphOp::Depth { layer: path, params: depth(num("cl", None)?)? },
        "insert" => MorphOp::InsertIdentity {
            at: path,
            params: InsertParams {
                depth: depth(num("cl", None)?)?,
                trailing_activation: kv.get("trailing").is_some_and(|v| v == "true"),
            },
        },
        "width" => MorphOp::Width { layer: path, width: num("to", None)? },
        "kernel" => MorphOp::Kernel { layer: path, k: num("k", None)? },
        "subnet" => {
            let too_many = || fail("at most 8 layers in a subnet".into());
            MorphOp::Sequential {
                layer: path,
                params: SequentialParams {
                    widths: heapless::Vec::from_slice(&list("widths")?).map_err(|_| too_many())?,
                    kernels: heapless::Vec::from_slice(&list("kernels")?).map_err(|_| too_many())?,
                    algorithm,
                    activation,
                    solve: Default::default(),
                },
            }
        }
        "stack" => MorphOp::Stacked {
            layer: path,
            params: StackedParams {
                n: num("n", Some(2))?,
                split: match kv.get("split").map(String::as_str) {
                    None | Some("equal") => Split::Equal,
                    Some("random") => Split::Random,
                    Some(other) => return Err(fail(format!("unknown split `{other}` (equal, random)"))),
                },
                branch_depth: kv.contains_key("cl").then(|| depth(num("cl", None)?)).transpose()?,
            },
        },
        "idmorph" => MorphOp::IdMorph { layer: path, k: num("k", Some(1))? },
        "net2wider" => MorphOp::Net2Wider {
            layer: path,
            width: num("to", None)?,
            noise: match kv.get("noise") {
                Some(v) => v.parse().map_err(|_| fail(format!("`noise={v}` is not a number")))?,
                None => 0.0,
            },
        },
        other => return Err(fail(format!("unknown operation `{other}` (depth, insert, width, kernel, subnet, stack, idmorph, net2wider)"))),
    };
    Ok(op)
}
