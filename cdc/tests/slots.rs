//! Slot-backed subscriptions: resume after the confirmed LSN, the slot's filter narrowed by the
//! subscription's, durable and monotonic acks (checked across power loss), one consumer per slot,
//! the slot error codes, and acks in the middle of a transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use walden_cdc::{Cdc, CdcError, CdcErrorCode, Event, Filter, Operation, SubscriptionOptions};
use walden_engine::walden_wal::Storage;
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{Column, Database, EngineError, SlotFilter, SlotOptions, SlotState, StartPosition, SyncMode};

mod common;
use common::{drain_slot, small_segments, temp_db};

fn oldest() -> SlotOptions {
    SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }
}

fn change_lsns(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.as_change().expect("only row changes").lsn).collect()
}

/// Commits `n` transactions of three inserts each over two tables; returns the change LSNs.
fn commit_inserts(db: &Database, n: usize, tag: &str) -> Vec<u64> {
    let mut lsns = Vec::new();
    for i in 0..n {
        let mut txn = db.begin();
        for c in 0..3 {
            let table = if c == 1 { "b" } else { "a" };
            txn.insert(table, format!("{tag}-{i}-{c}").as_bytes(), b"{}").unwrap();
        }
        let info = txn.commit_info().unwrap();
        lsns.extend(info.txn_id + 1..info.commit_lsn);
    }
    lsns
}

/// The engine error behind a `SUBSCRIPTION_FAILED`.
fn engine_source(err: &CdcError) -> &EngineError {
    let source = std::error::Error::source(err).expect("an engine error behind it");
    source.downcast_ref::<EngineError>().expect("an EngineError")
}

/// Simulates power loss under `doomed` (the dead process's objects): storage reverts to its
/// durable state, and whatever `doomed` tries to write while being dropped fails, as it would
/// for a process that no longer exists.
fn power_loss<T>(fs: &FaultStorage, doomed: T) {
    fs.power_loss();
    fs.crash_after_bytes(0);
    drop(doomed);
    fs.crash(); // clears the fault; nothing was written since the power loss
}

