//! okaywal 0.3: a write-ahead log with group commit and checkpointing. A transaction is one
//! entry with one chunk per row (`key ‖ value`); every commit is durable (okaywal has no
//! non-durable mode). Its log manager checkpoints into nothing (the rows are "applied" by the
//! benchmark's bookkeeping), which is okaywal's everyday configuration: segments of 1 MiB
//! preallocated and recycled after their checkpoint.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use okaywal::{Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader, WriteAheadLog};
use std::sync::{Mutex, RwLock};

use crate::error::Context;
use crate::store::{Durability, Fixture, Modes, Peer, Purpose, ReplayCheck, Replayed, Row, Store};
use crate::{PeerError, Result};

const NAME: &str = "okaywal";

/// okaywal (every commit durable).
#[derive(Debug, Clone, Copy, Default)]
pub struct OkayWal;

/// What the log manager saw: checkpoints, and the entries handed back by recovery.
#[derive(Debug, Default)]
struct Tally {
    /// Highest entry id checkpointed so far.
    checkpointed_through: AtomicU64,
    recovered: Mutex<Recovered>,
}

#[derive(Debug, Default)]
struct Recovered {
    /// Entries recovered (complete ones).
    entries: u64,
    /// Their ids, first and last.
    first_id: Option<u64>,
    last_id: u64,
    /// Rows checked, when recovery checks rows in order (replay).
    check: Option<ReplayCheck>,
    /// Rows seen, otherwise.
    rows: u64,
    /// Key of the last row seen.
    last_key: Option<u64>,
    /// The first failed check.
    error: Option<String>,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Manager(Arc<Tally>);

impl LogManager for Manager {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        let mut rec = self.0.recovered.lock().unwrap_or_else(|e| e.into_inner());
        let rec = &mut *rec;
        let mut rows = 0u64;
        let id = entry.id().0;
        loop {
            let mut chunk = match entry.read_chunk()? {
                ReadChunkResult::Chunk(chunk) => chunk,
                ReadChunkResult::EndOfEntry => break,
                ReadChunkResult::AbortedEntry => return Ok(()),
            };
            let len = chunk.bytes_remaining() as usize;
            rec.buf.resize(len, 0);
            chunk.read_exact(&mut rec.buf)?;
            if !chunk.check_crc()? {
                rec.error.get_or_insert_with(|| format!("entry {id}: chunk CRC mismatch"));
                continue;
            }
            if len >= 8 {
                rec.last_key = Some(u64::from_be_bytes(rec.buf[..8].try_into().unwrap_or_default()));
            }
            if let Some(check) = rec.check.as_mut()
                && let Err(e) = check.record(&rec.buf)
            {
                rec.error.get_or_insert(e.to_string());
            }
            rows += 1;
        }
        rec.entries += 1;
        rec.rows += rows;
        rec.first_id.get_or_insert(id);
        rec.last_id = id;
        Ok(())
    }

    fn checkpoint_to(&mut self, last: EntryId, _entries: &mut SegmentReader, _wal: &WriteAheadLog) -> io::Result<()> {
        self.0.checkpointed_through.fetch_max(last.0, Ordering::Relaxed);
        Ok(())
    }
}

/// Replay fixtures keep every entry: no checkpoint before 4 GiB (the one segment grows past its
/// 1 MiB preallocation; its load time is not reported).
fn config(dir: &Path, purpose: Purpose) -> Configuration {
    let cfg = Configuration::default_for(dir);
    match purpose {
        Purpose::Reopen => cfg,
        Purpose::Replay => cfg.checkpoint_after_bytes(4 << 30),
    }
}

