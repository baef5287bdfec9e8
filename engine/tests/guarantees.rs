//! The engine's ordering and atomicity guarantees: LSNs strictly increasing, every transaction
//! contiguous, commit order = LSN order, nothing written by rollback, size limits enforced,
//! all of it under concurrency and across restarts and power loss.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use common::{read_all, small_config, transactions};
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{
    Begin, ChangeOp, Column, Commit, CommitInfo, Config, Database, DecodeError, EngineError, EngineRecord, RowChange,
    SchemaChange, SchemaRecord, SyncMode, WalConfig,
};

fn row(seq: u32, op: ChangeOp, table: &str, key: &[u8], before: Option<&[u8]>, after: Option<&[u8]>) -> EngineRecord {
    EngineRecord::Change(RowChange {
        seq,
        op,
        table: table.to_string(),
        key: Bytes::copy_from_slice(key),
        before: before.map(Bytes::copy_from_slice),
        after: after.map(Bytes::copy_from_slice),
    })
}

#[test]
fn every_operation_round_trips_in_one_contiguous_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Always)).unwrap();

    let mut t = db.begin();
    t.set_correlation_id("req-42").set_actor("alice").set_namespace("tenant_a");
    t.create_table("users", 1, &[Column::new("id", "BIGINT", false), Column::new("name", "TEXT", true)]).unwrap();
    t.insert("users", b"1", b"alice").unwrap();
    t.update("users", b"1", b"alice", b"alice smith").unwrap();
    t.delete("users", b"1", b"alice smith").unwrap();
    t.add_column("users", 2, Column::new("email", "TEXT", true)).unwrap();
    t.alter_column("users", 3, "email", Column::new("mail", "VARCHAR(200)", false)).unwrap();
    t.drop_column("users", 4, "mail").unwrap();
    t.drop_table("users", 5).unwrap();
    assert_eq!(t.change_count(), 8);
    let first = t.commit_info().unwrap();
    assert_eq!(first, CommitInfo { txn_id: 1, commit_lsn: 10, change_count: 8 });

    let empty = db.begin().commit_info().unwrap();
    assert_eq!(empty, CommitInfo { txn_id: 11, commit_lsn: 12, change_count: 0 });
    let single = db.log_change(ChangeOp::Update, "t", b"k", None, Some(b"v")).unwrap();
    assert_eq!(single, 15);

    let entries = read_all(&db);
    assert_eq!(entries.len(), 15);
    let txns = transactions(&entries);
    assert_eq!(txns.len(), 3);
    assert_eq!(
        txns[0].begin,
        EngineRecord::Begin(Begin {
            change_count: 8,
            correlation_id: Some("req-42".into()),
            actor: Some("alice".into()),
            namespace: Some("tenant_a".into()),
        })
    );
    let schema = |seq, version, change| {
        EngineRecord::Schema(SchemaRecord { seq, table: "users".into(), schema_version: version, change })
    };
    let expected = vec![
        schema(
            1,
            1,
            SchemaChange::CreateTable {
                columns: vec![Column::new("id", "BIGINT", false), Column::new("name", "TEXT", true)],
            },
        ),
        row(2, ChangeOp::Insert, "users", b"1", None, Some(b"alice")),
        row(3, ChangeOp::Update, "users", b"1", Some(b"alice"), Some(b"alice smith")),
        row(4, ChangeOp::Delete, "users", b"1", Some(b"alice smith"), None),
        schema(5, 2, SchemaChange::AddColumn { column: Column::new("email", "TEXT", true) }),
        schema(
            6,
            3,
            SchemaChange::AlterColumn { name: "email".into(), column: Column::new("mail", "VARCHAR(200)", false) },
        ),
        schema(7, 4, SchemaChange::DropColumn { name: "mail".into() }),
        schema(8, 5, SchemaChange::DropTable),
    ];
    assert_eq!(txns[0].changes, expected);
    assert_eq!(txns[0].commit_lsn, 10);
    assert!(txns[1].changes.is_empty());
    assert_eq!(txns[2].changes, vec![row(1, ChangeOp::Update, "t", b"k", None, Some(b"v"))]);
    assert_eq!(entries[14].record, EngineRecord::Commit(Commit { change_count: 1 }));
    // A transaction's records share one timestamp; timestamps never go backwards.
    assert!(entries[..10].iter().all(|e| e.timestamp_us == entries[0].timestamp_us));
    assert!(entries.windows(2).all(|w| w[0].timestamp_us <= w[1].timestamp_us));

    // Reading from inside a transaction still names the transaction.
    let mid: Vec<_> = db.read_log(5).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(mid[0].lsn, 5);
    assert_eq!(mid[0].txn_id, 1);
    db.close().unwrap();
}

