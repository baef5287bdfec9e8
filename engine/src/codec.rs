//! Bounded binary encoding shared by the record payloads and the engine's files: LEB128 varints,
//! fixed little-endian integers, length-prefixed bytes and UTF-8 strings.
//!
//! The decoder never allocates from a length it has not checked against the bytes that remain,
//! never panics, and accepts only the canonical encoding (shortest varints, 0/1 booleans), so that
//! decoding then encoding gives back the input byte for byte (the fuzz targets check this).

use std::ops::Range;

/// Why a payload or file body could not be decoded. Each variant names the field involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The WAL record kind is not one the engine writes.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// The payload is empty (not even an encoding version byte).
    #[error("empty payload")]
    Empty,
    /// The payload's encoding version is not one this build reads.
    #[error("unsupported encoding version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The bytes end in the middle of a field.
    #[error("truncated while reading {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A varint is longer than 10 bytes, overflows 64 bits or is not in its shortest form.
    #[error("malformed varint in {field}")]
    BadVarint {
        /// The field being read.
        field: &'static str,
    },
    /// A length or count is larger than the bytes that remain could hold.
    #[error("{field} claims {len} bytes/items but only {remaining} bytes remain")]
    LengthOutOfBounds {
        /// The field being read.
        field: &'static str,
        /// The claimed length or count.
        len: u64,
        /// Bytes left in the input.
        remaining: u64,
    },
    /// A string field is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A field holds a value outside its domain (unknown tag, bad flag bits, empty name, ...).
    #[error("invalid {field}: {detail}")]
    InvalidValue {
        /// The field being read.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// Bytes remain after the last field.
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
}

/// Appends `v` as an unsigned LEB128 varint (1–10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encoded length of `v` as a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    let bits = 64 - v.max(1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends a varint length followed by the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encoded length of [`put_bytes`].
pub(crate) fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

/// Appends a presence byte (0/1) and, if present, the length-prefixed string.
pub(crate) fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

/// Encoded length of [`put_opt_str`].
pub(crate) fn opt_str_len(s: Option<&str>) -> usize {
    1 + s.map_or(0, |s| bytes_len(s.len()))
}

/// A cursor over input bytes with bounded, checked reads.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { field });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16_le(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32_le(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64_le(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A boolean stored as one byte, 0 or 1.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidValue { field, detail: format!("boolean byte {other}, expected 0 or 1") }),
        }
    }

    /// A canonical (shortest-form) unsigned LEB128 varint of at most 64 bits.
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8(field)?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(DecodeError::BadVarint { field });
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(DecodeError::BadVarint { field }); // overlong: trailing zero group
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint { field })
    }

    /// A varint that must fit in a `u32`.
    pub(crate) fn varint_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let v = self.varint(field)?;
        u32::try_from(v)
            .map_err(|_| DecodeError::InvalidValue { field, detail: format!("{v} does not fit in 32 bits") })
    }

    /// A count of items each at least `min_item_bytes` long: checked against the remaining bytes
    /// so that a caller may allocate `count` items.
    pub(crate) fn count(&mut self, field: &'static str, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.varint(field)?;
        let remaining = self.remaining() as u64;
        if n.saturating_mul(min_item_bytes.max(1) as u64) > remaining {
            return Err(DecodeError::LengthOutOfBounds { field, len: n, remaining });
        }
        Ok(n as usize)
    }

    /// A length-prefixed byte string; returns its range in the input.
    pub(crate) fn bytes_range(&mut self, field: &'static str) -> Result<Range<usize>, DecodeError> {
        let len = self.varint(field)?;
        let remaining = self.remaining() as u64;
        if len > remaining {
            return Err(DecodeError::LengthOutOfBounds { field, len, remaining });
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(start..self.pos)
    }

    /// A length-prefixed byte string.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let r = self.bytes_range(field)?;
        Ok(&self.buf[r])
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// A non-empty length-prefixed UTF-8 string.
    pub(crate) fn name(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.name_str(field).map(str::to_owned)
    }

    /// A non-empty length-prefixed UTF-8 string, borrowed from the input.
    pub(crate) fn name_str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let b = self.bytes(field)?;
        let s = std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 { field })?;
        if s.is_empty() {
            return Err(DecodeError::InvalidValue { field, detail: "must not be empty".to_string() });
        }
        Ok(s)
    }

    /// A presence byte (0/1) followed, if 1, by a length-prefixed UTF-8 string.
    pub(crate) fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        if self.bool(field)? { self.string(field).map(Some) } else { Ok(None) }
    }

    /// Fails if any byte remains.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_non_canonical() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "len of {v}");
            let mut d = Decoder::new(&out);
            assert_eq!(d.varint("v").unwrap(), v);
            d.finish().unwrap();
        }
        // Overlong zero, overlong one, 11 bytes, overflow in the 10th byte.
        for bad in [
            &[0x80u8, 0x00][..],
            &[0x81, 0x00],
            &[0xff; 11],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        ] {
            assert!(matches!(Decoder::new(bad).varint("v"), Err(DecodeError::BadVarint { .. })), "{bad:?}");
        }
        assert!(matches!(Decoder::new(&[0x80]).varint("v"), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn lengths_are_bounded_by_the_input() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert!(matches!(Decoder::new(&out).bytes("b"), Err(DecodeError::LengthOutOfBounds { .. })));
        assert!(matches!(Decoder::new(&out).count("c", 3), Err(DecodeError::LengthOutOfBounds { .. })));
        assert!(matches!(Decoder::new(&[2, 0xff, 0xfe]).string("s"), Err(DecodeError::InvalidUtf8 { .. })));
        assert!(matches!(Decoder::new(&[2]).bool("b"), Err(DecodeError::InvalidValue { .. })));
    }
}
