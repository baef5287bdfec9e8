//! The core pull-based change stream: reads the WAL in order, decodes engine records, keeps track
//! of the open transaction, applies filters and the decode-error policy, and yields [`Event`]s.
//!
//! Memory is bounded: the WAL is the buffer. The stream holds at most one transaction's pending
//! BEGIN plus a small queue of ready events; a slow consumer only makes its reader fall behind.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use walden_engine::Database;
use walden_engine::record::{self, EngineRecord};
use walden_wal::{Reader, Record, WalError};

use crate::Lsn;
use crate::cold::{ColdRecord, ColdSource};
use crate::dlq::DeadLetterQueue;
use crate::error::{CdcError, Result};
use crate::event::{
    ChangeEvent, ColumnDef, Event, Operation, SchemaChange, SchemaChangeEvent, TransactionEvent, TransactionEventKind,
    TxnContext,
};
use crate::filter::Filter;

/// What to do when an event cannot be decoded (`DECODE_ERROR`).
#[derive(Debug, Clone, Default)]
pub enum DecodeErrorPolicy {
    /// Deliver the error in place of that event and carry on with the next one (default).
    #[default]
    FailEvent,
    /// Log it and carry on, delivering nothing for that event.
    Skip,
    /// Write the raw record to the dead-letter queue and carry on.
    DeadLetter(DeadLetterQueue),
    /// Deliver the error and end the stream.
    Stop,
}

/// Options of a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// First LSN of interest; `0` means the oldest retained record. Starting inside a transaction
    /// delivers the rest of it (with its BEGIN metadata).
    pub from_lsn: Lsn,
    /// Stop after this LSN (inclusive); `None` tails forever.
    pub end_lsn: Option<Lsn>,
    /// What to let through.
    pub filter: Filter,
    /// Deliver BEGIN/COMMIT events around the delivered changes of each transaction.
    pub include_transaction_control: bool,
    /// Deliver schema-change events (default true).
    pub include_schema_changes: bool,
    /// What to do with undecodable events.
    pub decode_error_policy: DecodeErrorPolicy,
    /// Bound on events buffered between the reader thread and an async / callback consumer
    /// (default 1024). The blocking stream buffers at most one transaction boundary.
    pub buffer_capacity: usize,
    /// What an async subscription does when its consumer falls behind and that buffer is full
    /// (default [`OverflowPolicy::Backpressure`]).
    pub overflow_policy: OverflowPolicy,
}

/// What an async subscription ([`crate::Cdc::subscribe_async`]) does when its consumer falls
/// behind and the buffer of `buffer_capacity` events is full. Neither drops an event silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// The reader stops reading the log until the consumer catches up: the WAL is the buffer,
    /// memory stays bounded, nothing is lost.
    #[default]
    Backpressure,
    /// For consumers that must not fall behind (and would rather know than wait): the
    /// subscription delivers what it has buffered, then one `BUFFER_OVERFLOW` error naming the
    /// LSN to resume from, and ends. The events from that LSN on are still in the log; subscribe
    /// again from it (a slot-backed consumer simply resubscribes).
    Fail,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            from_lsn: 0,
            end_lsn: None,
            filter: Filter::default(),
            include_transaction_control: false,
            include_schema_changes: true,
            decode_error_policy: DecodeErrorPolicy::FailEvent,
            buffer_capacity: 1024,
            overflow_policy: OverflowPolicy::Backpressure,
        }
    }
}

impl SubscriptionOptions {
    /// Options starting at `from_lsn`.
    pub fn from_lsn(from_lsn: Lsn) -> Self {
        SubscriptionOptions { from_lsn, ..Self::default() }
    }

    /// With a filter.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// With BEGIN/COMMIT events.
    pub fn with_transaction_control(mut self, on: bool) -> Self {
        self.include_transaction_control = on;
        self
    }
}

#[derive(Debug)]
struct OpenTxn {
    ctx: TxnContext,
    change_count: u32,
    begin_lsn: Lsn,
    next_offset: u64,
    begin_emitted: bool,
}

/// Records read from a cold source per chunk (bounds the stream's memory while it replays the
/// archive: one chunk plus at most one transaction).
const COLD_CHUNK_RECORDS: usize = 4096;

/// Where the stream reads records from.
enum Source {
    /// The local WAL.
    Hot(Reader),
    /// A cold source (the archive), until it has delivered everything the WAL no longer has.
    Cold(ColdCursor),
}

