//! Envelope formats against golden files (`tests/golden/*.json`), serde round trips, the field
//! names Debezium consumers read, deterministic ids and timestamps, and binary payloads.
//!
//! The events are built by hand with fixed LSNs and timestamps, rendered with
//! [`EnvelopeEncoder`] (and the envelope structs), canonicalised (object keys sorted, pretty
//! printed) and compared byte for byte with the golden files. Set `WALDEN_UPDATE_GOLDEN=1` to
//! rewrite the golden files from the current output (then review the diff).

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use walden_cdc::envelope::{
    CdcEventEnvelope, DebeziumEnvelope, DebeziumOptions, DebeziumTransaction, EnvelopeEncoder, EnvelopeFormat,
    NativeEvent, UnifiedEvent,
};
use walden_cdc::{
    ChangeEvent, ColumnDef, Event, Operation, SchemaChange, SchemaChangeEvent, TransactionEvent, TransactionEventKind,
    TxnContext,
};

mod common;
use common::temp_db;

/// 2025-01-22T10:30:00.123456Z, the commit time of transaction A.
const TS_A_US: u64 = 1_737_541_800_123_456;
/// 2025-01-22T10:30:05.000999Z, the commit time of transaction B.
const TS_B_US: u64 = 1_737_541_805_000_999;

fn txn_a() -> TxnContext {
    TxnContext {
        txn_id: 1000,
        commit_lsn: 1005,
        commit_timestamp_us: TS_A_US,
        namespace: Some("tenant-a".into()),
        correlation_id: Some("req-42".into()),
        actor: Some("User/alice".into()),
    }
}

fn txn_b() -> TxnContext {
    TxnContext {
        txn_id: 1006,
        commit_lsn: 1009,
        commit_timestamp_us: TS_B_US,
        namespace: None,
        correlation_id: None,
        actor: None,
    }
}

fn change(lsn: u64, op: Operation, table: &str, key: &[u8], before: Option<&[u8]>, after: Option<&[u8]>) -> Event {
    let txn = if lsn < 1006 { txn_a() } else { txn_b() };
    Event::Change(ChangeEvent {
        id: lsn.to_string(),
        op,
        table: table.to_string(),
        lsn,
        key: Bytes::copy_from_slice(key),
        data: after.map(Bytes::copy_from_slice),
        old_data: before.map(Bytes::copy_from_slice),
        txn,
    })
}

const ALICE: &[u8] = br#"{"id":"user-1","name":"Alice","email":"alice@example.com","plan":"free"}"#;
const ALICE_SMITH: &[u8] =
    br#"{"id":"user-1","name":"Alice Smith","email":"alice@example.com","plan":"pro","verified":true}"#;
const ORDER: &[u8] = br#"{"id":"order-7","user":"user-1","total":42.5,"items":["book","pen"]}"#;
const BINARY_KEY: &[u8] = &[0xde, 0xad, 0xbe, 0xef];
const TEXT_PAYLOAD: &[u8] = b"plain text, not JSON";
const BINARY_PAYLOAD: &[u8] = &[0x00, 0xff, 0x10, 0x80];

/// Two transactions, in LSN order, with transaction control on:
///
/// - A (txn 1000, commit 1005; namespace, correlation id, actor): CREATE TABLE users, INSERT
///   users/user-1, INSERT orders/order-7, UPDATE users/user-1;
/// - B (txn 1006, commit 1009; no metadata): DELETE orders/order-7, UPDATE of a binary key whose
///   old row is UTF-8 text that is not JSON and whose new row is not UTF-8.
fn stream() -> Vec<Event> {
    vec![
        Event::Transaction(TransactionEvent {
            kind: TransactionEventKind::Begin,
            lsn: 1000,
            change_count: 4,
            txn: txn_a(),
        }),
        Event::Schema(SchemaChangeEvent {
            id: "1001".to_string(),
            lsn: 1001,
            table: "users".to_string(),
            schema_version: 1,
            change: SchemaChange::CreateTable {
                columns: vec![
                    ColumnDef { name: "id".to_string(), data_type: "TEXT".to_string(), nullable: false },
                    ColumnDef { name: "name".to_string(), data_type: "TEXT".to_string(), nullable: false },
                    ColumnDef { name: "email".to_string(), data_type: "TEXT".to_string(), nullable: true },
                ],
            },
            txn: txn_a(),
        }),
        change(1002, Operation::Insert, "users", b"user-1", None, Some(ALICE)),
        change(1003, Operation::Insert, "orders", b"order-7", None, Some(ORDER)),
        change(1004, Operation::Update, "users", b"user-1", Some(ALICE), Some(ALICE_SMITH)),
        Event::Transaction(TransactionEvent {
            kind: TransactionEventKind::Commit,
            lsn: 1005,
            change_count: 4,
            txn: txn_a(),
        }),
        Event::Transaction(TransactionEvent {
            kind: TransactionEventKind::Begin,
            lsn: 1006,
            change_count: 2,
            txn: txn_b(),
        }),
        change(1007, Operation::Delete, "orders", b"order-7", Some(ORDER), None),
        change(1008, Operation::Update, "blobs", BINARY_KEY, Some(TEXT_PAYLOAD), Some(BINARY_PAYLOAD)),
        Event::Transaction(TransactionEvent {
            kind: TransactionEventKind::Commit,
            lsn: 1009,
            change_count: 2,
            txn: txn_b(),
        }),
    ]
}

