//! `engine.state`: the retention inputs the host and higher layers set (the host's checkpoint LSN,
//! the "retain from" horizon and how far the archive reaches). Version 1 is 32 bytes; version 2
//! (40 bytes) adds the archived LSN and is written only when it is set, so a database that never
//! archived keeps a file older builds read.
//!
//! ```text
//! 0  8  magic "WALDENGS"
//! 8  2  version (1 or 2)
//! 10 2  flags: bit 0 checkpoint_lsn present, bit 1 retain_from present,
//!       bit 2 archived_lsn present (version 2 only), others 0
//! 12 8  checkpoint_lsn (0 when absent)
//! 20 8  retain_from (0 when absent)
//! version 1:  28 4  CRC-32 of bytes 0..28
//! version 2:  28 8  archived_lsn (0 when absent)
//!             36 4  CRC-32 of bytes 0..36
//! ```

use crate::Lsn;
use crate::codec::{DecodeError, Decoder};

/// File name of the engine state file in the database directory.
pub const STATE_FILE_NAME: &str = "engine.state";
/// Magic at the start of `engine.state`.
pub const STATE_MAGIC: [u8; 8] = *b"WALDENGS";
/// Format version of `engine.state` without an archived LSN.
pub const STATE_VERSION: u16 = 1;
/// Length of a version-1 `engine.state`.
pub const STATE_FILE_LEN: usize = 32;
/// Format version of `engine.state` with an archived LSN.
pub const STATE_VERSION_ARCHIVED: u16 = 2;
/// Length of a version-2 `engine.state`.
pub const STATE_FILE_LEN_ARCHIVED: usize = 40;

const FLAG_CHECKPOINT: u16 = 0b001;
const FLAG_RETAIN_FROM: u16 = 0b010;
const FLAG_ARCHIVED: u16 = 0b100;

/// Retention inputs persisted in `engine.state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineState {
    /// The host's checkpoint: everything at or below it is no longer needed for the host's
    /// recovery. `None`: the host has never set it, and it does not restrict retention.
    pub checkpoint_lsn: Option<Lsn>,
    /// Records at or after this LSN are kept (set by a higher layer such as the archiver).
    pub retain_from: Option<Lsn>,
    /// Every LSN up to and including this one is in the archive (readable as a CDC cold source),
    /// so slots do not pin the WAL below it. Set by the archiver.
    pub archived_lsn: Option<Lsn>,
}

