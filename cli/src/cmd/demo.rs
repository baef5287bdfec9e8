//! `walden demo`: the README's first command. A shop workload (users, orders, payments: inserts,
//! updates, deletes, a schema change, rolled-back transactions) from several threads with group
//! commit, followed live by a slot-backed subscriber that acknowledges what it processed; then
//! every sealed segment is archived to the lake beside the data directory (`<data-dir>.lake`,
//! Parquet in an Iceberg table), a checkpoint removes the archived segments, and a short summary
//! says how to query the lake with pyiceberg and DuckDB.
//!
//! The directory and its lake are created, or reset when an earlier `walden demo` left them
//! (they carry a marker file); a directory the demo did not create is never touched.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use walden_archive::config::CATALOG_FILE_NAME;
use walden_archive::{ArchiveReport, Archiver, LakeConfig};
use walden_cdc::{Cdc, Event, SubscriptionOptions, TransactionEventKind};
use walden_engine::record::Column;
use walden_engine::{
    Config, Database, Operation, SLOTS_DIR_NAME, SlotFilter, SlotOptions, StartPosition, SyncMode, WAL_DIR_NAME,
    WalConfig,
};
use walden_wal::Lsn;

use crate::cmd::archive::RunJson;
use crate::datadir::{self, DEMO_MARKER};
use crate::exit::{CliError, CliResult, Code};
use crate::lake::{self, LakeJson, TableInfo};
use crate::outln;
use crate::output::{self, bytes};

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

/// A tiny deterministic generator (splitmix64), so every run does the same kind of work.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct User {
    key: String,
    row: String,
    orders: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OrderStatus {
    Placed,
    Paid,
}

struct Order {
    key: String,
    user: String,
    total_cents: u64,
    status: OrderStatus,
}

