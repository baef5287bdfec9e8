//! Subscriptions: ordering, committed-only delivery, filters, live tail, async = blocking,
//! decode-error policies, transaction control, schema events, batches, callbacks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use walden_cdc::dlq::DeadLetterQueue;
use walden_cdc::{
    BatchOptions, Cdc, CdcErrorCode, ChangeHandler, ColumnMask, DecodeErrorPolicy, Event, Filter, Operation,
    SubscriptionOptions, TransactionEventKind,
};
use walden_engine::{Column, Database};
use walden_wal::SyncMode;

mod common;
use common::{drain, drain_results, small_segments, temp_db};

/// Commits `n` transactions alternating over three tables; returns the (table, key) of every change.
fn workload(db: &Database, n: usize) -> Vec<(String, String)> {
    let mut changes = Vec::new();
    for i in 0..n {
        let mut txn = db.begin();
        let table = ["users", "orders", "payments"][i % 3];
        let key = format!("k{i}");
        txn.insert(table, key.as_bytes(), format!(r#"{{"id":{i},"secret":"s{i}","v":1}}"#).as_bytes()).unwrap();
        changes.push((table.to_string(), key.clone()));
        if i % 2 == 0 {
            txn.update(
                table,
                key.as_bytes(),
                br#"{"v":1}"#,
                format!(r#"{{"id":{i},"secret":"s{i}","v":2}}"#).as_bytes(),
            )
            .unwrap();
            changes.push((table.to_string(), key.clone()));
        }
        if i % 5 == 0 {
            txn.delete("users", b"gone", br#"{"v":0}"#).unwrap();
            changes.push(("users".to_string(), "gone".to_string()));
        }
        txn.commit().unwrap();
    }
    changes
}

#[test]
fn total_order_across_tables_and_only_committed() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    let expected = workload(&db, 200);
    // Rolled-back and dropped transactions write nothing.
    let mut t = db.begin();
    t.insert("users", b"never", b"{}").unwrap();
    t.rollback();
    {
        let mut t = db.begin();
        t.insert("users", b"never2", b"{}").unwrap();
    }
    let cdc = Cdc::new(db.clone());
    let events = drain(&mut cdc.subscribe(SubscriptionOptions::from_lsn(0)).unwrap());
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let c = e.as_change().unwrap();
            (c.table.clone(), String::from_utf8(c.key.to_vec()).unwrap())
        })
        .collect();
    assert_eq!(got, expected);
    let lsns: Vec<u64> = events.iter().map(Event::lsn).collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "strictly increasing LSNs");
    // Every event of a transaction carries the same context; commit LSNs increase.
    let mut last_commit = 0;
    for e in &events {
        let txn = e.txn();
        assert!(txn.commit_lsn >= last_commit);
        assert!(txn.txn_id < e.lsn() && e.lsn() < txn.commit_lsn);
        last_commit = txn.commit_lsn;
    }
}

#[test]
fn every_filter() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    workload(&db, 60);
    let cdc = Cdc::new(db.clone());
    let run = |filter: Filter| drain(&mut cdc.subscribe(SubscriptionOptions::from_lsn(0).with_filter(filter)).unwrap());

    let users = run(Filter::all().tables(["users"]));
    assert!(!users.is_empty() && users.iter().all(|e| e.as_change().unwrap().table == "users"));

    let deletes = run(Filter::all().operations([Operation::Delete]));
    assert_eq!(deletes.len(), 12);
    assert!(deletes.iter().all(|e| e.as_change().unwrap().op == Operation::Delete));

    let first_txn = run(Filter::all()).first().unwrap().txn().txn_id;
    let only = run(Filter::all().txn_ids([first_txn]));
    assert!(!only.is_empty() && only.iter().all(|e| e.txn().txn_id == first_txn));

    let pred = run(Filter::all().predicate(|c| c.key.starts_with(b"k1")));
    assert!(!pred.is_empty() && pred.iter().all(|e| e.as_change().unwrap().key.starts_with(b"k1")));

    let masked = run(Filter::all().tables(["orders"]).columns(ColumnMask::exclude(["secret"])));
    for e in &masked {
        let c = e.as_change().unwrap();
        let data = c.data.as_ref().unwrap();
        assert!(!String::from_utf8_lossy(data).contains("secret"), "{data:?}");
    }
    let projected = run(Filter::all().tables(["orders"]).columns(ColumnMask::include(["id"])));
    for e in &projected {
        let v: serde_json::Value = serde_json::from_slice(e.as_change().unwrap().data.as_ref().unwrap()).unwrap();
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["id"]);
    }
}

