//! The Rust half of the independent-reader harness, shared by `tests/pyiceberg.rs` (a local lake)
//! and `tests/s3.rs` (an S3 lake on moto): finding the lake venv, a writer process whose wall
//! clock is set to an earlier day, moto's S3 server, the life-cycle suite that archives,
//! evolves, compacts and expires a table and has pyiceberg and DuckDB (`check_table.py` beside
//! this file) check it after each step, and a check that batches written as parallel parts read
//! back like batches written as one.
//!
//! The lake venv comes from `scripts/lake_venv.sh` (the test command creates it and sets
//! `WALDEN_REQUIRE_LAKE_VENV=1`, so in CI a missing venv fails these tests instead of skipping
//! them). `WALDEN_LAKE_PYTHON` names its python explicitly; otherwise `$WALDEN_LAKE_VENV`, the
//! script's default `~/.cache/walden/lake-venv` and the repository's `.venv` are looked at.
//!
//! Commit timestamps come from the WAL's clock (the system wall clock, never earlier than the last
//! record's). To put rows on earlier days, the test runs its own binary as a writer process with
//! libfaketime preloaded (from the venv's `libfaketime` wheel), so the engine stamps those commits
//! with the faked date; the test then opens the same database with the real clock. The suite
//! checks the WAL really carries those days before relying on them.
#![allow(dead_code)] // each test crate uses its own part of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use walden_archive::{
    ARCHIVE_FIRST_LSN_PROPERTY, Archiver, CompactOptions, ExpireOptions, FIRST_LSN_PROPERTY, LAST_LSN_PROPERTY,
    LakeConfig, OPERATION_ARCHIVE, OPERATION_COMPACT, OPERATION_PROPERTY, S3Options,
};
use walden_engine::{Column, Database, EngineRecord, Lsn};

use crate::common::{begin_with_metadata, first_line};

/// Set (to anything but `0`) by the test command: a missing venv is a failure, not a skip.
pub const REQUIRE_ENV: &str = "WALDEN_REQUIRE_LAKE_VENV";
/// Name of the `#[test]` every crate using [`Env::write_on_day`] defines as
/// `fn faked_clock_writer() { readers::faked_clock_child() }`.
pub const CHILD_TEST: &str = "faked_clock_writer";
const CHILD_DB_ENV: &str = "WALDEN_FAKED_CLOCK_DB";
const CHILD_ROWS_ENV: &str = "WALDEN_FAKED_CLOCK_ROWS";

/// The two earlier days the suite writes on (UTC), and a day nothing is written on.
pub const DAY_1: &str = "2024-01-15";
pub const DAY_2: &str = "2024-02-20";
pub const EMPTY_DAY: &str = "2023-12-31";
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The lake venv's python, if there is one ([`walden_archive::testing::lake_python`]).
pub fn python() -> Option<PathBuf> {
    walden_archive::testing::lake_python()
}

/// What the harness runs: the venv's python and the preloadable libfaketime it ships.
#[derive(Debug, Clone)]
pub struct Env {
    pub python: PathBuf,
    pub faketime: PathBuf,
}

