//! Small state files written atomically through the [`Storage`] seam: write `NAME.tmp`,
//! `fdatasync` it, rename over `NAME`, `fsync` the directory. A crash at any point leaves either
//! the old file or the new one under `NAME` (plus perhaps a stale `NAME.tmp`, removed at open).

use std::io;
use std::path::{Path, PathBuf};

use walden_wal::storage::Storage;

use crate::error::{EngineError, Result};

/// Suffix of the temporary file written before the rename.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Largest state file the engine reads (a slot file with a large table filter is a few KiB).
pub(crate) const MAX_STATE_FILE_BYTES: u64 = 16 << 20;

/// Atomically replaces `dir/name` with `bytes`; durable on return.
pub(crate) fn write_atomic(storage: &dyn Storage, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let target = dir.join(name);
    match storage.remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io("remove stale temp file", &tmp, e)),
    }
    {
        let file = storage.create_new(&tmp).map_err(|e| EngineError::io("create", &tmp, e))?;
        file.write_all_at(bytes, 0).map_err(|e| EngineError::io("write", &tmp, e))?;
        file.sync_data().map_err(|e| EngineError::io("fdatasync", &tmp, e))?;
    }
    storage.rename(&tmp, &target).map_err(|e| EngineError::io("rename", &target, e))?;
    storage.sync_dir(dir).map_err(|e| EngineError::io("fsync directory", dir, e))?;
    Ok(())
}

/// Removes `dir/name` durably. A missing file is not an error (a retried drop).
pub(crate) fn remove_durably(storage: &dyn Storage, dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    match storage.remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io("remove", &path, e)),
    }
    storage.sync_dir(dir).map_err(|e| EngineError::io("fsync directory", dir, e))
}

/// Reads a whole state file; `Ok(None)` if it does not exist. Refuses files larger than
/// [`MAX_STATE_FILE_BYTES`] as corrupt rather than allocating for them.
pub(crate) fn read_file(storage: &dyn Storage, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match storage.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io("open", path, e)),
    };
    let len = file.len().map_err(|e| EngineError::io("stat", path, e))?;
    if len > MAX_STATE_FILE_BYTES {
        return Err(EngineError::CorruptFile {
            path: path.to_path_buf(),
            detail: format!("{len} bytes is larger than any state file the engine writes"),
        });
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).map_err(|e| EngineError::io("read", path, e))?;
    Ok(Some(buf))
}

/// Removes leftover `*.tmp` files in `dir` (incomplete writes from a crash: the rename never
/// happened, so they hold nothing that was ever in effect). Returns their paths.
pub(crate) fn remove_temp_files(storage: &dyn Storage, dir: &Path) -> Result<Vec<PathBuf>> {
    let names = storage.list_dir(dir).map_err(|e| EngineError::io("list directory", dir, e))?;
    let mut removed = Vec::new();
    for name in names.into_iter().filter(|n| n.ends_with(TEMP_SUFFIX)) {
        let path = dir.join(&name);
        if storage.exists(&path).unwrap_or(false) && storage.open(&path, false).is_ok() {
            storage.remove_file(&path).map_err(|e| EngineError::io("remove stale temp file", &path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}
