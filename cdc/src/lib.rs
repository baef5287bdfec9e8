//! `walden-cdc`: change data capture over a Walden database.
//!
//! [`Cdc`] turns the engine's log into change streams:
//! - [`Cdc::subscribe`]: a blocking [`ChangeStream`] from any LSN that continues as a live tail;
//!   only committed transactions are delivered, in one total LSN order across tables;
//! - [`Cdc::subscribe_typed`] (payloads decoded by a closure, [`codec::JsonCodec`] or
//!   [`codec::MessagePackCodec`]), [`Cdc::subscribe_table`], [`Cdc::subscribe_batched`];
//! - [`Cdc::subscribe_async`]: a runtime-agnostic `futures::Stream`, woken by commits;
//! - [`Cdc::stream_callbacks`]: a callback stream with pause / resume / stop and status;
//! - [`Cdc::subscribe_slot`]: slot-backed consumption that resumes after the slot's confirmed LSN
//!   and acknowledges durably ([`SlotSubscription::ack`]).
//!
//! Events render into the envelopes consumers already parse ([`envelope`]); failures carry the
//! stable codes of [`CdcErrorCode`]. Consumer helpers: [`retry`] and a persisted [`dlq`].
//!
//! ```
//! use std::sync::Arc;
//! use walden_cdc::{Cdc, Event, Filter, SubscriptionOptions};
//! use walden_engine::{Config, Database};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("walden-cdc-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let db = Arc::new(Database::open(&dir, Config::default())?);
//! let mut txn = db.begin();
//! txn.insert("users", b"u1", br#"{"name":"Alice"}"#)?;
//! txn.insert("orders", b"o1", br#"{"total":5}"#)?;
//! txn.commit()?;
//!
//! let cdc = Cdc::new(db.clone());
//! let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(0).with_filter(Filter::all().tables(["users"])))?;
//! let event = stream.try_next().expect("one event")?;
//! let Event::Change(change) = event else { unreachable!() };
//! assert_eq!(change.table, "users");
//! assert!(stream.try_next().is_none(), "orders are filtered out");
//! # drop(stream); drop(cdc);
//! # Arc::try_unwrap(db).ok().unwrap().close()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod codec;
mod consumers;
pub mod dlq;
pub mod envelope;
mod error;
mod event;
mod filter;
pub mod retry;
mod slot;
mod stream;

use std::sync::Arc;

use walden_engine::{Database, EngineError};

pub use consumers::{
    AsyncSubscription, BackpressureSignal, BatchOptions, BatchedStream, CallbackStream, ChangeHandler, EventBatch,
    StreamStatus, TypedStream,
};
pub use error::{CdcError, CdcErrorCode, Result};
pub use event::{
    ChangeEvent, ColumnDef, Event, Operation, SchemaChange, SchemaChangeEvent, TransactionEvent, TransactionEventKind,
    TxnContext,
};
pub use filter::{ColumnMask, Filter, Predicate};
pub use slot::SlotSubscription;
pub use stream::{ChangeStream, DecodeErrorPolicy, SubscriptionOptions};

/// A log sequence number.
pub type Lsn = u64;

/// The CDC service of one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cdc {
    db: Arc<Database>,
}

impl Cdc {
    /// CDC over `db`.
    pub fn new(db: Arc<Database>) -> Cdc {
        Cdc { db }
    }

    /// The database.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// A blocking change stream (see [`ChangeStream`]).
    pub fn subscribe(&self, options: SubscriptionOptions) -> Result<ChangeStream> {
        ChangeStream::open(self.db.clone(), options)
    }

    /// Changes of one table from `from_lsn`.
    pub fn subscribe_table(&self, table: &str, from_lsn: Lsn) -> Result<ChangeStream> {
        self.subscribe(SubscriptionOptions::from_lsn(from_lsn).with_filter(Filter::all().tables([table])))
    }

    /// A stream whose change payloads are decoded into `T` by `decoder` (a closure
    /// `Fn(&Bytes) -> Result<T, String>`, [`codec::JsonCodec`], [`codec::MessagePackCodec`]).
    pub fn subscribe_typed<T: 'static>(
        &self,
        options: SubscriptionOptions,
        decoder: impl codec::PayloadDecoder<T> + 'static,
    ) -> Result<TypedStream<T>> {
        Ok(TypedStream::new(self.subscribe(options)?, Arc::new(decoder)))
    }

    /// Batches of at most `batch.max_batch_size` events, each delivered no later than
    /// `batch.max_batch_age` after its first event.
    pub fn subscribe_batched(&self, options: SubscriptionOptions, batch: BatchOptions) -> Result<BatchedStream> {
        Ok(BatchedStream::new(self.subscribe(options)?, batch))
    }

    /// An async `futures::Stream` of events (bounded by `options.buffer_capacity`).
    pub fn subscribe_async(&self, options: SubscriptionOptions) -> Result<AsyncSubscription> {
        let capacity = options.buffer_capacity;
        Ok(AsyncSubscription::spawn(self.subscribe(options)?, capacity))
    }

    /// Runs `handler` over a stream on its own thread.
    pub fn stream_callbacks<H: ChangeHandler>(
        &self,
        options: SubscriptionOptions,
        handler: H,
    ) -> Result<CallbackStream> {
        Ok(CallbackStream::start(self.subscribe(options)?, handler))
    }

    /// Slot-backed consumption: acquires the slot (one consumer at a time), resumes after its
    /// confirmed LSN and applies its filter (narrowed by `options.filter`); `options.from_lsn` is
    /// ignored.
    pub fn subscribe_slot(&self, name: &str, options: SubscriptionOptions) -> Result<SlotSubscription> {
        SlotSubscription::open(self.db.clone(), name, options)
    }

    /// Creates a slot (`SLOT_EXISTS` if it exists).
    pub fn create_slot(&self, name: &str, options: walden_engine::SlotOptions) -> Result<walden_engine::SlotInfo> {
        self.db.create_slot(name, options).map_err(engine_error)
    }

    /// Drops a slot (`SLOT_NOT_FOUND` if missing).
    pub fn drop_slot(&self, name: &str) -> Result<()> {
        self.db.drop_slot(name).map_err(engine_error)
    }

    /// Raw WAL records from `from_lsn`, for those who want them (no transaction assembly, no
    /// filtering; every record is committed, since the log exposes whole transactions only).
    pub fn raw_records(&self, from_lsn: Lsn) -> Result<walden_wal::Reader> {
        let from = if from_lsn == 0 { self.db.wal().oldest_lsn() } else { from_lsn };
        self.db.wal().reader(from).map_err(stream::wal_error)
    }
}

/// Maps engine errors to CDC's stable codes.
pub(crate) fn engine_error(e: EngineError) -> CdcError {
    match e {
        EngineError::SlotExists { name } => CdcError::SlotExists(name),
        EngineError::SlotNotFound { name } => CdcError::SlotNotFound(name),
        EngineError::Wal(walden_wal::WalError::LsnNotFound { requested, oldest_available }) => {
            CdcError::LsnNotFound { requested, oldest_available }
        }
        other => CdcError::failed("engine call failed", other),
    }
}