/// Position in a cold source.
struct ColdCursor {
    source: Arc<dyn ColdSource>,
    /// Records fetched and not yet processed.
    buffer: VecDeque<ColdRecord>,
    /// Next LSN to ask the source for.
    next_lsn: Lsn,
    /// Last LSN the source held when last asked.
    through_lsn: Lsn,
    /// Last LSN of the records fetched so far (0: none yet). The first chunk may begin before
    /// the stream's start (the rest of a transaction the start lies in comes with its BEGIN).
    fetched_through: Lsn,
}

/// One step of reading from the cold source.
enum ColdStep {
    Record(ColdRecord),
    /// The source has nothing at or after this LSN: continue from the WAL there.
    SwitchToHot(Lsn),
}

impl ColdCursor {
    fn step(&mut self) -> Result<ColdStep> {
        loop {
            if let Some(record) = self.buffer.pop_front() {
                return Ok(ColdStep::Record(record));
            }
            if self.next_lsn > self.through_lsn {
                // The archive may have grown meanwhile; read on from it as long as it has more.
                match self.source.range().map_err(cold_error)? {
                    Some(range) if range.last_lsn >= self.next_lsn => self.through_lsn = range.last_lsn,
                    _ => return Ok(ColdStep::SwitchToHot(self.next_lsn)),
                }
            }
            let chunk =
                self.source.read_chunk(self.next_lsn, self.through_lsn, COLD_CHUNK_RECORDS).map_err(cold_error)?;
            if chunk.next_lsn <= self.next_lsn {
                return Err(CdcError::SubscriptionFailed {
                    message: format!(
                        "the cold source made no progress at LSN {} (next LSN {})",
                        self.next_lsn, chunk.next_lsn
                    ),
                    source: None,
                });
            }
            let mut previous = self.fetched_through;
            for record in &chunk.records {
                if record.lsn <= previous || record.lsn >= chunk.next_lsn {
                    return Err(CdcError::SubscriptionFailed {
                        message: format!(
                            "the cold source returned LSN {} out of order (after LSN {previous}, before {})",
                            record.lsn, chunk.next_lsn
                        ),
                        source: None,
                    });
                }
                previous = record.lsn;
            }
            self.fetched_through = previous;
            self.next_lsn = chunk.next_lsn;
            self.buffer.extend(chunk.records);
        }
    }
}

fn cold_error(e: crate::cold::ColdError) -> CdcError {
    CdcError::SubscriptionFailed { message: format!("reading the archive failed: {e}"), source: Some(e) }
}

/// A blocking change stream. See [`crate::Cdc::subscribe`].
pub struct ChangeStream {
    db: Arc<Database>,
    source: Source,
    options: SubscriptionOptions,
    /// Events below this LSN are not delivered (set when starting inside a transaction).
    deliver_from: Lsn,
    txn: Option<OpenTxn>,
    ready: VecDeque<Result<Event>>,
    /// LSN of the last record consumed from the WAL.
    position: Lsn,
    events_delivered: u64,
    /// LSN of the last event delivered (meaningful once `events_delivered > 0`).
    last_delivered_lsn: Lsn,
    last_event_at: Option<Instant>,
    ended: bool,
    sought_back_for: Option<Lsn>,
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream").field("position", &self.position).field("ended", &self.ended).finish()
    }
}

pub(crate) fn wal_error(e: WalError) -> CdcError {
    match e {
        WalError::LsnNotFound { requested, oldest_available } => CdcError::LsnNotFound { requested, oldest_available },
        other => CdcError::failed("reading the log failed", other),
    }
}

