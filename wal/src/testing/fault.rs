//! An in-memory, fault-injecting [`Storage`] for crash and fault tests.
//!
//! [`FaultStorage`] promises exactly what a POSIX file system promises and no more, so a test that
//! passes against it says something about real power loss:
//!
//! * File contents are "inodes" with two byte buffers: `data` (what reads see now, i.e. the page
//!   cache) and `durable` (what is on the platter). Only [`StorageFile::sync_data`] copies one to
//!   the other.
//! * Every directory has a *current* and a *durable* name → inode map. Creating, renaming and
//!   removing a file change only the current map; only [`Storage::sync_dir`] on that directory
//!   makes them durable. (Directories themselves are always durable: the WAL creates them once, at
//!   start-up, and modelling their own durability would add noise to every test.)
//! * [`FaultStorage::power_loss`] throws away everything that is not durable;
//!   [`FaultStorage::crash`] (a process crash) throws away nothing. Both invalidate every open
//!   handle, as a restarted process would not have them.
//!
//! On top of that the test can inject faults: failing syncs, short writes, a full disk, failing
//! writes, and a crash after an exact number of written bytes. Everything lives behind one mutex,
//! so the storage can be shared by the WAL's threads and the test's handle.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::storage::{Storage, StorageFile};

// Linux errno values, spelled out so this module does not need `libc`.
const EBADF: i32 = 9;
const EIO: i32 = 5;
const EWOULDBLOCK: i32 = 11;
const ENOSPC: i32 = 28;

/// The unit in which [`FaultStorage::power_loss_keep_random_sectors`] keeps or loses unsynced
/// overwrites.
pub const SECTOR_BYTES: usize = 512;

type Ino = u64;

fn eio() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(ENOSPC)
}

fn stale() -> io::Error {
    io::Error::other("stale handle after simulated crash")
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: storage is down until power_loss() or crash()")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: not found", path.display()))
}

/// Canonical key for a path: `a//b/./c/` and `a/b/c` must name the same file.
fn norm(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Splits a normalised file path into its directory and its name within it.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_string_lossy().into_owned())),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file path")),
    }
}

/// SplitMix64: a tiny deterministic generator for [`FaultStorage::power_loss_keep_random_prefix`]
/// (`rand` is only a dev-dependency of the crate, and this module is compiled in normal builds).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// File contents, independent of any name (a rename moves the inode, not the bytes).
#[derive(Debug, Default)]
struct Inode {
    /// What reads see now (the page cache).
    data: Vec<u8>,
    /// What survives a power loss.
    durable: Vec<u8>,
    /// `data[..clean] == durable[..clean]`, and every byte at or after `dirty_end` is the same in
    /// both once `durable` is resized to `data`'s length (what was never written since the last
    /// sync: equal bytes, or a grown file's zeros), so a sync copies only
    /// `data[clean..dirty_end]`. Segments can be large (with preallocated zeros after the data)
    /// and synced often; copying whole files, or whole tails, on every sync would make tests
    /// crawl.
    clean: usize,
    /// See `clean`: the end of what was written, grown or cut since the last sync.
    dirty_end: usize,
    /// Open handles of the current generation. An unlinked inode stays alive (and keeps using
    /// space) while this is non-zero, as on POSIX.
    open: usize,
}

#[derive(Debug, Default)]
struct Dir {
    current: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

/// Injected faults; all cleared by `power_loss*()` and `crash()`.
#[derive(Debug, Default)]
struct Faults {
    fail_next_sync: bool,
    fail_all_syncs: bool,
    fail_next_write: bool,
    short_writes: bool,
    space_limit: Option<u64>,
    /// Bytes that may still be written before the simulated crash.
    crash_after: Option<u64>,
}

#[derive(Debug)]
struct State {
    // BTreeMaps everywhere so iteration (and thus the random-prefix mode) is deterministic.
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    dirs: BTreeMap<PathBuf, Dir>,
    /// Bumped by every simulated restart; handles from an older generation are stale.
    generation: u64,
    /// Set by `crash_after_bytes`; every operation fails until the next restart.
    crashed: bool,
    /// Inodes held by a `lock_exclusive` guard (like `flock`, locks belong to the inode).
    locked: BTreeSet<Ino>,
    faults: Faults,
    sync_count: u64,
    bytes_written: u64,
}

impl State {
    fn new() -> Self {
        // Both roots exist implicitly: `/x` lives in `/`, and a relative `x` lives in ``.
        let dirs = [PathBuf::from("/"), PathBuf::new()].into_iter().map(|p| (p, Dir::default())).collect();
        State {
            inodes: BTreeMap::new(),
            next_ino: 1,
            dirs,
            generation: 0,
            crashed: false,
            locked: BTreeSet::new(),
            faults: Faults::default(),
            sync_count: 0,
            bytes_written: 0,
        }
    }

    fn check_up(&self) -> io::Result<()> {
        if self.crashed { Err(crashed()) } else { Ok(()) }
    }

    /// The inode a (normalised) path currently names, if it is a file.
    fn lookup(&self, path: &Path) -> Option<Ino> {
        let (dir, name) = split(path).ok()?;
        self.dirs.get(&dir)?.current.get(&name).copied()
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains_key(path)
    }

    /// The existing directory a new entry `path` would go into, and the entry's name.
    fn parent_dir(&mut self, path: &Path) -> io::Result<(&mut Dir, String)> {
        let (dir, name) = split(path)?;
        match self.dirs.get_mut(&dir) {
            Some(d) => Ok((d, name)),
            None => Err(not_found(&dir)),
        }
    }

    /// Like `lookup`, with the error a real file system would give.
    fn lookup_file(&self, path: &Path) -> io::Result<Ino> {
        match self.lookup(path) {
            Some(ino) => Ok(ino),
            None if self.is_dir(path) => Err(io::ErrorKind::IsADirectory.into()),
            None => Err(not_found(path)),
        }
    }

