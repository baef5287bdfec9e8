//! In-memory handle of one segment file, shared by the writer and readers.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::format::{Footer, IndexEntry};
use crate::storage::{Storage, StorageFile};
use crate::{Lsn, WalError};

/// Public description of a segment, as returned by [`crate::Wal::segments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Path of the segment file.
    pub path: PathBuf,
    /// First LSN the segment holds.
    pub first_lsn: Lsn,
    /// Last LSN the segment holds (for the active segment: the last one written so far, or
    /// `first_lsn - 1` when it is still empty).
    pub last_lsn: Lsn,
    /// Whether the segment is sealed (immutable, fsynced, with a footer).
    pub sealed: bool,
    /// Bytes of the file including header and footer (for the active one: the data written so
    /// far, without preallocated zeros after it).
    pub size_bytes: u64,
}

/// One segment: sealed (with a trusted footer) or the active one being appended to.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) first_lsn: Lsn,
    pub(crate) path: PathBuf,
    /// Set once, when the segment is sealed (or found sealed at open).
    pub(crate) footer: OnceLock<Footer>,
    /// Sparse index of the active segment (sealed segments use the footer's).
    pub(crate) active_index: RwLock<Vec<IndexEntry>>,
    /// Offset up to which readers may read the active segment.
    pub(crate) visible_end_offset: AtomicU64,
    /// Last LSN written into the active segment (`first_lsn - 1` when empty).
    pub(crate) active_last_lsn: AtomicU64,
    /// Lazily created read-only map of a sealed segment.
    map: OnceLock<Bytes>,
    /// Lazily opened read-only handle for reading the active segment.
    read_file: OnceLock<Box<dyn StorageFile>>,
}

impl Segment {
    pub(crate) fn new_active(
        first_lsn: Lsn,
        path: PathBuf,
        index: Vec<IndexEntry>,
        end_offset: u64,
        last_lsn: Lsn,
    ) -> Segment {
        Segment {
            first_lsn,
            path,
            footer: OnceLock::new(),
            active_index: RwLock::new(index),
            visible_end_offset: AtomicU64::new(end_offset),
            active_last_lsn: AtomicU64::new(last_lsn),
            map: OnceLock::new(),
            read_file: OnceLock::new(),
        }
    }

    pub(crate) fn new_sealed(path: PathBuf, footer: Footer) -> Segment {
        let seg = Segment::new_active(footer.first_lsn, path, Vec::new(), footer.data_end_offset, footer.last_lsn);
        let _ = seg.footer.set(footer);
        seg
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.footer.get().is_some()
    }

    /// Last LSN stored (sealed) or written so far (active).
    pub(crate) fn last_lsn(&self) -> Lsn {
        match self.footer.get() {
            Some(f) => f.last_lsn,
            None => self.active_last_lsn.load(Ordering::Acquire),
        }
    }

    /// Offset where record data ends (sealed) or where readers must stop (active).
    pub(crate) fn data_end_offset(&self) -> u64 {
        match self.footer.get() {
            Some(f) => f.data_end_offset,
            None => self.visible_end_offset.load(Ordering::Acquire),
        }
    }

    /// Best index entry at or before `lsn`.
    pub(crate) fn index_lookup(&self, lsn: Lsn) -> Option<IndexEntry> {
        fn lookup(index: &[IndexEntry], lsn: Lsn) -> Option<IndexEntry> {
            let at = index.partition_point(|e| e.lsn <= lsn);
            if at == 0 { None } else { Some(index[at - 1]) }
        }
        match self.footer.get() {
            Some(f) => lookup(&f.index, lsn),
            None => lookup(&self.active_index.read(), lsn),
        }
    }

    pub(crate) fn mapped(&self, storage: &dyn Storage) -> Result<&Bytes, WalError> {
        debug_assert!(self.is_sealed(), "only sealed segments are mapped");
        if let Some(map) = self.map.get() {
            return Ok(map);
        }
        let map = storage.map_readonly(&self.path).map_err(|e| WalError::io("mmap", &self.path, e))?;
        Ok(self.map.get_or_init(|| map))
    }

    pub(crate) fn read_file(&self, storage: &dyn Storage) -> Result<&dyn StorageFile, WalError> {
        if let Some(f) = self.read_file.get() {
            return Ok(f.as_ref());
        }
        let file = storage.open(&self.path, false).map_err(|e| WalError::io("open", &self.path, e))?;
        Ok(self.read_file.get_or_init(|| file).as_ref())
    }

    pub(crate) fn info(&self) -> SegmentInfo {
        let size_bytes = match self.footer.get() {
            Some(f) => f.data_end_offset + f.encoded_len() as u64,
            None => self.visible_end_offset.load(Ordering::Acquire),
        };
        SegmentInfo {
            path: self.path.clone(),
            first_lsn: self.first_lsn,
            last_lsn: self.last_lsn(),
            sealed: self.is_sealed(),
            size_bytes,
        }
    }
}
