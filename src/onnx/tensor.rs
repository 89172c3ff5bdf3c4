//! Constant tensors: netmorph parameters to `TensorProto`s and back, with every size from the
//! file checked before anything proportional to it is allocated.

use netmorph_core::Scalar;

use super::proto::{data_type, TensorProto, EXTERNAL};
use super::OnnxError;

/// The ONNX element type of `T`: `FLOAT` for f32, `DOUBLE` for f64.
pub(super) fn elem_type<T: Scalar>() -> i32 {
    if T::NAME == "f32" {
        data_type::FLOAT
    } else {
        data_type::DOUBLE
    }
}

/// `values` (row-major, shaped `dims`) as a tensor of `T`'s element type in `raw_data`.
pub(super) fn encode<T: Scalar>(name: &str, dims: &[usize], values: &[T]) -> TensorProto {
    let mut raw = Vec::with_capacity(core::mem::size_of_val(values));
    for v in values {
        if T::NAME == "f32" {
            // Exact: `v` is an f32.
            raw.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
        } else {
            raw.extend_from_slice(&v.as_f64().to_le_bytes());
        }
    }
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(elem_type::<T>()),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..TensorProto::default()
    }
}

/// `values` as a one-dimensional `INT64` tensor (a `Reshape`'s target shape).
pub(super) fn encode_ints(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: Some(data_type::INT64),
        name: Some(name.to_string()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}

/// A decoded constant: its shape and values.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Decoded<V> {
    /// The shape.
    pub dims: Vec<usize>,
    /// Row-major values, `dims`' product of them.
    pub values: Vec<V>,
}

/// The values of a `FLOAT` or `DOUBLE` tensor, converted to `T` (f64 to f32 rounds).
///
/// # Errors
/// [`OnnxError::Tensor`] for another element type, external data, a negative or overflowing
/// shape, or a value count that disagrees with the shape.
pub(super) fn floats<T: Scalar>(t: &TensorProto, name: &str) -> Result<Decoded<T>, OnnxError> {
    let (dims, count) = shape(t, name)?;
    let values = match t.data_type.unwrap_or(0) {
        data_type::FLOAT => match &t.raw_data {
            Some(raw) => chunks::<4>(raw, count, name)?
                .map(|b| T::of_f64(f64::from(f32::from_le_bytes(b))))
                .collect(),
            None => {
                counted(t.float_data.len(), count, name)?;
                t.float_data
                    .iter()
                    .map(|&v| T::of_f64(f64::from(v)))
                    .collect()
            }
        },
        data_type::DOUBLE => match &t.raw_data {
            Some(raw) => chunks::<8>(raw, count, name)?
                .map(|b| T::of_f64(f64::from_le_bytes(b)))
                .collect(),
            None => {
                counted(t.double_data.len(), count, name)?;
                t.double_data.iter().map(|&v| T::of_f64(v)).collect()
            }
        },
        other => {
            return Err(tensor_error(
                name,
                format!(
                    "its element type is {}; netmorph reads FLOAT and DOUBLE parameters, so \
                     convert the model to float32 or float64",
                    data_type::name(other)
                ),
            ))
        }
    };
    Ok(Decoded { dims, values })
}

/// The values of an `INT64` tensor (shapes, as `Reshape` takes them).
///
/// # Errors
/// As [`floats`], for any element type but `INT64`.
pub(super) fn ints(t: &TensorProto, name: &str) -> Result<Decoded<i64>, OnnxError> {
    let (dims, count) = shape(t, name)?;
    let values = match (t.data_type.unwrap_or(0), &t.raw_data) {
        (data_type::INT64, Some(raw)) => chunks::<8>(raw, count, name)?
            .map(i64::from_le_bytes)
            .collect(),
        (data_type::INT64, None) => {
            counted(t.int64_data.len(), count, name)?;
            t.int64_data.clone()
        }
        (other, _) => {
            return Err(tensor_error(
                name,
                format!(
                    "its element type is {} where INT64 is expected",
                    data_type::name(other)
                ),
            ))
        }
    };
    Ok(Decoded { dims, values })
}

/// The shape of `t` and its value count, after refusing external data.
fn shape(t: &TensorProto, name: &str) -> Result<(Vec<usize>, usize), OnnxError> {
    if t.data_location == Some(EXTERNAL) {
        return Err(tensor_error(
            name,
            "its values are stored in an external file, which netmorph does not read; save the \
             model with its data inside the .onnx file (torch.onnx.export(..., \
             external_data=False), or onnx.save_model(onnx.load(path), out, \
             save_as_external_data=False))"
                .into(),
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| tensor_error(name, format!("its shape {:?} has a negative size", t.dims)))?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| tensor_error(name, format!("its shape {:?} overflows", t.dims)))?;
    Ok((dims, count))
}

/// `raw` split into `count` little-endian values of `N` bytes, once its length is checked.
fn chunks<'a, const N: usize>(
    raw: &'a [u8],
    count: usize,
    name: &str,
) -> Result<impl Iterator<Item = [u8; N]> + 'a, OnnxError> {
    if count.checked_mul(N) != Some(raw.len()) {
        return Err(tensor_error(
            name,
            format!(
                "its raw data holds {} bytes but its shape needs {count} values of {N} bytes",
                raw.len()
            ),
        ));
    }
    Ok(raw.chunks_exact(N).map(|c| {
        let mut b = [0u8; N];
        b.copy_from_slice(c);
        b
    }))
}

/// Checks that a typed value list holds exactly `count` values.
fn counted(found: usize, count: usize, name: &str) -> Result<(), OnnxError> {
    if found == count {
        Ok(())
    } else {
        Err(tensor_error(
            name,
            format!("it holds {found} values but its shape needs {count}"),
        ))
    }
}

fn tensor_error(name: &str, reason: String) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        reason,
    }
}
