//! The archive against a real S3 API: moto's server (from the venv `scripts/lake_venv.sh` makes)
//! on loopback, started per test by `tests/py/moto_guard.py` on a port the kernel picks and
//! stopped when the test ends (also on failure, and if the test process dies), path-style
//! requests, dummy keys.
//!
//! - the life-cycle suite of `tests/py/readers.rs` on an `s3://` lake: rows on three days, an
//!   added column, compaction and expiry on S3, each step checked by pyiceberg (pyarrow's S3
//!   client) and DuckDB (httpfs) reading the table from moto;
//! - hot + cold replay: after a checkpoint trimmed the WAL, [`Archiver::cdc`] replays the archive
//!   on S3 into the WAL exactly like a pure hot replay taken before (from the start, filtered,
//!   from a BEGIN or from inside a transaction in the archive, from the archive/WAL boundary),
//!   also after compaction and expiry on S3 and from a freshly opened archiver;
//! - a data file larger than the part size goes up as a multipart upload with equal parts (the
//!   `-N` ETag), is read back by the iceberg scan and by both readers;
//! - conditional puts: every lake file is created with `If-None-Match: *`, so a second create of
//!   the same key fails with a typed error against moto, at the object store, through the iceberg
//!   storage (small and multipart writers) and on the archive's own table files.
//!
//! With `WALDEN_REQUIRE_LAKE_VENV=1` (the test command sets it) a missing venv fails the tests;
//! without it they say they skipped.

#[path = "py/readers.rs"]
mod readers;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use iceberg::ErrorKind;
use iceberg::io::Storage;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use readers::{Env, Moto};
use walden_archive::storage::ObjectStoreStorage;
use walden_archive::{Archiver, CompactOptions, ExpireOptions, LakeConfig};
use walden_cdc::{Cdc, Event, Filter, SubscriptionOptions};
use walden_engine::{Config, Database, EngineRecord, Lsn, SyncMode, WalConfig};

mod common;
use common::{Fixture, collect, fixture, row_change_lsns, scanned_lsns};

const BUCKET: &str = "walden-lake";
const PART_BYTES: usize = 5 << 20;

/// The faked-clock writer process of [`readers::Env::write_on_day`]; a no-op in a normal run.
#[test]
fn faked_clock_writer() {
    readers::faked_clock_child();
}

fn s3_lake(moto: &Moto, dir: &Path, prefix: &str) -> LakeConfig {
    LakeConfig {
        s3: moto.s3_options(),
        multipart_part_bytes: PART_BYTES,
        catalog_path: Some(dir.join(format!("{prefix}-catalog.db"))),
        ..LakeConfig::new(format!("s3://{BUCKET}/{prefix}"))
    }
}

fn start(what: &str) -> Option<(Env, Moto)> {
    let env = Env::find(what)?;
    let moto = Moto::start(&env.python, &[BUCKET]);
    Some((env, moto))
}

#[test]
fn pyiceberg_and_duckdb_read_an_s3_lake_through_its_life_cycle() {
    let Some((env, moto)) = start("the pyiceberg / DuckDB check of an S3 lake") else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = s3_lake(&moto, dir.path(), "suite");
    let lake =
        readers::SuiteLake { catalog_db: config.catalog_path.clone().unwrap(), config, s3: Some(moto.reader_spec()) };
    readers::life_cycle(&env, dir.path(), lake);
}

