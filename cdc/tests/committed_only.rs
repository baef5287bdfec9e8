//! Only committed transactions are delivered, also after a crash in the middle of a commit.
//!
//! On [`FaultStorage`], each round commits a few transactions, then arms `crash_after_bytes(n)`
//! so that the storage dies `n` bytes into the next multi-change commit (n sweeps the whole batch,
//! including segment rotations), then simulates power loss, partial write-back or a process crash,
//! reopens and subscribes from LSN 0 with transaction control. Every delivered transaction must be
//! whole (BEGIN, exactly `change_count` consecutive changes, COMMIT), every acknowledged commit
//! must be there with its content, and nothing of a failed commit may appear. A subscription that
//! is open while the commit fails must not see any of it either.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use walden_cdc::{Cdc, Event, SubscriptionOptions, TransactionEventKind};
use walden_engine::walden_wal::Storage;
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{Config, Database, SyncMode, WalConfig};

/// One row change as written: (table, key, after).
type Row = (String, Vec<u8>, Vec<u8>);

fn config(sync_mode: SyncMode) -> Config {
    Config {
        wal: WalConfig {
            // Small segments: a commit often seals one and starts the next, so crashes also land
            // in footers and new segment headers.
            target_segment_size_bytes: 4 << 10,
            index_interval_bytes: 512,
            sync_mode,
            ..WalConfig::default()
        },
        ..Config::default()
    }
}

/// The rows of a transaction tagged `tag`: 2 to 6 changes over three tables, payloads of varying
/// size that name the tag.
fn rows(tag: &str, rng: &mut StdRng) -> Vec<Row> {
    let n = rng.random_range(2..=6);
    (0..n)
        .map(|c| {
            let table = ["users", "orders", "payments"][c % 3].to_string();
            let key = format!("{tag}-{c}").into_bytes();
            let filler = "x".repeat(rng.random_range(0..300));
            let after = format!(r#"{{"tag":"{tag}","c":{c},"filler":"{filler}"}}"#).into_bytes();
            (table, key, after)
        })
        .collect()
}

fn commit(db: &Database, rows: &[Row]) -> walden_engine::Result<walden_engine::CommitInfo> {
    let mut txn = db.begin();
    for (table, key, after) in rows {
        txn.insert(table, key, after)?;
    }
    txn.commit_info()
}

/// Reads the whole log through CDC and checks the framing of every transaction; returns the
/// delivered transactions by commit LSN.
fn delivered(db: &Arc<Database>) -> BTreeMap<u64, Vec<Row>> {
    let cdc = Cdc::new(db.clone());
    let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(0).with_transaction_control(true)).unwrap();
    let mut out = BTreeMap::new();
    let mut open: Option<(walden_cdc::TransactionEvent, Vec<Row>)> = None;
    while let Some(event) = stream.try_next() {
        match event.unwrap() {
            Event::Transaction(t) if t.kind == TransactionEventKind::Begin => {
                assert!(open.is_none(), "BEGIN at {} inside another transaction", t.lsn);
                assert_eq!(t.lsn, t.txn.txn_id);
                open = Some((t, Vec::new()));
            }
            Event::Change(c) => {
                let (begin, changes) = open.as_mut().expect("a change outside any transaction");
                assert_eq!(c.txn, begin.txn, "the change carries its transaction's context");
                assert_eq!(c.lsn, begin.lsn + 1 + changes.len() as u64, "changes are consecutive");
                changes.push((c.table, c.key.to_vec(), c.data.expect("an insert has data").to_vec()));
            }
            Event::Transaction(t) => {
                let (begin, changes) = open.take().expect("a COMMIT without BEGIN");
                assert_eq!(t.txn, begin.txn);
                assert_eq!(t.lsn, begin.txn.commit_lsn);
                assert_eq!(t.change_count, begin.change_count);
                assert_eq!(changes.len(), t.change_count as usize, "transaction {} is incomplete", t.txn.txn_id);
                assert_eq!(t.lsn, begin.lsn + changes.len() as u64 + 1);
                out.insert(t.lsn, changes);
            }
            Event::Schema(s) => panic!("unexpected schema event at {}", s.lsn),
        }
    }
    assert!(open.is_none(), "the log ends inside a transaction");
    out
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    PowerLoss,
    PartialWriteBack(u64),
    ProcessCrash,
}

