//! Replication slots: public types, name validation, and the slot file format.
//!
//! A slot is a durable consumer position (the PostgreSQL model). `confirmed_lsn` is the last LSN
//! the consumer has durably processed; `restart_lsn` is the first LSN it still needs, which is
//! `confirmed_lsn + 1` because transactions are atomic batches. Retention never deletes a segment
//! holding an LSN at or after a valid slot's `restart_lsn`.
//!
//! Slot file (`slots/<name>.slot`), little-endian:
//!
//! ```text
//! 0   8  magic "WALDSLOT"
//! 8   2  version (1)
//! 10  2  flags (0)
//! 12  4  body_len
//! 16  …  body (body_len bytes)
//! …   4  CRC-32 of every preceding byte
//! ```
//!
//! The body is described in `docs/FORMAT.md` ("Slot file").

use std::collections::BTreeSet;
use std::fmt;

use crate::Lsn;
use crate::codec::{self, DecodeError, Decoder};
use crate::record::{ChangeOp, EngineRecord};

/// Magic at the start of a slot file.
pub const SLOT_MAGIC: [u8; 8] = *b"WALDSLOT";
/// Format version of slot files.
pub const SLOT_VERSION: u16 = 1;
/// Extension of slot files in `<dir>/slots/`.
pub const SLOT_FILE_EXTENSION: &str = ".slot";
/// Longest slot name (PostgreSQL's `NAMEDATALEN - 1`).
pub const MAX_SLOT_NAME_LEN: usize = 63;

const SLOT_HEADER_LEN: usize = 16;
const SLOT_CRC_LEN: usize = 4;

const STATE_VALID: u8 = 0;
const STATE_LOST: u8 = 1;

const REASON_MAX_WAL_KEEP: u8 = 1;
const REASON_IDLE_TIMEOUT: u8 = 2;
const REASON_WAL_REMOVED: u8 = 3;
const REASON_AHEAD_OF_LOG: u8 = 4;

/// Checks a slot name against `[a-z0-9_]{1,63}` (as PostgreSQL does), so that no name can
/// escape the slot directory or collide with another file.
pub fn validate_slot_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_SLOT_NAME_LEN {
        return Err("must be at most 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err("may only contain lower-case letters, digits and underscores");
    }
    Ok(())
}

/// Where a new slot starts consuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// Just after the durable end of the log: the slot sees only transactions not yet durable
    /// when it is created (default). In non-durable sync modes the log is synced first, so this is
    /// the next LSN to be written.
    #[default]
    Current,
    /// At the oldest LSN still retained.
    Oldest,
    /// At this LSN (its first record is the first the slot needs). Must still be retained and at
    /// most one past the durable end.
    Lsn(Lsn),
}

/// A kind of change a slot filter can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Row inserts.
    Insert,
    /// Row updates.
    Update,
    /// Row deletes.
    Delete,
    /// Schema changes.
    Schema,
}

impl Operation {
    fn bit(self) -> u8 {
        match self {
            Operation::Insert => 1,
            Operation::Update => 2,
            Operation::Delete => 4,
            Operation::Schema => 8,
        }
    }

    const ALL: [Operation; 4] = [Operation::Insert, Operation::Update, Operation::Delete, Operation::Schema];
}

impl From<ChangeOp> for Operation {
    fn from(op: ChangeOp) -> Operation {
        match op {
            ChangeOp::Insert => Operation::Insert,
            ChangeOp::Update => Operation::Update,
            ChangeOp::Delete => Operation::Delete,
        }
    }
}

/// Which changes a slot's consumer wants. The engine stores the filter with the slot; consumers
/// (CDC) apply it with [`SlotFilter::matches`]. Retention is unaffected: a slot holds the WAL
/// from its restart LSN whatever its filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotFilter {
    /// Only these tables (`None`: all tables).
    pub tables: Option<BTreeSet<String>>,
    /// Only these operations (`None`: all operations).
    pub operations: Option<BTreeSet<Operation>>,
}

