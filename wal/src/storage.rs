//! The file-system seam.
//!
//! Every byte the WAL reads or writes goes through [`Storage`] and [`StorageFile`], so tests can swap
//! the real file system ([`StdStorage`]) for one that injects faults and simulates power loss
//! (`testing::fault::FaultStorage`, behind the `testing` feature). The trait is deliberately small: positional reads and writes,
//! `fdatasync`, directory listing and fsync, rename and delete, and a read-only whole-file map.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

/// An open file behind the [`Storage`] seam. All offsets are absolute byte positions.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes up to `buf.len()` bytes at `offset`; returns how many were written (may be short).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Truncates or extends the file to `len_bytes`.
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;

    /// Starts writing the file's dirty pages in `offset..offset + len_bytes` back to the disk
    /// without waiting for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Makes nothing
    /// durable: a hint, so that a later [`sync_data`](Self::sync_data) has less left to write.
    /// The default does nothing. It does not wait for or consume write-back errors, so the
    /// next `sync_data` still reports them.
    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        let _ = (offset, len_bytes);
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`, retrying short writes.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A file system: the only way the WAL touches disk.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Creates `path` and its parents if missing.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Names (not paths) of the entries in directory `path`, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Creates a new file for reading and writing; fails with `AlreadyExists` if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;

    /// Opens an existing file, read-only or for reading and writing.
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>>;

    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Deletes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creations, renames, deletions) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Maps a whole file read-only. The real file system uses `mmap`, so the returned bytes are
    /// zero-copy; the caller must only map files that are never modified again (sealed segments).
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes>;

    /// Takes an exclusive advisory lock on `path` (created if missing) so that two processes
    /// cannot write one log. The lock is held until the returned guard is dropped. Returns
    /// `WouldBlock` if someone else holds it. The default does no locking (in-memory storage).
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        let _ = path;
        Ok(Box::new(()))
    }
}

/// The real file system (`std::fs`, `pread`/`pwrite`, `fdatasync`, `mmap`).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdStorage;

#[derive(Debug)]
struct StdFile(File);

impl StorageFile for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(&self.0, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len_bytes)) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "range too large"));
        };
        // SAFETY: a valid, open descriptor. `SYNC_FILE_RANGE_WRITE` alone only submits write-back
        // (no `WAIT_AFTER`, which would consume the file's write-back error for `fdatasync`).
        let rc = unsafe { libc::sync_file_range(self.0.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Storage for StdStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Box::new(StdFile(file)))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        Ok(Box::new(StdFile(file)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: the WAL maps only sealed segments, which are never written, truncated or
        // re-created while mapped (deletion unlinks the name; the mapping stays valid).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        try_lock_exclusive(&file)?;
        Ok(Box::new(file))
    }
}

/// Takes the exclusive advisory lock (`flock`) that guards a log directory on `file` without
/// waiting: `WouldBlock` if another open file holds it. Held until `file` is closed. The WAL's
/// own lock and the CLI's check of it both go through here.
pub fn try_lock_exclusive(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// `statfs` magic numbers of the file systems [`file_system_type`] names.
const FILE_SYSTEM_NAMES: [(u64, &str); 10] = [
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlayfs"),
    (0x2FC1_2FC1, "zfs"),
    (0x6969, "nfs"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
];

/// The type of the file system holding a path (`statfs`), as benchmarks and `walden bench`
/// report it: a disk's figures mean nothing on a file system that lives in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSystemType {
    /// The `statfs` magic number.
    pub magic: u64,
}

impl FileSystemType {
    /// `ext4`, `xfs`, `tmpfs`, …, or `fs magic 0x…` for one not in the table.
    pub fn name(&self) -> String {
        match FILE_SYSTEM_NAMES.iter().find(|(magic, _)| *magic == self.magic) {
            Some((_, name)) => (*name).to_string(),
            None => format!("fs magic {:#x}", self.magic),
        }
    }

    /// Whether the file system keeps its files in memory (tmpfs, ramfs): nothing is durable
    /// there, and `fdatasync` costs nothing.
    pub fn is_in_memory(&self) -> bool {
        matches!(self.name().as_str(), "tmpfs" | "ramfs")
    }
}

/// The type of the file system holding `path`.
pub fn file_system_type(path: &Path) -> io::Result<FileSystemType> {
    let st = rustix::fs::statfs(path)?;
    // `f_type`'s integer type differs between targets; the magic numbers fit in 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64 & 0xFFFF_FFFF;
    Ok(FileSystemType { magic })
}