#[test]
fn transaction_control_schema_events_and_mid_transaction_start() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    let mut t = db.begin();
    t.set_namespace("tenant-a").set_actor("User/alice").set_correlation_id("req-1");
    t.create_table("users", 1, &[Column::new("id", "INTEGER", false)]).unwrap();
    t.insert("users", b"1", br#"{"id":1}"#).unwrap();
    t.insert("users", b"2", br#"{"id":2}"#).unwrap();
    let commit = t.commit().unwrap();
    let cdc = Cdc::new(db.clone());
    let events = drain(&mut cdc.subscribe(SubscriptionOptions::from_lsn(0).with_transaction_control(true)).unwrap());
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Transaction(t) => format!("{:?}", t.kind),
            Event::Schema(_) => "Schema".into(),
            Event::Change(c) => format!("{:?}", c.op),
        })
        .collect();
    assert_eq!(kinds, vec!["Begin", "Schema", "Insert", "Insert", "Commit"]);
    let Event::Transaction(c) = &events[4] else { panic!() };
    assert_eq!((c.kind, c.lsn, c.change_count), (TransactionEventKind::Commit, commit, 3));
    assert_eq!(events[2].txn().namespace.as_deref(), Some("tenant-a"));
    assert_eq!(events[2].txn().actor.as_deref(), Some("User/alice"));
    assert_eq!(events[2].txn().correlation_id.as_deref(), Some("req-1"));
    // Start at the second insert: the rest of the transaction, with its BEGIN metadata.
    let second_insert = events[3].lsn();
    let rest = drain(&mut cdc.subscribe(SubscriptionOptions::from_lsn(second_insert)).unwrap());
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].lsn(), second_insert);
    assert_eq!(rest[0].txn().namespace.as_deref(), Some("tenant-a"));
    // Schema events can be excluded.
    let opts = SubscriptionOptions { include_schema_changes: false, ..SubscriptionOptions::from_lsn(0) };
    assert_eq!(drain(&mut cdc.subscribe(opts).unwrap()).len(), 2);
}

#[test]
fn live_tail_wakes_on_commit() {
    let (_dir, db) = temp_db(small_segments(SyncMode::Group));
    let cdc = Cdc::new(db.clone());
    let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(db.wal().next_lsn())).unwrap();
    assert!(stream.try_next().is_none());
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..20u32 {
                std::thread::sleep(Duration::from_millis(5));
                let mut t = db.begin();
                t.insert("t", &i.to_le_bytes(), b"{}").unwrap();
                t.commit().unwrap();
            }
        })
    };
    let started = Instant::now();
    let mut got = 0;
    while got < 20 {
        let e = stream.next_timeout(Duration::from_secs(10)).expect("woken by a commit").unwrap();
        assert_eq!(e.as_change().unwrap().key.as_ref(), &(got as u32).to_le_bytes());
        got += 1;
    }
    writer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn async_and_blocking_agree() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    workload(&db, 150);
    let cdc = Cdc::new(db.clone());
    let opts = || SubscriptionOptions {
        buffer_capacity: 7,
        ..SubscriptionOptions::from_lsn(0).with_transaction_control(true)
    };
    let blocking = drain(&mut cdc.subscribe(opts()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let asynced = rt.block_on(async {
        use futures::StreamExt;
        let mut sub = cdc.subscribe_async(opts()).unwrap();
        let mut out = Vec::new();
        while out.len() < blocking.len() {
            let e =
                tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("no stall").unwrap().unwrap();
            assert!(sub.buffered_events() <= 7, "bounded buffer");
            out.push(e);
        }
        out
    });
    assert_eq!(asynced, blocking);
    // Also from a plain futures executor (runtime agnostic).
    let first = futures::executor::block_on(async {
        use futures::StreamExt;
        cdc.subscribe_async(opts()).unwrap().next().await.unwrap().unwrap()
    });
    assert_eq!(first, blocking[0]);
}

#[test]
fn decode_error_policies() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    for (i, payload) in [&br#"{"n":1}"#[..], b"not json", br#"{"n":3}"#].iter().enumerate() {
        let mut t = db.begin();
        t.insert("t", &[i as u8], payload).unwrap();
        t.commit().unwrap();
    }
    let cdc = Cdc::new(db.clone());
    let typed = |policy: DecodeErrorPolicy| {
        let opts = SubscriptionOptions { decode_error_policy: policy, ..SubscriptionOptions::from_lsn(0) };
        let mut s = cdc.subscribe_typed(opts, walden_cdc::codec::JsonCodec::<serde_json::Value>::new()).unwrap();
        let mut out = Vec::new();
        while let Some(item) = s.next_timeout(Duration::ZERO) {
            out.push(item.map(|e| e.as_change().unwrap().data.clone().unwrap()["n"].as_i64().unwrap()));
        }
        out
    };
    // Default: the bad event fails, the stream goes on.
    let fail = typed(DecodeErrorPolicy::FailEvent);
    assert_eq!(fail.len(), 3);
    assert_eq!(*fail[0].as_ref().unwrap(), 1);
    let err = fail[1].as_ref().unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::DecodeError);
    assert!(err.lsn().is_some());
    assert_eq!(*fail[2].as_ref().unwrap(), 3);
    // Skip.
    let skip: Vec<i64> = typed(DecodeErrorPolicy::Skip).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(skip, vec![1, 3]);
    // Stop: the error ends the stream.
    let stop = typed(DecodeErrorPolicy::Stop);
    assert_eq!(stop.len(), 2);
    assert!(stop[1].is_err());
    // Dead letter: the bad event is persisted and the stream goes on.
    let dlq_dir = tempfile::tempdir().unwrap();
    let dlq = DeadLetterQueue::open(dlq_dir.path()).unwrap();
    let dl: Vec<i64> = typed(DecodeErrorPolicy::DeadLetter(dlq.clone())).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(dl, vec![1, 3]);
    let entries = dlq.list().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].as_ref().unwrap().error.contains("JSON"));
    // A column mask on a non-JSON payload is a DECODE_ERROR, never an unmasked event.
    let opts = SubscriptionOptions::from_lsn(0).with_filter(Filter::all().columns(ColumnMask::exclude(["n"])));
    let masked: Vec<_> = drain_results(&mut cdc.subscribe(opts).unwrap());
    assert_eq!(masked.iter().filter(|r| r.is_err()).count(), 1);
}