fn run(sync_mode: SyncMode, rounds: u64) {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let fs = FaultStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(fs.clone());
    let mut acked: BTreeMap<u64, Vec<Row>> = BTreeMap::new();
    let mut failed: Vec<String> = Vec::new();
    let mut failed_after_some_bytes = 0;
    for round in 0..rounds {
        let db = Arc::new(Database::open_with_storage("/db", config(sync_mode), storage.clone()).unwrap());
        check(&db, &acked, &failed, round);
        for i in 0..rng.random_range(1..=2) {
            let rows = rows(&format!("ok{round}.{i}"), &mut rng);
            let info = commit(&db, &rows).unwrap();
            acked.insert(info.commit_lsn, rows);
        }
        // A subscriber tailing the log while the doomed commit happens.
        let cdc = Cdc::new(db.clone());
        let mut live = cdc.subscribe(SubscriptionOptions::from_lsn(db.wal().next_lsn())).unwrap();
        // Sweep the crash point over the whole batch (plus some slack past its end).
        let n = if round % 4 == 3 { rng.random_range(0..3000) } else { (round * 97) % 2200 };
        let before = fs.bytes_written();
        fs.crash_after_bytes(n);
        // Keep committing until the storage dies (a commit that fits in the budget succeeds).
        for attempt in 0..4 {
            let tag = format!("doomed{round}.{attempt}");
            let rows = rows(&tag, &mut rng);
            match commit(&db, &rows) {
                Ok(info) => {
                    acked.insert(info.commit_lsn, rows);
                }
                Err(_) => {
                    assert!(fs.is_crashed(), "round {round}: a commit failed without the injected crash");
                    if fs.bytes_written() > before {
                        failed_after_some_bytes += 1;
                    }
                    failed.push(tag);
                    break;
                }
            }
        }
        while let Some(Ok(event)) = live.try_next() {
            let c = event.as_change().expect("row changes only");
            let tag = String::from_utf8_lossy(&c.key).into_owned();
            assert!(
                acked.contains_key(&c.txn.commit_lsn) && !failed.iter().any(|f| tag.starts_with(&format!("{f}-"))),
                "round {round}: the live subscription saw {tag} of a commit that was not acknowledged"
            );
        }
        let failure = match round % 3 {
            0 => Failure::PowerLoss,
            1 => Failure::PartialWriteBack(rng.random()),
            _ => Failure::ProcessCrash,
        };
        match failure {
            Failure::PowerLoss => fs.power_loss(),
            Failure::PartialWriteBack(seed) => fs.power_loss_keep_random_prefix(seed),
            Failure::ProcessCrash => fs.crash(),
        }
        // The dead process's objects must not write anything while they are dropped.
        fs.crash_after_bytes(0);
        drop(live);
        drop(cdc);
        drop(db);
        fs.crash();
    }
    let db = Arc::new(Database::open_with_storage("/db", config(sync_mode), storage.clone()).unwrap());
    check(&db, &acked, &failed, rounds);
    println!("{} acknowledged, {} failed commits, {failed_after_some_bytes} cut mid-write", acked.len(), failed.len());
    assert!(
        failed_after_some_bytes >= rounds / 2,
        "only {failed_after_some_bytes} of {rounds} rounds crashed in the middle of a commit"
    );
}

fn check(db: &Arc<Database>, acked: &BTreeMap<u64, Vec<Row>>, failed: &[String], round: u64) {
    let got = delivered(db);
    for (commit_lsn, rows) in &got {
        let tag = String::from_utf8_lossy(&rows[0].1).into_owned();
        assert!(
            !failed.iter().any(|f| tag.starts_with(&format!("{f}-"))),
            "round {round}: the failed commit {tag} was delivered (commit LSN {commit_lsn})"
        );
        assert_eq!(acked.get(commit_lsn), Some(rows), "round {round}: unexpected transaction at {commit_lsn}");
    }
    for commit_lsn in acked.keys() {
        assert!(got.contains_key(commit_lsn), "round {round}: acknowledged commit {commit_lsn} is missing");
    }
    assert_eq!(got.len(), acked.len());
}

#[test]
fn group_commit_crashes_mid_commit_deliver_only_whole_committed_transactions() {
    run(SyncMode::Group, 180);
}

#[test]
fn always_sync_crashes_mid_commit_deliver_only_whole_committed_transactions() {
    run(SyncMode::Always, 100);
}
