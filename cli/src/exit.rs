//! Exit codes and the CLI's error type.
//!
//! Every failure maps to one documented exit code ([`Code`]); the table is printed by
//! `walden --help` ([`EXIT_CODES_HELP`]) and repeated in the README's CLI tour.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use walden_archive::ArchiveError;
use walden_cdc::CdcError;
use walden_engine::{EngineError, WalError};

/// The exit codes of `walden`, stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0: success.
    Ok = 0,
    /// 1: a failure not covered below (an I/O error, a failed log, a bug).
    Failure = 1,
    /// 2: bad usage: unknown option, malformed or contradictory arguments (an LSN that is not a
    /// positive number, `--end-lsn` before `--start-lsn`, an invalid slot name, a lake URL of an
    /// unsupported scheme).
    Usage = 2,
    /// 3: no data directory there (the path does not exist or is empty).
    Missing = 3,
    /// 4: the path is not a Walden data directory (a file, or a directory holding files Walden
    /// did not write), or a segment belongs to another log.
    Foreign = 4,
    /// 5: the data directory is locked: another process has the database open.
    Locked = 5,
    /// 6: permission denied: a directory or file cannot be read or written.
    Permission = 6,
    /// 7: no replication slot with that name.
    SlotNotFound = 7,
    /// 8: the slot cannot be used that way: it already exists, is in use, is invalidated (lost),
    /// or the slot limit is reached.
    SlotConflict = 8,
    /// 9: the LSN is not available: older than the oldest retained record, or beyond the end of
    /// the log.
    LsnUnavailable = 9,
    /// 10: damage: `verify` found a problem, or recovery refused (corruption, or an incomplete
    /// tail under `--mode absolute-consistency`), or a record or state file does not decode, or
    /// the archive lake does not match the log (another database's lake).
    Damaged = 10,
    /// 11: the archive lake is unavailable: there is no lake at `--lake`, or it cannot be reached
    /// or used (network, credentials, its catalog or table metadata).
    LakeUnavailable = 11,
    /// 130: interrupted by SIGINT or SIGTERM (`bench`; `tail` treats them as a clean stop: 0).
    Interrupted = 130,
}

impl Code {
    /// A short stable name, used in JSON error output.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Failure => "failure",
            Code::Usage => "usage",
            Code::Missing => "missing_data_dir",
            Code::Foreign => "not_a_data_dir",
            Code::Locked => "locked",
            Code::Permission => "permission_denied",
            Code::SlotNotFound => "slot_not_found",
            Code::SlotConflict => "slot_conflict",
            Code::LsnUnavailable => "lsn_unavailable",
            Code::Damaged => "damaged",
            Code::LakeUnavailable => "lake_unavailable",
            Code::Interrupted => "interrupted",
        }
    }
}

/// The exit-code table shown at the end of `walden --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success
   1  failure not covered below (I/O error, failed log)
   2  bad usage: unknown option, malformed LSN, --end-lsn before --start-lsn, invalid slot name,
      unsupported lake URL
   3  no data directory at --data-dir (missing or empty)
   4  not a Walden data directory (a file, or files Walden did not write), or a foreign segment
   5  locked: another process has the database open
   6  permission denied (directory or file not readable / writable)
   7  no replication slot with that name
   8  slot conflict: already exists, in use, invalidated, or too many slots
   9  LSN not available: older than the oldest retained record or beyond the end of the log
  10  damage: verify found a problem, recovery refused, a record does not decode, or the lake
      does not match the log
  11  lake unavailable: no archive lake at --lake, or it cannot be reached or used
 130  interrupted by SIGINT / SIGTERM (bench; tail and archive --follow stop cleanly with 0)";

/// An error the CLI reports: a message, an optional hint, and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: Code,
    /// What went wrong (one line, no trailing period).
    pub message: String,
    /// What to do about it, if there is something to say.
    pub hint: Option<String>,
}

