//! `walden demo`: the README's first command. A shop workload (users, orders, payments: inserts,
//! updates, deletes, a schema change, rolled-back transactions) from several threads with group
//! commit, followed live by a slot-backed subscriber that acknowledges what it processed; then
//! every sealed segment is archived to the lake beside the data directory (`<data-dir>.lake`,
//! Parquet in an Iceberg table), a checkpoint removes the archived segments, and a short summary
//! says how to query the lake with pyiceberg and DuckDB.
//!
//! The directory and its lake are created, or reset when an earlier `walden demo` left them
//! (they carry a marker file); a directory the demo did not create is never touched.

mod dirs;
mod shop;
mod subscriber;
mod summary;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use walden_archive::config::CATALOG_FILE_NAME;
use walden_archive::{Archiver, LakeConfig};
use walden_engine::{
    Config, Database, EngineError, Operation, SlotFilter, SlotOptions, StartPosition, SyncMode, WalConfig,
};
use walden_wal::Lsn;

use self::shop::{Writer, WriterStats};
use self::subscriber::SubscriberStats;
use self::summary::{Archived, DemoSummary};
use crate::exit::{CliError, CliResult, Code};
use crate::lake::{self, LakeJson};
use crate::{datadir, output, thread};

/// Options of `walden demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Transactions the workload attempts (about 7% are rolled back).
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub transactions: u64,
    /// Concurrent writer threads.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// WAL segment size in KiB (small, so that the run spans several segments).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(4..=1_048_576))]
    pub segment_kib: u64,
}

/// Runs `walden demo`.
pub fn run(data_dir: &Path, json: bool, args: &DemoArgs) -> CliResult {
    let lake_dir = lake::default_lake_dir(data_dir)?;
    let said = dirs::prepare(data_dir, &lake_dir)?;
    if !json {
        eprintln!("walden demo: {said}");
    }
    let config = Config {
        wal: WalConfig {
            sync_mode: SyncMode::Group,
            target_segment_size_bytes: args.segment_kib * 1024,
            ..WalConfig::default()
        },
        ..Config::default()
    };
    let db = Arc::new(
        Database::open(data_dir, config)
            .map_err(|e| CliError::from_error(format!("cannot open {}", data_dir.display()), &e))?,
    );
    let summary = workload(&db, data_dir, &lake_dir, args, json).map(|s| DemoSummary { prepared: said, ..s });
    let summary = datadir::close_after(db, summary)?;
    output::emit(json, &summary, summary::print_summary)
}

fn engine_err(context: &str) -> impl Fn(EngineError) -> CliError + '_ {
    move |e| CliError::from_error(context, &e)
}

/// The demo's phases: slots and tables, the writers with the live subscriber, archiving and the
/// checkpoint; then what they did.
fn workload(
    db: &Arc<Database>,
    data_dir: &Path,
    lake_dir: &Path,
    args: &DemoArgs,
    json: bool,
) -> CliResult<DemoSummary> {
    create_slots(db)?;
    shop::create_tables(db).map_err(engine_err("cannot create the tables"))?;
    let run = run_threads(db, args, json)?;
    db.flush().map_err(engine_err("flushing the log failed"))?;
    let written = db.status();
    let sealed_segments = db.segments().iter().filter(|s| s.sealed).count();
    let archived = archive(db, lake_dir, json)?;
    let checkpoint = db.checkpoint().map_err(engine_err("the checkpoint failed"))?;
    let archive = archived.summary(&checkpoint);
    let status = db.status();
    let slot = |name: &str| status.slots.iter().find(|s| s.info.name == name);
    let secs = run.elapsed.as_secs_f64().max(1e-9);
    Ok(DemoSummary {
        data_dir: data_dir.display().to_string(),
        prepared: String::new(),
        threads: args.threads,
        transactions_committed: run.totals.committed + 1, // the setup transaction too
        transactions_rolled_back: run.totals.rolled_back,
        inserts: run.totals.inserts,
        updates: run.totals.updates,
        deletes: run.totals.deletes,
        schema_changes: run.totals.schema_changes + shop::CREATED_TABLES,
        elapsed_ms: run.elapsed.as_millis() as u64,
        commits_per_second: run.totals.committed as f64 / secs,
        fdatasyncs: db.wal().stats().data_syncs,
        subscriber: run.subscriber,
        slot_demo_lag_lsns: slot("demo").map_or(0, |s| s.lag_lsns),
        slot_audit_lag_lsns: slot("audit").map_or(0, |s| s.lag_lsns),
        slot_audit_pinned_bytes: slot("audit").map_or(0, |s| s.pinned_bytes),
        first_lsn: written.oldest_lsn,
        last_lsn: written.current_lsn,
        segments: written.segment_count,
        sealed_segments,
        segment_bytes: written.segment_bytes,
        checkpoint_removed_segments: checkpoint.removed_segments.len(),
        checkpoint_held_by: checkpoint.held_by.to_string(),
        segments_after_checkpoint: status.segment_count,
        archive,
    })
}

