//! The demo's summary: what the workload, the subscriber, the archive run and the checkpoint
//! did, and how to query the lake with pyiceberg and DuckDB.

use std::path::Path;

use serde::Serialize;
use walden_archive::ArchiveReport;
use walden_engine::CheckpointReport;
use walden_wal::Lsn;

use super::subscriber::SubscriberStats;
use crate::cmd::archive::RunJson;
use crate::exit::CliResult;
use crate::lake::{LakeJson, TableInfo};
use crate::outln;
use crate::output::{Out, bytes};

#[derive(Debug, Serialize)]
/// What `walden demo` did, as printed.
pub struct DemoSummary {
    pub data_dir: String,
    /// What was done to the directory first (created, reset, ...).
    pub prepared: String,
    pub threads: u64,
    pub transactions_committed: u64,
    pub transactions_rolled_back: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub schema_changes: u64,
    pub elapsed_ms: u64,
    pub commits_per_second: f64,
    pub fdatasyncs: u64,
    pub subscriber: SubscriberStats,
    pub slot_demo_lag_lsns: u64,
    pub slot_audit_lag_lsns: u64,
    pub slot_audit_pinned_bytes: u64,
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    pub segments: usize,
    pub sealed_segments: usize,
    pub segment_bytes: u64,
    pub checkpoint_removed_segments: usize,
    pub checkpoint_held_by: String,
    /// Segments left in the local WAL after archiving and the checkpoint.
    pub segments_after_checkpoint: usize,
    pub archive: DemoArchive,
}

/// What the demo archived, and how to query it.
#[derive(Debug, Serialize)]
pub struct DemoArchive {
    pub lake: LakeJson,
    #[serde(flatten)]
    pub run: RunJson,
    pub table: TableInfo,
    pub elapsed_ms: u64,
    /// Python (pyiceberg) that reads the table through the lake's sqlite catalog.
    pub pyiceberg: String,
    /// DuckDB SQL that reads the current metadata JSON (after `INSTALL iceberg; LOAD iceberg;`).
    pub duckdb_sql: String,
}

/// What [`archive`] did.
pub struct Archived {
    pub report: ArchiveReport,
    pub lake: LakeJson,
    pub table: TableInfo,
    pub elapsed_ms: u64,
}

impl Archived {
    /// The summary, with the checkpoint that followed the archive run.
    pub fn summary(self, checkpoint: &CheckpointReport) -> DemoArchive {
        let metadata = self.table.metadata_location.as_deref().unwrap_or_default();
        let metadata_path = metadata.strip_prefix("file://").unwrap_or(metadata);
        DemoArchive {
            pyiceberg: pyiceberg_snippet(&self.lake),
            duckdb_sql: duckdb_snippet(metadata_path),
            run: RunJson::new(&self.report, checkpoint),
            lake: self.lake,
            table: self.table,
            elapsed_ms: self.elapsed_ms,
        }
    }
}

/// A Python string literal (double-quoted).
fn py_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The end of the pyiceberg snippet: counts the `events` table's rows by table and operation.
const PYICEBERG_COUNT_EVENTS: &str = include_str!("count_events.py");

/// Python that opens the lake's sqlite catalog with pyiceberg and counts the events by table and
/// operation.
fn pyiceberg_snippet(lake: &LakeJson) -> String {
    let uri = format!("sqlite:///{}", lake.catalog.display());
    format!(
        "from pyiceberg.catalog.sql import SqlCatalog\n\
         catalog = SqlCatalog(\"walden\", uri={}, warehouse={})\n\
         events = catalog.load_table({}).scan().to_arrow()\n\
         {PYICEBERG_COUNT_EVENTS}",
        py_str(&uri),
        py_str(&lake.warehouse),
        py_str(&lake.table)
    )
}

/// DuckDB SQL that reads the table from its current metadata JSON.
fn duckdb_snippet(metadata_path: &str) -> String {
    format!(
        "SELECT table_name, op, count(*) AS events FROM iceberg_scan('{}') GROUP BY ALL ORDER BY ALL;",
        metadata_path.replace('\'', "''")
    )
}

/// The summary as text: the workload, the archive run, how to query the lake, what to try next.
pub fn print_summary(out: &mut Out, s: &DemoSummary) -> CliResult {
    print_workload(out, s)?;
    print_archive(out, s)?;
    print_queries(out, &s.archive)?;
    print_next(out, &s.data_dir)
}

