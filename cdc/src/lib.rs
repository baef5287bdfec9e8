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
pub mod cold;
mod consumers;
pub mod dlq;
pub mod envelope;
mod error;
mod event;
mod filter;
pub mod retry;
mod slot;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use walden_engine::{Database, EngineError};

pub use cold::{ColdChunk, ColdRange, ColdRecord, ColdSource};

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
pub use stream::{ChangeStream, DecodeErrorPolicy, OverflowPolicy, SubscriptionOptions};

/// A log sequence number.
pub type Lsn = u64;

/// The CDC service of one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cdc {
    db: Arc<Database>,
    cold: Option<Arc<dyn ColdSource>>,
}

impl Cdc {
    /// CDC over `db`, reading the local WAL only.
    pub fn new(db: Arc<Database>) -> Cdc {
        Cdc { db, cold: None }
    }

    /// CDC over `db` and the archive below it: subscriptions (slot-backed ones too) from an LSN
    /// the WAL no longer holds read the archived transactions from `cold` first, then continue
    /// into the WAL as one ordered stream (see [`cold`]). `walden-archive` provides the source.
    pub fn with_cold_source(db: Arc<Database>, cold: Arc<dyn ColdSource>) -> Cdc {
        Cdc { db, cold: Some(cold) }
    }

    /// The cold source, if any.
    pub fn cold_source(&self) -> Option<&Arc<dyn ColdSource>> {
        self.cold.as_ref()
    }

