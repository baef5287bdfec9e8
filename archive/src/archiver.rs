//! The archiver: sealed WAL segments → Parquet files → one Iceberg snapshot per batch, then the
//! engine's retain-from horizon moves past what is safely in the lake.
//!
//! Crash safety rests on one rule: the lake's current snapshot says how far archiving got
//! ([`crate::LAST_LSN_PROPERTY`]), and that is re-read before every run. A run that dies before
//! its catalog commit left at most unreferenced files (removed when the failure is seen in
//! process); a run that dies after it only has to move the horizon, which the next run does.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use object_store::ObjectStore;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use walden_cdc::{Cdc, DecodeErrorPolicy, SubscriptionOptions};
use walden_engine::{Database, Lsn, SegmentInfo};

use crate::cold::LakeColdSource;
use crate::config::LakeConfig;
use crate::error::{ArchiveError, Result};
use crate::events::{ColumnBytes, EventColumns, EventRow};
use crate::lake::{
    ARCHIVE_FIRST_LSN_PROPERTY, ArchivedRange, FIRST_LSN_PROPERTY, LAST_LSN_PROPERTY, Lake, OPERATION_ARCHIVE,
    OPERATION_PROPERTY,
};

/// zstd level of the Parquet files: 1, the fastest. With dictionaries off for the opaque
/// columns (below) the archive benchmark's JSON rows came to 0.163 × their WAL bytes at level 1,
/// against 0.178 × at level 3 with dictionaries on, and 8 % more events per CPU-second
/// (docs/bench-log/2026-12-02-archive-parallel-parts.md).
const ZSTD_LEVEL: i32 = 1;
/// Row-group bounds of the Parquet files: small enough that an LSN-range read (replay from the
/// archive) skips most of a file by row-group statistics, large enough for good compression.
const ROW_GROUP_MAX_ROWS: usize = 64 * 1024;
const ROW_GROUP_MAX_BYTES: usize = 32 << 20;
/// Chunks in flight from a part's reader to its writer: a part holds a few chunks in memory
/// (plus the Parquet row group being encoded), whatever the size of the batch.
const CHUNKS_IN_FLIGHT: usize = 4;

/// What one archived batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// LSNs the batch covers (recorded on its snapshot).
    pub range: ArchivedRange,
    /// Rows appended (row changes and schema changes).
    pub rows: u64,
    /// WAL segments in the batch.
    pub segments: usize,
    /// Parquet files written (one per `commit_ts` day and part, see
    /// [`LakeConfig::write_threads`]), in LSN order.
    pub data_files: Vec<String>,
    /// Bytes of those files.
    pub data_bytes: u64,
    /// Id of the snapshot the batch created.
    pub snapshot_id: i64,
}

/// What [`Archiver::archive_sealed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The batches, in LSN order.
    pub batches: Vec<BatchReport>,
    /// Last archived LSN after the run (`None`: nothing archived yet).
    pub last_archived_lsn: Option<Lsn>,
    /// The engine's retain-from horizon after the run.
    pub retain_from: Option<Lsn>,
}

impl ArchiveReport {
    /// Rows appended over all batches.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.rows).sum()
    }
}

/// Archives a database's sealed WAL segments into the lake's `events` table.
///
/// The API is blocking (it drives its own tokio runtime): do not call it from async code. One
/// archiver per lake table: the table refuses conflicting commits, but two archivers would race.
pub struct Archiver {
    db: Arc<Database>,
    cdc: Cdc,
    lake: Arc<Lake>,
    runtime: Arc<tokio::runtime::Runtime>,
    #[cfg(feature = "testing")]
    pub(crate) faults: crate::testing::fault::FaultSlot,
    /// Serialises archive runs of this archiver.
    run: Mutex<()>,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver").field("lake", &self.lake).finish()
    }
}

impl Archiver {
    /// Opens the lake (creating the table if needed), removes data files a crashed batch left
    /// behind ([`Lake::remove_orphan_data_files`]), reads how far archiving got and holds the
    /// engine's retain-from horizon there, so no unarchived segment can be checkpointed away.
    pub fn open(db: Arc<Database>, config: LakeConfig) -> Result<Archiver> {
        let store = config.location()?.build_store(&config.s3)?;
        Self::open_with_store(db, config, store)
    }

