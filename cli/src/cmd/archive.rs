//! `walden archive`: sealed WAL segments → Parquet files in the lake's Iceberg `events` table
//! (like PostgreSQL's archive_command / pg_receivewal, with the table maintenance of
//! `VACUUM`-style tools beside it).
//!
//! - `walden archive [--once]` archives every sealed segment not archived yet, runs a checkpoint
//!   (so archived segments leave the local WAL when nothing else holds them) and reports it.
//! - `walden archive --follow` does the same, then keeps archiving as segments are sealed (the
//!   auto-archiver) until SIGINT / SIGTERM, which stop it cleanly (exit code 0, like `tail`).
//! - `walden archive compact` rewrites small data files into fewer (a replace snapshot: same
//!   rows); `walden archive expire --retain-last N [--older-than T]` expires old snapshots and
//!   deletes the files only they referenced.
//!
//! Every form opens the database (one process at a time: exit code 5 while another has it
//! open), which also guarantees no other archiver is writing to the lake meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use chrono::format::ParseErrorKind;
use clap::{Args, Subcommand};
use serde::Serialize;
use walden_archive::{
    ArchiveReport, Archiver, AutoArchive, AutoArchiveOptions, AutoArchiveStatus, CompactOptions, CompactReport,
    ExpireOptions, ExpireReport,
};
use walden_engine::{CheckpointReport, Database, RecoveryMode};
use walden_wal::Lsn;

use crate::datadir;
use crate::exit::{CliError, CliResult, Code};
use crate::lake::{self, LakeArgs, LakeJson, ResolvedLake, TableInfo};
use crate::outln;
use crate::output::{self, Out, bytes, plural};
use crate::stop;

/// Options of `walden archive`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ArchiveArgs {
    /// Maintenance of the lake's table instead of archiving.
    #[command(subcommand)]
    pub command: Option<ArchiveCommand>,
    /// Archive every sealed segment, run a checkpoint and exit (the default).
    #[arg(long, conflicts_with = "follow")]
    pub once: bool,
    /// Archive every sealed segment, then keep archiving as segments are sealed, until SIGINT /
    /// SIGTERM (exit code 0). Runs a checkpoint after each archive run.
    #[arg(long)]
    pub follow: bool,
    /// WAL bytes gathered into one archive batch (one snapshot, one Parquet file per commit day),
    /// in MiB.
    #[arg(long, default_value_t = 128, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch_mib: u64,
    /// With --follow: archive once the oldest sealed, unarchived segment has waited this long,
    /// even if less than a batch is pending.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", requires = "follow",
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub max_age: u64,
    #[command(flatten)]
    pub lake: LakeArgs,
}

/// Table maintenance.
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Rewrite each day's small data files into as few files as the target size allows, as one
    /// replace snapshot (the same rows, fewer files; readers see no change). The replaced files
    /// stay until the snapshots referencing them expire (`walden archive expire`).
    Compact(CompactArgs),
    /// Expire old snapshots (time travel to them ends) and delete the files no remaining snapshot
    /// references. The current data is untouched.
    Expire(ExpireArgs),
}

/// Options of `walden archive compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Files smaller than this are compacted, and the new files are rolled at this size (MiB).
    #[arg(long, default_value_t = 128, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub target_file_mib: u64,
    /// A day is compacted only when it has at least this many small files.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub min_input_files: u64,
}

/// Options of `walden archive expire`.
#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Snapshots to keep, newest first (at least 1: the current one is always kept).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub retain_last: u64,
    /// Only expire snapshots older than this: an age (90s, 30m, 12h, 7d, 2w) or a UTC time
    /// (2026-01-31T00:00:00Z). Default: any age.
    #[arg(long, value_parser = parse_older_than, value_name = "AGE|TIME")]
    pub older_than: Option<OlderThan>,
}

/// A `--older-than` bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OlderThan {
    /// An age, in ms.
    Age(u64),
    /// A point in time, ms since the Unix epoch.
    Time(i64),
}