fn user_row(key: &str, plan: &str, orders: u32, tier: bool) -> String {
    let n = key.trim_start_matches("u-");
    let tier = if tier { r#","tier":"bronze""# } else { "" };
    format!(
        r#"{{"id":"{key}","name":"User {n}","email":"user{n}@example.com","plan":"{plan}","orders":{orders}{tier}}}"#
    )
}

fn order_row(o: &Order) -> String {
    let status = match o.status {
        OrderStatus::Placed => "placed",
        OrderStatus::Paid => "paid",
    };
    format!(r#"{{"id":"{}","user":"{}","total_cents":{},"status":"{status}"}}"#, o.key, o.user, o.total_cents)
}

/// What one writer thread did.
#[derive(Debug, Default, Clone, Copy)]
struct WriterStats {
    committed: u64,
    rolled_back: u64,
    inserts: u64,
    updates: u64,
    deletes: u64,
    schema_changes: u64,
}

/// The workload of one thread.
struct Writer<'a> {
    db: &'a Database,
    thread: u64,
    rng: Rng,
    users: Vec<User>,
    orders: Vec<Order>,
    next_id: u64,
    tier_added: &'a AtomicBool,
    stats: WriterStats,
}

impl Writer<'_> {
    fn key(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}-{}", self.thread, self.next_id)
    }

    fn signup(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        let key = self.key("u");
        let row = user_row(&key, "free", 0, self.tier_added.load(Ordering::Relaxed));
        txn.insert("users", key.as_bytes(), row.as_bytes())?;
        self.stats.inserts += 1;
        self.users.push(User { key, row, orders: 0 });
        Ok(())
    }

    fn place_order(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        if self.users.is_empty() {
            return self.signup(txn);
        }
        let u = self.rng.below(self.users.len() as u64) as usize;
        let key = self.key("o");
        let order = Order {
            key,
            user: self.users[u].key.clone(),
            total_cents: 500 + self.rng.below(20_000),
            status: OrderStatus::Placed,
        };
        txn.insert("orders", order.key.as_bytes(), order_row(&order).as_bytes())?;
        let user = &mut self.users[u];
        user.orders += 1;
        let plan = if user.row.contains(r#""plan":"pro""#) { "pro" } else { "free" };
        let new_row = user_row(&user.key, plan, user.orders, user.row.contains("tier"));
        txn.update("users", user.key.as_bytes(), user.row.as_bytes(), new_row.as_bytes())?;
        user.row = new_row;
        self.stats.inserts += 1;
        self.stats.updates += 1;
        self.orders.push(order);
        Ok(())
    }

    fn placed_order(&mut self) -> Option<usize> {
        let placed: Vec<usize> =
            (0..self.orders.len()).filter(|&i| self.orders[i].status == OrderStatus::Placed).collect();
        (!placed.is_empty()).then(|| placed[self.rng.below(placed.len() as u64) as usize])
    }

    fn pay(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        let Some(i) = self.placed_order() else { return self.place_order(txn) };
        let key = self.key("p");
        let order = &self.orders[i];
        let payment =
            format!(r#"{{"id":"{key}","order":"{}","amount_cents":{},"method":"card"}}"#, order.key, order.total_cents);
        txn.insert("payments", key.as_bytes(), payment.as_bytes())?;
        let before = order_row(order);
        self.orders[i].status = OrderStatus::Paid;
        let after = order_row(&self.orders[i]);
        txn.update("orders", self.orders[i].key.as_bytes(), before.as_bytes(), after.as_bytes())?;
        self.stats.inserts += 1;
        self.stats.updates += 1;
        Ok(())
    }

    fn upgrade(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        if self.users.is_empty() {
            return self.signup(txn);
        }
        let u = self.rng.below(self.users.len() as u64) as usize;
        let user = &mut self.users[u];
        let new_row = user_row(&user.key, "pro", user.orders, user.row.contains("tier"));
        txn.update("users", user.key.as_bytes(), user.row.as_bytes(), new_row.as_bytes())?;
        user.row = new_row;
        self.stats.updates += 1;
        Ok(())
    }

    fn cancel(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        let Some(i) = self.placed_order() else { return self.place_order(txn) };
        let order = self.orders.swap_remove(i);
        txn.delete("orders", order.key.as_bytes(), order_row(&order).as_bytes())?;
        self.stats.deletes += 1;
        Ok(())
    }

    /// One transaction: commits, or (about 7%) rolls back a checkout whose card was declined.
    fn step(&mut self, i: u64, schema_change_at: Option<u64>) -> walden_engine::Result<()> {
        let mut txn = self.db.begin();
        txn.set_namespace("shop");
        txn.set_actor(format!("checkout-{}", self.thread));
        txn.set_correlation_id(format!("req-{}-{i}", self.thread));
        if schema_change_at == Some(i) {
            txn.set_actor("migrations");
            txn.add_column("users", 2, Column::new("tier", "TEXT", true))?;
            txn.commit()?;
            self.tier_added.store(true, Ordering::Relaxed);
            self.stats.schema_changes += 1;
            self.stats.committed += 1;
            return Ok(());
        }
        let roll = self.rng.below(100);
        if roll >= 93 {
            // Card declined: the order and payment are never written.
            let key = self.key("o");
            txn.insert("orders", key.as_bytes(), br#"{"status":"placed"}"#)?;
            txn.insert("payments", b"declined", br#"{"method":"card"}"#)?;
            txn.rollback();
            self.stats.rolled_back += 1;
            return Ok(());
        }
        let saved = self.stats;
        let result = match roll {
            0..18 => self.signup(&mut txn),
            18..45 => self.place_order(&mut txn),
            45..70 => self.pay(&mut txn),
            70..80 => self.upgrade(&mut txn),
            _ => self.cancel(&mut txn),
        };
        if let Err(e) = result.and_then(|()| txn.commit().map(|_| ())) {
            self.stats = saved;
            return Err(e);
        }
        self.stats.committed += 1;
        Ok(())
    }
}

/// What the subscriber saw.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct SubscriberStats {
    events: u64,
    inserts: u64,
    updates: u64,
    deletes: u64,
    schema_changes: u64,
    transactions: u64,
    acknowledged_lsn: Lsn,
    max_lag_lsns: u64,
}

/// Follows slot "demo" until `done` is set and everything up to `final_lsn` is processed.
fn subscribe(
    db: Arc<Database>,
    done: &AtomicBool,
    final_lsn: &AtomicU64,
) -> Result<SubscriberStats, walden_cdc::CdcError> {
    let cdc = Cdc::new(db.clone());
    let mut sub = cdc.subscribe_slot("demo", SubscriptionOptions::default().with_transaction_control(true))?;
    let mut stats = SubscriberStats::default();
    let mut last_commit = 0;
    let mut last_ack = Instant::now();
    loop {
        match sub.next_timeout(Duration::from_millis(20)) {
            Some(Ok(event)) => match event {
                Event::Change(c) => {
                    stats.events += 1;
                    match c.op {
                        walden_cdc::Operation::Insert => stats.inserts += 1,
                        walden_cdc::Operation::Update => stats.updates += 1,
                        walden_cdc::Operation::Delete => stats.deletes += 1,
                    }
                }
                Event::Schema(_) => {
                    stats.events += 1;
                    stats.schema_changes += 1;
                }
                Event::Transaction(t) if t.kind == TransactionEventKind::Commit => {
                    stats.transactions += 1;
                    last_commit = t.lsn;
                }
                Event::Transaction(_) => {}
            },
            Some(Err(e)) => return Err(e),
            None => {}
        }
        let finished = done.load(Ordering::SeqCst) && sub.stream().position() >= final_lsn.load(Ordering::SeqCst);
        // Acknowledge at most ten times a second (each acknowledgement is a durable slot write).
        if last_commit > stats.acknowledged_lsn && (finished || last_ack.elapsed() >= Duration::from_millis(100)) {
            sub.ack(last_commit)?;
            stats.acknowledged_lsn = last_commit;
            last_ack = Instant::now();
        }
        let lag = db.wal().durable_lsn().saturating_sub(stats.acknowledged_lsn);
        stats.max_lag_lsns = stats.max_lag_lsns.max(lag);
        if finished {
            break;
        }
    }
    sub.close()?;
    Ok(stats)
}

/// What to do with a directory the demo writes (its data directory, and the lake beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// It does not exist: create it.
    Create,
    /// It exists and is empty: use it.
    UseEmpty,
    /// An earlier `walden demo` left it (it holds the marker): reset it.
    Reset,
}

/// Decides what to do with `dir` without changing anything: a directory the demo did not create
/// (no marker) and that is not empty is refused.
fn plan(dir: &Path) -> CliResult<Plan> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Plan::Create),
        Err(e) => Err(CliError::io("cannot access", dir, &e)),
        Ok(m) if !m.is_dir() => {
            Err(CliError::new(Code::Foreign, format!("{} exists and is not a directory", dir.display())))
        }
        Ok(_) => {
            let mut names = Vec::new();
            for entry in fs::read_dir(dir).map_err(|e| CliError::io("cannot list", dir, &e))? {
                let entry = entry.map_err(|e| CliError::io("cannot list", dir, &e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            if names.is_empty() {
                Ok(Plan::UseEmpty)
            } else if names.iter().any(|n| n == DEMO_MARKER) {
                Ok(Plan::Reset)
            } else {
                Err(CliError::new(
                    Code::Foreign,
                    format!("{} exists and was not created by `walden demo`; refusing to reset it", dir.display()),
                )
                .with_hint("pass --data-dir with a new or empty directory (the lake goes beside it, in <dir>.lake)"))
            }
        }
    }
}

fn remove(path: &Path, dir: bool) -> CliResult {
    let result = if dir { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::io("cannot remove", path, &e)),
    }
}

