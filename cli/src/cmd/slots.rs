//! `walden slots list|create|drop|advance`: the `pg_replication_slots` view and slot management.

use std::collections::BTreeSet;
use std::path::Path;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use walden_engine::{Database, Operation, RecoveryMode, SlotFilter, SlotInfo, SlotOptions, SlotState, StartPosition};
use walden_wal::Lsn;

use crate::datadir;
use crate::exit::{CliError, CliResult};
use crate::inspect::{self, Inspection, SlotRow};
use crate::outln;
use crate::output::{self, Out, bytes};

/// The slot subcommands.
#[derive(Debug, Subcommand)]
pub enum SlotsCommand {
    /// List every replication slot: position, state, invalidation reason, lag, the WAL it pins,
    /// and which one holds the oldest segment (read-only; works while another process has the
    /// database open).
    List,
    /// Create a persistent replication slot.
    Create(CreateArgs),
    /// Drop a replication slot (its WAL is released at the next checkpoint).
    Drop {
        /// Slot name.
        name: String,
    },
    /// Confirm that a slot's consumer has processed everything up to and including LSN (like
    /// pg_replication_slot_advance). A slot never moves back.
    Advance {
        /// Slot name.
        name: String,
        /// The LSN confirmed.
        #[arg(value_parser = crate::output::parse_lsn)]
        lsn: Lsn,
    },
}

/// A kind of change a slot filter can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpArg {
    /// Row inserts.
    Insert,
    /// Row updates.
    Update,
    /// Row deletes.
    Delete,
    /// Schema changes.
    Schema,
}

impl From<OpArg> for Operation {
    fn from(op: OpArg) -> Operation {
        match op {
            OpArg::Insert => Operation::Insert,
            OpArg::Update => Operation::Update,
            OpArg::Delete => Operation::Delete,
            OpArg::Schema => Operation::Schema,
        }
    }
}

/// Parses `current`, `oldest` or an LSN.
pub fn parse_start(s: &str) -> Result<StartPosition, String> {
    match s {
        "current" => Ok(StartPosition::Current),
        "oldest" => Ok(StartPosition::Oldest),
        other => match other.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!("{other:?} is not `current`, `oldest` or a positive LSN")),
            Ok(lsn) => Ok(StartPosition::Lsn(lsn)),
        },
    }
}

/// Options of `walden slots create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Slot name: lower-case letters, digits and underscores, at most 63 characters.
    pub name: String,
    /// Where the slot starts: `current` (only changes committed from now on), `oldest` (everything
    /// retained) or an LSN.
    #[arg(long, default_value = "current", value_parser = parse_start, value_name = "current|oldest|LSN")]
    pub start: StartPosition,
    /// Only changes of this table (repeatable; default all tables).
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Only this kind of change (repeatable; default all).
    #[arg(long = "op", value_enum, value_name = "OP")]
    pub ops: Vec<OpArg>,
}

impl CreateArgs {
    /// The slot options these arguments describe.
    pub fn options(&self) -> SlotOptions {
        SlotOptions { start: self.start, filter: filter(&self.tables, &self.ops), temporary: false }
    }
}

/// A slot filter from `--table` / `--op` lists (empty: no restriction).
pub fn filter(tables: &[String], ops: &[OpArg]) -> SlotFilter {
    SlotFilter {
        tables: (!tables.is_empty()).then(|| tables.iter().cloned().collect::<BTreeSet<_>>()),
        operations: (!ops.is_empty()).then(|| ops.iter().map(|&o| Operation::from(o)).collect::<BTreeSet<_>>()),
    }
}

/// A slot as `create` and `advance` print it in JSON.
#[derive(Debug, Serialize)]
struct SlotJson {
    name: String,
    state: String,
    restart_lsn: Lsn,
    confirmed_lsn: Lsn,
    tables: Option<Vec<String>>,
    operations: Option<Vec<String>>,
    created_at: String,
    last_active_at: String,
}

fn slot_json(info: &SlotInfo) -> SlotJson {
    SlotJson {
        name: info.name.clone(),
        state: match info.state {
            SlotState::Active => "active".to_string(),
            SlotState::Inactive => "valid".to_string(),
            SlotState::Lost(_) => "lost".to_string(),
        },
        restart_lsn: info.restart_lsn,
        confirmed_lsn: info.confirmed_lsn,
        tables: info.filter.tables.as_ref().map(|t| t.iter().cloned().collect()),
        operations: info
            .filter
            .operations
            .as_ref()
            .map(|o| o.iter().map(|op| format!("{op:?}").to_lowercase()).collect()),
        created_at: output::time(info.created_at_us),
        last_active_at: output::time(info.last_active_at_us),
    }
}

/// `all`, or `tables=a,b ops=insert`.
pub fn describe_filter(tables: Option<&[String]>, ops: Option<&[&str]>) -> String {
    let mut parts = Vec::new();
    if let Some(t) = tables {
        parts.push(format!("tables={}", t.join(",")));
    }
    if let Some(o) = ops {
        parts.push(format!("ops={}", o.join(",")));
    }
    if parts.is_empty() { "all".to_string() } else { parts.join(" ") }
}

/// Runs a slot subcommand.
pub fn run(data_dir: &Path, json: bool, command: &SlotsCommand) -> CliResult {
    match command {
        SlotsCommand::List => list(data_dir, json),
        SlotsCommand::Create(args) => create(data_dir, json, args),
        SlotsCommand::Drop { name } => drop_slot(data_dir, json, name),
        SlotsCommand::Advance { name, lsn } => advance(data_dir, json, name, *lsn),
    }
}

