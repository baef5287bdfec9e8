//! Fuzzing entry points, one per CDC decoder of untrusted bytes. Used by the cargo-fuzz targets in
//! `fuzz/` and replayed over the committed corpus by `tests/fuzz_corpus.rs`. Not a stable API.
//!
//! Every function accepts arbitrary bytes and must return normally on every input; properties
//! that must hold whatever the input (a decoded value survives encode → decode, a column mask
//! keeps exactly the columns it should and leaves them unchanged) are `assert!`ed, so a violation
//! is a crash the fuzzer reports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use walden_engine::record::{KIND_BEGIN, KIND_COMMIT};
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{
    Begin, ChangeOp, Column, Commit, Config, Database, EngineRecord, RowChange, SchemaChange, SchemaRecord, SyncMode,
};

use crate::codec::{JsonCodec, MessagePackCodec, PayloadDecoder, base64_encode, bytes_to_json};
use crate::dlq::{DLQ_FORMAT_VERSION, DeadLetter, decode_entry, encode_entry};
use crate::envelope::{EnvelopeEncoder, EnvelopeFormat, changed_fields};
use crate::event::{ChangeEvent, Event, Operation, TxnContext};
use crate::filter::{ColumnMask, Filter};
use crate::{Lsn, SubscriptionOptions};

fn le_u64_padded(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
}

// ---------------------------------------------------------------------------------------------
// dead-letter queue entries
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`decode_entry`] (and [`encode_entry`]).
///
/// Input: a control byte, then bytes. The bytes are always decoded as a whole entry file. With
/// bit 0 set they are also decoded as the JSON body of an entry framed by a correct header (so
/// mutations reach the body decoder instead of stopping at the checksum); with bit 1 set an entry
/// built from the input's bytes must survive encode → decode.
pub fn dlq_entry(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else { return };
    check_dlq_entry(bytes);
    check_dlq_entry(data);
    if ctl & 1 != 0 {
        let mut framed =
            format!("walden-dlq {DLQ_FORMAT_VERSION} {:08x} {}\n", crc32fast::hash(bytes), bytes.len()).into_bytes();
        framed.extend_from_slice(bytes);
        let decoded = check_dlq_entry(&framed);
        // With a correct header, the body alone decides.
        let body_ok = serde_json::from_slice::<DeadLetter>(bytes).is_ok();
        assert_eq!(decoded.is_some(), body_ok, "a correctly framed body decodes iff it is a DeadLetter");
    }
    if ctl & 2 != 0 {
        let text = String::from_utf8_lossy(bytes);
        let mut parts = text.splitn(3, '\n');
        let entry = DeadLetter {
            id: parts.next().unwrap_or_default().to_string(),
            lsn: (ctl & 4 != 0).then(|| le_u64_padded(bytes)),
            error: parts.next().unwrap_or_default().to_string(),
            attempts: le_u64_padded(bytes.get(8..).unwrap_or_default()) as u32,
            first_failed_at_ms: le_u64_padded(bytes.get(12..).unwrap_or_default()),
            last_failed_at_ms: le_u64_padded(bytes.get(20..).unwrap_or_default()),
            event: bytes_to_json(parts.next().unwrap_or_default().as_bytes()),
        };
        let encoded = encode_entry(&entry).expect("a DeadLetter always serialises");
        assert_eq!(decode_entry(&encoded).as_ref(), Ok(&entry), "encode → decode changed the entry");
    }
}

/// Decodes `bytes` as an entry file; a success must re-encode into a file that decodes to the
/// same entry, and re-encoding that gives the same bytes (the encoding is canonical).
fn check_dlq_entry(bytes: &[u8]) -> Option<DeadLetter> {
    let entry = decode_entry(bytes).ok()?;
    assert!(bytes.starts_with(b"walden-dlq "), "decoded an entry without the magic");
    let encoded = encode_entry(&entry).expect("a decoded entry serialises");
    let again = decode_entry(&encoded).unwrap_or_else(|e| panic!("re-encoded entry does not decode: {e}"));
    assert_eq!(again, entry, "decode → encode → decode changed the entry");
    assert_eq!(encode_entry(&again).expect("serialises"), encoded, "entry encoding is not canonical");
    Some(entry)
}