#[test]
fn hot_and_cold_replay_from_s3_equals_a_pure_hot_replay() {
    let Some((_env, moto)) = start("hot + cold replay from S3") else { return };
    let Fixture { db, dir, .. } = fixture();
    readers::commit_rows(&db, 0, 300);
    // A few more in the active segment: the replay ends in the live WAL.
    let mut end = 0;
    for i in 0..5u32 {
        let mut t = db.begin();
        t.insert("items", format!("live-{i}").as_bytes(), b"{}").unwrap();
        end = t.commit().unwrap();
    }
    db.flush().unwrap();
    let mut lake = s3_lake(&moto, dir.path(), "replay");
    lake.target_batch_bytes = 16 << 10; // several snapshots, several small files
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    let report = archiver.archive_sealed().unwrap();
    assert!(report.batches.len() >= 3, "{} batches", report.batches.len());
    let archived = report.last_archived_lsn.unwrap();
    assert!(archived < end);

    // Starts in the middle of the archive: at a BEGIN, and at the second change of a transaction
    // (the stream gets the whole transaction from the archive and delivers it from there on).
    let begin_with_changes = |from: Lsn, at_least: u32| {
        db.read_log(from)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| matches!(&e.record, EngineRecord::Begin(b) if b.change_count >= at_least))
            .unwrap()
            .lsn
    };
    let middle = begin_with_changes(archived / 2, 1);
    let inside = begin_with_changes(middle, 2) + 2;
    assert!(middle > 1 && inside < archived, "{middle} {inside} {archived}");
    let bounded = |from: Lsn| SubscriptionOptions { from_lsn: from, end_lsn: Some(end), ..Default::default() };
    let options = [
        ("everything, with BEGIN/COMMIT", bounded(1).with_transaction_control(true)),
        ("from LSN 0 (the oldest available)", bounded(0)),
        ("table blobs", bounded(1).with_filter(Filter::all().tables(["blobs"]))),
        ("from a transaction in the middle of the archive", bounded(middle).with_transaction_control(true)),
        ("from inside an archived transaction", bounded(inside).with_transaction_control(true)),
        ("from the archive/WAL boundary", bounded(archived + 1).with_transaction_control(true)),
    ];
    let hot = Cdc::new(db.clone());
    let expected: Vec<Vec<Event>> = options.iter().map(|(_, o)| collect(&hot, o.clone())).collect();
    assert!(expected.iter().all(|e| !e.is_empty()));

    let checkpoint = db.checkpoint().unwrap();
    assert!(!checkpoint.removed_segments.is_empty());
    let oldest = db.wal().oldest_lsn();
    assert!(oldest > 1 && oldest <= archived + 1, "oldest local LSN {oldest}, archived {archived}");
    assert!(hot.subscribe(SubscriptionOptions::from_lsn(1)).is_err(), "the hot log alone no longer has LSN 1");

    let check = |archiver: &Archiver, when: &str| {
        let tiered = archiver.cdc();
        for ((name, o), want) in options.iter().zip(&expected) {
            let got = collect(&tiered, o.clone());
            assert_eq!(got.len(), want.len(), "{when}, {name}: event count");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g, w, "{when}, {name}: event at LSN {}", w.lsn());
            }
        }
    };
    check(&archiver, "as archived");

    // Compaction and expiry on S3 change no event.
    let compact = archiver.compact(CompactOptions::default()).unwrap();
    assert!(compact.input_files.len() >= 3, "{compact:?}");
    check(&archiver, "after compaction");
    let expired = archiver.expire_snapshots(ExpireOptions { retain_last: 1, older_than_ms: None }).unwrap();
    assert_eq!(expired.expired_snapshot_ids.len(), report.batches.len());
    for f in expired.removed_files.iter().filter(|f| f.ends_with(".parquet")) {
        let key = archiver.lake().storage().key(f).unwrap();
        assert!(matches!(
            archiver.block_on(archiver.lake().store().head(&key)),
            Err(object_store::Error::NotFound { .. })
        ));
    }
    assert_eq!(expired.removed_files.iter().filter(|f| f.ends_with(".parquet")).count(), compact.input_files.len());
    check(&archiver, "after expiry");

    // A fresh archiver finds everything on S3 again.
    drop(archiver);
    let archiver = Archiver::open(db.clone(), lake).unwrap();
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(archived));
    check(&archiver, "after reopening");
}

/// Incompressible bytes (xorshift), so the Parquet file stays larger than one part.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn archives_to_s3_with_multipart_uploads() {
    let Some((env, moto)) = start("the S3 multipart test") else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = Config { wal: WalConfig { sync_mode: SyncMode::None, ..WalConfig::default() }, ..Config::default() };
    let db = Arc::new(Database::open(dir.path().join("db"), config).unwrap());
    for i in 0..200u64 {
        let mut t = db.begin();
        t.insert("blobs", &i.to_be_bytes(), &noise(i + 1, 64 << 10)).unwrap();
        t.commit().unwrap();
    }
    db.wal().seal_active_segment().unwrap();
    let end = db.segments().iter().filter(|s| s.sealed).map(|s| s.last_lsn).max().unwrap();

    let lake = s3_lake(&moto, dir.path(), "multipart");
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.last_archived_lsn, Some(end));
    assert_eq!(report.rows(), 200);
    let batch = &report.batches[0];
    assert!(batch.data_bytes > PART_BYTES as u64, "{} bytes: too small for a multipart upload", batch.data_bytes);
    assert_eq!(batch.data_files.len(), 1);
    let file = &batch.data_files[0];
    assert!(file.starts_with(&format!("s3://{BUCKET}/multipart/walden/events/data/")), "{file}");
    // S3 gives multipart objects an ETag ending in "-<part count>".
    let meta = archiver.block_on(archiver.lake().store().head(&archiver.lake().storage().key(file).unwrap())).unwrap();
    assert_eq!(meta.size, batch.data_bytes);
    let parts = (batch.data_bytes as usize).div_ceil(PART_BYTES);
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with(&format!("-{parts}")), "ETag {etag} of a {parts}-part upload");

    let expected = row_change_lsns(&db);
    assert_eq!(scanned_lsns(&archiver), expected);
    assert!(archiver.archive_sealed().unwrap().batches.is_empty());

    // Both independent readers read the multipart file from S3.
    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    let seen = env.check_table(&serde_json::json!({
        "catalog_db": lake.catalog_path,
        "warehouse": archiver.lake().location().warehouse_url(),
        "ident": "walden.events",
        "metadata_location": table.metadata_location().unwrap(),
        "days": [],
        "gone_snapshot_ids": [],
        "added_column": null,
        "s3": moto.reader_spec(),
    }));
    for reader in ["pyiceberg", "duckdb"] {
        let lsns: Vec<Lsn> = seen[reader]["lsns"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(lsns, expected, "{reader}");
    }
    assert_eq!(seen["pyiceberg"]["digest"], seen["duckdb"]["digest"]);

    // A fresh archiver reads its position back from the metadata on S3.
    drop(archiver);
    let archiver = Archiver::open(db.clone(), lake).unwrap();
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end));
    assert!(archiver.archive_sealed().unwrap().batches.is_empty());
    assert_eq!(scanned_lsns(&archiver), expected);
}

