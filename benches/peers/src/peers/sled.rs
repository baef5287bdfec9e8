//! sled 0.34 (the last stable release): one `Batch` per transaction applied atomically, then
//! `flush()` (durable: sled writes its log buffers and fsyncs) or nothing (non-durable: sled's
//! background flusher writes every 500 ms). sled has no public log reader, so replay is a scan
//! of the tree.

use std::path::Path;
use std::time::{Duration, Instant};

use sled::{Batch, Db};

use super::check_key_count;
use crate::Result;
use crate::error::Context;
use crate::store::{Durability, Fixture, Modes, Peer, Purpose, Replayed, Row, Store};

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
        let keys = self.db.iter().map(|kv| kv.map(|(k, _)| k).ctx(NAME, "iterate"));
        check_key_count(NAME, keys, rows)
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

    fn load(&self, dir: &Path, _purpose: Purpose, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let db = open(dir)?;
        fixture.for_each_txn(|rows| apply(&db, rows))?;
        db.flush().ctx(NAME, "flush")?;
        let elapsed = start.elapsed();
        drop(db);
        Ok(elapsed)
    }

    fn replay_rows(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let db = open(dir)?;
        fixture.timed_replay(NAME, None, |check| {
            for kv in db.iter() {
                let (k, v) = kv.ctx(NAME, "iterate")?;
                check.row_bytes(&k, &v)?;
            }
            Ok(())
        })
    }

    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let db = open(dir)?;
        let value = db.get(fixture.last_key().to_be_bytes()).ctx(NAME, "get")?;
        let elapsed = start.elapsed();
        fixture.check_last_row(NAME, value.as_deref())?;
        Ok(elapsed)
    }
}
