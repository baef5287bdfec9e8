//! `walden tail`: like `pg_recvlogical`, streams a slot's change events as JSON lines (to stdout
//! or appended to `--file`), acknowledging on the slot only what has been written — and, with
//! `--file`, fsynced — so a restart resumes exactly after the last acknowledged transaction.
//!
//! A Walden database is open in one process at a time, so `tail` opens it itself: it fails with
//! exit code 5 while an application has the database open, and while it runs it holds the
//! database. It delivers everything after the slot's confirmed position, then waits for more
//! until `--end-lsn` is reached, `--drain` finds nothing left, or SIGINT / SIGTERM ends it cleanly.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use walden_cdc::envelope::{EnvelopeEncoder, EnvelopeFormat};
use walden_cdc::{Cdc, Event, SlotSubscription, SubscriptionOptions, TransactionEventKind};
use walden_engine::{Database, EngineError, RecoveryMode, SlotInfo, SlotOptions, StartPosition};
use walden_wal::Lsn;

use crate::cmd::slots::{self, OpArg};
use crate::datadir;
use crate::exit::{CliError, CliResult, Code};
use crate::lake::LakeArgs;
use crate::output;
use crate::stop;

/// An event envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Walden's own JSON.
    Native,
    /// Debezium's change-event envelope (and BEGIN / END transaction records).
    Debezium,
    /// The CDCEvent envelope (row changes only).
    Cdcevent,
    /// The UnifiedEvent envelope (row changes only).
    Unified,
}

impl From<FormatArg> for EnvelopeFormat {
    fn from(f: FormatArg) -> EnvelopeFormat {
        match f {
            FormatArg::Native => EnvelopeFormat::Native,
            FormatArg::Debezium => EnvelopeFormat::Debezium,
            FormatArg::Cdcevent => EnvelopeFormat::CdcEvent,
            FormatArg::Unified => EnvelopeFormat::Unified,
        }
    }
}

/// Options of `walden tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The replication slot to consume; it remembers what was acknowledged.
    #[arg(long, value_name = "NAME")]
    pub slot: String,
    /// Create the slot if it does not exist (at --start-lsn, or at the current end of the log),
    /// with the --table / --op filters.
    #[arg(long)]
    pub create: bool,
    /// The envelope of each JSON line.
    #[arg(long, value_enum, default_value = "native")]
    pub format: FormatArg,
    /// Append the events to this file, fsynced before they are acknowledged (default: stdout,
    /// flushed before they are acknowledged).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Skip events before this LSN (at or after the slot's restart LSN; a slot never goes back).
    #[arg(long, value_parser = crate::output::parse_lsn, value_name = "LSN")]
    pub start_lsn: Option<Lsn>,
    /// Stop once the transaction holding this LSN has been written and acknowledged.
    #[arg(long, value_parser = crate::output::parse_lsn, value_name = "LSN")]
    pub end_lsn: Option<Lsn>,
    /// Exit as soon as every event available now is written and acknowledged.
    #[arg(long)]
    pub drain: bool,
    /// Also write the BEGIN / COMMIT events of each transaction (native and debezium formats).
    #[arg(long)]
    pub transactions: bool,
    /// With --create: only changes of this table (repeatable).
    #[arg(long = "table", value_name = "TABLE", requires = "create")]
    pub tables: Vec<String>,
    /// With --create: only this kind of change (repeatable).
    #[arg(long = "op", value_enum, value_name = "OP", requires = "create")]
    pub ops: Vec<OpArg>,
    /// Where archived LSNs are read from when the slot needs LSNs the local WAL no longer holds
    /// (used only if a lake exists there).
    #[command(flatten)]
    pub lake: LakeArgs,
}

/// Events written but not yet flushed before a flush is forced.
const MAX_UNFLUSHED_EVENTS: u64 = 1000;
/// Longest time written events stay unflushed and unacknowledged.
const MAX_UNFLUSHED_AGE: Duration = Duration::from_secs(1);
/// How long one wait for new events lasts before the stop flag is checked again.
const POLL: Duration = Duration::from_millis(200);

enum Sink {
    Stdout(output::Out),
    File(BufWriter<File>, PathBuf),
}