impl OlderThan {
    fn cutoff_ms(self, now_ms: i64) -> i64 {
        match self {
            OlderThan::Age(ms) => now_ms.saturating_sub(ms as i64),
            OlderThan::Time(ms) => ms,
        }
    }
}

/// Parses `90s`, `30m`, `12h`, `7d`, `2w` or an RFC 3339 time
/// (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`).
pub fn parse_older_than(s: &str) -> Result<OlderThan, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is neither an age (90s, 30m, 12h, 7d, 2w) nor a UTC time (2026-01-31T00:00:00Z)");
    if let Some(unit) = s.chars().last().filter(|c| c.is_ascii_alphabetic())
        && s[..s.len() - 1].chars().all(|c| c.is_ascii_digit())
        && s.len() > 1
    {
        let n: u64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
        let unit_ms: u64 = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => return Err(bad()),
        };
        return n.checked_mul(unit_ms).filter(|&ms| ms <= i64::MAX as u64).map(OlderThan::Age).ok_or_else(bad);
    }
    match DateTime::parse_from_rfc3339(s) {
        Ok(time) => Ok(OlderThan::Time(time.timestamp_millis())),
        // Shaped like a time but not one (2026-02-31, 25:00, a bad offset): say what is wrong.
        Err(e) if matches!(e.kind(), ParseErrorKind::OutOfRange | ParseErrorKind::Impossible) => {
            Err(format!("{s:?} is not a valid time ({e}); expected e.g. 2026-01-31T00:00:00Z"))
        }
        Err(_) => Err(bad()),
    }
}

fn now_ms() -> i64 {
    i64::try_from(walden_wal::clock::now_ms()).unwrap_or(i64::MAX)
}

/// One archived batch, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct BatchJson {
    /// First LSN of the batch.
    pub first_lsn: Lsn,
    /// Last LSN of the batch.
    pub last_lsn: Lsn,
    /// Rows appended.
    pub rows: u64,
    /// WAL segments in the batch.
    pub segments: usize,
    /// Parquet files written.
    pub data_files: Vec<String>,
    /// Their bytes.
    pub data_bytes: u64,
    /// The snapshot created.
    pub snapshot_id: i64,
}

/// A checkpoint, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointJson {
    /// Segments removed.
    pub removed_segments: usize,
    /// Their bytes.
    pub removed_bytes: u64,
    /// What holds the oldest remaining WAL.
    pub held_by: String,
}

impl From<&CheckpointReport> for CheckpointJson {
    fn from(c: &CheckpointReport) -> CheckpointJson {
        CheckpointJson {
            removed_segments: c.removed_segments.len(),
            removed_bytes: c.removed_bytes,
            held_by: c.held_by.to_string(),
        }
    }
}

/// What an archive run did (also the demo's archive summary).
#[derive(Debug, Clone, Serialize)]
pub struct RunJson {
    /// The batches, in LSN order.
    pub batches: Vec<BatchJson>,
    /// Rows appended.
    pub rows: u64,
    /// Segments archived.
    pub segments: usize,
    /// Parquet files written.
    pub data_files: usize,
    /// Their bytes.
    pub data_bytes: u64,
    /// First LSN archived by this run.
    pub first_lsn: Option<Lsn>,
    /// Last LSN archived by this run.
    pub last_lsn: Option<Lsn>,
    /// Every LSN up to this one is in the lake.
    pub archived_lsn: Option<Lsn>,
    /// The engine's retain-from horizon (the first unarchived LSN).
    pub retain_from: Option<Lsn>,
    /// The checkpoint after the run.
    pub checkpoint: CheckpointJson,
}