    /// Creates an empty file at a (normalised) path that names nothing yet. Only the current
    /// directory view gets the name: it is lost on power loss until the directory is synced.
    fn create_file(&mut self, path: &Path) -> io::Result<Ino> {
        let ino = self.next_ino;
        let (dir, name) = self.parent_dir(path)?;
        dir.current.insert(name, ino);
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        Ok(ino)
    }

    fn inode(&mut self, ino: Ino) -> &mut Inode {
        // Invariant: an inode with a live handle or a directory entry is never collected.
        self.inodes.get_mut(&ino).expect("inode kept alive by a handle or an entry")
    }

    fn take_sync_fault(&mut self) -> io::Result<()> {
        let fail_once = std::mem::take(&mut self.faults.fail_next_sync);
        if fail_once || self.faults.fail_all_syncs { Err(eio()) } else { Ok(()) }
    }

    fn linked(&self, durable_too: bool) -> BTreeSet<Ino> {
        let mut set = BTreeSet::new();
        for dir in self.dirs.values() {
            set.extend(dir.current.values().copied());
            if durable_too {
                set.extend(dir.durable.values().copied());
            }
        }
        set
    }

    /// Drops inodes nobody can reach any more: no open handle, and no name now or after a
    /// power loss (an unsynced removal must be able to come back).
    fn collect_garbage(&mut self) {
        let linked = self.linked(true);
        self.inodes.retain(|ino, inode| inode.open > 0 || linked.contains(ino));
    }

    /// Bytes in use: files that have a name now or are still open. A removed file's space is
    /// freed even if its removal is not yet durable, as on a real file system.
    fn space_used(&self) -> u64 {
        let linked = self.linked(false);
        let live = self.inodes.iter().filter(|(ino, i)| i.open > 0 || linked.contains(ino));
        live.map(|(_, i)| i.data.len() as u64).sum()
    }

    /// Clamps a write of `n` bytes at `offset` into `ino` to the space limit. `Ok(0)` never
    /// happens: a write of which nothing fits is `ENOSPC`.
    fn fit_to_space(&mut self, ino: Ino, offset: u64, n: usize) -> io::Result<usize> {
        let Some(limit) = self.faults.space_limit else {
            return Ok(n);
        };
        let free = limit.saturating_sub(self.space_used());
        // The file may grow by `free` bytes (zero-filled gap included); overwrites are free.
        let max_end = self.inode(ino).data.len() as u64 + free;
        match max_end.saturating_sub(offset) {
            0 => Err(enospc()),
            fits => Ok(n.min(usize::try_from(fits).unwrap_or(usize::MAX))),
        }
    }

    /// A simulated restart: old handles go stale and old locks are released (the process that
    /// held them is gone); the crashed flag and all faults are cleared.
    fn restart(&mut self) {
        self.generation += 1;
        self.crashed = false;
        self.locked.clear();
        self.faults = Faults::default();
        for inode in self.inodes.values_mut() {
            inode.open = 0;
        }
        self.collect_garbage();
    }
}

/// Converts an offset and length to an in-memory range end, rejecting absurd offsets.
fn end_of(offset: u64, len: usize) -> io::Result<(usize, usize)> {
    let start = usize::try_from(offset).ok();
    match start.and_then(|s| s.checked_add(len).map(|e| (s, e))) {
        Some(range) => Ok(range),
        None => Err(io::Error::new(io::ErrorKind::InvalidInput, "offset too large")),
    }
}

/// An in-memory file system that simulates power loss and process crashes and injects faults.
///
/// Cloning is cheap and every clone shares the same files, so a test can keep a handle after
/// giving one to the WAL. Faults are one-shot unless documented otherwise; `power_loss*()` and
/// [`crash`](Self::crash) clear all of them (including the space limit).
#[derive(Clone)]
pub struct FaultStorage {
    state: Arc<Mutex<State>>,
}

impl Default for FaultStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FaultStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the contents: a WAL's `Debug` output would otherwise dump whole segments.
        let st = self.state.lock();
        f.debug_struct("FaultStorage")
            .field("inodes", &st.inodes.len())
            .field("generation", &st.generation)
            .field("crashed", &st.crashed)
            .finish_non_exhaustive()
    }
}

impl FaultStorage {
    /// An empty file system containing only the roots `/` and `` (for relative paths).
    pub fn new() -> Self {
        FaultStorage { state: Arc::new(Mutex::new(State::new())) }
    }

    /// Simulates power loss: every file reverts to its durable bytes, every directory to its
    /// durable entries, and all open handles go stale. Also clears the crashed flag and faults.
    pub fn power_loss(&self) {
        self.lose_power(None, false);
    }

    /// Like [`power_loss`](Self::power_loss), but models partial writeback: for every file whose
    /// unsynced data extends past its durable bytes, a random-length prefix (possibly empty,
    /// possibly all) of that appended suffix survives. Unsynced overwrites of durable bytes are
    /// still lost. The outcome is a deterministic function of `seed` and the operation history.
    pub fn power_loss_keep_random_prefix(&self, seed: u64) {
        self.lose_power(Some(seed), false);
    }

    /// Like [`power_loss_keep_random_prefix`](Self::power_loss_keep_random_prefix), and in
    /// addition every [`SECTOR_BYTES`] sector of unsynced overwrites of durable bytes survives or
    /// not at random, independently: a disk whose volatile cache wrote some of an interrupted
    /// flush's sectors and not others, with no journal commit ordering them (as for overwrites
    /// of preallocated space). Deterministic in `seed` and the operation history.
    pub fn power_loss_keep_random_sectors(&self, seed: u64) {
        self.lose_power(Some(seed), true);
    }

