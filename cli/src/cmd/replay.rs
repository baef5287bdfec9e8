//! `walden replay`: hot + cold replay. The committed changes from `--from-lsn` on, read from the
//! archive lake for LSNs the local WAL no longer holds and then from the WAL, as one gap-free,
//! duplicate-free stream of JSON lines rendered exactly as `walden tail` renders them (through
//! [`walden_archive::Archiver::cdc`]). It stops at `--end-lsn` or at the end of the log; no slot
//! is involved, so nothing is acknowledged.
//!
//! Like `tail` it opens the database (exit code 5 while another process has it open). Without a
//! lake (none at the default place beside the data directory) it replays the local WAL only.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use walden_cdc::envelope::EnvelopeEncoder;
use walden_cdc::{Cdc, ChangeStream, Event, Filter, SubscriptionOptions};
use walden_engine::{Database, RecoveryMode};
use walden_wal::Lsn;

use crate::cmd::slots::OpArg;
use crate::cmd::tail::FormatArg;
use crate::datadir;
use crate::exit::{CliError, CliResult, Code};
use crate::lake::{LakeArgs, ResolvedLake};
use crate::output;

/// Options of `walden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// First LSN to replay (a transaction that started before it is delivered from this LSN on).
    #[arg(long, value_parser = crate::output::parse_lsn, value_name = "LSN")]
    pub from_lsn: Lsn,
    /// Last LSN to replay, inclusive (default: the end of the log).
    #[arg(long, value_parser = crate::output::parse_lsn, value_name = "LSN")]
    pub end_lsn: Option<Lsn>,
    /// The envelope of each JSON line (as `walden tail --format`).
    #[arg(long, value_enum, default_value = "native")]
    pub format: FormatArg,
    /// Also write the BEGIN / COMMIT events of each transaction (native and debezium formats).
    #[arg(long)]
    pub transactions: bool,
    /// Only changes of this table (repeatable; default all tables).
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Only this kind of change (repeatable; default all).
    #[arg(long = "op", value_enum, value_name = "OP")]
    pub ops: Vec<OpArg>,
    #[command(flatten)]
    pub lake: LakeArgs,
}

/// What `replay` reports on stderr when it ends.
#[derive(Debug, Serialize)]
struct Summary {
    events_written: u64,
    /// Of those, events of LSNs the local WAL no longer holds (read from the archive).
    events_from_archive: u64,
    from_lsn: Lsn,
    end_lsn: Lsn,
    /// The local WAL's oldest LSN when the replay started.
    wal_oldest_lsn: Lsn,
    /// The lake read, if any.
    lake: Option<String>,
}

/// How long one wait for the stream lasts (it only waits while reading; the end is bounded).
const POLL: Duration = Duration::from_millis(500);

/// Runs `walden replay`.
pub fn run(data_dir: &Path, json: bool, args: &ReplayArgs) -> CliResult {
    if let Some(end) = args.end_lsn
        && end < args.from_lsn
    {
        return Err(CliError::new(Code::Usage, format!("--end-lsn {end} is before --from-lsn {}", args.from_lsn)));
    }
    let lake = args.lake.resolve(data_dir)?;
    let summary = datadir::with_database(data_dir, RecoveryMode::TolerateTornTail, |db| {
        lake.with_reader(db, |cdc, archiver| replay(db, cdc, &lake, archiver.is_some(), args))
    })?;
    output::summary(json, &summary, |s| {
        format!(
            "replay: {} events from LSN {} to {} ({} from the archive, {} from the local WAL)",
            s.events_written,
            s.from_lsn,
            s.end_lsn,
            s.events_from_archive,
            s.events_written - s.events_from_archive
        )
    });
    Ok(())
}

fn replay(db: &Database, cdc: &Cdc, lake: &ResolvedLake, with_archive: bool, args: &ReplayArgs) -> CliResult<Summary> {
    let durable = db.wal().durable_lsn();
    let wal_oldest = db.wal().oldest_lsn();
    if args.from_lsn > durable {
        return Err(CliError::new(
            Code::LsnUnavailable,
            format!("--from-lsn {} is beyond the end of the log (the last LSN is {durable})", args.from_lsn),
        ));
    }
    let end = args.end_lsn.unwrap_or(durable).min(durable);
    let stream = cdc.subscribe(subscription(args, end)).map_err(|e| {
        let err = CliError::from_error(format!("cannot replay from LSN {}", args.from_lsn), &e);
        match (err.code, with_archive) {
            (Code::LsnUnavailable, false) => err.with_hint(format!(
                "the local WAL starts at LSN {wal_oldest}; older LSNs are only in an archive lake, and there is none \
                 at {} (pass --lake)",
                lake.config.url
            )),
            (Code::LsnUnavailable, true) => err.with_hint(format!(
                "the archive lake {} does not reach back to LSN {}",
                lake.config.url, args.from_lsn
            )),
            _ => err,
        }
    })?;
    let counts = write_events(stream, args, end, wal_oldest)?;
    Ok(Summary {
        events_written: counts.written,
        events_from_archive: counts.from_archive,
        from_lsn: args.from_lsn,
        end_lsn: end,
        wal_oldest_lsn: wal_oldest,
        lake: with_archive.then(|| lake.config.url.clone()),
    })
}

/// The subscription of `--from-lsn` .. `end` with the `--table` / `--op` filters.
fn subscription(args: &ReplayArgs, end: Lsn) -> SubscriptionOptions {
    let mut filter = Filter::all();
    if !args.tables.is_empty() {
        filter = filter.tables(args.tables.iter().cloned());
    }
    let schema = args.ops.is_empty() || args.ops.contains(&OpArg::Schema);
    if !args.ops.is_empty() {
        filter = filter.operations(args.ops.iter().filter_map(|op| match op {
            OpArg::Insert => Some(walden_cdc::Operation::Insert),
            OpArg::Update => Some(walden_cdc::Operation::Update),
            OpArg::Delete => Some(walden_cdc::Operation::Delete),
            OpArg::Schema => None,
        }));
    }
    SubscriptionOptions {
        from_lsn: args.from_lsn,
        end_lsn: Some(end),
        filter,
        include_transaction_control: true,
        include_schema_changes: schema,
        ..SubscriptionOptions::default()
    }
}

/// Change events written (BEGIN / COMMIT not counted).
struct Counts {
    written: u64,
    /// Of those, events of LSNs older than the local WAL's oldest (read from the archive).
    from_archive: u64,
}

/// Writes the stream's events as JSON lines on stdout until it reaches `end`.
fn write_events(mut stream: ChangeStream, args: &ReplayArgs, end: Lsn, wal_oldest: Lsn) -> CliResult<Counts> {
    let mut encoder = EnvelopeEncoder::new(args.format.into());
    let mut out = output::stdout();
    let mut counts = Counts { written: 0, from_archive: 0 };
    loop {
        let event = match stream.next_timeout(POLL) {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                output::finish(out)?;
                return Err(CliError::from_error("the replay failed", &e));
            }
            None if stream.is_ended() || stream.position() >= end => break,
            None => continue,
        };
        let is_txn_event = matches!(event, Event::Transaction(_));
        if (!is_txn_event || args.transactions)
            && let Some(value) = encoder.encode(&event)
        {
            output::json_line(&mut out, &value)?;
            if !is_txn_event {
                counts.written += 1;
                if event.lsn() < wal_oldest {
                    counts.from_archive += 1;
                }
            }
        }
    }
    output::finish(out)?;
    Ok(counts)
}
