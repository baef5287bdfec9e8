//! Fixtures shared by the CDC integration tests (each test crate uses its own part).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use walden_cdc::{Cdc, ChangeStream, Event, SlotSubscription, SubscriptionOptions};
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{CommitInfo, Config, Database, SyncMode, WalConfig};

/// 16 KiB segments (a few dozen transactions seal one, so streams cross segment boundaries).
pub fn small_segments(sync_mode: SyncMode) -> Config {
    Config {
        wal: WalConfig { target_segment_size_bytes: 16 << 10, sync_mode, ..WalConfig::default() },
        ..Config::default()
    }
}

/// A database in a fresh temporary directory; keep the directory as long as the database.
pub fn temp_db(config: Config) -> (tempfile::TempDir, Arc<Database>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path(), config).unwrap());
    (dir, db)
}

/// A database on in-memory storage (`FaultStorage`, no faults armed).
pub fn memory_db(config: Config) -> Arc<Database> {
    Arc::new(Database::open_with_storage("/db", config, Arc::new(FaultStorage::new())).unwrap())
}

/// Commits one transaction inserting `key` into `table`; the change's LSN is `txn_id + 1`.
pub fn commit_insert(db: &Database, table: &str, key: &[u8], payload: &[u8]) -> CommitInfo {
    let mut txn = db.begin();
    txn.insert(table, key, payload).unwrap();
    txn.commit_info().unwrap()
}

/// Every event available now, without waiting.
pub fn drain(stream: &mut ChangeStream) -> Vec<Event> {
    std::iter::from_fn(|| stream.try_next()).map(Result::unwrap).collect()
}

/// Every item (event or error) available now, without waiting.
pub fn drain_results(stream: &mut ChangeStream) -> Vec<walden_cdc::Result<Event>> {
    std::iter::from_fn(|| stream.try_next()).collect()
}

/// Every event of a slot subscription available now, without waiting.
pub fn drain_slot(sub: &mut SlotSubscription) -> Vec<Event> {
    std::iter::from_fn(|| sub.try_next()).map(Result::unwrap).collect()
}

/// Every event of a subscription that ends (its options carry an end LSN, or its source does);
/// asserts it reached the end rather than stalling for 200 ms.
pub fn collect(cdc: &Cdc, options: SubscriptionOptions) -> Vec<Event> {
    let mut stream = cdc.subscribe(options).expect("subscribe");
    let mut events = Vec::new();
    while let Some(event) = stream.next_timeout(Duration::from_millis(200)) {
        events.push(event.expect("event"));
    }
    assert!(stream.is_ended());
    events
}