    fn lose_power(&self, keep_prefix_seed: Option<u64>, keep_random_sectors: bool) {
        let mut st = self.state.lock();
        for dir in st.dirs.values_mut() {
            dir.current = dir.durable.clone();
        }
        for (&ino, inode) in st.inodes.iter_mut() {
            let mut survived = inode.durable.clone();
            if let (Some(seed), true) = (keep_prefix_seed, keep_random_sectors) {
                // Unsynced overwrites lie in `clean..dirty_end` (within the durable length).
                let end = inode.dirty_end.min(inode.data.len()).min(survived.len());
                let mut at = inode.clean.min(end) / SECTOR_BYTES * SECTOR_BYTES;
                while at < end {
                    let to = (at + SECTOR_BYTES).min(end);
                    if splitmix64(seed ^ splitmix64(ino) ^ splitmix64(at as u64 + 1)) & 1 == 1 {
                        survived[at..to].copy_from_slice(&inode.data[at..to]);
                    }
                    at = to;
                }
            }
            if let Some(seed) = keep_prefix_seed {
                let suffix = inode.data.get(inode.durable.len()..).unwrap_or_default();
                // Mix in the inode number so each file gets its own, order-independent draw.
                let draw = splitmix64(seed ^ splitmix64(ino));
                let keep = (draw % (suffix.len() as u64 + 1)) as usize;
                survived.extend_from_slice(&suffix[..keep]);
            }
            // What survived is now what is on disk.
            inode.durable.clone_from(&survived);
            inode.clean = survived.len();
            inode.dirty_end = 0;
            inode.data = survived;
        }
        st.restart();
    }

    /// Simulates a process crash without power loss: the OS page cache survives, so all data
    /// and directory entries stay as they are (but are no more durable than before). All open
    /// handles go stale; the crashed flag and all faults are cleared.
    pub fn crash(&self) {
        self.state.lock().restart();
    }

    /// Whether a [`crash_after_bytes`](Self::crash_after_bytes) crash has happened (and no
    /// restart since).
    pub fn is_crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// Makes the next `sync_data` or `sync_dir` fail with `EIO` without making anything durable.
    pub fn fail_next_sync(&self) {
        self.state.lock().faults.fail_next_sync = true;
    }

    /// While `on`, every `sync_data` and `sync_dir` fails with `EIO` (persistent).
    pub fn fail_all_syncs(&self, on: bool) {
        self.state.lock().faults.fail_all_syncs = on;
    }

    /// Limits the total length of all files (persistent until changed or a restart). A write
    /// that does not fit writes what fits and returns that short count; a write of which nothing
    /// fits (and a `set_len` that would exceed the limit) fails with `ENOSPC`.
    pub fn set_space_limit(&self, limit_bytes: Option<u64>) {
        self.state.lock().faults.space_limit = limit_bytes;
    }

    /// While `on`, every `write_at` writes at most half its buffer (at least one byte) and
    /// returns the short count, which the caller must loop over (persistent).
    pub fn short_writes(&self, on: bool) {
        self.state.lock().faults.short_writes = on;
    }

    /// Crashes the storage once `n` more bytes have been written across all files. A write that
    /// ends exactly at the boundary succeeds; the write that would cross it writes only the
    /// bytes up to the boundary and fails, and from then on every operation on the storage and
    /// on every handle fails until `power_loss*()` or [`crash`](Self::crash).
    pub fn crash_after_bytes(&self, n: u64) {
        self.state.lock().faults.crash_after = Some(n);
    }

    /// Makes the next non-empty `write_at` fail with `EIO`, writing nothing.
    pub fn fail_next_write(&self) {
        self.state.lock().faults.fail_next_write = true;
    }

    /// The current bytes of the file at `path`, or `None` if there is no such file.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = st.lookup(&norm(path))?;
        Some(st.inodes[&ino].data.clone())
    }

    /// Replaces the file's bytes, both current and durable. A missing file is created, along with
    /// its parent directories, with a durable directory entry (as if it had always been there).
    ///
    /// # Panics
    /// If `path` is a directory or not a file path.
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let path = norm(path);
        let mut st = self.state.lock();
        assert!(!st.is_dir(&path), "{} is a directory", path.display());
        let ino = match st.lookup(&path) {
            Some(ino) => ino,
            None => {
                let (dir, name) = split(&path).expect("a file path");
                for ancestor in dir.ancestors() {
                    st.dirs.entry(ancestor.to_path_buf()).or_default();
                }
                let ino = st.create_file(&path).expect("parent just created");
                st.dirs.get_mut(&dir).expect("just created").durable.insert(name, ino);
                ino
            }
        };
        let inode = st.inode(ino);
        inode.durable.clone_from(&bytes);
        inode.clean = bytes.len();
        inode.dirty_end = 0;
        inode.data = bytes;
    }

    /// Flips bit `bit` (0–7) of byte `byte_offset` in the file's current bytes and, if the durable
    /// bytes are that long, in those too (simulated media corruption).
    ///
    /// # Panics
    /// If the file does not exist, `bit > 7`, or the offset is beyond both current and durable
    /// bytes.
    pub fn flip_bit(&self, path: &Path, byte_offset: u64, bit: u8) {
        assert!(bit < 8, "bit {bit} out of range");
        let mut st = self.state.lock();
        let ino = st.lookup(&norm(path)).unwrap_or_else(|| panic!("no file {}", path.display()));
        let inode = st.inode(ino);
        let mut flipped = false;
        for buf in [&mut inode.data, &mut inode.durable] {
            if let Some(byte) = usize::try_from(byte_offset).ok().and_then(|i| buf.get_mut(i)) {
                *byte ^= 1 << bit;
                flipped = true;
            }
        }
        assert!(flipped, "offset {byte_offset} beyond end of {}", path.display());
    }

    /// Number of successful `sync_data` calls so far (`sync_dir` is not counted).
    pub fn sync_count(&self) -> u64 {
        self.state.lock().sync_count
    }

    /// Total bytes written through `write_at` so far (not counting `set_len` or test helpers).
    pub fn bytes_written(&self) -> u64 {
        self.state.lock().bytes_written
    }

    /// Full paths of all files that currently exist, sorted.
    pub fn list_all_files(&self) -> Vec<PathBuf> {
        let st = self.state.lock();
        let mut files: Vec<PathBuf> =
            st.dirs.iter().flat_map(|(dir, d)| d.current.keys().map(move |name| dir.join(name))).collect();
        files.sort();
        files
    }

    fn handle(&self, st: &mut State, ino: Ino, writable: bool) -> Box<dyn StorageFile> {
        st.inode(ino).open += 1;
        let generation = st.generation;
        Box::new(FaultFile { state: Arc::clone(&self.state), ino, generation, writable })
    }
}