    /// Like [`Archiver::open`] over a given object store (see [`Lake::open_with_store`]).
    pub fn open_with_store(db: Arc<Database>, config: LakeConfig, store: Arc<dyn ObjectStore>) -> Result<Archiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("walden-archive")
            .enable_all()
            .build()?;
        let lake = Arc::new(runtime.block_on(Lake::open_with_store(config, store))?);
        if lake.is_embedded() {
            let orphans = runtime.block_on(lake.remove_unreferenced_files())?;
            if !orphans.is_empty() {
                tracing::warn!(files = orphans.len(), "removed lake files of a batch or commit that never completed");
            }
        }
        let archiver = Archiver {
            cdc: Cdc::new(db.clone()),
            db,
            lake,
            runtime: Arc::new(runtime),
            #[cfg(feature = "testing")]
            faults: Default::default(),
            run: Mutex::new(()),
        };
        let last = archiver.last_archived_lsn()?;
        let next = archiver.next_lsn(last)?;
        archiver.hold_horizon(last, next)?;
        Ok(archiver)
    }

    /// The lake.
    pub fn lake(&self) -> &Arc<Lake> {
        &self.lake
    }

    /// The archive as a CDC cold source (see [`LakeColdSource`]).
    pub fn cold_source(&self) -> Arc<LakeColdSource> {
        Arc::new(LakeColdSource::new(self.lake.clone(), self.runtime.clone()))
    }

    /// CDC over the database and this archive: subscriptions (slot-backed ones too) from LSNs
    /// the local WAL no longer holds replay them from the lake, then continue into the WAL.
    pub fn cdc(&self) -> Cdc {
        Cdc::with_cold_source(self.db.clone(), self.cold_source())
    }

    /// Tells the engine how far the archive reaches: the WAL from `next` on is retained, and
    /// slots no longer pin what the lake holds (`last`).
    fn hold_horizon(&self, last: Option<Lsn>, next: Lsn) -> Result<()> {
        // Order matters for a crash in between: first keep everything unarchived, then release
        // the slots' hold on what is archived.
        self.db.set_retain_from(Some(next))?;
        self.db.set_archived_lsn(last)?;
        Ok(())
    }

    /// The database.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Runs `future` on the archiver's runtime (for callers that want to use [`Archiver::lake`]'s
    /// async API from blocking code).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Serialises archive runs and maintenance of this archiver.
    pub(crate) fn lock_run(&self) -> std::sync::MutexGuard<'_, ()> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last archived LSN, read back from the table's current snapshot.
    pub fn last_archived_lsn(&self) -> Result<Option<Lsn>> {
        self.runtime.block_on(self.lake.last_archived_lsn())
    }

    /// The first LSN to archive after `last`, checked against the local WAL.
    fn next_lsn(&self, last: Option<Lsn>) -> Result<Lsn> {
        let wal = self.db.wal();
        let oldest = wal.oldest_lsn();
        let end = wal.next_lsn();
        match last {
            None => Ok(oldest),
            Some(last) if last >= end => Err(ArchiveError::Inconsistent(format!(
                "the lake is archived up to LSN {last} but the log ends before LSN {end}: wrong lake for this database?"
            ))),
            Some(last) if last + 1 < oldest => Err(ArchiveError::Gap { next_lsn: last + 1, oldest_available: oldest }),
            Some(last) => Ok(last + 1),
        }
    }

    /// Archives every sealed segment not archived yet, in batches of about
    /// [`LakeConfig::target_batch_bytes`] of WAL, one snapshot each, moving the retain-from
    /// horizon after each commit. Idempotent: what is already in the lake is skipped.
    pub fn archive_sealed(&self) -> Result<ArchiveReport> {
        let _run = self.lock_run();
        let mut last = self.last_archived_lsn()?;
        let mut next = self.next_lsn(last)?;
        // Re-assert the horizon (a failed run may have committed without moving it).
        self.hold_horizon(last, next)?;
        let pending: Vec<SegmentInfo> = self
            .db
            .segments()
            .into_iter()
            .filter(|s| s.sealed && s.last_lsn >= s.first_lsn && s.last_lsn >= next)
            .collect();
        let mut report = ArchiveReport::default();
        for batch in plan_batches(&pending, self.lake.config().target_batch_bytes) {
            let range = ArchivedRange { first_lsn: next, last_lsn: batch.last().map_or(next, |s| s.last_lsn) };
            let started = Instant::now();
            let done = self.archive_batch(range, batch)?;
            tracing::info!(
                first_lsn = range.first_lsn,
                last_lsn = range.last_lsn,
                rows = done.rows,
                files = done.data_files.len(),
                bytes = done.data_bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "archived batch"
            );
            last = Some(range.last_lsn);
            next = range.last_lsn + 1;
            self.hold_horizon(last, next)?;
            report.batches.push(done);
        }
        report.last_archived_lsn = last;
        report.retain_from = self.db.retain_from();
        Ok(report)
    }

    /// Archives the LSNs `range` of `segments` as one snapshot: the parts' files, then the commit.
    fn archive_batch(&self, range: ArchivedRange, segments: &[SegmentInfo]) -> Result<BatchReport> {
        debug_assert!(
            segments.first().is_some_and(|s| s.first_lsn <= range.first_lsn)
                && segments.last().is_some_and(|s| s.last_lsn == range.last_lsn),
            "batch {range:?} lies in its segments"
        );
        debug_assert!(
            segments.windows(2).all(|w| w[1].first_lsn == w[0].last_lsn + 1),
            "a batch's segments follow each other"
        );
        let table = self.runtime.block_on(self.lake.load_table())?;
        let written = self.write_parts(&table, range, segments)?;
        let paths = file_paths(&written.files);
        let data_bytes = written.files.iter().map(|f| f.file_size_in_bytes()).sum();
        let snapshot_id = self.runtime.block_on(self.commit_batch(&table, range, written.files, &paths))?;
        Ok(BatchReport {
            range,
            rows: written.rows,
            segments: segments.len(),
            data_files: paths,
            data_bytes,
            snapshot_id,
        })
    }

    /// Writes the batch `range` as parts of about equal WAL bytes on parallel threads (see
    /// [`plan_parts`]); the files of all parts, in LSN order. On failure every file written is
    /// removed again (but for an injected crash, which leaves them as a real one would).
    fn write_parts(
        &self,
        table: &iceberg::table::Table,
        range: ArchivedRange,
        segments: &[SegmentInfo],
    ) -> Result<PartDone> {
        let config = self.lake.config();
        let parts = plan_parts(range, segments, config.write_threads, config.min_part_bytes);
        debug_assert!(
            parts.first().map(|p| p.first_lsn) == Some(range.first_lsn)
                && parts.last().map(|p| p.last_lsn) == Some(range.last_lsn),
            "the parts of batch {range:?} cover it: {parts:?}"
        );
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())?);
        let outcomes = in_parallel(parts, |part| self.archive_part(table, &arrow_schema, part));
        let mut written = PartDone { files: Vec::new(), rows: 0 };
        let mut first_error = None;
        let mut orphans = Vec::new();
        let mut leave_files = false;
        for outcome in outcomes {
            match outcome {
                Ok(mut done) => {
                    written.rows += done.rows;
                    written.files.append(&mut done.files);
                }
                Err(failed) => {
                    let failed = *failed;
                    orphans.extend(failed.written);
                    leave_files |= failed.leave_files;
                    first_error.get_or_insert(failed.error);
                }
            }
        }
        if let Some(e) = first_error {
            if !leave_files {
                orphans.extend(file_paths(&written.files));
                self.runtime.block_on(self.remove_files(&orphans));
            }
            return Err(e);
        }
        Ok(written)
    }

    /// Appends `files` (at `paths`) as one snapshot carrying the batch's LSN range; its id. If
    /// the commit fails, the files are removed unless the lake may still have taken them.
    async fn commit_batch(
        &self,
        table: &iceberg::table::Table,
        range: ArchivedRange,
        files: Vec<DataFile>,
        paths: &[String],
    ) -> Result<i64> {
        #[cfg(feature = "testing")]
        if let Some(f) = self.take_fault(crate::testing::fault::FaultPoint::AfterDataFilesWritten) {
            if !f.crash {
                self.remove_files(paths).await;
            }
            return Err(f.error());
        }
        let archive_first_lsn = self.lake.archived_range().await?.map_or(range.first_lsn, |r| r.first_lsn);
        let properties = HashMap::from([
            (FIRST_LSN_PROPERTY.to_string(), range.first_lsn.to_string()),
            (LAST_LSN_PROPERTY.to_string(), range.last_lsn.to_string()),
            (ARCHIVE_FIRST_LSN_PROPERTY.to_string(), archive_first_lsn.to_string()),
            (OPERATION_PROPERTY.to_string(), OPERATION_ARCHIVE.to_string()),
        ]);
        let tx = Transaction::new(table);
        let tx = tx.fast_append().add_data_files(files).set_snapshot_properties(properties).apply(tx)?;
        let committed = match tx.commit(self.lake.catalog()).await {
            Ok(table) => table,
            Err(e) => {
                self.clean_up_failed_commit(&e, range, paths).await;
                return Err(e.into());
            }
        };
        #[cfg(feature = "testing")]
        if let Some(f) = self.take_fault(crate::testing::fault::FaultPoint::AfterCommit) {
            return Err(f.error());
        }
        Ok(committed.metadata().current_snapshot_id().unwrap_or_default())
    }

    /// After the commit of batch `range` failed with `error`: removes its files at `paths`
    /// unless the lake may have taken them. The outcome may be unknown, so only if the lake did
    /// not move; a REST catalog may still apply a commit whose answer was lost (timeout, 5xx), so
    /// there the files stay unless the catalog refused the commit outright.
    async fn clean_up_failed_commit(&self, error: &iceberg::Error, range: ArchivedRange, paths: &[String]) {
        let refused = error.kind() == iceberg::ErrorKind::CatalogCommitConflicts;
        if self.lake.is_embedded() || refused {
            match self.lake.last_archived_lsn().await {
                Ok(Some(l)) if l >= range.last_lsn => {}
                _ => self.remove_files(paths).await,
            }
        } else {
            tracing::warn!(
                catalog = %self.lake.catalog_uri(),
                files = paths.len(),
                "commit outcome unknown: leaving the batch's data files in place"
            );
        }
    }

    /// Archives one part of a batch into its own files (one per commit day): a reader thread
    /// decodes the part's changes into Arrow chunks while this thread encodes them into Parquet,
    /// through a channel of [`CHUNKS_IN_FLIGHT`] chunks.
    fn archive_part(
        &self,
        table: &iceberg::table::Table,
        arrow_schema: &ArrowSchemaRef,
        part: ArchivedRange,
    ) -> PartResult {
        let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        std::thread::scope(|s| {
            let reader = std::thread::Builder::new()
                .name("archive-reader".into())
                .spawn_scoped(s, move || self.read_chunks(arrow_schema, part, sender))
                .map_err(|e| PartFailure::cleaned_up(ArchiveError::Runtime(e), &[]))?;
            let written = self.runtime.block_on(self.write_chunks(table, part, receiver));
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(ArchiveError::Inconsistent("an archive part's reader panicked".into())));
            match (read, written) {
                (Ok(rows), Ok(files)) => Ok(PartDone { files, rows }),
                // The writer's failure first: the reader then only saw the channel close.
                (_, Err(failed)) => Err(failed),
                (Err(error), Ok(files)) => Err(PartFailure::cleaned_up(error, &files)),
            }
        })
    }

    /// Reads `range` from the WAL and sends its rows as chunks of at most
    /// [`LakeConfig::chunk_rows`] rows of
    /// one commit day each, in LSN order; returns the number of rows.
    fn read_chunks(
        &self,
        schema: &ArrowSchemaRef,
        range: ArchivedRange,
        chunks: tokio::sync::mpsc::Sender<Chunk>,
    ) -> Result<u64> {
        let options = SubscriptionOptions {
            from_lsn: range.first_lsn,
            end_lsn: Some(range.last_lsn),
            include_transaction_control: false,
            include_schema_changes: true,
            decode_error_policy: DecodeErrorPolicy::Stop,
            ..SubscriptionOptions::default()
        };
        let send = |chunk: Chunk| {
            chunks.blocking_send(chunk).map_err(|_| ArchiveError::Inconsistent("the part's writer stopped".into()))
        };
        let chunk_rows = self.lake.config().chunk_rows.max(1);
        let mut stream = self.cdc.subscribe(options)?;
        let mut days: BTreeMap<i32, EventColumns> = BTreeMap::new();
        let mut chunk_bytes = ColumnBytes::default();
        let mut last_lsn = None;
        let mut rows = 0;
        while let Some(event) = stream.try_next() {
            let Some(row) = EventRow::from_event(event?)? else { continue };
            if row.lsn < range.first_lsn {
                return Err(ArchiveError::Inconsistent(format!(
                    "change stream gave LSN {} before the part's first {}",
                    row.lsn, range.first_lsn
                )));
            }
            if row.lsn > range.last_lsn {
                // The part ends inside a transaction, whose rest the stream delivers (it ends
                // streams at transaction ends); the next part archives that. LSNs rise, so
                // every row of the part has been seen.
                break;
            }
            // Files are sorted by LSN, and no LSN is archived twice.
            if let Some(last) = last_lsn.filter(|&last| row.lsn <= last) {
                return Err(ArchiveError::Inconsistent(format!(
                    "change stream delivered LSN {} after LSN {last}",
                    row.lsn
                )));
            }
            last_lsn = Some(row.lsn);
            let day = row.commit_day();
            let columns = match days.entry(day) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => v.insert(EventColumns::new(schema.clone(), chunk_rows, chunk_bytes)?),
            };
            columns.push(&row)?;
            rows += 1;
            if columns.len() >= chunk_rows {
                let full = days.remove(&day).expect("pushed to just now");
                chunk_bytes = full.bytes().with_headroom();
                send(Chunk { day, batch: full.finish()? })?;
            }
        }
        if stream.position() < range.last_lsn {
            return Err(ArchiveError::Inconsistent(format!(
                "change stream stopped at LSN {} before the part's end {}",
                stream.position(),
                range.last_lsn
            )));
        }
        for (day, columns) in days {
            send(Chunk { day, batch: columns.finish()? })?;
        }
        Ok(rows)
    }

    /// Writes the chunks of one part into one Parquet file per commit day, until the reader
    /// closes the channel; on failure returns the files that were completed.
    async fn write_chunks(
        &self,
        table: &iceberg::table::Table,
        range: ArchivedRange,
        mut chunks: tokio::sync::mpsc::Receiver<Chunk>,
    ) -> std::result::Result<Vec<DataFile>, Box<PartFailure>> {
        let mut writers: BTreeMap<i32, DayWriter> = BTreeMap::new();
        let outcome = self.write_days(table, range, &mut chunks, &mut writers).await;
        // The reader stops at its next send.
        drop(chunks);
        let mut first_error = match outcome {
            Ok(()) => None,
            // As a crash would: the open files are never completed.
            Err(Stop { error, crash: true }) => {
                return Err(Box::new(PartFailure { error, written: Vec::new(), leave_files: true }));
            }
            Err(Stop { error, crash: false }) => Some(error),
        };
        let mut files = Vec::new();
        for (_, mut writer) in writers {
            match writer.close().await {
                Ok(mut day_files) => files.append(&mut day_files),
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
        }
        match first_error {
            None => Ok(files),
            Some(error) => Err(PartFailure::cleaned_up(error, &files)),
        }
    }

    /// Writes each chunk into the `writers` of its day (opening them on first use) until the
    /// channel closes or a write fails.
    async fn write_days(
        &self,
        table: &iceberg::table::Table,
        range: ArchivedRange,
        chunks: &mut tokio::sync::mpsc::Receiver<Chunk>,
        writers: &mut BTreeMap<i32, DayWriter>,
    ) -> std::result::Result<(), Stop> {
        let batch_id = uuid::Uuid::new_v4();
        while let Some(Chunk { day, batch }) = chunks.recv().await {
            let writer = match writers.entry(day) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    #[cfg(feature = "testing")]
                    if let Some(f) = self.take_fault(crate::testing::fault::FaultPoint::AfterRead) {
                        return Err(Stop { error: f.error(), crash: f.crash });
                    }
                    v.insert(open_day_writer(table, range, batch_id, day).await.map_err(Stop::failed)?)
                }
            };
            if let Err(e) = writer.write(batch).await {
                // Its file stays unknown (unreferenced: an open of a local lake removes it).
                writers.remove(&day);
                return Err(Stop::failed(e.into()));
            }
            #[cfg(feature = "testing")]
            if let Some(f) = self.take_fault(crate::testing::fault::FaultPoint::WhileWriting) {
                return Err(Stop { error: f.error(), crash: f.crash });
            }
        }
        Ok(())
    }

    /// Best-effort removal of files a failed batch wrote (nothing references them).
    async fn remove_files(&self, paths: &[String]) {
        let io = match self.lake.load_table().await {
            Ok(table) => table.file_io().clone(),
            Err(e) => {
                tracing::warn!(error = %e, files = paths.len(), "cannot clean up files of a failed archive batch");
                return;
            }
        };
        for path in paths {
            if let Err(e) = io.delete(path).await {
                tracing::warn!(error = %e, path = %path, "cannot remove a file of a failed archive batch");
            }
        }
    }
}