impl ChangeStream {
    pub(crate) fn open(
        db: Arc<Database>,
        cold: Option<Arc<dyn ColdSource>>,
        options: SubscriptionOptions,
    ) -> Result<ChangeStream> {
        let wal = db.wal();
        let oldest = wal.oldest_lsn();
        let cold_range = match &cold {
            Some(source) => source.range().map_err(cold_error)?,
            None => None,
        };
        let oldest_available = cold_range.map_or(oldest, |r| r.first_lsn.min(oldest));
        let start = if options.from_lsn == 0 { oldest_available } else { options.from_lsn };
        let source = match (cold, cold_range) {
            (Some(source), Some(range)) if start < oldest => {
                if start < range.first_lsn {
                    return Err(CdcError::LsnNotFound { requested: start, oldest_available: range.first_lsn });
                }
                if range.last_lsn.saturating_add(1) < oldest {
                    return Err(CdcError::SubscriptionFailed {
                        message: format!(
                            "LSNs {}..{oldest} are neither archived nor in the local WAL (the archive ends at LSN {})",
                            range.last_lsn + 1,
                            range.last_lsn
                        ),
                        source: None,
                    });
                }
                Source::Cold(ColdCursor {
                    source,
                    buffer: VecDeque::new(),
                    next_lsn: start,
                    through_lsn: range.last_lsn,
                    fetched_through: 0,
                })
            }
            _ if start < oldest => return Err(CdcError::LsnNotFound { requested: start, oldest_available }),
            _ => Source::Hot(wal.reader(start.min(wal.next_lsn())).map_err(wal_error)?),
        };
        Ok(ChangeStream {
            db,
            source,
            deliver_from: start,
            options,
            txn: None,
            ready: VecDeque::new(),
            position: start.saturating_sub(1),
            events_delivered: 0,
            last_delivered_lsn: 0,
            last_event_at: None,
            ended: false,
            sought_back_for: None,
        })
    }

    /// LSN of the last record this stream has consumed from the log (delivered or filtered out).
    pub fn position(&self) -> Lsn {
        self.position
    }

    /// Events delivered so far.
    pub fn events_delivered(&self) -> u64 {
        self.events_delivered
    }

    /// When the last event was delivered.
    pub fn last_event_at(&self) -> Option<Instant> {
        self.last_event_at
    }

    /// Events decoded and waiting to be taken.
    pub fn buffered(&self) -> usize {
        self.ready.len()
    }

    /// How far behind the visible end of the log this stream is, in LSNs.
    pub fn lag_lsns(&self) -> u64 {
        self.db.wal().visible_lsn().saturating_sub(self.position)
    }

    /// Whether the stream has ended (end LSN reached, or stopped by an error under `Stop`).
    pub fn is_ended(&self) -> bool {
        self.ended && self.ready.is_empty()
    }

    /// The subscription's decode-error policy.
    pub fn policy(&self) -> &DecodeErrorPolicy {
        &self.options.decode_error_policy
    }

    /// Ends the stream: events already decoded are still delivered, nothing more is read.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Puts an item back at the front of the ready queue.
    pub(crate) fn push_front(&mut self, item: Result<Event>) {
        self.ready.push_front(item);
    }

    /// The database this stream reads.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The next event if one is available now, without waiting; `None` when caught up (or ended).
    pub fn try_next(&mut self) -> Option<Result<Event>> {
        self.next_within(Duration::ZERO)
    }

