//! RocksDB (the `rocksdb` crate 0.19; `scripts/bench_peers.sh` links it to the system's
//! librocksdb, Debian's RocksDB 7.8.3, because building the bundled C++ takes hours on this
//! loaded 2-core machine): one `WriteBatch` per transaction, written
//! with `sync = true` (durable: the WAL is fdatasynced; concurrent writers share syncs in
//! RocksDB's write groups) or `sync = false` (non-durable: the WAL is written to the OS). Default
//! options otherwise. Replay fixtures keep their WAL files (`WAL_ttl_seconds`) so that
//! `get_updates_since` can read the log from its first write.

use std::path::Path;
use std::time::{Duration, Instant};

use rocksdb::{DB, IteratorMode, Options, WriteBatch, WriteBatchIterator, WriteOptions};

use super::check_key_count;
use crate::error::Context;
use crate::store::{Durability, Fixture, Modes, Peer, Purpose, ReplayCheck, Replayed, Row, Store};
use crate::{PeerError, Result};

const NAME: &str = "rocksdb";
/// Key of a one-row batch written first in replay fixtures: the crate's WAL iterator (0.19)
/// steps past the batch it was positioned on before returning anything, so the first batch is
/// never returned; this marker is that batch, and both replays skip it.
const MARKER_KEY: &[u8] = b"~marker~~";

/// RocksDB with its WAL.
#[derive(Debug, Clone, Copy, Default)]
pub struct RocksDb;

fn options(purpose: Purpose) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    if purpose == Purpose::Replay {
        // Keep every WAL file (archived after its memtable is flushed) for the log reader.
        opts.set_wal_ttl_seconds(24 * 3600);
    }
    opts
}

fn write_options(durability: Durability) -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(durability == Durability::Durable);
    wo
}

struct RocksStore {
    db: DB,
    /// `WriteOptions` is not `Sync`, so each commit makes its own (a small C allocation).
    durability: Durability,
}

fn batch(rows: &[Row<'_>]) -> WriteBatch {
    let mut b = WriteBatch::default();
    for row in rows {
        b.put(row.key.to_be_bytes(), row.value);
    }
    b
}

impl Store for RocksStore {
    fn commit(&self, rows: &[Row<'_>]) -> Result<()> {
        self.db.write_opt(batch(rows), &write_options(self.durability)).ctx(NAME, "write")
    }

    fn check(&self, rows: u64) -> Result<()> {
        let keys = self.db.iterator(IteratorMode::Start).map(|kv| kv.map(|(k, _)| k).ctx(NAME, "iterate"));
        check_key_count(NAME, keys, rows)
    }
}

struct Checker<'a> {
    check: &'a mut ReplayCheck,
    error: Option<PeerError>,
}

impl WriteBatchIterator for Checker<'_> {
    fn put(&mut self, key: Box<[u8]>, value: Box<[u8]>) {
        if self.error.is_none()
            && &key[..] != MARKER_KEY
            && let Err(e) = self.check.row_bytes(&key, &value)
        {
            self.error = Some(e);
        }
    }

    fn delete(&mut self, _key: Box<[u8]>) {
        self.error.get_or_insert_with(|| PeerError::check(NAME, "unexpected delete in the WAL"));
    }
}

impl Peer for RocksDb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn modes(&self) -> Modes {
        Modes { durable: "WriteBatch, sync=true", buffered: Some("WriteBatch, sync=false"), durable_caveat: None }
    }

    fn open(&self, dir: &Path, durability: Durability) -> Result<Box<dyn Store>> {
        let db = DB::open(&options(Purpose::Reopen), dir).ctx(NAME, "open")?;
        Ok(Box::new(RocksStore { db, durability }))
    }

    fn load(&self, dir: &Path, purpose: Purpose, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let db = DB::open(&options(purpose), dir).ctx(NAME, "open")?;
        let wo = write_options(Durability::Buffered);
        if purpose == Purpose::Replay {
            let mut marker = WriteBatch::default();
            marker.put(MARKER_KEY, b"");
            db.write_opt(marker, &wo).ctx(NAME, "write")?;
        }
        fixture.for_each_txn(|rows| db.write_opt(batch(rows), &wo).ctx(NAME, "write"))?;
        db.flush_wal(true).ctx(NAME, "flush_wal(sync)")?;
        let elapsed = start.elapsed();
        drop(db);
        Ok(elapsed)
    }

    fn replay_log(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let db = DB::open(&options(Purpose::Replay), dir).ctx(NAME, "open")?;
        let note = "log replay = get_updates_since(0), the WAL iterator (each put handed over as two boxed copies)";
        fixture.timed_replay(NAME, Some(note), |check| {
            for item in db.get_updates_since(0).ctx(NAME, "get_updates_since")? {
                let (_seq, batch) = item.ctx(NAME, "WAL iterator")?;
                let mut checker = Checker { check: &mut *check, error: None };
                batch.iterate(&mut checker);
                if let Some(e) = checker.error {
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    fn replay_rows(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let db = DB::open(&options(Purpose::Replay), dir).ctx(NAME, "open")?;
        fixture.timed_replay(NAME, None, |check| {
            for kv in db.iterator(IteratorMode::Start) {
                let (k, v) = kv.ctx(NAME, "iterate")?;
                if &k[..] != MARKER_KEY {
                    check.row_bytes(&k, &v)?;
                }
            }
            Ok(())
        })
    }

    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let db = DB::open(&options(Purpose::Reopen), dir).ctx(NAME, "open")?;
        let value = db.get(fixture.last_key().to_be_bytes()).ctx(NAME, "get")?;
        let elapsed = start.elapsed();
        fixture.check_last_row(NAME, value.as_deref())?;
        Ok(elapsed)
    }
}
