//! `engine.state`: the retention inputs the host and higher layers set (the host's checkpoint LSN
//! and the "retain from" horizon). Fixed 32 bytes:
//!
//! ```text
//! 0  8  magic "WALDENGS"
//! 8  2  version (1)
//! 10 2  flags: bit 0 checkpoint_lsn present, bit 1 retain_from present, others 0
//! 12 8  checkpoint_lsn (0 when absent)
//! 20 8  retain_from (0 when absent)
//! 28 4  CRC-32 of bytes 0..28
//! ```

use crate::Lsn;
use crate::codec::{DecodeError, Decoder};

/// File name of the engine state file in the database directory.
pub const STATE_FILE_NAME: &str = "engine.state";
/// Magic at the start of `engine.state`.
pub const STATE_MAGIC: [u8; 8] = *b"WALDENGS";
/// Format version of `engine.state`.
pub const STATE_VERSION: u16 = 1;
/// Length of `engine.state`.
pub const STATE_FILE_LEN: usize = 32;

const FLAG_CHECKPOINT: u16 = 0b01;
const FLAG_RETAIN_FROM: u16 = 0b10;

/// Retention inputs persisted in `engine.state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineState {
    /// The host's checkpoint: everything at or below it is no longer needed for the host's
    /// recovery. `None`: the host has never set it, and it does not restrict retention.
    pub checkpoint_lsn: Option<Lsn>,
    /// Records at or after this LSN are kept (set by a higher layer such as the archiver).
    pub retain_from: Option<Lsn>,
}

impl EngineState {
    /// Encodes the 32-byte file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_FILE_LEN);
        out.extend_from_slice(&STATE_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        let flags = if self.checkpoint_lsn.is_some() { FLAG_CHECKPOINT } else { 0 }
            | if self.retain_from.is_some() { FLAG_RETAIN_FROM } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.checkpoint_lsn.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.retain_from.unwrap_or(0).to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and verifies the file. Only the canonical encoding is accepted.
    pub fn decode(bytes: &[u8]) -> Result<EngineState, DecodeError> {
        if bytes.len() != STATE_FILE_LEN {
            return Err(DecodeError::InvalidValue {
                field: "file length",
                detail: format!("{} bytes, expected {STATE_FILE_LEN}", bytes.len()),
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
        if version != STATE_VERSION {
            return Err(DecodeError::InvalidValue {
                field: "version",
                detail: format!("{version}, this build reads {STATE_VERSION}"),
            });
        }
        let stored_crc = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
        let crc = crc32fast::hash(&bytes[..28]);
        if crc != stored_crc {
            return Err(DecodeError::InvalidValue {
                field: "crc",
                detail: format!("stored {stored_crc:#010x}, computed {crc:#010x}"),
            });
        }
        let flags = d.u16_le("flags")?;
        if flags & !(FLAG_CHECKPOINT | FLAG_RETAIN_FROM) != 0 {
            return Err(DecodeError::InvalidValue { field: "flags", detail: format!("unknown bits {flags:#06x}") });
        }
        let checkpoint = d.u64_le("checkpoint_lsn")?;
        let retain = d.u64_le("retain_from")?;
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bit_flip_is_detected() {
        let s = EngineState { checkpoint_lsn: Some(42), retain_from: None };
        let bytes = s.encode();
        assert_eq!(bytes.len(), STATE_FILE_LEN);
        assert_eq!(EngineState::decode(&bytes).unwrap(), s);
        assert_eq!(EngineState::decode(&EngineState::default().encode()).unwrap(), EngineState::default());
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(EngineState::decode(&b).is_err(), "bit {i}");
        }
        assert!(EngineState::decode(&bytes[..31]).is_err());
        assert!(EngineState::decode(&[0; 32]).is_err());
    }
}
