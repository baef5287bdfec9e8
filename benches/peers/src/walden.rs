//! Walden itself: commits through `walden-engine` transactions (one WAL batch each: BEGIN, the
//! rows, COMMIT), replay through the WAL's reader and through the engine's decoded log.

use std::path::Path;
use std::time::{Duration, Instant};

use walden_engine::{Config, Database, EngineRecord, SyncMode};
use walden_wal::{Wal, WalConfig};

use crate::error::Context;
use crate::store::{Durability, Fixture, Modes, Peer, Purpose, ReplayCheck, Replayed, Row, Store, fixture_rows};
use crate::{PeerError, Result};

const NAME: &str = "walden";
/// The table every row goes to.
const TABLE: &str = "t";
/// WAL record kind of the raw-log replay fixture.
const LOG_KIND: u8 = 9;

/// Walden: `walden-engine` with `SyncMode::Group` (durable) or `SyncMode::None` (buffered).
#[derive(Debug, Clone, Copy, Default)]
pub struct Walden;

/// An open Walden database.
struct WaldenStore {
    db: Database,
}

/// Environment variable: Walden's `WalConfig::preallocate_bytes` for this run (default: the
/// WAL's default, 4 MiB), e.g. `WALDEN_PEERS_PREALLOCATE_BYTES=0` to measure without it.
pub const PREALLOCATE_ENV: &str = "WALDEN_PEERS_PREALLOCATE_BYTES";

/// Environment variable: `0` turns Walden's group-commit flusher thread off for this run
/// (`WalConfig::group_commit_flusher`, on by default), to measure what it is worth.
pub const FLUSHER_ENV: &str = "WALDEN_PEERS_FLUSHER";

fn config(durability: Durability) -> Config {
    let mut config = Config::with_sync_mode(match durability {
        Durability::Durable => SyncMode::Group,
        Durability::Buffered => SyncMode::None,
    });
    if let Some(bytes) = std::env::var(PREALLOCATE_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        config.wal.preallocate_bytes = bytes;
    }
    if std::env::var(FLUSHER_ENV).is_ok_and(|v| v.trim() == "0") {
        config.wal.group_commit_flusher = false;
    }
    config
}

impl Store for WaldenStore {
    fn commit(&self, rows: &[Row<'_>]) -> Result<()> {
        let mut txn = self.db.begin();
        for row in rows {
            txn.insert(TABLE, &row.key.to_be_bytes(), row.value).ctx(NAME, "insert")?;
        }
        txn.commit().ctx(NAME, "commit")?;
        Ok(())
    }

    fn check(&self, rows: u64) -> Result<()> {
        self.db.flush().ctx(NAME, "flush")?;
        let mut seen = 0u64;
        for entry in self.db.read_log(1).ctx(NAME, "read_log")? {
            if let EngineRecord::Change(change) = entry.ctx(NAME, "read")?.record {
                if change.key.len() != 8 || change.after.is_none() {
                    return Err(PeerError::check(NAME, format!("change {seen} is malformed")));
                }
                seen += 1;
            }
        }
        if seen != rows {
            return Err(PeerError::check(NAME, format!("log holds {seen} rows, committed {rows}")));
        }
        Ok(())
    }

    fn data_syncs(&self) -> Option<u64> {
        Some(self.db.wal().stats().data_syncs)
    }
}

impl Walden {
    /// Bytes one committed transaction of `rows` rows of `record_bytes` adds to the WAL
    /// (BEGIN, the INSERTs and COMMIT, with their 32-byte record headers): what the raw-disk
    /// limits write per operation so that they move the same bytes.
    pub fn commit_bytes(scratch: &Path, rows: usize, record_bytes: usize) -> Result<u64> {
        let dir = scratch.join("walden-commit-bytes");
        let db = Database::open(&dir, config(Durability::Buffered)).ctx(NAME, "open")?;
        let store = WaldenStore { db };
        let mut values = Vec::new();
        let mut written = Vec::new();
        for txn in 0..3u64 {
            store.commit(&fixture_rows(txn * rows as u64, rows, record_bytes, &mut values))?;
            store.db.flush().ctx(NAME, "flush")?;
            written.push(store.db.wal().stats().bytes_written);
        }
        let per_txn = written[2] - written[1];
        if per_txn != written[1] - written[0] || per_txn == 0 {
            return Err(PeerError::check(NAME, format!("commit sizes differ: {written:?}")));
        }
        store.db.close().ctx(NAME, "close")?;
        std::fs::remove_dir_all(&dir).ctx(NAME, "remove scratch dir")?;
        Ok(per_txn)
    }
}

impl Peer for Walden {
    fn name(&self) -> &'static str {
        NAME
    }

