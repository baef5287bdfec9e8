//! The README's "Using it" walk-through, compiled by every `cargo test` run:
//! commit a transaction, stream it, consume it through a slot, archive it to a local Iceberg
//! lake, trim the WAL, and replay everything from the lake into the live log.
//!
//! `cargo run -p walden-archive --example quickstart [DIR]` (default: a fresh temp directory).

use std::sync::Arc;
use std::time::Duration;

use walden_archive::{Archiver, LakeConfig};
use walden_cdc::{Cdc, Event, Filter, SubscriptionOptions};
use walden_engine::{Config, Database, SlotOptions, StartPosition, SyncMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let data = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| scratch.path().join("data"));
    let db = Arc::new(Database::open(&data, Config::with_sync_mode(SyncMode::Group))?);

    // BEGIN … COMMIT, one atomic WAL batch; durable (fdatasync'd, group commit) when it returns.
    let mut txn = db.begin();
    txn.insert("users", b"u1", br#"{"name":"Alice"}"#)?;
    txn.update("orders", b"o1", br#"{"total":5}"#, br#"{"total":7}"#)?;
    let commit_lsn = txn.commit()?;

    // A change stream from any LSN (then live), filtered to one table.
    let cdc = Cdc::new(db.clone());
    let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(1).with_filter(Filter::all().tables(["orders"])))?;
    while let Some(event) = stream.next_timeout(Duration::from_millis(100)) {
        if let Event::Change(change) = event? {
            println!("stream: LSN {} {:?} on {}", change.lsn, change.op, change.table);
        }
    }

    // A durable consumer position: apply, then acknowledge.
    cdc.create_slot("billing", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() })?;
    let mut sub = cdc.subscribe_slot("billing", SubscriptionOptions::default())?;
    while let Some(event) = sub.try_next() {
        let event = event?;
        sub.ack(event.lsn())?;
    }
    sub.close()?;

    // Sealed segments → Iceberg snapshots in `<data>.lake`; then the local WAL can be trimmed.
    db.wal().seal_active_segment()?;
    let archiver = Archiver::open(db.clone(), LakeConfig::beside_data_dir(&data)?)?;
    let report = archiver.archive_sealed()?;
    println!("archived {} rows up to LSN {:?}", report.rows(), report.last_archived_lsn);
    let checkpoint = db.checkpoint()?;
    println!(
        "checkpoint removed {} segment(s); the WAL now starts at LSN {}",
        checkpoint.removed_segments.len(),
        db.wal().oldest_lsn()
    );

    // Subscriptions through the archiver replay lake → WAL as one stream.
    let tiered = archiver.cdc();
    let mut replay =
        tiered.subscribe(SubscriptionOptions { end_lsn: Some(commit_lsn), ..SubscriptionOptions::from_lsn(1) })?;
    let mut replayed = 0;
    while let Some(event) = replay.next_timeout(Duration::from_millis(100)) {
        event?;
        replayed += 1;
    }
    println!("replayed {replayed} events from the lake");
    assert_eq!(replayed, 2);
    Ok(())
}
