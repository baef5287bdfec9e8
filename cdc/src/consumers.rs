//! Ways to consume a [`ChangeStream`]: typed payloads, batches, an async `futures::Stream`, and a
//! callback stream with pause / resume / stop and status.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{SinkExt, Stream};
use parking_lot::{Condvar, Mutex};

use walden_wal::clock::now_us;

use crate::Lsn;
use crate::codec::PayloadDecoder;
use crate::envelope::NativeEvent;
use crate::error::{CdcError, Result};
use crate::event::{ChangeEvent, Event, SchemaChangeEvent, TransactionEvent};
use crate::stream::{ChangeStream, DecodeErrorPolicy, OverflowPolicy};

/// How long a background reader waits for new commits before re-checking whether its consumer
/// has gone away. Wake-ups for new commits are immediate; this only bounds shutdown latency.
const BACKGROUND_WAIT: Duration = Duration::from_millis(100);

/// Change events with payloads decoded into `T` (see [`crate::Cdc::subscribe_typed`]).
/// Undecodable payloads are handled by the subscription's [`DecodeErrorPolicy`].
pub struct TypedStream<T> {
    inner: ChangeStream,
    decoder: Arc<dyn PayloadDecoder<T>>,
}

impl<T> TypedStream<T> {
    pub(crate) fn new(inner: ChangeStream, decoder: Arc<dyn PayloadDecoder<T>>) -> Self {
        TypedStream { inner, decoder }
    }

    /// The underlying stream (position, lag, ...).
    pub fn inner(&self) -> &ChangeStream {
        &self.inner
    }

    fn convert(&mut self, item: Result<Event>) -> Option<Result<Event<T>>> {
        let event = match item {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let converted = match event {
            Event::Change(c) => {
                // Decode by reference, so that a failure still has the undecoded event to
                // dead-letter.
                let data = c.data.as_ref().map(|b| self.decoder.decode(b)).transpose();
                let old_data = c.old_data.as_ref().map(|b| self.decoder.decode(b)).transpose();
                match (data, old_data) {
                    (Ok(data), Ok(old_data)) => Ok(Event::Change(ChangeEvent {
                        id: c.id,
                        op: c.op,
                        table: c.table,
                        lsn: c.lsn,
                        key: c.key,
                        data,
                        old_data,
                        txn: c.txn,
                    })),
                    (Err(message), _) | (_, Err(message)) => Err((c, message)),
                }
            }
            Event::Transaction(t) => Ok(Event::Transaction(t)),
            Event::Schema(s) => Ok(Event::Schema(s)),
        };
        match converted {
            Ok(e) => Some(Ok(e)),
            Err((change, message)) => match self.inner.policy() {
                DecodeErrorPolicy::Skip => {
                    tracing::warn!(lsn = change.lsn, message, "skipping undecodable event");
                    None
                }
                DecodeErrorPolicy::DeadLetter(dlq) => {
                    // The undecoded change in the native envelope (row images as JSON, text or
                    // base64), so the entry can be inspected and retried without the log.
                    let lsn = change.lsn;
                    let event = NativeEvent::from_event(&Event::Change(change));
                    match dlq.push(&lsn.to_string(), Some(lsn), &event, &message, 1) {
                        Ok(_) => None,
                        Err(e) => Some(Err(CdcError::failed(format!("dead-lettering LSN {lsn} failed"), e))),
                    }
                }
                DecodeErrorPolicy::FailEvent => Some(Err(CdcError::Decode { lsn: change.lsn, message })),
                DecodeErrorPolicy::Stop => {
                    self.inner.end();
                    Some(Err(CdcError::Decode { lsn: change.lsn, message }))
                }
            },
        }
    }

    /// The next event within `timeout` (see [`ChangeStream::next_timeout`]).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Event<T>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let item = self.inner.next_timeout(deadline.saturating_duration_since(Instant::now()))?;
            if let Some(out) = self.convert(item) {
                return Some(out);
            }
        }
    }
}

impl<T> Iterator for TypedStream<T> {
    type Item = Result<Event<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = self.inner.next()?;
            if let Some(out) = self.convert(item) {
                return Some(out);
            }
        }
    }
}

/// Limits of a batched subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most events in one batch (default 100).
    pub max_batch_size: usize,
    /// A non-empty batch is delivered at the latest this long after its first event (default 1 s).
    pub max_batch_age: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { max_batch_size: 100, max_batch_age: Duration::from_secs(1) }
    }
}

/// A batch of events with its LSN range.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch {
    /// The events, in LSN order.
    pub events: Vec<Event>,
    /// LSN of the first event.
    pub first_lsn: Lsn,
    /// LSN of the last event.
    pub last_lsn: Lsn,
}

