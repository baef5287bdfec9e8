//! Helpers shared by the archive's integration tests (each test crate uses its own part).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ChildStdout;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch};
use futures::TryStreamExt;
use walden_archive::{Archiver, LakeConfig};
use walden_cdc::{Cdc, Event, SubscriptionOptions};
use walden_engine::{Config, Database, EngineRecord, Lsn, SyncMode, Transaction, WalConfig};

/// A database with 4 KiB segments (a few transactions seal one), a fine sparse index and no
/// fsyncs: many sealed segments from little data, fast.
pub fn small_db_config() -> Config {
    Config {
        wal: WalConfig {
            target_segment_size_bytes: 4096,
            index_interval_bytes: 512,
            sync_mode: SyncMode::None,
            ..WalConfig::default()
        },
        ..Config::default()
    }
}

/// A database with [`small_db_config`] in `db/` of a temporary directory, and the lake directory
/// `lake/` next to it.
pub struct Fixture {
    pub db: Arc<Database>,
    pub lake_dir: PathBuf,
    pub dir: tempfile::TempDir,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path().join("db"), small_db_config()).unwrap());
    let lake_dir = dir.path().join("lake");
    Fixture { db, lake_dir, dir }
}

/// A local lake in the fixture's lake directory.
pub fn lake_config(f: &Fixture) -> LakeConfig {
    LakeConfig::local_dir(&f.lake_dir).unwrap()
}

/// Every event of a subscription that ends (its options carry an end LSN); asserts it reached
/// the end rather than stalling for 200 ms.
pub fn collect(cdc: &Cdc, options: SubscriptionOptions) -> Vec<Event> {
    let mut stream = cdc.subscribe(options).unwrap();
    let mut events = Vec::new();
    while let Some(event) = stream.next_timeout(Duration::from_millis(200)) {
        events.push(event.unwrap());
    }
    assert!(stream.is_ended(), "stream did not reach its end LSN");
    events
}

/// The first line a child process prints on `stdout`, waiting at most `timeout` (a bound on a
/// hung start-up, not a timing assertion); empty if none came by then.
pub fn first_line(stdout: ChildStdout, timeout: Duration) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(timeout).unwrap_or_default()
}

/// Begins transaction number `i` of a workload with the metadata the archive keeps: actor
/// `user-<i mod 3>`, and for every fourth the namespace `tenant-a` and correlation id `req-<i>`.
pub fn begin_with_metadata(db: &Database, i: u32) -> Transaction<'_> {
    let mut t = db.begin();
    t.set_actor(format!("user-{}", i % 3));
    if i.is_multiple_of(4) {
        t.set_namespace("tenant-a");
        t.set_correlation_id(format!("req-{i}"));
    }
    t
}

/// LSNs of the row changes (not schema changes) in the whole log.
pub fn row_change_lsns(db: &Database) -> Vec<Lsn> {
    db.read_log(1)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| matches!(e.record, EngineRecord::Change(_)))
        .map(|e| e.lsn)
        .collect()
}

/// LSNs of the records in `from..=to` the archive keeps as rows (row and schema changes).
pub fn change_lsns(db: &Database, from: Lsn, to: Lsn) -> Vec<Lsn> {
    db.read_log(from)
        .unwrap()
        .map(|e| e.unwrap())
        .take_while(|e| e.lsn <= to)
        .filter(|e| matches!(e.record, EngineRecord::Change(_) | EngineRecord::Schema(_)))
        .map(|e| e.lsn)
        .collect()
}

/// The whole current table, read through the iceberg crate's scan (so through the catalog's
/// metadata and our object-store backend); empty before the first snapshot.
pub fn scan(archiver: &Archiver) -> Vec<RecordBatch> {
    archiver.block_on(async {
        let table = archiver.lake().load_table().await.unwrap();
        if table.metadata().current_snapshot().is_none() {
            return Vec::new();
        }
        let stream = table.scan().select_all().build().unwrap().to_arrow().await.unwrap();
        stream.try_collect::<Vec<_>>().await.unwrap()
    })
}

/// The `lsn` column of `batches`, sorted.
pub fn lsns_of(batches: &[RecordBatch]) -> Vec<Lsn> {
    let mut lsns = Vec::new();
    for batch in batches {
        let col = batch.column_by_name("lsn").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        lsns.extend(col.values().iter().map(|&v| v as Lsn));
    }
    lsns.sort_unstable();
    lsns
}

/// Every LSN in the current table, sorted.
pub fn scanned_lsns(archiver: &Archiver) -> Vec<Lsn> {
    lsns_of(&scan(archiver))
}

/// Files below `dir` (recursively) whose name ends with `suffix`; a missing directory is empty.
pub fn files_under(dir: &Path, suffix: &str) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.insert(p);
            }
        }
    }
    out
}

/// Parquet data files below `dir`.
pub fn parquet_files(dir: &Path) -> BTreeSet<PathBuf> {
    files_under(dir, ".parquet")
}