/// Slot "demo" (followed live by the subscriber) and slot "audit" (payment inserts only, never
/// consumed: it shows what a lagging slot pins).
fn create_slots(db: &Database) -> CliResult {
    db.create_slot("demo", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() })
        .map_err(engine_err("cannot create slot \"demo\""))?;
    let audit = SlotFilter {
        tables: Some(["payments".to_string()].into_iter().collect()),
        operations: Some([Operation::Insert].into_iter().collect()),
    };
    db.create_slot("audit", SlotOptions { start: StartPosition::Oldest, filter: audit, temporary: false })
        .map_err(engine_err("cannot create slot \"audit\""))?;
    Ok(())
}

/// What the writer threads and the subscriber did.
struct Run {
    totals: WriterStats,
    subscriber: SubscriberStats,
    /// From the first transaction to the last commit.
    elapsed: Duration,
}

/// Runs the workload from `--threads` writers while the subscriber follows slot "demo", until
/// every writer is done and the subscriber has processed everything they committed.
fn run_threads(db: &Arc<Database>, args: &DemoArgs, json: bool) -> CliResult<Run> {
    let progress = progress_bar(args, json);
    if !json {
        eprintln!(
            "workload: {} transactions on users, orders and payments from {} threads, group commit; \
             slot \"demo\" follows it live",
            args.transactions, args.threads
        );
    }
    let done = AtomicBool::new(false);
    let final_lsn = AtomicU64::new(Lsn::MAX);
    let tier_added = AtomicBool::new(false);
    let started = Instant::now();
    let (writers, subscriber, elapsed) = std::thread::scope(|scope| {
        let sub_db = db.clone();
        let (done_ref, final_ref) = (&done, &final_lsn);
        let subscriber = thread::spawn_scoped(scope, "demo-subscriber".to_string(), move || {
            subscriber::subscribe(sub_db, done_ref, final_ref)
        })?;
        let (handles, spawn_error) = thread::spawn_workers(scope, "demo-writer", args.threads, |t| {
            let share = args.transactions / args.threads + u64::from(t < args.transactions % args.threads);
            let (progress, tier_added, db) = (progress.clone(), &tier_added, &**db);
            move || Writer::new(db, t, tier_added).run(share, (t == 0).then_some(share / 2), || progress.inc(1))
        });
        // A join fails only if the writer panicked.
        let writers: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(EngineError::InvalidInput("writer panicked".into()))))
            .collect();
        let elapsed = started.elapsed();
        // The subscriber stops once it has seen everything the writers committed.
        final_lsn.store(db.wal().durable_lsn(), Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        let subscriber = subscriber.join();
        spawn_error.map_or(Ok((writers, subscriber, elapsed)), Err)
    })?;
    progress.finish_and_clear();
    let mut totals = WriterStats::default();
    for w in writers {
        totals += w.map_err(engine_err("the workload failed"))?;
    }
    let subscriber = subscriber
        .map_err(|_| CliError::new(Code::Failure, "the subscriber thread panicked"))?
        .map_err(|e| CliError::from_error("the subscriber failed", &e))?;
    Ok(Run { totals, subscriber, elapsed })
}

/// The workload's progress bar on stderr (hidden with `--json`).
fn progress_bar(args: &DemoArgs, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(args.transactions), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} transactions  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Archives every sealed segment into the lake beside the data directory.
fn archive(db: &Arc<Database>, lake_dir: &Path, json: bool) -> CliResult<Archived> {
    let started = Instant::now();
    let config = LakeConfig::local_dir(lake_dir)
        .map_err(|e| CliError::from_error(format!("no lake URL for {}", lake_dir.display()), &e))?;
    let location = config.location().map_err(|e| CliError::from_error("bad lake location", &e))?;
    let lake = LakeJson::new(&config, &location, lake_dir.join(CATALOG_FILE_NAME));
    let spinner = if json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("archiving the sealed segments to {} (Parquet, Iceberg)", lake_dir.display()));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    };
    let result = (|| {
        let archiver = Archiver::open(db.clone(), config)
            .map_err(|e| CliError::from_error(format!("cannot open the lake {}", lake_dir.display()), &e))?;
        let report = archiver.archive_sealed().map_err(|e| CliError::from_error("archiving failed", &e))?;
        let table = lake::table_info(&archiver)?;
        Ok::<_, CliError>((report, table))
    })();
    spinner.finish_and_clear();
    let (report, table) = result?;
    Ok(Archived { report, lake, table, elapsed_ms: started.elapsed().as_millis() as u64 })
}