#[test]
fn resumes_after_the_confirmed_lsn_and_acks_survive_power_loss_without_regressing() {
    let fs = FaultStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(fs.clone());
    let open =
        || Arc::new(Database::open_with_storage("/db", small_segments(SyncMode::Group), storage.clone()).unwrap());
    let db = open();
    let cdc = Cdc::new(db.clone());
    let created = cdc.create_slot("consumer", oldest()).unwrap();
    assert_eq!((created.confirmed_lsn, created.restart_lsn), (0, 1));
    let lsns = commit_inserts(&db, 10, "x");
    assert_eq!(lsns.len(), 30);

    // `from_lsn` is ignored: the slot decides where to start.
    let mut sub = cdc.subscribe_slot("consumer", SubscriptionOptions::from_lsn(lsns[20])).unwrap();
    assert_eq!(sub.slot_name(), "consumer");
    assert_eq!(sub.slot_info().state, SlotState::Active);
    assert_eq!(change_lsns(&drain_slot(&mut sub)), lsns, "a new slot at Oldest delivers everything");
    let info = sub.ack(lsns[11]).unwrap();
    assert_eq!((info.confirmed_lsn, info.restart_lsn), (lsns[11], lsns[11] + 1));
    sub.close().unwrap();
    assert_eq!(db.slot("consumer").unwrap().state, SlotState::Inactive);

    let mut sub = cdc.subscribe_slot("consumer", SubscriptionOptions::default()).unwrap();
    assert_eq!(change_lsns(&drain_slot(&mut sub)), lsns[12..], "resumes right after the confirmed LSN");
    sub.ack(lsns[20]).unwrap();
    // Power loss right after the ack returned, without closing anything: the ack is durable.
    power_loss(&fs, (sub, cdc, db));

    let db = open();
    let cdc = Cdc::new(db.clone());
    assert_eq!(db.slot("consumer").unwrap().confirmed_lsn, lsns[20]);
    let mut sub = cdc.subscribe_slot("consumer", SubscriptionOptions::default()).unwrap();
    assert_eq!(change_lsns(&drain_slot(&mut sub)), lsns[21..]);
    // Acking an older LSN (a consumer re-confirming after a restart) never moves back.
    let info = sub.ack(lsns[5]).unwrap();
    assert_eq!(info.confirmed_lsn, lsns[20]);
    assert_eq!(sub.ack(lsns[20]).unwrap().confirmed_lsn, lsns[20]);
    // Acking past the end of the log is refused and changes nothing.
    let beyond = db.wal().next_lsn() + 10;
    let err = sub.ack(beyond).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SubscriptionFailed);
    assert!(matches!(engine_source(&err), EngineError::LsnBeyondDurable { requested, .. } if *requested == beyond));
    assert_eq!(sub.slot_info().confirmed_lsn, lsns[20]);
    // New commits are delivered live to the open subscription.
    let more = commit_inserts(&db, 2, "y");
    assert_eq!(change_lsns(&drain_slot(&mut sub)), more);
    power_loss(&fs, (sub, cdc, db));

    let db = open();
    assert_eq!(db.slot("consumer").unwrap().confirmed_lsn, lsns[20], "the lower ack did not regress it");
    let cdc = Cdc::new(db.clone());
    let mut sub = cdc.subscribe_slot("consumer", SubscriptionOptions::default()).unwrap();
    let mut expected = lsns[21..].to_vec();
    expected.extend(&more);
    assert_eq!(change_lsns(&drain_slot(&mut sub)), expected);
    let last = *more.last().unwrap();
    sub.ack(last).unwrap();
    sub.close().unwrap();
    drop(cdc);
    Arc::try_unwrap(db).unwrap().close().unwrap();
    let db = open();
    assert_eq!(db.slot("consumer").unwrap().confirmed_lsn, last);
    let cdc = Cdc::new(db.clone());
    let mut sub = cdc.subscribe_slot("consumer", SubscriptionOptions::default()).unwrap();
    assert!(drain_slot(&mut sub).is_empty(), "fully acked: nothing to redeliver");
}

/// What the workload of `filter_workload` wrote: (lsn, table, operation) per row change, and the
/// LSNs of schema changes.
struct Written {
    rows: Vec<(u64, String, Operation)>,
    schema: Vec<(u64, String)>,
}

