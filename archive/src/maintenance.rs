//! Table maintenance on the embedded catalog: snapshot expiry followed by removal of the files no
//! snapshot references any more, compaction of a partition's small data files into one through a
//! replace snapshot, and schema evolution of the events table.
//!
//! The iceberg crate has no rewrite action, so compaction builds the replace snapshot from its
//! public manifest types: one new manifest listing the compacted file(s) as ADDED, the files they
//! replace as DELETED and every other live file as EXISTING (with its original sequence numbers),
//! a manifest list, the snapshot (`operation: replace`, the same `walden.last-lsn` as before), and
//! new table metadata. The commit is a compare-and-swap of the table's metadata location in the
//! sqlite catalog, exactly what the catalog's own commit does; if another commit won, everything
//! written is removed and nothing changed.
//!
//! All of this runs under the archiver's run lock, so no archive batch is in flight while files
//! are rewritten or removed. On an external (REST) catalog such as R2 Data Catalog the catalog
//! does maintenance itself and these calls refuse to run: deleting files behind its back would
//! break it.

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use iceberg::MetadataLocation;
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::{ArrowRecordBatchStream, FileScanTask};
use iceberg::spec::{
    DataFile, DataFileFormat, Literal, MAIN_BRANCH, ManifestFile, ManifestListWriter, ManifestStatus,
    ManifestWriterBuilder, Operation, PrimitiveLiteral, Snapshot, Summary,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::IcebergWriter;
use object_store::ObjectStoreExt;
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use crate::archiver::{Archiver, day_writer, file_paths};
use crate::error::{ArchiveError, Result};
use crate::events::LSN_FIELD_ID;
use crate::lake::{ARCHIVE_FIRST_LSN_PROPERTY, LAST_LSN_PROPERTY, Lake, OPERATION_COMPACT, OPERATION_PROPERTY};

/// What to expire ([`Archiver::expire_snapshots`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpireOptions {
    /// Snapshots to keep at least, newest first (at least 1: the current one is always kept).
    pub retain_last: usize,
    /// Only expire snapshots older than this (ms since the Unix epoch); `None`: any age.
    pub older_than_ms: Option<i64>,
}

impl Default for ExpireOptions {
    /// Keep the last 10 snapshots, whatever their age.
    fn default() -> Self {
        ExpireOptions { retain_last: 10, older_than_ms: None }
    }
}

/// What [`Archiver::expire_snapshots`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Ids of the snapshots removed from the table metadata.
    pub expired_snapshot_ids: Vec<i64>,
    /// Files deleted because nothing references them any more (data files only compaction had
    /// replaced, manifests, manifest lists, old metadata files).
    pub removed_files: Vec<String>,
}

/// How to compact ([`Archiver::compact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// Data files smaller than this are candidates, and the rewritten files are rolled at this
    /// size (default 128 MiB).
    pub target_file_bytes: u64,
    /// A partition is compacted when it has at least this many candidates (default 2).
    pub min_input_files: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions { target_file_bytes: 128 << 20, min_input_files: 2 }
    }
}

/// What [`Archiver::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Partitions (`commit_ts` days since the epoch) rewritten.
    pub partitions: Vec<i32>,
    /// Data files replaced.
    pub input_files: Vec<String>,
    /// Data files written.
    pub output_files: Vec<String>,
    /// Rows rewritten (the same number went in and came out).
    pub rows: u64,
    /// The replace snapshot, if anything was compacted.
    pub snapshot_id: Option<i64>,
}

/// A data file live in the current snapshot, with what its manifest entry says about it.
#[derive(Debug, Clone)]
struct LiveFile {
    data_file: DataFile,
    snapshot_id: i64,
    sequence_number: i64,
    file_sequence_number: Option<i64>,
}

impl LiveFile {
    fn lsn_lower_bound(&self) -> Option<i64> {
        match self.data_file.lower_bounds().get(&LSN_FIELD_ID).map(|d| d.literal()) {
            Some(PrimitiveLiteral::Long(v)) => Some(*v),
            _ => None,
        }
    }

