//! The directories the demo writes: its data directory and the lake beside it are created, or
//! reset when an earlier `walden demo` left them (they carry [`DEMO_MARKER`]); a directory the
//! demo did not create is never touched.

use std::fs;
use std::io;
use std::path::Path;

use walden_engine::{SLOTS_DIR_NAME, WAL_DIR_NAME};

use crate::datadir::{self, DEMO_MARKER};
use crate::exit::{CliError, CliResult, Code};

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
pub fn prepare(data_dir: &Path, lake_dir: &Path) -> CliResult<String> {
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
