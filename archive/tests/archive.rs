//! The archiver end to end: an engine log archived into a local (file://) and a memory lake, read
//! back through the iceberg crate's own scan; idempotent reruns; injected failures at every step
//! of a batch; tiering (checkpoints delete only archived segments); refusing to archive across a
//! gap.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, LargeBinaryArray, StringArray};
use std::time::{Duration, Instant};

use walden_archive::testing::fault::injected_fault;
use walden_archive::{
    ArchiveError, ArchivedRange, Archiver, AutoArchiveOptions, FIRST_LSN_PROPERTY, Fault, FaultPoint,
    LAST_LSN_PROPERTY, LakeConfig,
};
use walden_engine::{Column, Database, Lsn};

mod common;
use common::{Fixture, begin_with_metadata, change_lsns, fixture, lake_config, parquet_files, scan, scanned_lsns};

/// Commits `n` transactions of mixed content starting at row number `start`; returns the last
/// commit LSN.
fn commit_mixed(db: &Database, start: u32, n: u32) -> Lsn {
    let mut last = 0;
    for i in start..start + n {
        let mut t = begin_with_metadata(db, i);
        let key = i.to_be_bytes();
        let json = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40));
        t.insert("users", &key, json.as_bytes()).unwrap();
        if i % 3 == 0 {
            t.update("blobs", &key, &[0xff, 0x00, i as u8], &[0xfe, i as u8]).unwrap();
        }
        if i % 5 == 0 {
            t.delete("users", &key, json.as_bytes()).unwrap();
        }
        if i % 50 == 7 {
            t.create_table(&format!("t{i}"), 1, &[Column::new("id", "int", false)]).unwrap();
        }
        last = t.commit().unwrap();
    }
    db.flush().unwrap();
    last
}

/// Last LSN of the last sealed segment.
fn sealed_end(db: &Database) -> Lsn {
    db.segments().iter().filter(|s| s.sealed).map(|s| s.last_lsn).max().unwrap()
}

fn snapshot_ranges(archiver: &Archiver) -> Vec<ArchivedRange> {
    archiver.block_on(async {
        let table = archiver.lake().load_table().await.unwrap();
        let mut snaps: Vec<_> = table.metadata().snapshots().cloned().collect();
        snaps.sort_by_key(|s| s.sequence_number());
        snaps.iter().map(|s| ArchivedRange::of_snapshot(s).unwrap().unwrap()).collect()
    })
}

/// Files referenced by the table's current snapshot.
fn referenced_files(archiver: &Archiver) -> BTreeSet<std::path::PathBuf> {
    archiver.block_on(async {
        let table = archiver.lake().load_table().await.unwrap();
        let Some(snapshot) = table.metadata().current_snapshot() else { return BTreeSet::new() };
        let list = table.manifest_list_reader(snapshot).load().await.unwrap();
        let mut out = BTreeSet::new();
        for m in list.entries() {
            let manifest = m.load_manifest(table.file_io()).await.unwrap();
            for e in manifest.entries() {
                let url = url::Url::parse(e.file_path()).unwrap();
                out.insert(url.to_file_path().unwrap());
            }
        }
        out
    })
}

