//! `walden dump`: like `pg_waldump`, the records of an LSN range read straight from the segment
//! files, filtered by table / operation / transaction, as text or JSON lines; `--stats`
//! summarises by kind and table. Read-only.

use std::collections::BTreeMap;
use std::path::Path;

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use walden_cdc::codec::bytes_to_json;
use walden_cdc::envelope::key_to_string;
use walden_engine::record::{self, Column, EngineRecord, SchemaChange};
use walden_wal::Lsn;
use walden_wal::inspect::{RawRecord, ScanOutcome, ScannedSegment};

use crate::datadir::{self, DataDir};
use crate::exit::{CliError, CliResult, Code};
use crate::offline::{self, HeaderError, LogView, Problem, SegmentView};
use crate::outln;
use crate::output::{self, Out, bytes};

/// A record kind `--op` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum KindArg {
    /// Transaction start.
    Begin,
    /// Row insert.
    Insert,
    /// Row update.
    Update,
    /// Row delete.
    Delete,
    /// Schema change.
    Schema,
    /// Transaction end.
    Commit,
}

impl KindArg {
    fn of(record: &EngineRecord) -> KindArg {
        match record {
            EngineRecord::Begin(_) => KindArg::Begin,
            EngineRecord::Change(c) => match c.op {
                record::ChangeOp::Insert => KindArg::Insert,
                record::ChangeOp::Update => KindArg::Update,
                record::ChangeOp::Delete => KindArg::Delete,
            },
            EngineRecord::Schema(_) => KindArg::Schema,
            EngineRecord::Commit(_) => KindArg::Commit,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KindArg::Begin => "begin",
            KindArg::Insert => "insert",
            KindArg::Update => "update",
            KindArg::Delete => "delete",
            KindArg::Schema => "schema",
            KindArg::Commit => "commit",
        }
    }
}

/// Options of `walden dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// First LSN to show (default: the oldest retained).
    #[arg(long, value_parser = crate::output::parse_lsn, value_name = "LSN")]
    pub start_lsn: Option<Lsn>,
    /// Last LSN to show, inclusive (default: the end of the log).
    #[arg(long, value_parser = crate::output::parse_lsn, value_name = "LSN")]
    pub end_lsn: Option<Lsn>,
    /// Only records of this table (repeatable). BEGIN and COMMIT have no table, so they are left out.
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Only records of this kind (repeatable).
    #[arg(long = "op", value_enum, value_name = "KIND")]
    pub ops: Vec<KindArg>,
    /// Only records of this transaction (repeatable; a transaction's id is its BEGIN's LSN).
    #[arg(long = "txn", value_name = "TXN_ID")]
    pub txns: Vec<u64>,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print a summary by record kind and by table instead of the records.
    #[arg(long)]
    pub stats: bool,
}

impl DumpArgs {
    fn matches(&self, txn_id: u64, record: &EngineRecord) -> bool {
        (self.tables.is_empty() || record.table().is_some_and(|t| self.tables.iter().any(|x| x == t)))
            && (self.ops.is_empty() || self.ops.contains(&KindArg::of(record)))
            && (self.txns.is_empty() || self.txns.contains(&txn_id))
    }
}

fn column_json(c: &Column) -> Value {
    json!({ "name": c.name, "data_type": c.data_type, "nullable": c.nullable })
}

fn schema_json(change: &SchemaChange) -> Value {
    match change {
        SchemaChange::CreateTable { columns } => {
            json!({ "kind": "create_table", "columns": columns.iter().map(column_json).collect::<Vec<_>>() })
        }
        SchemaChange::AddColumn { column } => json!({ "kind": "add_column", "column": column_json(column) }),
        SchemaChange::DropColumn { name } => json!({ "kind": "drop_column", "name": name }),
        SchemaChange::AlterColumn { name, column } => {
            json!({ "kind": "alter_column", "name": name, "column": column_json(column) })
        }
        SchemaChange::DropTable => json!({ "kind": "drop_table" }),
    }
}

fn column_text(c: &Column) -> String {
    format!("{} {}{}", c.name, c.data_type, if c.nullable { "" } else { " NOT NULL" })
}

