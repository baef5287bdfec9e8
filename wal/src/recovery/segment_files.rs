//! Writing segment files crash-safely: a new segment appears under its final name only with a
//! durable header; a footer is written over the truncated data end and synced.

use std::path::{Path, PathBuf};

use crate::WalError;
use crate::clock::now_us;
use crate::format::{self, Footer, SegmentHeader, TEMP_SUFFIX};
use crate::storage::{Storage, StorageFile};

/// A random identifier for a new log, shared by all its segments (never 0).
pub(crate) fn new_log_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// Creates a new segment crash-safely: header into `NAME.tmp`, fsync, rename, fsync directory.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
) -> Result<(Box<dyn StorageFile>, PathBuf), WalError> {
    let path = dir.join(format::segment_file_name(header.first_lsn));
    let tmp = dir.join(format!("{}{TEMP_SUFFIX}", format::segment_file_name(header.first_lsn)));
    if storage.exists(&tmp).map_err(|e| WalError::io("stat", &tmp, e))? {
        storage.remove_file(&tmp).map_err(|e| WalError::io("remove", &tmp, e))?;
    }
    let file = storage.create_new(&tmp).map_err(|e| WalError::io("create", &tmp, e))?;
    file.write_all_at(&header.encode(), 0).map_err(|e| WalError::io("write", &tmp, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", &tmp, e))?;
    drop(file);
    storage.rename(&tmp, &path).map_err(|e| WalError::io("rename", &path, e))?;
    storage.sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))?;
    let file = storage.open(&path, true).map_err(|e| WalError::io("open", &path, e))?;
    Ok((file, path))
}

/// Writes a footer at `data_end_offset` of `file` (truncating anything after it) and syncs it.
pub(crate) fn write_footer(path: &Path, file: &dyn StorageFile, footer: &Footer) -> Result<(), WalError> {
    let mut buf = Vec::with_capacity(footer.encoded_len());
    footer.encode(&mut buf);
    file.set_len(footer.data_end_offset).map_err(|e| WalError::io("truncate", path, e))?;
    file.write_all_at(&buf, footer.data_end_offset).map_err(|e| WalError::io("write", path, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", path, e))?;
    Ok(())
}