/// The Parquet settings of every data file the archive writes: zstd, bounded row groups.
fn parquet_properties() -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| ArchiveError::Inconsistent(format!("zstd level: {e}")))?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_MAX_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_MAX_BYTES));
    // Row images and keys are (nearly) unique: a dictionary only costs a hash per value before
    // the writer gives up on it. Min/max statistics of row images, keys and correlation ids prune
    // nothing (in LSN order every file spans nearly the whole range of them) and cost two byte
    // comparisons per value; the LSN, commit LSN, commit time, table and operation columns keep
    // theirs (replay and queries prune by them).
    for column in OPAQUE_COLUMNS {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    // LSNs, transaction ids and commit times rise through a file: deltas pack them into a few
    // bits each with no hashing, where a dictionary hashes every value (and gives up on `lsn`).
    for column in RISING_COLUMNS {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED);
    }
    Ok(builder.build())
}

/// Integer columns whose values rise (or repeat) from row to row: delta-encoded.
const RISING_COLUMNS: &[&str] = &["lsn", "commit_lsn", "txn_id", "commit_ts"];

/// Columns of (nearly) unique values, written without dictionary encoding and without min/max
/// statistics.
const OPAQUE_COLUMNS: &[&str] = &["key", "before", "after", "before_bin", "after_bin", "correlation_id"];

