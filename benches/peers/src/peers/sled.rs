//! sled 0.34 (the last stable release): one `Batch` per transaction applied atomically, then
//! `flush()` (durable: sled writes its log buffers and fsyncs) or nothing (non-durable: sled's
//! background flusher writes every 500 ms). sled has no public log reader, so replay is a scan
//! of the tree.

use std::path::Path;
use std::time::{Duration, Instant};

use sled::{Batch, Db};

use crate::error::Context;
use crate::store::{Durability, Modes, Peer, Purpose, ReplayCheck, Replayed, Row, Store, fixture_rows};
use crate::{PeerError, Result};

const NAME: &str = "sled";

/// sled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sled;

fn open(dir: &Path) -> Result<Db> {
    sled::Config::new().path(dir).open().ctx(NAME, "open")
}

fn apply(db: &Db, rows: &[Row<'_>]) -> Result<()> {
    let mut batch = Batch::default();
    for row in rows {
        batch.insert(&row.key.to_be_bytes()[..], row.value);
    }
    db.apply_batch(batch).ctx(NAME, "apply_batch")
}

struct SledStore {
    db: Db,
    durability: Durability,
}

impl Store for SledStore {
    fn commit(&self, rows: &[Row<'_>]) -> Result<()> {
        apply(&self.db, rows)?;
        if self.durability == Durability::Durable {
            self.db.flush().ctx(NAME, "flush")?;
        }
        Ok(())
    }

    fn check(&self, rows: u64) -> Result<()> {
        let mut seen = 0u64;
        for kv in self.db.iter() {
            let (k, _) = kv.ctx(NAME, "iterate")?;
            if k.len() != 8 {
                return Err(PeerError::check(NAME, format!("key of {} bytes", k.len())));
            }
            seen += 1;
        }
        if seen != rows {
            return Err(PeerError::check(NAME, format!("holds {seen} rows, committed {rows}")));
        }
        Ok(())
    }
}

impl Peer for Sled {
    fn name(&self) -> &'static str {
        NAME
    }

    fn modes(&self) -> Modes {
        Modes {
            durable: "apply_batch + flush()",
            buffered: Some("apply_batch (background flush every 500 ms)"),
            durable_caveat: Some(
                "sled's flush() ends in sync_file_range(2), which neither flushes the disk's volatile write \
                 cache nor the file's metadata: not durable on power loss on this disk (write cache: write back)",
            ),
        }
    }

    fn open(&self, dir: &Path, durability: Durability) -> Result<Box<dyn Store>> {
        Ok(Box::new(SledStore { db: open(dir)?, durability }))
    }

    fn load(
        &self,
        dir: &Path,
        _purpose: Purpose,
        records: u64,
        record_bytes: usize,
        txn_rows: usize,
    ) -> Result<Duration> {
        let start = Instant::now();
        let db = open(dir)?;
        let mut values = Vec::new();
        let mut first = 0u64;
        while first < records {
            let n = txn_rows.min((records - first) as usize);
            apply(&db, &fixture_rows(first, n, record_bytes, &mut values))?;
            first += n as u64;
        }
        db.flush().ctx(NAME, "flush")?;
        let elapsed = start.elapsed();
        drop(db);
        Ok(elapsed)
    }

    fn replay_log(&self, _dir: &Path, _records: u64, _record_bytes: usize) -> Result<Option<Replayed>> {
        Ok(None)
    }

    fn replay_rows(&self, dir: &Path, records: u64, record_bytes: usize) -> Result<Option<Replayed>> {
        let db = open(dir)?;
        let mut check = ReplayCheck::new(NAME, record_bytes);
        let start = Instant::now();
        for kv in db.iter() {
            let (k, v) = kv.ctx(NAME, "iterate")?;
            check.row_bytes(&k, &v)?;
        }
        let elapsed = start.elapsed();
        let bytes = check.finish(records)?;
        Ok(Some(Replayed { elapsed, records, bytes, note: None }))
    }

    fn reopen(&self, dir: &Path, records: u64, record_bytes: usize) -> Result<Duration> {
        let start = Instant::now();
        let db = open(dir)?;
        let last = records - 1;
        let value = db.get(last.to_be_bytes()).ctx(NAME, "get")?;
        let elapsed = start.elapsed();
        let value = value.ok_or_else(|| PeerError::check(NAME, format!("row {last} missing after reopen")))?;
        ReplayCheck::starting_at(NAME, record_bytes, last).row(last, &value)?;
        Ok(elapsed)
    }
}