impl SlotFilter {
    /// Whether `record` passes the filter. BEGIN and COMMIT always pass.
    pub fn matches(&self, record: &EngineRecord) -> bool {
        let (table, op) = match record {
            EngineRecord::Change(c) => (c.table.as_str(), Operation::from(c.op)),
            EngineRecord::Schema(s) => (s.table.as_str(), Operation::Schema),
            EngineRecord::Begin(_) | EngineRecord::Commit(_) => return true,
        };
        self.tables.as_ref().is_none_or(|t| t.contains(table))
            && self.operations.as_ref().is_none_or(|o| o.contains(&op))
    }
}

/// Options for [`crate::Database::create_slot`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotOptions {
    /// Where the slot starts (default: the next LSN to be written).
    pub start: StartPosition,
    /// Which changes the consumer wants (default: everything).
    pub filter: SlotFilter,
    /// A temporary slot lives in memory only: never written to disk, gone when the database is
    /// closed or the process dies. It holds the WAL like any slot while it exists.
    pub temporary: bool,
}

/// Why a slot was invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationReason {
    /// The slot pinned more sealed WAL than `max_slot_wal_keep_bytes`.
    MaxWalKeepBytes {
        /// The slot's restart LSN when it was invalidated.
        restart_lsn: Lsn,
        /// Bytes of sealed segments it pinned.
        pinned_bytes: u64,
        /// The configured cap.
        max_bytes: u64,
    },
    /// The slot was inactive for longer than `slot_idle_timeout_ms`.
    IdleTimeout {
        /// How long it had been inactive, in milliseconds.
        idle_ms: u64,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// Found at open: the WAL the slot needs is gone (removed outside the engine).
    WalRemoved {
        /// The slot's restart LSN.
        restart_lsn: Lsn,
        /// The oldest LSN in the log.
        oldest_lsn: Lsn,
    },
    /// Found at open: the slot confirmed LSNs the log no longer has (the log was truncated, e.g.
    /// by point-in-time recovery), so new records would reuse LSNs it already confirmed.
    AheadOfLog {
        /// The slot's confirmed LSN.
        confirmed_lsn: Lsn,
        /// The last LSN in the log.
        last_lsn: Lsn,
    },
}

impl fmt::Display for InvalidationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InvalidationReason::MaxWalKeepBytes { restart_lsn, pinned_bytes, max_bytes } => write!(
                f,
                "restart LSN {restart_lsn} pinned {pinned_bytes} bytes of WAL, more than max_slot_wal_keep_bytes = {max_bytes}"
            ),
            InvalidationReason::IdleTimeout { idle_ms, timeout_ms } => {
                write!(f, "inactive for {idle_ms} ms, longer than slot_idle_timeout_ms = {timeout_ms}")
            }
            InvalidationReason::WalRemoved { restart_lsn, oldest_lsn } => write!(
                f,
                "WAL needed from restart LSN {restart_lsn} was removed (oldest LSN in the log is {oldest_lsn})"
            ),
            InvalidationReason::AheadOfLog { confirmed_lsn, last_lsn } => {
                write!(f, "confirmed LSN {confirmed_lsn} is beyond the end of the log ({last_lsn})")
            }
        }
    }
}

/// When and why a slot was invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalidation {
    /// Why.
    pub reason: InvalidationReason,
    /// When, in microseconds since the Unix epoch.
    pub invalidated_at_us: u64,
}

/// The state of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Acquired by a consumer ([`crate::Database::acquire_slot`]).
    Active,
    /// Valid, not acquired.
    Inactive,
    /// Invalidated: it holds no WAL and cannot be advanced or acquired; drop it.
    Lost(Invalidation),
}

impl SlotState {
    /// Whether the slot is still valid (active or inactive).
    pub fn is_valid(&self) -> bool {
        !matches!(self, SlotState::Lost(_))
    }
}