fn mark(dir: &Path) -> CliResult {
    fs::create_dir_all(dir).map_err(|e| CliError::io("cannot create", dir, &e))?;
    let marker = dir.join(DEMO_MARKER);
    fs::write(&marker, "created by `walden demo`; the demo resets this directory when run again\n")
        .map_err(|e| CliError::io("cannot write", &marker, &e))
}

/// Prepares the data directory and the lake beside it (both are checked before either is
/// touched); says what it did.
fn prepare(data_dir: &Path, lake_dir: &Path) -> CliResult<String> {
    let data_plan = plan(data_dir)?;
    let lake_plan = plan(lake_dir)?;
    let said = match data_plan {
        Plan::Create => format!("creating {}", data_dir.display()),
        Plan::UseEmpty => format!("using the empty directory {}", data_dir.display()),
        Plan::Reset => format!("resetting {} (left by an earlier `walden demo`)", data_dir.display()),
    };
    let lake_said = match lake_plan {
        Plan::Create => format!("creating its lake {}", lake_dir.display()),
        Plan::UseEmpty => format!("using the empty directory {} as its lake", lake_dir.display()),
        Plan::Reset => format!("resetting its lake {}", lake_dir.display()),
    };
    // Hold the database's lock while deleting it, so a running process keeps its files.
    let _lock = match data_plan {
        Plan::Reset => datadir::try_lock(&data_dir.join(WAL_DIR_NAME))?,
        _ => None,
    };
    if data_plan == Plan::Reset {
        remove(&data_dir.join(WAL_DIR_NAME), true)?;
        remove(&data_dir.join(SLOTS_DIR_NAME), true)?;
        remove(&data_dir.join(walden_engine::state::STATE_FILE_NAME), false)?;
        remove(&data_dir.join(format!("{}.tmp", walden_engine::state::STATE_FILE_NAME)), false)?;
    }
    mark(data_dir)?;
    if lake_plan == Plan::Reset {
        // The lake of the earlier run archived LSNs of a log that no longer exists.
        remove(lake_dir, true)?;
    }
    mark(lake_dir)?;
    Ok(format!("{said}; {lake_said}"))
}

