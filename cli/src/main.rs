//! `walden`: the command-line tool. `walden demo` runs a sample workload; the operator commands
//! (`dump`, `tail`, `slots`, `status`, `verify`, `recover`, `archive`, `replay`, `bench`) follow
//! PostgreSQL's tools (pg_waldump, pg_recvlogical, pg_replication_slots, archive_command /
//! pg_receivewal). See the README's CLI tour.
//!
//! Read-only commands read the files directly ([`offline`]) and change nothing; the others open
//! the database ([`datadir::open_database`]), which takes its lock. Every failure has a
//! documented exit code ([`exit::Code`]).

mod cmd;
mod datadir;
mod exit;
mod inspect;
mod lake;
mod offline;
mod output;
mod stop;
mod thread;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd::archive::ArchiveArgs;
use crate::cmd::bench::BenchArgs;
use crate::cmd::demo::DemoArgs;
use crate::cmd::dump::DumpArgs;
use crate::cmd::recover::RecoverArgs;
use crate::cmd::replay::ReplayArgs;
use crate::cmd::slots::SlotsCommand;
use crate::cmd::tail::TailArgs;
use crate::exit::{CliError, Code, EXIT_CODES_HELP};

const AFTER_HELP: &str = "\
Read-only commands (status, dump, verify, slots list) read the files directly: they create and
change nothing and work while another process has the database open. The others open the
database, which one process at a time may do (exit code 5 otherwise).

The archive lake (archive, replay, and tail for slots behind the local WAL) defaults to the
directory <data-dir>.lake beside the data directory; --lake names another (a directory or
s3://bucket/prefix with --catalog-path).";

#[derive(Debug, Parser)]
#[command(
    name = "walden",
    version,
    about = "Walden: an embedded write-ahead log with change data capture",
    after_help = format!("{AFTER_HELP}\n\n{EXIT_CODES_HELP}"),
    propagate_version = true
)]
struct Cli {
    /// The data directory: <DIR>/wal (segments), <DIR>/slots, <DIR>/engine.state.
    #[arg(long, global = true, env = "WALDEN_DATA_DIR", default_value = "walden-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Machine-readable output: JSON (JSON lines for dump and tail's events).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a sample shop workload (users, orders, payments) from several threads, followed live
    /// by a slot-backed subscriber, archive it to the lake beside the data directory and
    /// summarise it, with pyiceberg and DuckDB snippets that read the lake. Creates --data-dir
    /// and <data-dir>.lake, or resets them if an earlier demo left them.
    Demo(DemoArgs),
    /// Print the records of an LSN range (like pg_waldump), as text or JSON lines; --stats
    /// summarises by kind and table. Read-only.
    Dump(DumpArgs),
    /// Stream a replication slot's change events as JSON lines (like pg_recvlogical),
    /// acknowledging what was written (and fsynced, with --file). Ends at --end-lsn, with
    /// --drain when caught up, or cleanly on SIGINT / SIGTERM.
    ///
    /// A Walden database is open in one process at a time, so tail opens it itself: it exits
    /// with code 5 while your application has the database open, and once caught up it waits
    /// until interrupted (--drain exits instead).
    Tail(TailArgs),
    /// Replication slots: list (like pg_replication_slots), create, drop, advance.
    #[command(subcommand)]
    Slots(SlotsCommand),
    /// LSNs, segments, bytes, slots, retention and the archive horizon (archived LSN). Read-only.
    Status,
    /// Check every segment, record, slot file and engine.state; report damage with file, byte
    /// offset and LSN. Read-only. Exit code 10 if anything is wrong.
    Verify,
    /// Open the database with a recovery mode (repairing what that mode allows) and print the
    /// recovery report.
    Recover(RecoverArgs),
    /// Archive sealed WAL segments as Parquet into the lake's Iceberg table, then checkpoint, so
    /// archived segments leave the local WAL (--once, the default); --follow keeps archiving
    /// until SIGINT / SIGTERM. `archive compact` and `archive expire` maintain the table.
    ///
    /// The lake is the directory <data-dir>.lake beside the data directory unless --lake names
    /// another. Like tail, archive opens the database (exit code 5 while another process has it
    /// open); an application archives with walden-archive's auto-archiver instead.
    Archive(ArchiveArgs),
    /// Replay the committed changes from an LSN as JSON lines (as tail renders them): from the
    /// archive lake for LSNs the local WAL no longer holds, then from the WAL, as one gap-free
    /// stream. Stops at --end-lsn or the end of the log; acknowledges nothing.
    Replay(ReplayArgs),
    /// Measure this disk: raw write+fdatasync, durable group-commit appends and buffered appends
    /// (about 10 s).
    Bench(BenchArgs),
}

fn run(cli: &Cli) -> Result<(), CliError> {
    let dir = cli.data_dir.as_path();
    match &cli.command {
        Command::Demo(args) => cmd::demo::run(dir, cli.json, args),
        Command::Dump(args) => cmd::dump::run(dir, cli.json, args),
        Command::Tail(args) => cmd::tail::run(dir, cli.json, args),
        Command::Slots(command) => cmd::slots::run(dir, cli.json, command),
        Command::Status => cmd::status::run(dir, cli.json),
        Command::Verify => cmd::verify::run(dir, cli.json),
        Command::Recover(args) => cmd::recover::run(dir, cli.json, args),
        Command::Archive(args) => cmd::archive::run(dir, cli.json, args),
        Command::Replay(args) => cmd::replay::run(dir, cli.json, args),
        Command::Bench(args) => cmd::bench::run(cli.json, args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit with 2, --help and --version with 0
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`walden dump | head`): the reader is done.
        Err(e) if e.code == Code::Ok => ExitCode::SUCCESS,
        Err(e) => {
            if cli.json {
                let value = serde_json::json!({
                    "error": { "code": e.code as u8, "kind": e.code.name(), "message": e.message, "hint": e.hint }
                });
                eprintln!("{value}");
            } else {
                eprintln!("error: {}", e.message);
                if let Some(hint) = &e.hint {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(e.code as u8)
        }
    }
}
