//! A node's attributes, read with their types checked, and the geometry netmorph's layers
//! allow (square kernels, equal strides, symmetric padding, dilation 1).

use super::super::proto::{attribute_type, AttributeProto, NodeProto};
use super::super::OnnxError;
use super::graph::unsupported;

/// The attributes of one node.
pub(super) struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    /// The attributes of `node`, refusing any not named in `known` (an attribute netmorph
    /// did not read could change what the node computes).
    ///
    /// # Errors
    /// [`OnnxError::Unsupported`] naming the first unknown attribute.
    pub fn new(node: &'a NodeProto, known: &[&str]) -> Result<Self, OnnxError> {
        if let Some(a) = node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_deref().unwrap_or("")))
        {
            let name = a.name.as_deref().unwrap_or("");
            let reason = if known.is_empty() {
                format!("netmorph reads it without attributes, but it has `{name}`")
            } else {
                format!(
                    "its attribute `{name}` is not supported (netmorph reads {})",
                    known.join(", ")
                )
            };
            return Err(unsupported(node, reason));
        }
        Ok(Self { node })
    }

    /// [`OnnxError::Unsupported`] for this node.
    pub fn fail(&self, reason: String) -> OnnxError {
        unsupported(self.node, reason)
    }

    fn get(
        &self,
        name: &str,
        kind: i32,
        what: &str,
    ) -> Result<Option<&'a AttributeProto>, OnnxError> {
        match self
            .node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
        {
            Some(a) if a.r#type.is_some_and(|t| t != kind) => {
                Err(self.fail(format!("its attribute `{name}` is not {what}")))
            }
            found => Ok(found),
        }
    }

    /// An integer attribute, `default` if absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        Ok(self
            .get(name, attribute_type::INT, "an integer")?
            .map_or(default, |a| a.i.unwrap_or(0)))
    }

    /// A float attribute, `default` if absent.
    pub fn float(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        Ok(self
            .get(name, attribute_type::FLOAT, "a float")?
            .map_or(default, |a| a.f.unwrap_or(0.0)))
    }

    /// A list of integers, `None` if absent.
    pub fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, OnnxError> {
        Ok(self
            .get(name, attribute_type::INTS, "a list of integers")?
            .map(|a| a.ints.as_slice()))
    }

    /// A string attribute, `None` if absent.
    pub fn string(&self, name: &str) -> Result<Option<String>, OnnxError> {
        Ok(self
            .get(name, attribute_type::STRING, "a string")?
            .map(|a| String::from_utf8_lossy(a.s.as_deref().unwrap_or_default()).into_owned()))
    }

    /// An integer attribute that must be 0 or 1, as a flag.
    pub fn flag(&self, name: &str) -> Result<bool, OnnxError> {
        match self.int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.fail(format!(
                "its attribute `{name}` is {v}, where 0 or 1 is expected"
            ))),
        }
    }

    /// `kernel_shape` (required, or `default` where the weights give it): a square window.
    pub fn kernel(&self, default: Option<usize>) -> Result<usize, OnnxError> {
        match (self.ints("kernel_shape")?, default) {
            (Some(k), d) => {
                let k = self.square("kernel_shape", k)?;
                match d {
                    Some(d) if d != k => Err(self.fail(format!(
                        "its kernel_shape {k}x{k} disagrees with its {d}x{d} weights"
                    ))),
                    _ => Ok(k),
                }
            }
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.fail("it has no kernel_shape".into())),
        }
    }

    /// `strides`: equal on both axes, 1 if absent.
    pub fn stride(&self) -> Result<usize, OnnxError> {
        self.ints("strides")?
            .map_or(Ok(1), |s| self.square("strides", s))
    }

    /// `pads` (`[top, left, bottom, right]`): equal on every side, 0 if absent; `auto_pad`
    /// only `NOTSET` or `VALID` (no padding).
    pub fn pad(&self) -> Result<usize, OnnxError> {
        let pad = match self.ints("pads")? {
            None => 0,
            Some(p) => match p {
                [a, rest @ ..] if p.len() == 4 && rest.iter().all(|v| v == a) && *a >= 0 => {
                    usize::try_from(*a).map_err(|_| self.fail(format!("pads {p:?} overflow")))?
                }
                _ => {
                    return Err(self.fail(format!(
                        "pads {p:?} are not the same on all four sides; netmorph pads symmetrically"
                    )))
                }
            },
        };
        match self.string("auto_pad")?.as_deref() {
            None | Some("NOTSET") => Ok(pad),
            Some("VALID") if pad == 0 => Ok(0),
            Some(other) => Err(self.fail(format!(
                "auto_pad {other} is not supported; give explicit symmetric pads"
            ))),
        }
    }

    /// Refuses `dilations` other than 1.
    pub fn no_dilation(&self, what: &str) -> Result<(), OnnxError> {
        match self.ints("dilations")? {
            Some(d) if d.iter().any(|&v| v != 1) => Err(self.fail(format!(
                "dilations {d:?} are not supported; netmorph {what} have dilation 1"
            ))),
            _ => Ok(()),
        }
    }

    /// Two equal positive sizes.
    fn square(&self, name: &str, v: &[i64]) -> Result<usize, OnnxError> {
        match v {
            [a, b] if a == b && *a >= 1 => {
                usize::try_from(*a).map_err(|_| self.fail(format!("its {name} {v:?} overflow")))
            }
            _ => Err(self.fail(format!(
                "its {name} {v:?} are not two equal positive sizes; netmorph's are square"
            ))),
        }
    }
}