    fn day(&self) -> Option<i32> {
        match self.data_file.partition().fields().first() {
            Some(Some(Literal::Primitive(PrimitiveLiteral::Int(day)))) => Some(*day),
            _ => None,
        }
    }
}

impl Archiver {
    /// Expires snapshots (keeping `retain_last` and anything newer than `older_than_ms`), then
    /// deletes the files no remaining snapshot references. Time travel to an expired snapshot is
    /// no longer possible; the current data is untouched. Embedded catalog only.
    pub fn expire_snapshots(&self, options: ExpireOptions) -> Result<ExpireReport> {
        let _run = self.lock_run();
        let lake = self.lake();
        lake.ensure_embedded("snapshot expiry")?;
        self.block_on(async {
            let table = lake.load_table().await?;
            let before: HashSet<i64> = table.metadata().snapshots().map(|s| s.snapshot_id()).collect();
            if before.len() > options.retain_last.max(1) {
                let tx = Transaction::new(&table);
                let action = tx
                    .expire_snapshots()
                    .retain_last(options.retain_last.max(1))
                    .expire_older_than_ms(options.older_than_ms.unwrap_or(i64::MAX));
                action.apply(tx)?.commit(lake.catalog()).await?;
            }
            let table = lake.load_table().await?;
            let after: HashSet<i64> = table.metadata().snapshots().map(|s| s.snapshot_id()).collect();
            let mut expired_snapshot_ids: Vec<i64> = before.difference(&after).copied().collect();
            expired_snapshot_ids.sort_unstable();
            let removed_files = lake.remove_unreferenced_files().await?;
            Ok(ExpireReport { expired_snapshot_ids, removed_files })
        })
    }

    /// Rewrites each partition's small data files (below `target_file_bytes`, when there are at
    /// least `min_input_files` of them) into as few files as the target allows, rows sorted by
    /// LSN, and commits the result as one replace snapshot: the same rows, fewer files. The
    /// replaced files stay until their snapshots expire ([`Archiver::expire_snapshots`]).
    /// Embedded catalog only.
    pub fn compact(&self, options: CompactOptions) -> Result<CompactReport> {
        let _run = self.lock_run();
        let lake = self.lake();
        lake.ensure_embedded("compaction")?;
        self.block_on(lake.compact(options))
    }

    /// Adds an optional column to the events table: a metadata-only change (a new schema);
    /// files written before read it as null, files written after carry it (null unless a later
    /// version of Walden fills it). Embedded or external catalog.
    pub fn add_column(&self, name: &str, field_type: iceberg::spec::PrimitiveType, doc: Option<&str>) -> Result<()> {
        let _run = self.lock_run();
        let lake = self.lake();
        self.block_on(async {
            let table = lake.load_table().await?;
            let field_type = iceberg::spec::Type::Primitive(field_type);
            let column = match doc {
                Some(doc) => {
                    iceberg::transaction::AddColumn::builder().name(name).field_type(field_type).doc(doc).build()
                }
                None => iceberg::transaction::AddColumn::optional(name, field_type),
            };
            let tx = Transaction::new(&table);
            tx.update_schema().add_column(column).apply(tx)?.commit(lake.catalog()).await?;
            Ok(())
        })
    }

    /// Deletes files under the table location that no snapshot references (what a crashed
    /// batch or commit left, or what expiry released). Embedded catalog only.
    pub fn remove_unreferenced_files(&self) -> Result<Vec<String>> {
        let _run = self.lock_run();
        let lake = self.lake();
        lake.ensure_embedded("removing unreferenced files")?;
        self.block_on(lake.remove_unreferenced_files())
    }
}