#[test]
fn rollback_and_drop_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::None)).unwrap();
    let mut t = db.begin();
    t.insert("t", b"a", b"1").unwrap();
    t.rollback();
    {
        let mut t = db.begin();
        t.insert("t", b"b", b"2").unwrap();
    }
    assert_eq!(db.wal().next_lsn(), 1);
    assert!(read_all(&db).is_empty());
    let mut t = db.begin();
    t.insert("t", b"c", b"3").unwrap();
    assert_eq!(t.commit().unwrap(), 3);
    let txns = transactions(&read_all(&db));
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].changes, vec![row(1, ChangeOp::Insert, "t", b"c", None, Some(b"3"))]);
}

#[test]
fn oversized_transactions_and_bad_input_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(SyncMode::None);
    config.max_transaction_bytes = 4096;
    config.wal.max_record_size_bytes = 2048;
    config.wal.max_batch_size_bytes = 1 << 20;
    let db = Database::open(dir.path(), config).unwrap();

    let mut t = db.begin();
    let value = vec![7u8; 500];
    let mut accepted = 0;
    let err = loop {
        match t.insert("t", &accepted.to_string().into_bytes(), &value) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the limit was never enforced");
    };
    assert!(matches!(err, EngineError::TransactionTooLarge { max_bytes: 4096, size_bytes } if size_bytes > 4096));
    assert!(accepted >= 5 && t.size_bytes() <= 4096, "accepted {accepted}, size {}", t.size_bytes());
    // Refused: later operations and the commit fail too, and nothing is written.
    assert!(matches!(t.insert("t", b"x", b"y"), Err(EngineError::TransactionTooLarge { .. })));
    assert!(matches!(t.commit(), Err(EngineError::TransactionTooLarge { .. })));
    assert_eq!(db.wal().next_lsn(), 1);

    // One change larger than the WAL's record limit.
    let mut t = db.begin();
    assert!(matches!(t.insert("t", b"k", &[0u8; 3000]), Err(EngineError::ChangeTooLarge { max_bytes: 2048, .. })));
    // Metadata counts against the limit too.
    let mut t = db.begin();
    t.set_actor("a".repeat(5000));
    t.insert("t", b"k", b"v").unwrap_err();

    // Bad input.
    let mut t = db.begin();
    assert!(matches!(t.insert("", b"k", b"v"), Err(EngineError::InvalidInput(_))));
    assert!(matches!(t.create_table("t", 1, &[Column::new("", "INT", true)]), Err(EngineError::InvalidInput(_))));
    assert!(matches!(
        db.log_change(ChangeOp::Insert, "t", b"k", Some(b"b"), Some(b"a")),
        Err(EngineError::InvalidInput(_))
    ));
    assert!(matches!(db.log_change(ChangeOp::Delete, "t", b"k", None, Some(b"a")), Err(EngineError::InvalidInput(_))));
    assert_eq!(db.wal().next_lsn(), 1);

    // A transaction right under the limit commits.
    let mut t = db.begin();
    for i in 0..accepted {
        t.insert("t", &i.to_string().into_bytes(), &value).unwrap();
    }
    let info = t.commit_info().unwrap();
    assert_eq!(info.change_count as usize, accepted);
}

#[test]
fn config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Config { max_transaction_bytes: 10, ..Config::default() };
    assert!(matches!(Database::open(dir.path(), bad), Err(EngineError::InvalidConfig(_))));
    let bad = Config { slot_idle_timeout_ms: Some(0), ..Config::default() };
    assert!(matches!(Database::open(dir.path(), bad), Err(EngineError::InvalidConfig(_))));
    let bad = Config { wal: WalConfig { target_segment_size_bytes: 10, ..WalConfig::default() }, ..Config::default() };
    assert!(matches!(Database::open(dir.path(), bad), Err(EngineError::Wal(_))));
}