impl Sink {
    fn open(path: Option<&Path>) -> CliResult<Sink> {
        match path {
            None => Ok(Sink::Stdout(output::stdout())),
            Some(p) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| CliError::io("cannot open the output file", p, &e))?;
                Ok(Sink::File(BufWriter::with_capacity(64 << 10, file), p.to_path_buf()))
            }
        }
    }

    fn line(&mut self, value: &serde_json::Value) -> CliResult {
        match self {
            Sink::Stdout(out) => output::json_line(out, value),
            Sink::File(w, path) => {
                let path = path.clone();
                serde_json::to_writer(&mut *w, value)
                    .map_err(|e| CliError::new(Code::Failure, format!("cannot write {}: {e}", path.display())))?;
                w.write_all(b"\n").map_err(|e| CliError::io("cannot write", &path, &e))
            }
        }
    }

    /// Makes everything written so far reach its destination: flushed to stdout, or flushed and
    /// fdatasynced to the file.
    fn commit(&mut self) -> CliResult {
        match self {
            Sink::Stdout(out) => out.flush().map_err(output::out_err),
            Sink::File(w, path) => {
                w.flush().map_err(|e| CliError::io("cannot write", path, &e))?;
                w.get_ref().sync_data().map_err(|e| CliError::io("cannot fdatasync", path, &e))
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    slot: String,
    events_written: u64,
    transactions_acknowledged: u64,
    confirmed_lsn: Lsn,
    stopped_by: &'static str,
}

struct Tail<'a> {
    args: &'a TailArgs,
    sub: SlotSubscription,
    sink: Sink,
    encoder: EnvelopeEncoder,
    start_lsn: Lsn,
    /// Highest COMMIT LSN whose events are all written (not necessarily flushed).
    written_commit: Lsn,
    acked: Lsn,
    unflushed: u64,
    last_flush: Instant,
    events_written: u64,
    transactions_acked: u64,
    transactions_written: u64,
    /// JSON mode: no human notes on stderr.
    json: bool,
    /// Whether the "caught up, waiting" note was printed.
    said_waiting: bool,
}

impl Tail<'_> {
    fn handle(&mut self, event: Event) -> CliResult {
        let is_commit = matches!(&event, Event::Transaction(t) if t.kind == TransactionEventKind::Commit);
        let is_txn_event = matches!(event, Event::Transaction(_));
        if event.lsn() >= self.start_lsn
            && (!is_txn_event || self.args.transactions)
            && let Some(value) = self.encoder.encode(&event)
        {
            self.sink.line(&value)?;
            self.unflushed += 1;
            if !is_txn_event {
                self.events_written += 1;
            }
        }
        if is_commit {
            self.written_commit = event.lsn();
            self.transactions_written += 1;
        }
        Ok(())
    }

    /// Flushes (and fsyncs) what was written, then acknowledges it on the slot. When the stream
    /// has caught up, everything it read is acknowledged, including transactions the filters left
    /// out (the stream has then consumed whole transactions only).
    fn flush_and_ack(&mut self, caught_up: bool) -> CliResult {
        self.sink.commit()?;
        self.unflushed = 0;
        self.last_flush = Instant::now();
        let mut target = self.written_commit;
        if caught_up {
            target = target.max(self.sub.stream().position());
        }
        if target > self.acked {
            let info = self.sub.ack(target).map_err(|e| CliError::from_error("cannot acknowledge on the slot", &e))?;
            self.acked = info.confirmed_lsn;
            self.transactions_acked = self.transactions_written;
        }
        Ok(())
    }

    fn run(&mut self) -> CliResult<&'static str> {
        loop {
            if stop::requested() {
                self.flush_and_ack(false)?;
                return Ok("signal");
            }
            if self.unflushed > 0
                && (self.unflushed >= MAX_UNFLUSHED_EVENTS || self.last_flush.elapsed() >= MAX_UNFLUSHED_AGE)
            {
                self.flush_and_ack(false)?;
            }
            let item = match self.sub.try_next() {
                Some(item) => item,
                None => {
                    self.flush_and_ack(true)?;
                    if self.sub.stream().is_ended() {
                        return Ok("end-lsn");
                    }
                    if self.args.drain {
                        return Ok("drained");
                    }
                    if !self.said_waiting && !self.json {
                        self.said_waiting = true;
                        eprintln!(
                            "tail: caught up at LSN {}; waiting for new events (this process holds the database; \
                             Ctrl-C stops, --drain exits when caught up)",
                            self.sub.stream().position()
                        );
                    }
                    match self.sub.next_timeout(POLL) {
                        Some(item) => item,
                        None => continue,
                    }
                }
            };
            match item {
                Ok(event) => self.handle(event)?,
                Err(e) => {
                    self.flush_and_ack(false)?;
                    return Err(CliError::from_error("the change stream failed", &e));
                }
            }
        }
    }
}

