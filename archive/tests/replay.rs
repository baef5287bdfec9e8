//! Hot + cold replay: a subscription from an LSN the local WAL no longer holds reads the archive
//! and continues into the WAL as one gap-free, duplicate-free ordered stream with the same events
//! as a pure hot replay of the same log; slots whose WAL was trimmed after archiving keep working
//! from the archive instead of being invalidated.

use std::sync::Arc;
use std::time::Duration;

use walden_archive::{Archiver, LakeConfig};
use walden_cdc::{Cdc, CdcError, ColdSource, Event, Filter, SubscriptionOptions};
use walden_engine::{Column, Config, Database, Lsn, SlotOptions, StartPosition};

mod common;
use common::{Fixture, begin_with_metadata, collect, fixture, small_db_config};

/// Transactions of every shape: JSON and binary images, empty images, updates and deletes,
/// schema changes, metadata, empty transactions and a transaction larger than a segment.
fn workload(db: &Database, start: u32, n: u32) -> Lsn {
    let mut last = 0;
    for i in start..start + n {
        if i % 7 == 3 {
            // An empty transaction: BEGIN + COMMIT only, no events in any stream.
            last = db.begin().commit().unwrap();
            continue;
        }
        let mut t = begin_with_metadata(db, i);
        let key = i.to_be_bytes();
        let json = format!("{{\"n\":{i},\"secret\":\"s{i}\",\"pad\":\"{}\"}}", "x".repeat(i as usize % 50));
        t.insert("users", &key, json.as_bytes()).unwrap();
        if i % 3 == 0 {
            t.update("blobs", &key, &[0xff, 0x00, i as u8], &[]).unwrap();
        }
        if i % 5 == 0 {
            t.delete("users", &key, json.as_bytes()).unwrap();
        }
        if i % 40 == 9 {
            t.create_table(&format!("t{i}"), 1, &[Column::new("id", "int", false)]).unwrap();
            t.add_column(&format!("t{i}"), 2, Column::new("name", "text", true)).unwrap();
        }
        if i % 97 == 50 {
            for j in 0..120u32 {
                t.insert("bulk", &j.to_be_bytes(), format!("{{\"j\":{j}}}").as_bytes()).unwrap();
            }
        }
        last = t.commit().unwrap();
    }
    db.flush().unwrap();
    last
}

/// The subscriptions compared hot vs hot + cold, all ending at `end`.
fn option_sets(end: Lsn, boundary: Lsn) -> Vec<(&'static str, SubscriptionOptions)> {
    let bounded = |from: Lsn| SubscriptionOptions { from_lsn: from, end_lsn: Some(end), ..Default::default() };
    vec![
        ("everything", bounded(0)),
        ("with BEGIN/COMMIT", bounded(1).with_transaction_control(true)),
        ("from inside a transaction", bounded(6).with_transaction_control(true)),
        ("tables users + t9", bounded(1).with_filter(Filter::all().tables(["users", "t9"]))),
        ("ops delete", bounded(1).with_filter(Filter::all().operations([walden_cdc::Operation::Delete]))),
        (
            "column mask",
            bounded(1)
                .with_filter(Filter::all().tables(["users"]).columns(walden_cdc::ColumnMask::exclude(["secret"]))),
        ),
        ("no schema changes", SubscriptionOptions { include_schema_changes: false, ..bounded(1) }),
        ("from the archive/WAL boundary", bounded(boundary).with_transaction_control(true)),
        ("from just before the boundary", bounded(boundary.saturating_sub(3).max(1))),
    ]
}

/// Also with each batch split into parts written on parallel threads (several files per day
/// and batch, LSN ranges side by side).
#[test]
fn hot_and_cold_replay_equals_a_pure_hot_replay() {
    for write_threads in [1, 3] {
        hot_and_cold_replay_equals_a_pure_hot_replay_with(write_threads);
    }
}

