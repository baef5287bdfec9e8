//! What the WAL's integration tests share: the in-memory log directory, opening a log on a
//! [`FaultStorage`], reading everything back, and payloads checkable from their LSN alone.
#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use walden_wal::testing::fault::FaultStorage;
use walden_wal::{Lsn, Record, Wal, WalConfig, WalError};

/// The log directory inside a [`FaultStorage`].
pub const DIR: &str = "/wal";
/// `errno` of an I/O error.
pub const EIO: i32 = 5;
/// `errno` of a full disk.
pub const ENOSPC: i32 = 28;

/// Opens the log in [`DIR`] of `fs`.
pub fn open(fs: &FaultStorage, config: &WalConfig) -> Result<Wal, WalError> {
    Wal::open_with_storage(DIR, config.clone(), Arc::new(fs.clone()))
}

/// Opens the log in [`DIR`] of `fs`, which must succeed.
pub fn open_ok(fs: &FaultStorage, config: &WalConfig) -> Wal {
    open(fs, config).unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// Every record from `lsn` to the visible end; a read error fails the test.
pub fn read_from(wal: &Wal, lsn: Lsn) -> Vec<Record> {
    let reader = wal.reader(lsn).expect("reader");
    reader.collect::<Result<Vec<_>, _>>().unwrap_or_else(|e| panic!("read failed: {e}"))
}

/// Every record from the oldest retained one to the visible end; a read error fails the test.
pub fn read_all(wal: &Wal) -> Vec<Record> {
    read_from(wal, wal.oldest_lsn())
}

/// Every record from the oldest retained one, or the error that stopped the reader.
pub fn try_read_all(wal: &Wal) -> Result<Vec<Record>, WalError> {
    wal.reader(wal.oldest_lsn())?.collect()
}

/// A payload of LSN `lsn`: `record <lsn>;` padded to `min_bytes + (lsn * step) % spread_bytes`
/// bytes with a letter of the LSN, so records can be checked from their LSN alone and sizes vary.
pub fn lsn_payload(lsn: Lsn, min_bytes: usize, step: usize, spread_bytes: usize) -> Vec<u8> {
    let mut p = format!("record {lsn};").into_bytes();
    p.resize(min_bytes + (lsn as usize * step) % spread_bytes, b'a' + (lsn % 26) as u8);
    p
}

/// Appends `n` single-record batches (kind 1, payload `payload(lsn)`) after the log's end;
/// returns the last LSN.
pub fn append_singles(wal: &Wal, n: u64, payload: impl Fn(Lsn) -> Vec<u8>) -> Lsn {
    let mut last = wal.next_lsn() - 1;
    for _ in 0..n {
        let lsn = wal.next_lsn();
        assert_eq!(wal.append(1, &payload(lsn)).expect("append"), lsn);
        last = lsn;
    }
    last
}