    /// The database.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// A blocking change stream (see [`ChangeStream`]): every committed change from
    /// `options.from_lsn` (0: the oldest retained), then a live tail (the iterator blocks for new
    /// commits; [`ChangeStream::next_timeout`] and [`ChangeStream::try_next`] do not block
    /// forever). `LSN_NOT_FOUND` if `from_lsn` is older than the oldest retained LSN.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use walden_cdc::{Cdc, Event, SubscriptionOptions};
    /// use walden_engine::{Config, Database};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-subscribe-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let cdc = Cdc::new(db.clone());
    /// let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(0).with_transaction_control(true))?;
    ///
    /// let mut txn = db.begin();
    /// txn.insert("users", b"u1", br#"{"name":"Alice"}"#)?;
    /// let commit_lsn = txn.commit()?;
    ///
    /// let kinds: Vec<String> = (0..3)
    ///     .map(|_| match stream.next_timeout(Duration::from_secs(5)).expect("woken by the commit")? {
    ///         Event::Transaction(t) => Ok(format!("{:?}", t.kind)),
    ///         Event::Change(c) => Ok(format!("{} {}", c.op.as_str(), c.table)),
    ///         Event::Schema(s) => Ok(format!("schema {}", s.table)),
    ///     })
    ///     .collect::<walden_cdc::Result<_>>()?;
    /// assert_eq!(kinds, ["Begin", "insert users", "Commit"]);
    /// assert_eq!(stream.position(), commit_lsn);
    /// # drop(stream);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self, options: SubscriptionOptions) -> Result<ChangeStream> {
        ChangeStream::open(self.db.clone(), self.cold.clone(), options)
    }

    /// Changes of one table from `from_lsn` (0: the oldest retained).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use walden_cdc::Cdc;
    /// use walden_engine::{Config, Database};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-table-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let mut txn = db.begin();
    /// txn.insert("users", b"u1", b"{}")?;
    /// txn.insert("orders", b"o1", b"{}")?;
    /// txn.commit()?;
    /// let cdc = Cdc::new(db.clone());
    /// let mut orders = cdc.subscribe_table("orders", 0)?;
    /// let change = orders.try_next().expect("one order")?.into_change().expect("a row change");
    /// assert_eq!((change.table.as_str(), &change.key[..]), ("orders", &b"o1"[..]));
    /// assert!(orders.try_next().is_none());
    /// # drop(orders);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_table(&self, table: &str, from_lsn: Lsn) -> Result<ChangeStream> {
        self.subscribe(SubscriptionOptions::from_lsn(from_lsn).with_filter(Filter::all().tables([table])))
    }

    /// A stream whose change payloads are decoded into `T` by `decoder` (a closure
    /// `Fn(&Bytes) -> Result<T, String>`, [`codec::JsonCodec`], [`codec::MessagePackCodec`]).
    /// A payload that does not decode is handled by `options.decode_error_policy`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use walden_cdc::codec::JsonCodec;
    /// use walden_cdc::{Cdc, CdcErrorCode, SubscriptionOptions};
    /// use walden_engine::{Config, Database};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct User {
    ///     name: String,
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-typed-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let mut txn = db.begin();
    /// txn.insert("users", b"u1", br#"{"name":"Alice"}"#)?;
    /// txn.insert("users", b"u2", b"not json")?;
    /// txn.commit()?;
    /// let cdc = Cdc::new(db.clone());
    /// let mut users = cdc.subscribe_typed(SubscriptionOptions::from_lsn(0), JsonCodec::<User>::new())?;
    /// let alice = users.next().expect("an event")?.into_change().expect("a row change");
    /// assert_eq!(alice.data.expect("an insert has data").name, "Alice");
    /// // By default a payload that does not decode fails that event, not the stream.
    /// let err = users.next().expect("an event").unwrap_err();
    /// assert_eq!((err.code(), err.lsn()), (CdcErrorCode::DecodeError, Some(3)));
    /// # drop(users);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_typed<T: 'static>(
        &self,
        options: SubscriptionOptions,
        decoder: impl codec::PayloadDecoder<T> + 'static,
    ) -> Result<TypedStream<T>> {
        Ok(TypedStream::new(self.subscribe(options)?, Arc::new(decoder)))
    }

    /// Batches of at most `batch.max_batch_size` events, each delivered no later than
    /// `batch.max_batch_age` after its first event; each batch carries its first and last LSN.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use walden_cdc::{BatchOptions, Cdc, SubscriptionOptions};
    /// use walden_engine::{Config, Database};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-batched-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let mut txn = db.begin();
    /// for i in 0..5u8 {
    ///     txn.insert("t", &[i], b"{}")?; // LSNs 2..=6
    /// }
    /// txn.commit()?;
    /// let cdc = Cdc::new(db.clone());
    /// let batch = BatchOptions { max_batch_size: 3, max_batch_age: Duration::from_millis(50) };
    /// let mut batches = cdc.subscribe_batched(SubscriptionOptions::from_lsn(0), batch)?;
    /// let first = batches.next_batch(Duration::from_secs(5)).expect("a batch")?;
    /// assert_eq!((first.events.len(), first.first_lsn, first.last_lsn), (3, 2, 4));
    /// let second = batches.next_batch(Duration::from_secs(5)).expect("a batch")?;
    /// assert_eq!((second.events.len(), second.first_lsn, second.last_lsn), (2, 5, 6));
    /// # drop(batches);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_batched(&self, options: SubscriptionOptions, batch: BatchOptions) -> Result<BatchedStream> {
        Ok(BatchedStream::new(self.subscribe(options)?, batch))
    }

    /// An async `futures::Stream` of events, runtime agnostic (any executor; woken by commits,
    /// never polling). A reader thread feeds a channel bounded by `options.buffer_capacity`; when
    /// the consumer falls behind, the reader stops reading the log (see
    /// [`AsyncSubscription::backpressure`]). `SUBSCRIPTION_FAILED` if the reader thread cannot be
    /// started.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures::StreamExt;
    /// use walden_cdc::{Cdc, SubscriptionOptions};
    /// use walden_engine::{Config, Database};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-async-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let cdc = Cdc::new(db.clone());
    /// let options = SubscriptionOptions { buffer_capacity: 16, ..SubscriptionOptions::from_lsn(0) };
    /// let mut events = cdc.subscribe_async(options)?;
    /// let mut txn = db.begin();
    /// txn.insert("users", b"u1", b"{}")?;
    /// txn.commit()?;
    /// let event = futures::executor::block_on(events.next()).expect("the stream goes on")?;
    /// assert_eq!(event.as_change().expect("a row change").table, "users");
    /// # drop(events);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_async(&self, options: SubscriptionOptions) -> Result<AsyncSubscription> {
        let (capacity, policy) = (options.buffer_capacity, options.overflow_policy);
        AsyncSubscription::spawn(self.subscribe(options)?, capacity, policy)
    }

    /// Runs `handler` over a stream on its own thread, with pause / resume / stop and
    /// [`CallbackStream::status`]. `SUBSCRIPTION_FAILED` if that thread cannot be started.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use walden_cdc::{Cdc, ChangeEvent, ChangeHandler, SubscriptionOptions};
    /// use walden_engine::{Config, Database};
    ///
    /// struct Forward(mpsc::Sender<u64>);
    ///
    /// impl ChangeHandler for Forward {
    ///     fn on_change(&mut self, event: &ChangeEvent) -> Result<(), String> {
    ///         self.0.send(event.lsn).map_err(|e| e.to_string())
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-callbacks-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let cdc = Cdc::new(db.clone());
    /// let (tx, rx) = mpsc::channel();
    /// let stream = cdc.stream_callbacks(SubscriptionOptions::from_lsn(0), Forward(tx))?;
    /// let mut txn = db.begin();
    /// txn.insert("users", b"u1", b"{}")?;
    /// txn.commit()?;
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5))?, 2);
    /// assert!(stream.status().active);
    /// stream.stop(); // waits for the handler's on_end
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream_callbacks<H: ChangeHandler>(
        &self,
        options: SubscriptionOptions,
        handler: H,
    ) -> Result<CallbackStream> {
        CallbackStream::start(self.subscribe(options)?, handler)
    }

    /// Slot-backed consumption: acquires the slot (one consumer at a time), resumes after its
    /// confirmed LSN and applies its filter (narrowed by `options.filter`); `options.from_lsn` is
    /// ignored. [`SlotSubscription::ack`] advances the slot durably.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use walden_cdc::{Cdc, SubscriptionOptions};
    /// use walden_engine::{Config, Database, SlotOptions, StartPosition};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-slot-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let cdc = Cdc::new(db.clone());
    /// cdc.create_slot("audit", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() })?;
    /// for key in [b"a", b"b"] {
    ///     let mut txn = db.begin();
    ///     txn.insert("users", key, b"{}")?;
    ///     txn.commit()?; // LSNs 1..=3, then 4..=6
    /// }
    /// let mut sub = cdc.subscribe_slot("audit", SubscriptionOptions::default())?;
    /// let first = sub.next().expect("an event")?;
    /// sub.ack(first.txn().commit_lsn)?; // processed durably: confirm the whole transaction
    /// sub.close()?;
    ///
    /// // The next consumer resumes after what was acknowledged.
    /// let mut sub = cdc.subscribe_slot("audit", SubscriptionOptions::default())?;
    /// let next = sub.next().expect("an event")?.into_change().expect("a row change");
    /// assert_eq!((&next.key[..], next.lsn), (&b"b"[..], 5));
    /// sub.close()?;
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_slot(&self, name: &str, options: SubscriptionOptions) -> Result<SlotSubscription> {
        SlotSubscription::open(self.db.clone(), self.cold.clone(), name, options)
    }

    /// Creates a slot (`SLOT_EXISTS` if it exists).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use walden_cdc::{Cdc, CdcErrorCode};
    /// use walden_engine::{Config, Database, SlotOptions};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-slots-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let cdc = Cdc::new(db.clone());
    /// cdc.create_slot("feed", SlotOptions::default())?;
    /// let err = cdc.create_slot("feed", SlotOptions::default()).unwrap_err();
    /// assert_eq!(err.code(), CdcErrorCode::SlotExists);
    /// cdc.drop_slot("feed")?;
    /// assert_eq!(cdc.drop_slot("feed").unwrap_err().code(), CdcErrorCode::SlotNotFound);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_slot(&self, name: &str, options: walden_engine::SlotOptions) -> Result<walden_engine::SlotInfo> {
        self.db.create_slot(name, options).map_err(engine_error)
    }

    /// Drops a slot (`SLOT_NOT_FOUND` if missing).
    pub fn drop_slot(&self, name: &str) -> Result<()> {
        self.db.drop_slot(name).map_err(engine_error)
    }

    /// Raw WAL records from `from_lsn` (0: the oldest retained), for those who want them (no
    /// transaction assembly, no filtering; every record is committed, since the log exposes
    /// whole transactions only). [`walden_engine::decode_bytes`] decodes their payloads.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use walden_cdc::Cdc;
    /// use walden_engine::{Config, Database, EngineRecord};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("walden-cdc-doc-raw-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let db = Arc::new(Database::open(&dir, Config::default())?);
    /// let mut txn = db.begin();
    /// txn.insert("users", b"u1", b"{}")?;
    /// txn.commit()?;
    /// let cdc = Cdc::new(db.clone());
    /// let records: Vec<_> = cdc.raw_records(0)?.collect::<Result<_, _>>()?;
    /// assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [1, 2, 3]);
    /// let insert = walden_engine::decode_bytes(records[1].kind, &records[1].payload)?;
    /// assert!(matches!(insert, EngineRecord::Change(c) if c.table == "users"));
    /// # drop(records);
    /// # drop(cdc);
    /// # Arc::try_unwrap(db).ok().expect("no other handle").close()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
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