impl Lake {
    /// Every live data file of the current snapshot.
    async fn live_files(&self, table: &Table) -> Result<Vec<LiveFile>> {
        let Some(snapshot) = table.metadata().current_snapshot() else { return Ok(Vec::new()) };
        let list = table.manifest_list_reader(snapshot).load().await?;
        let mut files = Vec::new();
        for manifest_file in list.entries() {
            let manifest = manifest_file.load_manifest(table.file_io()).await?;
            for entry in manifest.entries() {
                if !entry.is_alive() {
                    continue;
                }
                let (Some(snapshot_id), Some(sequence_number)) = (entry.snapshot_id, entry.sequence_number) else {
                    return Err(ArchiveError::Inconsistent(format!(
                        "manifest entry of {} has no snapshot id or sequence number",
                        entry.data_file().file_path()
                    )));
                };
                files.push(LiveFile {
                    data_file: entry.data_file().clone(),
                    snapshot_id,
                    sequence_number,
                    file_sequence_number: entry.file_sequence_number,
                });
            }
        }
        Ok(files)
    }

    async fn compact(&self, options: CompactOptions) -> Result<CompactReport> {
        let table = self.load_table().await?;
        let metadata = table.metadata();
        let Some(parent) = metadata.current_snapshot().cloned() else { return Ok(CompactReport::default()) };
        let live = self.live_files(&table).await?;
        let mut by_day: BTreeMap<i32, Vec<LiveFile>> = BTreeMap::new();
        for file in &live {
            let day = file.day().ok_or_else(|| {
                ArchiveError::Inconsistent(format!("data file {} has no day partition", file.data_file.file_path()))
            })?;
            if file.data_file.file_size_in_bytes() < options.target_file_bytes {
                by_day.entry(day).or_default().push(file.clone());
            }
        }
        by_day.retain(|_, files| files.len() >= options.min_input_files.max(2));
        if by_day.is_empty() {
            return Ok(CompactReport::default());
        }

        let mut report = CompactReport::default();
        let mut added: Vec<DataFile> = Vec::new();
        let mut replaced: HashSet<String> = HashSet::new();
        let result = async {
            for (day, mut files) in by_day {
                // Files of one partition cover disjoint LSN ranges (one file per day per batch),
                // so reading them in order of their lowest LSN gives rows in LSN order.
                files.sort_by_key(|f| f.lsn_lower_bound());
                let (written, rows) = self.rewrite_partition(&table, day, &files, options.target_file_bytes).await?;
                report.partitions.push(day);
                report.rows += rows;
                for f in &files {
                    replaced.insert(f.data_file.file_path().to_string());
                    report.input_files.push(f.data_file.file_path().to_string());
                }
                report.output_files.extend(file_paths(&written));
                added.extend(written);
            }
            let snapshot_id = self.commit_replace(&table, &parent, &live, &replaced, added.clone()).await?;
            report.snapshot_id = Some(snapshot_id);
            Ok::<_, ArchiveError>(())
        }
        .await;
        if let Err(e) = result {
            for file in &added {
                if let Err(err) = table.file_io().delete(file.file_path()).await {
                    tracing::warn!(error = %err, path = file.file_path(), "cannot remove a file of a failed compaction");
                }
            }
            return Err(e);
        }
        tracing::info!(
            partitions = report.partitions.len(),
            inputs = report.input_files.len(),
            outputs = report.output_files.len(),
            rows = report.rows,
            "compacted the archive"
        );
        Ok(report)
    }

    /// Reads `files` (in order) and writes their rows into new files of partition `day`.
    async fn rewrite_partition(
        &self,
        table: &Table,
        day: i32,
        files: &[LiveFile],
        target_file_bytes: u64,
    ) -> Result<(Vec<DataFile>, u64)> {
        let roll_at_bytes = usize::try_from(target_file_bytes).unwrap_or(usize::MAX);
        let prefix = "walden-compact".to_string();
        let mut writer = day_writer(table, day, prefix, uuid::Uuid::new_v4(), roll_at_bytes).await?;
        let mut rows = 0u64;
        let mut last_lsn: Option<i64> = None;
        let expected_rows: u64 = files.iter().map(|f| f.data_file.record_count()).sum();
        for file in files {
            let mut batches = read_data_file(table, &file.data_file)?;
            while let Some(batch) = batches.try_next().await? {
                check_lsn_order(&batch, day, &mut last_lsn)?;
                rows += batch.num_rows() as u64;
                writer.write(batch).await?;
            }
        }
        let written = writer.close().await?;
        let written_rows: u64 = written.iter().map(|f| f.record_count()).sum();
        if rows != expected_rows || written_rows != rows {
            return Err(ArchiveError::Inconsistent(format!(
                "partition {day}: the manifests list {expected_rows} rows, {rows} were read and {written_rows} written"
            )));
        }
        Ok((written, rows))
    }