#[test]
fn archives_an_engine_log_and_reruns_add_nothing() {
    let f = fixture();
    commit_mixed(&f.db, 0, 120);
    f.db.wal().seal_active_segment().unwrap();
    let end = sealed_end(&f.db);
    let expected = change_lsns(&f.db, 1, end);

    let archiver = Archiver::open(f.db.clone(), lake_config(&f)).unwrap();
    assert_eq!(archiver.last_archived_lsn().unwrap(), None);
    assert_eq!(f.db.retain_from(), Some(1), "the archiver holds the WAL from the start");
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.last_archived_lsn, Some(end));
    assert_eq!(report.retain_from, Some(end + 1));
    assert_eq!(f.db.retain_from(), Some(end + 1));
    assert_eq!(report.rows(), expected.len() as u64);
    assert_eq!(report.batches.len(), 1, "everything fits one batch at the default target");
    assert!(report.batches[0].segments > 1);
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end));

    // Read back: every change exactly once, rows in LSN order inside each file.
    assert_eq!(scanned_lsns(&archiver), expected);
    for batch in scan(&archiver) {
        let col = batch.column_by_name("lsn").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        assert!(col.values().windows(2).all(|w| w[0] < w[1]), "rows sorted by LSN");
    }
    assert_eq!(snapshot_ranges(&archiver), vec![ArchivedRange { first_lsn: 1, last_lsn: end }]);

    // Column contents: JSON in the text columns, other payloads in the binary ones, metadata.
    let batches = scan(&archiver);
    let mut seen_json_insert = false;
    let mut seen_binary_update = false;
    let mut seen_schema = false;
    for batch in &batches {
        let s =
            |name: &str| batch.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let b = |name: &str| {
            batch.column_by_name(name).unwrap().as_any().downcast_ref::<LargeBinaryArray>().unwrap().clone()
        };
        let (op, table, after, before, after_bin, before_bin, actor) =
            (s("op"), s("table_name"), s("after"), s("before"), b("after_bin"), b("before_bin"), s("actor"));
        for i in 0..batch.num_rows() {
            assert!(actor.value(i).starts_with("user-"));
            match (op.value(i), table.value(i)) {
                ("insert", "users") => {
                    let v: serde_json::Value = serde_json::from_str(after.value(i)).unwrap();
                    assert!(v["n"].is_u64());
                    assert!(before.is_null(i) && after_bin.is_null(i));
                    seen_json_insert = true;
                }
                ("update", "blobs") => {
                    assert!(after.is_null(i) && before.is_null(i));
                    assert_eq!(before_bin.value(i)[..2], [0xff, 0x00]);
                    assert_eq!(after_bin.value(i)[0], 0xfe);
                    seen_binary_update = true;
                }
                ("delete", "users") => assert!(after.is_null(i) && !before.is_null(i)),
                ("schema", t) => {
                    assert!(t.starts_with('t'));
                    let v: serde_json::Value = serde_json::from_str(after.value(i)).unwrap();
                    assert_eq!(v["schemaVersion"], 1);
                    assert_eq!(v["change"]["kind"], "create_table");
                    seen_schema = true;
                }
                other => panic!("unexpected row {other:?}"),
            }
        }
    }
    assert!(seen_json_insert && seen_binary_update && seen_schema);

    // Rerunning, and reopening, adds nothing.
    let again = archiver.archive_sealed().unwrap();
    assert!(again.batches.is_empty());
    assert_eq!(again.last_archived_lsn, Some(end));
    drop(archiver);
    let archiver = Archiver::open(f.db.clone(), lake_config(&f)).unwrap();
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end));
    assert!(archiver.archive_sealed().unwrap().batches.is_empty());
    assert_eq!(scanned_lsns(&archiver), expected);

    // More commits: the next snapshot starts right after the previous one.
    commit_mixed(&f.db, 120, 40);
    f.db.wal().seal_active_segment().unwrap();
    let end2 = sealed_end(&f.db);
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.batches.len(), 1);
    assert_eq!(report.batches[0].range, ArchivedRange { first_lsn: end + 1, last_lsn: end2 });
    assert_eq!(snapshot_ranges(&archiver).len(), 2);
    assert_eq!(scanned_lsns(&archiver), change_lsns(&f.db, 1, end2));

    // The summary properties are there under their documented names.
    let props = archiver.block_on(async {
        let table = archiver.lake().load_table().await.unwrap();
        table.metadata().current_snapshot().unwrap().summary().additional_properties.clone()
    });
    assert_eq!(props.get(FIRST_LSN_PROPERTY), Some(&(end + 1).to_string()));
    assert_eq!(props.get(LAST_LSN_PROPERTY), Some(&end2.to_string()));
}

#[test]
fn small_batch_target_makes_one_snapshot_per_batch() {
    let f = fixture();
    commit_mixed(&f.db, 0, 120);
    f.db.wal().seal_active_segment().unwrap();
    let end = sealed_end(&f.db);
    let sealed = f.db.segments().iter().filter(|s| s.sealed).count();
    let config = LakeConfig { target_batch_bytes: 1, ..lake_config(&f) };
    let archiver = Archiver::open(f.db.clone(), config).unwrap();
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.batches.len(), sealed, "one segment per batch");
    let ranges = snapshot_ranges(&archiver);
    assert_eq!(ranges.len(), sealed);
    assert_eq!(ranges[0].first_lsn, 1);
    assert_eq!(ranges.last().unwrap().last_lsn, end);
    assert!(ranges.windows(2).all(|w| w[1].first_lsn == w[0].last_lsn + 1), "ranges are contiguous: {ranges:?}");
    assert_eq!(scanned_lsns(&archiver), change_lsns(&f.db, 1, end));
}