/// A snapshot of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// The name.
    pub name: String,
    /// First LSN the consumer still needs (`confirmed_lsn + 1`).
    pub restart_lsn: Lsn,
    /// Last LSN the consumer confirmed (0: nothing yet). Never decreases.
    pub confirmed_lsn: Lsn,
    /// Creation time, µs since the Unix epoch.
    pub created_at_us: u64,
    /// Last acquire, advance or release, µs since the Unix epoch.
    pub last_active_at_us: u64,
    /// Active, inactive or lost (with the reason).
    pub state: SlotState,
    /// The consumer's filter.
    pub filter: SlotFilter,
    /// Whether the slot is temporary (never persisted).
    pub temporary: bool,
}

/// The persisted part of a slot (what a slot file holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRecord {
    /// The name (valid per [`validate_slot_name`]; equals the file name).
    pub name: String,
    /// First LSN still needed.
    pub restart_lsn: Lsn,
    /// Last LSN confirmed.
    pub confirmed_lsn: Lsn,
    /// Creation time, µs since the Unix epoch.
    pub created_at_us: u64,
    /// Last activity, µs since the Unix epoch.
    pub last_active_at_us: u64,
    /// `Some` once the slot is lost.
    pub invalidation: Option<Invalidation>,
    /// The consumer's filter.
    pub filter: SlotFilter,
}