/// Commits one entry holding `rows`, a chunk per row (`key ‖ value`, built in `record`), and
/// returns its id once okaywal has synced it.
fn write_entry(wal: &WriteAheadLog, rows: &[Row<'_>], record: &mut Vec<u8>) -> Result<EntryId> {
    let mut entry = wal.begin_entry().ctx(NAME, "begin_entry")?;
    for row in rows {
        row.record_into(record);
        entry.write_chunk(record).ctx(NAME, "write_chunk")?;
    }
    entry.commit().ctx(NAME, "commit")
}

struct OkayWalStore {
    dir: std::path::PathBuf,
    /// Taken out by `check` (okaywal's shutdown waits for every other handle to drop).
    wal: RwLock<Option<WriteAheadLog>>,
    tally: Arc<Tally>,
    /// Acknowledged entries: count and highest id.
    committed: AtomicU64,
    max_id: AtomicU64,
}

impl Store for OkayWalStore {
    fn commit(&self, rows: &[Row<'_>]) -> Result<()> {
        let guard = self.wal.read().unwrap_or_else(|e| e.into_inner());
        let wal = guard.as_ref().ok_or_else(|| PeerError::new("okaywal: commit after check"))?;
        let mut record = Vec::with_capacity(8 + rows.first().map_or(0, |r| r.value.len()));
        let id = write_entry(wal, rows, &mut record)?;
        self.committed.fetch_add(1, Ordering::Relaxed);
        self.max_id.fetch_max(id.0, Ordering::Relaxed);
        Ok(())
    }

    fn check(&self, rows: u64) -> Result<()> {
        // Close, recover: the entries not yet checkpointed come back; with those checkpointed
        // they must be exactly the acknowledged ones, each with all its rows.
        let committed = self.committed.load(Ordering::Relaxed);
        let max_id = self.max_id.load(Ordering::Relaxed);
        let wal = self.wal.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(wal) = wal {
            wal.shutdown().ctx(NAME, "shutdown")?;
        }
        let checkpointed = self.tally.checkpointed_through.load(Ordering::Relaxed);
        let tally = Arc::new(Tally::default());
        let wal = WriteAheadLog::recover(&self.dir, Manager(tally.clone())).ctx(NAME, "recover")?;
        let rec = tally.recovered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &rec.error {
            return Err(PeerError::check(NAME, e));
        }
        let rows_per_entry = rows.checked_div(committed).unwrap_or(0);
        let first_id = rec.first_id.unwrap_or(checkpointed + 1);
        let ids_ok = if rec.entries == 0 {
            checkpointed == max_id
        } else {
            first_id == checkpointed + 1 && rec.last_id == max_id && rec.entries == rec.last_id - first_id + 1
        };
        let rows_ok = rec.rows == rec.entries * rows_per_entry && rows_per_entry * committed == rows;
        if committed != max_id || !ids_ok || !rows_ok {
            return Err(PeerError::check(
                NAME,
                format!(
                    "acknowledged {committed} entries (ids up to {max_id}, {rows} rows); checkpointed through \
                     {checkpointed}, recovered {} entries {first_id}..={} with {} rows",
                    rec.entries, rec.last_id, rec.rows
                ),
            ));
        }
        drop(rec);
        wal.shutdown().ctx(NAME, "shutdown")?;
        Ok(())
    }
}

impl Peer for OkayWal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn modes(&self) -> Modes {
        Modes { durable: "commit (fsync, group commit), default config", buffered: None, durable_caveat: None }
    }

    fn open(&self, dir: &Path, _durability: Durability) -> Result<Box<dyn Store>> {
        let tally = Arc::new(Tally::default());
        let wal = config(dir, Purpose::Reopen).open(Manager(tally.clone())).ctx(NAME, "open")?;
        Ok(Box::new(OkayWalStore {
            dir: dir.to_path_buf(),
            wal: RwLock::new(Some(wal)),
            tally,
            committed: AtomicU64::new(0),
            max_id: AtomicU64::new(0),
        }))
    }

    fn load(&self, dir: &Path, purpose: Purpose, fixture: Fixture) -> Result<Duration> {
        let tally = Arc::new(Tally::default());
        let start = Instant::now();
        let wal = config(dir, purpose).open(Manager(tally)).ctx(NAME, "open")?;
        let mut record = Vec::with_capacity(fixture.record_bytes);
        // okaywal has no non-durable commit: every entry is fsynced.
        fixture.for_each_txn(|rows| write_entry(&wal, rows, &mut record).map(drop))?;
        let elapsed = start.elapsed();
        wal.shutdown().ctx(NAME, "shutdown")?;
        Ok(elapsed)
    }

    fn replay_log(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let tally = Arc::new(Tally::default());
        tally.recovered.lock().unwrap_or_else(|e| e.into_inner()).check =
            Some(ReplayCheck::new(NAME, fixture.record_bytes));
        let start = Instant::now();
        let wal = config(dir, Purpose::Replay).open(Manager(tally.clone())).ctx(NAME, "recover")?;
        let elapsed = start.elapsed();
        let rec = tally.recovered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &rec.error {
            return Err(PeerError::check(NAME, e));
        }
        let bytes = rec.check.as_ref().map(|c| c.finish(fixture.records)).transpose()?.unwrap_or(0);
        drop(rec);
        wal.shutdown().ctx(NAME, "shutdown")?;
        Ok(Some(Replayed {
            elapsed,
            records: fixture.records,
            bytes,
            note: Some("replay = recovery at open (LogManager::recover), timed whole"),
        }))
    }

    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration> {
        let tally = Arc::new(Tally::default());
        let start = Instant::now();
        let wal = config(dir, Purpose::Reopen).open(Manager(tally.clone())).ctx(NAME, "recover")?;
        let elapsed = start.elapsed();
        let rec = tally.recovered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &rec.error {
            return Err(PeerError::check(NAME, e));
        }
        // The entries not checkpointed before closing come back; the newest holds the last row.
        if rec.last_key != Some(fixture.last_key()) {
            let records = fixture.records;
            return Err(PeerError::check(NAME, format!("last recovered row {:?}, wrote {records}", rec.last_key)));
        }
        drop(rec);
        wal.shutdown().ctx(NAME, "shutdown")?;
        Ok(elapsed)
    }
}
