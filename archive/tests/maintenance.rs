//! Table maintenance: compaction (a replace snapshot with the same rows in fewer files), snapshot
//! expiry with removal of unreferenced files, schema evolution, and the sweep of files a failed
//! commit left behind. Every result is read back through the iceberg scan and through hot+cold
//! replay, which must not change.

use std::path::Path;
use std::time::Duration;

use arrow_array::{Array, Int64Array};
use futures::TryStreamExt;
use walden_archive::{Archiver, CompactOptions, ExpireOptions, LakeConfig, OPERATION_COMPACT, OPERATION_PROPERTY};
use walden_cdc::{Event, SubscriptionOptions};
use walden_engine::{Database, Lsn};

mod common;
use common::{Fixture, files_under, fixture};

fn commit(db: &Database, from: u32, n: u32) -> Lsn {
    let mut last = 0;
    for i in from..from + n {
        let mut t = db.begin();
        t.set_actor("m");
        t.insert("items", &i.to_be_bytes(), format!("{{\"i\":{i}}}").as_bytes()).unwrap();
        if i % 3 == 0 {
            t.update("items", &i.to_be_bytes(), b"\x00old", b"\x00new").unwrap();
        }
        last = t.commit().unwrap();
    }
    db.wal().seal_active_segment().unwrap();
    last
}

/// LSNs of every row, in scan order per file, plus the number of data files the scan planned.
fn scan_lsns(archiver: &Archiver, snapshot_id: Option<i64>) -> (Vec<Lsn>, usize) {
    archiver.block_on(async {
        let table = archiver.lake().load_table().await.unwrap();
        let mut scan = table.scan().select_all();
        if let Some(id) = snapshot_id {
            scan = scan.snapshot_id(id);
        }
        let scan = scan.build().unwrap();
        let files = scan.plan_files().await.unwrap().try_collect::<Vec<_>>().await.unwrap().len();
        let batches: Vec<_> = scan.to_arrow().await.unwrap().try_collect().await.unwrap();
        let mut lsns = Vec::new();
        for b in batches {
            let col = b.column_by_name("lsn").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
            lsns.extend(col.values().iter().map(|&v| v as Lsn));
        }
        lsns.sort_unstable();
        (lsns, files)
    })
}

fn replay_all(archiver: &Archiver, end: Lsn) -> Vec<Event> {
    let mut stream = archiver
        .cdc()
        .subscribe(
            SubscriptionOptions { from_lsn: 1, end_lsn: Some(end), ..Default::default() }
                .with_transaction_control(true),
        )
        .unwrap();
    let mut events = Vec::new();
    while let Some(e) = stream.next_timeout(Duration::from_millis(200)) {
        events.push(e.unwrap());
    }
    assert!(stream.is_ended());
    events
}