impl RunJson {
    /// The run's report and the checkpoint that followed it.
    pub fn new(report: &ArchiveReport, checkpoint: &CheckpointReport) -> RunJson {
        RunJson {
            batches: report
                .batches
                .iter()
                .map(|b| BatchJson {
                    first_lsn: b.range.first_lsn,
                    last_lsn: b.range.last_lsn,
                    rows: b.rows,
                    segments: b.segments,
                    data_files: b.data_files.clone(),
                    data_bytes: b.data_bytes,
                    snapshot_id: b.snapshot_id,
                })
                .collect(),
            rows: report.rows(),
            segments: report.batches.iter().map(|b| b.segments).sum(),
            data_files: report.batches.iter().map(|b| b.data_files.len()).sum(),
            data_bytes: report.batches.iter().map(|b| b.data_bytes).sum(),
            first_lsn: report.batches.first().map(|b| b.range.first_lsn),
            last_lsn: report.batches.last().map(|b| b.range.last_lsn),
            archived_lsn: report.last_archived_lsn,
            retain_from: report.retain_from,
            checkpoint: CheckpointJson::from(checkpoint),
        }
    }
}

/// `archived   LSN 1-540 in 1 batch ...` and the checkpoint line.
pub fn print_run(out: &mut Out, run: &RunJson, db: &Database) -> CliResult {
    match (run.first_lsn, run.last_lsn) {
        (Some(first), Some(last)) => outln!(
            out,
            "archived    LSN {first}-{last} in {} ({}): {} rows, {}, {}",
            plural(run.batches.len(), "batch", "batches"),
            plural(run.segments, "segment", "segments"),
            run.rows,
            plural(run.data_files, "Parquet file", "Parquet files"),
            bytes(run.data_bytes)
        )?,
        _ => {
            let active = db.segments().into_iter().find(|s| !s.sealed);
            let upto = run
                .archived_lsn
                .map_or_else(|| "nothing archived yet".to_string(), |l| format!("archived up to LSN {l}"));
            let active = active
                .filter(|s| s.last_lsn >= s.first_lsn)
                .map(|s| {
                    format!("; the active segment (LSN {}-{}) is archived once it is sealed", s.first_lsn, s.last_lsn)
                })
                .unwrap_or_default();
            outln!(out, "archived    nothing new: no sealed segment left to archive ({upto}){active}")?
        }
    }
    let c = &run.checkpoint;
    outln!(
        out,
        "checkpoint  removed {} ({}); the oldest remaining WAL is held by {}",
        plural(c.removed_segments, "segment", "segments"),
        bytes(c.removed_bytes),
        c.held_by
    )?;
    if let Some(a) = run.archived_lsn {
        outln!(
            out,
            "horizon     archived up to LSN {a}; the WAL keeps LSN {} and later (retain-from); slots pin only WAL after LSN {a}",
            run.retain_from.map_or_else(|| (a + 1).to_string(), |r| r.to_string())
        )?;
    }
    Ok(())
}