/// 8 threads × 10,000 transactions (SyncMode::None; durability is tested separately): every
/// transaction is read back complete, contiguous, in commit order, each thread's in the order
/// it committed them.
#[test]
fn concurrency_stress_8_threads_x_10k_transactions() {
    const THREADS: usize = 8;
    const PER_THREAD: u32 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        wal: WalConfig { target_segment_size_bytes: 1 << 20, sync_mode: SyncMode::None, ..WalConfig::default() },
        ..Config::default()
    };
    let db = Database::open(dir.path(), config).unwrap();
    let started = std::time::Instant::now();
    let commits: Vec<Vec<CommitInfo>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = &db;
                s.spawn(move || {
                    let table = format!("t{t}");
                    (0..PER_THREAD)
                        .map(|i| {
                            let mut txn = db.begin();
                            txn.insert(&table, &i.to_be_bytes(), b"v").unwrap();
                            if i % 3 == 0 {
                                txn.update(&table, &i.to_be_bytes(), b"v", b"w").unwrap();
                            }
                            txn.commit_info().unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let commit_time = started.elapsed();
    db.flush().unwrap();
    let entries = read_all(&db);
    let txns = transactions(&entries);
    assert_eq!(txns.len(), THREADS * PER_THREAD as usize);
    assert_eq!(entries[0].lsn, 1);

    // Every acknowledged commit is in the log at the LSNs it was given, with its content.
    let by_commit: HashMap<u64, usize> = txns.iter().enumerate().map(|(i, t)| (t.commit_lsn, i)).collect();
    for (t, infos) in commits.iter().enumerate() {
        let table = format!("t{t}");
        for w in infos.windows(2) {
            assert!(w[0].commit_lsn < w[1].commit_lsn, "a thread's commits are ordered");
        }
        for (i, info) in infos.iter().enumerate() {
            let txn = &txns[by_commit[&info.commit_lsn]];
            assert_eq!(txn.txn_id, info.txn_id);
            assert_eq!(txn.changes.len(), if i % 3 == 0 { 2 } else { 1 });
            let EngineRecord::Change(c) = &txn.changes[0] else { panic!() };
            assert_eq!((c.table.as_str(), &c.key[..]), (table.as_str(), &(i as u32).to_be_bytes()[..]));
        }
    }
    eprintln!("{} transactions committed in {commit_time:?}", txns.len());
}

/// Group commit from several threads on the real disk: every acknowledged commit survives a
/// reopen, and concurrent committers share fsyncs.
#[test]
fn durable_group_commits_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    let commits: Vec<CommitInfo> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u8)
            .map(|t| {
                let db = &db;
                s.spawn(move || {
                    (0..40u8)
                        .map(|i| {
                            let mut txn = db.begin();
                            txn.insert("t", &[t, i], &[i; 64]).unwrap();
                            let info = txn.commit_info().unwrap();
                            assert!(db.wal().durable_lsn() >= info.commit_lsn, "acknowledged before durable");
                            info
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let syncs = db.wal().stats().data_syncs;
    assert!(syncs <= commits.len() as u64, "{syncs} syncs for {} commits", commits.len());
    drop(db); // no close: only what was fsynced counts
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    let txns = transactions(&read_all(&db));
    assert_eq!(txns.len(), commits.len());
    let mut lsns: Vec<_> = commits.iter().map(|c| c.commit_lsn).collect();
    lsns.sort_unstable();
    assert_eq!(txns.iter().map(|t| t.commit_lsn).collect::<Vec<_>>(), lsns, "commit order is LSN order");
}

#[test]
fn acknowledged_commits_survive_power_loss_and_txn_ids_never_repeat() {
    let fs = FaultStorage::new();
    let storage: Arc<dyn walden_engine::walden_wal::Storage> = Arc::new(fs.clone());
    let mut seen_ids = Vec::new();
    let mut acked = 0;
    for round in 0..4u8 {
        let db = Database::open_with_storage("/db", small_config(SyncMode::Group), storage.clone()).unwrap();
        let txns = transactions(&read_all(&db));
        assert_eq!(txns.len(), acked, "round {round}: acknowledged commits lost or phantom ones appeared");
        for i in 0..30u8 {
            let mut t = db.begin();
            t.insert("t", &[round, i], b"v").unwrap();
            t.insert("u", &[round, i], b"w").unwrap();
            seen_ids.push(t.commit_info().unwrap().txn_id);
            acked += 1;
        }
        // Unacknowledged work in flight: a transaction that is never committed.
        let mut pending = db.begin();
        pending.insert("t", b"pending", b"x").unwrap();
        fs.power_loss();
        drop(pending);
        drop(db);
    }
    let mut sorted = seen_ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen_ids.len(), "transaction ids repeated");
    assert!(seen_ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn foreign_records_surface_as_typed_decode_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::None)).unwrap();
    db.log_change(ChangeOp::Insert, "t", b"k", None, Some(b"v")).unwrap();
    db.wal().append(99, b"not an engine record").unwrap();
    db.wal().append(walden_engine::record::KIND_COMMIT, &[9, 0]).unwrap();
    let mut reader = db.read_log(1).unwrap();
    for _ in 0..3 {
        reader.next().unwrap().unwrap();
    }
    let err = reader.next().unwrap().unwrap_err();
    assert!(matches!(err, EngineError::Decode { lsn: 4, source: DecodeError::UnknownKind(99) }), "{err}");
    assert!(reader.next().is_none(), "the iterator stops after an error");
    let mut reader = db.read_log(5).unwrap();
    let err = reader.next_entry().unwrap_err();
    assert!(matches!(err, EngineError::Decode { lsn: 5, source: DecodeError::UnsupportedVersion { found: 9, .. } }));
}