/// The error a second create must give: typed, with object_store's `AlreadyExists` as source.
fn assert_already_exists(result: iceberg::Result<()>, what: &str) {
    let e = result.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{what}: {e}");
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<object_store::Error>());
    assert!(matches!(source, Some(object_store::Error::AlreadyExists { .. })), "{what}: {e:?}");
}

#[test]
fn every_lake_file_is_created_once() {
    let Some((_env, moto)) = start("the S3 conditional-put test") else { return };
    let Fixture { db, dir, .. } = fixture();
    readers::commit_rows(&db, 0, 40);
    let lake = s3_lake(&moto, dir.path(), "once");
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    let report = archiver.archive_sealed().unwrap();
    let lsns = scanned_lsns(&archiver);
    assert_eq!(lsns.len() as u64, report.rows());
    let store: Arc<dyn ObjectStore> = archiver.lake().store().clone();

    archiver.block_on(async {
        // moto honours If-None-Match: the object store's create fails the second time.
        let key = object_store::path::Path::from("once/raw.bin");
        let create = || PutOptions::from(PutMode::Create);
        store.put_opts(&key, PutPayload::from_static(b"first"), create()).await.unwrap();
        let second = store.put_opts(&key, PutPayload::from_static(b"second"), create()).await;
        assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
        assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap().as_ref(), b"first");

        // The iceberg storage creates every file: a second write of a path is refused with a
        // typed error, by `write` and by the writers (small, and multipart before it uploads).
        let storage = ObjectStoreStorage::new(store.clone(), format!("s3://{BUCKET}/"), PART_BYTES);
        let small = format!("s3://{BUCKET}/once/small.bin");
        storage.write(&small, Bytes::from_static(b"one")).await.unwrap();
        assert_already_exists(storage.write(&small, Bytes::from_static(b"two")).await, "second write");
        let mut w = storage.writer(&small).await.unwrap();
        w.write(Bytes::from_static(b"three")).await.unwrap();
        assert_already_exists(w.close().await, "second writer");
        assert_eq!(storage.read(&small).await.unwrap().as_ref(), b"one");

        let big = format!("s3://{BUCKET}/once/big.bin");
        let data = Bytes::from(noise(7, PART_BYTES + 1000));
        let mut w = storage.writer(&big).await.unwrap();
        w.write(data.clone()).await.unwrap();
        w.close().await.unwrap();
        let meta = store.head(&storage.key(&big).unwrap()).await.unwrap();
        assert!(meta.e_tag.unwrap_or_default().trim_matches('"').ends_with("-2"), "a 2-part upload");
        let mut w = storage.writer(&big).await.unwrap();
        assert_already_exists(w.write(Bytes::from(noise(8, PART_BYTES + 1000))).await, "second multipart writer");
        assert_eq!(storage.read(&big).await.unwrap(), data);

        // The archive's own files: a second writer re-creating the table's current metadata or a
        // data file through the table's FileIO is refused, and the table reads as before.
        let table = archiver.lake().load_table().await.unwrap();
        let metadata = table.metadata_location().unwrap().to_string();
        let before = table.file_io().new_input(&metadata).unwrap().read().await.unwrap();
        let out = table.file_io().new_output(&metadata).unwrap();
        assert_already_exists(out.write(Bytes::from_static(b"{}")).await, "metadata JSON");
        let data_file = &report.batches[0].data_files[0];
        let out = table.file_io().new_output(data_file).unwrap();
        assert_already_exists(out.write(Bytes::from_static(b"PAR1")).await, "data file");
        assert_eq!(table.file_io().new_input(&metadata).unwrap().read().await.unwrap(), before);
    });
    assert_eq!(scanned_lsns(&archiver), lsns);
    // Archiving goes on (every new file has a fresh name).
    let end = readers::commit_rows(&db, 40, 10);
    assert_eq!(archiver.archive_sealed().unwrap().batches.len(), 1);
    let all: Vec<Lsn> = readers::expected_rows(&db, end).iter().map(|r| r.lsn).collect();
    assert!(all.len() > lsns.len());
    assert_eq!(scanned_lsns(&archiver), all);
}