    /// Commits a replace snapshot: `added` in, `replaced` out, every other live file kept.
    async fn commit_replace(
        &self,
        table: &Table,
        parent: &Snapshot,
        live: &[LiveFile],
        replaced: &HashSet<String>,
        added: Vec<DataFile>,
    ) -> Result<i64> {
        let commit = ReplaceCommit::new(table, parent);
        let (manifest_file, totals) = commit.write_manifest(live, replaced, added).await?;
        commit.write_manifest_list(manifest_file).await?;
        let snapshot = commit.snapshot(&totals);
        self.swap_in(&commit, snapshot).await
    }

    /// Writes table metadata with `snapshot` as the main branch's head and points the catalog at
    /// it; if another commit moved the table first, removes every file `commit` wrote.
    async fn swap_in(&self, commit: &ReplaceCommit<'_>, snapshot: Snapshot) -> Result<i64> {
        let (metadata, file_io) = (commit.table.metadata(), commit.table.file_io());
        let current_location = commit.table.metadata_location_result()?.to_string();
        let new_metadata = metadata
            .clone()
            .into_builder(Some(current_location.clone()))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)?
            .build()?
            .metadata;
        let new_location =
            MetadataLocation::from_str(&current_location)?.with_next_version().with_new_metadata(&new_metadata);
        new_metadata.write_to(file_io, &new_location).await?;
        let new_location = new_location.to_string();
        let swapped = self.swap_metadata_location(&current_location, &new_location).await;
        match swapped {
            Ok(true) => Ok(commit.snapshot_id),
            other => {
                for path in [&new_location, &commit.list_path, &commit.manifest_path] {
                    if let Err(e) = file_io.delete(path).await {
                        tracing::warn!(error = %e, path = %path, "cannot remove a file of a failed compaction commit");
                    }
                }
                match other {
                    Err(e) => Err(e),
                    _ => Err(ArchiveError::Inconsistent(
                        "the events table changed while compacting; nothing was committed".into(),
                    )),
                }
            }
        }
    }

    /// Deletes the files under the table location that neither the current metadata, its
    /// metadata log, nor any snapshot (manifest list, manifests, live data files) references.
    pub async fn remove_unreferenced_files(&self) -> Result<Vec<String>> {
        let table = self.load_table().await?;
        let metadata = table.metadata();
        let mut referenced: HashSet<String> = HashSet::new();
        referenced.insert(table.metadata_location_result()?.to_string());
        referenced.extend(metadata.metadata_log().iter().map(|l| l.metadata_file.clone()));
        for snapshot in metadata.snapshots() {
            referenced.insert(snapshot.manifest_list().to_string());
            let list = table.manifest_list_reader(snapshot).load().await?;
            for manifest_file in list.entries() {
                referenced.insert(manifest_file.manifest_path.clone());
                let manifest = manifest_file.load_manifest(table.file_io()).await?;
                for entry in manifest.entries() {
                    // A DELETED entry names a file only an older snapshot had.
                    if entry.status != ManifestStatus::Deleted {
                        referenced.insert(entry.data_file().file_path().to_string());
                    }
                }
            }
        }
        let prefix = self.storage().key(metadata.location().trim_end_matches('/'))?;
        let root = self.location().store_root();
        let objects: Vec<_> = self.store().list(Some(&prefix)).try_collect().await?;
        let mut removed = Vec::new();
        for object in objects {
            let path = format!("{root}{}", object.location);
            let name = object.location.filename().unwrap_or_default();
            let ours = name.ends_with(".parquet") || name.ends_with(".avro") || name.ends_with(".metadata.json");
            if !ours || referenced.contains(&path) {
                continue;
            }
            match self.store().delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(file = %path, "removed an unreferenced lake file");
            removed.push(path);
        }
        removed.sort();
        Ok(removed)
    }
}

