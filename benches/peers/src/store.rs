//! What every contender implements: a store to commit rows into, and the fixtures for replay
//! and reopen.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{PeerError, Result};

/// Durability asked of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Durability {
    /// The commit is on disk (`fdatasync`ed) when it returns.
    Durable,
    /// The commit may be lost in a crash; each store's non-durable mode (see [`Peer::modes`]).
    Buffered,
}

/// One row of a transaction: an 8-byte key (stored big-endian where the store takes bytes,
/// so that keys sort in commit order) and its value.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The key.
    pub key: u64,
    /// The value: `record_bytes - 8` bytes whose first 8 are the key, little-endian.
    pub value: &'a [u8],
}

impl Row<'_> {
    /// Writes the row as one record, `key (8, big-endian) ‖ value`, into `out` (cleared first):
    /// what the log-shaped stores keep per row ([`ReplayCheck::record`] reads it back).
    pub fn record_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.key.to_be_bytes());
        out.extend_from_slice(self.value);
    }
}

/// Writes the key into the first 8 bytes of a value (so read-back checks see mixed-up rows).
pub fn stamp_value(value: &mut [u8], key: u64) {
    value[..8].copy_from_slice(&key.to_le_bytes());
}

/// A value of `value_bytes` (at least 8) for `key`: the key, then a fixed non-zero pattern.
pub fn make_value(value_bytes: usize, key: u64) -> Vec<u8> {
    let mut v: Vec<u8> = (0..value_bytes.max(8)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect();
    stamp_value(&mut v, key);
    v
}

/// An open store in one durability mode, shared by the committer threads.
pub trait Store: Send + Sync {
    /// Commits one atomic transaction holding `rows`; returns once it is acknowledged in the
    /// store's mode (durable: on disk).
    fn commit(&self, rows: &[Row<'_>]) -> Result<()>;

    /// Checks that the store holds exactly `rows` rows (every acknowledged commit's rows, after
    /// making buffered ones visible), reading them back.
    fn check(&self, rows: u64) -> Result<()>;

    /// `fdatasync` calls on data so far, where the store counts them (Walden does).
    fn data_syncs(&self) -> Option<u64> {
        None
    }
}

/// What a store is called in each durability mode, for the table's legend.
#[derive(Debug, Clone, Copy)]
pub struct Modes {
    /// The durable configuration (e.g. `sync=true`).
    pub durable: &'static str,
    /// The non-durable one, if the store has one.
    pub buffered: Option<&'static str>,
    /// Why the durable mode is not as durable as the others (`None`: it is). Such a store's
    /// durable figures are shown but not counted as the best peer.
    pub durable_caveat: Option<&'static str>,
}

/// What a fixture is loaded for: the stores keep a log for replay differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Replay from the start: everything written must stay in the log (no checkpoint/recycling).
    Replay,
    /// Reopen after writing: the store's everyday configuration.
    Reopen,
}

/// A timed read of everything from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Time spent reading (opening excluded where the store's API separates the two).
    pub elapsed: Duration,
    /// Records (rows) returned and checked.
    pub records: u64,
    /// Bytes of keys and values returned.
    pub bytes: u64,
    /// What the time includes, when it differs from "a read from the start" (shown in the notes).
    pub note: Option<&'static str>,
}

/// A contender: Walden or one of its peers.
pub trait Peer: Sync {
    /// Short name, the table's column header.
    fn name(&self) -> &'static str;

    /// The configurations used for each durability mode.
    fn modes(&self) -> Modes;

    /// Creates a store in the empty directory `dir`.
    fn open(&self, dir: &Path, durability: Durability) -> Result<Box<dyn Store>>;

    /// Writes the rows of `fixture` into the empty directory `dir`, one transaction per
    /// `fixture.txn_rows`, non-durably, then syncs once and closes. Returns the time it took
    /// (write and final sync).
    fn load(&self, dir: &Path, purpose: Purpose, fixture: Fixture) -> Result<Duration>;

    /// Reads the log of a [`Purpose::Replay`] fixture from its first record, checking every row;
    /// `None` (the default) if the store has no log reader, only its tables.
    fn replay_log(&self, _dir: &Path, _fixture: Fixture) -> Result<Option<Replayed>> {
        Ok(None)
    }

    /// Reads every row of a [`Purpose::Replay`] fixture back in key (= commit) order through the
    /// store's ordinary read path, checking each; `None` (the default) if it has no such path.
    fn replay_rows(&self, _dir: &Path, _fixture: Fixture) -> Result<Option<Replayed>> {
        Ok(None)
    }

    /// Opens a [`Purpose::Reopen`] fixture and reads its last row; returns the time of both.
    fn reopen(&self, dir: &Path, fixture: Fixture) -> Result<Duration>;
}

/// The rows of a replay or reopen fixture: keys `0..records` in commit order, each
/// `record_bytes` long (8-byte key + a value stamped with it), `txn_rows` per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixture {
    /// Rows in the fixture.
    pub records: u64,
    /// Bytes per row: 8-byte key plus value.
    pub record_bytes: usize,
    /// Rows per transaction when it is loaded.
    pub txn_rows: usize,
}