/// Groups a stream's events into batches (see [`crate::Cdc::subscribe_batched`]).
#[derive(Debug)]
pub struct BatchedStream {
    inner: ChangeStream,
    options: BatchOptions,
}

impl BatchedStream {
    pub(crate) fn new(inner: ChangeStream, options: BatchOptions) -> Self {
        let options = BatchOptions { max_batch_size: options.max_batch_size.max(1), ..options };
        BatchedStream { inner, options }
    }

    /// The underlying stream.
    pub fn inner(&self) -> &ChangeStream {
        &self.inner
    }

    /// The next batch: waits up to `idle_timeout` for a first event, then fills the batch until it
    /// is full or `max_batch_age` has passed since the first event. An error ends the batch early
    /// (the events before it are returned first; the error on the following call).
    pub fn next_batch(&mut self, idle_timeout: Duration) -> Option<Result<EventBatch>> {
        let first = match self.inner.next_timeout(idle_timeout)? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let started = Instant::now();
        let mut events = vec![first];
        while events.len() < self.options.max_batch_size {
            let remaining = self.options.max_batch_age.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            match self.inner.next_timeout(remaining) {
                Some(Ok(e)) => events.push(e),
                Some(Err(e)) => {
                    self.inner.push_front(Err(e));
                    break;
                }
                None => break,
            }
        }
        let first_lsn = events.first().map(Event::lsn).unwrap_or(0);
        let last_lsn = events.last().map(Event::lsn).unwrap_or(0);
        Some(Ok(EventBatch { events, first_lsn, last_lsn }))
    }
}

/// The signal a sink can act on: how full the buffer between the log reader and the consumer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackpressureSignal {
    /// Below three quarters of capacity: go at full speed.
    Resume,
    /// At least three quarters full: the consumer is falling behind.
    SlowDown,
    /// Full: the reader has stopped reading the log until the consumer catches up.
    Pause,
}

impl BackpressureSignal {
    /// The signal for `buffered` events out of `capacity`.
    pub fn for_fill(buffered: usize, capacity: usize) -> BackpressureSignal {
        if buffered >= capacity {
            BackpressureSignal::Pause
        } else if buffered * 4 >= capacity * 3 {
            BackpressureSignal::SlowDown
        } else {
            BackpressureSignal::Resume
        }
    }
}

/// An async `futures::Stream` of events, fed by a reader thread through a bounded channel; when
/// the channel is full the reader stops reading the log (the WAL is the buffer), or, with
/// [`OverflowPolicy::Fail`], the stream ends after the buffered events with `BUFFER_OVERFLOW`.
/// Runtime agnostic: it is woken by the channel, which the reader fills as commits arrive.
pub struct AsyncSubscription {
    receiver: mpsc::Receiver<Result<Event>>,
    buffered: Arc<AtomicUsize>,
    capacity: usize,
    stop: Arc<AtomicBool>,
    /// Set by the reader thread (before it drops the sender) when it ended on a full buffer.
    overflow: Arc<Mutex<Option<CdcError>>>,
    thread: Option<JoinHandle<()>>,
}

impl AsyncSubscription {
    /// Starts the reader thread; `SUBSCRIPTION_FAILED` (with the I/O error) if it cannot start.
    pub(crate) fn spawn(stream: ChangeStream, capacity: usize, policy: OverflowPolicy) -> Result<AsyncSubscription> {
        let capacity = capacity.max(1);
        // mpsc::channel(n) holds n + number of senders; one sender, so capacity - 1 + 1.
        let (sender, receiver) = mpsc::channel(capacity.saturating_sub(1));
        let reader = AsyncReader {
            stream,
            sender,
            capacity,
            policy,
            buffered: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            overflow: Arc::new(Mutex::new(None)),
            delivered_through: None,
        };
        let (buffered, stop, overflow) = (reader.buffered.clone(), reader.stop.clone(), reader.overflow.clone());
        let thread = std::thread::Builder::new()
            .name("walden-cdc-async".into())
            .spawn(move || reader.run())
            .map_err(|e| CdcError::failed("spawning the CDC reader thread failed", e))?;
        Ok(AsyncSubscription { receiver, buffered, capacity, stop, overflow, thread: Some(thread) })
    }