/// Runs `walden tail`.
pub fn run(data_dir: &Path, json: bool, args: &TailArgs) -> CliResult {
    if let (Some(start), Some(end)) = (args.start_lsn, args.end_lsn)
        && end < start
    {
        return Err(CliError::new(Code::Usage, format!("--end-lsn {end} is before --start-lsn {start}")));
    }
    let lake = args.lake.resolve(data_dir)?;
    // The output first: an unwritable --file fails before anything changes.
    let sink = Sink::open(args.file.as_deref())?;
    stop::install()?;
    let summary = datadir::with_database(data_dir, RecoveryMode::TolerateTornTail, |db| {
        // With an archive, a slot behind the local WAL reads the archived LSNs from the lake.
        lake.with_reader(db, |cdc, _| stream(db, cdc, args, sink, json))
    })?;
    output::summary(json, &summary, |s| {
        format!(
            "tail: {} events written, slot {:?} confirmed up to LSN {} (stopped by {})",
            s.events_written, s.slot, s.confirmed_lsn, s.stopped_by
        )
    });
    Ok(())
}

/// The slot `--slot` names, created first with `--create` if it does not exist.
fn open_slot(db: &Database, args: &TailArgs) -> CliResult<SlotInfo> {
    let name = args.slot.as_str();
    match db.slot(name) {
        Ok(info) => Ok(info),
        Err(EngineError::SlotNotFound { .. }) if args.create => {
            let start = args.start_lsn.map_or(StartPosition::Current, StartPosition::Lsn);
            let options = SlotOptions { start, filter: slots::filter(&args.tables, &args.ops), temporary: false };
            db.create_slot(name, options).map_err(|e| CliError::from_error(format!("cannot create slot {name:?}"), &e))
        }
        Err(e) => {
            let err = CliError::from_error(format!("cannot stream from slot {name:?}"), &e);
            Err(if err.code == Code::SlotNotFound {
                err.with_hint("pass --create to create it, or `walden slots create NAME`")
            } else {
                err
            })
        }
    }
}

/// The first LSN written: `--start-lsn`, which must lie between the slot's restart LSN and the
/// end of the log; 0 (everything the slot delivers) without it.
fn start_lsn(args: &TailArgs, slot: &SlotInfo, durable: Lsn) -> CliResult<Lsn> {
    match args.start_lsn {
        Some(s) if s < slot.restart_lsn => Err(CliError::new(
            Code::LsnUnavailable,
            format!(
                "--start-lsn {s} is before slot {:?}'s restart LSN {}: the slot confirmed LSN {} and never goes back",
                slot.name, slot.restart_lsn, slot.confirmed_lsn
            ),
        )),
        Some(s) if s > durable + 1 => Err(CliError::new(
            Code::LsnUnavailable,
            format!("--start-lsn {s} is beyond the end of the log (the last LSN is {durable})"),
        )),
        Some(s) => Ok(s),
        None => Ok(0),
    }
}

fn stream(db: &Database, cdc: &Cdc, args: &TailArgs, sink: Sink, json: bool) -> CliResult<Summary> {
    let name = args.slot.as_str();
    let slot = open_slot(db, args)?;
    let start_lsn = start_lsn(args, &slot, db.wal().durable_lsn())?;
    let options =
        SubscriptionOptions { end_lsn: args.end_lsn, include_transaction_control: true, ..Default::default() };
    let sub = cdc
        .subscribe_slot(name, options)
        .map_err(|e| CliError::from_error(format!("cannot stream from slot {name:?}"), &e))?;
    let mut tail = Tail {
        args,
        sub,
        sink,
        encoder: EnvelopeEncoder::new(args.format.into()),
        start_lsn,
        written_commit: 0,
        acked: slot.confirmed_lsn,
        unflushed: 0,
        last_flush: Instant::now(),
        events_written: 0,
        transactions_acked: 0,
        transactions_written: 0,
        json,
        said_waiting: false,
    };
    let outcome = tail.run();
    let Tail { sub, events_written, transactions_acked, acked, .. } = tail;
    let released = sub.close().map_err(|e| CliError::from_error("cannot release the slot", &e));
    let stopped_by = outcome?;
    released?;
    Ok(Summary {
        slot: name.to_string(),
        events_written,
        transactions_acknowledged: transactions_acked,
        confirmed_lsn: acked,
        stopped_by,
    })
}