impl Env {
    /// The venv, or `None` (after saying so) when there is none and the test command did not
    /// require one.
    pub fn find(what: &str) -> Option<Env> {
        let Some(python) = python() else {
            assert!(!required(), "{REQUIRE_ENV} is set but there is no lake venv: run scripts/lake_venv.sh");
            eprintln!("{what} skipped: no lake venv (run scripts/lake_venv.sh, or set WALDEN_LAKE_PYTHON)");
            return None;
        };
        let out = Command::new(&python)
            .args([
                "-c",
                "import libfaketime, os; \
                 print(os.path.join(os.path.dirname(libfaketime.__file__), 'vendor', 'libfaketime', 'src', \
                 'libfaketime.so.1'))",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(
            out.status.success(),
            "no libfaketime in {}: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let faketime = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(faketime.exists(), "{} is missing", faketime.display());
        Some(Env { python, faketime })
    }

    /// Commits rows `from..from + n` ([`commit_rows`]) into the database at `db_dir` from a
    /// separate process whose wall clock starts at `day` 10:00 UTC.
    pub fn write_on_day(&self, db_dir: &Path, day: &str, from: u32, n: u32) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_DB_ENV, db_dir)
            .env(CHILD_ROWS_ENV, format!("{from},{n}"))
            .env("LD_PRELOAD", &self.faketime)
            .env("FAKETIME", format!("@{day} 10:00:00"))
            .env("TZ", "UTC")
            .env("DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "faked-clock writer failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `check_table.py` with `spec`; returns what pyiceberg and DuckDB saw.
    pub fn check_table(&self, spec: &Value) -> Value {
        let out =
            Command::new(&self.python).arg(py_dir().join("check_table.py")).arg(spec.to_string()).output().unwrap();
        assert!(out.status.success(), "check_table.py failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The body of the child test [`CHILD_TEST`]: does nothing unless started by
/// [`Env::write_on_day`].
pub fn faked_clock_child() {
    let Ok(dir) = std::env::var(CHILD_DB_ENV) else { return };
    let rows = std::env::var(CHILD_ROWS_ENV).unwrap();
    let (from, n) = rows.split_once(',').unwrap();
    let db = Database::open(dir, crate::common::small_db_config()).unwrap();
    commit_rows(&db, from.parse().unwrap(), n.parse().unwrap());
    db.close().unwrap();
}

/// One transaction per row number: a JSON insert, a binary update (even), a delete (every
/// fifth), transaction metadata, a schema change now and then; then seals the active segment so
/// everything is archivable. Returns the last commit LSN.
pub fn commit_rows(db: &Database, from: u32, n: u32) -> Lsn {
    let mut last = 0;
    for i in from..from + n {
        let mut t = begin_with_metadata(db, i);
        let key = i.to_be_bytes();
        let json = format!("{{\"i\":{i},\"name\":\"n{i}\"}}");
        t.insert("items", &key, json.as_bytes()).unwrap();
        if i % 2 == 0 {
            t.update("blobs", &key, &[0x00, 0xff, i as u8], &[0x01, i as u8]).unwrap();
        }
        if i % 5 == 0 {
            t.delete("items", &key, json.as_bytes()).unwrap();
        }
        if i % 25 == 7 {
            t.create_table(&format!("t{i}"), 1, &[Column::new("id", "int", false)]).unwrap();
        }
        last = t.commit().unwrap();
    }
    db.wal().seal_active_segment().unwrap();
    last
}

/// A row the table must hold: every row or schema change of the log, with its commit day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedRow {
    pub lsn: Lsn,
    pub day: i64,
}

/// The rows the log holds up to `end`, from the WAL itself (the commit time of a row is its
/// transaction's COMMIT record's timestamp).
pub fn expected_rows(db: &Database, end: Lsn) -> Vec<ExpectedRow> {
    let entries: Vec<_> = db.read_log(1).unwrap().map(|e| e.unwrap()).take_while(|e| e.lsn <= end).collect();
    let commit_ts: BTreeMap<u64, u64> = entries
        .iter()
        .filter(|e| matches!(e.record, EngineRecord::Commit(_)))
        .map(|e| (e.txn_id, e.timestamp_us))
        .collect();
    entries
        .iter()
        .filter(|e| matches!(e.record, EngineRecord::Change(_) | EngineRecord::Schema(_)))
        .map(|e| ExpectedRow { lsn: e.lsn, day: (commit_ts[&e.txn_id] as i64).div_euclid(MICROS_PER_DAY) })
        .collect()
}

/// Days since the epoch of an ISO date.
pub fn day_number(day: &str) -> i64 {
    let mut parts = day.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, d) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The ISO date of a day number.
pub fn day_string(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// moto's S3 server for one test (`moto_guard.py`): on a port the kernel picked, with the
/// buckets created. Dropping it stops the server; if the test process dies, the guard's stdin
/// closes and it stops by itself.
pub struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    pub fn start(python: &Path, buckets: &[&str]) -> Moto {
        // The server's log goes to a file (a pipe nobody reads would fill and block it).
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(python)
            .arg(py_dir().join("moto_guard.py"))
            .args(buckets)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_guard.py with {}: {e}", python.display()));
        let stdin = child.stdin.take();
        // Moto is ready in a few seconds.
        let line = first_line(child.stdout.take().unwrap(), Duration::from_secs(120));
        let port = serde_json::from_str::<Value>(&line).ok().and_then(|v| v["port"].as_u64());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("moto_guard.py did not start: {line:?}\n{stderr}");
        };
        Moto { child, stdin, port: port as u16, _log: log }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: true,
            path_style: true,
            ..S3Options::default()
        }
    }

    /// The `s3` part of a `check_table.py` spec.
    pub fn reader_spec(&self) -> Value {
        json!({"endpoint": self.endpoint(), "key_id": "testing", "secret": "testing", "region": "us-east-1"})
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the suite's lake is and how the readers reach it.
pub struct SuiteLake {
    pub config: LakeConfig,
    /// The sqlite catalog file.
    pub catalog_db: PathBuf,
    /// `check_table.py`'s `s3` spec (`None`: a local lake).
    pub s3: Option<Value>,
}

fn lsns(v: &Value) -> Vec<Lsn> {
    v["lsns"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap()).collect()
}

fn props(pairs: &[(&str, String)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect())
}

/// The suite: rows on three days (two through a faked clock), three append snapshots with a
/// column added between the second and the third, a compaction (replace snapshot), then expiry.
/// After the compaction and after the expiry pyiceberg and DuckDB must both read: the rows (the
/// same LSNs as the log, the same content as each other), the schema with the added column (null
/// in every row, older files not even having it), `day(commit_ts)` pruning (a one-day filter
/// plans / reads only that day's files), each snapshot's walden properties, time travel, and
/// after expiry only the current snapshot.
pub fn life_cycle(env: &Env, dir: &Path, lake: SuiteLake) {
    let db_dir = dir.join("db");
    env.write_on_day(&db_dir, DAY_1, 0, 30);
    env.write_on_day(&db_dir, DAY_2, 30, 30);
    let db = Arc::new(Database::open(&db_dir, crate::common::small_db_config()).unwrap());
    let archiver = Archiver::open(db.clone(), lake.config.clone()).unwrap();

    commit_rows(&db, 60, 30);
    let r1 = archiver.archive_sealed().unwrap();
    commit_rows(&db, 90, 20);
    let r2 = archiver.archive_sealed().unwrap();
    archiver.add_column("region", iceberg::spec::PrimitiveType::String, Some("where the change was made")).unwrap();
    let end = commit_rows(&db, 110, 20);
    let r3 = archiver.archive_sealed().unwrap();
    assert_eq!(r3.last_archived_lsn, Some(end));
    let batches: Vec<_> = [&r1, &r2, &r3].iter().map(|r| r.batches.clone()).collect();
    assert!(batches.iter().all(|b| b.len() == 1), "one snapshot per run: {batches:?}");
    let (b1, b2, b3) = (&batches[0][0], &batches[1][0], &batches[2][0]);

    // The premise: the WAL carries the faked days with exactly the rows written under them,
    // and the real one(s).
    let expected = expected_rows(&db, end);
    let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
    for row in &expected {
        *per_day.entry(row.day).or_default() += 1;
    }
    let (d1, d2) = (day_number(DAY_1), day_number(DAY_2));
    assert_eq!(per_day.get(&d1).copied(), Some(rows_made_by(0, 30)), "{per_day:?}");
    assert_eq!(per_day.get(&d2).copied(), Some(rows_made_by(30, 30)), "{per_day:?}");
    assert!(per_day.len() >= 3 && per_day.keys().nth(2).is_some_and(|d| *d > d2), "days in the log: {per_day:?}");
    assert_eq!(r1.rows() + r2.rows() + r3.rows(), expected.len() as u64);
    assert_eq!(b1.range.first_lsn, 1);
    assert_eq!(b2.range.first_lsn, b1.range.last_lsn + 1, "contiguous ranges");
    assert_eq!(b3.range.first_lsn, b2.range.last_lsn + 1, "contiguous ranges");
    // One file per day and batch: the first batch covers every day.
    let mut files_by_day: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (i, b) in [b1, b2, b3].into_iter().enumerate() {
        let days: BTreeSet<i64> = b.data_files.iter().map(|f| file_day(f)).collect();
        assert_eq!(days.len(), b.data_files.len(), "one file per day in batch {i}: {:?}", b.data_files);
        for f in &b.data_files {
            files_by_day.entry(file_day(f)).or_default().push(f.clone());
        }
    }
    assert_eq!(files_by_day.keys().collect::<Vec<_>>(), per_day.keys().collect::<Vec<_>>());
    assert_eq!(b1.data_files.len(), per_day.len());

    // Compaction rewrites each day that has several files (today's: one per batch) into one.
    let compact = archiver.compact(CompactOptions::default()).unwrap();
    let s4 = compact.snapshot_id.expect("today's partition has a file per batch");
    let compacted: BTreeSet<&String> = files_by_day.values().filter(|f| f.len() >= 2).flatten().collect();
    assert_eq!(compact.input_files.iter().collect::<BTreeSet<_>>(), compacted, "{compact:?}");
    assert_eq!(compact.output_files.len(), files_by_day.values().filter(|f| f.len() >= 2).count());
    let compacted_rows: u64 = files_by_day.iter().filter(|(_, f)| f.len() >= 2).map(|(d, _)| per_day[d]).sum();
    assert_eq!(compact.rows, compacted_rows);
    let live_files = per_day.len();
    // Files written before the column was added that are still live do not have it.
    let old_live =
        files_by_day.values().filter(|f| f.len() == 1).flatten().filter(|f| !b3.data_files.contains(f)).count();
    assert!(old_live >= 2, "day 1 and day 2's files are old and live");

    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    let spec = |gone: &[i64]| {
        let table = archiver.block_on(archiver.lake().load_table()).unwrap();
        let mut days: Vec<String> = per_day.keys().map(|d| day_string(*d)).collect();
        days.push(EMPTY_DAY.to_string());
        json!({
            "catalog_db": lake.catalog_db,
            "warehouse": archiver.lake().location().warehouse_url(),
            "ident": "walden.events",
            "metadata_location": table.metadata_location().unwrap(),
            "days": days,
            "gone_snapshot_ids": gone,
            "added_column": "region",
            "s3": lake.s3,
        })
    };
    let first_lsn = expected[0].lsn;
    let range_props = |b: &walden_archive::BatchReport| {
        props(&[
            (FIRST_LSN_PROPERTY, b.range.first_lsn.to_string()),
            (LAST_LSN_PROPERTY, b.range.last_lsn.to_string()),
            (ARCHIVE_FIRST_LSN_PROPERTY, b1.range.first_lsn.to_string()),
            (OPERATION_PROPERTY, OPERATION_ARCHIVE.to_string()),
        ])
    };
    let compact_props = props(&[
        (LAST_LSN_PROPERTY, b3.range.last_lsn.to_string()),
        (ARCHIVE_FIRST_LSN_PROPERTY, b1.range.first_lsn.to_string()),
        (OPERATION_PROPERTY, OPERATION_COMPACT.to_string()),
    ]);
    assert!(b1.range.first_lsn <= first_lsn);
    let all_lsns: Vec<Lsn> = expected.iter().map(|r| r.lsn).collect();

    // --- after the compaction: four snapshots.
    let seen = env.check_table(&spec(&[]));
    let (py, duck) = (&seen["pyiceberg"], &seen["duckdb"]);
    check_rows(py, duck, &all_lsns, table.metadata_location().unwrap());
    check_schema(py, duck);
    check_pruning(py, duck, &per_day, live_files);
    let snaps = py["snapshots"].as_array().unwrap();
    let ids: Vec<i64> = snaps.iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [b1.snapshot_id, b2.snapshot_id, b3.snapshot_id, s4]);
    let ops: Vec<&str> = snaps.iter().map(|s| s["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["append", "append", "append", "replace"]);
    assert_eq!(snaps[0]["parent_id"], Value::Null);
    for w in snaps.windows(2) {
        assert_eq!(w[1]["parent_id"], w[0]["id"]);
    }
    assert_eq!(snaps[0]["walden"], range_props(b1));
    assert_eq!(snaps[1]["walden"], range_props(b2));
    assert_eq!(snaps[2]["walden"], range_props(b3));
    assert_eq!(snaps[3]["walden"], compact_props);
    // Time travel: rows and files as of each snapshot.
    let rows_at: Vec<u64> = snaps.iter().map(|s| s["rows_at"].as_u64().unwrap()).collect();
    assert_eq!(rows_at, [b1.rows, b1.rows + b2.rows, b1.rows + b2.rows + b3.rows, b1.rows + b2.rows + b3.rows]);
    let files_at: Vec<usize> = snaps.iter().map(|s| s["files_at"].as_u64().unwrap() as usize).collect();
    let n1 = b1.data_files.len();
    assert_eq!(files_at, [n1, n1 + b2.data_files.len(), n1 + b2.data_files.len() + b3.data_files.len(), live_files]);
    let duck_snaps: Vec<(i64, u64)> = duck["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_i64().unwrap(), s["rows_at"].as_u64().unwrap()))
        .collect();
    assert_eq!(duck_snaps, ids.iter().copied().zip(rows_at.iter().copied()).collect::<Vec<_>>());
    // The files written before the column was added do not have it: day 1 and day 2's.
    assert_eq!(py["files_without_added_column"], old_live);
    let digest = py["digest"].clone();

    // --- expiry: only the compaction snapshot stays; the files only older snapshots referenced
    // (the compacted-away data files, old manifests and lists) are gone from the store.
    let expired = archiver.expire_snapshots(ExpireOptions { retain_last: 1, older_than_ms: None }).unwrap();
    let gone = [b1.snapshot_id, b2.snapshot_id, b3.snapshot_id];
    assert_eq!(expired.expired_snapshot_ids, sorted(&gone));
    let removed_data: BTreeSet<&str> =
        expired.removed_files.iter().filter(|f| f.ends_with(".parquet")).map(String::as_str).collect();
    assert_eq!(removed_data, compact.input_files.iter().map(String::as_str).collect::<BTreeSet<_>>());
    assert!(expired.removed_files.iter().any(|f| f.ends_with(".avro")), "{expired:?}");
    for f in &expired.removed_files {
        let key = archiver.lake().storage().key(f).unwrap();
        let head = archiver.block_on(archiver.lake().store().head(&key));
        assert!(matches!(head, Err(object_store::Error::NotFound { .. })), "{f}: {head:?}");
    }
    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    let seen = env.check_table(&spec(&gone));
    let (py, duck) = (&seen["pyiceberg"], &seen["duckdb"]);
    check_rows(py, duck, &all_lsns, table.metadata_location().unwrap());
    assert_eq!(py["digest"], digest, "expiry changed no row");
    check_schema(py, duck);
    check_pruning(py, duck, &per_day, live_files);
    let snaps = py["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], s4);
    assert_eq!(snaps[0]["walden"], compact_props);
    assert_eq!(snaps[0]["rows_at"], all_lsns.len());
    assert_eq!(py["gone_snapshots_resolvable"], json!([false, false, false]));
    let duck_snaps = duck["snapshots"].as_array().unwrap();
    assert_eq!(duck_snaps.len(), 1);
    assert_eq!(duck_snaps[0]["id"], s4);
    for e in duck["gone_snapshot_errors"].as_array().unwrap() {
        assert!(e.is_string(), "DuckDB time-travelled to an expired snapshot: {duck}");
    }
    // The archive's position survives it all.
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end));
}

/// The same log (rows on three days) archived into two local lakes: one part per batch with
/// the default chunks, and up to three parts on parallel threads in chunks of five rows.
/// pyiceberg and DuckDB read exactly the log's rows from both, with the same content (the same
/// digest), the second from more files, each sorted by LSN, with pruning by day intact.
pub fn parts_read_like_one(env: &Env, dir: &Path) {
    let db_dir = dir.join("db");
    env.write_on_day(&db_dir, DAY_1, 0, 30);
    env.write_on_day(&db_dir, DAY_2, 30, 30);
    let db = Arc::new(Database::open(&db_dir, crate::common::small_db_config()).unwrap());
    let end = commit_rows(&db, 60, 40);
    let expected = expected_rows(&db, end);
    let all_lsns: Vec<Lsn> = expected.iter().map(|r| r.lsn).collect();
    let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
    for row in &expected {
        *per_day.entry(row.day).or_default() += 1;
    }
    assert!(per_day.len() >= 3, "days in the log: {per_day:?}");
    let mut seen = Vec::new();
    for (name, write_threads, chunk_rows) in [("one-part", 1, 8192), ("parts", 3, 5)] {
        let lake_dir = dir.join(format!("lake-{name}"));
        let config =
            LakeConfig { write_threads, min_part_bytes: 1, chunk_rows, ..LakeConfig::local_dir(&lake_dir).unwrap() };
        let archiver = Archiver::open(db.clone(), config).unwrap();
        let report = archiver.archive_sealed().unwrap();
        assert_eq!(report.last_archived_lsn, Some(end), "{name}");
        let files: usize = report.batches.iter().map(|b| b.data_files.len()).sum();
        let table = archiver.block_on(archiver.lake().load_table()).unwrap();
        let mut days: Vec<String> = per_day.keys().map(|d| day_string(*d)).collect();
        days.push(EMPTY_DAY.to_string());
        let out = env.check_table(&json!({
            "catalog_db": lake_dir.join(walden_archive::config::CATALOG_FILE_NAME),
            "warehouse": archiver.lake().location().warehouse_url(),
            "ident": "walden.events",
            "metadata_location": table.metadata_location().unwrap(),
            "days": days,
            "gone_snapshot_ids": [],
            "added_column": null,
            "s3": null,
        }));
        let (py, duck) = (&out["pyiceberg"], &out["duckdb"]);
        for (reader, got) in [("pyiceberg", py), ("duckdb", duck)] {
            assert_eq!(got["rows"], all_lsns.len(), "{name}, {reader}");
            assert_eq!(lsns(got), all_lsns, "{name}, {reader}: the LSNs of the log");
        }
        assert_eq!(py["digest"], duck["digest"], "{name}: pyiceberg and DuckDB read the same content");
        assert_eq!(py["codecs"], json!(["ZSTD"]), "{name}");
        assert_eq!(py["files_sorted_by_lsn"], true, "{name}");
        assert_eq!(py["files"].as_array().unwrap().len(), files, "{name}");
        assert_eq!(duck["files_read_unfiltered"], files, "{name}");
        for (day, rows) in per_day.iter().map(|(d, r)| (*d, *r)).chain([(day_number(EMPTY_DAY), 0)]) {
            let day_name = day_string(day);
            assert_eq!(py["pruned"][&day_name]["rows"], rows, "{name}: pyiceberg rows on {day_name}");
            assert_eq!(duck["pruned"][&day_name]["rows"], rows, "{name}: DuckDB rows on {day_name}");
            let want_days = if rows == 0 { json!([]) } else { json!([day]) };
            assert_eq!(py["pruned"][&day_name]["file_days"], want_days, "{name}: pyiceberg pruned {day_name}");
        }
        seen.push((files, py["digest"].clone()));
    }
    assert!(seen[1].0 > seen[0].0, "parallel parts wrote more files: {} against {}", seen[1].0, seen[0].0);
    assert_eq!(seen[0].1, seen[1].1, "both lakes hold the same rows, byte for byte");
}

fn sorted(ids: &[i64]) -> Vec<i64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v
}

/// Rows (row and schema changes) `commit_rows(_, from, n)` makes: an insert each, an update when
/// even, a delete every fifth, a schema change when `i % 25 == 7`.
fn rows_made_by(from: u32, n: u32) -> u64 {
    (from..from + n).map(|i| 1 + u64::from(i % 2 == 0) + u64::from(i % 5 == 0) + u64::from(i % 25 == 7)).sum()
}

/// The `commit_ts` day of a data file, from its partition directory (`commit_ts_day=YYYY-MM-DD`).
fn file_day(path: &str) -> i64 {
    let at = path.find("commit_ts_day=").unwrap_or_else(|| panic!("{path} is not in a day partition"));
    day_number(&path[at + "commit_ts_day=".len()..][..10])
}

/// Both readers see exactly the log's rows, with the same content, from the current metadata.
fn check_rows(py: &Value, duck: &Value, all_lsns: &[Lsn], metadata_location: &str) {
    assert_eq!(py["metadata_location"], metadata_location, "pyiceberg found the current metadata in the catalog");
    for (name, seen) in [("pyiceberg", py), ("duckdb", duck)] {
        assert_eq!(seen["rows"], all_lsns.len(), "{name}");
        assert_eq!(lsns(seen), all_lsns, "{name}: the LSNs of the log");
        assert_eq!(seen["added_column_nulls"], all_lsns.len(), "{name}: the added column is null in every row");
    }
    assert_eq!(py["digest"], duck["digest"], "pyiceberg and DuckDB read the same content");
    assert_eq!(py["first_row"], duck["first_row"]);
    assert_eq!(py["codecs"], json!(["ZSTD"]));
    assert_eq!(py["files_sorted_by_lsn"], true);
    assert_eq!(py["format_version"], 2);
    assert_eq!(py["partition"], json!(["day(commit_ts)"]));
}

fn check_schema(py: &Value, duck: &Value) {
    let names = [
        "lsn",
        "commit_lsn",
        "txn_id",
        "commit_ts",
        "op",
        "table_name",
        "key",
        "before",
        "after",
        "before_bin",
        "after_bin",
        "namespace",
        "correlation_id",
        "actor",
        "region",
    ];
    let fields = py["fields"].as_array().unwrap();
    let got: Vec<&str> = fields.iter().map(|f| f[1].as_str().unwrap()).collect();
    assert_eq!(got, names);
    let ids: Vec<i64> = fields.iter().map(|f| f[0].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=15).collect::<Vec<i64>>(), "field ids are stable, the new one is next");
    assert_eq!(fields[0], json!([1, "lsn", "long", true]));
    assert_eq!(fields[3], json!([4, "commit_ts", "timestamptz", true]));
    assert_eq!(fields[6], json!([7, "key", "binary", true]));
    assert_eq!(fields[14], json!([15, "region", "string", false]));
    assert_eq!(py["schema_id"], 1);
    assert_eq!(py["schemas"], 2);
    let columns = duck["columns"].as_array().unwrap();
    let got: Vec<&str> = columns.iter().map(|c| c[0].as_str().unwrap()).collect();
    assert_eq!(got, names);
    let ty = |name: &str| columns.iter().find(|c| c[0] == name).unwrap()[1].clone();
    assert_eq!(ty("lsn"), "BIGINT");
    assert_eq!(ty("commit_ts"), "TIMESTAMP WITH TIME ZONE");
    assert_eq!(ty("key"), "BLOB");
    assert_eq!(ty("after"), "VARCHAR");
    assert_eq!(ty("region"), "VARCHAR");
}

/// A one-day `commit_ts` filter: pyiceberg plans only that day's files, DuckDB reads only them,
/// and both return that day's rows.
fn check_pruning(py: &Value, duck: &Value, per_day: &BTreeMap<i64, u64>, live_files: usize) {
    assert_eq!(py["files"].as_array().unwrap().len(), live_files);
    let mut file_days: Vec<i64> = per_day.keys().copied().collect();
    file_days.sort_unstable();
    assert_eq!(py["file_days"], json!(file_days), "one live file per day after the compaction");
    assert_eq!(duck["files_read_unfiltered"], live_files);
    for (day, rows) in per_day.iter().map(|(d, r)| (*d, *r)).chain([(day_number(EMPTY_DAY), 0)]) {
        let name = day_string(day);
        let p = &py["pruned"][&name];
        let files = if rows == 0 { 0 } else { 1 };
        assert_eq!(p["files"], files, "pyiceberg planned {name}: {p}");
        assert_eq!(p["file_days"], if rows == 0 { json!([]) } else { json!([day]) }, "{name}");
        assert_eq!(p["rows"], rows, "pyiceberg rows on {name}");
        let d = &duck["pruned"][&name];
        assert_eq!(d["rows"], rows, "DuckDB rows on {name}");
        assert_eq!(d["files_read"], files, "DuckDB files read on {name}");
    }
}
