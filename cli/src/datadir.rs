//! The data directory: checking what is there before anything opens it, finding who holds its
//! lock, and opening the database for the commands that write.
//!
//! Layout (the engine's): `<data-dir>/wal/` (segments and `LOCK`), `<data-dir>/slots/<name>.slot`,
//! `<data-dir>/engine.state`. Nothing here creates a directory: every command but `demo` and
//! `bench` needs an existing data directory, so a typo never creates an empty database.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use walden_engine::{Config, Database, RecoveryMode, SLOTS_DIR_NAME, WAL_DIR_NAME, WalConfig};
use walden_wal::format::LOCK_FILE_NAME;
use walden_wal::inspect;
use walden_wal::storage::StdStorage;

use crate::exit::{CliError, CliResult, Code};

/// Marker file `walden demo` leaves in the directories it creates, so it only ever resets its own.
pub const DEMO_MARKER: &str = ".walden-demo";

/// Entries of the data directory root the engine (or the demo) writes.
pub fn is_known_root_entry(name: &str) -> bool {
    name == WAL_DIR_NAME
        || name == SLOTS_DIR_NAME
        || name == walden_engine::state::STATE_FILE_NAME
        || name == format!("{}.tmp", walden_engine::state::STATE_FILE_NAME)
        || name == DEMO_MARKER
}

/// A data directory that passed [`check_existing`].
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The data directory.
    pub root: PathBuf,
    /// `<root>/wal`.
    pub wal: PathBuf,
    /// `<root>/slots`.
    pub slots: PathBuf,
    /// Segment files, ascending by first LSN.
    pub segments: Vec<(u64, PathBuf)>,
    /// Leftover `*.wal.tmp` files of an interrupted segment creation.
    pub segment_temp_files: Vec<PathBuf>,
}

fn list_names(dir: &Path) -> CliResult<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| CliError::io("cannot list", dir, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CliError::io("cannot list", dir, &e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn missing(root: &Path, why: &str) -> CliError {
    CliError::new(Code::Missing, format!("no Walden data directory at {}: {why}", root.display())).with_hint(
        "pass --data-dir (or set WALDEN_DATA_DIR) to point at one; `walden demo` creates walden-data with a sample workload",
    )
}

/// Checks, without creating or changing anything, that `root` is a Walden data directory: it
/// exists, holds `wal/` with at least one segment, and `wal/` holds nothing but segments, their
/// temporary files and the lock file.
pub fn check_existing(root: &Path) -> CliResult<DataDir> {
    let meta = match fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing(root, "the path does not exist")),
        Err(e) => return Err(CliError::io("cannot access", root, &e)),
    };
    if !meta.is_dir() {
        return Err(CliError::new(
            Code::Foreign,
            format!("{} is not a Walden data directory: it is not a directory", root.display()),
        ));
    }
    let names = list_names(root)?;
    if names.is_empty() {
        return Err(missing(root, "the directory is empty"));
    }
    let wal = root.join(WAL_DIR_NAME);
    if !names.iter().any(|n| n == WAL_DIR_NAME) {
        let shown: Vec<&str> = names.iter().map(String::as_str).take(5).collect();
        return Err(CliError::new(
            Code::Foreign,
            format!(
                "{} is not a Walden data directory: it has no {WAL_DIR_NAME}/ directory (it holds {}{})",
                root.display(),
                shown.join(", "),
                if names.len() > shown.len() { ", ..." } else { "" }
            ),
        ));
    }
    if !fs::metadata(&wal).map_err(|e| CliError::io("cannot access", &wal, &e))?.is_dir() {
        return Err(CliError::new(Code::Foreign, format!("{} is not a directory", wal.display())));
    }
    let listing = inspect::list(&StdStorage, &wal).map_err(|e| CliError::from_error("cannot list the log", &e))?;
    if let Some(unknown) = listing.unknown_files.first() {
        return Err(CliError::new(
            Code::Foreign,
            format!(
                "{} is not a Walden data directory: unknown file {} in its log directory",
                root.display(),
                unknown.display()
            ),
        )
        .with_hint("the WAL refuses to open a directory with files it did not write; move the file away"));
    }
    let (segments, segment_temp_files) = (listing.segments, listing.temp_files);
    if segments.is_empty() {
        return Err(missing(root, "its wal/ directory holds no segment"));
    }
    Ok(DataDir { root: root.to_path_buf(), slots: root.join(SLOTS_DIR_NAME), wal, segments, segment_temp_files })
}