/// A batch of several segments split into parts written on parallel threads: several data
/// files, LSN ranges that do not overlap, every change exactly once, one snapshot.
#[test]
fn a_batch_split_into_parallel_parts_reads_back_like_one() {
    let f = fixture();
    commit_mixed(&f.db, 0, 120);
    f.db.wal().seal_active_segment().unwrap();
    let end = sealed_end(&f.db);
    let sealed = f.db.segments().iter().filter(|s| s.sealed).count();
    assert!(sealed >= 3, "the fixture makes several segments");
    // Chunks of 5 rows: each part's reader hands its writer many chunks.
    let config = LakeConfig { write_threads: 3, min_part_bytes: 1, chunk_rows: 5, ..lake_config(&f) };
    let archiver = Archiver::open(f.db.clone(), config).unwrap();
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.batches.len(), 1);
    let batch = &report.batches[0];
    assert!(batch.data_files.len() >= 3, "one file per part (and day): {:?}", batch.data_files);
    assert_eq!(snapshot_ranges(&archiver), vec![ArchivedRange { first_lsn: 1, last_lsn: end }]);
    assert_eq!(scanned_lsns(&archiver), change_lsns(&f.db, 1, end));
    let mut ranges: Vec<(i64, i64)> = scan(&archiver)
        .iter()
        .map(|b| {
            let col = b.column_by_name("lsn").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
            assert!(col.values().windows(2).all(|w| w[0] < w[1]), "rows sorted by LSN");
            (col.value(0), col.value(col.len() - 1))
        })
        .collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "parts do not overlap: {ranges:?}");
    assert_eq!(parquet_files(&f.lake_dir), referenced_files(&archiver));
}

/// The (lsn, txn_id) of the first row of a Parquet data file.
fn first_row(path: &std::path::Path) -> (Lsn, Lsn) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let batch = reader.next().expect("a data file has rows").unwrap();
    let long = |name: &str| {
        let col = batch.column_by_name(name).unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        Lsn::try_from(col.value(0)).unwrap()
    };
    (long("lsn"), long("txn_id"))
}

/// A lone segment still splits into parts: they are cut by LSN, also inside transactions (a part
/// that starts there reads its transaction from the BEGIN and archives only its own LSNs), and
/// every change is archived exactly once.
#[test]
fn a_lone_segment_splits_into_parts_cut_inside_transactions() {
    let mut parts_starting_inside_a_transaction = 0;
    for write_threads in 2..=6 {
        let f = fixture();
        commit_mixed(&f.db, 0, 12);
        f.db.wal().seal_active_segment().unwrap();
        assert_eq!(f.db.segments().iter().filter(|s| s.sealed).count(), 1, "the log fits one segment");
        let end = sealed_end(&f.db);
        let config = LakeConfig { write_threads, min_part_bytes: 1, chunk_rows: 4, ..lake_config(&f) };
        let archiver = Archiver::open(f.db.clone(), config).unwrap();
        let report = archiver.archive_sealed().unwrap();
        assert_eq!(report.batches.len(), 1);
        let files = &report.batches[0].data_files;
        assert!(files.len() >= write_threads, "one file per part (and day): {files:?}");
        assert_eq!(snapshot_ranges(&archiver), vec![ArchivedRange { first_lsn: 1, last_lsn: end }]);
        assert_eq!(scanned_lsns(&archiver), change_lsns(&f.db, 1, end));
        for path in parquet_files(&f.lake_dir) {
            let (lsn, txn_id) = first_row(&path);
            // Changes of the same transaction before this file's first row: another part has them.
            if !change_lsns(&f.db, txn_id, lsn - 1).is_empty() {
                parts_starting_inside_a_transaction += 1;
            }
        }
    }
    assert!(parts_starting_inside_a_transaction > 0, "some cut falls inside a transaction");
}

