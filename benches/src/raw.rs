//! The disk's own limits, measured with plain file calls: the same record sizes appended and
//! `fdatasync`ed one by one, and a sequential write of large chunks.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{BenchError, BenchRoot, Sample};

/// `pwrite` one record at the end of a file, `fdatasync`, repeat: the floor under any durable
/// single-writer log on this disk. The file grows like a WAL segment does (no preallocation).
#[derive(Debug)]
pub struct RawSyncLoop {
    _dir: tempfile::TempDir,
    path: PathBuf,
    file: File,
    offset: u64,
    record: Vec<u8>,
}

impl RawSyncLoop {
    /// A new, empty file under `root`; each operation will write `record_bytes` bytes.
    pub fn new(root: &BenchRoot, record_bytes: usize) -> Result<RawSyncLoop, BenchError> {
        let dir = root.tempdir()?;
        let path = dir.path().join("raw.dat");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| BenchError::io("create", &path, e))?;
        // Non-zero, non-repeating bytes, like a record.
        let record = (0..record_bytes).map(|i| (i as u8).wrapping_mul(31).wrapping_add(1)).collect();
        Ok(RawSyncLoop { _dir: dir, path, file, offset: 0, record })
    }

    /// Bytes written per operation.
    pub fn record_bytes(&self) -> usize {
        self.record.len()
    }

    /// One append + fdatasync; returns how long it took.
    pub fn write_one(&mut self) -> Result<Duration, BenchError> {
        let start = Instant::now();
        self.file.write_all_at(&self.record, self.offset).map_err(|e| BenchError::io("write", &self.path, e))?;
        self.file.sync_data().map_err(|e| BenchError::io("fdatasync", &self.path, e))?;
        let took = start.elapsed();
        self.offset += self.record.len() as u64;
        Ok(took)
    }

    /// Checks the file holds exactly what was written.
    pub fn verify(&self) -> Result<(), BenchError> {
        let written = self.file.metadata().map_err(|e| BenchError::io("stat", &self.path, e))?.len();
        if written != self.offset {
            return Err(BenchError::Check(format!("raw file holds {written} bytes, wrote {}", self.offset)));
        }
        Ok(())
    }

    /// Appends and fdatasyncs `ops` records; the sample counts operations and bytes.
    pub fn run(&mut self, ops: u64) -> Result<Sample, BenchError> {
        let start = Instant::now();
        for _ in 0..ops {
            self.write_one()?;
        }
        let elapsed = start.elapsed();
        self.verify()?;
        Ok(Sample { elapsed, ops, bytes: ops * self.record.len() as u64, syncs: ops, ..Sample::default() })
    }
}

/// Writes `chunks` chunks of `chunk_bytes` sequentially into a new file, then (if `synced`)
/// `fdatasync`s once; the sample counts chunks as operations. The file is removed afterwards
/// (outside the timing), which also drops its page-cache pages without writing them back.
pub fn raw_sequential_write(
    root: &BenchRoot,
    chunks: u64,
    chunk_bytes: usize,
    synced: bool,
) -> Result<Sample, BenchError> {
    let dir = root.tempdir()?;
    let path = dir.path().join("seq.dat");
    let file =
        OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| BenchError::io("create", &path, e))?;
    let chunk: Vec<u8> = (0..chunk_bytes).map(|i| (i as u8).wrapping_mul(13).wrapping_add(5)).collect();
    let start = Instant::now();
    let mut offset = 0u64;
    for _ in 0..chunks {
        file.write_all_at(&chunk, offset).map_err(|e| BenchError::io("write", &path, e))?;
        offset += chunk_bytes as u64;
    }
    if synced {
        file.sync_data().map_err(|e| BenchError::io("fdatasync", &path, e))?;
    }
    let elapsed = start.elapsed();
    drop(file);
    drop(dir);
    Ok(Sample { elapsed, ops: chunks, bytes: offset, syncs: u64::from(synced), ..Sample::default() })
}
