//! The backpressure signal sinks act on. The async subscription's signal follows how full its
//! bounded buffer is (resume below three quarters, slow down from three quarters, pause when full,
//! with the reader then stopped); the callback stream reports slow-down while its handler is
//! behind the log and resume once it has caught up. No timing is asserted: each check waits
//! (bounded) for a state the reader must reach.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use walden_cdc::{
    AsyncSubscription, BackpressureSignal, Cdc, CdcError, CdcErrorCode, ChangeHandler, OverflowPolicy,
    SubscriptionOptions,
};
use walden_engine::{Config, Database, SyncMode};

mod common;
use common::{commit_insert, memory_db};

const CAPACITY: usize = 8;
const EVENTS: usize = 20;

fn db_with_inserts(n: usize) -> Arc<Database> {
    let db = memory_db(Config::with_sync_mode(SyncMode::None));
    for i in 0..n {
        commit_insert(&db, "t", &(i as u32).to_be_bytes(), b"{}");
    }
    db
}

/// Waits (up to 30 s) until the reader thread has filled the buffer to `expected` events.
fn wait_for_buffered(sub: &AsyncSubscription, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sub.buffered_events() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(sub.buffered_events(), expected, "the reader did not reach {expected} buffered events");
}

#[test]
fn the_signal_thresholds() {
    use BackpressureSignal::*;
    let signals: Vec<_> = (0..=9).map(|n| BackpressureSignal::for_fill(n, 8)).collect();
    assert_eq!(signals, [Resume, Resume, Resume, Resume, Resume, Resume, SlowDown, SlowDown, Pause, Pause]);
    assert_eq!(BackpressureSignal::for_fill(0, 1), Resume);
    assert_eq!(BackpressureSignal::for_fill(1, 1), Pause);
}

#[test]
fn a_full_async_buffer_pauses_the_reader_and_draining_it_resumes() {
    let db = db_with_inserts(EVENTS);
    let cdc = Cdc::new(db.clone());
    let end_lsn = db.wal().next_lsn() - 1;
    let options =
        SubscriptionOptions { buffer_capacity: CAPACITY, end_lsn: Some(end_lsn), ..SubscriptionOptions::default() };
    let mut sub = cdc.subscribe_async(options).unwrap();

    // Nobody consumes: the reader fills the buffer and stops there (the log holds the rest).
    wait_for_buffered(&sub, CAPACITY);
    assert_eq!(sub.backpressure(), BackpressureSignal::Pause);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(sub.buffered_events(), CAPACITY, "a full buffer stops the reader");

    let mut taken = Vec::new();
    let mut take = |sub: &mut AsyncSubscription| {
        let event = futures::executor::block_on(sub.next()).expect("more events").unwrap();
        taken.push(event.as_change().unwrap().lsn);
    };
    // Taking events lets the reader refill the buffer until the log is exhausted.
    for _ in 0..EVENTS - CAPACITY {
        take(&mut sub);
    }
    wait_for_buffered(&sub, CAPACITY);
    assert_eq!(sub.backpressure(), BackpressureSignal::Pause);
    // Now the buffer drains: 7 and 6 of 8 → slow down, 5 → resume.
    for (left, signal) in [
        (7, BackpressureSignal::SlowDown),
        (6, BackpressureSignal::SlowDown),
        (5, BackpressureSignal::Resume),
        (0, BackpressureSignal::Resume),
    ] {
        while sub.buffered_events() > left {
            take(&mut sub);
        }
        assert_eq!((sub.buffered_events(), sub.backpressure()), (left, signal));
    }
    assert!(futures::executor::block_on(sub.next()).is_none(), "the stream ends at end_lsn");
    // Nothing was dropped or reordered on the way.
    let expected: Vec<u64> = (0..EVENTS as u64).map(|i| 3 * i + 2).collect();
    assert_eq!(taken, expected);
}

#[test]
fn with_the_fail_policy_a_full_buffer_ends_the_stream_with_buffer_overflow_and_loses_nothing() {
    let db = db_with_inserts(EVENTS);
    let cdc = Cdc::new(db.clone());
    let end_lsn = db.wal().next_lsn() - 1;
    let options = |from_lsn| SubscriptionOptions {
        from_lsn,
        buffer_capacity: CAPACITY,
        overflow_policy: OverflowPolicy::Fail,
        end_lsn: Some(end_lsn),
        ..SubscriptionOptions::default()
    };
    let mut sub = cdc.subscribe_async(options(0)).unwrap();
    // Nobody consumes: the reader fills the buffer, finds it full and gives up.
    wait_for_buffered(&sub, CAPACITY);
    let mut first = Vec::new();
    let error = loop {
        match futures::executor::block_on(sub.next()).expect("events, then the error") {
            Ok(event) => first.push(event.lsn()),
            Err(e) => break e,
        }
    };
    assert_eq!(first.len(), CAPACITY, "every buffered event is delivered before the error");
    assert_eq!(error.code(), CdcErrorCode::BufferOverflow);
    assert_eq!(error.code().as_str(), "BUFFER_OVERFLOW");
    let CdcError::BufferOverflow(message) = &error else { panic!("{error:?}") };
    let next_change = first.last().unwrap() + 3; // one insert per transaction: BEGIN, INSERT, COMMIT
    assert!(message.contains(&format!("before LSN {next_change}")), "{message}");
    assert!(futures::executor::block_on(sub.next()).is_none(), "the stream ends after the error");
    assert_eq!(sub.buffered_events(), 0);

    // Resuming from the LSN the error names delivers the rest: nothing lost, nothing twice.
    let rest_sub = cdc.subscribe_async(SubscriptionOptions { buffer_capacity: 1024, ..options(next_change) }).unwrap();
    let rest: Vec<u64> = futures::executor::block_on(rest_sub.map(|e| e.unwrap().lsn()).collect());
    let all: Vec<u64> = first.into_iter().chain(rest).collect();
    let expected: Vec<u64> = (0..EVENTS as u64).map(|i| 3 * i + 2).collect();
    assert_eq!(all, expected);
}

#[derive(Default)]
struct Signals {
    seen: Arc<Mutex<Vec<BackpressureSignal>>>,
    changes: Arc<Mutex<usize>>,
}

impl ChangeHandler for Signals {
    fn on_change(&mut self, _event: &walden_cdc::ChangeEvent) -> Result<(), String> {
        *self.changes.lock() += 1;
        Ok(())
    }
    fn on_backpressure(&mut self, signal: BackpressureSignal) {
        self.seen.lock().push(signal);
    }
}

#[test]
fn the_callback_stream_signals_slow_down_while_behind_and_resume_once_caught_up() {
    let db = db_with_inserts(EVENTS);
    let cdc = Cdc::new(db.clone());
    let handler = Signals::default();
    let (seen, changes) = (handler.seen.clone(), handler.changes.clone());
    let options = SubscriptionOptions::default().with_transaction_control(true);
    let stream = cdc.stream_callbacks(options, handler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (*changes.lock() < EVENTS || seen.lock().last() != Some(&BackpressureSignal::Resume))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    stream.stop();
    let seen = seen.lock().clone();
    assert_eq!(*changes.lock(), EVENTS);
    assert_eq!(seen.first(), Some(&BackpressureSignal::SlowDown), "behind a pre-written log: {seen:?}");
    assert_eq!(seen.last(), Some(&BackpressureSignal::Resume), "caught up: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "only changes are reported: {seen:?}");
}
