//! SQLite (rusqlite, bundled) in WAL mode: `synchronous=FULL` (durable: the WAL is synced at
//! every commit) or `synchronous=NORMAL` (non-durable: synced only at checkpoints). One
//! connection behind a mutex, as SQLite serialises writers anyway (this spares it the busy-wait
//! sleeps of one connection per thread). A transaction is `BEGIN; INSERT …; COMMIT` with a
//! cached prepared statement; the table is `t(k INTEGER PRIMARY KEY, v BLOB)`.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::error::Context;
use crate::store::{Durability, Fixture, Modes, Peer, Purpose, Replayed, Row, Store};
use crate::{PeerError, Result};

const NAME: &str = "sqlite";
const INSERT: &str = "INSERT INTO t (k, v) VALUES (?1, ?2)";

/// SQLite in WAL mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

fn connect(dir: &Path, durability: Durability) -> Result<Connection> {
    std::fs::create_dir_all(dir).ctx(NAME, "create dir")?;
    let conn = Connection::open(dir.join("db.sqlite")).ctx(NAME, "open")?;
    let sync = match durability {
        Durability::Durable => "FULL",
        Durability::Buffered => "NORMAL",
    };
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).ctx(NAME, "journal_mode")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(PeerError::new(format!("{NAME}: journal_mode is {mode}, not wal")));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);"
    ))
    .ctx(NAME, "setup")?;
    Ok(conn)
}

fn insert(conn: &mut Connection, rows: &[Row<'_>]) -> Result<()> {
    let txn = conn.transaction().ctx(NAME, "begin")?;
    {
        let mut stmt = txn.prepare_cached(INSERT).ctx(NAME, "prepare")?;
        for row in rows {
            stmt.execute(params![row.key as i64, row.value]).ctx(NAME, "insert")?;
        }
    }
    txn.commit().ctx(NAME, "commit")
}

struct SqliteStore {
    conn: Mutex<Connection>,
}

impl Store for SqliteStore {
    fn commit(&self, rows: &[Row<'_>]) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        insert(&mut conn, rows)
    }

    fn check(&self, rows: u64) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let (n, bad): (i64, i64) = conn
            .query_row("SELECT count(*), count(*) FILTER (WHERE length(v) < 8) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ctx(NAME, "count")?;
        if n as u64 != rows || bad != 0 {
            return Err(PeerError::check(NAME, format!("holds {n} rows ({bad} malformed), committed {rows}")));
        }
        Ok(())
    }
}

impl Peer for Sqlite {
    fn name(&self) -> &'static str {
        NAME
    }

    fn modes(&self) -> Modes {
        Modes {
            durable: "WAL mode, synchronous=FULL",
            buffered: Some("WAL mode, synchronous=NORMAL"),
            durable_caveat: None,
        }
    }

    fn open(&self, dir: &Path, durability: Durability) -> Result<Box<dyn Store>> {
        Ok(Box::new(SqliteStore { conn: Mutex::new(connect(dir, durability)?) }))
    }

    fn load(&self, dir: &Path, _purpose: Purpose, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let mut conn = connect(dir, Durability::Buffered)?;
        fixture.for_each_txn(|rows| insert(&mut conn, rows))?;
        // One durable commit at the end: NORMAL syncs the WAL at the checkpoint.
        conn.execute_batch("PRAGMA wal_checkpoint(FULL);").ctx(NAME, "checkpoint")?;
        let elapsed = start.elapsed();
        drop(conn);
        Ok(elapsed)
    }

    fn replay_rows(&self, dir: &Path, fixture: Fixture) -> Result<Option<Replayed>> {
        let conn = connect(dir, Durability::Durable)?;
        fixture.timed_replay(NAME, None, |check| {
            let mut stmt = conn.prepare("SELECT k, v FROM t ORDER BY k").ctx(NAME, "prepare")?;
            let mut rows = stmt.query([]).ctx(NAME, "query")?;
            while let Some(row) = rows.next().ctx(NAME, "step")? {
                let k: i64 = row.get(0).ctx(NAME, "k")?;
                let v = row.get_ref(1).ctx(NAME, "v")?.as_blob().ctx(NAME, "v as blob")?;
                check.row(k as u64, v)?;
            }
            Ok(())
        })
    }

    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration> {
        let start = Instant::now();
        let conn = connect(dir, Durability::Durable)?;
        let last = fixture.last_key() as i64;
        let value: Vec<u8> =
            conn.query_row("SELECT v FROM t WHERE k = ?1", [last], |r| r.get(0)).ctx(NAME, "select last")?;
        let elapsed = start.elapsed();
        fixture.check_last_row(NAME, Some(&value))?;
        Ok(elapsed)
    }
}
