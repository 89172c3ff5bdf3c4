//! NumPy `.npy` files (format versions 1.0-3.0) of little-endian `f4`/`f8` values in C order.
//!
//! A file is the magic `\x93NUMPY`, a version, a header length, a header and the raw values.
//! The header is a Python dict literal with exactly the keys `'descr'`, `'fortran_order'` and
//! `'shape'` (NumPy's format specification); [`parse`] reads it with a real (small) parser of
//! Python literals, so that `'>f4'`, `'fortran_order':True` or a structured dtype are refused
//! rather than mistaken for what we support. Every size derived from the header is checked
//! against the bytes present before anything is allocated.

use std::fmt;
use std::path::{Path, PathBuf};

use netmorph_core::Scalar;

/// The values of an array, in the precision the file stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// `'<f4'` values.
    F32(Vec<f32>),
    /// `'<f8'` values.
    F64(Vec<f64>),
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// Values in C order; as many as the product of `shape`.
    pub values: Values,
}

/// The keys a `.npy` header holds, each exactly once.
const KEYS: [&str; 3] = ["descr", "fortran_order", "shape"];

/// Literals nested deeper than this are refused (no header needs more than 2 levels; the
/// cap keeps a hostile header from exhausting the stack).
const MAX_NESTING: usize = 16;

/// Why bytes are not a supported `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes do not start with `\x93NUMPY` and a version.
    Magic,
    /// A format version other than 1.0, 2.0 or 3.0.
    Version {
        /// Major version.
        major: u8,
        /// Minor version.
        minor: u8,
    },
    /// The header length points past the end of the bytes.
    Truncated {
        /// Bytes the preamble and header need.
        needed: u64,
        /// Bytes present.
        found: usize,
    },
    /// The header is not a Python dict literal.
    Syntax {
        /// Byte offset within the header.
        at: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// A key other than `descr`, `fortran_order` and `shape`.
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A key given twice.
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// A required key is absent.
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A dtype other than `'<f4'` or `'<f8'`.
    Dtype {
        /// The `descr` value as written.
        found: String,
    },
    /// `fortran_order` is `True`.
    FortranOrder,
    /// A value of the wrong kind (`shape` not a tuple of non-negative integers,
    /// `fortran_order` not a boolean).
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as written.
        found: String,
        /// What the value must be.
        expected: &'static str,
    },
    /// The number of bytes the shape needs does not fit in memory addresses.
    Overflow {
        /// The shape.
        shape: Vec<usize>,
    },
    /// The bytes after the header are not exactly what the shape and dtype need.
    Length {
        /// The shape.
        shape: Vec<usize>,
        /// Bytes the shape and dtype need.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Magic => f.write_str("not a .npy file (no \\x93NUMPY magic)"),
            Self::Version { major, minor } => write!(
                f,
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)"
            ),
            Self::Truncated { needed, found } => write!(
                f,
                "the header needs {needed} bytes but the file has {found}: it is truncated"
            ),
            Self::Syntax { at, expected } => write!(
                f,
                "the header is not a Python dict literal: expected {expected} at byte {at}"
            ),
            Self::UnknownKey { key } => write!(
                f,
                "the header has key {key}; a .npy header holds only 'descr', 'fortran_order' and 'shape'"
            ),
            Self::DuplicateKey { key } => write!(f, "the header gives '{key}' twice"),
            Self::MissingKey { key } => write!(f, "the header has no '{key}'"),
            Self::Dtype { found } => write!(
                f,
                "dtype {found} is not supported: only little-endian float32 ('<f4') or float64 ('<f8')"
            ),
            Self::FortranOrder => f.write_str("Fortran-ordered arrays are not supported"),
            Self::BadValue {
                key,
                found,
                expected,
            } => write!(f, "'{key}' is {found}; it must be {expected}"),
            Self::Overflow { shape } => {
                write!(f, "shape {shape:?} is too large to hold in memory")
            }
            Self::Length {
                shape,
                expected,
                found,
            } => write!(
                f,
                "shape {shape:?} needs {expected} bytes of data, the file has {found}"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// A `.npy` file that cannot be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum NpyError {
    /// Reading failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a supported `.npy` file.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Format { path, source } => write!(
                f,
                "{}: {source}; save it with numpy.save(path, array.astype(numpy.float32)) (C order)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for NpyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Format { source, .. } => Some(source),
        }
    }
}

