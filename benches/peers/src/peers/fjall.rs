//! fjall 3 (an LSM-tree in Rust with a journal): one `WriteBatch` per transaction, committed
//! with `durability(Some(PersistMode::SyncData))` (durable: the journal is fdatasynced under its
//! lock, so concurrent committers take turns) or `durability(None)` (non-durable: the journal
//! stays in its user-space buffer). fjall has no public journal reader, so replay is a scan of
//! the keyspace.

use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::Context;
use crate::store::{Durability, Modes, Peer, Purpose, ReplayCheck, Replayed, Row, Store, fixture_rows};
use crate::{PeerError, Result};

const NAME: &str = "fjall";

/// fjall with its journal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fjall;

fn open(dir: &Path) -> Result<(Database, Keyspace)> {
    let db = Database::builder(dir).open().ctx(NAME, "open")?;
    let ks = db.keyspace("t", KeyspaceCreateOptions::default).ctx(NAME, "keyspace")?;
    Ok((db, ks))
}

fn commit(db: &Database, ks: &Keyspace, rows: &[Row<'_>], durability: Durability) -> Result<()> {
    let mode = match durability {
        Durability::Durable => Some(PersistMode::SyncData),
        Durability::Buffered => None,
    };
    let mut batch = db.batch().durability(mode);
    for row in rows {
        batch.insert(ks, row.key.to_be_bytes(), row.value);
    }
    batch.commit().ctx(NAME, "commit")
}

struct FjallStore {
    db: Database,
    ks: Keyspace,
    durability: Durability,
}

impl Store for FjallStore {
    fn commit(&self, rows: &[Row<'_>]) -> Result<()> {
        commit(&self.db, &self.ks, rows, self.durability)
    }

    fn check(&self, rows: u64) -> Result<()> {
        let mut seen = 0u64;
        for guard in self.ks.iter() {
            let (k, _) = guard.into_inner().ctx(NAME, "iterate")?;
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

impl Peer for Fjall {
    fn name(&self) -> &'static str {
        NAME
    }

    fn modes(&self) -> Modes {
        Modes {
            durable: "batch, PersistMode::SyncData",
            buffered: Some("batch, no persist (journal buffered)"),
            durable_caveat: None,
        }
    }

    fn open(&self, dir: &Path, durability: Durability) -> Result<Box<dyn Store>> {
        let (db, ks) = open(dir)?;
        Ok(Box::new(FjallStore { db, ks, durability }))
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
        let (db, ks) = open(dir)?;
        let mut values = Vec::new();
        let mut first = 0u64;
        while first < records {
            let n = txn_rows.min((records - first) as usize);
            commit(&db, &ks, &fixture_rows(first, n, record_bytes, &mut values), Durability::Buffered)?;
            first += n as u64;
        }
        db.persist(PersistMode::SyncData).ctx(NAME, "persist")?;
        let elapsed = start.elapsed();
        drop(ks);
        drop(db);
        Ok(elapsed)
    }

    fn replay_log(&self, _dir: &Path, _records: u64, _record_bytes: usize) -> Result<Option<Replayed>> {
        Ok(None)
    }

    fn replay_rows(&self, dir: &Path, records: u64, record_bytes: usize) -> Result<Option<Replayed>> {
        let (_db, ks) = open(dir)?;
        let mut check = ReplayCheck::new(NAME, record_bytes);
        let start = Instant::now();
        for guard in ks.iter() {
            let (k, v) = guard.into_inner().ctx(NAME, "iterate")?;
            check.row_bytes(&k, &v)?;
        }
        let elapsed = start.elapsed();
        let bytes = check.finish(records)?;
        Ok(Some(Replayed { elapsed, records, bytes, note: None }))
    }

    fn reopen(&self, dir: &Path, records: u64, record_bytes: usize) -> Result<Duration> {
        let start = Instant::now();
        let (_db, ks) = open(dir)?;
        let last = records - 1;
        let value = ks.get(last.to_be_bytes()).ctx(NAME, "get")?;
        let elapsed = start.elapsed();
        let value = value.ok_or_else(|| PeerError::check(NAME, format!("row {last} missing after reopen")))?;
        ReplayCheck::starting_at(NAME, record_bytes, last).row(last, &value)?;
        Ok(elapsed)
    }
}