#[test]
fn a_failure_at_any_step_neither_loses_nor_duplicates() {
    for (point, crash, write_threads) in
        [FaultPoint::AfterRead, FaultPoint::WhileWriting, FaultPoint::AfterDataFilesWritten, FaultPoint::AfterCommit]
            .into_iter()
            .flat_map(|p| [(p, false), (p, true)])
            .flat_map(|(p, c)| [(p, c, 1), (p, c, 3)])
    {
        {
            let f = fixture();
            let lake_config =
                |f: &Fixture| LakeConfig { write_threads, min_part_bytes: 1, chunk_rows: 7, ..lake_config(f) };
            commit_mixed(&f.db, 0, 60);
            f.db.wal().seal_active_segment().unwrap();
            let end = sealed_end(&f.db);
            let archiver = Archiver::open(f.db.clone(), lake_config(&f)).unwrap();
            archiver.inject_fault(Some(Fault { point, crash }));
            let err = archiver.archive_sealed().unwrap_err();
            assert_eq!(injected_fault(&err), Some(point), "{point:?}: {err}");
            assert_eq!(f.db.retain_from(), Some(1), "{point:?}: the horizon did not move");
            let committed = point == FaultPoint::AfterCommit;
            assert_eq!(archiver.last_archived_lsn().unwrap(), committed.then_some(end), "{point:?}");
            let on_disk = parquet_files(&f.lake_dir);
            match (point, crash) {
                (FaultPoint::AfterRead, _) if write_threads == 1 => assert!(on_disk.is_empty(), "nothing written"),
                (FaultPoint::AfterRead | FaultPoint::WhileWriting, false) => {
                    assert!(on_disk.is_empty(), "cleaned up in process")
                }
                // A crash leaves what the other parts completed, referenced by nothing.
                (FaultPoint::AfterRead | FaultPoint::WhileWriting, true) => {
                    assert!(referenced_files(&archiver).is_empty())
                }
                (FaultPoint::AfterDataFilesWritten, false) => assert!(on_disk.is_empty(), "cleaned up in process"),
                (FaultPoint::AfterDataFilesWritten, true) => {
                    assert!(!on_disk.is_empty(), "a crash leaves the files");
                    assert!(referenced_files(&archiver).is_empty());
                }
                (FaultPoint::AfterCommit, _) => assert_eq!(on_disk, referenced_files(&archiver)),
            }

            // The rerun (here by a fresh archiver, as after a restart) completes the job exactly
            // once, and opening removed what the crash left behind.
            drop(archiver);
            let archiver = Archiver::open(f.db.clone(), lake_config(&f)).unwrap();
            assert_eq!(parquet_files(&f.lake_dir), referenced_files(&archiver), "{point:?}: no orphan left");
            assert_eq!(f.db.retain_from(), Some(if committed { end + 1 } else { 1 }), "{point:?}");
            let report = archiver.archive_sealed().unwrap();
            assert_eq!(report.batches.len(), usize::from(!committed), "{point:?}");
            assert_eq!(report.last_archived_lsn, Some(end));
            assert_eq!(f.db.retain_from(), Some(end + 1));
            assert_eq!(scanned_lsns(&archiver), change_lsns(&f.db, 1, end), "{point:?} crash={crash}");
            assert_eq!(snapshot_ranges(&archiver), vec![ArchivedRange { first_lsn: 1, last_lsn: end }]);
            assert_eq!(parquet_files(&f.lake_dir), referenced_files(&archiver));
        }
    }
}