/// Record, byte and file counts of some data files (for a snapshot summary).
#[derive(Debug, Clone, Copy, Default)]
struct FileTotals {
    records: u64,
    bytes: u64,
    files: u64,
}

impl FileTotals {
    fn add(&mut self, file: &DataFile) {
        self.records += file.record_count();
        self.bytes += file.file_size_in_bytes();
        self.files += 1;
    }
}

/// What a replace snapshot adds, deletes and keeps.
#[derive(Debug, Default)]
struct ReplaceTotals {
    added: FileTotals,
    deleted: FileTotals,
    kept: FileTotals,
}

/// A replace snapshot being built over `parent`: its ids and the metadata files it writes.
struct ReplaceCommit<'a> {
    table: &'a Table,
    parent: &'a Snapshot,
    snapshot_id: i64,
    sequence_number: i64,
    manifest_path: String,
    list_path: String,
}

impl<'a> ReplaceCommit<'a> {
    fn new(table: &'a Table, parent: &'a Snapshot) -> ReplaceCommit<'a> {
        let metadata = table.metadata();
        let location = metadata.location().trim_end_matches('/');
        let snapshot_id = loop {
            let id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
            if id != 0 && metadata.snapshot_by_id(id).is_none() {
                break id;
            }
        };
        let commit_uuid = uuid::Uuid::new_v4();
        ReplaceCommit {
            table,
            parent,
            snapshot_id,
            sequence_number: metadata.next_sequence_number(),
            manifest_path: format!("{location}/metadata/{commit_uuid}-m0.avro"),
            list_path: format!("{location}/metadata/snap-{snapshot_id}-1-{commit_uuid}.avro"),
        }
    }

    /// The snapshot's one manifest: `added` as ADDED, the `replaced` live files as DELETED, every
    /// other live file as EXISTING (with its original sequence numbers). Refuses a replacement
    /// that would change the number of rows.
    async fn write_manifest(
        &self,
        live: &[LiveFile],
        replaced: &HashSet<String>,
        added: Vec<DataFile>,
    ) -> Result<(ManifestFile, ReplaceTotals)> {
        let metadata = self.table.metadata();
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().as_ref().clone();
        let output = self.table.file_io().new_output(&self.manifest_path)?;
        let mut manifest = ManifestWriterBuilder::new(output, Some(self.snapshot_id), schema, spec).build_v2_data();
        let mut totals = ReplaceTotals::default();
        for file in added {
            totals.added.add(&file);
            manifest.add_file(file, self.sequence_number)?;
        }
        for file in live {
            let file_sequence_number = Some(file.file_sequence_number.unwrap_or(file.sequence_number));
            if replaced.contains(file.data_file.file_path()) {
                totals.deleted.add(&file.data_file);
                manifest.add_delete_file(file.data_file.clone(), file.sequence_number, file_sequence_number)?;
            } else {
                totals.kept.add(&file.data_file);
                manifest.add_existing_file(
                    file.data_file.clone(),
                    file.snapshot_id,
                    file.sequence_number,
                    file_sequence_number,
                )?;
            }
        }
        if totals.deleted.records != totals.added.records {
            return Err(ArchiveError::Inconsistent(format!(
                "compaction would replace {} rows with {}",
                totals.deleted.records, totals.added.records
            )));
        }
        Ok((manifest.write_manifest_file().await?, totals))
    }

    /// The snapshot's manifest list, holding `manifest_file`.
    async fn write_manifest_list(&self, manifest_file: ManifestFile) -> Result<()> {
        let mut list = ManifestListWriter::v2(
            self.table.file_io().new_output(&self.list_path)?.writer().await?,
            self.snapshot_id,
            Some(self.parent.snapshot_id()),
            self.sequence_number,
        );
        list.add_manifests(std::iter::once(manifest_file))?;
        list.close().await?;
        Ok(())
    }

    /// The replace snapshot: the parent's archive position (the same rows), Iceberg's summary
    /// counts.
    fn snapshot(&self, totals: &ReplaceTotals) -> Snapshot {
        let parent_props = &self.parent.summary().additional_properties;
        let mut props = std::collections::HashMap::new();
        for key in [LAST_LSN_PROPERTY, ARCHIVE_FIRST_LSN_PROPERTY] {
            if let Some(v) = parent_props.get(key) {
                props.insert(key.to_string(), v.clone());
            }
        }
        props.insert(OPERATION_PROPERTY.to_string(), OPERATION_COMPACT.to_string());
        let ReplaceTotals { added, deleted, kept } = totals;
        for (k, v) in [
            ("added-data-files", added.files),
            ("deleted-data-files", deleted.files),
            ("added-records", added.records),
            ("deleted-records", deleted.records),
            ("added-files-size", added.bytes),
            ("removed-files-size", deleted.bytes),
            ("total-records", kept.records + added.records),
            ("total-files-size", kept.bytes + added.bytes),
            ("total-data-files", kept.files + added.files),
            ("total-delete-files", 0),
            ("total-position-deletes", 0),
            ("total-equality-deletes", 0),
        ] {
            props.insert(k.to_string(), v.to_string());
        }
        let now_ms = i64::try_from(walden_wal::clock::now_ms()).unwrap_or(i64::MAX);
        Snapshot::builder()
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(Some(self.parent.snapshot_id()))
            .with_sequence_number(self.sequence_number)
            .with_timestamp_ms(now_ms.max(self.parent.timestamp_ms() + 1))
            .with_manifest_list(self.list_path.clone())
            .with_summary(Summary { operation: Operation::Replace, additional_properties: props })
            .with_schema_id(self.table.metadata().current_schema_id())
            .build()
    }
}