/// The pid of the process holding the data directory's lock (`wal/LOCK`), read from
/// `/proc/locks` without touching the lock. `None` if nobody holds it (or it cannot be told).
pub fn lock_holder(wal_dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(wal_dir.join(LOCK_FILE_NAME)).ok()?;
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let inode = meta.ino();
    let locks = fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (a "->" marks a blocked waiter).
    locks.lines().filter(|line| !line.contains("->")).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let id = fields.get(5)?;
        let mut parts = id.split(':');
        let maj = u32::from_str_radix(parts.next()?, 16).ok()?;
        let min = u32::from_str_radix(parts.next()?, 16).ok()?;
        let ino: u64 = parts.next()?.parse().ok()?;
        (maj == major && min == minor && ino == inode).then(|| fields.get(4)?.parse().ok()).flatten()
    })
}

/// Takes the data directory's lock (`wal/LOCK`, the WAL's `flock`) if nobody holds it, without
/// creating the file: `Ok(None)` if there is no lock file, [`Code::Locked`] if another process
/// holds it. The lock lasts as long as the returned file.
pub fn try_lock(wal_dir: &Path) -> CliResult<Option<fs::File>> {
    let path = wal_dir.join(LOCK_FILE_NAME);
    let file = match fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::io("cannot open", &path, &e)),
    };
    match walden_wal::storage::try_lock_exclusive(&file) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let who = lock_holder(wal_dir).map(|pid| format!(" (pid {pid})")).unwrap_or_default();
            Err(CliError::new(Code::Locked, format!("{} is in use by another process{who}", wal_dir.display())))
        }
        Err(e) => Err(CliError::io("cannot lock", &path, &e)),
    }
}

/// The WAL configuration the CLI opens databases with: the defaults, liberal record limits (so a
/// log written with larger limits still reads), and the requested recovery mode.
pub fn wal_config(recovery_mode: RecoveryMode) -> WalConfig {
    WalConfig { max_record_size_bytes: 1 << 30, max_batch_size_bytes: 1 << 30, recovery_mode, ..WalConfig::default() }
}

/// Opens the database of an existing data directory for a command that writes (tail, slots
/// create / drop / advance, recover). Takes the WAL's lock: another process holding it is
/// [`Code::Locked`], with its pid when it can be found.
pub fn open_database(root: &Path, recovery_mode: RecoveryMode) -> CliResult<Arc<Database>> {
    open_with(root, wal_config(recovery_mode))
}

/// Opens the database like [`open_database`] for `walden recover`: the active segment is always
/// scanned (a clean-close record left by the last close is not trusted), so the recovery mode
/// applies to whatever damage the files hold now.
pub fn open_for_recovery(root: &Path, recovery_mode: RecoveryMode) -> CliResult<Arc<Database>> {
    open_with(root, WalConfig { clean_close_record: false, ..wal_config(recovery_mode) })
}

fn open_with(root: &Path, wal: WalConfig) -> CliResult<Arc<Database>> {
    let dir = check_existing(root)?;
    let config = Config { wal, ..Config::default() };
    match Database::open(root, config) {
        Ok(db) => Ok(Arc::new(db)),
        Err(e) => {
            let mut err = CliError::from_error(format!("cannot open the database in {}", root.display()), &e);
            if err.code == Code::Locked {
                let who = lock_holder(&dir.wal).map(|pid| format!(" (pid {pid})")).unwrap_or_default();
                err = CliError::new(
                    Code::Locked,
                    format!("the data directory {} is in use by another process{who}", root.display()),
                )
                .with_hint(
                    "a Walden database is open in one process at a time; stop that process first. \
                     The read-only commands (status, dump, verify, slots list) work alongside it",
                );
            }
            Err(err)
        }
    }
}

/// Closes a database opened by [`open_database`], reporting errors (every handle must be gone).
pub fn close_database(db: Arc<Database>) -> CliResult {
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().map_err(|e| CliError::from_error("closing the database failed", &e)),
        Err(_) => Err(CliError::new(Code::Failure, "the database is still in use inside walden (a bug)")),
    }
}

/// Closes `db` after `result` was computed with it, whether or not that failed; `result`'s error
/// wins over the close's (the close error is usually a consequence).
pub fn close_after<T>(db: Arc<Database>, result: CliResult<T>) -> CliResult<T> {
    let closed = close_database(db);
    let value = result?;
    closed?;
    Ok(value)
}

/// Opens the database like [`open_database`], runs `body` with it and closes it ([`close_after`]).
pub fn with_database<T>(
    root: &Path,
    recovery_mode: RecoveryMode,
    body: impl FnOnce(&Arc<Database>) -> CliResult<T>,
) -> CliResult<T> {
    let db = open_database(root, recovery_mode)?;
    let result = body(&db);
    close_after(db, result)
}
