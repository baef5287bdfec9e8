//! The demo's live subscriber: follows slot "demo" while the writers run, acknowledging what it
//! processed, and counts what it saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use walden_cdc::{Cdc, Event, SubscriptionOptions, TransactionEventKind};
use walden_engine::Database;
use walden_wal::Lsn;

/// What the subscriber saw.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct SubscriberStats {
    /// Change and schema events delivered.
    pub events: u64,
    /// Of those, inserts.
    pub inserts: u64,
    /// Updates.
    pub updates: u64,
    /// Deletes.
    pub deletes: u64,
    /// Schema changes.
    pub schema_changes: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// The last LSN acknowledged on the slot.
    pub acknowledged_lsn: Lsn,
    /// The largest distance between the durable LSN and the acknowledged one seen.
    pub max_lag_lsns: u64,
}

/// Follows slot "demo" until `done` is set and everything up to `final_lsn` is processed.
pub fn subscribe(
    db: Arc<Database>,
    done: &AtomicBool,
    final_lsn: &AtomicU64,
) -> Result<SubscriberStats, walden_cdc::CdcError> {
    let cdc = Cdc::new(db.clone());
    let mut sub = cdc.subscribe_slot("demo", SubscriptionOptions::default().with_transaction_control(true))?;
    let mut stats = SubscriberStats::default();
    let mut last_commit = 0;
    let mut last_ack = Instant::now();
    loop {
        match sub.next_timeout(Duration::from_millis(20)) {
            Some(Ok(event)) => match event {
                Event::Change(c) => {
                    stats.events += 1;
                    match c.op {
                        walden_cdc::Operation::Insert => stats.inserts += 1,
                        walden_cdc::Operation::Update => stats.updates += 1,
                        walden_cdc::Operation::Delete => stats.deletes += 1,
                    }
                }
                Event::Schema(_) => {
                    stats.events += 1;
                    stats.schema_changes += 1;
                }
                Event::Transaction(t) if t.kind == TransactionEventKind::Commit => {
                    stats.transactions += 1;
                    last_commit = t.lsn;
                }
                Event::Transaction(_) => {}
            },
            Some(Err(e)) => return Err(e),
            None => {}
        }
        let finished = done.load(Ordering::SeqCst) && sub.stream().position() >= final_lsn.load(Ordering::SeqCst);
        // Acknowledge at most ten times a second (each acknowledgement is a durable slot write).
        if last_commit > stats.acknowledged_lsn && (finished || last_ack.elapsed() >= Duration::from_millis(100)) {
            sub.ack(last_commit)?;
            stats.acknowledged_lsn = last_commit;
            last_ack = Instant::now();
        }
        let lag = db.wal().durable_lsn().saturating_sub(stats.acknowledged_lsn);
        stats.max_lag_lsns = stats.max_lag_lsns.max(lag);
        if finished {
            break;
        }
    }
    sub.close()?;
    Ok(stats)
}