impl CliError {
    /// An error with an explicit code.
    pub fn new(code: Code, message: impl Into<String>) -> CliError {
        CliError { code, message: message.into(), hint: None }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// Wraps a library error: the code comes from [`classify`], the message is `context: error`
    /// with every cause that the error's own message does not already include.
    pub fn from_error(context: impl fmt::Display, error: &(dyn StdError + 'static)) -> CliError {
        CliError::new(classify(error), format!("{context}: {}", describe(error)))
    }

    /// An I/O error on `path` while doing `op`.
    pub fn io(op: &str, path: &std::path::Path, error: &io::Error) -> CliError {
        CliError::new(io_code(error), format!("{op} {}: {error}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The error's message followed by each cause not already part of it.
pub fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn io_code(e: &io::Error) -> Code {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Code::Permission,
        _ => Code::Failure,
    }
}

fn wal_code(e: &WalError) -> Code {
    match e {
        WalError::Locked { .. } => Code::Locked,
        WalError::LsnNotFound { .. } | WalError::LsnBeyondEnd { .. } => Code::LsnUnavailable,
        WalError::Corruption { .. } | WalError::IncompleteTail { .. } => Code::Damaged,
        WalError::ForeignSegment { .. } | WalError::UnknownFile { .. } => Code::Foreign,
        WalError::Io { source, .. } => io_code(source),
        WalError::InvalidConfig(_) => Code::Usage,
        _ => Code::Failure,
    }
}

fn engine_code(e: &EngineError) -> Code {
    match e {
        EngineError::Wal(w) => wal_code(w),
        EngineError::SlotNotFound { .. } => Code::SlotNotFound,
        EngineError::SlotExists { .. }
        | EngineError::SlotInUse { .. }
        | EngineError::SlotInvalidated { .. }
        | EngineError::TooManySlots { .. } => Code::SlotConflict,
        EngineError::InvalidSlotName { .. } | EngineError::InvalidConfig(_) | EngineError::InvalidInput(_) => {
            Code::Usage
        }
        EngineError::LsnBeyondDurable { .. } | EngineError::LsnNotRetained { .. } => Code::LsnUnavailable,
        EngineError::CorruptFile { .. } | EngineError::Decode { .. } => Code::Damaged,
        EngineError::Io { source, .. } => io_code(source),
        _ => Code::Failure,
    }
}

/// The code of an archive error, and whether it is a failure of the lake itself (its object store,
/// catalog or table metadata: [`Code::LakeUnavailable`] unless a cause says more).
fn archive_code(e: &ArchiveError) -> (Code, bool) {
    match e {
        ArchiveError::Config(_) => (Code::Usage, false),
        ArchiveError::Gap { .. } => (Code::LsnUnavailable, false),
        ArchiveError::Inconsistent(_) => (Code::Damaged, false),
        ArchiveError::Iceberg(_) | ArchiveError::ObjectStore(_) | ArchiveError::Catalog(_) => (Code::Failure, true),
        _ => (Code::Failure, false),
    }
}

/// The exit code for a library error: the first error in its cause chain that says something
/// specific decides; failing that, an error of the archive lake is [`Code::LakeUnavailable`].
pub fn classify(error: &(dyn StdError + 'static)) -> Code {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut lake = false;
    while let Some(e) = current {
        let code = if let Some(w) = e.downcast_ref::<WalError>() {
            wal_code(w)
        } else if let Some(en) = e.downcast_ref::<EngineError>() {
            engine_code(en)
        } else if let Some(c) = e.downcast_ref::<CdcError>() {
            match c {
                CdcError::SlotNotFound(_) => Code::SlotNotFound,
                CdcError::SlotExists(_) => Code::SlotConflict,
                CdcError::LsnNotFound { .. } => Code::LsnUnavailable,
                CdcError::Decode { .. } => Code::Damaged,
                _ => Code::Failure,
            }
        } else if let Some(a) = e.downcast_ref::<ArchiveError>() {
            let (code, of_lake) = archive_code(a);
            lake |= of_lake;
            code
        } else if let Some(io) = e.downcast_ref::<io::Error>() {
            io_code(io)
        } else {
            Code::Failure
        };
        if code != Code::Failure {
            return code;
        }
        current = e.source();
    }
    if lake { Code::LakeUnavailable } else { Code::Failure }
}

/// Result alias of the CLI.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_walks_the_cause_chain() {
        let locked = EngineError::Wal(WalError::Locked { path: "x/LOCK".into() });
        assert_eq!(classify(&locked), Code::Locked);
        let denied = EngineError::Io {
            op: "create directory",
            path: "x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(classify(&denied), Code::Permission);
        let wrapped = CdcError::SubscriptionFailed {
            message: "engine call failed".into(),
            source: Some(Box::new(EngineError::SlotInUse { name: "a".into() })),
        };
        assert_eq!(classify(&wrapped), Code::SlotConflict);
        assert_eq!(classify(&CdcError::SlotNotFound("a".into())), Code::SlotNotFound);
        assert_eq!(classify(&io::Error::other("boom")), Code::Failure);
        assert_eq!(classify(&ArchiveError::Config("gs://".into())), Code::Usage);
        assert_eq!(classify(&ArchiveError::Gap { next_lsn: 5, oldest_available: 9 }), Code::LsnUnavailable);
        assert_eq!(classify(&ArchiveError::Catalog("no such table".into())), Code::LakeUnavailable);
        let denied = ArchiveError::Runtime(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(classify(&denied), Code::Permission);
        let cold = CdcError::SubscriptionFailed {
            message: "cold source".into(),
            source: Some(Box::new(ArchiveError::Catalog("sqlite is locked".into()))),
        };
        assert_eq!(classify(&cold), Code::LakeUnavailable);
    }

    #[test]
    fn describe_appends_causes_once() {
        let e = CdcError::SubscriptionFailed {
            message: "reading the log failed".into(),
            source: Some(Box::new(WalError::Closed)),
        };
        assert_eq!(describe(&e), "SUBSCRIPTION_FAILED: reading the log failed: the log is closed");
        let t = EngineError::Wal(WalError::Closed);
        assert_eq!(describe(&t), "the log is closed");
    }

    #[test]
    fn help_table_lists_every_code() {
        for code in 0..=11 {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {code:>2}  ")), "code {code} missing from the help");
        }
        assert!(EXIT_CODES_HELP.contains("\n 130  "));
    }
}