/// Splits the batch `range` (over its `segments`) into at most `max_parts` contiguous,
/// non-empty LSN ranges of about equal WAL bytes, each at least `min_part_bytes` (one part when
/// the batch is smaller than two). Cuts fall anywhere, also inside a segment (a segment's bytes
/// are taken as spread evenly over its LSNs), so that a lone segment still splits: a part
/// that starts inside a transaction reads it from its BEGIN and archives only its own LSNs.
fn plan_parts(
    range: ArchivedRange,
    segments: &[SegmentInfo],
    max_parts: usize,
    min_part_bytes: u64,
) -> Vec<ArchivedRange> {
    // Each segment's LSNs inside the range, and its bytes in proportion.
    let spans: Vec<(Lsn, Lsn, u64)> = segments
        .iter()
        .filter_map(|s| {
            let (lo, hi) = (s.first_lsn.max(range.first_lsn), s.last_lsn.min(range.last_lsn));
            // Also excludes an empty segment (last < first makes hi < lo).
            if lo > hi {
                return None;
            }
            let share = u128::from(s.size_bytes) * u128::from(hi - lo + 1) / u128::from(s.last_lsn - s.first_lsn + 1);
            Some((lo, hi, u64::try_from(share).unwrap_or(u64::MAX)))
        })
        .collect();
    let total: u64 = spans.iter().map(|&(_, _, bytes)| bytes).sum();
    let by_size = usize::try_from(total / min_part_bytes.max(1)).unwrap_or(usize::MAX);
    let parts = max_parts.min(by_size).max(1);
    let mut out = Vec::with_capacity(parts);
    let mut first_lsn = range.first_lsn;
    for k in 1..parts {
        let target = u128::from(total) * k as u128 / parts as u128;
        let mut before = 0u128;
        let cut = spans.iter().find_map(|&(lo, hi, bytes)| {
            let end = before + u128::from(bytes);
            let inside = (target < end).then(|| {
                let lsns = u128::from(hi - lo + 1);
                lo + u64::try_from((target - before) * lsns / u128::from(bytes)).unwrap_or(u64::MAX)
            });
            before = end;
            inside
        });
        // A cut lies inside a span (so within the range); one that would leave a part empty
        // (tiny ranges) is dropped: fewer parts.
        debug_assert!(cut.is_none_or(|cut| cut <= range.last_lsn));
        if let Some(cut) = cut.filter(|&cut| cut > first_lsn) {
            out.push(ArchivedRange { first_lsn, last_lsn: cut - 1 });
            first_lsn = cut;
        }
    }
    out.push(ArchivedRange { first_lsn, last_lsn: range.last_lsn });
    debug_assert!(out.windows(2).all(|w| w[1].first_lsn == w[0].last_lsn + 1));
    out
}

