//! Slot-backed consumption: resume after the slot's confirmed LSN, acknowledge durably.

use std::sync::Arc;
use std::time::Duration;

use walden_engine::{Database, SlotGuard, SlotInfo};

use crate::Lsn;
use crate::cold::ColdSource;
use crate::engine_error;
use crate::error::Result;
use crate::event::{Event, Operation};
use crate::filter::Filter;
use crate::stream::{ChangeStream, SubscriptionOptions};

/// A subscription bound to a replication slot (see [`crate::Cdc::subscribe_slot`]).
///
/// Delivery is at-least-once: after a crash, events after the last [`SlotSubscription::ack`] are
/// delivered again. A consumer that stores the LSN of the last event it applied together with its
/// side effect (atomically), skips events at or below it, and acks after storing, processes every
/// change exactly once (`cdc/tests/exactly_once.rs` proves it with random kills).
pub struct SlotSubscription {
    guard: SlotGuard<'static>,
    stream: ChangeStream,
}

impl std::fmt::Debug for SlotSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotSubscription").field("slot", &self.guard.name()).field("stream", &self.stream).finish()
    }
}

/// The subscription filter a slot's stored filter stands for.
pub(crate) fn slot_filter(info: &SlotInfo) -> (Filter, bool) {
    use walden_engine::Operation as SlotOp;
    let mut filter = Filter::all();
    filter.tables = info.filter.tables.clone();
    let mut include_schema = true;
    if let Some(ops) = &info.filter.operations {
        filter.operations = Some(
            ops.iter()
                .filter_map(|op| match op {
                    SlotOp::Insert => Some(Operation::Insert),
                    SlotOp::Update => Some(Operation::Update),
                    SlotOp::Delete => Some(Operation::Delete),
                    SlotOp::Schema => None,
                })
                .collect(),
        );
        include_schema = ops.contains(&SlotOp::Schema);
    }
    (filter, include_schema)
}

impl SlotSubscription {
    pub(crate) fn open(
        db: Arc<Database>,
        cold: Option<Arc<dyn ColdSource>>,
        name: &str,
        mut options: SubscriptionOptions,
    ) -> Result<SlotSubscription> {
        let guard = Database::acquire_slot_shared(&db, name).map_err(engine_error)?;
        let info = guard.info();
        let (filter, include_schema) = slot_filter(&info);
        options.filter = filter.and(&options.filter);
        options.include_schema_changes &= include_schema;
        options.from_lsn = info.restart_lsn.max(1);
        let stream = ChangeStream::open(db, cold, options)?;
        Ok(SlotSubscription { guard, stream })
    }

    /// The slot's name.
    pub fn slot_name(&self) -> &str {
        self.guard.name()
    }

    /// A snapshot of the slot.
    pub fn slot_info(&self) -> SlotInfo {
        self.guard.info()
    }

    /// The underlying stream.
    pub fn stream(&self) -> &ChangeStream {
        &self.stream
    }

    /// Confirms that everything up to and including `lsn` is durably processed: the slot advances
    /// (persisted before this returns) and the WAL before it may be released. Never moves back.
    pub fn ack(&self, lsn: Lsn) -> Result<SlotInfo> {
        self.guard.advance(lsn).map_err(engine_error)
    }

    /// The next event if available now.
    pub fn try_next(&mut self) -> Option<Result<Event>> {
        self.stream.try_next()
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Event>> {
        self.stream.next_timeout(timeout)
    }

    /// Releases the slot (it becomes inactive).
    pub fn close(self) -> Result<()> {
        self.guard.release().map_err(engine_error)
    }
}

impl Iterator for SlotSubscription {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next()
    }
}