fn schema_text(change: &SchemaChange) -> String {
    match change {
        SchemaChange::CreateTable { columns } => {
            format!("CREATE TABLE ({})", columns.iter().map(column_text).collect::<Vec<_>>().join(", "))
        }
        SchemaChange::AddColumn { column } => format!("ADD COLUMN {}", column_text(column)),
        SchemaChange::DropColumn { name } => format!("DROP COLUMN {name}"),
        SchemaChange::AlterColumn { name, column } => format!("ALTER COLUMN {name} TO {}", column_text(column)),
        SchemaChange::DropTable => "DROP TABLE".to_string(),
    }
}

/// One record as a JSON line.
pub fn record_json(lsn: Lsn, timestamp_us: u64, txn_id: u64, disk_bytes: u64, record: &EngineRecord) -> Value {
    let fields = match record {
        EngineRecord::Begin(b) => json!({
            "change_count": b.change_count,
            "actor": b.actor,
            "correlation_id": b.correlation_id,
            "namespace": b.namespace,
        }),
        EngineRecord::Change(c) => json!({
            "table": c.table,
            "key": bytes_to_json(&c.key),
            "before": c.before.as_ref().map_or(Value::Null, |b| bytes_to_json(b)),
            "after": c.after.as_ref().map_or(Value::Null, |a| bytes_to_json(a)),
        }),
        EngineRecord::Schema(s) => json!({
            "table": s.table,
            "schema_version": s.schema_version,
            "change": schema_json(&s.change),
        }),
        EngineRecord::Commit(c) => json!({ "change_count": c.change_count }),
    };
    let mut v = json!({
        "lsn": lsn,
        "txn_id": txn_id,
        "timestamp": output::time(timestamp_us),
        "timestamp_us": timestamp_us,
        "kind": KindArg::of(record).name(),
        "disk_bytes": disk_bytes,
    });
    if let (Value::Object(map), Value::Object(fields)) = (&mut v, fields) {
        map.extend(fields);
    }
    v
}

/// One record as a text line.
pub fn record_text(lsn: Lsn, timestamp_us: u64, txn_id: u64, record: &EngineRecord) -> String {
    let kind = KindArg::of(record).name().to_uppercase();
    let head = format!("lsn {lsn:<8} txn {txn_id:<8} {}  {kind:<6}", output::time(timestamp_us));
    let body = match record {
        EngineRecord::Begin(b) => {
            let mut s = format!("changes={}", b.change_count);
            for (name, value) in
                [("actor", &b.actor), ("correlation_id", &b.correlation_id), ("namespace", &b.namespace)]
            {
                if let Some(v) = value {
                    s.push_str(&format!(" {name}={v:?}"));
                }
            }
            s
        }
        EngineRecord::Change(c) => {
            let mut s = format!("{} key={}", c.table, key_to_string(&c.key));
            if let Some(b) = &c.before {
                s.push_str(&format!(" before={}", bytes_to_json(b)));
            }
            if let Some(a) = &c.after {
                s.push_str(&format!(" after={}", bytes_to_json(a)));
            }
            s
        }
        EngineRecord::Schema(s) => format!("{} v{} {}", s.table, s.schema_version, schema_text(&s.change)),
        EngineRecord::Commit(c) => format!("changes={}", c.change_count),
    };
    format!("{head}  {body}")
}

#[derive(Debug, Default, Serialize)]
struct KindStats {
    records: u64,
    disk_bytes: u64,
    payload_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
struct TableStats {
    insert: u64,
    update: u64,
    delete: u64,
    schema: u64,
    disk_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
struct Stats {
    first_lsn: Option<Lsn>,
    last_lsn: Option<Lsn>,
    records: u64,
    transactions: u64,
    disk_bytes: u64,
    by_kind: BTreeMap<&'static str, KindStats>,
    by_table: BTreeMap<String, TableStats>,
}

impl Stats {
    fn add(&mut self, lsn: Lsn, disk_bytes: u64, payload_bytes: u64, record: &EngineRecord) {
        self.first_lsn.get_or_insert(lsn);
        self.last_lsn = Some(lsn);
        self.records += 1;
        self.disk_bytes += disk_bytes;
        let kind = KindArg::of(record);
        if kind == KindArg::Commit {
            self.transactions += 1;
        }
        let k = self.by_kind.entry(kind.name()).or_default();
        k.records += 1;
        k.disk_bytes += disk_bytes;
        k.payload_bytes += payload_bytes;
        if let Some(table) = record.table() {
            let t = self.by_table.entry(table.to_string()).or_default();
            t.disk_bytes += disk_bytes;
            match kind {
                KindArg::Insert => t.insert += 1,
                KindArg::Update => t.update += 1,
                KindArg::Delete => t.delete += 1,
                _ => t.schema += 1,
            }
        }
    }