fn hot_and_cold_replay_equals_a_pure_hot_replay_with(write_threads: usize) {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    let end = workload(&db, 0, 400);
    let lake_config = || LakeConfig { write_threads, min_part_bytes: 1, ..LakeConfig::local_dir(&lake_dir).unwrap() };
    let archiver = Archiver::open(db.clone(), lake_config()).unwrap();
    let report = archiver.archive_sealed().unwrap();
    let files: usize = report.batches.iter().map(|b| b.data_files.len()).sum();
    assert!(write_threads == 1 || files > report.batches.len(), "parts made several files: {report:?}");
    let archived = report.last_archived_lsn.unwrap();
    assert!(archived > end / 2, "most of the log is in sealed segments: {archived} of {end}");

    // The pure hot replays, taken while the WAL still has everything.
    let hot = Cdc::new(db.clone());
    let options = option_sets(end, archived + 1);
    let expected: Vec<Vec<Event>> = options.iter().map(|(_, o)| collect(&hot, o.clone())).collect();
    assert!(expected.iter().all(|e| !e.is_empty()));

    // Trim the WAL: the archive now holds what the WAL does not.
    let checkpoint = db.checkpoint().unwrap();
    assert!(!checkpoint.removed_segments.is_empty());
    let oldest = db.wal().oldest_lsn();
    assert!(oldest > 1 && oldest <= archived + 1, "oldest {oldest}, archived {archived}");
    assert!(matches!(
        hot.subscribe(SubscriptionOptions::from_lsn(1)),
        Err(CdcError::LsnNotFound { requested: 1, oldest_available }) if oldest_available == oldest
    ));

    let tiered = archiver.cdc();
    for ((name, o), want) in options.iter().zip(&expected) {
        let got = collect(&tiered, o.clone());
        assert_eq!(got.len(), want.len(), "{name} ({write_threads} threads): event count");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "{name} ({write_threads} threads): event at LSN {}", w.lsn());
        }
    }

    // The same through a fresh cold source on a reopened lake (nothing cached).
    drop(tiered);
    drop(archiver);
    let archiver = Archiver::open(db.clone(), lake_config()).unwrap();
    let got = collect(&archiver.cdc(), options[1].1.clone());
    assert_eq!(got, expected[1]);
}

#[test]
fn a_cold_stream_follows_the_archive_as_it_grows_and_then_tails_the_wal() {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    workload(&db, 0, 150);
    let archiver = Archiver::open(db.clone(), LakeConfig::local_dir(&lake_dir).unwrap()).unwrap();
    archiver.archive_sealed().unwrap();
    db.checkpoint().unwrap();
    assert!(db.wal().oldest_lsn() > 1);

    let mut stream = archiver.cdc().subscribe(SubscriptionOptions::from_lsn(1).with_transaction_control(true)).unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(stream.next_timeout(Duration::from_secs(5)).unwrap().unwrap());
    }
    // While the stream is still in the archive: more commits, archived and trimmed, so the WAL
    // segment where the stream would have switched over is gone.
    let end = workload(&db, 150, 300);
    archiver.archive_sealed().unwrap();
    db.checkpoint().unwrap();
    let end = end.max(workload(&db, 450, 5)); // and a few live ones, in the active segment
    while got.last().map(Event::lsn) != Some(end) {
        got.push(stream.next_timeout(Duration::from_secs(5)).expect("caught up to the end").unwrap());
    }
    // Then it tails the WAL live.
    let mut t = db.begin();
    t.insert("users", b"live", b"{}").unwrap();
    let live = t.commit().unwrap();
    db.flush().unwrap();
    let mut tail = Vec::new();
    while tail.last().map(Event::lsn) != Some(live) {
        tail.push(stream.next_timeout(Duration::from_secs(5)).expect("live event").unwrap());
    }
    assert_eq!(tail.len(), 3, "BEGIN, insert, COMMIT");

    // Everything, in order, exactly once: the same as a pure hot replay of a copy that kept its WAL
    // is not available here, so check the structure: strictly increasing LSNs, whole transactions.
    let lsns: Vec<Lsn> = got.iter().map(Event::lsn).collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert_eq!(lsns[0], 1);
    let commits = got
        .iter()
        .filter(|e| matches!(e, Event::Transaction(t) if t.kind == walden_cdc::TransactionEventKind::Commit))
        .count();
    let committed_with_changes = (0..455u32).filter(|i| i % 7 != 3).count();
    assert_eq!(commits, committed_with_changes);
}