impl Storage for FaultStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        for ancestor in path.ancestors() {
            if st.lookup(ancestor).is_some() {
                let kind = if ancestor == path { io::ErrorKind::AlreadyExists } else { io::ErrorKind::NotADirectory };
                return Err(kind.into());
            }
        }
        for ancestor in path.ancestors() {
            st.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let path = norm(path);
        let st = self.state.lock();
        st.check_up()?;
        let Some(dir) = st.dirs.get(&path) else {
            return Err(if st.lookup(&path).is_some() {
                io::ErrorKind::NotADirectory.into()
            } else {
                not_found(&path)
            });
        };
        let mut names: Vec<String> = dir.current.keys().cloned().collect();
        let subdirs = st.dirs.keys().filter(|d| d.parent() == Some(path.as_path()));
        names.extend(subdirs.filter_map(|d| d.file_name()).map(|n| n.to_string_lossy().into()));
        names.sort();
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        if st.is_dir(&path) || st.lookup(&path).is_some() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = st.create_file(&path)?;
        Ok(self.handle(&mut st, ino, true))
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        let ino = st.lookup_file(&path)?;
        Ok(self.handle(&mut st, ino, writable))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (norm(from), norm(to));
        let mut st = self.state.lock();
        st.check_up()?;
        if st.is_dir(&from) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "renaming directories"));
        }
        let ino = st.lookup_file(&from)?;
        if st.is_dir(&to) {
            return Err(io::ErrorKind::IsADirectory.into());
        }
        if from == to {
            return Ok(());
        }
        // Check the target directory before touching the source, so a failure changes nothing.
        st.parent_dir(&to)?;
        let (from_dir, from_name) = st.parent_dir(&from)?;
        from_dir.current.remove(&from_name);
        let (to_dir, to_name) = st.parent_dir(&to)?;
        // Replaces any existing target; its inode lives on if its old name is still durable.
        to_dir.current.insert(to_name, ino);
        st.collect_garbage();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        st.lookup_file(&path)?;
        let (dir, name) = st.parent_dir(&path)?;
        dir.current.remove(&name);
        st.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        if !st.is_dir(&path) {
            return Err(not_found(&path));
        }
        st.take_sync_fault()?;
        let dir = st.dirs.get_mut(&path).expect("checked above");
        dir.durable = dir.current.clone();
        // Durably removed or replaced files may now be unreachable.
        st.collect_garbage();
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let path = norm(path);
        let st = self.state.lock();
        st.check_up()?;
        Ok(st.is_dir(&path) || st.lookup(&path).is_some())
    }

    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        let ino = st.lookup_file(&path)?;
        // A copy, not a view: later writes (which the WAL promises not to make) would not show.
        Ok(Bytes::copy_from_slice(&st.inode(ino).data))
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.check_up()?;
        // Like `StdStorage`: the lock file is created if missing (an unsynced creation).
        let ino = match st.lookup(&path) {
            Some(ino) => ino,
            None if st.is_dir(&path) => return Err(io::ErrorKind::IsADirectory.into()),
            None => st.create_file(&path)?,
        };
        if !st.locked.insert(ino) {
            return Err(io::Error::from_raw_os_error(EWOULDBLOCK));
        }
        // The guard keeps the inode alive like an open handle does.
        st.inode(ino).open += 1;
        let generation = st.generation;
        Ok(Box::new(FaultLock { state: Arc::clone(&self.state), ino, generation }))
    }
}

/// The guard returned by [`FaultStorage::lock_exclusive`]; dropping it releases the lock.
struct FaultLock {
    state: Arc<Mutex<State>>,
    ino: Ino,
    generation: u64,
}

impl Drop for FaultLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        // After a restart the lock is already gone (and may belong to someone else by now).
        if st.generation == self.generation {
            st.locked.remove(&self.ino);
            st.inode(self.ino).open -= 1;
            st.collect_garbage();
        }
    }
}

/// An open [`FaultStorage`] file: an inode reference tagged with the generation it was opened in.
struct FaultFile {
    state: Arc<Mutex<State>>,
    ino: Ino,
    generation: u64,
    writable: bool,
}

impl fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile")
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .field("writable", &self.writable)
            .finish()
    }
}

impl FaultFile {
    /// Runs `op` on the shared state if this handle is still valid and the storage is up.
    fn with<R>(&self, op: impl FnOnce(&mut State) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state.lock();
        if st.generation != self.generation {
            return Err(stale());
        }
        st.check_up()?;
        op(&mut st)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable { Ok(()) } else { Err(io::Error::from_raw_os_error(EBADF)) }
    }
}

impl Drop for FaultFile {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        // A stale handle's count was already reset by the restart.
        if st.generation == self.generation {
            st.inode(self.ino).open -= 1;
            st.collect_garbage();
        }
    }
}