/// The transactions, the subscriber, the slots and the log.
fn print_workload(out: &mut Out, s: &DemoSummary) -> CliResult {
    let sub = &s.subscriber;
    outln!(
        out,
        "committed    {} transactions in {:.2} s: {:.0} commits/s, {} fdatasyncs ({:.1} commits per sync)",
        s.transactions_committed,
        s.elapsed_ms as f64 / 1000.0,
        s.commits_per_second,
        s.fdatasyncs,
        s.transactions_committed as f64 / s.fdatasyncs.max(1) as f64
    )?;
    outln!(
        out,
        "             {} inserts, {} updates, {} deletes, {} schema changes (CREATE TABLE x3, ALTER TABLE users ADD COLUMN tier)",
        s.inserts,
        s.updates,
        s.deletes,
        s.schema_changes
    )?;
    outln!(out, "rolled back  {} transactions (declined cards: nothing written)", s.transactions_rolled_back)?;
    outln!(
        out,
        "subscriber   slot \"demo\": {} events delivered ({} inserts, {} updates, {} deletes, {} schema changes) in {} transactions",
        sub.events,
        sub.inserts,
        sub.updates,
        sub.deletes,
        sub.schema_changes,
        sub.transactions
    )?;
    outln!(
        out,
        "             acknowledged up to LSN {}; slot lag now {} LSNs (at most {} during the run)",
        sub.acknowledged_lsn,
        s.slot_demo_lag_lsns,
        sub.max_lag_lsns
    )?;
    outln!(
        out,
        "slot audit   payment inserts only, never consumed: lag {} LSNs; it pins {} of WAL (the archive serves the rest)",
        s.slot_audit_lag_lsns,
        bytes(s.slot_audit_pinned_bytes)
    )?;
    outln!(
        out,
        "log          LSN {}-{} in {} segments ({} sealed), {}",
        s.first_lsn,
        s.last_lsn,
        s.segments,
        s.sealed_segments,
        bytes(s.segment_bytes)
    )
}

/// The archive run, its data files and the checkpoint after it.
fn print_archive(out: &mut Out, s: &DemoSummary) -> CliResult {
    let a = &s.archive;
    match (a.run.first_lsn, a.run.last_lsn) {
        (Some(first), Some(last)) => outln!(
            out,
            "archive      LSN {first}-{last} ({} segments) -> {} Parquet file{} ({}, {} rows) in {:.2} s, in {}",
            a.run.segments,
            a.run.data_files,
            if a.run.data_files == 1 { "" } else { "s" },
            bytes(a.run.data_bytes),
            a.run.rows,
            a.elapsed_ms as f64 / 1000.0,
            a.lake.dir.as_deref().unwrap_or(Path::new("?")).display()
        )?,
        _ => outln!(out, "archive      nothing sealed to archive (try a smaller --segment-kib)")?,
    }
    for file in a.run.batches.iter().flat_map(|b| &b.data_files) {
        outln!(out, "             {file}")?;
    }
    outln!(
        out,
        "checkpoint   removed {} archived segments; the oldest remaining is held by {} ({} left)",
        s.checkpoint_removed_segments,
        s.checkpoint_held_by,
        s.segments_after_checkpoint
    )
}

/// The pyiceberg and DuckDB snippets.
fn print_queries(out: &mut Out, a: &DemoArchive) -> CliResult {
    outln!(out)?;
    outln!(out, "query the lake with pyiceberg (pip install \"pyiceberg[sql-sqlite,pyarrow]\"):")?;
    outln!(out, "python3 - <<'EOF'\n{}EOF", a.pyiceberg)?;
    outln!(out, "or with DuckDB (its current metadata file):")?;
    outln!(out, "duckdb <<'EOF'\nINSTALL iceberg; LOAD iceberg;\n{}\nEOF", a.duckdb_sql)
}

/// Commands to try next on the demo's data directory.
fn print_next(out: &mut Out, data_dir: &str) -> CliResult {
    let dir = if data_dir == "walden-data" { String::new() } else { format!(" --data-dir {data_dir}") };
    outln!(out)?;
    outln!(out, "next:  walden status{dir}")?;
    outln!(out, "       walden slots list{dir}")?;
    outln!(out, "       walden replay{dir} --from-lsn 1 --end-lsn 12 --transactions   # from the lake, then the WAL")?;
    outln!(out, "       walden dump{dir} --stats")?;
    outln!(out, "       walden tail{dir} --slot audit --drain")?;
    outln!(out, "       walden verify{dir}")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn pyiceberg_snippet_quotes_the_lake_as_python_strings() {
        let lake = LakeJson {
            url: "file:///tmp/a \"b\".lake".into(),
            dir: Some(PathBuf::from("/tmp/a \"b\".lake")),
            catalog: PathBuf::from("/tmp/a \"b\".lake/catalog.db"),
            warehouse: "file:///tmp/a \"b\".lake".into(),
            table: "walden.events".into(),
        };
        let expected = r#"from pyiceberg.catalog.sql import SqlCatalog
catalog = SqlCatalog("walden", uri="sqlite:////tmp/a \"b\".lake/catalog.db", warehouse="file:///tmp/a \"b\".lake")
events = catalog.load_table("walden.events").scan().to_arrow()
print(events.num_rows, "events")
for row in events.group_by(["table_name", "op"]).aggregate([("lsn", "count")]).sort_by([("table_name", "ascending"), ("op", "ascending")]).to_pylist():
    print(f'{row["table_name"]:<9} {row["op"]:<7} {row["lsn_count"]}')
"#;
        assert_eq!(pyiceberg_snippet(&lake), expected);
    }
}