/// Renders the whole stream with one encoder (encoders are stateful: Debezium's transaction
/// counters), keyed by LSN; `None` where the format has no representation.
fn render(format: EnvelopeFormat) -> Vec<(u64, Option<Value>)> {
    let mut encoder = EnvelopeEncoder::new(format);
    stream().iter().map(|e| (e.lsn(), encoder.encode(e))).collect()
}

fn rendered(format: EnvelopeFormat, lsn: u64) -> Value {
    render(format)
        .into_iter()
        .find(|(l, _)| *l == lsn)
        .and_then(|(_, v)| v)
        .unwrap_or_else(|| panic!("{format:?} renders LSN {lsn}"))
}

/// Recursively sorts object keys, so the text does not depend on serde_json's map type.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&canonical(value)).expect("JSON values serialise");
    text.push('\n');
    text
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden").join(format!("{name}.json"))
}

fn updating() -> bool {
    std::env::var("WALDEN_UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

/// Compares `value` with the golden file `name` (or rewrites it under `WALDEN_UPDATE_GOLDEN=1`).
fn check_golden(name: &str, value: &Value) {
    let path = golden_path(name);
    let text = pretty(value);
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("golden file {} is missing ({e}); run with WALDEN_UPDATE_GOLDEN=1 to create it", path.display())
    });
    assert_eq!(text, golden, "{name}: output differs from {} (WALDEN_UPDATE_GOLDEN=1 rewrites it)", path.display());
}

fn read_golden(name: &str) -> Value {
    let path = golden_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every golden file: (name, format, LSN of the event it renders).
const GOLDENS: &[(&str, EnvelopeFormat, u64)] = &[
    ("native_begin", EnvelopeFormat::Native, 1000),
    ("native_schema", EnvelopeFormat::Native, 1001),
    ("native_insert", EnvelopeFormat::Native, 1002),
    ("native_update", EnvelopeFormat::Native, 1004),
    ("native_commit", EnvelopeFormat::Native, 1005),
    ("native_delete", EnvelopeFormat::Native, 1007),
    ("native_binary", EnvelopeFormat::Native, 1008),
    ("debezium_begin", EnvelopeFormat::Debezium, 1000),
    ("debezium_insert", EnvelopeFormat::Debezium, 1002),
    ("debezium_insert_orders", EnvelopeFormat::Debezium, 1003),
    ("debezium_update", EnvelopeFormat::Debezium, 1004),
    ("debezium_delete", EnvelopeFormat::Debezium, 1007),
    ("debezium_binary", EnvelopeFormat::Debezium, 1008),
    ("debezium_end", EnvelopeFormat::Debezium, 1009),
    ("cdcevent_insert", EnvelopeFormat::CdcEvent, 1002),
    ("cdcevent_update", EnvelopeFormat::CdcEvent, 1004),
    ("cdcevent_delete", EnvelopeFormat::CdcEvent, 1007),
    ("cdcevent_binary", EnvelopeFormat::CdcEvent, 1008),
    ("unified_insert", EnvelopeFormat::Unified, 1002),
    ("unified_update", EnvelopeFormat::Unified, 1004),
    ("unified_delete", EnvelopeFormat::Unified, 1007),
    ("unified_binary", EnvelopeFormat::Unified, 1008),
];

#[test]
fn every_envelope_matches_its_golden_file() {
    for (name, format, lsn) in GOLDENS {
        check_golden(name, &rendered(*format, *lsn));
    }
    if updating() {
        return;
    }
    // No stale golden files: every file in the directory is checked above.
    let dir = golden_path("x").parent().unwrap().to_path_buf();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = GOLDENS.iter().map(|(n, _, _)| format!("{n}.json")).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "golden files without a check (or checks without a file)");
}