impl EngineState {
    /// Encodes the file: version 1 (32 bytes) when no archived LSN is set, else version 2 (40).
    pub fn encode(&self) -> Vec<u8> {
        let (version, len) = match self.archived_lsn {
            None => (STATE_VERSION, STATE_FILE_LEN),
            Some(_) => (STATE_VERSION_ARCHIVED, STATE_FILE_LEN_ARCHIVED),
        };
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&STATE_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        let flags = if self.checkpoint_lsn.is_some() { FLAG_CHECKPOINT } else { 0 }
            | if self.retain_from.is_some() { FLAG_RETAIN_FROM } else { 0 }
            | if self.archived_lsn.is_some() { FLAG_ARCHIVED } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.checkpoint_lsn.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.retain_from.unwrap_or(0).to_le_bytes());
        if let Some(archived) = self.archived_lsn {
            out.extend_from_slice(&archived.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Decodes and verifies the file. Only the canonical encoding is accepted (a version-2 file
    /// without an archived LSN is not canonical).
    pub fn decode(bytes: &[u8]) -> Result<EngineState, DecodeError> {
        if bytes.len() != STATE_FILE_LEN && bytes.len() != STATE_FILE_LEN_ARCHIVED {
            return Err(DecodeError::InvalidValue {
                field: "file length",
                detail: format!("{} bytes, expected {STATE_FILE_LEN} or {STATE_FILE_LEN_ARCHIVED}", bytes.len()),
            });
        }
        let mut d = Decoder::new(bytes);
        let mut magic = [0u8; 8];
        for b in &mut magic {
            *b = d.u8("magic")?;
        }
        if magic != STATE_MAGIC {
            return Err(DecodeError::InvalidValue { field: "magic", detail: format!("{magic:02x?}") });
        }
        let version = d.u16_le("version")?;
        let (expected_len, known_flags) = match version {
            STATE_VERSION => (STATE_FILE_LEN, FLAG_CHECKPOINT | FLAG_RETAIN_FROM),
            STATE_VERSION_ARCHIVED => (STATE_FILE_LEN_ARCHIVED, FLAG_CHECKPOINT | FLAG_RETAIN_FROM | FLAG_ARCHIVED),
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "version",
                    detail: format!("{other}, this build reads {STATE_VERSION} and {STATE_VERSION_ARCHIVED}"),
                });
            }
        };
        if bytes.len() != expected_len {
            return Err(DecodeError::InvalidValue {
                field: "file length",
                detail: format!("{} bytes, version {version} has {expected_len}", bytes.len()),
            });
        }
        let body = expected_len - 4;
        let stored_crc = u32::from_le_bytes([bytes[body], bytes[body + 1], bytes[body + 2], bytes[body + 3]]);
        let crc = crc32fast::hash(&bytes[..body]);
        if crc != stored_crc {
            return Err(DecodeError::InvalidValue {
                field: "crc",
                detail: format!("stored {stored_crc:#010x}, computed {crc:#010x}"),
            });
        }
        let flags = d.u16_le("flags")?;
        if flags & !known_flags != 0 {
            return Err(DecodeError::InvalidValue { field: "flags", detail: format!("unknown bits {flags:#06x}") });
        }
        if version == STATE_VERSION_ARCHIVED && flags & FLAG_ARCHIVED == 0 {
            return Err(DecodeError::InvalidValue {
                field: "flags",
                detail: "version 2 without an archived LSN (written as version 1)".to_string(),
            });
        }
        let checkpoint = d.u64_le("checkpoint_lsn")?;
        let retain = d.u64_le("retain_from")?;
        let archived = if version == STATE_VERSION_ARCHIVED { d.u64_le("archived_lsn")? } else { 0 };
        let pick = |present: bool, v: u64, field: &'static str| -> Result<Option<Lsn>, DecodeError> {
            match (present, v) {
                (true, v) => Ok(Some(v)),
                (false, 0) => Ok(None),
                (false, v) => {
                    Err(DecodeError::InvalidValue { field, detail: format!("{v} stored but flagged absent") })
                }
            }
        };
        Ok(EngineState {
            checkpoint_lsn: pick(flags & FLAG_CHECKPOINT != 0, checkpoint, "checkpoint_lsn")?,
            retain_from: pick(flags & FLAG_RETAIN_FROM != 0, retain, "retain_from")?,
            archived_lsn: pick(flags & FLAG_ARCHIVED != 0, archived, "archived_lsn")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bit_flip_is_detected() {
        for (s, len) in [
            (EngineState { checkpoint_lsn: Some(42), retain_from: None, archived_lsn: None }, STATE_FILE_LEN),
            (
                EngineState { checkpoint_lsn: None, retain_from: Some(8), archived_lsn: Some(7) },
                STATE_FILE_LEN_ARCHIVED,
            ),
        ] {
            let bytes = s.encode();
            assert_eq!(bytes.len(), len);
            assert_eq!(EngineState::decode(&bytes).unwrap(), s);
            for i in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[i / 8] ^= 1 << (i % 8);
                assert!(EngineState::decode(&b).is_err(), "bit {i}");
            }
            assert!(EngineState::decode(&bytes[..len - 1]).is_err());
        }
        assert_eq!(EngineState::decode(&EngineState::default().encode()).unwrap(), EngineState::default());
        assert!(EngineState::decode(&[0; 32]).is_err());
        assert!(EngineState::decode(&[0; 40]).is_err());
    }
}