/// `f` over every part, each on its own thread when there are several; outcomes in order. A
/// panicking thread (a bug) is an error of its part, not a panic here.
fn in_parallel(parts: Vec<ArchivedRange>, f: impl Fn(ArchivedRange) -> PartResult + Sync) -> Vec<PartResult> {
    if parts.len() <= 1 {
        return parts.into_iter().map(&f).collect();
    }
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| std::thread::Builder::new().name("archive-writer".into()).spawn_scoped(s, move || f(part)))
            .collect();
        handles
            .into_iter()
            .map(|spawned| match spawned {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    let error = ArchiveError::Inconsistent("an archive part's thread panicked".into());
                    Err(PartFailure::cleaned_up(error, &[]))
                }),
                Err(e) => Err(PartFailure::cleaned_up(ArchiveError::Runtime(e), &[])),
            })
            .collect()
    })
}

/// The paths of `files`.
pub(crate) fn file_paths(files: &[DataFile]) -> Vec<String> {
    files.iter().map(|f| f.file_path().to_string()).collect()
}

/// A chunk of a part's rows, all of one commit day, in LSN order.
struct Chunk {
    day: i32,
    batch: RecordBatch,
}

/// The Parquet data-file writer of one commit day (of an archive part, or of a compacted
/// partition).
pub(crate) type DayWriter = DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Opens the writer of `day`'s file of the part `range` (named after the range and `batch_id`).
async fn open_day_writer(
    table: &iceberg::table::Table,
    range: ArchivedRange,
    batch_id: uuid::Uuid,
    day: i32,
) -> Result<DayWriter> {
    let prefix = format!("walden-{:020}-{:020}", range.first_lsn, range.last_lsn);
    day_writer(table, day, prefix, batch_id, usize::MAX).await
}