fn filter_workload(db: &Database) -> Written {
    let mut written = Written { rows: Vec::new(), schema: Vec::new() };
    let mut txn = db.begin();
    txn.create_table("users", 1, &[Column::new("id", "INTEGER", false)]).unwrap();
    txn.create_table("orders", 1, &[Column::new("id", "INTEGER", false)]).unwrap();
    let info = txn.commit_info().unwrap();
    written.schema.push((info.txn_id + 1, "users".to_string()));
    written.schema.push((info.txn_id + 2, "orders".to_string()));
    for i in 0..12u32 {
        let mut txn = db.begin();
        let key = i.to_be_bytes();
        let mut ops = Vec::new();
        for table in ["users", "orders", "payments"] {
            txn.insert(table, &key, br#"{"v":1}"#).unwrap();
            ops.push((table, Operation::Insert));
            if i % 2 == 0 {
                txn.update(table, &key, br#"{"v":1}"#, br#"{"v":2}"#).unwrap();
                ops.push((table, Operation::Update));
            }
            if i % 3 == 0 {
                txn.delete(table, &key, br#"{"v":2}"#).unwrap();
                ops.push((table, Operation::Delete));
            }
        }
        if i == 5 {
            txn.add_column("payments", 2, Column::new("amount", "REAL", true)).unwrap();
        }
        let info = txn.commit_info().unwrap();
        for (offset, (table, op)) in ops.into_iter().enumerate() {
            written.rows.push((info.txn_id + 1 + offset as u64, table.to_string(), op));
        }
        if i == 5 {
            written.schema.push((info.commit_lsn - 1, "payments".to_string()));
        }
    }
    written
}

fn rows(events: &[Event]) -> Vec<(u64, String, Operation)> {
    events.iter().filter_map(Event::as_change).map(|c| (c.lsn, c.table.clone(), c.op)).collect()
}

fn schemas(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Schema(s) => Some((s.lsn, s.table.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_slot_filter_is_intersected_with_the_subscription_filter() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    let cdc = Cdc::new(db.clone());
    use walden_engine::Operation as SlotOp;
    let slot_filter = SlotFilter {
        tables: Some(BTreeSet::from(["users".to_string(), "orders".to_string()])),
        operations: Some(BTreeSet::from([SlotOp::Insert, SlotOp::Update])),
    };
    cdc.create_slot("rows_only", SlotOptions { filter: slot_filter, ..oldest() }).unwrap();
    let ddl_filter = SlotFilter { tables: None, operations: Some(BTreeSet::from([SlotOp::Schema, SlotOp::Delete])) };
    cdc.create_slot("ddl_and_deletes", SlotOptions { filter: ddl_filter, ..oldest() }).unwrap();
    cdc.create_slot("everything", oldest()).unwrap();
    let w = filter_workload(&db);

    let expect = |tables: &[&str], ops: &[Operation]| -> Vec<(u64, String, Operation)> {
        w.rows.iter().filter(|(_, t, op)| tables.contains(&t.as_str()) && ops.contains(op)).cloned().collect()
    };
    let all_ops = [Operation::Insert, Operation::Update, Operation::Delete];

    // The slot's own filter: users and orders, inserts and updates, no schema changes.
    let mut sub = cdc.subscribe_slot("rows_only", SubscriptionOptions::default()).unwrap();
    let events = drain_slot(&mut sub);
    assert_eq!(rows(&events), expect(&["users", "orders"], &[Operation::Insert, Operation::Update]));
    assert!(schemas(&events).is_empty(), "the slot does not select schema changes");
    sub.close().unwrap();

    // Narrowed by the subscription: tables {orders, payments} ∩ {users, orders} = {orders};
    // operations {update, delete} ∩ {insert, update} = {update}.
    let narrow = Filter::all().tables(["orders", "payments"]).operations([Operation::Update, Operation::Delete]);
    let mut sub = cdc.subscribe_slot("rows_only", SubscriptionOptions::default().with_filter(narrow)).unwrap();
    let events = drain_slot(&mut sub);
    assert_eq!(rows(&events), expect(&["orders"], &[Operation::Update]));
    assert!(!events.is_empty());
    sub.close().unwrap();

    // A slot selecting schema changes and deletes on every table.
    let mut sub = cdc.subscribe_slot("ddl_and_deletes", SubscriptionOptions::default()).unwrap();
    let events = drain_slot(&mut sub);
    assert_eq!(rows(&events), expect(&["users", "orders", "payments"], &[Operation::Delete]));
    assert_eq!(schemas(&events), w.schema);
    sub.close().unwrap();
    // ... narrowed to one table; and with schema changes switched off by the subscription.
    let opts = SubscriptionOptions::default().with_filter(Filter::all().tables(["payments"]));
    let mut sub = cdc.subscribe_slot("ddl_and_deletes", opts).unwrap();
    let events = drain_slot(&mut sub);
    assert_eq!(rows(&events), expect(&["payments"], &[Operation::Delete]));
    assert_eq!(schemas(&events), vec![w.schema[2].clone()]);
    sub.close().unwrap();
    let opts = SubscriptionOptions { include_schema_changes: false, ..SubscriptionOptions::default() };
    let mut sub = cdc.subscribe_slot("ddl_and_deletes", opts).unwrap();
    assert!(schemas(&drain_slot(&mut sub)).is_empty());
    sub.close().unwrap();

    // No slot filter: the subscription's filter alone.
    let opts = SubscriptionOptions::default().with_filter(Filter::all().operations([Operation::Delete]));
    let mut sub = cdc.subscribe_slot("everything", opts).unwrap();
    let events = drain_slot(&mut sub);
    assert_eq!(rows(&events), expect(&["users", "orders", "payments"], &[Operation::Delete]));
    assert_eq!(schemas(&events), w.schema, "schema changes pass an operation filter on rows");
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("everything", SubscriptionOptions::default()).unwrap();
    assert_eq!(rows(&drain_slot(&mut sub)), expect(&["users", "orders", "payments"], &all_ops));
}

#[test]
fn one_consumer_per_slot() {
    let (_dir, db) = temp_db(small_segments(SyncMode::Group));
    let cdc = Cdc::new(db.clone());
    cdc.create_slot("single", oldest()).unwrap();
    let lsns = commit_inserts(&db, 2, "k");
    let mut first = cdc.subscribe_slot("single", SubscriptionOptions::default()).unwrap();

    let err = cdc.subscribe_slot("single", SubscriptionOptions::default()).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SubscriptionFailed);
    assert_eq!(err.code().as_str(), "SUBSCRIPTION_FAILED");
    assert!(matches!(engine_source(&err), EngineError::SlotInUse { name } if name == "single"), "{err}");
    // Also from another handle on the same database.
    let err = Cdc::new(db.clone()).subscribe_slot("single", SubscriptionOptions::default()).unwrap_err();
    assert!(matches!(engine_source(&err), EngineError::SlotInUse { .. }));
    // An acquired slot cannot be dropped.
    let err = cdc.drop_slot("single").unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SubscriptionFailed);
    assert!(matches!(engine_source(&err), EngineError::SlotInUse { .. }));
    // The failed attempts did not disturb the holder.
    assert_eq!(change_lsns(&drain_slot(&mut first)), lsns);
    first.ack(lsns[2]).unwrap();

    // Closing releases it; so does dropping the subscription.
    first.close().unwrap();
    let mut second = cdc.subscribe_slot("single", SubscriptionOptions::default()).unwrap();
    assert_eq!(change_lsns(&drain_slot(&mut second)), lsns[3..]);
    drop(second);
    let third = cdc.subscribe_slot("single", SubscriptionOptions::default()).unwrap();
    drop(third);
    cdc.drop_slot("single").unwrap();
}

#[test]
fn slot_error_codes() {
    let (_dir, db) = temp_db(small_segments(SyncMode::None));
    let cdc = Cdc::new(db.clone());
    cdc.create_slot("orders_cdc", SlotOptions::default()).unwrap();

    let err = cdc.create_slot("orders_cdc", oldest()).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SlotExists);
    assert_eq!(err.code().as_str(), "SLOT_EXISTS");
    assert!(matches!(&err, CdcError::SlotExists(name) if name == "orders_cdc"));

    let err = cdc.subscribe_slot("missing", SubscriptionOptions::default()).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SlotNotFound);
    assert_eq!(err.code().as_str(), "SLOT_NOT_FOUND");
    assert!(matches!(&err, CdcError::SlotNotFound(name) if name == "missing"));
    assert_eq!(cdc.drop_slot("missing").unwrap_err().code(), CdcErrorCode::SlotNotFound);

    cdc.drop_slot("orders_cdc").unwrap();
    assert_eq!(cdc.drop_slot("orders_cdc").unwrap_err().code(), CdcErrorCode::SlotNotFound);
    let err = cdc.subscribe_slot("orders_cdc", SubscriptionOptions::default()).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SlotNotFound);
    // The name is free again.
    cdc.create_slot("orders_cdc", SlotOptions::default()).unwrap();

    // Other engine refusals are SUBSCRIPTION_FAILED, with the engine error as the source.
    let err = cdc.create_slot("Bad-Name", SlotOptions::default()).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SubscriptionFailed);
    assert!(matches!(engine_source(&err), EngineError::InvalidSlotName { .. }));
    let beyond = SlotOptions { start: StartPosition::Lsn(db.wal().next_lsn() + 5), ..SlotOptions::default() };
    let err = cdc.create_slot("too_far", beyond).unwrap_err();
    assert_eq!(err.code(), CdcErrorCode::SubscriptionFailed);
    assert!(matches!(engine_source(&err), EngineError::LsnBeyondDurable { .. }));
}