    /// The next event, waiting up to `timeout` for new commits (live tail). `None` on timeout or
    /// when the stream has ended.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Event>> {
        self.next_within(timeout)
    }

    fn next_within(&mut self, timeout: Duration) -> Option<Result<Event>> {
        // One clock read per call, not per loop turn: reading the clock costs as much as
        // decoding a small event on a VM. It doubles as the delivery time unless we waited.
        let started = Instant::now();
        let deadline = started + timeout;
        let mut waited = false;
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(self.deliver(item, started, waited));
            }
            if self.ended {
                return None;
            }
            if let Some(end) = self.options.end_lsn
                && self.position >= end
                && self.txn.is_none()
            {
                self.ended = true;
                continue;
            }
            let reader = match &mut self.source {
                Source::Hot(reader) => reader,
                Source::Cold(cursor) => {
                    let step = cursor.step();
                    self.take_cold_step(step);
                    continue;
                }
            };
            let remaining =
                if timeout.is_zero() { timeout } else { deadline.saturating_duration_since(Instant::now()) };
            let record = if remaining.is_zero() {
                reader.next_record()
            } else {
                waited = true;
                reader.next_timeout(remaining)
            };
            match record {
                Ok(Some(record)) => self.process(record),
                Ok(None) => return None,
                Err(e) => self.fail(wal_error(e)),
            }
        }
    }

    /// Hands out one item of the ready queue, counting delivered events; `started` is when the
    /// caller came in, the delivery time unless it `waited` for the log.
    fn deliver(&mut self, item: Result<Event>, started: Instant, waited: bool) -> Result<Event> {
        if let Ok(event) = &item {
            // Events never repeat or go back (ARCHITECTURE.md, "CDC"): BEGIN, changes and COMMIT
            // of a transaction carry rising LSNs, and transactions follow each other.
            debug_assert!(
                self.events_delivered == 0 || event.lsn() > self.last_delivered_lsn,
                "event at LSN {} after LSN {}",
                event.lsn(),
                self.last_delivered_lsn
            );
            self.last_delivered_lsn = event.lsn();
            self.events_delivered += 1;
            self.last_event_at = Some(if waited { Instant::now() } else { started });
        }
        item
    }

    /// Runs one step of the cold source: its next record, or the switch to the WAL where the
    /// archive ends.
    fn take_cold_step(&mut self, step: Result<ColdStep>) {
        match step {
            Ok(ColdStep::Record(r)) => self.process_decoded(r.lsn, r.timestamp_us, r.record, None),
            Ok(ColdStep::SwitchToHot(lsn)) => match self.db.wal().reader(lsn) {
                Ok(reader) => {
                    tracing::debug!(lsn, "change stream: archive replayed, continuing from the WAL");
                    self.source = Source::Hot(reader);
                }
                Err(WalError::LsnNotFound { oldest_available, .. }) => self.fail(CdcError::SubscriptionFailed {
                    message: format!(
                        "the archive ends before LSN {lsn} but the WAL now starts at LSN {oldest_available}"
                    ),
                    source: None,
                }),
                Err(e) => self.fail(wal_error(e)),
            },
            Err(e) => self.fail(e),
        }
    }

    /// Delivers `error` after what is ready, and ends the stream.
    fn fail(&mut self, error: CdcError) {
        self.ended = true;
        self.ready.push_back(Err(error));
    }

    fn decode_error(&mut self, lsn: Lsn, message: String, raw: Option<&Record>) {
        match &self.options.decode_error_policy {
            DecodeErrorPolicy::FailEvent => self.ready.push_back(Err(CdcError::Decode { lsn, message })),
            DecodeErrorPolicy::Stop => self.fail(CdcError::Decode { lsn, message }),
            DecodeErrorPolicy::Skip => tracing::warn!(lsn, message, "skipping undecodable event"),
            DecodeErrorPolicy::DeadLetter(dlq) => {
                let raw_json = raw.map(|r| {
                    serde_json::json!({
                        "lsn": r.lsn,
                        "kind": r.kind,
                        "timestampUs": r.timestamp_us,
                        "payloadBase64": crate::codec::base64_encode(&r.payload),
                    })
                });
                let event = raw_json.unwrap_or(serde_json::json!({ "lsn": lsn }));
                if let Err(e) = dlq.push(&lsn.to_string(), Some(lsn), &event, &message, 1) {
                    // The DLQ itself failed: do not lose the error.
                    self.fail(CdcError::failed(format!("dead-lettering LSN {lsn} failed"), e));
                }
            }
        }
    }

    fn corrupt(&mut self, lsn: Lsn, message: String) {
        self.fail(CdcError::SubscriptionFailed {
            message: format!("log structure broken at LSN {lsn}: {message}"),
            source: None,
        });
    }

    fn process(&mut self, record: Record) {
        if self.skip_unwanted_change(&record) {
            return;
        }
        let lsn = record.lsn;
        match record::decode_bytes(record.kind, &record.payload) {
            Ok(decoded) => self.process_decoded(lsn, record.timestamp_us, decoded, Some(&record)),
            Err(e) => {
                self.position = lsn;
                // Keep the transaction bookkeeping consistent: an undecodable record still
                // occupies its offset.
                if let Some(txn) = &mut self.txn {
                    txn.next_offset += 1;
                }
                self.decode_error(lsn, format!("undecodable engine record (kind {}): {e}", record.kind), Some(&record));
            }
        }
    }

    /// Fast path for a row change of a table the filter does not want, inside the open
    /// transaction: decoded in place (same checks as the full decoder, nothing allocated) and
    /// accounted for exactly as [`ChangeStream::process_decoded`] does for it. Returns whether it
    /// consumed the record; anything else (other kinds, undecodable records, no open transaction)
    /// takes the full path.
    fn skip_unwanted_change(&mut self, record: &Record) -> bool {
        if self.options.filter.tables.is_none() || self.txn.is_none() {
            return false;
        }
        let Ok(Some(change)) = record::decode_row_change_ref(record.kind, &record.payload) else {
            return false;
        };
        if self.options.filter.matches_table(change.table) {
            return false;
        }
        self.position = record.lsn;
        // Bookkeeping only: a change that does not belong to the open transaction ends the
        // stream inside `check_member`, as on the full path.
        let _ = self.check_member(record.lsn, u64::from(change.seq));
        true
    }

    /// Runs one decoded record (from the WAL, or rebuilt by a cold source: `raw` is `None`)
    /// through transaction assembly, filters and masks.
    fn process_decoded(&mut self, lsn: Lsn, timestamp_us: u64, decoded: EngineRecord, raw: Option<&Record>) {
        if self.txn.is_none() && !matches!(decoded, EngineRecord::Begin(_)) {
            self.seek_back_to_begin(lsn, &decoded);
            return;
        }
        self.position = lsn;
        match decoded {
            EngineRecord::Begin(begin) => self.begin_transaction(lsn, timestamp_us, begin),
            EngineRecord::Change(change) => self.row_change(lsn, change, raw),
            EngineRecord::Schema(schema) => self.schema_change(lsn, schema),
            EngineRecord::Commit(commit) => self.commit_transaction(lsn, commit),
        }
    }

    /// A record inside a transaction whose BEGIN we have not seen (the stream started in the
    /// middle of it): go back to the BEGIN, which is always in the same segment.
    fn seek_back_to_begin(&mut self, lsn: Lsn, decoded: &EngineRecord) {
        let Some(begin_lsn) = decoded.txn_id(lsn) else {
            self.corrupt(lsn, "record names an impossible transaction".to_string());
            return;
        };
        // Only the first record read can be in the middle of a transaction; anywhere else a
        // record outside a transaction is damage. (Seeking back from there would deliver
        // transactions again, and two stray records could send the stream back and forth
        // forever.)
        if self.sought_back_for.is_some() || self.position >= self.deliver_from {
            let detail = match self.sought_back_for {
                Some(sought) if lsn == sought => format!("BEGIN of transaction {sought} is missing"),
                _ => format!("record outside any transaction (it names transaction {begin_lsn})"),
            };
            self.corrupt(lsn, detail);
            return;
        }
        self.sought_back_for = Some(begin_lsn);
        match &mut self.source {
            Source::Hot(reader) => {
                if let Err(e) = reader.seek(begin_lsn) {
                    self.fail(wal_error(e));
                }
            }
            // A cold source returns whole transactions: a missing BEGIN is its bug.
            Source::Cold(_) => self.corrupt(lsn, format!("the archive returned no BEGIN for transaction {begin_lsn}")),
        }
    }

    fn begin_transaction(&mut self, lsn: Lsn, timestamp_us: u64, begin: record::Begin) {
        if let Some(open) = &self.txn {
            let open_id = open.ctx.txn_id;
            self.corrupt(lsn, format!("BEGIN while transaction {open_id} is still open"));
            return;
        }
        self.txn = Some(OpenTxn {
            ctx: TxnContext {
                txn_id: lsn,
                commit_lsn: lsn + u64::from(begin.change_count) + 1,
                commit_timestamp_us: timestamp_us,
                namespace: begin.namespace.map(Arc::from),
                correlation_id: begin.correlation_id.map(Arc::from),
                actor: begin.actor.map(Arc::from),
            },
            change_count: begin.change_count,
            begin_lsn: lsn,
            next_offset: 1,
            begin_emitted: false,
        });
    }

    fn row_change(&mut self, lsn: Lsn, change: record::RowChange, raw: Option<&Record>) {
        let Some(txn) = self.check_member(lsn, u64::from(change.seq)) else { return };
        let txn_id = txn.ctx.txn_id;
        let op = match change.op {
            record::ChangeOp::Insert => Operation::Insert,
            record::ChangeOp::Update => Operation::Update,
            record::ChangeOp::Delete => Operation::Delete,
        };
        // The criteria that need no event first, so that filtered-out changes cost no
        // event (id, context clone); `matches_change` below checks them all again.
        let filter = &self.options.filter;
        if lsn < self.deliver_from
            || !filter.matches_txn(txn_id)
            || !filter.matches_table(&change.table)
            || filter.operations.as_ref().is_some_and(|ops| !ops.contains(&op))
        {
            return;
        }
        let Some(ctx) = self.txn.as_ref().map(|t| t.ctx.clone()) else { return };
        let event = ChangeEvent {
            id: event_id(lsn),
            op,
            table: change.table,
            lsn,
            key: change.key,
            data: change.after,
            old_data: change.before,
            txn: ctx,
        };
        if !self.options.filter.matches_change(&event) {
            return;
        }
        match self.options.filter.mask(event) {
            Ok(event) => {
                self.emit_begin_if_needed();
                self.ready.push_back(Ok(Event::Change(event)));
            }
            Err(message) => self.decode_error(lsn, message, raw),
        }
    }

    fn schema_change(&mut self, lsn: Lsn, schema: record::SchemaRecord) {
        let Some(txn) = self.check_member(lsn, u64::from(schema.seq)) else { return };
        let ctx = txn.ctx.clone();
        if lsn < self.deliver_from
            || !self.options.include_schema_changes
            || !self.options.filter.matches_table(&schema.table)
            || !self.options.filter.matches_txn(ctx.txn_id)
        {
            return;
        }
        let event = SchemaChangeEvent {
            id: event_id(lsn),
            lsn,
            table: schema.table,
            schema_version: schema.schema_version,
            change: convert_schema_change(schema.change),
            txn: ctx,
        };
        self.emit_begin_if_needed();
        self.ready.push_back(Ok(Event::Schema(event)));
    }

    fn commit_transaction(&mut self, lsn: Lsn, commit: record::Commit) {
        let Some(txn) = self.txn.take() else { return };
        if commit.change_count != txn.change_count || lsn != txn.ctx.commit_lsn {
            let id = txn.ctx.txn_id;
            self.corrupt(lsn, format!("COMMIT does not match transaction {id}"));
            return;
        }
        if txn.begin_emitted && lsn >= self.deliver_from {
            self.ready.push_back(Ok(Event::Transaction(TransactionEvent {
                kind: TransactionEventKind::Commit,
                lsn,
                change_count: txn.change_count,
                txn: txn.ctx,
            })));
        }
    }

    /// Checks that a change belongs to the open transaction at the expected offset.
    fn check_member(&mut self, lsn: Lsn, offset: u64) -> Option<&mut OpenTxn> {
        let ok = match &self.txn {
            Some(txn) => {
                lsn == txn.begin_lsn + offset && offset == txn.next_offset && offset <= u64::from(txn.change_count)
            }
            None => false,
        };
        if !ok {
            self.corrupt(lsn, "change does not belong to the open transaction".to_string());
            return None;
        }
        let txn = self.txn.as_mut().expect("checked");
        txn.next_offset += 1;
        Some(txn)
    }

    /// With transaction control on, delivers the BEGIN before the first delivered change of a
    /// transaction (so filtered-out transactions produce no empty BEGIN/COMMIT pairs).
    fn emit_begin_if_needed(&mut self) {
        if !self.options.include_transaction_control {
            return;
        }
        if let Some(txn) = &mut self.txn
            && !txn.begin_emitted
        {
            txn.begin_emitted = true;
            self.ready.push_back(Ok(Event::Transaction(TransactionEvent {
                kind: TransactionEventKind::Begin,
                lsn: txn.begin_lsn,
                change_count: txn.change_count,
                txn: txn.ctx.clone(),
            })));
        }
    }
}