impl Fixture {
    /// Calls `commit` with the rows of each transaction in turn, in key order (the values are
    /// built once and restamped).
    pub fn for_each_txn(&self, mut commit: impl FnMut(&[Row<'_>]) -> Result<()>) -> Result<()> {
        let mut values = Vec::new();
        let mut first = 0u64;
        while first < self.records {
            let n = self.txn_rows.min((self.records - first) as usize);
            commit(&fixture_rows(first, n, self.record_bytes, &mut values))?;
            first += n as u64;
        }
        Ok(())
    }

    /// Times `read`, which hands every row it reads to the check, then checks that the rows
    /// were exactly the fixture's, in order. `note`: what the time includes, if it is not just
    /// the read.
    pub fn timed_replay(
        &self,
        store: &'static str,
        note: Option<&'static str>,
        read: impl FnOnce(&mut ReplayCheck) -> Result<()>,
    ) -> Result<Option<Replayed>> {
        let mut check = ReplayCheck::new(store, self.record_bytes);
        let start = Instant::now();
        read(&mut check)?;
        let elapsed = start.elapsed();
        let bytes = check.finish(self.records)?;
        Ok(Some(Replayed { elapsed, records: self.records, bytes, note }))
    }

    /// The key of the last row.
    pub fn last_key(&self) -> u64 {
        self.records - 1
    }

    /// Checks the value a reopened store returned for the last row (`None`: not found).
    pub fn check_last_row(&self, store: &'static str, value: Option<&[u8]>) -> Result<()> {
        let last = self.last_key();
        let value = value.ok_or_else(|| PeerError::check(store, format!("row {last} missing after reopen")))?;
        ReplayCheck::starting_at(store, self.record_bytes, last).row(last, value)
    }
}

/// Checks rows read back from the start: keys `0, 1, 2, …` in order, values of the right
/// length stamped with their key.
#[derive(Debug)]
pub struct ReplayCheck {
    store: &'static str,
    value_bytes: usize,
    next_key: u64,
    bytes: u64,
}

impl ReplayCheck {
    /// A check of rows of `record_bytes` (8-byte key + value).
    pub fn new(store: &'static str, record_bytes: usize) -> ReplayCheck {
        ReplayCheck::starting_at(store, record_bytes, 0)
    }

    /// A check whose first row must have key `first_key`.
    pub fn starting_at(store: &'static str, record_bytes: usize, first_key: u64) -> ReplayCheck {
        ReplayCheck { store, value_bytes: record_bytes - 8, next_key: first_key, bytes: 0 }
    }

    /// Checks the next row.
    #[inline]
    pub fn row(&mut self, key: u64, value: &[u8]) -> Result<()> {
        if key != self.next_key {
            return Err(PeerError::check(self.store, format!("row {} has key {key}", self.next_key)));
        }
        if value.len() != self.value_bytes || value[..8] != key.to_le_bytes() {
            return Err(PeerError::check(self.store, format!("row {key}: wrong value ({} bytes)", value.len())));
        }
        self.next_key += 1;
        self.bytes += 8 + value.len() as u64;
        Ok(())
    }

    /// Checks a row given as a big-endian key and a value.
    #[inline]
    pub fn row_bytes(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let key: [u8; 8] = key
            .try_into()
            .map_err(|_| PeerError::check(self.store, format!("row {}: key of {} bytes", self.next_key, key.len())))?;
        self.row(u64::from_be_bytes(key), value)
    }

    /// Checks a record holding `key (8, big-endian) ‖ value`.
    #[inline]
    pub fn record(&mut self, record: &[u8]) -> Result<()> {
        if record.len() < 8 {
            return Err(PeerError::check(self.store, format!("record {} of {} bytes", self.next_key, record.len())));
        }
        self.row_bytes(&record[..8], &record[8..])
    }

    /// Rows checked so far.
    pub fn rows(&self) -> u64 {
        self.next_key
    }

    /// Checks that the rows seen end just before key `records` (for a check from key 0:
    /// exactly `records` rows); returns the bytes seen.
    pub fn finish(&self, records: u64) -> Result<u64> {
        if self.next_key != records {
            return Err(PeerError::check(self.store, format!("read {} rows back, wrote {records}", self.next_key)));
        }
        Ok(self.bytes)
    }
}

/// Rows `first .. first + count` of a fixture, with a reusable value buffer.
pub(crate) fn fixture_rows(first: u64, count: usize, record_bytes: usize, values: &mut Vec<Vec<u8>>) -> Vec<Row<'_>> {
    values.resize_with(count, || make_value(record_bytes - 8, 0));
    for (i, v) in values.iter_mut().enumerate() {
        stamp_value(v, first + i as u64);
    }
    values.iter().enumerate().map(|(i, v)| Row { key: first + i as u64, value: v }).collect()
}