/// The lake and table lines.
pub fn print_lake(out: &mut Out, lake: &LakeJson, table: &TableInfo) -> CliResult {
    outln!(out, "lake        {} (catalog {})", lake.url, lake.catalog.display())?;
    let range = match (table.first_lsn, table.last_lsn) {
        (Some(f), Some(l)) => format!(", LSN {f}-{l}"),
        _ => String::new(),
    };
    outln!(
        out,
        "table       {}: {}, {}, {} rows{range}",
        lake.table,
        plural(table.snapshots, "snapshot", "snapshots"),
        plural(table.data_files.unwrap_or(0) as usize, "data file", "data files"),
        table.records.unwrap_or(0)
    )?;
    if let Some(m) = &table.metadata_location {
        outln!(out, "metadata    {m}")?;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct OnceJson {
    lake: LakeJson,
    #[serde(flatten)]
    run: RunJson,
    table: TableInfo,
}

#[derive(Debug, Serialize)]
struct FollowSummary {
    runs: u64,
    rows: u64,
    failures: u64,
    archived_lsn: Option<Lsn>,
    removed_segments: usize,
    stopped_by: &'static str,
}

#[derive(Debug, Serialize)]
struct CompactJson {
    lake: LakeJson,
    partitions: Vec<i32>,
    input_files: Vec<String>,
    output_files: Vec<String>,
    rows: u64,
    snapshot_id: Option<i64>,
    table: TableInfo,
}

#[derive(Debug, Serialize)]
struct ExpireJson {
    lake: LakeJson,
    retain_last: u64,
    older_than_ms: Option<i64>,
    expired_snapshot_ids: Vec<i64>,
    removed_files: Vec<String>,
    table: TableInfo,
}

/// Runs `walden archive`.
pub fn run(data_dir: &Path, json: bool, args: &ArchiveArgs) -> CliResult {
    let lake = args.lake.resolve(data_dir)?;
    // The data directory first: a typo must not create a lake.
    datadir::check_existing(data_dir)?;
    if args.command.is_some() && !lake.exists() {
        return Err(lake.not_found());
    }
    lake.check_reachable()?;
    if args.follow {
        stop::install()?;
    }
    datadir::with_database(data_dir, RecoveryMode::TolerateTornTail, |db| {
        let archiver = Arc::new(lake.open_archiver(db.clone(), Some(args.batch_mib << 20))?);
        let result = match &args.command {
            None if args.follow => follow(&archiver, &lake, json, args),
            None => once(&archiver, &lake, json),
            Some(ArchiveCommand::Compact(c)) => compact(&archiver, &lake, json, c),
            Some(ArchiveCommand::Expire(e)) => expire(&archiver, &lake, json, e),
        };
        // The archiver holds the database: it must be gone before the database closes.
        match Arc::try_unwrap(archiver) {
            Ok(archiver) => drop(archiver),
            Err(_) => return Err(CliError::new(Code::Failure, "the archiver is still in use (a bug)")),
        }
        result
    })
}

fn archive_and_checkpoint(archiver: &Archiver) -> CliResult<RunJson> {
    let report = archiver.archive_sealed().map_err(|e| CliError::from_error("archiving failed", &e))?;
    let checkpoint = archiver
        .database()
        .checkpoint()
        .map_err(|e| CliError::from_error("the checkpoint after archiving failed", &e))?;
    Ok(RunJson::new(&report, &checkpoint))
}

fn once(archiver: &Archiver, lake: &ResolvedLake, json: bool) -> CliResult {
    let run = archive_and_checkpoint(archiver)?;
    let table = lake::table_info(archiver)?;
    output::emit(json, &OnceJson { lake: lake.json(), run, table }, |out, doc| {
        print_run(out, &doc.run, archiver.database())?;
        print_lake(out, &doc.lake, &doc.table)
    })
}

fn follow(archiver: &Arc<Archiver>, lake: &ResolvedLake, json: bool, args: &ArchiveArgs) -> CliResult {
    // Catch up first: everything sealed now, whatever the batch target and age.
    let first = catch_up(archiver, lake, json)?;
    if !json {
        eprintln!(
            "archive: following; archiving whenever {} of sealed WAL is pending or the oldest pending segment waited {} s \
             (this process holds the database; Ctrl-C stops)",
            bytes(args.batch_mib << 20),
            args.max_age
        );
    }
    let options = AutoArchiveOptions { max_age_ms: args.max_age * 1000, poll_interval_ms: 200 };
    let auto = archiver.start_auto(options).map_err(|e| CliError::from_error("cannot start the auto-archiver", &e))?;
    let watched = watch(archiver, &auto, json);
    auto.stop();
    let (status, removed_segments) = watched?;
    let summary = FollowSummary {
        runs: u64::from(!first.batches.is_empty()) + status.runs,
        rows: first.rows + status.rows,
        failures: status.failures,
        archived_lsn: archiver.database().archived_lsn(),
        removed_segments: first.checkpoint.removed_segments + removed_segments,
        stopped_by: "signal",
    };
    output::summary(json, &summary, |s| {
        format!(
            "archive: {} runs, {} rows archived, archived up to LSN {}, {} segments removed (stopped by signal)",
            s.runs,
            s.rows,
            output::opt_lsn(s.archived_lsn),
            s.removed_segments
        )
    });
    Ok(())
}

/// The first run of `--follow`: archives everything sealed now and prints it.
fn catch_up(archiver: &Archiver, lake: &ResolvedLake, json: bool) -> CliResult<RunJson> {
    let first = archive_and_checkpoint(archiver)?;
    let mut out = output::stdout();
    if json {
        output::json_line(&mut out, &first)?;
    } else {
        print_run(&mut out, &first, archiver.database())?;
        outln!(&mut out, "lake        {}", lake.config.url)?;
    }
    output::finish(out)?;
    Ok(first)
}

/// Follows the auto-archiver until SIGINT / SIGTERM: each run it completes is followed by a
/// checkpoint and a line. Returns its last status and the segments the checkpoints removed.
fn watch(archiver: &Archiver, auto: &AutoArchive, json: bool) -> CliResult<(AutoArchiveStatus, usize)> {
    let mut seen = auto.status();
    let mut removed_segments = 0;
    while !stop::requested() {
        std::thread::sleep(Duration::from_millis(100));
        let status = auto.status();
        if status.failures > seen.failures && !json {
            eprintln!(
                "archive: a run failed (retried at the next wake-up): {}",
                status.last_error.as_deref().unwrap_or("unknown error")
            );
        }
        if status.runs > seen.runs {
            removed_segments += checkpoint_after_run(archiver, &status, status.rows - seen.rows, json)?;
        }
        seen = status;
    }
    Ok((seen, removed_segments))
}

/// Runs the checkpoint after an auto-archiver run (which appended `new_rows`; `status` counts
/// every run so far) and prints both; returns the segments it removed.
fn checkpoint_after_run(
    archiver: &Archiver,
    status: &AutoArchiveStatus,
    new_rows: u64,
    json: bool,
) -> CliResult<usize> {
    let db = archiver.database();
    let checkpoint = db.checkpoint().map_err(|e| CliError::from_error("the checkpoint after archiving failed", &e))?;
    let mut out = output::stdout();
    if json {
        let line = serde_json::json!({
            "runs": status.runs,
            "rows": status.rows,
            "archived_lsn": db.archived_lsn(),
            "checkpoint": CheckpointJson::from(&checkpoint),
        });
        output::json_line(&mut out, &line)?;
    } else {
        outln!(
            &mut out,
            "archived    up to LSN {} (+{new_rows} rows); checkpoint removed {}",
            output::opt_lsn(db.archived_lsn()),
            plural(checkpoint.removed_segments.len(), "segment", "segments")
        )?;
    }
    output::finish(out)?;
    Ok(checkpoint.removed_segments.len())
}

fn compact(archiver: &Archiver, lake: &ResolvedLake, json: bool, args: &CompactArgs) -> CliResult {
    let options = CompactOptions {
        target_file_bytes: args.target_file_mib << 20,
        min_input_files: args.min_input_files as usize,
    };
    let report: CompactReport = archiver.compact(options).map_err(|e| CliError::from_error("compaction failed", &e))?;
    let doc = CompactJson {
        lake: lake.json(),
        partitions: report.partitions,
        input_files: report.input_files,
        output_files: report.output_files,
        rows: report.rows,
        snapshot_id: report.snapshot_id,
        table: lake::table_info(archiver)?,
    };
    output::emit(json, &doc, |out, doc| print_compact(out, doc, args))
}

fn print_compact(out: &mut Out, doc: &CompactJson, args: &CompactArgs) -> CliResult {
    match doc.snapshot_id {
        None => outln!(
            out,
            "compacted   nothing: no day has {} or more data files under {} MiB",
            args.min_input_files,
            args.target_file_mib
        )?,
        Some(id) => {
            outln!(
                out,
                "compacted   {} into {} ({} rows, {}) in snapshot {id}",
                plural(doc.input_files.len(), "data file", "data files"),
                plural(doc.output_files.len(), "file", "files"),
                doc.rows,
                plural(doc.partitions.len(), "day", "days")
            )?;
            outln!(
                out,
                "            the replaced files stay until their snapshots expire (`walden archive expire --retain-last 1`)"
            )?;
        }
    }
    print_lake(out, &doc.lake, &doc.table)
}

fn expire(archiver: &Archiver, lake: &ResolvedLake, json: bool, args: &ExpireArgs) -> CliResult {
    let older_than_ms = args.older_than.map(|o| o.cutoff_ms(now_ms()));
    let options = ExpireOptions { retain_last: args.retain_last as usize, older_than_ms };
    let report: ExpireReport =
        archiver.expire_snapshots(options).map_err(|e| CliError::from_error("snapshot expiry failed", &e))?;
    let doc = ExpireJson {
        lake: lake.json(),
        retain_last: args.retain_last,
        older_than_ms,
        expired_snapshot_ids: report.expired_snapshot_ids,
        removed_files: report.removed_files,
        table: lake::table_info(archiver)?,
    };
    output::emit(json, &doc, |out, doc| {
        outln!(
            out,
            "expired     {}; removed {} no snapshot references any more",
            plural(doc.expired_snapshot_ids.len(), "snapshot", "snapshots"),
            plural(doc.removed_files.len(), "file", "files")
        )?;
        print_lake(out, &doc.lake, &doc.table)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_parses_ages_and_times() {
        assert_eq!(parse_older_than("90s"), Ok(OlderThan::Age(90_000)));
        assert_eq!(parse_older_than("7d"), Ok(OlderThan::Age(7 * 86_400_000)));
        assert_eq!(parse_older_than("2w"), Ok(OlderThan::Age(14 * 86_400_000)));
        assert_eq!(parse_older_than("1970-01-01T00:00:00Z"), Ok(OlderThan::Time(0)));
        assert_eq!(parse_older_than("2000-03-01T00:00:00Z"), Ok(OlderThan::Time(951_868_800_000)));
        assert_eq!(parse_older_than("2000-03-01T02:00:00.5+02:00"), Ok(OlderThan::Time(951_868_800_500)));
        assert_eq!(parse_older_than("1969-12-31T23:59:59Z"), Ok(OlderThan::Time(-1000)));
        for bad in ["", "7", "d", "7y", "-3d", "2000-13-01T00:00:00Z", "2000-01-01", "2000-01-01T00:00:00", "soon"] {
            assert!(parse_older_than(bad).is_err(), "{bad:?}");
        }
        assert_eq!(OlderThan::Age(1000).cutoff_ms(5000), 4000);
    }

    #[test]
    fn older_than_times_are_real_calendar_dates() {
        const JAN_31_2026_MS: i64 = 1_769_817_600_000;
        assert_eq!(parse_older_than("2026-01-31T00:00:00Z"), Ok(OlderThan::Time(JAN_31_2026_MS)));
        assert_eq!(parse_older_than("2026-01-31T02:00:00+02:00"), Ok(OlderThan::Time(JAN_31_2026_MS)));
        assert_eq!(parse_older_than("2026-01-30T19:00:00-05:00"), Ok(OlderThan::Time(JAN_31_2026_MS)));
        assert_eq!(parse_older_than("1999-12-31T23:59:59.999Z"), Ok(OlderThan::Time(946_684_799_999)));
        // 2024 is a leap year, 2026 is not.
        assert_eq!(parse_older_than("2024-02-29T12:00:00Z"), Ok(OlderThan::Time(1_709_208_000_000)));
        for impossible in [
            "2026-02-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-31T24:00:00Z",
            "2026-01-31T00:60:00Z",
            "2026-01-31T00:00:00+24:00",
        ] {
            let e = parse_older_than(impossible).unwrap_err();
            assert!(e.contains("is not a valid time"), "{impossible}: {e}");
        }
        for garbage in ["2026-02-29", "garbage", "2026-01-31T00:00:00Zjunk", "2026-01-31 00:00", "20260131T000000Z"] {
            let e = parse_older_than(garbage).unwrap_err();
            assert!(e.contains("is neither an age"), "{garbage}: {e}");
        }
    }
}