fn convert_column(c: record::Column) -> ColumnDef {
    ColumnDef { name: c.name, data_type: c.data_type, nullable: c.nullable }
}

fn convert_schema_change(change: record::SchemaChange) -> SchemaChange {
    match change {
        record::SchemaChange::CreateTable { columns } => {
            SchemaChange::CreateTable { columns: columns.into_iter().map(convert_column).collect() }
        }
        record::SchemaChange::AddColumn { column } => SchemaChange::AddColumn { column: convert_column(column) },
        record::SchemaChange::DropColumn { name } => SchemaChange::DropColumn { name },
        record::SchemaChange::AlterColumn { name, column } => {
            SchemaChange::AlterColumn { name, column: convert_column(column) }
        }
        record::SchemaChange::DropTable => SchemaChange::DropTable,
    }
}

impl Iterator for ChangeStream {
    type Item = Result<Event>;

    /// Blocks until the next event (live tail); `None` only when the stream has ended.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.next_within(Duration::from_millis(250)) {
                return Some(item);
            }
            if self.ended {
                return None;
            }
        }
    }
}

/// An event's id: its LSN in decimal (`itoa`, one exact-size allocation, no formatter).
fn event_id(lsn: Lsn) -> String {
    itoa::Buffer::new().format(lsn).to_owned()
}