    /// Events read from the log and not yet taken by the consumer.
    pub fn buffered_events(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// The current backpressure signal.
    pub fn backpressure(&self) -> BackpressureSignal {
        BackpressureSignal::for_fill(self.buffered_events(), self.capacity)
    }
}

impl Stream for AsyncSubscription {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.receiver).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                self.buffered.fetch_sub(1, Ordering::AcqRel);
                Poll::Ready(Some(item))
            }
            // The reader ended; if it ended on a full buffer, say so once, after every event.
            Poll::Ready(None) => Poll::Ready(self.overflow.lock().take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AsyncSubscription {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.receiver.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reader thread of an [`AsyncSubscription`]: moves events from the stream into the channel
/// until the consumer goes away, the stream ends, or (with [`OverflowPolicy::Fail`]) the channel
/// is full.
struct AsyncReader {
    stream: ChangeStream,
    sender: mpsc::Sender<Result<Event>>,
    capacity: usize,
    policy: OverflowPolicy,
    buffered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Set (before the sender is dropped) when the reader ended on a full buffer.
    overflow: Arc<Mutex<Option<CdcError>>>,
    /// LSN of the last event the consumer was handed (for the overflow error).
    delivered_through: Option<Lsn>,
}

impl AsyncReader {
    fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) && !self.sender.is_closed() {
            let Some(item) = self.stream.next_timeout(BACKGROUND_WAIT) else {
                if self.stream.is_ended() {
                    break;
                }
                continue;
            };
            let item_lsn = item.as_ref().ok().map(Event::lsn);
            if !self.send(item, item_lsn) {
                break;
            }
            if item_lsn.is_some() {
                debug_assert!(self.delivered_through < item_lsn, "events go out in LSN order");
                self.delivered_through = item_lsn;
            }
        }
    }

    /// Hands `item` to the channel as the overflow policy says; `false` when the reader must stop
    /// (the consumer went away, or the buffer is full under [`OverflowPolicy::Fail`]).
    fn send(&mut self, item: Result<Event>, item_lsn: Option<Lsn>) -> bool {
        self.buffered.fetch_add(1, Ordering::AcqRel);
        match self.policy {
            OverflowPolicy::Backpressure => futures::executor::block_on(self.sender.send(item)).is_ok(),
            OverflowPolicy::Fail => match self.sender.try_send(item) {
                Ok(()) => true,
                Err(e) if e.is_full() => {
                    self.buffered.fetch_sub(1, Ordering::AcqRel);
                    let resume_lsn = item_lsn.or(self.delivered_through.map(|l| l + 1)).unwrap_or(0);
                    *self.overflow.lock() = Some(CdcError::BufferOverflow(format!(
                        "the consumer fell behind: {} events buffered and not taken; \
                         delivery stopped before LSN {resume_lsn}: subscribe again from it",
                        self.capacity
                    )));
                    false
                }
                Err(_) => false,
            },
        }
    }
}

/// Callbacks of a [`CallbackStream`]. Every method has a default that does nothing.
pub trait ChangeHandler: Send + 'static {
    /// A row change. Returning an error reports it to `on_error`; the stream goes on.
    fn on_change(&mut self, event: &ChangeEvent) -> std::result::Result<(), String> {
        let _ = event;
        Ok(())
    }
    /// A BEGIN or COMMIT (with `include_transaction_control`).
    fn on_transaction(&mut self, event: &TransactionEvent) {
        let _ = event;
    }
    /// A schema change.
    fn on_schema_change(&mut self, event: &SchemaChangeEvent) {
        let _ = event;
    }
    /// An error from the stream or from `on_change`.
    fn on_error(&mut self, error: &CdcError) {
        let _ = error;
    }
    /// The stream ended (stopped, end LSN reached, or a fatal error).
    fn on_end(&mut self) {}
    /// The backpressure signal changed.
    fn on_backpressure(&mut self, signal: BackpressureSignal) {
        let _ = signal;
    }
}

/// A snapshot of a callback stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    /// Running (not stopped or ended).
    pub active: bool,
    /// Paused by [`CallbackStream::pause`].
    pub paused: bool,
    /// LSN of the last record the stream consumed.
    pub current_lsn: Lsn,
    /// Events handed to the handler.
    pub processed: u64,
    /// Events decoded and waiting.
    pub buffered: usize,
    /// When the last event was handled, µs since the Unix epoch (0: none yet).
    pub last_event_time_us: u64,
    /// LSNs between the stream and the visible end of the log.
    pub lag_lsns: u64,
}

#[derive(Debug, Default)]
struct Shared {
    paused: Mutex<bool>,
    resume: Condvar,
    stop: AtomicBool,
    ended: AtomicBool,
    processed: AtomicU64,
    current_lsn: AtomicU64,
    buffered: AtomicUsize,
    last_event_time_us: AtomicU64,
    lag_lsns: AtomicU64,
}