/// Reads a `.npy` file of `<f4` or `<f8` values in C order (see [`parse`]).
///
/// # Errors
/// [`NpyError::Io`] if the file cannot be read, [`NpyError::Format`] if [`parse`] refuses it.
pub fn read(path: &Path) -> Result<Array, NpyError> {
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A device or pipe could be endless: only regular files, whose size is known.
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse(&bytes).map_err(|source| NpyError::Format {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the bytes of a `.npy` file of `<f4` or `<f8` values in C order.
///
/// # Errors
/// [`FormatError`] for a missing magic or unknown version, a header that is not a dict
/// literal with exactly the keys `descr`, `fortran_order` and `shape`, another dtype,
/// Fortran order, or data whose length disagrees with the shape.
///
/// # Examples
/// ```
/// use netmorph::npy::{parse, to_bytes, FormatError, Values};
/// let bytes = to_bytes(&[2, 1], &[1.5f32, -2.0]);
/// let array = parse(&bytes).unwrap();
/// assert_eq!(array.shape, vec![2, 1]);
/// assert_eq!(array.values, Values::F32(vec![1.5, -2.0]));
/// assert_eq!(parse(b"not numpy"), Err(FormatError::Magic));
/// ```
pub fn parse(bytes: &[u8]) -> Result<Array, FormatError> {
    let (header, body) = split(bytes)?;
    let (dtype, shape) = header_fields(header)?;
    let expected = shape
        .iter()
        .try_fold(dtype.width(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| FormatError::Overflow {
            shape: shape.clone(),
        })?;
    if body.len() != expected {
        return Err(FormatError::Length {
            shape,
            expected,
            found: body.len(),
        });
    }
    let values = match dtype {
        Dtype::F32 => Values::F32(
            body.chunks_exact(4)
                .map(|b| {
                    let mut a = [0; 4];
                    a.copy_from_slice(b);
                    f32::from_le_bytes(a)
                })
                .collect(),
        ),
        Dtype::F64 => Values::F64(
            body.chunks_exact(8)
                .map(|b| {
                    let mut a = [0; 8];
                    a.copy_from_slice(b);
                    f64::from_le_bytes(a)
                })
                .collect(),
        ),
    };
    Ok(Array { shape, values })
}

/// The bytes of a `.npy` file holding `data` with `shape`: `'<f4'` for `f32`, `'<f8'` for
/// `f64`. The format version is 1.0, or 2.0 when the header exceeds 65535 bytes (shapes of
/// thousands of dimensions); the data starts on a 64-byte boundary, as NumPy writes it.
///
/// # Panics
/// If `data.len()` is not the product of `shape`, or if the header would exceed 4 GiB (a
/// shape of about a billion dimensions).
///
/// # Examples
/// ```
/// use netmorph::npy::{parse, to_bytes, Values};
/// let bytes = to_bytes(&[3], &[1.0f64, 2.0, 3.0]);
/// assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
/// assert_eq!(parse(&bytes).unwrap().values, Values::F64(vec![1.0, 2.0, 3.0]));
/// ```
#[track_caller]
pub fn to_bytes<T: Scalar>(shape: &[usize], data: &[T]) -> Vec<u8> {
    assert_eq!(
        shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)),
        Some(data.len()),
        "to_bytes: {} values for shape {shape:?}",
        data.len()
    );
    let dtype = if T::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    };
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {tuple}, }}",
        dtype.descr()
    );
    // Version 1.0 stores the header length in 2 bytes after 8 bytes of magic and version,
    // 2.0 in 4; the header is padded with spaces and a newline so that the data starts on a
    // 64-byte boundary.
    let padded = |preamble: usize| (preamble + dict.len() + 1).next_multiple_of(64) - preamble;
    let mut out = b"\x93NUMPY".to_vec();
    let len = match u16::try_from(padded(10)) {
        Ok(len) => {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&len.to_le_bytes());
            usize::from(len)
        }
        Err(_) => {
            let len = padded(12);
            let len32 = u32::try_from(len).expect("to_bytes: a .npy header is at most 4 GiB");
            out.extend_from_slice(&[2, 0]);
            out.extend_from_slice(&len32.to_le_bytes());
            len
        }
    };
    out.reserve(len + data.len() * dtype.width());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', len - dict.len() - 1));
    out.push(b'\n');
    for v in data {
        match dtype {
            // Exact: `T` is f32 here.
            Dtype::F32 => out.extend_from_slice(&(v.as_f64() as f32).to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&v.as_f64().to_le_bytes()),
        }
    }
    out
}