#[derive(Debug, Serialize)]
struct DemoSummary {
    data_dir: String,
    /// What was done to the directory first (created, reset, ...).
    prepared: String,
    threads: u64,
    transactions_committed: u64,
    transactions_rolled_back: u64,
    inserts: u64,
    updates: u64,
    deletes: u64,
    schema_changes: u64,
    elapsed_ms: u64,
    commits_per_second: f64,
    fdatasyncs: u64,
    subscriber: SubscriberStats,
    slot_demo_lag_lsns: u64,
    slot_audit_lag_lsns: u64,
    slot_audit_pinned_bytes: u64,
    first_lsn: Lsn,
    last_lsn: Lsn,
    segments: usize,
    sealed_segments: usize,
    segment_bytes: u64,
    checkpoint_removed_segments: usize,
    checkpoint_held_by: String,
    /// Segments left in the local WAL after archiving and the checkpoint.
    segments_after_checkpoint: usize,
    archive: DemoArchive,
}

/// What the demo archived, and how to query it.
#[derive(Debug, Serialize)]
struct DemoArchive {
    lake: LakeJson,
    #[serde(flatten)]
    run: RunJson,
    table: TableInfo,
    elapsed_ms: u64,
    /// Python (pyiceberg) that reads the table through the lake's sqlite catalog.
    pyiceberg: String,
    /// DuckDB SQL that reads the current metadata JSON (after `INSTALL iceberg; LOAD iceberg;`).
    duckdb_sql: String,
}

/// Runs `walden demo`.
pub fn run(data_dir: &Path, json: bool, args: &DemoArgs) -> CliResult {
    let lake_dir = lake::default_lake_dir(data_dir)?;
    let said = prepare(data_dir, &lake_dir)?;
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
    let closed = datadir::close_database(db);
    let summary = summary?;
    closed?;
    let mut out = output::stdout();
    if json {
        output::json_doc(&mut out, &summary)?;
    } else {
        print_summary(&mut out, &summary)?;
    }
    output::finish(out)
}

fn engine_err(context: &str) -> impl Fn(walden_engine::EngineError) -> CliError + '_ {
    move |e| CliError::from_error(context, &e)
}

