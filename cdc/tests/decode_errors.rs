//! `DECODE_ERROR` and its policies (fail the event — the default —, skip, dead-letter, stop) on
//! every path that can fail to decode: a log record that is not an engine record, a column mask
//! over a payload that is not a JSON object, and a typed payload decoder; through the blocking,
//! async, typed and callback consumers. Each policy must deliver exactly the other events, in
//! order, and a dead-lettered event must be persisted with enough to inspect and retry it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use parking_lot::Mutex;
use walden_cdc::codec::JsonCodec;
use walden_cdc::dlq::DeadLetterQueue;
use walden_cdc::{
    Cdc, CdcError, CdcErrorCode, ChangeEvent, ChangeHandler, ColumnMask, DecodeErrorPolicy, Event, Filter,
    SubscriptionOptions,
};
use walden_engine::{Config, Database, SyncMode};

mod common;
use common::{commit_insert, memory_db};

/// One delivered item, comparable across consumers: a change's LSN, or an error's code and LSN.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Change(u64),
    Error(CdcErrorCode, Option<u64>),
}

fn item(result: walden_cdc::Result<Event>) -> Item {
    match result {
        Ok(e) => Item::Change(e.as_change().expect("only row changes were written").lsn),
        Err(e) => Item::Error(e.code(), e.lsn()),
    }
}

fn open_db() -> Arc<Database> {
    memory_db(Config::with_sync_mode(SyncMode::None))
}

/// Inserts `key` into `t` in a transaction of its own; the change's LSN.
fn insert(db: &Database, key: &[u8], payload: &[u8]) -> u64 {
    commit_insert(db, "t", key, payload).txn_id + 1
}

fn options(policy: &DecodeErrorPolicy, end_lsn: u64) -> SubscriptionOptions {
    SubscriptionOptions {
        end_lsn: Some(end_lsn),
        decode_error_policy: policy.clone(),
        buffer_capacity: 2,
        ..SubscriptionOptions::from_lsn(0)
    }
}

/// Blocking and async deliver the same items; returns them.
fn deliver(cdc: &Cdc, options: SubscriptionOptions) -> Vec<Item> {
    let blocking: Vec<Item> = cdc.subscribe(options.clone()).unwrap().map(item).collect();
    let mut sub = cdc.subscribe_async(options).unwrap();
    let asynced: Vec<Item> = futures::executor::block_on(async {
        let mut out = Vec::new();
        while let Some(e) = sub.next().await {
            out.push(item(e));
        }
        out
    });
    assert_eq!(asynced, blocking, "async and blocking disagree");
    blocking
}