#[test]
fn a_slot_behind_the_trimmed_wal_reads_the_archive_and_is_not_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    let lake = LakeConfig::local_dir(dir.path().join("lake")).unwrap();
    // A byte cap far below what the slot will lag by.
    let config = || Config { max_slot_wal_keep_bytes: Some(16 << 10), ..small_db_config() };
    let db = Arc::new(Database::open(&db_dir, config()).unwrap());
    db.create_slot("laggard", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }).unwrap();
    let end = workload(&db, 0, 400);
    let expected = collect(&Cdc::new(db.clone()), SubscriptionOptions { end_lsn: Some(end), ..Default::default() });

    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    let archived = archiver.archive_sealed().unwrap().last_archived_lsn.unwrap();
    let checkpoint = db.checkpoint().unwrap();
    assert!(checkpoint.invalidated_slots.is_empty(), "{:?}", checkpoint.invalidated_slots);
    assert!(!checkpoint.removed_segments.is_empty());
    let status = db.status();
    assert_eq!(status.archived_lsn, Some(archived));
    let slot = status.slots.iter().find(|s| s.info.name == "laggard").unwrap();
    assert!(slot.info.state.is_valid());
    assert!(slot.pinned_bytes <= 16 << 10, "pins only unarchived WAL: {}", slot.pinned_bytes);
    assert!(db.wal().oldest_lsn() > slot.info.restart_lsn);

    // Restart: the slot is still valid (the archive covers its restart LSN), and it reads from
    // the archive, then the WAL.
    drop(archiver);
    Arc::try_unwrap(db).ok().unwrap().close().unwrap();
    let db = Arc::new(Database::open(&db_dir, config()).unwrap());
    assert!(db.open_report().slots_invalidated.is_empty());
    let archiver = Archiver::open(db.clone(), lake).unwrap();
    let cdc = archiver.cdc();
    let mut sub = cdc.subscribe_slot("laggard", SubscriptionOptions::default()).unwrap();
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(sub.next_timeout(Duration::from_secs(5)).expect("event").unwrap());
        if got.len() == expected.len() / 2 {
            sub.ack(got.last().unwrap().lsn()).unwrap();
        }
    }
    assert_eq!(got, expected);
    sub.ack(end).unwrap();
    assert!(sub.try_next().is_none());
    sub.close().unwrap();
    assert_eq!(db.slot("laggard").unwrap().confirmed_lsn, end);

    // Without an archive the same cap invalidates a laggard, with the reason recorded.
    let plain = tempfile::tempdir().unwrap();
    let db = Database::open(plain.path(), config()).unwrap();
    db.create_slot("laggard", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }).unwrap();
    workload(&db, 0, 400);
    let checkpoint = db.checkpoint().unwrap();
    assert_eq!(checkpoint.invalidated_slots.len(), 1);
}

#[test]
fn the_cold_source_reports_its_range_and_refuses_gaps() {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    let archiver = Archiver::open(db.clone(), LakeConfig::local_dir(&lake_dir).unwrap()).unwrap();
    let cold = archiver.cold_source();
    assert_eq!(cold.range().unwrap(), None);
    workload(&db, 0, 100);
    let archived = archiver.archive_sealed().unwrap().last_archived_lsn.unwrap();
    let range = cold.range().unwrap().unwrap();
    assert_eq!((range.first_lsn, range.last_lsn), (1, archived));
    // Asking past the end returns nothing and says where to go on.
    let chunk = cold.read_chunk(archived + 1, archived, 100).unwrap();
    assert!(chunk.records.is_empty());
    assert!(chunk.next_lsn > archived);
    // Chunks are whole transactions in LSN order.
    let chunk = cold.read_chunk(1, archived, 50).unwrap();
    assert!(!chunk.records.is_empty());
    assert!(chunk.records.windows(2).all(|w| w[0].lsn < w[1].lsn));
    assert!(matches!(chunk.records.last().unwrap().record, walden_engine::EngineRecord::Commit(_)));
    assert_eq!(chunk.next_lsn, chunk.records.last().unwrap().lsn + 1);
}