#[test]
fn rendering_is_deterministic_and_matches_the_envelope_structs() {
    for format in [EnvelopeFormat::Native, EnvelopeFormat::Debezium, EnvelopeFormat::CdcEvent, EnvelopeFormat::Unified]
    {
        assert_eq!(render(format), render(format), "{format:?}: same events, same output");
    }
    for event in stream() {
        let native = serde_json::to_value(NativeEvent::from_event(&event)).unwrap();
        assert_eq!(Some(native), EnvelopeEncoder::new(EnvelopeFormat::Native).encode(&event));
        if let Event::Change(c) = &event {
            let cdc = serde_json::to_value(CdcEventEnvelope::from_change(c)).unwrap();
            assert_eq!(Some(cdc), EnvelopeEncoder::new(EnvelopeFormat::CdcEvent).encode(&event));
            let unified = serde_json::to_value(UnifiedEvent::from_change(c)).unwrap();
            assert_eq!(Some(unified), EnvelopeEncoder::new(EnvelopeFormat::Unified).encode(&event));
        }
    }
    // Formats without a representation for an event say so.
    let none_for = |format, lsn| render(format).into_iter().find(|(l, _)| *l == lsn).unwrap().1.is_none();
    assert!(none_for(EnvelopeFormat::Debezium, 1001), "Debezium has no schema-change event");
    for format in [EnvelopeFormat::CdcEvent, EnvelopeFormat::Unified] {
        for lsn in [1000, 1001, 1005, 1006, 1009] {
            assert!(none_for(format, lsn), "{format:?} renders only row changes (LSN {lsn})");
        }
    }
    for (text, format) in [
        ("native", EnvelopeFormat::Native),
        ("debezium", EnvelopeFormat::Debezium),
        ("cdcevent", EnvelopeFormat::CdcEvent),
        ("unified", EnvelopeFormat::Unified),
    ] {
        assert_eq!(text.parse::<EnvelopeFormat>().unwrap(), format);
    }
    assert!("avro".parse::<EnvelopeFormat>().is_err());
}

/// Parses a golden file into its serde type and checks that serialising it again gives the same
/// JSON (no field lost, renamed or defaulted differently).
fn round_trip<T: DeserializeOwned + serde::Serialize>(name: &str) -> T {
    let golden = read_golden(name);
    let parsed: T = serde_json::from_value(golden.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), golden, "{name} round trip");
    parsed
}

#[test]
fn goldens_deserialize_back_into_their_types() {
    for (name, format, lsn) in GOLDENS {
        match format {
            EnvelopeFormat::Native => {
                let parsed: NativeEvent = round_trip(name);
                assert_eq!(parsed.lsn, *lsn);
                let event = stream().into_iter().find(|e| e.lsn() == *lsn).unwrap();
                assert_eq!(parsed, NativeEvent::from_event(&event));
            }
            EnvelopeFormat::Debezium if name.ends_with("begin") || name.ends_with("end") => {
                let parsed: DebeziumTransaction = round_trip(name);
                assert!(parsed.status == "BEGIN" || parsed.status == "END");
            }
            EnvelopeFormat::Debezium => {
                let parsed: DebeziumEnvelope = round_trip(name);
                assert_eq!(parsed.source.lsn, *lsn);
            }
            EnvelopeFormat::CdcEvent => {
                let parsed: CdcEventEnvelope = round_trip(name);
                assert_eq!(parsed.sequence, *lsn);
            }
            EnvelopeFormat::Unified => {
                let parsed: UnifiedEvent = round_trip(name);
                assert_eq!(parsed.lsn, *lsn);
            }
        }
    }
}