#[test]
fn checkpoints_delete_only_archived_segments() {
    let f = fixture();
    let archiver = Archiver::open(f.db.clone(), lake_config(&f)).unwrap();
    commit_mixed(&f.db, 0, 80);

    // Nothing archived yet: the archiver's horizon keeps every segment.
    let before = f.db.segments();
    assert!(before.iter().filter(|s| s.sealed).count() >= 3);
    let report = f.db.checkpoint().unwrap();
    assert!(report.removed_segments.is_empty());
    assert_eq!(report.horizon, Some(1));

    let archived = archiver.archive_sealed().unwrap().last_archived_lsn.unwrap();
    // More commits after archiving: sealed but unarchived segments appear.
    commit_mixed(&f.db, 80, 80);
    let unarchived: Vec<_> = f.db.segments().into_iter().filter(|s| s.sealed && s.first_lsn > archived).collect();
    assert!(!unarchived.is_empty());

    let all_changes = change_lsns(&f.db, 1, Lsn::MAX);
    let report = f.db.checkpoint().unwrap();
    assert_eq!(report.horizon, Some(archived + 1));
    assert!(!report.removed_segments.is_empty());
    assert!(report.removed_segments.iter().all(|s| s.last_lsn <= archived), "only archived segments go");
    let left = f.db.segments();
    assert_eq!(left[0].first_lsn, archived + 1, "everything after the archive stays");
    for s in &unarchived {
        assert!(left.contains(s), "unarchived segment {} was deleted", s.first_lsn);
    }
    assert_eq!(f.db.wal().oldest_lsn(), archived + 1);

    // Archiving the rest lets the next checkpoint go further; the lake has every change although
    // the WAL no longer does.
    let archived2 = archiver.archive_sealed().unwrap().last_archived_lsn.unwrap();
    assert!(archived2 > archived);
    f.db.checkpoint().unwrap();
    assert_eq!(f.db.wal().oldest_lsn(), archived2 + 1);
    let expected: Vec<Lsn> = all_changes.into_iter().filter(|&l| l <= archived2).collect();
    assert_eq!(scanned_lsns(&archiver), expected);
    assert_eq!(*expected.last().unwrap(), archived2 - 1, "a segment ends with a COMMIT");
}

#[test]
fn refuses_to_archive_across_a_gap() {
    let f = fixture();
    commit_mixed(&f.db, 0, 40);
    {
        let archiver = Archiver::open(f.db.clone(), lake_config(&f)).unwrap();
        archiver.archive_sealed().unwrap();
    }
    // Behind the archiver's back: drop its horizon and trim past what it archived.
    let archived_end = sealed_end(&f.db);
    commit_mixed(&f.db, 40, 60);
    f.db.set_retain_from(None).unwrap();
    f.db.set_checkpoint_lsn(sealed_end(&f.db)).unwrap();
    f.db.checkpoint().unwrap();
    assert!(f.db.wal().oldest_lsn() > archived_end + 1);
    match Archiver::open(f.db.clone(), lake_config(&f)) {
        Err(ArchiveError::Gap { next_lsn, oldest_available }) => {
            assert_eq!(next_lsn, archived_end + 1);
            assert_eq!(oldest_available, f.db.wal().oldest_lsn());
        }
        other => panic!("expected a gap error, got {other:?}"),
    }
}

#[test]
fn memory_lake_works_for_tests() {
    let f = fixture();
    commit_mixed(&f.db, 0, 30);
    f.db.wal().seal_active_segment().unwrap();
    let end = sealed_end(&f.db);
    let archiver = Archiver::open(f.db.clone(), LakeConfig::new("memory://unit")).unwrap();
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.last_archived_lsn, Some(end));
    assert_eq!(scanned_lsns(&archiver), change_lsns(&f.db, 1, end));
    assert!(!f.lake_dir.exists(), "nothing on disk");
}

#[test]
fn auto_archive_follows_sealed_segments_until_stopped() {
    let f = fixture();
    let config = LakeConfig { target_batch_bytes: 16 << 10, ..lake_config(&f) };
    let archiver = Arc::new(Archiver::open(f.db.clone(), config).unwrap());
    let auto = archiver.start_auto(AutoArchiveOptions { max_age_ms: 100, poll_interval_ms: 20 }).unwrap();
    commit_mixed(&f.db, 0, 100);
    f.db.wal().seal_active_segment().unwrap();
    let end = sealed_end(&f.db);
    let expected = change_lsns(&f.db, 1, end);
    // The table shows the archived LSN as soon as the run commits; the run's status a moment
    // later, once archive_sealed has returned: wait for both.
    let deadline = Instant::now() + Duration::from_secs(60);
    while archiver.last_archived_lsn().unwrap() != Some(end) || auto.status().rows < expected.len() as u64 {
        assert!(Instant::now() < deadline, "auto-archive did not catch up: {:?}", auto.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = auto.status();
    assert!(status.runs >= 1, "{status:?}");
    assert_eq!((status.failures, status.rows), (0, expected.len() as u64), "{status:?}");
    auto.stop();
    assert_eq!(scanned_lsns(&archiver), expected);
    assert_eq!(f.db.retain_from(), Some(end + 1));

    // Stopped: the hook is gone and nothing more is archived.
    commit_mixed(&f.db, 100, 20);
    f.db.wal().seal_active_segment().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end));
}