// ---------------------------------------------------------------------------------------------
// payload codecs
// ---------------------------------------------------------------------------------------------

/// A typed row, as a consumer would decode payloads into (no floats: `NaN != NaN` would break the
/// round-trip assertions; floats are covered by the schemaless [`Value`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FuzzRow {
    id: u64,
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    active: Option<bool>,
    balance: i64,
    #[serde(default)]
    attrs: BTreeMap<String, i32>,
    kind: FuzzKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum FuzzKind {
    Plain,
    Tagged(u8),
    Shaped { x: i16, label: Option<String> },
}

/// Fuzzes the payload codecs ([`JsonCodec`], [`MessagePackCodec`], [`bytes_to_json`]) and the
/// decoding of change events through them, as [`crate::TypedStream`] does, plus the envelope
/// renderings of a change carrying the payload.
///
/// Input: a control byte (bits 0–1: operation; bits 2–7: where the payload splits into
/// `before` and `after`), then the payload bytes.
pub fn payload_codec(data: &[u8]) {
    let Some((&ctl, payload)) = data.split_first() else { return };
    let bytes = Bytes::copy_from_slice(payload);
    check_json_codec(&bytes);
    check_message_pack_codec(&bytes);
    // Into events: a change whose row images are (parts of) the payload.
    let event = change_event(ctl, &bytes);
    check_typed_change(&event);
    check_envelopes(&event);
}

/// JSON, schemaless and typed: a decoded value serialises and decodes back to itself, and
/// [`bytes_to_json`] renders the payload as the JSON value, else the text, else base64.
fn check_json_codec(bytes: &Bytes) {
    let json = JsonCodec::<Value>::new().decode(bytes);
    match &json {
        Ok(v) => {
            let again = Bytes::from(serde_json::to_vec(v).expect("a Value serialises"));
            assert_eq!(JsonCodec::<Value>::new().decode(&again).as_ref(), Ok(v), "JSON value does not round-trip");
            assert_eq!(&bytes_to_json(bytes), v, "bytes_to_json disagrees with the JSON codec");
        }
        Err(e) => {
            assert!(e.starts_with("invalid JSON payload"), "{e}");
            let expected = match std::str::from_utf8(bytes) {
                Ok(s) => Value::String(s.to_string()),
                Err(_) => serde_json::json!({ "$binary": base64_encode(bytes) }),
            };
            assert_eq!(bytes_to_json(bytes), expected);
        }
    }
    if let Ok(row) = JsonCodec::<FuzzRow>::new().decode(bytes) {
        let again = Bytes::from(serde_json::to_vec(&row).expect("a FuzzRow serialises"));
        assert_eq!(JsonCodec::<FuzzRow>::new().decode(&again), Ok(row), "JSON row does not round-trip");
    }
}

/// MessagePack, schemaless and typed (as arrays and as maps): decoded values round-trip.
fn check_message_pack_codec(bytes: &Bytes) {
    match MessagePackCodec::<Value>::new().decode(bytes) {
        Ok(v) => {
            let again = Bytes::from(rmp_serde::to_vec(&v).expect("a Value serialises to MessagePack"));
            assert_eq!(MessagePackCodec::<Value>::new().decode(&again), Ok(v), "MessagePack value does not round-trip");
        }
        Err(e) => assert!(e.starts_with("invalid MessagePack payload"), "{e}"),
    }
    if let Ok(row) = MessagePackCodec::<FuzzRow>::new().decode(bytes) {
        for again in [rmp_serde::to_vec(&row), rmp_serde::to_vec_named(&row)] {
            let again = Bytes::from(again.expect("a FuzzRow serialises to MessagePack"));
            assert_eq!(MessagePackCodec::<FuzzRow>::new().decode(&again).as_ref(), Ok(&row), "row does not round-trip");
        }
    }
}