/// What a Debezium consumer (PostgreSQL connector, `payload` part) declares, with Debezium's own
/// field names and types. Unknown fields are ignored, as consumers do.
#[derive(Debug, Deserialize)]
struct DebeziumConsumerView {
    before: Option<Value>,
    after: Option<Value>,
    source: DebeziumConsumerSource,
    op: String,
    ts_ms: i64,
    transaction: Option<DebeziumConsumerTxn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebeziumConsumerSource {
    version: String,
    connector: String,
    name: String,
    #[serde(rename = "ts_ms")]
    ts_ms: i64,
    snapshot: String,
    db: String,
    schema: String,
    table: String,
    tx_id: i64,
    lsn: i64,
}

#[derive(Debug, Deserialize)]
struct DebeziumConsumerTxn {
    id: String,
    total_order: i64,
    data_collection_order: i64,
}

#[derive(Debug, Deserialize)]
struct DebeziumConsumerBoundary {
    status: String,
    id: String,
    event_count: Option<i64>,
    ts_ms: i64,
}

#[test]
fn debezium_envelopes_parse_with_debezium_field_names() {
    let insert: DebeziumConsumerView = serde_json::from_value(read_golden("debezium_insert")).unwrap();
    assert_eq!(insert.op, "c");
    assert!(insert.before.is_none());
    assert_eq!(insert.after.as_ref().unwrap()["name"], "Alice");
    assert_eq!(insert.ts_ms, (TS_A_US / 1000) as i64);
    let s = &insert.source;
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert_eq!((s.connector.as_str(), s.name.as_str(), s.snapshot.as_str()), ("walden", "walden", "false"));
    assert_eq!((s.db.as_str(), s.schema.as_str(), s.table.as_str()), ("tenant-a", "public", "users"));
    assert_eq!((s.ts_ms, s.tx_id, s.lsn), ((TS_A_US / 1000) as i64, 1000, 1002));
    let t = insert.transaction.as_ref().unwrap();
    assert_eq!((t.id.as_str(), t.total_order, t.data_collection_order), ("1000:1005", 1, 1));

    // Per-transaction counters: total order across tables, data-collection order per table.
    let orders: DebeziumConsumerView = serde_json::from_value(read_golden("debezium_insert_orders")).unwrap();
    let t = orders.transaction.unwrap();
    assert_eq!((t.total_order, t.data_collection_order), (2, 1));
    let update: DebeziumConsumerView = serde_json::from_value(read_golden("debezium_update")).unwrap();
    assert_eq!(update.op, "u");
    assert_eq!(update.before.unwrap()["name"], "Alice");
    assert_eq!(update.after.unwrap()["name"], "Alice Smith");
    let t = update.transaction.unwrap();
    assert_eq!((t.total_order, t.data_collection_order), (3, 2));
    // The counters restart with the next transaction; without a namespace `db` is the server name.
    let delete: DebeziumConsumerView = serde_json::from_value(read_golden("debezium_delete")).unwrap();
    assert_eq!(delete.op, "d");
    assert!(delete.after.is_none());
    assert_eq!(delete.before.unwrap()["id"], "order-7");
    assert_eq!(delete.source.db, "walden");
    let t = delete.transaction.unwrap();
    assert_eq!((t.id.as_str(), t.total_order, t.data_collection_order), ("1006:1009", 1, 1));

    let begin: DebeziumConsumerBoundary = serde_json::from_value(read_golden("debezium_begin")).unwrap();
    assert_eq!((begin.status.as_str(), begin.id.as_str(), begin.event_count), ("BEGIN", "1000:1005", None));
    assert_eq!(begin.ts_ms, (TS_A_US / 1000) as i64);
    let end: DebeziumConsumerBoundary = serde_json::from_value(read_golden("debezium_end")).unwrap();
    assert_eq!((end.status.as_str(), end.id.as_str(), end.event_count), ("END", "1006:1009", Some(2)));

    // Options: server name and no transaction block (`transaction` is then null, as in Debezium).
    let options = DebeziumOptions { server_name: "inventory".to_string(), transaction_metadata: false };
    let mut encoder = EnvelopeEncoder::with_debezium_options(EnvelopeFormat::Debezium, options);
    let event = stream().into_iter().find(|e| e.lsn() == 1007).unwrap();
    let value = encoder.encode(&event).unwrap();
    assert_eq!(value["transaction"], Value::Null);
    let view: DebeziumConsumerView = serde_json::from_value(value).unwrap();
    assert!(view.transaction.is_none());
    assert_eq!((view.source.name.as_str(), view.source.db.as_str()), ("inventory", "inventory"));
}

/// Debezium's END message says how many data events the transaction produced
/// (`event_count`), and consumers that buffer transactions wait for exactly that many. A schema
/// change has no Debezium data event, so it must not be counted; nor may changes a subscription
/// filter left out.
#[test]
fn debezium_end_counts_the_data_events_emitted() {
    let mut mismatches = Vec::new();
    // Hand-made transaction A: a schema change and three row changes.
    let rendered = render(EnvelopeFormat::Debezium);
    let emitted = rendered
        .iter()
        .filter(|(lsn, v)| (1000..=1005).contains(lsn) && v.as_ref().is_some_and(|v| v.get("op").is_some()))
        .count();
    assert_eq!(emitted, 3);
    let end = rendered.iter().find(|(lsn, _)| *lsn == 1005).unwrap().1.clone().unwrap();
    if end["event_count"] != emitted as u64 {
        mismatches.push(format!("schema change counted: {emitted} data events, END {end}"));
    }
    // A real database and a table filter: one of two changes is delivered.
    let (_dir, db) = temp_db(walden_engine::Config::with_sync_mode(walden_engine::SyncMode::None));
    let mut txn = db.begin();
    txn.insert("users", b"u1", br#"{"id":1}"#).unwrap();
    txn.insert("orders", b"o1", br#"{"id":2}"#).unwrap();
    txn.commit().unwrap();
    let cdc = walden_cdc::Cdc::new(db.clone());
    let options = walden_cdc::SubscriptionOptions::from_lsn(0)
        .with_filter(walden_cdc::Filter::all().tables(["users"]))
        .with_transaction_control(true);
    let mut stream = cdc.subscribe(options).unwrap();
    let mut encoder = EnvelopeEncoder::new(EnvelopeFormat::Debezium);
    let mut values = Vec::new();
    while let Some(event) = stream.try_next() {
        values.extend(encoder.encode(&event.unwrap()));
    }
    let statuses: Vec<&str> =
        values.iter().map(|v| v.get("status").and_then(Value::as_str).unwrap_or("data")).collect();
    assert_eq!(statuses, ["BEGIN", "data", "END"]);
    if values[2]["event_count"] != 1u64 {
        mismatches.push(format!("filtered-out change counted: 1 data event, END {}", values[2]));
    }
    assert!(
        mismatches.is_empty(),
        "Debezium END event_count is not the number of data events emitted: {mismatches:#?}"
    );
}

#[test]
fn cdcevent_changed_fields_and_unified_ids() {
    let update: CdcEventEnvelope = serde_json::from_value(read_golden("cdcevent_update")).unwrap();
    assert_eq!(update.operation, "UPDATE");
    assert_eq!(update.changed_fields.as_deref().unwrap(), ["name", "plan", "verified"]);
    assert_eq!((update.timestamp, update.sequence), (TS_A_US / 1000, 1004));
    assert_eq!(update.source.as_deref(), Some("tenant-a"));
    assert_eq!(update.correlation_id.as_deref(), Some("req-42"));
    let insert: CdcEventEnvelope = serde_json::from_value(read_golden("cdcevent_insert")).unwrap();
    assert!(insert.changed_fields.is_none() && insert.before.is_none());
    let delete: CdcEventEnvelope = serde_json::from_value(read_golden("cdcevent_delete")).unwrap();
    assert_eq!(delete.source.as_deref(), Some("walden"), "no namespace: the source is walden");
    assert!(delete.after.is_none() && delete.changed_fields.is_none());

    // UnifiedEvent ids are ULIDs whose time part is the commit time in ms; unique per LSN and the
    // same on every rendering (so downstream deduplication works).
    let mut ids = std::collections::BTreeSet::new();
    for name in ["unified_insert", "unified_update", "unified_delete", "unified_binary"] {
        let e: UnifiedEvent = serde_json::from_value(read_golden(name)).unwrap();
        assert_eq!(e.id.len(), 26);
        let ms = if e.lsn < 1006 { TS_A_US / 1000 } else { TS_B_US / 1000 };
        assert_eq!(ulid_time_ms(&e.id), ms, "{name}: ULID time part");
        assert!(ids.insert(e.id.clone()), "{name}: duplicate id");
        assert_eq!(e.meta.schema_version, 1);
        assert_eq!(e.store, "relational");
    }
    let insert: UnifiedEvent = serde_json::from_value(read_golden("unified_insert")).unwrap();
    assert_eq!((insert.event_type.as_str(), insert.op.as_str()), ("cdc.insert", "c"));
    assert_eq!(insert.timestamp, "2025-01-22T10:30:00.123Z");
    assert_eq!((insert.ns.as_str(), insert.txid.as_str()), ("tenant-a", "1000"));
    assert_eq!(insert.actor.as_deref(), Some("User/alice"));
    let delete: UnifiedEvent = serde_json::from_value(read_golden("unified_delete")).unwrap();
    assert_eq!((delete.event_type.as_str(), delete.op.as_str(), delete.ns.as_str()), ("cdc.delete", "d", ""));
    assert_eq!(delete.timestamp, "2025-01-22T10:30:05.000Z", "milliseconds, truncated");
}

/// Decodes the 48-bit time part (first 10 Crockford base-32 characters) of a ULID.
fn ulid_time_ms(ulid: &str) -> u64 {
    const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    ulid[..10].chars().fold(0u64, |acc, c| (acc << 5) | ALPHABET.find(c).expect("Crockford base 32") as u64)
}

#[test]
fn binary_keys_and_payloads_render_as_documented() {
    // Native: JSON payloads as JSON, UTF-8 text as a string, anything else as {"$binary": base64};
    // the key the same way.
    let native = read_golden("native_binary");
    assert_eq!(native["key"], serde_json::json!({"$binary": "3q2+7w=="}));
    assert_eq!(native["oldData"], Value::from("plain text, not JSON"));
    assert_eq!(native["data"], serde_json::json!({"$binary": "AP8QgA=="}));
    let insert = read_golden("native_insert");
    assert_eq!(insert["key"], Value::from("user-1"));
    assert_eq!(insert["data"]["email"], "alice@example.com", "JSON payloads are embedded as JSON");
    // Debezium: before/after the same way.
    let debezium = read_golden("debezium_binary");
    assert_eq!(debezium["before"], Value::from("plain text, not JSON"));
    assert_eq!(debezium["after"], serde_json::json!({"$binary": "AP8QgA=="}));
    // CDCEvent and UnifiedEvent keys are strings: UTF-8 as is, else "base64:<...>".
    let cdc = read_golden("cdcevent_binary");
    assert_eq!(cdc["documentId"], "base64:3q2+7w==");
    assert!(cdc.get("changedFields").is_none(), "no changed fields between non-objects");
    let unified = read_golden("unified_binary");
    assert_eq!(unified["key"], "base64:3q2+7w==");
    assert_eq!(unified["after"], serde_json::json!({"$binary": "AP8QgA=="}));
    // Keys are rendered like payloads in the native envelope: a key whose bytes happen to be JSON
    // is embedded as JSON (b"42" is the number 42), so the rendering is not injective (b"\"k\""
    // and b"k" both give "k"); CDCEvent / UnifiedEvent keys are always strings.
    let json_key = change(1002, Operation::Insert, "t", b"42", None, Some(b"{}"));
    let quoted_key = change(1002, Operation::Insert, "t", br#""k""#, None, Some(b"{}"));
    let plain_key = change(1002, Operation::Insert, "t", b"k", None, Some(b"{}"));
    assert_eq!(NativeEvent::from_event(&json_key).key, Some(Value::from(42)));
    assert_eq!(NativeEvent::from_event(&quoted_key).key, NativeEvent::from_event(&plain_key).key);
    let Event::Change(c) = &json_key else { unreachable!() };
    assert_eq!(CdcEventEnvelope::from_change(c).document_id, "42");
    assert_eq!(UnifiedEvent::from_change(c).key, "42");
    // The base64 decodes back to the original bytes.
    assert_eq!(BASE64.decode("3q2+7w==").unwrap(), BINARY_KEY);
    assert_eq!(BASE64.decode("AP8QgA==").unwrap(), BINARY_PAYLOAD);
}

/// The examples in `docs/ENVELOPES.md` are the golden files, verbatim.
#[test]
fn the_documentation_shows_the_golden_files() {
    if updating() {
        return;
    }
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/ENVELOPES.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    for name in [
        "native_insert",
        "native_commit",
        "native_schema",
        "native_binary",
        "debezium_update",
        "debezium_begin",
        "debezium_end",
        "cdcevent_update",
        "cdcevent_binary",
        "unified_insert",
    ] {
        let golden = std::fs::read_to_string(golden_path(name)).unwrap();
        let block = format!("```json\n{golden}```");
        assert!(doc.contains(&block), "docs/ENVELOPES.md does not show {name}.json as it is now");
    }
}