    fn print(&self, out: &mut Out) -> CliResult {
        match (self.first_lsn, self.last_lsn) {
            (Some(first), Some(last)) => outln!(
                out,
                "{} records (LSN {first}-{last}), {} transactions committed, {} on disk",
                self.records,
                self.transactions,
                bytes(self.disk_bytes)
            )?,
            _ => outln!(out, "no records")?,
        }
        outln!(out)?;
        let rows: Vec<Vec<String>> = self
            .by_kind
            .iter()
            .map(|(kind, k)| {
                vec![
                    kind.to_uppercase(),
                    k.records.to_string(),
                    format!("{:.1}%", 100.0 * k.records as f64 / self.records.max(1) as f64),
                    bytes(k.disk_bytes),
                    bytes(k.payload_bytes),
                ]
            })
            .collect();
        output::write_str(out, &output::table(&["KIND", "RECORDS", "SHARE", "DISK", "PAYLOAD"], &rows))?;
        if !self.by_table.is_empty() {
            outln!(out)?;
            let rows: Vec<Vec<String>> = self
                .by_table
                .iter()
                .map(|(table, t)| {
                    vec![
                        table.clone(),
                        t.insert.to_string(),
                        t.update.to_string(),
                        t.delete.to_string(),
                        t.schema.to_string(),
                        bytes(t.disk_bytes),
                    ]
                })
                .collect();
            output::write_str(out, &output::table(&["TABLE", "INSERT", "UPDATE", "DELETE", "SCHEMA", "DISK"], &rows))?;
        }
        Ok(())
    }
}

/// Runs `walden dump`.
pub fn run(data_dir: &Path, json: bool, args: &DumpArgs) -> CliResult {
    let dir = datadir::check_existing(data_dir)?;
    let log = offline::read_log(&dir)?;
    let start = start_lsn(args, &dir, &log)?;
    let end = args.end_lsn.unwrap_or(Lsn::MAX);
    let mut dump = Dump { args, json, out: output::stdout(), stats: Stats::default(), shown: 0 };
    for ((name_lsn, path), view) in dir.segments.iter().zip(&log.segments) {
        if view.last_lsn < start || view.first_lsn > end || view.last_lsn < view.first_lsn {
            continue;
        }
        if !dump.segment(path, *name_lsn, view, start, end)? {
            break;
        }
    }
    dump.finish()?;
    if let Some(tail) = &log.torn_tail
        && !json
        && end > log.last_lsn
    {
        eprintln!(
            "note: {} bytes after LSN {} at the end of {} are incomplete ({}) and not shown: a crash's torn write, \
             or a write in progress",
            tail.bytes,
            log.last_lsn,
            tail.path.display(),
            tail.reason
        );
    }
    Ok(())
}

/// The first LSN shown (`--start-lsn`, else the oldest retained), checked against the log and
/// `--end-lsn`.
fn start_lsn(args: &DumpArgs, dir: &DataDir, log: &LogView) -> CliResult<Lsn> {
    let start = args.start_lsn.unwrap_or(log.oldest_lsn);
    if let Some(end) = args.end_lsn
        && end < start
    {
        return Err(CliError::new(Code::Usage, format!("--end-lsn {end} is before the start LSN {start}")));
    }
    if start < log.oldest_lsn {
        let err = CliError::new(
            Code::LsnUnavailable,
            format!("LSN {start} is no longer retained; the oldest retained LSN is {}", log.oldest_lsn),
        );
        let archived = offline::read_state(&dir.root)?.ok().flatten().and_then(|s| s.archived_lsn);
        return Err(match archived {
            Some(a) if a >= start => err.with_hint(format!(
                "LSNs up to {a} are in the archive lake: `walden replay --from-lsn {start}` reads them from there"
            )),
            _ => err,
        });
    }
    if start > log.last_lsn + 1 {
        return Err(CliError::new(
            Code::LsnUnavailable,
            format!("LSN {start} is beyond the end of the log (the last LSN is {})", log.last_lsn),
        ));
    }
    Ok(start)
}

/// Reads and scans a segment the dump covers: damage in it ends the dump with an error.
fn read_segment(path: &Path, name_lsn: Lsn, view: &SegmentView) -> CliResult<ScannedSegment> {
    let (header, _) = offline::read_header(path, name_lsn)?.map_err(HeaderError::into_error)?;
    let footer = if view.sealed { offline::sealed_footer(path, &header)? } else { None };
    let segment = offline::scan(path, header, footer)?;
    if let ScanOutcome::Corruption { offset, lsn, detail } = &segment.scan.outcome {
        return Err(Problem::error(path, Some(*offset), Some(*lsn), detail.clone()).into_error(false));
    }
    if view.sealed && segment.scan.outcome != ScanOutcome::Clean {
        let end = segment.scan.valid_end_offset;
        return Err(Problem::error(path, Some(end), None, "sealed segment ends early").into_error(false));
    }
    Ok(segment)
}

/// A dump in progress: where its output goes and what it has shown.
struct Dump<'a> {
    args: &'a DumpArgs,
    json: bool,
    out: Out,
    /// With `--stats`: the summary so far (nothing else is printed until the end).
    stats: Stats,
    /// Records shown (or counted, with `--stats`).
    shown: u64,
}

impl Dump<'_> {
    /// Shows the records of one segment from `start` to `end`; `false` once the dump is complete
    /// (past `end` or the segment's last LSN, or `--limit` reached).
    fn segment(&mut self, path: &Path, name_lsn: Lsn, view: &SegmentView, start: Lsn, end: Lsn) -> CliResult<bool> {
        let segment = read_segment(path, name_lsn, view)?;
        for raw in segment.records() {
            let raw = raw.map_err(|p| offline::record_problem(path, p).into_error(false))?;
            if raw.lsn < start {
                continue;
            }
            if raw.lsn > end || raw.lsn > view.last_lsn || !self.record(path, &raw)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Decodes one record and shows it if the filters select it; `false` once `--limit` is
    /// reached.
    fn record(&mut self, path: &Path, raw: &RawRecord<'_>) -> CliResult<bool> {
        let decoded = record::decode(raw.kind, &raw.payload).map_err(|e| {
            Problem::error(path, Some(raw.offset), Some(raw.lsn), format!("engine record does not decode: {e}"))
                .into_error(false)
        })?;
        let txn_id = decoded.txn_id(raw.lsn).ok_or_else(|| {
            Problem::error(path, Some(raw.offset), Some(raw.lsn), "impossible transaction offset").into_error(false)
        })?;
        if !self.args.matches(txn_id, &decoded) {
            return Ok(true);
        }
        if self.args.stats {
            self.stats.add(raw.lsn, raw.disk_bytes, raw.payload.len() as u64, &decoded);
        } else if self.json {
            output::json_line(
                &mut self.out,
                &record_json(raw.lsn, raw.timestamp_us, txn_id, raw.disk_bytes, &decoded),
            )?;
        } else {
            outln!(&mut self.out, "{}", record_text(raw.lsn, raw.timestamp_us, txn_id, &decoded))?;
        }
        self.shown += 1;
        Ok(self.args.limit.is_none_or(|l| self.shown < l))
    }

    /// Prints the `--stats` summary, if asked for, and flushes.
    fn finish(mut self) -> CliResult {
        if self.args.stats {
            if self.json {
                output::json_doc(&mut self.out, &self.stats)?;
            } else {
                self.stats.print(&mut self.out)?;
            }
        }
        output::finish(self.out)
    }
}