#[test]
fn compaction_rewrites_small_files_into_one_and_changes_no_row() {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    let mut lake = LakeConfig::local_dir(&lake_dir).unwrap();
    lake.target_batch_bytes = 1; // one snapshot (and one small file) per segment
    let archiver = Archiver::open(db.clone(), lake).unwrap();
    let mut end = 0;
    for round in 0..6 {
        end = commit(&db, round * 40, 40);
        archiver.archive_sealed().unwrap();
    }
    let events_before = replay_all(&archiver, end);
    let (lsns_before, files_before) = scan_lsns(&archiver, None);
    assert!(files_before >= 6, "{files_before} files");
    let snapshot_before =
        archiver.block_on(archiver.lake().load_table()).unwrap().metadata().current_snapshot_id().unwrap();
    let last_before = archiver.last_archived_lsn().unwrap();

    let report = archiver.compact(CompactOptions::default()).unwrap();
    assert_eq!(report.input_files.len(), files_before);
    assert_eq!(report.output_files.len(), 1, "one day, far below the target size");
    assert_eq!(report.rows as usize, lsns_before.len());

    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    let current = table.metadata().current_snapshot().unwrap();
    assert_eq!(Some(current.snapshot_id()), report.snapshot_id);
    assert_eq!(current.summary().operation, iceberg::spec::Operation::Replace);
    assert_eq!(
        current.summary().additional_properties.get(OPERATION_PROPERTY).map(String::as_str),
        Some(OPERATION_COMPACT)
    );
    assert_eq!(current.parent_snapshot_id(), Some(snapshot_before));
    assert_eq!(archiver.last_archived_lsn().unwrap(), last_before, "the archive position is unchanged");

    let (lsns_after, files_after) = scan_lsns(&archiver, None);
    assert_eq!(lsns_after, lsns_before);
    assert_eq!(files_after, 1);
    // Time travel to before the compaction still sees the old files.
    assert_eq!(scan_lsns(&archiver, Some(snapshot_before)), (lsns_before.clone(), files_before));
    assert_eq!(replay_all(&archiver, end), events_before);

    // Archiving goes on after a compaction; a second compaction merges the new small file in.
    let end = commit(&db, 1000, 40);
    archiver.archive_sealed().unwrap();
    let events_before = replay_all(&archiver, end);
    let (lsns_before, _) = scan_lsns(&archiver, None);
    let files_before = scan_lsns(&archiver, None).1;
    let report = archiver.compact(CompactOptions::default()).unwrap();
    assert!(files_before >= 2);
    assert_eq!(report.input_files.len(), files_before, "the compacted file and the new small ones");
    let (lsns, files) = scan_lsns(&archiver, None);
    assert_eq!(files, 1);
    assert_eq!(lsns, lsns_before);
    assert_eq!(replay_all(&archiver, end), events_before);
    // Nothing left to compact.
    assert_eq!(archiver.compact(CompactOptions::default()).unwrap().snapshot_id, None);
}

#[test]
fn expiry_keeps_the_last_snapshots_and_removes_what_nothing_references() {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    let mut lake = LakeConfig::local_dir(&lake_dir).unwrap();
    lake.target_batch_bytes = 1;
    let archiver = Archiver::open(db.clone(), lake).unwrap();
    let mut end = 0;
    for round in 0..5 {
        end = commit(&db, round * 30, 30);
        archiver.archive_sealed().unwrap();
    }
    archiver.compact(CompactOptions::default()).unwrap();
    let (lsns, _) = scan_lsns(&archiver, None);
    let events = replay_all(&archiver, end);
    let data_before = files_under(&lake_dir, ".parquet");
    let snapshots_before = archiver.block_on(archiver.lake().load_table()).unwrap().metadata().snapshots().count();
    assert!(snapshots_before >= 6);

    let report = archiver.expire_snapshots(ExpireOptions { retain_last: 1, older_than_ms: None }).unwrap();
    assert_eq!(report.expired_snapshot_ids.len(), snapshots_before - 1);
    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);
    // The compacted-away data files are gone, the live one stays; old manifests and lists too.
    let data_after = files_under(&lake_dir, ".parquet");
    assert_eq!(data_after.len(), 1);
    assert_eq!(
        data_before.len() - data_after.len(),
        report.removed_files.iter().filter(|f| f.ends_with(".parquet")).count()
    );
    assert!(report.removed_files.iter().any(|f| f.ends_with(".avro")));
    for f in &report.removed_files {
        assert!(!Path::new(f.trim_start_matches("file://")).exists(), "{f} still exists");
    }
    assert_eq!(scan_lsns(&archiver, None).0, lsns);
    assert_eq!(replay_all(&archiver, end), events);
    use walden_cdc::ColdSource;
    let range = archiver.cold_source().range().unwrap().unwrap();
    assert_eq!(range.first_lsn, 1, "the archive's first LSN survives expiry");

    // A second run finds nothing more to do.
    let again = archiver.expire_snapshots(ExpireOptions { retain_last: 1, older_than_ms: None }).unwrap();
    assert!(again.expired_snapshot_ids.is_empty() && again.removed_files.is_empty(), "{again:?}");
    // Keeping by age: nothing is older than the epoch.
    let none = archiver.expire_snapshots(ExpireOptions { retain_last: 1, older_than_ms: Some(0) }).unwrap();
    assert!(none.expired_snapshot_ids.is_empty());
}

