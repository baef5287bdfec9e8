//! Independent readers on a local (`file://`) lake: pyiceberg 0.12 (through the embedded sqlite
//! catalog) and DuckDB 1.4 (`iceberg_scan` on the metadata JSON), from the venv
//! `scripts/lake_venv.sh` makes, check a table the archiver wrote, evolved, compacted and
//! expired: row counts and content, schema, `day(commit_ts)` partition pruning over rows on three
//! days, snapshot properties, time travel, the replace snapshot of a compaction, expiry, and a
//! column added later (null in older files). See `tests/py/readers.rs` for the suite and how rows
//! get onto earlier days.
//!
//! With `WALDEN_REQUIRE_LAKE_VENV=1` (the test command sets it) a missing venv fails the test;
//! without it the test says it skipped.

mod common;
#[path = "py/readers.rs"]
mod readers;

use walden_archive::LakeConfig;
use walden_archive::config::CATALOG_FILE_NAME;

/// The faked-clock writer process of [`readers::Env::write_on_day`]; a no-op in a normal run.
#[test]
fn faked_clock_writer() {
    readers::faked_clock_child();
}

#[test]
fn pyiceberg_and_duckdb_read_a_local_lake_through_its_life_cycle() {
    let Some(env) = readers::Env::find("the pyiceberg / DuckDB check of a local lake") else { return };
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    // Each batch's files are written from many small chunks (7 rows), so the readers also check
    // files assembled that way (the S3 suite keeps the defaults). One part per batch: the life
    // cycle counts one file per day and batch.
    let config = LakeConfig { write_threads: 1, chunk_rows: 7, ..LakeConfig::local_dir(&lake_dir).unwrap() };
    let lake = readers::SuiteLake { config, catalog_db: lake_dir.join(CATALOG_FILE_NAME), s3: None };
    readers::life_cycle(&env, dir.path(), lake);
}

#[test]
fn pyiceberg_and_duckdb_read_batches_written_as_parallel_parts_like_one() {
    let Some(env) = readers::Env::find("the pyiceberg / DuckDB check of parallel parts") else { return };
    let dir = tempfile::tempdir().unwrap();
    readers::parts_read_like_one(&env, dir.path());
}