/// The two element types we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
}

impl Dtype {
    fn width(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Self::F32 => "<f4",
            Self::F64 => "<f8",
        }
    }
}

/// Splits the bytes into the header text and the data after it.
fn split(bytes: &[u8]) -> Result<(&str, &[u8]), FormatError> {
    let rest = bytes.strip_prefix(b"\x93NUMPY").ok_or(FormatError::Magic)?;
    let [major, minor, rest @ ..] = rest else {
        return Err(FormatError::Magic);
    };
    let (len, rest) = match (major, minor, rest) {
        (1, 0, [a, b, rest @ ..]) => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        (2 | 3, 0, [a, b, c, d, rest @ ..]) => (
            usize::try_from(u32::from_le_bytes([*a, *b, *c, *d])).unwrap_or(usize::MAX),
            rest,
        ),
        (1..=3, 0, _) => {
            return Err(FormatError::Truncated {
                needed: if *major == 1 { 10 } else { 12 },
                found: bytes.len(),
            })
        }
        _ => {
            return Err(FormatError::Version {
                major: *major,
                minor: *minor,
            })
        }
    };
    if rest.len() < len {
        let preamble = bytes.len() - rest.len();
        return Err(FormatError::Truncated {
            needed: preamble as u64 + len as u64,
            found: bytes.len(),
        });
    }
    let (header, body) = rest.split_at(len);
    // Versions 1 and 2 declare latin-1, 3 UTF-8; every valid header is ASCII, so UTF-8 reads
    // both.
    let header = std::str::from_utf8(header).map_err(|e| FormatError::Syntax {
        at: e.valid_up_to(),
        expected: "UTF-8 text",
    })?;
    Ok((header, body))
}

