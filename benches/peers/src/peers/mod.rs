//! The peers, each behind its own cargo feature.

#[cfg(feature = "fjall")]
mod fjall;
#[cfg(feature = "okaywal")]
mod okaywal;
#[cfg(feature = "rocksdb")]
mod rocksdb;
#[cfg(feature = "sled")]
mod sled;
#[cfg(feature = "sqlite")]
mod sqlite;

use crate::Peer;
#[cfg(any(feature = "fjall", feature = "rocksdb", feature = "sled"))]
use crate::{PeerError, Result};

/// Every peer compiled in, in column order.
pub(crate) fn compiled() -> Vec<&'static dyn Peer> {
    let peers: Vec<&'static dyn Peer> = vec![
        #[cfg(feature = "okaywal")]
        &okaywal::OkayWal,
        #[cfg(feature = "rocksdb")]
        &rocksdb::RocksDb,
        #[cfg(feature = "sqlite")]
        &sqlite::Sqlite,
        #[cfg(feature = "fjall")]
        &fjall::Fjall,
        #[cfg(feature = "sled")]
        &sled::Sled,
    ];
    peers
}

/// Checks a key-value store read back after a rate workload: `keys` yields every stored key,
/// each must be 8 bytes, and there must be exactly `rows` of them.
#[cfg(any(feature = "fjall", feature = "rocksdb", feature = "sled"))]
pub(crate) fn check_key_count<K: AsRef<[u8]>>(
    store: &'static str,
    keys: impl Iterator<Item = Result<K>>,
    rows: u64,
) -> Result<()> {
    let mut seen = 0u64;
    for key in keys {
        let len = key?.as_ref().len();
        if len != 8 {
            return Err(PeerError::check(store, format!("key of {len} bytes")));
        }
        seen += 1;
    }
    if seen != rows {
        return Err(PeerError::check(store, format!("holds {seen} rows, committed {rows}")));
    }
    Ok(())
}