/// A writer of data files of the partition `day`, named `<prefix>-<n>-<suffix>.parquet` and
/// rolled over at `roll_at_bytes`, with the archive's Parquet settings.
pub(crate) async fn day_writer(
    table: &iceberg::table::Table,
    day: i32,
    prefix: String,
    suffix: uuid::Uuid,
    roll_at_bytes: usize,
) -> Result<DayWriter> {
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    let names = DefaultFileNameGenerator::new(prefix, Some(suffix.to_string()), DataFileFormat::Parquet);
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(parquet_properties()?, schema.clone()),
        roll_at_bytes,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        names,
    );
    let spec = metadata.default_partition_spec().as_ref().clone();
    let key = PartitionKey::new(spec, schema, Struct::from_iter([Some(Literal::date(day))]));
    Ok(DataFileWriterBuilder::new(rolling).build(Some(key)).await?)
}

/// A part's files and row count.
struct PartDone {
    files: Vec<DataFile>,
    rows: u64,
}

/// How a part failed: the error, the files it completed (orphans now), and whether files must be
/// left where they are (an injected crash leaves them, as a real one would).
struct PartFailure {
    error: ArchiveError,
    written: Vec<String>,
    leave_files: bool,
}

impl PartFailure {
    /// A failure whose completed `files` are orphans to remove.
    fn cleaned_up(error: ArchiveError, files: &[DataFile]) -> Box<PartFailure> {
        Box::new(PartFailure { error, written: file_paths(files), leave_files: false })
    }
}

