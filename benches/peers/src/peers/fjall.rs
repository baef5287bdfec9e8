//! fjall 3 (an LSM-tree in Rust with a journal): one `WriteBatch` per transaction, committed
//! with `durability(Some(PersistMode::SyncData))` (durable: the journal is fdatasynced under its
//! lock, so concurrent committers take turns) or `durability(None)` (non-durable: the journal
//! stays in its user-space buffer). fjall has no public journal reader, so replay is a scan of
//! the keyspace.

use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::check_key_count;
use crate::Result;
use crate::error::Context;
use crate::store::{Durability, Fixture, Modes, Peer, Purpose, Replayed, Row, Store};

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
        let keys = self.ks.iter().map(|guard| guard.into_inner().map(|(k, _)| k).ctx(NAME, "iterate"));
        check_key_count(NAME, keys, rows)
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

    fn load(&self, dir: &Path, _purpose: Purpose, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let (db, ks) = open(dir)?;
        fixture.for_each_txn(|rows| commit(&db, &ks, rows, Durability::Buffered))?;
        db.persist(PersistMode::SyncData).ctx(NAME, "persist")?;
        let elapsed = start.elapsed();
        drop(ks);
        drop(db);
        Ok(elapsed)
    }

    fn replay_rows(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let (_db, ks) = open(dir)?;
        fixture.timed_replay(NAME, None, |check| {
            for guard in ks.iter() {
                let (k, v) = guard.into_inner().ctx(NAME, "iterate")?;
                check.row_bytes(&k, &v)?;
            }
            Ok(())
        })
    }

    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let (_db, ks) = open(dir)?;
        let value = ks.get(fixture.last_key().to_be_bytes()).ctx(NAME, "get")?;
        let elapsed = start.elapsed();
        fixture.check_last_row(NAME, value.as_deref())?;
        Ok(elapsed)
    }
}
