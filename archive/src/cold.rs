//! Reading the archive back as a CDC cold source: the rows of the `events` table become engine
//! records again (BEGIN, changes, COMMIT) so that a walden-cdc stream runs them through the same
//! transaction assembly and filters as the WAL's own records. See [`walden_cdc::cold`].
//!
//! Reads are pruned by LSN: the scan filter `commit_lsn >= from AND lsn <= to` skips data files by
//! their manifest bounds and row groups by their Parquet statistics. Each call scans one window
//! of LSNs, sized from the bytes per LSN seen so far, so memory stays bounded whatever the table's
//! size; the window is cached, so the stream's small chunks cost one scan per window.
//!
//! Every transaction rebuilt is checked to be complete (one row per LSN between its BEGIN and
//! COMMIT); a missing row is reported as an error, never skipped.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch};
use bytes::Bytes;
use futures::TryStreamExt;
use iceberg::expr::Reference;
use iceberg::spec::Datum;
use parking_lot::Mutex;
use walden_cdc::cold::ColdError;
use walden_cdc::{ColdChunk, ColdRange, ColdRecord, ColdSource, SchemaChange};
use walden_engine::Lsn;
use walden_engine::record::{Begin, ChangeOp, Commit, EngineRecord, RowChange, SchemaRecord};

use crate::error::{ArchiveError, Result};
use crate::lake::Lake;

/// Bytes of archived rows one window aims to hold in memory.
const WINDOW_TARGET_BYTES: u64 = 32 << 20;
/// Bounds of a window, in LSNs.
const WINDOW_MIN_LSNS: u64 = 1024;
const WINDOW_MAX_LSNS: u64 = 1 << 20;

/// One archived row, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ArchivedRow {
    lsn: Lsn,
    commit_lsn: Lsn,
    txn_id: Lsn,
    commit_ts_us: u64,
    op: String,
    table: String,
    key: Bytes,
    before: Option<Bytes>,
    after: Option<Bytes>,
    namespace: Option<String>,
    correlation_id: Option<String>,
    actor: Option<String>,
}

impl ArchivedRow {
    fn size_bytes(&self) -> u64 {
        let opt = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        (64 + self.op.len() + self.table.len() + self.key.len()) as u64 + opt(&self.before) + opt(&self.after)
    }
}

/// The rows of one scanned window: every row with `commit_lsn >= from_lsn` and `lsn <= to_lsn`,
/// sorted by LSN.
#[derive(Debug, Default)]
struct Window {
    from_lsn: Lsn,
    to_lsn: Lsn,
    rows: Vec<ArchivedRow>,
}

/// The archive as a [`ColdSource`]: hand it to [`walden_cdc::Cdc::with_cold_source`] (or use
/// [`crate::Archiver::cdc`], which does).
pub struct LakeColdSource {
    lake: Arc<Lake>,
    runtime: Arc<tokio::runtime::Runtime>,
    window: Mutex<Window>,
    /// Bytes per LSN seen in the last window (sizes the next one).
    bytes_per_lsn: Mutex<u64>,
}

impl std::fmt::Debug for LakeColdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeColdSource").field("lake", &self.lake).finish()
    }
}

impl LakeColdSource {
    /// A cold source over `lake`, running its reads on `runtime` (the calls block on it, so they
    /// must not come from inside that runtime).
    pub fn new(lake: Arc<Lake>, runtime: Arc<tokio::runtime::Runtime>) -> LakeColdSource {
        LakeColdSource { lake, runtime, window: Mutex::new(Window::default()), bytes_per_lsn: Mutex::new(256) }
    }

    /// The lake read.
    pub fn lake(&self) -> &Arc<Lake> {
        &self.lake
    }

    /// The archived LSN range, read from the table's current snapshot.
    pub fn archived_range(&self) -> Result<Option<ColdRange>> {
        self.runtime.block_on(self.lake.archived_range())
    }