#[test]
fn batches_carry_lsn_ranges_and_respect_limits() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    workload(&db, 50);
    let total = drain(&mut Cdc::new(db.clone()).subscribe(SubscriptionOptions::from_lsn(0)).unwrap()).len();
    let cdc = Cdc::new(db.clone());
    let mut batched = cdc
        .subscribe_batched(
            SubscriptionOptions::from_lsn(0),
            BatchOptions { max_batch_size: 16, max_batch_age: Duration::from_millis(50) },
        )
        .unwrap();
    let mut seen = 0;
    let mut last = 0;
    while let Some(batch) = batched.next_batch(Duration::from_millis(20)) {
        let batch = batch.unwrap();
        assert!(!batch.events.is_empty() && batch.events.len() <= 16);
        assert_eq!(batch.first_lsn, batch.events[0].lsn());
        assert_eq!(batch.last_lsn, batch.events.last().unwrap().lsn());
        assert!(batch.first_lsn > last);
        last = batch.last_lsn;
        seen += batch.events.len();
    }
    assert_eq!(seen, total);
}

#[test]
fn lsn_not_found_after_retention() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    workload(&db, 300);
    db.wal().seal_active_segment().unwrap();
    db.checkpoint().unwrap();
    let oldest = db.wal().oldest_lsn();
    assert!(oldest > 1, "retention removed something");
    let err = Cdc::new(db.clone()).subscribe(SubscriptionOptions::from_lsn(1)).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::LsnNotFound);
    match err {
        walden_cdc::CdcError::LsnNotFound { requested, oldest_available } => {
            assert_eq!((requested, oldest_available), (1, oldest));
        }
        other => panic!("{other}"),
    }
}

#[derive(Default)]
struct Recorder {
    changes: Arc<parking_lot::Mutex<Vec<u64>>>,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl ChangeHandler for Recorder {
    fn on_change(&mut self, event: &walden_cdc::ChangeEvent) -> Result<(), String> {
        self.changes.lock().push(event.lsn);
        Ok(())
    }
    fn on_end(&mut self) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn callback_stream_pause_resume_status_stop() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    workload(&db, 30);
    let cdc = Cdc::new(db.clone());
    let recorder = Recorder::default();
    let (changes, ended) = (recorder.changes.clone(), recorder.ended.clone());
    let stream = cdc.stream_callbacks(SubscriptionOptions::from_lsn(0), recorder).unwrap();
    let wait = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while changes.lock().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let first_batch = drain(&mut cdc.subscribe(SubscriptionOptions::from_lsn(0)).unwrap()).len();
    wait(first_batch);
    assert_eq!(changes.lock().len(), first_batch);
    stream.pause();
    std::thread::sleep(Duration::from_millis(300)); // let the worker reach the pause point
    let before = changes.lock().len();
    workload(&db, 5);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(changes.lock().len(), before, "paused: nothing delivered");
    assert!(stream.status().paused);
    stream.resume();
    wait(before + 1);
    assert!(changes.lock().len() > before);
    let status = stream.status();
    assert!(status.active && !status.paused);
    assert!(status.processed as usize >= before);
    assert!(status.current_lsn > 0 && status.last_event_time_us > 0);
    stream.stop();
    assert!(ended.load(std::sync::atomic::Ordering::SeqCst), "on_end called");
    let lsns = changes.lock().clone();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]));
    let _unique: BTreeSet<u64> = lsns.into_iter().collect();
}
