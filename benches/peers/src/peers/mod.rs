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