    fn chunk(&self, from_lsn: Lsn, through_lsn: Lsn, max_records: usize) -> Result<ColdChunk> {
        if from_lsn > through_lsn {
            return Ok(ColdChunk { records: Vec::new(), next_lsn: from_lsn + 1 });
        }
        let mut window = self.window.lock();
        let cached = window.from_lsn <= from_lsn && from_lsn <= window.to_lsn && window.to_lsn <= through_lsn;
        if !cached || !has_complete_txn(&window, from_lsn) {
            let span = (WINDOW_TARGET_BYTES / (*self.bytes_per_lsn.lock()).max(1))
                .clamp(WINDOW_MIN_LSNS.max(max_records as u64), WINDOW_MAX_LSNS);
            let mut to_lsn = through_lsn.min(from_lsn.saturating_add(span - 1));
            loop {
                let rows = self.runtime.block_on(self.lake.scan_rows(from_lsn, to_lsn))?;
                let bytes: u64 = rows.iter().map(ArchivedRow::size_bytes).sum();
                *self.bytes_per_lsn.lock() = (bytes / (to_lsn - from_lsn + 1)).max(1);
                *window = Window { from_lsn, to_lsn, rows };
                // A transaction larger than the window: widen it to the transaction's end.
                match window.rows.first() {
                    Some(first) if first.commit_lsn > to_lsn => {
                        if first.commit_lsn > through_lsn {
                            return Err(ArchiveError::Inconsistent(format!(
                                "archived transaction {} commits at LSN {}, after the archive's end {through_lsn}",
                                first.txn_id, first.commit_lsn
                            )));
                        }
                        to_lsn = first.commit_lsn;
                    }
                    _ => break,
                }
            }
        }
        build_chunk(&window, from_lsn, max_records)
    }
}

/// Whether the window holds a whole transaction committing at or after `from_lsn`.
fn has_complete_txn(window: &Window, from_lsn: Lsn) -> bool {
    let start = window.rows.partition_point(|r| r.commit_lsn < from_lsn);
    window.rows.get(start).is_some_and(|r| r.commit_lsn <= window.to_lsn)
}

/// The whole transactions of `window` committing at or after `from_lsn`, about `max_records`
/// records' worth, as engine records.
fn build_chunk(window: &Window, from_lsn: Lsn, max_records: usize) -> Result<ColdChunk> {
    // Rows are sorted by LSN and transactions are contiguous, so the rows of transactions
    // committing at or after `from_lsn` form a suffix.
    let start = window.rows.partition_point(|r| r.commit_lsn < from_lsn);
    let rows = &window.rows[start..];
    let mut records = Vec::new();
    let mut next_lsn = window.to_lsn + 1;
    let mut i = 0;
    while i < rows.len() {
        let txn_id = rows[i].txn_id;
        let end = i + rows[i..].iter().take_while(|r| r.txn_id == txn_id).count();
        let txn = &rows[i..end];
        let commit_lsn = txn[0].commit_lsn;
        if commit_lsn > window.to_lsn {
            // Incomplete in this window: the next chunk starts with it.
            next_lsn = txn_id.max(from_lsn + 1);
            if records.is_empty() {
                return Err(ArchiveError::Inconsistent(format!(
                    "archived transaction {txn_id} does not fit the window {}..={}",
                    window.from_lsn, window.to_lsn
                )));
            }
            break;
        }
        if !records.is_empty() && records.len() + txn.len() + 2 > max_records {
            next_lsn = txn_id;
            break;
        }
        push_transaction(&mut records, txn)?;
        i = end;
    }
    Ok(ColdChunk { records, next_lsn })
}

/// Rebuilds BEGIN, the changes and COMMIT of one archived transaction, checking that every LSN
/// between BEGIN and COMMIT has its row.
fn push_transaction(out: &mut Vec<ColdRecord>, txn: &[ArchivedRow]) -> Result<()> {
    let first = &txn[0];
    let (txn_id, commit_lsn) = (first.txn_id, first.commit_lsn);
    let change_count = commit_lsn.checked_sub(txn_id + 1).filter(|&n| n <= u64::from(u32::MAX)).ok_or_else(|| {
        ArchiveError::Inconsistent(format!("archived transaction {txn_id} has commit LSN {commit_lsn}"))
    })?;
    if txn.len() as u64 != change_count {
        return Err(ArchiveError::Inconsistent(format!(
            "archived transaction {txn_id} has {} rows, its LSNs {}..{commit_lsn} need {change_count}",
            txn.len(),
            txn_id + 1
        )));
    }
    let change_count = change_count as u32;
    let ts = first.commit_ts_us;
    out.push(ColdRecord {
        lsn: txn_id,
        timestamp_us: ts,
        record: EngineRecord::Begin(Begin {
            change_count,
            correlation_id: first.correlation_id.clone(),
            actor: first.actor.clone(),
            namespace: first.namespace.clone(),
        }),
    });
    for (row, expected_lsn) in txn.iter().zip(txn_id + 1..) {
        if row.lsn != expected_lsn || row.commit_lsn != commit_lsn || row.commit_ts_us != ts {
            return Err(ArchiveError::Inconsistent(format!(
                "archived transaction {txn_id}: row at LSN {} where LSN {expected_lsn} belongs",
                row.lsn
            )));
        }
        let seq = (row.lsn - txn_id) as u32;
        let op = match row.op.as_str() {
            "insert" => Some(ChangeOp::Insert),
            "update" => Some(ChangeOp::Update),
            "delete" => Some(ChangeOp::Delete),
            "schema" => None,
            other => {
                return Err(ArchiveError::Inconsistent(format!("archived row at LSN {} has op {other:?}", row.lsn)));
            }
        };
        let record = match op {
            Some(op) => EngineRecord::Change(RowChange {
                seq,
                op,
                table: row.table.clone(),
                key: row.key.clone(),
                before: row.before.clone(),
                after: row.after.clone(),
            }),
            None => {
                let (schema_version, change) = decode_ddl(row)?;
                EngineRecord::Schema(SchemaRecord { seq, table: row.table.clone(), schema_version, change })
            }
        };
        out.push(ColdRecord { lsn: row.lsn, timestamp_us: ts, record });
    }
    out.push(ColdRecord { lsn: commit_lsn, timestamp_us: ts, record: EngineRecord::Commit(Commit { change_count }) });
    Ok(())
}