impl SlotRecord {
    /// Encodes the whole slot file (header, body, CRC).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(128);
        codec::put_bytes(&mut body, self.name.as_bytes());
        for v in [self.restart_lsn, self.confirmed_lsn, self.created_at_us, self.last_active_at_us] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        match &self.invalidation {
            None => body.push(STATE_VALID),
            Some(inv) => {
                body.push(STATE_LOST);
                body.extend_from_slice(&inv.invalidated_at_us.to_le_bytes());
                let (tag, a, b, c) = match inv.reason {
                    InvalidationReason::MaxWalKeepBytes { restart_lsn, pinned_bytes, max_bytes } => {
                        (REASON_MAX_WAL_KEEP, restart_lsn, pinned_bytes, max_bytes)
                    }
                    InvalidationReason::IdleTimeout { idle_ms, timeout_ms } => {
                        (REASON_IDLE_TIMEOUT, idle_ms, timeout_ms, 0)
                    }
                    InvalidationReason::WalRemoved { restart_lsn, oldest_lsn } => {
                        (REASON_WAL_REMOVED, restart_lsn, oldest_lsn, 0)
                    }
                    InvalidationReason::AheadOfLog { confirmed_lsn, last_lsn } => {
                        (REASON_AHEAD_OF_LOG, confirmed_lsn, last_lsn, 0)
                    }
                };
                body.push(tag);
                for v in [a, b, c] {
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        match &self.filter.tables {
            None => body.push(0),
            Some(tables) => {
                body.push(1);
                codec::put_varint(&mut body, tables.len() as u64);
                for t in tables {
                    codec::put_bytes(&mut body, t.as_bytes());
                }
            }
        }
        match &self.filter.operations {
            None => body.push(0),
            Some(ops) => {
                body.push(1);
                body.push(ops.iter().fold(0, |m, o| m | o.bit()));
            }
        }
        let mut out = Vec::with_capacity(SLOT_HEADER_LEN + body.len() + SLOT_CRC_LEN);
        out.extend_from_slice(&SLOT_MAGIC);
        out.extend_from_slice(&SLOT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and verifies a slot file. Never panics; only the canonical encoding is accepted.
    pub fn decode(bytes: &[u8]) -> Result<SlotRecord, DecodeError> {
        let mut d = Decoder::new(decode_frame(bytes)?);
        let name = d.string("name")?;
        validate_slot_name(&name)
            .map_err(|detail| DecodeError::InvalidValue { field: "name", detail: detail.to_string() })?;
        let restart_lsn = d.u64_le("restart_lsn")?;
        let confirmed_lsn = d.u64_le("confirmed_lsn")?;
        if restart_lsn > confirmed_lsn.saturating_add(1) {
            return Err(DecodeError::InvalidValue {
                field: "restart_lsn",
                detail: format!("{restart_lsn} is past confirmed_lsn {confirmed_lsn} + 1"),
            });
        }
        let created_at_us = d.u64_le("created_at_us")?;
        let last_active_at_us = d.u64_le("last_active_at_us")?;
        let invalidation = decode_invalidation(&mut d)?;
        let filter = decode_filter(&mut d)?;
        d.finish()?;
        Ok(SlotRecord { name, restart_lsn, confirmed_lsn, created_at_us, last_active_at_us, invalidation, filter })
    }
}

/// Checks a slot file's frame (magic, version, flags, length, CRC) and returns its body.
fn decode_frame(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let mut d = Decoder::new(bytes);
    let mut magic = [0u8; 8];
    for b in &mut magic {
        *b = d.u8("magic")?;
    }
    if magic != SLOT_MAGIC {
        return Err(DecodeError::InvalidValue { field: "magic", detail: format!("{magic:02x?}") });
    }
    let version = d.u16_le("version")?;
    if version != SLOT_VERSION {
        return Err(DecodeError::InvalidValue {
            field: "version",
            detail: format!("{version}, this build reads {SLOT_VERSION}"),
        });
    }
    let flags = d.u16_le("flags")?;
    if flags != 0 {
        return Err(DecodeError::InvalidValue { field: "flags", detail: format!("{flags:#06x}, expected 0") });
    }
    let body_len = d.u32_le("body_len")? as usize;
    let expected = SLOT_HEADER_LEN as u64 + body_len as u64 + SLOT_CRC_LEN as u64;
    if bytes.len() as u64 != expected {
        return Err(DecodeError::InvalidValue {
            field: "body_len",
            detail: format!("file is {} bytes, header says {expected}", bytes.len()),
        });
    }
    let crc_at = SLOT_HEADER_LEN + body_len;
    let stored_crc = u32::from_le_bytes([bytes[crc_at], bytes[crc_at + 1], bytes[crc_at + 2], bytes[crc_at + 3]]);
    let crc = crc32fast::hash(&bytes[..crc_at]);
    if stored_crc != crc {
        return Err(DecodeError::InvalidValue {
            field: "crc",
            detail: format!("stored {stored_crc:#010x}, computed {crc:#010x}"),
        });
    }
    Ok(&bytes[SLOT_HEADER_LEN..crc_at])
}

/// The slot's state: valid (`None`) or lost, when and why.
fn decode_invalidation(d: &mut Decoder<'_>) -> Result<Option<Invalidation>, DecodeError> {
    match d.u8("state")? {
        STATE_VALID => Ok(None),
        STATE_LOST => {
            let invalidated_at_us = d.u64_le("invalidated_at_us")?;
            let tag = d.u8("invalidation reason")?;
            let fields = [d.u64_le("reason field")?, d.u64_le("reason field")?, d.u64_le("reason field")?];
            Ok(Some(Invalidation { reason: decode_reason(tag, fields)?, invalidated_at_us }))
        }
        other => Err(DecodeError::InvalidValue { field: "state", detail: format!("unknown state {other}") }),
    }
}

/// An invalidation reason from its tag and three fields (unused ones must be 0).
fn decode_reason(tag: u8, [a, b, c]: [u64; 3]) -> Result<InvalidationReason, DecodeError> {
    if tag != REASON_MAX_WAL_KEEP && c != 0 {
        return Err(DecodeError::InvalidValue { field: "reason field", detail: "unused field is not 0".into() });
    }
    match tag {
        REASON_MAX_WAL_KEEP => {
            Ok(InvalidationReason::MaxWalKeepBytes { restart_lsn: a, pinned_bytes: b, max_bytes: c })
        }
        REASON_IDLE_TIMEOUT => Ok(InvalidationReason::IdleTimeout { idle_ms: a, timeout_ms: b }),
        REASON_WAL_REMOVED => Ok(InvalidationReason::WalRemoved { restart_lsn: a, oldest_lsn: b }),
        REASON_AHEAD_OF_LOG => Ok(InvalidationReason::AheadOfLog { confirmed_lsn: a, last_lsn: b }),
        other => {
            Err(DecodeError::InvalidValue { field: "invalidation reason", detail: format!("unknown reason {other}") })
        }
    }
}

/// The slot's filter: a sorted, unique table set and an operation mask, each optional.
fn decode_filter(d: &mut Decoder<'_>) -> Result<SlotFilter, DecodeError> {
    let tables = if d.bool("table filter present")? {
        let n = d.count("table count", 2)?;
        let mut tables = BTreeSet::new();
        for _ in 0..n {
            let t = d.name("table")?;
            if tables.last().is_some_and(|last: &String| last >= &t) {
                return Err(DecodeError::InvalidValue {
                    field: "table",
                    detail: "tables must be sorted and unique".to_string(),
                });
            }
            tables.insert(t);
        }
        Some(tables)
    } else {
        None
    };
    let operations = if d.bool("operation filter present")? {
        let mask = d.u8("operation mask")?;
        if mask & !0x0f != 0 {
            return Err(DecodeError::InvalidValue {
                field: "operation mask",
                detail: format!("unknown bits {mask:#04x}"),
            });
        }
        Some(Operation::ALL.into_iter().filter(|o| mask & o.bit() != 0).collect())
    } else {
        None
    };
    Ok(SlotFilter { tables, operations })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SlotRecord {
        SlotRecord {
            name: "orders_cdc".into(),
            restart_lsn: 101,
            confirmed_lsn: 100,
            created_at_us: 1_700_000_000_000_000,
            last_active_at_us: 1_700_000_000_500_000,
            invalidation: Some(Invalidation {
                reason: InvalidationReason::MaxWalKeepBytes { restart_lsn: 101, pinned_bytes: 9000, max_bytes: 4096 },
                invalidated_at_us: 1_700_000_001_000_000,
            }),
            filter: SlotFilter {
                tables: Some(["orders".to_string(), "users".to_string()].into()),
                operations: Some([Operation::Insert, Operation::Schema].into()),
            },
        }
    }

    #[test]
    fn round_trip_and_damage_is_detected() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(SlotRecord::decode(&bytes).unwrap(), s);
        let plain = SlotRecord { invalidation: None, filter: SlotFilter::default(), ..sample() };
        assert_eq!(SlotRecord::decode(&plain.encode()).unwrap(), plain);
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(SlotRecord::decode(&b).is_err(), "bit {i}");
        }
        for cut in 0..bytes.len() {
            assert!(SlotRecord::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "slot_1", "0", &"x".repeat(63)] {
            assert!(validate_slot_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a-b", "a.b", "../x", "a/b", "é", "a b", "slot\0", &"x".repeat(64)] {
            assert!(validate_slot_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filter_matches() {
        use crate::record::{Commit, RowChange};
        let f = SlotFilter { tables: Some(["a".to_string()].into()), operations: Some([Operation::Delete].into()) };
        let change = |table: &str, op| {
            EngineRecord::Change(RowChange {
                seq: 1,
                op,
                table: table.into(),
                key: bytes::Bytes::new(),
                before: None,
                after: if op == ChangeOp::Delete { None } else { Some(bytes::Bytes::new()) },
            })
        };
        assert!(f.matches(&change("a", ChangeOp::Delete)));
        assert!(!f.matches(&change("a", ChangeOp::Insert)));
        assert!(!f.matches(&change("b", ChangeOp::Delete)));
        assert!(f.matches(&EngineRecord::Commit(Commit { change_count: 1 })));
        assert!(SlotFilter::default().matches(&change("b", ChangeOp::Insert)));
    }
}