/// Why a part's writer stopped early: the error, and whether it stands for a crash (an injected
/// one: the files stay as they are).
struct Stop {
    error: ArchiveError,
    crash: bool,
}

impl Stop {
    fn failed(error: ArchiveError) -> Stop {
        Stop { error, crash: false }
    }
}

/// A part's outcome.
type PartResult = std::result::Result<PartDone, Box<PartFailure>>;

/// Groups consecutive segments into batches of about `target_bytes` (at least one segment each).
fn plan_batches(segments: &[SegmentInfo], target_bytes: u64) -> Vec<&[SegmentInfo]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, segment) in segments.iter().enumerate() {
        bytes += segment.size_bytes;
        if bytes >= target_bytes {
            batches.push(&segments[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < segments.len() {
        batches.push(&segments[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first_lsn: Lsn, last_lsn: Lsn, size_bytes: u64) -> SegmentInfo {
        SegmentInfo { path: format!("{first_lsn}.seg").into(), first_lsn, last_lsn, sealed: true, size_bytes }
    }

    #[test]
    fn batches_group_segments_up_to_the_target() {
        let segs = [seg(1, 10, 40), seg(11, 20, 40), seg(21, 30, 40), seg(31, 40, 200), seg(41, 50, 10)];
        let batches = plan_batches(&segs, 100);
        let firsts: Vec<Vec<Lsn>> = batches.iter().map(|b| b.iter().map(|s| s.first_lsn).collect()).collect();
        assert_eq!(firsts, vec![vec![1, 11, 21], vec![31], vec![41]]);
        assert!(plan_batches(&[], 100).is_empty());
    }

    /// `plan_parts` over the whole of `segs`, as (first, last) LSN pairs.
    fn parts(segs: &[SegmentInfo], max_parts: usize, min_part_bytes: u64) -> Vec<(Lsn, Lsn)> {
        let range = ArchivedRange { first_lsn: segs[0].first_lsn, last_lsn: segs[segs.len() - 1].last_lsn };
        plan_parts(range, segs, max_parts, min_part_bytes).iter().map(|r| (r.first_lsn, r.last_lsn)).collect()
    }

    #[test]
    fn parts_split_a_batch_into_contiguous_shares_of_bytes() {
        let segs = [seg(1, 10, 40), seg(11, 20, 40), seg(21, 30, 40), seg(31, 40, 40)];
        assert_eq!(parts(&segs, 2, 1), vec![(1, 20), (21, 40)]);
        assert_eq!(parts(&segs, 4, 1), vec![(1, 10), (11, 20), (21, 30), (31, 40)]);
        // More parts than segments: cuts inside segments.
        assert_eq!(
            parts(&segs, 8, 1),
            vec![(1, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 30), (31, 35), (36, 40)]
        );
        assert_eq!(parts(&segs, 3, 1), vec![(1, 13), (14, 26), (27, 40)]);
        // The minimum part size caps the count; one part below two minimums.
        assert_eq!(parts(&segs, 4, 80), vec![(1, 20), (21, 40)]);
        assert_eq!(parts(&segs, 4, 100), vec![(1, 40)]);
        assert_eq!(parts(&segs, 1, 1), vec![(1, 40)]);
        assert_eq!(parts(&segs, 0, 0), vec![(1, 40)]);
        // Uneven sizes: shares by bytes, cut inside the big segment.
        let uneven = [seg(1, 10, 300), seg(11, 20, 10), seg(21, 30, 10), seg(31, 40, 10)];
        assert_eq!(parts(&uneven, 2, 1), vec![(1, 5), (6, 40)]);
        let tail_heavy = [seg(1, 10, 10), seg(11, 20, 10), seg(21, 30, 300)];
        assert_eq!(parts(&tail_heavy, 2, 1), vec![(1, 24), (25, 30)]);
        // A lone segment splits too.
        assert_eq!(parts(&[seg(1, 10, 40)], 4, 1), vec![(1, 2), (3, 5), (6, 7), (8, 10)]);
        assert_eq!(parts(&[seg(1, 10, 40)], 2, 20), vec![(1, 5), (6, 10)]);
        // Never an empty part: fewer LSNs than parts.
        assert_eq!(parts(&[seg(1, 2, 400)], 4, 1), vec![(1, 1), (2, 2)]);
        assert_eq!(parts(&[seg(7, 7, 400)], 4, 1), vec![(7, 7)]);
    }

    #[test]
    fn parts_cover_the_batch_range_exactly() {
        let segs = [seg(5, 10, 40), seg(11, 20, 40), seg(21, 30, 40)];
        // The range starts inside the first segment (its head is archived already): only its
        // share of that segment's bytes counts.
        let range = ArchivedRange { first_lsn: 7, last_lsn: 30 };
        let ranges: Vec<(Lsn, Lsn)> =
            plan_parts(range, &segs, 3, 1).iter().map(|r| (r.first_lsn, r.last_lsn)).collect();
        assert_eq!(ranges, vec![(7, 12), (13, 21), (22, 30)]);
        for max_parts in 1..12 {
            let ranges = plan_parts(range, &segs, max_parts, 1);
            assert_eq!(ranges.first().map(|r| r.first_lsn), Some(7));
            assert_eq!(ranges.last().map(|r| r.last_lsn), Some(30));
            assert!(ranges.iter().all(|r| r.first_lsn <= r.last_lsn));
            assert!(ranges.windows(2).all(|w| w[1].first_lsn == w[0].last_lsn + 1));
            assert!(ranges.len() <= max_parts);
        }
    }
}