/// A `schema` row's `after`: `{"schemaVersion": N, "change": {...}}`.
fn decode_ddl(row: &ArchivedRow) -> Result<(u32, walden_engine::record::SchemaChange)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ddl {
        schema_version: u32,
        change: SchemaChange,
    }
    let bad = |why: String| ArchiveError::Inconsistent(format!("schema row at LSN {}: {why}", row.lsn));
    let after = row.after.as_ref().ok_or_else(|| bad("no DDL in `after`".into()))?;
    let ddl: Ddl = serde_json::from_slice(after).map_err(|e| bad(e.to_string()))?;
    Ok((ddl.schema_version, walden_cdc::cold::schema_change_record(&ddl.change)))
}

impl ColdSource for LakeColdSource {
    fn range(&self) -> std::result::Result<Option<ColdRange>, ColdError> {
        Ok(self.archived_range()?)
    }

    fn read_chunk(
        &self,
        from_lsn: Lsn,
        through_lsn: Lsn,
        max_records: usize,
    ) -> std::result::Result<ColdChunk, ColdError> {
        Ok(self.chunk(from_lsn, through_lsn, max_records.max(1))?)
    }
}

impl Lake {
    /// The rows with `commit_lsn >= from_lsn` and `lsn <= to_lsn`, sorted by LSN.
    async fn scan_rows(&self, from_lsn: Lsn, to_lsn: Lsn) -> Result<Vec<ArchivedRow>> {
        let table = self.load_table().await?;
        if table.metadata().current_snapshot().is_none() {
            return Ok(Vec::new());
        }
        let long = |v: Lsn| -> Result<Datum> {
            i64::try_from(v)
                .map(Datum::long)
                .map_err(|_| ArchiveError::Inconsistent(format!("LSN {v} does not fit an Iceberg long")))
        };
        let filter = Reference::new("commit_lsn")
            .greater_than_or_equal_to(long(from_lsn)?)
            .and(Reference::new("lsn").less_than_or_equal_to(long(to_lsn)?));
        let scan = table.scan().with_filter(filter).select_all().build()?;
        let batches: Vec<RecordBatch> = scan.to_arrow().await?.try_collect().await?;
        let mut rows = Vec::new();
        for batch in &batches {
            rows_of_batch(batch, &mut rows)?;
        }
        rows.sort_by_key(|r| r.lsn);
        if let Some(w) = rows.windows(2).find(|w| w[0].lsn == w[1].lsn) {
            return Err(ArchiveError::Inconsistent(format!("LSN {} is archived twice", w[0].lsn)));
        }
        Ok(rows)
    }
}

/// Appends the rows of one Arrow batch of the events table.
fn rows_of_batch(batch: &RecordBatch, out: &mut Vec<ArchivedRow>) -> Result<()> {
    let columns = EventsColumns::of(batch)?;
    for i in 0..batch.num_rows() {
        out.push(columns.row(i)?);
    }
    Ok(())
}

type Longs = PrimitiveArray<Int64Type>;