#[test]
fn a_record_that_is_not_an_engine_record_follows_every_policy() {
    let db = open_db();
    let a = insert(&db, b"a", br#"{"n":1}"#);
    // Something else wrote to the log: a record kind the engine never writes, and an INSERT
    // whose payload does not decode.
    let foreign = db.wal().append(200, b"\xde\xad\xbe\xef").unwrap();
    let garbled = db.wal().append(2, b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
    let b = insert(&db, b"b", br#"{"n":2}"#);
    let end = db.wal().next_lsn() - 1;
    let cdc = Cdc::new(db.clone());
    let decode_error = |lsn| Item::Error(CdcErrorCode::DecodeError, Some(lsn));

    // Default: each bad record fails in place, the stream goes on.
    assert_eq!(
        deliver(&cdc, options(&DecodeErrorPolicy::default(), end)),
        [Item::Change(a), decode_error(foreign), decode_error(garbled), Item::Change(b)]
    );
    assert_eq!(deliver(&cdc, options(&DecodeErrorPolicy::Skip, end)), [Item::Change(a), Item::Change(b)]);
    // Stop: the first error ends the stream; nothing after it is delivered.
    assert_eq!(deliver(&cdc, options(&DecodeErrorPolicy::Stop, end)), [Item::Change(a), decode_error(foreign)]);
    let mut stopped = cdc.subscribe(options(&DecodeErrorPolicy::Stop, end)).unwrap();
    assert_eq!(stopped.by_ref().take(2).count(), 2);
    assert!(stopped.is_ended() && stopped.try_next().is_none(), "a stopped stream stays stopped");

    // Dead letter: the raw records are persisted, the stream goes on.
    let dir = tempfile::tempdir().unwrap();
    let dlq = DeadLetterQueue::open(dir.path()).unwrap();
    let policy = DecodeErrorPolicy::DeadLetter(dlq.clone());
    // Twice through blocking and async: entries are keyed by LSN, so re-delivery replaces them.
    assert_eq!(deliver(&cdc, options(&policy, end)), [Item::Change(a), Item::Change(b)]);
    let entries: Vec<_> = dlq.list().unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(entries.iter().map(|e| e.lsn).collect::<Vec<_>>(), [Some(foreign), Some(garbled)]);
    for (entry, kind, payload) in [
        (&entries[0], 200, &b"\xde\xad\xbe\xef"[..]),
        (&entries[1], 2, b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
    ] {
        assert_eq!(entry.id, entry.lsn.unwrap().to_string());
        assert!(entry.error.contains("undecodable engine record"), "{}", entry.error);
        assert_eq!(entry.event["kind"], kind);
        assert_eq!(entry.event["lsn"], entry.lsn.unwrap());
        assert_eq!(BASE64.decode(entry.event["payloadBase64"].as_str().unwrap()).unwrap(), payload);
    }
}

#[test]
fn a_column_mask_over_a_payload_that_is_not_a_json_object_follows_every_policy() {
    let db = open_db();
    let a = insert(&db, b"a", br#"{"id":1,"ssn":"111"}"#);
    let text = insert(&db, b"b", b"ssn=222");
    let array = insert(&db, b"c", br#"[{"ssn":"333"}]"#);
    let d = insert(&db, b"d", br#"{"id":4,"ssn":"444"}"#);
    let end = db.wal().next_lsn() - 1;
    let cdc = Cdc::new(db.clone());
    let masked = |policy: &DecodeErrorPolicy| SubscriptionOptions {
        filter: Filter::all().columns(ColumnMask::exclude(["ssn"])),
        ..options(policy, end)
    };
    let decode_error = |lsn| Item::Error(CdcErrorCode::DecodeError, Some(lsn));
    assert_eq!(
        deliver(&cdc, masked(&DecodeErrorPolicy::FailEvent)),
        [Item::Change(a), decode_error(text), decode_error(array), Item::Change(d)]
    );
    assert_eq!(deliver(&cdc, masked(&DecodeErrorPolicy::Skip)), [Item::Change(a), Item::Change(d)]);
    assert_eq!(deliver(&cdc, masked(&DecodeErrorPolicy::Stop)), [Item::Change(a), decode_error(text)]);
    let dir = tempfile::tempdir().unwrap();
    let dlq = DeadLetterQueue::open(dir.path()).unwrap();
    assert_eq!(deliver(&cdc, masked(&DecodeErrorPolicy::DeadLetter(dlq.clone()))), [Item::Change(a), Item::Change(d)]);
    let lsns: Vec<_> = dlq.list().unwrap().into_iter().map(|e| e.unwrap().lsn).collect();
    assert_eq!(lsns, [Some(text), Some(array)]);
    // What is delivered is masked.
    for event in cdc.subscribe(masked(&DecodeErrorPolicy::Skip)).unwrap() {
        let data = event.unwrap().into_change().unwrap().data.unwrap();
        assert!(!String::from_utf8_lossy(&data).contains("ssn"), "{data:?}");
    }
}

/// A typed change delivered as (LSN, decoded `n`), or an error's code and LSN.
type TypedItem = Result<(u64, i64), (CdcErrorCode, Option<u64>)>;

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Row {
    n: i64,
}

#[test]
fn typed_decoding_failures_follow_every_policy_and_dead_letter_the_whole_event() {
    let db = open_db();
    let a = insert(&db, b"a", br#"{"n":1}"#);
    let bad = insert(&db, b"k-bad", br#"{"n":"two"}"#);
    let c = insert(&db, b"c", br#"{"n":3}"#);
    let end = db.wal().next_lsn() - 1;
    let cdc = Cdc::new(db.clone());
    let typed = |policy: &DecodeErrorPolicy| -> Vec<TypedItem> {
        cdc.subscribe_typed(options(policy, end), JsonCodec::<Row>::new())
            .unwrap()
            .map(|r| match r {
                Ok(e) => {
                    let c = e.into_change().unwrap();
                    Ok((c.lsn, c.data.unwrap().n))
                }
                Err(e) => Err((e.code(), e.lsn())),
            })
            .collect()
    };
    let error = Err((CdcErrorCode::DecodeError, Some(bad)));
    assert_eq!(typed(&DecodeErrorPolicy::FailEvent), [Ok((a, 1)), error, Ok((c, 3))]);
    assert_eq!(typed(&DecodeErrorPolicy::Skip), [Ok((a, 1)), Ok((c, 3))]);
    assert_eq!(typed(&DecodeErrorPolicy::Stop), [Ok((a, 1)), error]);

    let dir = tempfile::tempdir().unwrap();
    let dlq = DeadLetterQueue::open(dir.path()).unwrap();
    assert_eq!(typed(&DecodeErrorPolicy::DeadLetter(dlq.clone())), [Ok((a, 1)), Ok((c, 3))]);
    let entry = dlq.get(&bad.to_string()).unwrap();
    assert_eq!((entry.lsn, entry.attempts), (Some(bad), 1));
    assert!(entry.error.contains("invalid JSON payload"), "{}", entry.error);
    // The entry holds the event itself (native envelope), not only where it was.
    assert_eq!(entry.event["type"], "insert");
    assert_eq!(entry.event["table"], "t");
    assert_eq!(entry.event["key"], "k-bad");
    assert_eq!(entry.event["lsn"], bad);
    assert_eq!(entry.event["data"], serde_json::json!({"n": "two"}));

    // Retry from the queue: a handler that still fails keeps the entry, one that copes removes it.
    let strict = |e: &walden_cdc::dlq::DeadLetter| {
        serde_json::from_value::<Row>(e.event["data"].clone()).map(drop).map_err(|e| e.to_string())
    };
    let report = dlq.retry_all(strict).unwrap();
    assert_eq!((report.succeeded.len(), report.failed.len()), (0, 1));
    assert_eq!(dlq.get(&bad.to_string()).unwrap().attempts, 2);
    let lenient =
        |e: &walden_cdc::dlq::DeadLetter| if e.event["data"]["n"] == "two" { Ok(()) } else { Err("?".into()) };
    let report = dlq.retry_all(lenient).unwrap();
    assert_eq!(report.succeeded, [bad.to_string()]);
    assert!(dlq.list().unwrap().is_empty());
}

#[derive(Default)]
struct Recorder {
    log: Arc<Mutex<Vec<Item>>>,
    ended: Arc<Mutex<bool>>,
}

impl ChangeHandler for Recorder {
    fn on_change(&mut self, event: &ChangeEvent) -> Result<(), String> {
        self.log.lock().push(Item::Change(event.lsn));
        Ok(())
    }
    fn on_error(&mut self, error: &CdcError) {
        self.log.lock().push(Item::Error(error.code(), error.lsn()));
    }
    fn on_end(&mut self) {
        *self.ended.lock() = true;
    }
}

#[test]
fn the_callback_stream_reports_decode_errors_and_goes_on() {
    let db = open_db();
    let a = insert(&db, b"a", br#"{"id":1}"#);
    let bad = insert(&db, b"b", b"not json");
    let c = insert(&db, b"c", br#"{"id":3}"#);
    let end = db.wal().next_lsn() - 1;
    let cdc = Cdc::new(db.clone());
    for (policy, expected) in [
        (
            DecodeErrorPolicy::FailEvent,
            vec![Item::Change(a), Item::Error(CdcErrorCode::DecodeError, Some(bad)), Item::Change(c)],
        ),
        (DecodeErrorPolicy::Stop, vec![Item::Change(a), Item::Error(CdcErrorCode::DecodeError, Some(bad))]),
        (DecodeErrorPolicy::Skip, vec![Item::Change(a), Item::Change(c)]),
    ] {
        let recorder = Recorder::default();
        let (log, ended) = (recorder.log.clone(), recorder.ended.clone());
        let options =
            SubscriptionOptions { filter: Filter::all().columns(ColumnMask::include(["id"])), ..options(&policy, end) };
        let stream = cdc.stream_callbacks(options, recorder).unwrap();
        // The stream ends by itself at `end_lsn` (or at the error, under Stop).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !*ended.lock() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(*ended.lock(), "{policy:?}: the stream did not end");
        assert!(!stream.status().active);
        assert_eq!(*log.lock(), expected, "{policy:?}");
        stream.stop();
    }
}

/// Regression (found by the `cdc_stream` fuzz target): a record outside any transaction after
/// the start made the stream seek back to the transaction it names. That re-delivered committed
/// transactions, and with the COMMIT before it pointing back further, the stream went back and
/// forth forever, delivering the same change again and again. Only the first record read may be
/// in the middle of a transaction; anywhere else it is damage that ends the stream.
#[test]
fn a_stray_record_outside_any_transaction_ends_the_stream_without_redelivering() {
    use walden_engine::{ChangeOp, EngineRecord, RowChange};
    let db = open_db();
    let a = insert(&db, b"a", br#"{"n":1}"#); // BEGIN 1, INSERT 2, COMMIT 3
    let stray = EngineRecord::Change(RowChange {
        seq: 1, // names transaction 3: the COMMIT before it
        op: ChangeOp::Insert,
        table: "t".into(),
        key: bytes::Bytes::from_static(b"stray"),
        before: None,
        after: Some(bytes::Bytes::from_static(b"{}")),
    });
    let stray_lsn = db.wal().append(stray.kind(), &stray.encode()).unwrap();
    insert(&db, b"b", br#"{"n":2}"#);
    let end = db.wal().next_lsn() - 1;
    let cdc = Cdc::new(db.clone());
    for policy in [DecodeErrorPolicy::FailEvent, DecodeErrorPolicy::Skip] {
        let mut stream = cdc.subscribe(options(&policy, end)).unwrap();
        // Bounded, so that a regression fails instead of hanging.
        let items: Vec<_> = stream.by_ref().take(10).collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().as_change().unwrap().lsn, a);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.code(), CdcErrorCode::SubscriptionFailed);
        assert!(err.to_string().contains(&format!("LSN {stray_lsn}")), "{err}");
        assert!(stream.is_ended());
    }
    // Starting at the stray record itself, it is the first record read: the stream looks for its
    // transaction's BEGIN, finds a COMMIT there, and stops the same way.
    let mut stream =
        cdc.subscribe(SubscriptionOptions { from_lsn: stray_lsn, ..options(&DecodeErrorPolicy::Skip, end) }).unwrap();
    let items: Vec<_> = stream.by_ref().take(10).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap_err().code(), CdcErrorCode::SubscriptionFailed);
}
