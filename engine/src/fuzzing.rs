//! Entry points for the `fuzz/` targets and the corpus-replay test. Not a stable API.
//!
//! Each function must never panic on any input; a panic is a bug (in particular, a decode that
//! succeeds must re-encode to exactly the input: the decoders accept only canonical encodings).

use crate::record;
use crate::slot::SlotRecord;
use crate::state::EngineState;

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

/// Fuzzes the slot-file decoder (and, on the side, the `engine.state` decoder): `data` as a whole
/// file, and `data` as a slot-file body framed with a valid header and CRC (so mutations reach
/// the body decoder instead of stopping at the checksum).
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
    if let Ok(state) = EngineState::decode(data) {
        assert_eq!(state.encode(), data, "engine.state decode → encode is not the identity");
    }
}

fn check_slot_file(data: &[u8]) {
    if let Ok(rec) = SlotRecord::decode(data) {
        assert_eq!(rec.encode(), data, "decode → encode is not the identity");
        assert!(crate::slot::validate_slot_name(&rec.name).is_ok(), "decoded an invalid slot name");
    }
}