/// The columns of one Arrow batch of the events table, checked and typed.
struct EventsColumns<'a> {
    lsn: &'a Longs,
    commit_lsn: &'a Longs,
    txn_id: &'a Longs,
    commit_ts: &'a PrimitiveArray<TimestampMicrosecondType>,
    op: StringColumn<'a>,
    table: StringColumn<'a>,
    key: BinaryColumn<'a>,
    before: Option<StringColumn<'a>>,
    after: Option<StringColumn<'a>>,
    before_bin: Option<BinaryColumn<'a>>,
    after_bin: Option<BinaryColumn<'a>>,
    namespace: Option<StringColumn<'a>>,
    correlation_id: Option<StringColumn<'a>>,
    actor: Option<StringColumn<'a>>,
}

impl<'a> EventsColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<EventsColumns<'a>> {
        Ok(EventsColumns {
            lsn: required(batch, "lsn")?,
            commit_lsn: required(batch, "commit_lsn")?,
            txn_id: required(batch, "txn_id")?,
            commit_ts: required(batch, "commit_ts")?,
            op: required(batch, "op")?,
            table: required(batch, "table_name")?,
            key: required(batch, "key")?,
            before: optional(batch, "before")?,
            after: optional(batch, "after")?,
            before_bin: optional(batch, "before_bin")?,
            after_bin: optional(batch, "after_bin")?,
            namespace: optional(batch, "namespace")?,
            correlation_id: optional(batch, "correlation_id")?,
            actor: optional(batch, "actor")?,
        })
    }

    /// Row `i`.
    fn row(&self, i: usize) -> Result<ArchivedRow> {
        // A row image is in its text column when it is JSON, else in its binary column.
        let image = |text: &Option<StringColumn<'_>>, bin: &Option<BinaryColumn<'_>>| -> Option<Bytes> {
            text.as_ref()
                .and_then(|c| c.get(i))
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .or_else(|| bin.as_ref().and_then(|c| c.get(i)).map(Bytes::copy_from_slice))
        };
        let text = |c: &Option<StringColumn<'_>>| c.as_ref().and_then(|c| c.get(i)).map(str::to_string);
        if self.commit_ts.is_null(i) {
            return Err(ArchiveError::Inconsistent(format!("archived row {i} has a null commit_ts")));
        }
        let ts = self.commit_ts.value(i);
        Ok(ArchivedRow {
            lsn: unsigned("lsn", i, self.lsn)?,
            commit_lsn: unsigned("commit_lsn", i, self.commit_lsn)?,
            txn_id: unsigned("txn_id", i, self.txn_id)?,
            commit_ts_us: u64::try_from(ts)
                .map_err(|_| ArchiveError::Inconsistent(format!("archived commit_ts {ts} is before 1970")))?,
            op: self.op.get(i).unwrap_or_default().to_string(),
            table: self.table.get(i).unwrap_or_default().to_string(),
            key: self.key.get(i).map(Bytes::copy_from_slice).unwrap_or_default(),
            before: image(&self.before, &self.before_bin),
            after: image(&self.after, &self.after_bin),
            namespace: text(&self.namespace),
            correlation_id: text(&self.correlation_id),
            actor: text(&self.actor),
        })
    }
}

/// Value `i` of the `name` column `v`, which must be there and not negative.
fn unsigned(name: &str, i: usize, v: &Longs) -> Result<u64> {
    if v.is_null(i) {
        return Err(ArchiveError::Inconsistent(format!("archived row {i} has a null {name}")));
    }
    u64::try_from(v.value(i)).map_err(|_| ArchiveError::Inconsistent(format!("archived {name} {} < 0", v.value(i))))
}

/// A typed view of an Arrow column, in whichever layout the reader produced.
trait ColumnView<'a>: Sized {
    /// `column` as `Self`, if its Arrow type is one `Self` reads.
    fn view(column: &'a ArrayRef) -> Option<Self>;
}

impl<'a, T: ArrowPrimitiveType> ColumnView<'a> for &'a PrimitiveArray<T> {
    fn view(column: &'a ArrayRef) -> Option<Self> {
        column.as_primitive_opt::<T>()
    }
}

/// The column `name` of `batch`, if it has one; an error if it has another Arrow type.
fn optional<'a, C: ColumnView<'a>>(batch: &'a RecordBatch, name: &str) -> Result<Option<C>> {
    let Some(column) = batch.column_by_name(name) else { return Ok(None) };
    match C::view(column) {
        Some(view) => Ok(Some(view)),
        None => {
            Err(ArchiveError::Inconsistent(format!("archived column {name:?} has Arrow type {}", column.data_type())))
        }
    }
}