    fn modes(&self) -> Modes {
        Modes {
            durable: "engine txn, SyncMode::Group",
            buffered: Some("engine txn, SyncMode::None"),
            durable_caveat: None,
        }
    }

    fn open(&self, dir: &Path, durability: Durability) -> Result<Box<dyn Store>> {
        let db = Database::open(dir, config(durability)).ctx(NAME, "open")?;
        Ok(Box::new(WaldenStore { db }))
    }

    fn load(&self, dir: &Path, purpose: Purpose, fixture: Fixture) -> Result<Duration> {
        if purpose == Purpose::Replay {
            // The raw log: one WAL record per row, `key ‖ value`, read back by `replay_log`.
            let wal = Wal::open(dir.join("log"), WalConfig { sync_mode: SyncMode::None, ..WalConfig::default() })
                .ctx(NAME, "open wal")?;
            let mut payloads: Vec<Vec<u8>> = Vec::new();
            fixture.for_each_txn(|rows| {
                payloads.resize_with(rows.len(), || Vec::with_capacity(fixture.record_bytes));
                for (p, row) in payloads.iter_mut().zip(rows) {
                    row.record_into(p);
                }
                wal.append_batch(payloads.iter().map(|p| (LOG_KIND, &p[..]))).ctx(NAME, "append_batch")?;
                Ok(())
            })?;
            wal.close().ctx(NAME, "close wal")?;
        }
        let start = Instant::now();
        let db = Database::open(dir.join("db"), config(Durability::Buffered)).ctx(NAME, "open")?;
        let store = WaldenStore { db };
        fixture.for_each_txn(|rows| store.commit(rows))?;
        store.db.sync().ctx(NAME, "sync")?;
        let elapsed = start.elapsed();
        store.db.close().ctx(NAME, "close")?;
        Ok(elapsed)
    }

    fn replay_log(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let wal = Wal::open(dir.join("log"), WalConfig::default()).ctx(NAME, "open wal")?;
        let replayed = fixture.timed_replay(NAME, None, |check| {
            for record in wal.reader(1).ctx(NAME, "reader")? {
                let record = record.ctx(NAME, "read")?;
                if record.kind != LOG_KIND {
                    return Err(PeerError::check(NAME, format!("record {} has kind {}", record.lsn, record.kind)));
                }
                check.record(&record.payload)?;
            }
            Ok(())
        })?;
        wal.close().ctx(NAME, "close wal")?;
        Ok(replayed)
    }

    fn replay_rows(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let db = Database::open(dir.join("db"), Config::default()).ctx(NAME, "open")?;
        let replayed = fixture.timed_replay(NAME, None, |check| {
            for entry in db.read_log(1).ctx(NAME, "read_log")? {
                if let EngineRecord::Change(change) = entry.ctx(NAME, "read")?.record {
                    let after = change.after.as_deref().unwrap_or_default();
                    check.row_bytes(&change.key, after)?;
                }
            }
            Ok(())
        })?;
        db.close().ctx(NAME, "close")?;
        Ok(replayed)
    }

    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let db = Database::open(dir.join("db"), Config::default()).ctx(NAME, "open")?;
        // The last transaction's last row sits just before its COMMIT, the newest record.
        let last_row_lsn = db.wal().next_lsn().saturating_sub(2);
        let entry = db.read_log(last_row_lsn).ctx(NAME, "read_log")?.next();
        let elapsed = start.elapsed();
        let Some(Ok(entry)) = entry else {
            return Err(PeerError::check(NAME, format!("no record at LSN {last_row_lsn} after reopen")));
        };
        let EngineRecord::Change(change) = entry.record else {
            return Err(PeerError::check(NAME, format!("LSN {last_row_lsn} is not a row")));
        };
        let mut check = ReplayCheck::starting_at(NAME, fixture.record_bytes, fixture.last_key());
        check.row_bytes(&change.key, change.after.as_deref().unwrap_or_default())?;
        check.finish(fixture.records)?;
        db.close().ctx(NAME, "close")?;
        Ok(elapsed)
    }
}