#[test]
fn an_ack_inside_a_transaction_resumes_with_the_rest_of_it() {
    let (_dir, db) = temp_db(small_segments(SyncMode::Group));
    let cdc = Cdc::new(db.clone());
    cdc.create_slot("mid", oldest()).unwrap();
    let mut txn = db.begin();
    txn.set_namespace("tenant-a").set_actor("User/alice").set_correlation_id("req-7");
    for k in 0..5u8 {
        txn.insert("t", &[k], b"{}").unwrap();
    }
    let big = txn.commit_info().unwrap(); // BEGIN, 5 changes, COMMIT
    let next = commit_inserts(&db, 1, "n");
    let begin = big.txn_id;
    let with_control = || SubscriptionOptions::default().with_transaction_control(true);
    let describe = |events: &[Event]| -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Transaction(t) => format!("{:?}@{}", t.kind, t.lsn),
                Event::Change(c) => format!("{}", c.lsn),
                Event::Schema(s) => format!("schema@{}", s.lsn),
            })
            .collect()
    };
    let next_txn = |from: usize| -> Vec<String> {
        let mut v = vec![format!("Begin@{}", next[0] - 1)];
        v.extend(next[from..].iter().map(u64::to_string));
        v.push(format!("Commit@{}", next[2] + 1));
        v
    };

    // Ack the second change: the stream resumes with changes 3..5, framed by the transaction's
    // BEGIN and COMMIT and carrying its metadata.
    let sub = cdc.subscribe_slot("mid", with_control()).unwrap();
    sub.ack(begin + 2).unwrap();
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("mid", with_control()).unwrap();
    let events = drain_slot(&mut sub);
    let mut expected = vec![format!("Begin@{begin}")];
    expected.extend((begin + 3..=begin + 5).map(|l| l.to_string()));
    expected.push(format!("Commit@{}", big.commit_lsn));
    expected.extend(next_txn(0));
    assert_eq!(describe(&events), expected);
    let Event::Transaction(b) = &events[0] else { unreachable!() };
    assert_eq!(b.change_count, 5, "the BEGIN describes the whole transaction");
    for e in &events[..5] {
        let txn = e.txn();
        assert_eq!((txn.txn_id, txn.commit_lsn), (begin, big.commit_lsn));
        assert_eq!(txn.namespace.as_deref(), Some("tenant-a"));
        assert_eq!(txn.actor.as_deref(), Some("User/alice"));
        assert_eq!(txn.correlation_id.as_deref(), Some("req-7"));
    }
    // Without transaction control: just the remaining changes.
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("mid", SubscriptionOptions::default()).unwrap();
    let mut expected: Vec<u64> = (begin + 3..=begin + 5).collect();
    expected.extend(&next);
    assert_eq!(change_lsns(&drain_slot(&mut sub)), expected);

    // Ack the last change: only the COMMIT of that transaction is left, and nothing of it is
    // delivered (no empty BEGIN/COMMIT pair).
    sub.ack(begin + 5).unwrap();
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("mid", with_control()).unwrap();
    assert_eq!(describe(&drain_slot(&mut sub)), next_txn(0));
    // Ack the COMMIT: the next transaction is delivered whole.
    sub.ack(big.commit_lsn).unwrap();
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("mid", with_control()).unwrap();
    assert_eq!(describe(&drain_slot(&mut sub)), next_txn(0));
    // Ack the next transaction's BEGIN: all of its changes, with its BEGIN.
    sub.ack(next[0] - 1).unwrap();
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("mid", with_control()).unwrap();
    assert_eq!(describe(&drain_slot(&mut sub)), next_txn(0));
    // And its first change.
    sub.ack(next[0]).unwrap();
    sub.close().unwrap();
    let mut sub = cdc.subscribe_slot("mid", with_control()).unwrap();
    assert_eq!(describe(&drain_slot(&mut sub)), next_txn(1));
}
