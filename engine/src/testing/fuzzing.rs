//! Entry points for the `fuzz/` targets and the corpus-replay test.
//!
//! Each function must never panic on any input; a panic is a bug (in particular, a decode that
//! succeeds must re-encode to exactly the input: the decoders accept only canonical encodings).

use crate::record;
use crate::slot::SlotRecord;
use crate::state::{
    EngineState, STATE_FILE_LEN, STATE_FILE_LEN_ARCHIVED, STATE_MAGIC, STATE_VERSION, STATE_VERSION_ARCHIVED,
};

/// Fuzzes the engine record decoder: byte 0 is the WAL kind, the rest the payload.
pub fn record(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else { return };
    if let Ok(rec) = record::decode(kind, payload) {
        assert_eq!(rec.kind(), kind, "decoded record reports another kind");
        let encoded = rec.encode();
        assert_eq!(encoded.len(), rec.encoded_len(), "encoded_len disagrees with encode");
        assert_eq!(encoded, payload, "decode → encode is not the identity");
        let _ = rec.txn_id(u64::MAX);
        let _ = rec.txn_id(1);
    }
}

/// Fuzzes the slot-file decoder: `data` as a whole file, and `data` as a slot-file body framed
/// with a valid header and CRC (so mutations reach the body decoder instead of stopping at the
/// checksum).
pub fn slot_file(data: &[u8]) {
    check_slot_file(data);
    let mut framed = Vec::with_capacity(data.len() + 20);
    framed.extend_from_slice(&crate::slot::SLOT_MAGIC);
    framed.extend_from_slice(&crate::slot::SLOT_VERSION.to_le_bytes());
    framed.extend_from_slice(&0u16.to_le_bytes());
    framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
    framed.extend_from_slice(data);
    let crc = crc32fast::hash(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    check_slot_file(&framed);
}

fn check_slot_file(data: &[u8]) {
    if let Ok(rec) = SlotRecord::decode(data) {
        assert_eq!(rec.encode(), data, "decode → encode is not the identity");
        assert!(crate::slot::validate_slot_name(&rec.name).is_ok(), "decoded an invalid slot name");
    }
}

/// Fuzzes the `engine.state` decoder ([`EngineState::decode`]), both versions.
///
/// Input: a control byte, then the file bytes. The raw bytes are always decoded; with bit 0 of
/// the control byte set, a copy with the CRC (the last 4 bytes) recomputed is decoded too, so
/// that mutations of the version, flags and LSN fields reach the field checks instead of stopping
/// at the checksum. Independently, a state built from the input's bytes (bits 1–3 choose which
/// fields are set) must survive encode → decode.
pub fn engine_state(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    check_engine_state(bytes);
    check_engine_state(data);
    if ctl & 1 != 0 && (bytes.len() == STATE_FILE_LEN || bytes.len() == STATE_FILE_LEN_ARCHIVED) {
        let mut fixed = bytes.to_vec();
        let body = fixed.len() - 4;
        let crc = crc32fast::hash(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        let decoded = check_engine_state(&fixed);
        // With the CRC right, the header and the flags alone decide.
        let u16_at = |at: usize| u16::from_le_bytes([fixed[at], fixed[at + 1]]);
        let u64_at = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
        let (version, flags) = (u16_at(8), u16_at(10));
        let valid = fixed[..8] == STATE_MAGIC
            && match version {
                STATE_VERSION => fixed.len() == STATE_FILE_LEN && flags & !0b011 == 0,
                STATE_VERSION_ARCHIVED => {
                    fixed.len() == STATE_FILE_LEN_ARCHIVED && flags & !0b111 == 0 && flags & 0b100 != 0
                }
                _ => false,
            }
            && (flags & 0b001 != 0 || u64_at(12) == 0)
            && (flags & 0b010 != 0 || u64_at(20) == 0);
        assert_eq!(decoded.is_some(), valid, "repaired engine.state: {fixed:02x?}");
        if let Some(state) = decoded {
            assert_eq!(state.checkpoint_lsn, (flags & 0b001 != 0).then(|| u64_at(12)));
            assert_eq!(state.retain_from, (flags & 0b010 != 0).then(|| u64_at(20)));
            assert_eq!(state.archived_lsn, (version == STATE_VERSION_ARCHIVED).then(|| u64_at(28)));
        }
    }
    // encode ∘ decode on a state whose values come from the input.
    let value = |at: usize| {
        let mut b = [0u8; 8];
        let src = bytes.get(at..).unwrap_or_default();
        let n = src.len().min(8);
        b[..n].copy_from_slice(&src[..n]);
        u64::from_le_bytes(b)
    };
    let state = EngineState {
        checkpoint_lsn: (ctl & 2 != 0).then(|| value(0)),
        retain_from: (ctl & 4 != 0).then(|| value(8)),
        archived_lsn: (ctl & 8 != 0).then(|| value(16)),
    };
    let encoded = state.encode();
    let expected_len = if state.archived_lsn.is_some() { STATE_FILE_LEN_ARCHIVED } else { STATE_FILE_LEN };
    assert_eq!(encoded.len(), expected_len, "{state:?}");
    assert_eq!(EngineState::decode(&encoded), Ok(state), "engine.state encode → decode lost {state:?}");
}

/// Decodes `bytes` as `engine.state`; a success must re-encode to exactly the input.
fn check_engine_state(bytes: &[u8]) -> Option<EngineState> {
    let state = EngineState::decode(bytes).ok()?;
    let expected_len = if state.archived_lsn.is_some() { STATE_FILE_LEN_ARCHIVED } else { STATE_FILE_LEN };
    assert_eq!(bytes.len(), expected_len, "decoded an engine.state of {} bytes: {state:?}", bytes.len());
    assert_eq!(state.encode(), bytes, "engine.state decode → encode is not the identity");
    Some(state)
}