/// Typed decoding of a change fails iff a row image is not JSON, and changes nothing else.
fn check_typed_change(event: &ChangeEvent) {
    let typed = event.clone().try_map_payload(|b| JsonCodec::<Value>::new().decode(&b));
    let images_are_json =
        [&event.data, &event.old_data].into_iter().flatten().all(|b| serde_json::from_slice::<Value>(b).is_ok());
    assert_eq!(typed.is_ok(), images_are_json, "typed decoding of a change must fail iff an image is not JSON");
    if let Ok(typed) = &typed {
        assert_eq!((typed.lsn, typed.op, &typed.key), (event.lsn, event.op, &event.key));
        assert_eq!(typed.data.as_ref(), event.data.as_ref().map(|b| bytes_to_json(b)).as_ref());
        assert_eq!(typed.old_data.as_ref(), event.old_data.as_ref().map(|b| bytes_to_json(b)).as_ref());
    }
    let _ = event.clone().try_map_payload(|b| MessagePackCodec::<FuzzRow>::new().decode(&b));
}

/// Every envelope renders any change, with `bytes_to_json` of the payloads as its row images;
/// changed fields are sorted, unique and really changed.
fn check_envelopes(event: &ChangeEvent) {
    let before = event.old_data.as_ref().map(|b| bytes_to_json(b));
    let after = event.data.as_ref().map(|b| bytes_to_json(b));
    let wrapped = Event::Change(event.clone());
    for format in [EnvelopeFormat::Native, EnvelopeFormat::Debezium, EnvelopeFormat::CdcEvent, EnvelopeFormat::Unified]
    {
        let rendered = EnvelopeEncoder::new(format).encode(&wrapped).expect("every format renders a row change");
        let (before_key, after_key) = match format {
            EnvelopeFormat::Native => ("oldData", "data"),
            _ => ("before", "after"),
        };
        let field = |key: &str| rendered.get(key).filter(|v| !v.is_null()).cloned();
        assert_eq!(field(after_key), after.clone().filter(|v| !v.is_null()), "{format:?} after");
        assert_eq!(field(before_key), before.clone().filter(|v| !v.is_null()), "{format:?} before");
    }
    if let (Some(b), Some(a)) = (&before, &after)
        && let Some(fields) = changed_fields(b, a)
    {
        assert!(fields.windows(2).all(|w| w[0] < w[1]), "changed fields sorted and unique: {fields:?}");
        assert!(fields.iter().all(|f| b.get(f) != a.get(f)), "a field listed as changed is unchanged");
    }
}