/// The dtype and shape a header declares.
fn header_fields(header: &str) -> Result<(Dtype, Vec<usize>), FormatError> {
    let mut cursor = Cursor {
        text: header,
        at: 0,
    };
    cursor.skip_space();
    let start = cursor.at;
    let dict = cursor.literal(0)?;
    cursor.skip_space();
    let Literal::Dict(entries) = dict else {
        return Err(FormatError::Syntax {
            at: start,
            expected: "a dict literal",
        });
    };
    if cursor.at != header.len() {
        return Err(FormatError::Syntax {
            at: cursor.at,
            expected: "the end of the header after the dict",
        });
    }
    let mut values: [Option<Literal>; 3] = [None, None, None];
    for (key, value) in entries {
        let slot = match &key {
            Literal::Str(s) => KEYS.iter().position(|k| k == s),
            _ => None,
        };
        let Some(slot) = slot else {
            return Err(FormatError::UnknownKey {
                key: key.to_string(),
            });
        };
        if values[slot].replace(value).is_some() {
            return Err(FormatError::DuplicateKey { key: KEYS[slot] });
        }
    }
    let [descr, fortran, shape] = values;
    let missing = |key| FormatError::MissingKey { key };
    let dtype = match descr.ok_or_else(|| missing("descr"))? {
        Literal::Str(s) if s == "<f4" => Dtype::F32,
        Literal::Str(s) if s == "<f8" => Dtype::F64,
        other => {
            return Err(FormatError::Dtype {
                found: other.to_string(),
            })
        }
    };
    match fortran.ok_or_else(|| missing("fortran_order"))? {
        Literal::Word(w) if w == "False" => {}
        Literal::Word(w) if w == "True" => return Err(FormatError::FortranOrder),
        other => {
            return Err(FormatError::BadValue {
                key: "fortran_order",
                found: other.to_string(),
                expected: "True or False",
            })
        }
    }
    let shape = shape.ok_or_else(|| missing("shape"))?;
    let dims = match &shape {
        Literal::Tuple(items) => items
            .iter()
            .map(|d| match d {
                Literal::Word(w) if w.bytes().all(|b| b.is_ascii_digit()) => w.parse().ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    };
    let dims = dims.ok_or_else(|| FormatError::BadValue {
        key: "shape",
        found: shape.to_string(),
        expected: "a tuple of non-negative integers that fit in memory addresses",
    })?;
    Ok((dtype, dims))
}

/// A Python literal of the kinds `.npy` headers use.
#[derive(Clone, Debug, PartialEq)]
enum Literal {
    /// A quoted string.
    Str(String),
    /// An unquoted token: an integer, `True`, `False`, or anything else we only report.
    Word(String),
    /// `(a, b)`, `(a,)` or `()`.
    Tuple(Vec<Literal>),
    /// `[a, b]`.
    List(Vec<Literal>),
    /// `{k: v, ...}`.
    Dict(Vec<(Literal, Literal)>),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn items(f: &mut fmt::Formatter<'_>, items: &[Literal]) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        match self {
            Self::Str(s) => write!(f, "'{s}'"),
            Self::Word(w) => f.write_str(w),
            Self::Tuple(t) if t.len() == 1 => write!(f, "({},)", t[0]),
            Self::Tuple(t) => {
                f.write_str("(")?;
                items(f, t)?;
                f.write_str(")")
            }
            Self::List(l) => {
                f.write_str("[")?;
                items(f, l)?;
                f.write_str("]")
            }
            Self::Dict(d) => {
                f.write_str("{")?;
                for (i, (k, v)) in d.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A recursive-descent parser of Python literals over the header text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    fn fail<T>(&self, expected: &'static str) -> Result<T, FormatError> {
        Err(FormatError::Syntax {
            at: self.at,
            expected,
        })
    }

    /// One literal, starting at the cursor (no leading space).
    fn literal(&mut self, depth: usize) -> Result<Literal, FormatError> {
        if depth > MAX_NESTING {
            return self.fail("a literal nested at most 16 deep");
        }
        match self.peek() {
            Some(q @ ('\'' | '"')) => self.string(q),
            Some('(') => {
                let (mut items, comma) = self.items(')', depth)?;
                // `(x)` is `x` in Python; only `()`, `(x,)` and `(x, y)` are tuples.
                Ok(match (items.len(), comma) {
                    (1, false) => items.remove(0),
                    _ => Literal::Tuple(items),
                })
            }
            Some('[') => Ok(Literal::List(self.items(']', depth)?.0)),
            Some('{') => self.dict(depth),
            _ => {
                let rest = &self.text[self.at..];
                let len = rest
                    .find(|c: char| c.is_whitespace() || ",:()[]{}'\"".contains(c))
                    .unwrap_or(rest.len());
                if len == 0 {
                    return self.fail("a value");
                }
                self.at += len;
                Ok(Literal::Word(rest[..len].to_string()))
            }
        }
    }

    /// A quoted string (backslash escapes the next character).
    fn string(&mut self, quote: char) -> Result<Literal, FormatError> {
        let start = self.at;
        let mut out = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                c if c == quote => {
                    self.at = start + 1 + i + 1;
                    return Ok(Literal::Str(out));
                }
                c => out.push(c),
            }
        }
        self.fail("a closing quote")
    }

    /// Comma-separated literals from the opening bracket at the cursor to `close`; also
    /// whether a comma was seen.
    fn items(&mut self, close: char, depth: usize) -> Result<(Vec<Literal>, bool), FormatError> {
        self.at += 1;
        let (mut items, mut comma) = (Vec::new(), false);
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok((items, comma));
            }
            items.push(self.literal(depth + 1)?);
            self.skip_space();
            match self.peek() {
                Some(',') => {
                    self.at += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => return self.fail("a comma or a closing bracket"),
            }
        }
    }

    /// `{key: value, ...}` with an optional trailing comma.
    fn dict(&mut self, depth: usize) -> Result<Literal, FormatError> {
        self.at += 1;
        let mut entries = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some('}') {
                self.at += 1;
                return Ok(Literal::Dict(entries));
            }
            let key = self.literal(depth + 1)?;
            self.skip_space();
            if self.peek() != Some(':') {
                return self.fail("a colon after the key");
            }
            self.at += 1;
            self.skip_space();
            let value = self.literal(depth + 1)?;
            entries.push((key, value));
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {}
                _ => return self.fail("a comma or a closing brace"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1.0 file with `header` (padded as NumPy pads it) and `body`.
    fn file(header: &str, body: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn floats(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn round_trips_f32_and_f64_exactly() {
        let x32 = [1.0f32, -0.0, f32::MIN_POSITIVE, 3.25, f32::MAX, 1e-40];
        let a = parse(&to_bytes(&[2, 3], &x32)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        let Values::F32(v) = a.values else {
            panic!("f32 read back as {:?}", a.values)
        };
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            x32.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let x64 = [0.1f64, -1e300, 5e-324];
        let a = parse(&to_bytes(&[3], &x64)).unwrap();
        assert_eq!((a.shape, a.values), (vec![3], Values::F64(x64.to_vec())));
        // Scalars and empty arrays.
        let a = parse(&to_bytes(&[], &[7.0f32])).unwrap();
        assert_eq!((a.shape, a.values), (vec![], Values::F32(vec![7.0])));
        let a = parse(&to_bytes::<f64>(&[0, 5], &[])).unwrap();
        assert_eq!((a.shape, a.values), (vec![0, 5], Values::F64(vec![])));
    }

    #[test]
    fn data_starts_on_a_64_byte_boundary() {
        for shape in [&[1usize][..], &[1, 1], &[1; 40], &[1; 100]] {
            let bytes = to_bytes(shape, &[0.0f32]);
            let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            assert_eq!((10 + len) % 64, 0, "{shape:?}");
            assert_eq!(bytes[10 + len - 1], b'\n');
            assert_eq!(bytes.len(), 10 + len + 4);
        }
    }

    #[test]
    fn headers_over_64_kib_use_version_2() {
        let shape = vec![1usize; 30_000];
        let bytes = to_bytes(&shape, &[2.5f64]);
        assert_eq!(&bytes[6..8], &[2, 0]);
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert!(len > usize::from(u16::MAX));
        assert_eq!((12 + len) % 64, 0);
        let a = parse(&bytes).unwrap();
        assert_eq!((a.shape, a.values), (shape, Values::F64(vec![2.5])));
    }

    #[test]
    fn accepts_the_spellings_numpy_and_people_write() {
        let body = floats(&[1.0, 2.0, 3.0]);
        for header in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(3,)}",
            "{ 'shape' : ( 3 , ) ,'fortran_order':False , 'descr' : '<f4' }",
            "\t{'descr':'<f4','fortran_order':False,'shape':(1,3)}",
        ] {
            let a = parse(&file(header, &body)).unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(a.values, Values::F32(vec![1.0, 2.0, 3.0]), "{header}");
        }
        let a = parse(&file(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            &4.0f64.to_le_bytes(),
        ))
        .unwrap();
        assert_eq!((a.shape, a.values), (vec![], Values::F64(vec![4.0])));
    }

    fn refused(header: &str, body: &[u8]) -> FormatError {
        match parse(&file(header, body)) {
            Ok(a) => panic!("{header} was accepted as {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn big_endian_is_refused_even_beside_a_little_endian_string() {
        let e = refused(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), 'note': '<f4'}",
            &[0; 4],
        );
        // Either reason suffices; 'note' is seen first here.
        assert!(
            matches!(e, FormatError::UnknownKey { ref key } if key == "'note'"),
            "{e}"
        );
        let e = refused(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}",
            &[0; 4],
        );
        assert_eq!(
            e,
            FormatError::Dtype {
                found: "'>f4'".into()
            }
        );
        assert!(e.to_string().contains("little-endian"), "{e}");
    }

    #[test]
    fn other_dtypes_are_refused() {
        for (descr, shown) in [
            ("[('a', '<f4')]", "[('a', '<f4')]"),
            ("'|u1'", "'|u1'"),
            ("'<f2'", "'<f2'"),
            ("'f4'", "'f4'"),
            ("'<i4'", "'<i4'"),
            (
                "[('a', '>f4'), ('b', '<f4')]",
                "[('a', '>f4'), ('b', '<f4')]",
            ),
        ] {
            let header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,)}}");
            assert_eq!(
                refused(&header, &[0; 4]),
                FormatError::Dtype {
                    found: shown.into()
                },
                "{header}"
            );
        }
    }

    #[test]
    fn fortran_order_true_is_refused_in_any_spacing() {
        for spacing in [
            "'fortran_order': True",
            "'fortran_order':True",
            "'fortran_order'  :\tTrue",
        ] {
            let header = format!("{{'descr': '<f4', {spacing}, 'shape': (1,)}}");
            assert_eq!(
                refused(&header, &[0; 4]),
                FormatError::FortranOrder,
                "{header}"
            );
        }
        let e = refused(
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
            &[0; 4],
        );
        assert!(
            matches!(
                e,
                FormatError::BadValue {
                    key: "fortran_order",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn keys_must_be_exactly_the_three() {
        let e = refused("{'descr': '<f4', 'shape': (1,)}", &[0; 4]);
        assert_eq!(
            e,
            FormatError::MissingKey {
                key: "fortran_order"
            }
        );
        let e = refused(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'shape': (1,)}",
            &[0; 4],
        );
        assert_eq!(e, FormatError::DuplicateKey { key: "shape" });
        let e = refused(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
            &[0; 4],
        );
        assert!(e.to_string().contains("'extra'"), "{e}");
    }

    #[test]
    fn shapes_must_be_tuples_of_non_negative_integers() {
        for shape in [
            "(2.5,)",
            "(-1,)",
            "(1, 'a')",
            "3",
            "(3)",
            "[3]",
            "((1,),)",
            "(99999999999999999999999,)",
        ] {
            let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}}}");
            let e = refused(&header, &[0; 4]);
            assert!(
                matches!(e, FormatError::BadValue { key: "shape", .. }),
                "{header}: {e}"
            );
        }
    }

    #[test]
    fn malformed_dicts_are_syntax_errors() {
        for header in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
            "{'descr' '<f4'}",
            "{'descr': '<f4}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
            "('descr', '<f4')",
            "",
            &"[".repeat(100),
        ] {
            assert!(
                matches!(refused(header, &[0; 4]), FormatError::Syntax { .. }),
                "{header}"
            );
        }
    }

    #[test]
    fn huge_shapes_are_refused_without_allocating() {
        // 2^58 x 784 floats overflow; this used to panic with a capacity overflow.
        let e = refused(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (288230376151711744, 784)}",
            &[],
        );
        assert!(matches!(e, FormatError::Overflow { .. }), "{e}");
        // Representable, but not what the body holds.
        let e = refused(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000)}",
            &[],
        );
        assert_eq!(
            e,
            FormatError::Length {
                shape: vec![1_000_000, 1_000_000],
                expected: 8_000_000_000_000,
                found: 0
            }
        );
    }

    #[test]
    fn preambles_are_checked() {
        assert_eq!(parse(b""), Err(FormatError::Magic));
        assert_eq!(parse(b"\x93NUMPY"), Err(FormatError::Magic));
        assert_eq!(
            parse(b"\x93NUMPY\x04\x00\x00\x00"),
            Err(FormatError::Version { major: 4, minor: 0 })
        );
        assert!(matches!(
            parse(b"\x93NUMPY\x02\x00\x00"),
            Err(FormatError::Truncated { .. })
        ));
        // A header length past the end, in versions 1 and 3.
        assert!(matches!(
            parse(b"\x93NUMPY\x01\x00\xff\x00{}"),
            Err(FormatError::Truncated { needed: 265, .. })
        ));
        assert!(matches!(
            parse(b"\x93NUMPY\x03\x00\xff\xff\xff\xff{}"),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn read_names_the_file() {
        let path = std::env::temp_dir().join(format!("netmorph-npy-{}.npy", std::process::id()));
        std::fs::write(&path, b"\x93NUMPY\x09\x00").unwrap();
        let e = read(&path).unwrap_err();
        assert!(
            matches!(
                e,
                NpyError::Format {
                    source: FormatError::Version { .. },
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(read(&path), Err(NpyError::Io { .. })));
    }
}