/// Opens the database, runs `body` with it and closes it (a failed `body` leaves the database to
/// its drop).
fn with_open<T>(data_dir: &Path, body: impl FnOnce(&Database) -> CliResult<T>) -> CliResult<T> {
    let db = datadir::open_database(data_dir, RecoveryMode::TolerateTornTail)?;
    let value = body(&db)?;
    datadir::close_database(db)?;
    Ok(value)
}

fn create(data_dir: &Path, json: bool, args: &CreateArgs) -> CliResult {
    let info = with_open(data_dir, |db| {
        db.create_slot(&args.name, args.options())
            .map_err(|e| CliError::from_error(format!("cannot create slot {:?}", args.name), &e))
    })?;
    output::emit(json, &slot_json(&info), |out, _| {
        let tables: Option<Vec<String>> = info.filter.tables.as_ref().map(|t| t.iter().cloned().collect());
        let ops: Option<Vec<&str>> = args_ops(&args.ops);
        outln!(
            out,
            "created slot {:?}: restart LSN {} (confirmed {}), filter {}",
            info.name,
            info.restart_lsn,
            info.confirmed_lsn,
            describe_filter(tables.as_deref(), ops.as_deref())
        )
    })
}

fn drop_slot(data_dir: &Path, json: bool, name: &str) -> CliResult {
    with_open(data_dir, |db| {
        db.drop_slot(name).map_err(|e| CliError::from_error(format!("cannot drop slot {name:?}"), &e))
    })?;
    output::emit(json, &serde_json::json!({ "dropped": name }), |out, _| outln!(out, "dropped slot {name:?}"))
}

fn advance(data_dir: &Path, json: bool, name: &str, lsn: Lsn) -> CliResult {
    let (before, info) = with_open(data_dir, |db| {
        let context = format!("cannot advance slot {name:?} to LSN {lsn}");
        let before = db.slot(name).map_err(|e| CliError::from_error(&context, &e))?;
        let info = db.advance(name, lsn).map_err(|e| CliError::from_error(&context, &e))?;
        Ok((before, info))
    })?;
    output::emit(json, &slot_json(&info), |out, _| {
        if info.confirmed_lsn == before.confirmed_lsn && lsn < before.confirmed_lsn {
            outln!(
                out,
                "slot {name:?} unchanged: it already confirmed LSN {} (slots never move back)",
                info.confirmed_lsn
            )
        } else {
            outln!(out, "slot {name:?} confirmed up to LSN {} (restart LSN {})", info.confirmed_lsn, info.restart_lsn)
        }
    })
}

fn args_ops(ops: &[OpArg]) -> Option<Vec<&'static str>> {
    let set: BTreeSet<Operation> = ops.iter().map(|&o| Operation::from(o)).collect();
    (!set.is_empty()).then(|| {
        set.into_iter()
            .map(|o| match o {
                Operation::Insert => "insert",
                Operation::Update => "update",
                Operation::Delete => "delete",
                Operation::Schema => "schema",
            })
            .collect()
    })
}

fn list(data_dir: &Path, json: bool) -> CliResult {
    let inspection = inspect::inspect(data_dir)?;
    let rows = inspection.slot_rows();
    output::emit(json, &rows, |out, rows| print_list(out, &inspection, rows))
}

fn print_list(out: &mut Out, inspection: &Inspection, rows: &[SlotRow]) -> CliResult {
    if rows.is_empty() {
        return outln!(out, "no replication slots (create one with `walden slots create NAME`)");
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.state.to_string(),
                r.restart_lsn.to_string(),
                r.confirmed_lsn.to_string(),
                r.lag_lsns.to_string(),
                bytes(r.lag_bytes),
                bytes(r.pinned_bytes),
                describe_filter(r.tables.as_deref(), r.operations.as_deref()),
                r.last_active_at.clone(),
            ]
        })
        .collect();
    let rendered = output::table(
        &["NAME", "STATE", "RESTART_LSN", "CONFIRMED_LSN", "LAG_LSNS", "LAG_BYTES", "PINNED", "FILTER", "LAST_ACTIVE"],
        &table_rows,
    );
    output::write_str(out, &rendered)?;
    for r in rows {
        if let (Some(reason), Some(at)) = (&r.invalidation_reason, &r.invalidated_at) {
            outln!(out, "slot {:?} is lost since {at}: {reason}", r.name)?;
        }
        if let Some(reason) = &r.invalid_at_next_open {
            outln!(out, "slot {:?} will be invalidated at the next open: {reason}", r.name)?;
        }
    }
    if let Some(archived) = inspection.state.archived_lsn {
        let readers: Vec<String> =
            rows.iter().filter(|r| r.reads_archive && r.state == "valid").map(|r| format!("{:?}", r.name)).collect();
        outln!(out, "archive horizon: LSN {archived}; slots pin only the WAL after it")?;
        if !readers.is_empty() {
            outln!(
                out,
                "slot{} {} start{} in the archive: archived LSNs are read from the lake once the WAL no longer holds them",
                if readers.len() == 1 { "" } else { "s" },
                readers.join(", "),
                if readers.len() == 1 { "s" } else { "" }
            )?;
        }
    }
    outln!(out, "oldest segment held by {}", inspection.oldest_segment_held_by())
}