/// Runs a [`ChangeHandler`] on its own thread over a stream, with pause / resume / stop and
/// [`CallbackStream::status`]. Pausing stops reading the log (nothing is dropped or buffered).
pub struct CallbackStream {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl CallbackStream {
    /// Starts the handler's thread; `SUBSCRIPTION_FAILED` (with the I/O error) if it cannot start.
    pub(crate) fn start<H: ChangeHandler>(stream: ChangeStream, handler: H) -> Result<CallbackStream> {
        let shared = Arc::new(Shared::default());
        let runner =
            CallbackRunner { stream, handler, shared: shared.clone(), last_signal: BackpressureSignal::Resume };
        let thread = std::thread::Builder::new()
            .name("walden-cdc-callbacks".into())
            .spawn(move || runner.run())
            .map_err(|e| CdcError::failed("spawning the CDC callback thread failed", e))?;
        Ok(CallbackStream { shared, thread: Some(thread) })
    }

    /// Stops handing out events (and reading the log) until [`CallbackStream::resume`].
    pub fn pause(&self) {
        *self.shared.paused.lock() = true;
    }

    /// Resumes after [`CallbackStream::pause`].
    pub fn resume(&self) {
        *self.shared.paused.lock() = false;
        self.shared.resume.notify_all();
    }

    /// Stops the stream and waits for the handler's `on_end`.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.resume.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// A snapshot of the stream's state.
    pub fn status(&self) -> StreamStatus {
        let s = &self.shared;
        StreamStatus {
            active: !s.ended.load(Ordering::Acquire) && !s.stop.load(Ordering::Acquire),
            paused: *s.paused.lock(),
            current_lsn: s.current_lsn.load(Ordering::Acquire),
            processed: s.processed.load(Ordering::Acquire),
            buffered: s.buffered.load(Ordering::Acquire),
            last_event_time_us: s.last_event_time_us.load(Ordering::Acquire),
            lag_lsns: s.lag_lsns.load(Ordering::Acquire),
        }
    }
}

/// The thread of a [`CallbackStream`]: hands the stream's events to the handler, honouring
/// pause / stop, and publishes the status.
struct CallbackRunner<H> {
    stream: ChangeStream,
    handler: H,
    shared: Arc<Shared>,
    last_signal: BackpressureSignal,
}

impl<H: ChangeHandler> CallbackRunner<H> {
    fn run(mut self) {
        loop {
            self.wait_while_paused();
            if self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            let item = self.stream.next_timeout(BACKGROUND_WAIT);
            self.publish_status();
            let Some(item) = item else {
                if self.stream.is_ended() {
                    break;
                }
                continue;
            };
            match item {
                Ok(event) => self.dispatch(&event),
                Err(e) => self.handler.on_error(&e),
            }
        }
        self.shared.ended.store(true, Ordering::Release);
        self.handler.on_end();
    }

    fn wait_while_paused(&self) {
        let s = &self.shared;
        let mut paused = s.paused.lock();
        while *paused && !s.stop.load(Ordering::Acquire) {
            s.resume.wait_for(&mut paused, BACKGROUND_WAIT);
        }
    }

    /// Position, buffer and lag for [`CallbackStream::status`]; tells the handler when the
    /// backpressure signal changes.
    fn publish_status(&mut self) {
        let (s, stream) = (&self.shared, &self.stream);
        s.current_lsn.store(stream.position(), Ordering::Release);
        s.buffered.store(stream.buffered(), Ordering::Release);
        s.lag_lsns.store(stream.lag_lsns(), Ordering::Release);
        let signal = if stream.lag_lsns() > 0 && stream.buffered() > 0 {
            BackpressureSignal::SlowDown
        } else {
            BackpressureSignal::Resume
        };
        if signal != self.last_signal {
            self.handler.on_backpressure(signal);
            self.last_signal = signal;
        }
    }

    fn dispatch(&mut self, event: &Event) {
        let handler = &mut self.handler;
        match event {
            Event::Change(c) => {
                if let Err(message) = handler.on_change(c) {
                    handler.on_error(&CdcError::SubscriptionFailed {
                        message: format!("handler failed at LSN {}: {message}", c.lsn),
                        source: None,
                    });
                }
            }
            Event::Transaction(t) => handler.on_transaction(t),
            Event::Schema(sc) => handler.on_schema_change(sc),
        }
        self.shared.processed.fetch_add(1, Ordering::AcqRel);
        self.shared.last_event_time_us.store(now_us(), Ordering::Release);
    }
}

impl Drop for CallbackStream {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