impl StorageFile for FaultFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|st| Ok(st.inode(self.ino).data.len() as u64))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|st| {
            let data = &st.inode(self.ino).data;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.with(|st| {
            self.check_writable()?;
            if buf.is_empty() {
                return Ok(0);
            }
            end_of(offset, buf.len())?; // reject absurd offsets before any fault bookkeeping
            if std::mem::take(&mut st.faults.fail_next_write) {
                return Err(eio());
            }
            let mut n = buf.len();
            if st.faults.short_writes {
                n = (n / 2).max(1);
            }
            n = st.fit_to_space(self.ino, offset, n)?;
            let mut crash_now = false;
            if let Some(budget) = st.faults.crash_after {
                if n as u64 > budget {
                    n = budget as usize; // fits: smaller than a usize
                    crash_now = true;
                } else {
                    st.faults.crash_after = Some(budget - n as u64);
                }
            }
            if n > 0 {
                let (start, end) = end_of(offset, n).expect("checked above");
                let inode = st.inode(self.ino);
                // Bytes from `start` (or from the old end, if the gap is zero-filled) change.
                inode.clean = inode.clean.min(start).min(inode.data.len());
                inode.dirty_end = inode.dirty_end.max(end);
                if inode.data.len() < end {
                    inode.data.resize(end, 0);
                }
                inode.data[start..end].copy_from_slice(&buf[..n]);
                st.bytes_written += n as u64;
            }
            if crash_now {
                st.crashed = true;
                st.faults.crash_after = None;
                return Err(crashed());
            }
            Ok(n)
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|st| {
            st.take_sync_fault()?;
            let inode = st.inode(self.ino);
            let len = inode.data.len();
            inode.durable.resize(len, 0);
            let (from, to) = (inode.clean.min(len), inode.dirty_end.min(len));
            if from < to {
                inode.durable[from..to].copy_from_slice(&inode.data[from..to]);
            }
            inode.clean = len;
            inode.dirty_end = 0;
            st.sync_count += 1;
            Ok(())
        })
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.with(|st| {
            self.check_writable()?;
            let (_, new_len) = end_of(len_bytes, 0)?;
            let old_len = st.inode(self.ino).data.len();
            if let Some(limit) = st.faults.space_limit
                && new_len > old_len
                && st.space_used() + (new_len - old_len) as u64 > limit
            {
                return Err(enospc());
            }
            let inode = st.inode(self.ino);
            inode.clean = inode.clean.min(new_len).min(old_len);
            // Cut or grown bytes differ from what `durable` holds there (or will, once resized).
            inode.dirty_end = inode.dirty_end.max(new_len).max(old_len);
            inode.data.resize(new_len, 0);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A storage with `/db` created (directories are always durable).
    fn setup() -> FaultStorage {
        let fs = FaultStorage::new();
        fs.create_dir_all(&p("/db")).unwrap();
        fs
    }

    /// Creates `path` with `bytes`, data and directory entry both durable.
    fn durable_file(fs: &FaultStorage, path: &str, bytes: &[u8]) {
        let f = fs.create_new(&p(path)).unwrap();
        f.write_all_at(bytes, 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p(path).parent().unwrap()).unwrap();
    }

    fn is_stale(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::Other && e.to_string() == "stale handle after simulated crash"
    }

    #[test]
    fn basic_file_semantics() {
        let fs = setup();
        let f = fs.create_new(&p("/db/a")).unwrap();
        assert_eq!(f.len().unwrap(), 0);
        f.write_all_at(b"xy", 4).unwrap(); // past the end: zero-filled gap
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"\0\0\0\0xy");
        let mut buf = [9u8; 4];
        assert_eq!(f.read_at(&mut buf, 6).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, 100).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, 3).unwrap(), 3);
        assert_eq!(&buf[..3], b"\0xy");
        f.set_len(2).unwrap();
        f.set_len(3).unwrap();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"\0\0\0");
        assert_eq!(&fs.map_readonly(&p("/db/a")).unwrap()[..], b"\0\0\0");
        assert_eq!(fs.bytes_written(), 2);

        let kind = |r: io::Result<Box<dyn StorageFile>>| r.unwrap_err().kind();
        assert_eq!(kind(fs.open(&p("/db/missing"), false)), io::ErrorKind::NotFound);
        assert_eq!(kind(fs.create_new(&p("/db/a"))), io::ErrorKind::AlreadyExists);
        assert_eq!(kind(fs.create_new(&p("/nodir/a"))), io::ErrorKind::NotFound);
        assert_eq!(kind(fs.create_new(&p("/db"))), io::ErrorKind::AlreadyExists);
        assert_eq!(fs.map_readonly(&p("/db/x")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(fs.remove_file(&p("/db/x")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(fs.sync_dir(&p("/nodir")).unwrap_err().kind(), io::ErrorKind::NotFound);

        // Read-only handles cannot write; the same file is shared between handles.
        let ro = fs.open(&p("/db//a/"), false).unwrap();
        assert_eq!(ro.write_at(b"z", 0).unwrap_err().raw_os_error(), Some(EBADF));
        assert_eq!(ro.set_len(0).unwrap_err().raw_os_error(), Some(EBADF));
        f.write_all_at(b"q", 0).unwrap();
        let mut one = [0u8];
        ro.read_exact_at(&mut one, 0).unwrap();
        assert_eq!(&one, b"q");
    }

    #[test]
    fn directories_list_exists_rename() {
        let fs = setup();
        fs.create_dir_all(&p("/db/sub/deeper")).unwrap();
        durable_file(&fs, "/db/a", b"A");
        durable_file(&fs, "/db/b", b"B");
        assert!(fs.exists(&p("/db")).unwrap());
        assert!(fs.exists(&p("/db/sub/deeper")).unwrap());
        assert!(fs.exists(&p("/db/a")).unwrap());
        assert!(!fs.exists(&p("/db/c")).unwrap());
        assert_eq!(fs.list_dir(&p("/db")).unwrap(), ["a", "b", "sub"]);
        assert_eq!(fs.list_dir(&p("/")).unwrap(), ["db"]);
        assert_eq!(fs.list_dir(&p("/nope")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(fs.create_dir_all(&p("/db/a/x")).is_err());

        fs.rename(&p("/db/a"), &p("/db/b")).unwrap(); // replaces the target
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"A");
        assert_eq!(fs.file_bytes(&p("/db/a")), None);
        assert_eq!(fs.list_all_files(), [p("/db/b")]);
        let err = fs.rename(&p("/db/b"), &p("/nodir/b")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(fs.exists(&p("/db/b")).unwrap(), "failed rename changes nothing");

        // Relative paths live in their own root.
        fs.create_dir_all(&p("rel")).unwrap();
        fs.create_new(&p("rel/f")).unwrap();
        assert_eq!(fs.list_dir(&p("rel")).unwrap(), ["f"]);
    }

    #[test]
    fn unsynced_data_lost_synced_kept() {
        let fs = setup();
        durable_file(&fs, "/db/a", b"abc");
        let f = fs.open(&p("/db/a"), true).unwrap();
        f.write_all_at(b"def", 3).unwrap();
        f.write_all_at(b"X", 0).unwrap();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"Xbcdef");
        assert_eq!(fs.sync_count(), 1);
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"abc");
        assert!(is_stale(&f.len().unwrap_err()));

        // Synced data survives; so does a set_len truncation once synced.
        let f = fs.open(&p("/db/a"), true).unwrap();
        f.write_all_at(b"d", 3).unwrap();
        f.sync_data().unwrap();
        f.set_len(1).unwrap();
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"abcd");
    }

    #[test]
    fn unsynced_create_disappears() {
        let fs = setup();
        let f = fs.create_new(&p("/db/new")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_data().unwrap(); // data durable, but the name is not
        fs.power_loss();
        assert!(!fs.exists(&p("/db/new")).unwrap());
        assert!(fs.list_all_files().is_empty());
        assert!(fs.state.lock().inodes.is_empty(), "orphaned inode collected");

        // Once the directory is synced, the file survives.
        durable_file(&fs, "/db/new", b"data");
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/new")).unwrap(), b"data");
    }

    #[test]
    fn unsynced_rename_reverts() {
        let fs = setup();
        durable_file(&fs, "/db/a.tmp", b"A");
        durable_file(&fs, "/db/b", b"old");
        fs.rename(&p("/db/a.tmp"), &p("/db/b")).unwrap();
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"A");
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/a.tmp")).unwrap(), b"A");
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"old");

        fs.rename(&p("/db/a.tmp"), &p("/db/b")).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        fs.power_loss();
        assert_eq!(fs.list_all_files(), [p("/db/b")]);
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"A");
        assert_eq!(fs.state.lock().inodes.len(), 1, "replaced target collected");
    }