/// The record batches of one data file, every column of the current schema.
fn read_data_file(table: &Table, file: &DataFile) -> Result<ArrowRecordBatchStream> {
    let schema = table.metadata().current_schema().clone();
    let field_ids: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
    let task = FileScanTask::builder()
        .with_file_size_in_bytes(file.file_size_in_bytes())
        .with_start(0)
        .with_length(file.file_size_in_bytes())
        .with_record_count(Some(file.record_count()))
        .with_data_file_path(file.file_path().to_string())
        .with_data_file_format(DataFileFormat::Parquet)
        .with_schema(schema)
        .with_project_field_ids(field_ids)
        .with_case_sensitive(true)
        .build();
    let reader = ArrowReaderBuilder::new(table.file_io().clone(), iceberg::Runtime::current())
        .with_data_file_concurrency_limit(1)
        .build();
    let tasks = Box::pin(futures::stream::iter([Ok(task)]));
    Ok(reader.read(tasks)?.stream())
}

/// Checks that the LSNs of `batch` follow `last_lsn` (the last LSN read so far in partition
/// `day`), rising: compaction must not reorder or duplicate rows.
fn check_lsn_order(batch: &RecordBatch, day: i32, last_lsn: &mut Option<i64>) -> Result<()> {
    let lsns = batch
        .column_by_name("lsn")
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>())
        .ok_or_else(|| ArchiveError::Inconsistent("compaction read a batch without lsn".into()))?;
    for &lsn in lsns.values() {
        if let Some(last) = last_lsn.filter(|&l| l >= lsn) {
            return Err(ArchiveError::Inconsistent(format!(
                "partition {day}: LSN {lsn} after LSN {last} in the files to compact"
            )));
        }
        *last_lsn = Some(lsn);
    }
    Ok(())
}