#[test]
fn an_added_column_is_metadata_only_and_old_files_read_under_it() {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    let archiver = Archiver::open(db.clone(), LakeConfig::local_dir(&lake_dir).unwrap()).unwrap();
    commit(&db, 0, 40);
    archiver.archive_sealed().unwrap();
    let data_before = files_under(&lake_dir, ".parquet");
    archiver.add_column("region", iceberg::spec::PrimitiveType::String, Some("where the change was made")).unwrap();
    assert_eq!(files_under(&lake_dir, ".parquet"), data_before, "no data file rewritten");
    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    let field = table.metadata().current_schema().field_by_name("region").unwrap().clone();
    assert!(!field.required);
    assert_eq!(field.doc.as_deref(), Some("where the change was made"));

    // New files are written under the new schema; old and new read together, `region` null.
    let end = commit(&db, 40, 40);
    archiver.archive_sealed().unwrap();
    let batches = archiver.block_on(async {
        let table = archiver.lake().load_table().await.unwrap();
        let scan = table.scan().select_all().build().unwrap();
        scan.to_arrow().await.unwrap().try_collect::<Vec<_>>().await.unwrap()
    });
    let mut rows = 0;
    for b in &batches {
        let region = b.column_by_name("region").expect("region column");
        assert_eq!(region.null_count(), b.num_rows());
        rows += b.num_rows();
    }
    assert_eq!(rows, scan_lsns(&archiver, None).0.len());
    // Replay and compaction work across both schemas.
    let events = replay_all(&archiver, end);
    archiver.compact(CompactOptions::default()).unwrap();
    assert_eq!(replay_all(&archiver, end), events);
}

#[test]
fn files_of_a_commit_that_never_happened_are_swept_at_open() {
    let Fixture { db, lake_dir, dir: _dir } = fixture();
    let archiver = Archiver::open(db.clone(), LakeConfig::local_dir(&lake_dir).unwrap()).unwrap();
    commit(&db, 0, 20);
    archiver.archive_sealed().unwrap();
    let rows = scan_lsns(&archiver, None).0;
    let table = archiver.block_on(archiver.lake().load_table()).unwrap();
    let metadata_dir = Path::new(table.metadata().location().trim_start_matches("file://")).join("metadata");
    let before_meta = files_under(&metadata_dir, "");
    // What a crash between writing metadata and the catalog commit leaves behind.
    let stray = [
        metadata_dir.join("00099-0b7e2d2a-0000-4000-8000-000000000000.metadata.json"),
        metadata_dir.join("0b7e2d2a-0000-4000-8000-000000000001-m0.avro"),
        metadata_dir.join("snap-42-1-0b7e2d2a-0000-4000-8000-000000000002.avro"),
    ];
    for p in &stray {
        std::fs::write(p, b"left over").unwrap();
    }
    let foreign = metadata_dir.join("README.txt");
    std::fs::write(&foreign, b"not ours").unwrap();
    drop(archiver);
    let archiver = Archiver::open(db.clone(), LakeConfig::local_dir(&lake_dir).unwrap()).unwrap();
    for p in &stray {
        assert!(!p.exists(), "{} was not swept", p.display());
    }
    assert!(foreign.exists(), "files Walden did not write are left alone");
    std::fs::remove_file(&foreign).unwrap();
    assert_eq!(files_under(&metadata_dir, ""), before_meta);
    assert_eq!(scan_lsns(&archiver, None).0, rows);
}