fn workload(
    db: &Arc<Database>,
    data_dir: &Path,
    lake_dir: &Path,
    args: &DemoArgs,
    json: bool,
) -> CliResult<DemoSummary> {
    db.create_slot("demo", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() })
        .map_err(engine_err("cannot create slot \"demo\""))?;
    let audit = SlotFilter {
        tables: Some(["payments".to_string()].into_iter().collect()),
        operations: Some([Operation::Insert].into_iter().collect()),
    };
    db.create_slot("audit", SlotOptions { start: StartPosition::Oldest, filter: audit, temporary: false })
        .map_err(engine_err("cannot create slot \"audit\""))?;
    let mut setup = db.begin();
    setup.set_namespace("shop").set_actor("migrations");
    let created = (|| {
        setup.create_table(
            "users",
            1,
            &[
                Column::new("id", "TEXT", false),
                Column::new("name", "TEXT", false),
                Column::new("email", "TEXT", false),
                Column::new("plan", "TEXT", false),
                Column::new("orders", "INTEGER", false),
            ],
        )?;
        setup.create_table(
            "orders",
            1,
            &[
                Column::new("id", "TEXT", false),
                Column::new("user", "TEXT", false),
                Column::new("total_cents", "BIGINT", false),
                Column::new("status", "TEXT", false),
            ],
        )?;
        setup.create_table(
            "payments",
            1,
            &[
                Column::new("id", "TEXT", false),
                Column::new("order", "TEXT", false),
                Column::new("amount_cents", "BIGINT", false),
                Column::new("method", "TEXT", false),
            ],
        )
    })();
    created.map_err(engine_err("cannot create the tables"))?;
    setup.commit().map_err(engine_err("cannot create the tables"))?;

    let progress = if json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(args.transactions), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} transactions  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    };
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
        let subscriber = scope.spawn(move || subscribe(sub_db, done_ref, final_ref));
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let share = args.transactions / args.threads + u64::from(t < args.transactions % args.threads);
                let progress = progress.clone();
                let tier_added = &tier_added;
                let db: &Database = db;
                scope.spawn(move || -> walden_engine::Result<WriterStats> {
                    let mut w = Writer {
                        db,
                        thread: t,
                        rng: Rng(0x5EED ^ t.wrapping_mul(0x1000_0001)),
                        users: Vec::new(),
                        orders: Vec::new(),
                        next_id: 0,
                        tier_added,
                        stats: WriterStats::default(),
                    };
                    let schema_change_at = (t == 0).then_some(share / 2);
                    for i in 0..share {
                        w.step(i, schema_change_at)?;
                        progress.inc(1);
                    }
                    Ok(w.stats)
                })
            })
            .collect();
        let writers: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Err(walden_engine::EngineError::InvalidInput("writer panicked".into())))
            })
            .collect();
        let elapsed = started.elapsed();
        final_lsn.store(db.wal().durable_lsn(), Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        let subscriber = subscriber.join();
        (writers, subscriber, elapsed)
    });
    progress.finish_and_clear();
    let mut totals = WriterStats::default();
    for w in writers {
        let w = w.map_err(engine_err("the workload failed"))?;
        totals.committed += w.committed;
        totals.rolled_back += w.rolled_back;
        totals.inserts += w.inserts;
        totals.updates += w.updates;
        totals.deletes += w.deletes;
        totals.schema_changes += w.schema_changes;
    }
    let subscriber = subscriber
        .map_err(|_| CliError::new(Code::Failure, "the subscriber thread panicked"))?
        .map_err(|e| CliError::from_error("the subscriber failed", &e))?;
    db.flush().map_err(engine_err("flushing the log failed"))?;
    let written = db.status();
    let sealed_segments = db.segments().iter().filter(|s| s.sealed).count();
    let archived = archive(db, lake_dir, json)?;
    let checkpoint = db.checkpoint().map_err(engine_err("the checkpoint failed"))?;
    let archive = archived.summary(&checkpoint);
    let status = db.status();
    let slot = |name: &str| status.slots.iter().find(|s| s.info.name == name);
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(DemoSummary {
        data_dir: data_dir.display().to_string(),
        prepared: String::new(),
        threads: args.threads,
        transactions_committed: totals.committed + 1, // the setup transaction too
        transactions_rolled_back: totals.rolled_back,
        inserts: totals.inserts,
        updates: totals.updates,
        deletes: totals.deletes,
        schema_changes: totals.schema_changes + 3,
        elapsed_ms: elapsed.as_millis() as u64,
        commits_per_second: totals.committed as f64 / secs,
        fdatasyncs: db.wal().stats().data_syncs,
        subscriber,
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

/// What [`archive`] did.
struct Archived {
    report: ArchiveReport,
    lake: LakeJson,
    table: TableInfo,
    elapsed_ms: u64,
}

impl Archived {
    /// The summary, with the checkpoint that followed the archive run.
    fn summary(self, checkpoint: &walden_engine::CheckpointReport) -> DemoArchive {
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

/// Archives every sealed segment into the lake beside the data directory.
fn archive(db: &Arc<Database>, lake_dir: &Path, json: bool) -> CliResult<Archived> {
    let started = Instant::now();
    let config = LakeConfig::local_dir(lake_dir)
        .map_err(|e| CliError::from_error(format!("no lake URL for {}", lake_dir.display()), &e))?;
    let location = config.location().map_err(|e| CliError::from_error("bad lake location", &e))?;
    let lake = lake::LakeJson {
        url: config.url.clone(),
        dir: Some(lake_dir.to_path_buf()),
        catalog: lake_dir.join(CATALOG_FILE_NAME),
        warehouse: location.warehouse_url(),
        table: format!("{}.{}", config.namespace, config.table),
    };
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

/// A Python string literal (double-quoted).
fn py_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Python that opens the lake's sqlite catalog with pyiceberg and counts the events by table and
/// operation.
fn pyiceberg_snippet(lake: &LakeJson) -> String {
    let uri = format!("sqlite:///{}", lake.catalog.display());
    format!(
        "from pyiceberg.catalog.sql import SqlCatalog\n\
         catalog = SqlCatalog(\"walden\", uri={}, warehouse={})\n\
         events = catalog.load_table({}).scan().to_arrow()\n\
         print(events.num_rows, \"events\")\n\
         for row in events.group_by([\"table_name\", \"op\"]).aggregate([(\"lsn\", \"count\")]).sort_by([(\"table_name\", \"ascending\"), (\"op\", \"ascending\")]).to_pylist():\n\
         \x20   print(f'{{row[\"table_name\"]:<9}} {{row[\"op\"]:<7}} {{row[\"lsn_count\"]}}')\n",
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

fn print_summary(out: &mut output::Out, s: &DemoSummary) -> CliResult {
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
    )?;
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
    )?;
    outln!(out)?;
    outln!(out, "query the lake with pyiceberg (pip install \"pyiceberg[sql-sqlite,pyarrow]\"):")?;
    outln!(out, "python3 - <<'EOF'\n{}EOF", a.pyiceberg)?;
    outln!(out, "or with DuckDB (its current metadata file):")?;
    outln!(out, "duckdb <<'EOF'\nINSTALL iceberg; LOAD iceberg;\n{}\nEOF", a.duckdb_sql)?;
    let dir = if s.data_dir == "walden-data" { String::new() } else { format!(" --data-dir {}", s.data_dir) };
    outln!(out)?;
    outln!(out, "next:  walden status{dir}")?;
    outln!(out, "       walden slots list{dir}")?;
    outln!(out, "       walden replay{dir} --from-lsn 1 --end-lsn 12 --transactions   # from the lake, then the WAL")?;
    outln!(out, "       walden dump{dir} --stats")?;
    outln!(out, "       walden tail{dir} --slot audit --drain")?;
    outln!(out, "       walden verify{dir}")
}