/// The column `name` of `batch`, which must have it.
fn required<'a, C: ColumnView<'a>>(batch: &'a RecordBatch, name: &str) -> Result<C> {
    optional(batch, name)?.ok_or_else(|| ArchiveError::Inconsistent(format!("archived batch has no column {name:?}")))
}

/// A string column in whichever Arrow layout the reader produced.
#[derive(Clone, Copy)]
enum StringColumn<'a> {
    Small(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl<'a> ColumnView<'a> for StringColumn<'a> {
    fn view(column: &'a ArrayRef) -> Option<Self> {
        (column.as_string_opt::<i32>().map(StringColumn::Small))
            .or_else(|| column.as_string_opt::<i64>().map(StringColumn::Large))
            .or_else(|| column.as_string_view_opt().map(StringColumn::View))
    }
}

impl<'a> StringColumn<'a> {
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StringColumn::Small(a) => (!a.is_null(i)).then(|| a.value(i)),
            StringColumn::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            StringColumn::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// A binary column in whichever Arrow layout the reader produced.
enum BinaryColumn<'a> {
    Small(&'a arrow_array::BinaryArray),
    Large(&'a arrow_array::LargeBinaryArray),
    View(&'a arrow_array::BinaryViewArray),
}

impl<'a> ColumnView<'a> for BinaryColumn<'a> {
    fn view(column: &'a ArrayRef) -> Option<Self> {
        (column.as_binary_opt::<i64>().map(BinaryColumn::Large))
            .or_else(|| column.as_binary_opt::<i32>().map(BinaryColumn::Small))
            .or_else(|| column.as_binary_view_opt().map(BinaryColumn::View))
    }
}

impl<'a> BinaryColumn<'a> {
    fn get(&self, i: usize) -> Option<&'a [u8]> {
        match self {
            BinaryColumn::Small(a) => (!a.is_null(i)).then(|| a.value(i)),
            BinaryColumn::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            BinaryColumn::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lsn: Lsn, txn_id: Lsn, commit_lsn: Lsn) -> ArchivedRow {
        ArchivedRow {
            lsn,
            commit_lsn,
            txn_id,
            commit_ts_us: 7,
            op: "insert".into(),
            table: "t".into(),
            key: Bytes::from_static(b"k"),
            before: None,
            after: Some(Bytes::from_static(b"{}")),
            namespace: None,
            correlation_id: None,
            actor: None,
        }
    }

    /// Transactions 1..=3 (one change), 4..=7 (two), 10..=12 (one); 8..=9 was empty.
    fn window(to_lsn: Lsn) -> Window {
        let rows = vec![row(2, 1, 3), row(5, 4, 7), row(6, 4, 7), row(11, 10, 12)];
        Window { from_lsn: 1, to_lsn, rows: rows.into_iter().filter(|r| r.lsn <= to_lsn).collect() }
    }

    #[test]
    fn chunks_hold_whole_transactions_and_say_where_to_go_on() {
        let w = window(12);
        let chunk = build_chunk(&w, 1, 100).unwrap();
        let lsns: Vec<Lsn> = chunk.records.iter().map(|r| r.lsn).collect();
        assert_eq!(lsns, vec![1, 2, 3, 4, 5, 6, 7, 10, 11, 12]);
        assert_eq!(chunk.next_lsn, 13);
        // Starting inside the second transaction still returns all of it.
        let chunk = build_chunk(&w, 6, 100).unwrap();
        assert_eq!(chunk.records.first().map(|r| r.lsn), Some(4));
        // A small budget stops at a transaction boundary.
        let chunk = build_chunk(&w, 1, 4).unwrap();
        assert_eq!(chunk.records.len(), 3);
        assert_eq!(chunk.next_lsn, 4);
        // A window ending inside a transaction hands it to the next chunk.
        let chunk = build_chunk(&window(6), 1, 100).unwrap();
        assert_eq!(chunk.records.len(), 3);
        assert_eq!(chunk.next_lsn, 4);
        assert!(matches!(chunk.records[1].record, EngineRecord::Change(_)));
    }

    #[test]
    fn a_missing_row_is_an_error_not_a_skip() {
        let mut w = window(12);
        w.rows.remove(1); // LSN 5 of transaction 4
        let err = build_chunk(&w, 1, 100).unwrap_err();
        assert!(err.to_string().contains("transaction 4"), "{err}");
        let mut w = window(12);
        w.rows[0].op = "upsert".into();
        assert!(build_chunk(&w, 1, 100).is_err());
    }
}
