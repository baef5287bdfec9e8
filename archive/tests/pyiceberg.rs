//! An independent reader: pyiceberg (0.12, from the venv `scripts/lake_venv.sh` makes) opens the
//! embedded sqlite catalog the archiver wrote and must see exactly what was archived: row count,
//! no duplicate LSN, LSN range, schema, `day(commit_ts)` partitioning, format v2, each snapshot's
//! `walden.first-lsn` / `walden.last-lsn`, time travel to each snapshot, and (via pyarrow) zstd
//! compression and LSN order inside every data file.
//!
//! Runs when the venv exists (`WALDEN_LAKE_PYTHON` names another interpreter). With
//! `WALDEN_REQUIRE_LAKE_VENV=1` (set by the test command once it creates the venv) a missing venv
//! fails the test instead of skipping the pyiceberg part.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use walden_archive::{Archiver, LakeConfig};
use walden_engine::{Config, Database, EngineRecord, Lsn, SyncMode, WalConfig};

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WALDEN_LAKE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    venv.exists().then_some(venv)
}

fn commit(db: &Database, from: u32, n: u32) {
    for i in from..from + n {
        let mut t = db.begin();
        t.set_actor("py");
        t.insert("items", &i.to_be_bytes(), format!("{{\"i\":{i}}}").as_bytes()).unwrap();
        if i % 2 == 0 {
            t.update("items", &i.to_be_bytes(), b"\x00old", b"\x00new").unwrap();
        }
        t.commit().unwrap();
    }
    db.wal().seal_active_segment().unwrap();
}

fn changes_up_to(db: &Database, end: Lsn) -> Vec<Lsn> {
    db.read_log(1)
        .unwrap()
        .map(|e| e.unwrap())
        .take_while(|e| e.lsn <= end)
        .filter(|e| matches!(e.record, EngineRecord::Change(_) | EngineRecord::Schema(_)))
        .map(|e| e.lsn)
        .collect()
}

#[test]
fn pyiceberg_reads_what_was_archived() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        wal: WalConfig { target_segment_size_bytes: 4096, sync_mode: SyncMode::None, ..WalConfig::default() },
        ..Config::default()
    };
    let db = Arc::new(Database::open(dir.path().join("db"), config).unwrap());
    let lake_dir = dir.path().join("lake");
    let archiver = Archiver::open(db.clone(), LakeConfig::local_dir(&lake_dir).unwrap()).unwrap();
    commit(&db, 0, 50);
    let first = archiver.archive_sealed().unwrap();
    commit(&db, 50, 30);
    let second = archiver.archive_sealed().unwrap();
    let end = second.last_archived_lsn.unwrap();
    let expected = changes_up_to(&db, end);
    assert_eq!(first.rows() + second.rows(), expected.len() as u64);

    let Some(python) = python() else {
        assert!(
            std::env::var("WALDEN_REQUIRE_LAKE_VENV").is_err(),
            "WALDEN_REQUIRE_LAKE_VENV is set but no venv: run scripts/lake_venv.sh"
        );
        eprintln!("pyiceberg check skipped: no .venv (run scripts/lake_venv.sh)");
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_table.py");
    let warehouse = archiver.lake().location().warehouse_url();
    let out = Command::new(&python)
        .arg(&script)
        .arg(lake_dir.join(walden_archive::config::CATALOG_FILE_NAME))
        .arg(&warehouse)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check_table.py failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("pyiceberg summary: {summary}");

    assert_eq!(summary["rows"], expected.len());
    assert_eq!(summary["distinct_lsns"], expected.len());
    assert_eq!(summary["min_lsn"], expected[0]);
    assert_eq!(summary["max_lsn"], *expected.last().unwrap());
    assert_eq!(summary["format_version"], 2);
    assert_eq!(summary["partition"], serde_json::json!(["day(commit_ts)"]));
    let fields: Vec<&str> = summary["fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
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
            "actor"
        ]
    );
    let data_files: usize = first.batches.iter().chain(&second.batches).map(|b| b.data_files.len()).sum();
    assert_eq!(summary["data_files"], data_files);
    assert_eq!(summary["codecs"], serde_json::json!(["ZSTD"]));
    assert_eq!(summary["files_sorted_by_lsn"], true);
    let snapshots = summary["snapshots"].as_array().unwrap();
    let all_batches: Vec<_> = first.batches.iter().chain(&second.batches).collect();
    assert_eq!(snapshots.len(), all_batches.len());
    let mut rows_so_far = 0;
    for (snap, batch) in snapshots.iter().zip(&all_batches) {
        rows_so_far += batch.rows;
        assert_eq!(snap["id"], batch.snapshot_id);
        assert_eq!(snap["first_lsn"], batch.range.first_lsn);
        assert_eq!(snap["last_lsn"], batch.range.last_lsn);
        assert_eq!(snap["rows_at"], rows_so_far, "time travel to snapshot {}", batch.snapshot_id);
    }
}