    #[test]
    fn unsynced_remove_comes_back_with_durable_bytes() {
        let fs = setup();
        durable_file(&fs, "/db/a", b"durable");
        let f = fs.open(&p("/db/a"), true).unwrap();
        f.write_all_at(b"-unsynced", 7).unwrap();
        fs.remove_file(&p("/db/a")).unwrap();
        assert!(!fs.exists(&p("/db/a")).unwrap());
        // An open handle to an unlinked file keeps working, as on POSIX.
        assert_eq!(f.len().unwrap(), 16);
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"durable");

        fs.remove_file(&p("/db/a")).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        fs.power_loss();
        assert!(!fs.exists(&p("/db/a")).unwrap());
        assert!(fs.state.lock().inodes.is_empty());
    }

    #[test]
    fn unlinked_open_file_is_collected_on_close() {
        let fs = setup();
        durable_file(&fs, "/db/a", b"x");
        let f = fs.open(&p("/db/a"), true).unwrap();
        fs.remove_file(&p("/db/a")).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        f.write_all_at(b"still writable", 0).unwrap();
        assert_eq!(fs.state.lock().inodes.len(), 1);
        drop(f);
        assert!(fs.state.lock().inodes.is_empty());
    }

    /// Durable "hello", then an in-place overwrite of 'h' and an unsynced append.
    fn random_prefix_outcome(seed: u64) -> Vec<u8> {
        let fs = setup();
        durable_file(&fs, "/db/a", b"hello");
        let f = fs.open(&p("/db/a"), true).unwrap();
        f.write_all_at(b"J", 0).unwrap();
        f.write_all_at(b" world, appended", 5).unwrap();
        fs.power_loss_keep_random_prefix(seed);
        assert!(is_stale(&f.sync_data().unwrap_err()));
        let bytes = fs.file_bytes(&p("/db/a")).unwrap();
        // What survived is durable now: a second power loss changes nothing.
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), bytes);
        bytes
    }

    #[test]
    fn random_prefix_keeps_only_a_prefix() {
        let full = b"hello world, appended";
        let mut lengths = BTreeSet::new();
        for seed in 0..200 {
            let got = random_prefix_outcome(seed);
            assert!(got.len() >= 5 && full.starts_with(&got), "seed {seed}: {got:?}");
            assert_eq!(got, random_prefix_outcome(seed), "deterministic");
            lengths.insert(got.len());
        }
        // Both extremes and something in between turn up.
        assert!(lengths.contains(&5) && lengths.contains(&full.len()), "{lengths:?}");
        assert!(lengths.len() > 5, "{lengths:?}");
    }

    #[test]
    fn random_prefix_mode_still_reverts_directories() {
        let fs = setup();
        let f = fs.create_new(&p("/db/new")).unwrap();
        f.write_all_at(b"abc", 0).unwrap();
        fs.power_loss_keep_random_prefix(7);
        assert!(!fs.exists(&p("/db/new")).unwrap());
    }

    #[test]
    fn crash_keeps_everything_but_makes_nothing_durable() {
        let fs = setup();
        durable_file(&fs, "/db/a", b"a");
        durable_file(&fs, "/db/gone", b"g");
        let f = fs.open(&p("/db/a"), true).unwrap();
        f.write_all_at(b"bc", 1).unwrap();
        fs.create_new(&p("/db/new")).unwrap().write_all_at(b"n", 0).unwrap();
        fs.rename(&p("/db/a"), &p("/db/b")).unwrap();
        fs.remove_file(&p("/db/gone")).unwrap();
        fs.fail_all_syncs(true);

        fs.crash();
        assert!(is_stale(&f.write_at(b"x", 0).unwrap_err()));
        assert_eq!(fs.list_all_files(), [p("/db/b"), p("/db/new")]);
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"abc");
        fs.open(&p("/db/b"), true).unwrap().sync_data().unwrap(); // faults were cleared

        // The directory changes are still not durable.
        fs.power_loss();
        assert_eq!(fs.list_all_files(), [p("/db/a"), p("/db/gone")]);
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"abc");
    }

    #[test]
    fn stale_handles_fail_every_call() {
        let fs = setup();
        let f = fs.create_new(&p("/db/a")).unwrap();
        fs.crash();
        let mut buf = [0u8; 1];
        assert!(is_stale(&f.len().unwrap_err()));
        assert!(is_stale(&f.read_at(&mut buf, 0).unwrap_err()));
        assert!(is_stale(&f.read_exact_at(&mut buf, 0).unwrap_err()));
        assert!(is_stale(&f.write_at(b"x", 0).unwrap_err()));
        assert!(is_stale(&f.write_all_at(b"x", 0).unwrap_err()));
        assert!(is_stale(&f.sync_data().unwrap_err()));
        assert!(is_stale(&f.set_len(0).unwrap_err()));
        // A new handle works, and dropping the stale one disturbs nothing.
        let g = fs.open(&p("/db/a"), true).unwrap();
        drop(f);
        g.write_all_at(b"ok", 0).unwrap();
    }

    #[test]
    fn fail_next_sync_is_one_shot_and_makes_nothing_durable() {
        let fs = setup();
        let f = fs.create_new(&p("/db/a")).unwrap();
        f.write_all_at(b"abc", 0).unwrap();
        fs.fail_next_sync();
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        fs.sync_dir(&p("/db")).unwrap();
        assert_eq!(fs.sync_count(), 0);
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"");

        // sync_dir consumes it too.
        fs.create_new(&p("/db/b")).unwrap();
        fs.fail_next_sync();
        assert_eq!(fs.sync_dir(&p("/db")).unwrap_err().raw_os_error(), Some(EIO));
        fs.power_loss();
        assert!(!fs.exists(&p("/db/b")).unwrap());
    }

    #[test]
    fn fail_all_syncs_is_persistent() {
        let fs = setup();
        let f = fs.create_new(&p("/db/a")).unwrap();
        fs.fail_all_syncs(true);
        for _ in 0..3 {
            assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(EIO));
            assert_eq!(fs.sync_dir(&p("/db")).unwrap_err().raw_os_error(), Some(EIO));
        }
        fs.fail_all_syncs(false);
        f.sync_data().unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        assert_eq!(fs.sync_count(), 1);
    }

    #[test]
    fn space_limit_short_write_then_enospc() {
        let fs = setup();
        fs.set_space_limit(Some(10));
        let a = fs.create_new(&p("/db/a")).unwrap();
        let b = fs.create_new(&p("/db/b")).unwrap();
        assert_eq!(a.write_at(b"aaaaaa", 0).unwrap(), 6);
        assert_eq!(b.write_at(b"bbbbbb", 0).unwrap(), 4, "what fits, short");
        assert_eq!(b.write_at(b"bb", 4).unwrap_err().raw_os_error(), Some(ENOSPC));
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"bbbb");
        assert_eq!(b.write_all_at(b"xyz", 2).unwrap_err().raw_os_error(), Some(ENOSPC));
        assert_eq!(fs.file_bytes(&p("/db/b")).unwrap(), b"bbxy", "overwrite in place fits");
        assert_eq!(b.set_len(5).unwrap_err().raw_os_error(), Some(ENOSPC));
        b.set_len(4).unwrap();

        // Removing a file frees its space once no handle holds it.
        fs.remove_file(&p("/db/a")).unwrap();
        assert_eq!(b.write_at(b"b", 4).unwrap_err().raw_os_error(), Some(ENOSPC));
        drop(a);
        assert_eq!(b.write_at(b"cccccccc", 4).unwrap(), 6);
        assert_eq!(b.len().unwrap(), 10);
        fs.set_space_limit(None);
        b.write_all_at(b"more", 10).unwrap();
    }

    #[test]
    fn space_limit_counts_zero_filled_gap() {
        let fs = setup();
        fs.set_space_limit(Some(8));
        let a = fs.create_new(&p("/db/a")).unwrap();
        assert_eq!(a.write_at(b"abcd", 6).unwrap(), 2);
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"\0\0\0\0\0\0ab");
        let c = fs.create_new(&p("/db/c")).unwrap();
        assert_eq!(c.write_at(b"x", 0).unwrap_err().raw_os_error(), Some(ENOSPC));
    }

    #[test]
    fn short_writes_write_half() {
        let fs = setup();
        fs.short_writes(true);
        let f = fs.create_new(&p("/db/a")).unwrap();
        assert_eq!(f.write_at(b"0123456789", 0).unwrap(), 5);
        assert_eq!(f.write_at(b"x", 5).unwrap(), 1);
        assert_eq!(f.write_at(b"xy", 5).unwrap(), 1);
        f.write_all_at(b"hello, world", 0).unwrap();
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"hello, world");
        fs.short_writes(false);
        assert_eq!(f.write_at(b"0123456789", 0).unwrap(), 10);
    }

    #[test]
    fn fail_next_write_is_one_shot() {
        let fs = setup();
        let f = fs.create_new(&p("/db/a")).unwrap();
        fs.fail_next_write();
        assert_eq!(f.write_at(b"abc", 0).unwrap_err().raw_os_error(), Some(EIO));
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"");
        assert_eq!(fs.bytes_written(), 0);
        assert_eq!(f.write_at(b"abc", 0).unwrap(), 3);
    }

    #[test]
    fn crash_after_bytes_cuts_exactly_at_the_boundary() {
        let fs = setup();
        let a = fs.create_new(&p("/db/a")).unwrap();
        let b = fs.create_new(&p("/db/b")).unwrap();
        fs.crash_after_bytes(10);
        a.write_all_at(b"aaaa", 0).unwrap();
        b.write_all_at(b"bbbb", 0).unwrap();
        assert!(!fs.is_crashed());
        let err = a.write_all_at(b"cccc", 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(fs.is_crashed());
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"aaaacc");
        assert_eq!(fs.bytes_written(), 10);

        // Everything fails until a restart.
        let mut buf = [0u8; 1];
        assert!(a.read_at(&mut buf, 0).is_err());
        assert!(b.len().is_err());
        assert!(b.sync_data().is_err());
        assert!(fs.exists(&p("/db/a")).is_err());
        assert!(fs.create_new(&p("/db/c")).is_err());
        assert!(fs.open(&p("/db/a"), false).is_err());
        assert!(fs.list_dir(&p("/db")).is_err());
        assert!(fs.sync_dir(&p("/db")).is_err());
        assert!(fs.map_readonly(&p("/db/a")).is_err());

        fs.crash();
        assert!(!fs.is_crashed());
        assert!(is_stale(&a.len().unwrap_err()));
        let a = fs.open(&p("/db/a"), true).unwrap();
        assert_eq!(a.len().unwrap(), 6);
        a.write_all_at(b"no more limit", 0).unwrap();
    }

    #[test]
    fn crash_after_bytes_exact_boundary_and_zero() {
        let fs = setup();
        let f = fs.create_new(&p("/db/a")).unwrap();
        fs.crash_after_bytes(4);
        assert_eq!(f.write_at(b"abcd", 0).unwrap(), 4, "ending at the boundary succeeds");
        assert_eq!(f.write_at(b"", 4).unwrap(), 0);
        assert!(f.write_at(b"e", 4).is_err());
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), b"abcd");
        fs.power_loss();
        assert!(!fs.exists(&p("/db/a")).unwrap(), "never synced");

        // With short writes the cut still lands exactly on the boundary.
        let f = fs.create_new(&p("/db/a")).unwrap();
        fs.short_writes(true);
        fs.crash_after_bytes(7);
        assert!(f.write_all_at(&[1u8; 100], 0).is_err());
        assert_eq!(f.len().unwrap_err().kind(), io::ErrorKind::Other);
        assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), [1u8; 7]);
    }

    #[test]
    fn test_helpers_set_and_corrupt_bytes() {
        let fs = FaultStorage::new();
        fs.set_file_bytes(&p("/x/y/seg"), b"abc".to_vec());
        assert!(fs.exists(&p("/x/y")).unwrap());
        fs.flip_bit(&p("/x/y/seg"), 1, 0);
        assert_eq!(fs.file_bytes(&p("/x/y/seg")).unwrap(), b"acc");
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/x/y/seg")).unwrap(), b"acc", "durable too");

        // Flipping past the durable end touches only the current bytes.
        let f = fs.open(&p("/x/y/seg"), true).unwrap();
        f.write_all_at(b"d", 3).unwrap();
        fs.flip_bit(&p("/x/y/seg"), 3, 7);
        assert_eq!(fs.file_bytes(&p("/x/y/seg")).unwrap(), b"acc\xe4");
        fs.set_file_bytes(&p("/x/y/seg"), b"new".to_vec());
        fs.power_loss();
        assert_eq!(fs.file_bytes(&p("/x/y/seg")).unwrap(), b"new");
        assert_eq!(fs.file_bytes(&p("/x/y/none")), None);
    }

    /// Random writes, truncations and syncs against a naive model in which a sync copies the
    /// whole file: checks the incremental sync (`Inode::clean`) never loses or keeps a byte.
    #[test]
    fn incremental_sync_matches_naive_model() {
        let fs = setup();
        let mut rng = 42u64;
        let mut next = |bound: u64| {
            rng = splitmix64(rng);
            rng % bound
        };
        let (mut data, mut durable) = (Vec::new(), Vec::new());
        let mut f = fs.create_new(&p("/db/a")).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        for round in 0..3000 {
            match next(10) {
                0..=4 => {
                    let (off, len) = (next(64) as usize, 1 + next(16) as usize);
                    let bytes: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
                    f.write_all_at(&bytes, off as u64).unwrap();
                    data.resize(data.len().max(off + len), 0);
                    data[off..off + len].copy_from_slice(&bytes);
                }
                5 => {
                    let len = next(80) as usize;
                    f.set_len(len as u64).unwrap();
                    data.resize(len, 0);
                }
                6 | 7 => {
                    f.sync_data().unwrap();
                    durable.clone_from(&data);
                }
                8 => {
                    let off = next(64) as usize;
                    if off < data.len().max(durable.len()) {
                        fs.flip_bit(&p("/db/a"), off as u64, 5);
                        for buf in [&mut data, &mut durable] {
                            if let Some(byte) = buf.get_mut(off) {
                                *byte ^= 1 << 5;
                            }
                        }
                    }
                }
                _ => {
                    fs.power_loss();
                    data.clone_from(&durable);
                    f = fs.open(&p("/db/a"), true).unwrap();
                }
            }
            assert_eq!(fs.file_bytes(&p("/db/a")).unwrap(), data, "round {round}");
        }
    }

    #[test]
    fn lock_exclusive_excludes_until_dropped_or_restart() {
        let fs = setup();
        let guard = fs.lock_exclusive(&p("/db/LOCK")).unwrap();
        assert_eq!(fs.list_dir(&p("/db")).unwrap(), ["LOCK"], "lock file created");
        let err = fs.lock_exclusive(&p("/db/LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(fs.lock_exclusive(&p("/db/OTHER")).is_ok(), "other files are independent");
        drop(guard);
        let guard = fs.lock_exclusive(&p("/db/LOCK")).unwrap();
        assert_eq!(fs.lock_exclusive(&p("/nodir/LOCK")).unwrap_err().kind(), io::ErrorKind::NotFound);

        // A crashed process's locks are released; its late-dropped guard releases nothing new.
        fs.crash();
        let new_guard = fs.lock_exclusive(&p("/db/LOCK")).unwrap();
        drop(guard);
        assert!(fs.lock_exclusive(&p("/db/LOCK")).is_err());
        drop(new_guard);

        // The unsynced lock file vanishes on power loss, like any unsynced creation.
        fs.power_loss();
        assert!(!fs.exists(&p("/db/LOCK")).unwrap());
    }

    #[test]
    fn clones_share_state_and_threads_can_write() {
        let fs = setup();
        let handle: Box<dyn Storage> = Box::new(fs.clone());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let fs = fs.clone();
                std::thread::spawn(move || {
                    let f = fs.create_new(&p(&format!("/db/{t}"))).unwrap();
                    for i in 0..100u64 {
                        f.write_all_at(&[t], i).unwrap();
                    }
                    f.sync_data().unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        handle.sync_dir(&p("/db")).unwrap();
        fs.power_loss();
        assert_eq!(handle.list_dir(&p("/db")).unwrap().len(), 8);
        assert_eq!(fs.file_bytes(&p("/db/3")).unwrap(), [3u8; 100]);
        assert_eq!(fs.bytes_written(), 800);
        assert_eq!(fs.sync_count(), 8);
        assert!(format!("{fs:?}").starts_with("FaultStorage"));
    }
}