/// A change event whose operation and row images the control byte picks from `payload`.
fn change_event(ctl: u8, payload: &Bytes) -> ChangeEvent {
    let op = [Operation::Insert, Operation::Update, Operation::Delete, Operation::Update][usize::from(ctl & 3)];
    let split = usize::from(ctl >> 2) * payload.len() / 63;
    let (first, second) = (payload.slice(..split.min(payload.len())), payload.slice(split.min(payload.len())..));
    let (data, old_data) = match op {
        Operation::Insert => (Some(payload.clone()), None),
        Operation::Delete => (None, Some(payload.clone())),
        Operation::Update => (Some(second), Some(first)),
    };
    let lsn = le_u64_padded(payload).max(2);
    ChangeEvent {
        id: lsn.to_string(),
        op,
        table: String::from_utf8_lossy(&payload[..payload.len().min(16)]).into_owned(),
        lsn,
        key: payload.slice(..payload.len().min(8)),
        data,
        old_data,
        txn: TxnContext {
            txn_id: lsn - 1,
            commit_lsn: lsn.saturating_add(1),
            commit_timestamp_us: le_u64_padded(payload.get(8..).unwrap_or_default()),
            namespace: None,
            correlation_id: None,
            actor: None,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// column mask
// ---------------------------------------------------------------------------------------------

/// Fuzzes [`ColumnMask::apply`] and [`Filter::mask`] on untrusted payloads.
///
/// Input: a control byte (bit 0: exclude instead of include), then comma-separated column names
/// up to the first zero byte, then the payload. A payload the mask accepts must be a JSON object;
/// the output must hold exactly its columns the mask keeps, each with its value's exact text,
/// and masking again must change nothing. A payload that is not a JSON object must be refused.
pub fn column_mask(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let (names, payload) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    let columns: BTreeSet<String> =
        names.split(|&b| b == b',').map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    let exclude = ctl & 1 != 0;
    let mask = if exclude { ColumnMask::Exclude(columns.clone()) } else { ColumnMask::Include(columns.clone()) };
    let keeps = |key: &str| columns.contains(key) != exclude;
    for key in &columns {
        assert_eq!(mask.keeps(key), !exclude);
    }

    let input = Bytes::copy_from_slice(payload);
    // The top level of a JSON object, each value as its raw text.
    let raw = serde_json::from_slice::<BTreeMap<String, &RawValue>>(payload).ok();
    let result = mask.apply(&input);
    match (&result, &raw) {
        (Ok(out), Some(map)) => {
            let got = serde_json::from_slice::<BTreeMap<String, &RawValue>>(out)
                .unwrap_or_else(|e| panic!("mask output is not a JSON object ({e}): {out:?}"));
            let got: BTreeMap<&str, &str> = got.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
            let expected: BTreeMap<&str, &str> =
                map.iter().filter(|(k, _)| keeps(k)).map(|(k, v)| (k.as_str(), v.get())).collect();
            assert_eq!(got, expected, "the mask must keep exactly the columns it selects, unchanged");
            assert_eq!(mask.apply(out).as_ref(), Ok(out), "masking twice must change nothing");
            // Where the payload is also strict JSON (valid escapes, at most 128 levels deep),
            // so is the output, and its kept values are the input's.
            if let Ok(Value::Object(strict)) = serde_json::from_slice::<Value>(payload) {
                let Ok(Value::Object(strict_out)) = serde_json::from_slice::<Value>(out) else {
                    panic!("the mask made strict JSON lax: {out:?}")
                };
                let kept: serde_json::Map<String, Value> = strict.into_iter().filter(|(k, _)| keeps(k)).collect();
                assert_eq!(strict_out, kept);
            }
        }
        (Ok(out), None) => panic!("the mask accepted a payload that is not a JSON object; output {out:?}"),
        (Err(_), Some(_)) => panic!("the mask refused a JSON object: {result:?}"),
        (Err(_), None) => {
            assert!(!matches!(serde_json::from_slice::<Value>(payload), Ok(Value::Object(_))));
        }
    }

    // Through a filter, on both row images of an update.
    let event = ChangeEvent {
        id: "2".into(),
        op: Operation::Update,
        table: "t".into(),
        lsn: 2,
        key: Bytes::from_static(b"k"),
        data: Some(input.clone()),
        old_data: (ctl & 2 != 0).then(|| Bytes::from_static(b"{\"a\":1}")),
        txn: TxnContext { txn_id: 1, commit_lsn: 3, ..TxnContext::default() },
    };
    let masked = Filter::all().columns(mask).mask(event);
    match (masked, result) {
        (Ok(e), Ok(out)) => assert_eq!(e.data, Some(out)),
        (Err(_), Err(_)) => {}
        (m, r) => panic!("Filter::mask and ColumnMask::apply disagree: {m:?} vs {r:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// change stream over arbitrary logs
// ---------------------------------------------------------------------------------------------

/// Most records one `stream` input may append (keeps every run small).
const MAX_STREAM_RECORDS: usize = 256;

/// The first `n` bytes of `rest` (fewer at its end), advancing it.
fn take_bytes<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

/// Fuzzes a [`crate::ChangeStream`] (transaction assembly, start inside a transaction, filters,
/// masks, decode-error handling) over an arbitrary log: records that other writers could have put
/// in the WAL, not only what the engine writes. Nothing may panic, the stream must stop (no
/// endless seeking), and whatever it delivers lies in the log, in strictly increasing LSN order,
/// each event once.
///
/// Input: a control byte (bits 0–1: start position; bit 2: transaction control; bit 3: column
/// mask; bit 4: table filter; bit 5: append every record as its own batch, else the records of
/// each BEGIN…COMMIT run as one batch), then records, each a tag byte followed by its fields:
/// `0x00..=0x3f` BEGIN with `tag` changes; `0x40..=0x7f` a row change with seq `tag & 0x3f`, the
/// next byte choosing op and table, the next byte the payload length, then the payload;
/// `0x80..=0xbf` COMMIT with `tag & 0x3f` changes; `0xc0..=0xdf` a schema change with seq
/// `tag & 0x1f`; `0xe0..` a raw record: kind byte, length byte, payload.
pub fn stream(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let records = stream_records(rest);
    if records.is_empty() {
        return;
    }
    let db = database_with(&records, ctl & 0x20 != 0);
    let last_lsn = db.wal().next_lsn() - 1;
    let mut stream =
        crate::Cdc::new(db.clone()).subscribe(stream_options(ctl, last_lsn)).expect("every LSN of the log is retained");
    // Every record yields at most two items (a BEGIN before its first change, an error or
    // event); far more means the stream loops.
    let bound = 4 * records.len() + 16;
    let mut last_delivered = 0;
    let mut items = 0;
    while let Some(item) = stream.try_next() {
        items += 1;
        assert!(items <= bound, "the stream does not stop: more than {bound} items from {} records", records.len());
        let Ok(event) = item else { continue };
        let lsn = event.lsn();
        assert!((1..=last_lsn).contains(&lsn), "event at LSN {lsn} outside the log 1..={last_lsn}");
        assert!(lsn > last_delivered, "event at LSN {lsn} after LSN {last_delivered}: out of order or twice");
        last_delivered = lsn;
    }
}

/// A record of a [`stream`] input: its kind and payload.
type RawRecord = (u8, Vec<u8>);

/// The records a [`stream`] input describes (at most [`MAX_STREAM_RECORDS`]).
fn stream_records(mut rest: &[u8]) -> Vec<RawRecord> {
    let mut records = Vec::new();
    while records.len() < MAX_STREAM_RECORDS {
        let Some(&tag) = take_bytes(&mut rest, 1).first() else { break };
        let record = match tag {
            0x00..=0x3f => EngineRecord::Begin(Begin {
                change_count: u32::from(tag),
                correlation_id: (tag & 1 != 0).then(|| "c".to_string()),
                actor: None,
                namespace: (tag & 2 != 0).then(|| "n".to_string()),
            }),
            0x40..=0x7f => row_change(tag, &mut rest),
            0x80..=0xbf => EngineRecord::Commit(Commit { change_count: u32::from(tag & 0x3f) }),
            0xc0..=0xdf => EngineRecord::Schema(SchemaRecord {
                seq: u32::from(tag & 0x1f),
                table: "a".to_string(),
                schema_version: 1,
                change: SchemaChange::CreateTable { columns: vec![Column::new("id", "INT", false)] },
            }),
            _ => {
                let kind = take_byte(&mut rest);
                let len = usize::from(take_byte(&mut rest));
                records.push((kind, take_bytes(&mut rest, len).to_vec()));
                continue;
            }
        };
        records.push((record.kind(), record.encode()));
    }
    records
}

/// The next byte of `rest` (0 at its end), advancing it.
fn take_byte(rest: &mut &[u8]) -> u8 {
    take_bytes(rest, 1).first().copied().unwrap_or(0)
}

/// A row change with seq `tag & 0x3f`; the next byte chooses op and table, the one after the
/// payload length.
fn row_change(tag: u8, rest: &mut &[u8]) -> EngineRecord {
    let choice = take_byte(rest);
    let len = usize::from(take_byte(rest));
    let payload = Bytes::copy_from_slice(take_bytes(rest, len));
    let op = [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete][usize::from(choice % 3)];
    EngineRecord::Change(RowChange {
        seq: u32::from(tag & 0x3f),
        op,
        table: ["a", "b"][usize::from(choice >> 7)].to_string(),
        key: Bytes::from(vec![choice]),
        before: (op != ChangeOp::Insert).then(|| payload.clone()),
        after: (op != ChangeOp::Delete).then_some(payload),
    })
}

/// An in-memory database whose log holds `records`: each as its own batch, or the records of
/// each BEGIN…COMMIT run as one.
fn database_with(records: &[RawRecord], batch_each: bool) -> Arc<Database> {
    let storage = Arc::new(FaultStorage::new());
    let Ok(db) = Database::open_with_storage("/db", Config::with_sync_mode(SyncMode::None), storage) else {
        panic!("an empty in-memory database opens")
    };
    let wal = db.wal();
    if batch_each {
        for (kind, payload) in records {
            wal.append(*kind, payload).expect("small records append");
        }
    } else {
        // Runs from each BEGIN up to the next COMMIT (or the next BEGIN) as one batch.
        let mut start = 0;
        for (i, (kind, _)) in records.iter().enumerate() {
            let ends_run = *kind == KIND_COMMIT || records.get(i + 1).is_none_or(|(next, _)| *next == KIND_BEGIN);
            if ends_run {
                wal.append_batch(records[start..=i].iter().map(|(k, p)| (*k, &p[..]))).expect("small batches append");
                start = i + 1;
            }
        }
    }
    Arc::new(db)
}

/// The subscription a [`stream`] input's control byte asks for, ending at `last_lsn`.
fn stream_options(ctl: u8, last_lsn: Lsn) -> SubscriptionOptions {
    let from_lsn = match ctl & 3 {
        0 => 0,
        1 => 1,
        2 => 1 + (last_lsn - 1) / 2,
        _ => last_lsn,
    };
    let mut filter = Filter::all();
    if ctl & 0x08 != 0 {
        filter = filter.columns(ColumnMask::exclude(["secret"]));
    }
    if ctl & 0x10 != 0 {
        filter = filter.tables(["a"]);
    }
    SubscriptionOptions {
        end_lsn: Some(last_lsn),
        include_transaction_control: ctl & 0x04 != 0,
        ..SubscriptionOptions::from_lsn(from_lsn).with_filter(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harnesses_accept_trivial_inputs() {
        for input in [&b""[..], b"\0", b"\x03", b"\xff\xff\xff", &[0u8; 64], &[0xffu8; 64], b"\x03{}", b"\x01\0{}"] {
            dlq_entry(input);
            payload_codec(input);
            column_mask(input);
            stream(input);
        }
    }

    #[test]
    fn harnesses_reach_the_success_paths() {
        // A real entry, decoded and round-tripped.
        let entry = DeadLetter {
            id: "7".into(),
            lsn: Some(7),
            error: "sink down".into(),
            attempts: 2,
            first_failed_at_ms: 1,
            last_failed_at_ms: 2,
            event: serde_json::json!({"table": "users", "n": 1.5}),
        };
        let file = encode_entry(&entry).unwrap();
        assert_eq!(check_dlq_entry(&file), Some(entry.clone()));
        let mut body = vec![1u8];
        body.extend_from_slice(&serde_json::to_vec(&entry).unwrap());
        dlq_entry(&body);
        // A masked object and a typed row.
        column_mask(b"\x00id,name\0{\"id\":1,\"name\":\"a\",\"ssn\":\"x\"}");
        column_mask(b"\x01ssn\0{\"id\":1,\"ssn\":\"x\"}");
        let row = FuzzRow {
            id: 1,
            name: "a".into(),
            tags: vec!["t".into()],
            active: Some(true),
            balance: -5,
            attrs: [("k".to_string(), 3)].into(),
            kind: FuzzKind::Shaped { x: -1, label: None },
        };
        let mut input = vec![0u8];
        input.extend_from_slice(&serde_json::to_vec(&row).unwrap());
        payload_codec(&input);
        let mut input = vec![1u8 | (32 << 2)];
        input.extend_from_slice(&rmp_serde::to_vec(&row).unwrap());
        payload_codec(&input);
    }
}
