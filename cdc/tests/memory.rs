//! A slow consumer over a large log keeps memory bounded: the WAL is the buffer.
//!
//! About 150 MiB of changes are written (32 KiB payloads, so the record count stays small in
//! debug builds), then consumed slowly through `subscribe_async` with a small buffer and through
//! a blocking `ChangeStream`, while more commits keep coming. At every step the async buffer holds
//! at most `buffer_capacity` events and the blocking stream at most a couple, and the process's
//! anonymous RSS (`RssAnon`: heap and stacks; the log's `mmap`ed pages are file-backed and do not
//! count) grows by far less than the log's size. Everything is in one test, so no other test of
//! this binary allocates at the same time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use walden_cdc::{Cdc, ChangeEvent, Event, SubscriptionOptions};
use walden_engine::{Config, Database, SyncMode, WalConfig};

mod common;
use common::temp_db;

const PAYLOAD_BYTES: usize = 32 << 10;
const CHANGES_PER_TXN: u64 = 4;
/// Transactions written before consuming: 1100 × 4 × 32 KiB ≈ 138 MiB.
const INITIAL_TXNS: u64 = 1100;
/// Transactions written while each consumer runs: 100 × 4 × 32 KiB ≈ 12.5 MiB each.
const CONCURRENT_TXNS: u64 = 100;
const ASYNC_CAPACITY: usize = 8;
/// Anonymous memory the whole test may add on top of what the process had at its start.
const RSS_ANON_BOUND_BYTES: u64 = 40 << 20;

/// The process's anonymous resident memory, in bytes (`RssAnon` in `/proc/self/status`).
fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon in /proc/self/status");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("RssAnon value");
    kib * 1024
}

/// Tracks the peak of `RssAnon` above a baseline.
struct RssWatch {
    baseline: u64,
    peak: u64,
}

impl RssWatch {
    fn new() -> RssWatch {
        let baseline = rss_anon_bytes();
        RssWatch { baseline, peak: baseline }
    }

    fn sample(&mut self, what: &str) {
        let now = rss_anon_bytes();
        self.peak = self.peak.max(now);
        assert!(
            now.saturating_sub(self.baseline) < RSS_ANON_BOUND_BYTES,
            "{what}: anonymous RSS grew by {} MiB (baseline {} MiB)",
            (now - self.baseline) >> 20,
            self.baseline >> 20
        );
    }

    fn growth_bytes(&self) -> u64 {
        self.peak - self.baseline
    }
}

/// A payload stamped with its position: `txn` and `change` in the first 16 bytes, then a fixed
/// pseudo-random (incompressible) filler.
fn payload(filler: &[u8], txn: u64, change: u64) -> Vec<u8> {
    let mut p = filler.to_vec();
    p[..8].copy_from_slice(&txn.to_le_bytes());
    p[8..16].copy_from_slice(&change.to_le_bytes());
    p
}

fn filler() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..PAYLOAD_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Commits transactions `range`, each with `CHANGES_PER_TXN` inserts of stamped payloads.
fn write(db: &Database, filler: &[u8], range: std::ops::Range<u64>) {
    for txn in range {
        let mut t = db.begin();
        for change in 0..CHANGES_PER_TXN {
            let key = (txn * CHANGES_PER_TXN + change).to_be_bytes();
            t.insert("blobs", &key, &payload(filler, txn, change)).unwrap();
        }
        t.commit().unwrap();
    }
}

/// Checks that `change` is the `seq`-th change ever written, with its payload intact.
fn check_change(change: &ChangeEvent, seq: u64, filler: &[u8]) {
    let (txn, c) = (seq / CHANGES_PER_TXN, seq % CHANGES_PER_TXN);
    assert_eq!(change.key.as_ref(), seq.to_be_bytes(), "change {seq} out of order");
    let data = change.data.as_ref().expect("inserts have data");
    assert_eq!(data.len(), PAYLOAD_BYTES);
    assert_eq!(&data[..8], txn.to_le_bytes());
    assert_eq!(&data[8..16], c.to_le_bytes());
    assert_eq!(&data[16..64], &filler[16..64]);
}

#[test]
fn slow_consumers_keep_memory_bounded_over_a_large_log() {
    let started = Instant::now();
    let filler = Arc::new(filler());
    let mut rss = RssWatch::new();
    let config = Config {
        wal: WalConfig { target_segment_size_bytes: 16 << 20, sync_mode: SyncMode::None, ..WalConfig::default() },
        ..Config::default()
    };
    let (_dir, db) = temp_db(config);
    write(&db, &filler, 0..INITIAL_TXNS);
    rss.sample("after writing");
    let write_time = started.elapsed();
    let cdc = Cdc::new(db.clone());

    // 1. Async, with a small buffer, consumed slowly while a writer keeps committing.
    let writer = {
        let (db, filler) = (db.clone(), filler.clone());
        std::thread::spawn(move || write(&db, &filler, INITIAL_TXNS..INITIAL_TXNS + CONCURRENT_TXNS))
    };
    let total = (INITIAL_TXNS + CONCURRENT_TXNS) * CHANGES_PER_TXN;
    let options = SubscriptionOptions { buffer_capacity: ASYNC_CAPACITY, ..SubscriptionOptions::from_lsn(0) };
    let mut sub = cdc.subscribe_async(options).unwrap();
    let mut max_buffered = 0;
    futures::executor::block_on(async {
        let mut seq = 0;
        while seq < total {
            let event = sub.next().await.expect("the stream goes on").unwrap();
            let Event::Change(change) = event else { panic!("only row changes were written") };
            check_change(&change, seq, &filler);
            drop(change);
            seq += 1;
            if seq % 16 == 0 {
                // The slow part: the reader thread runs ahead until the buffer is full.
                std::thread::sleep(Duration::from_millis(1));
            }
            let buffered = sub.buffered_events();
            max_buffered = max_buffered.max(buffered);
            assert!(buffered <= ASYNC_CAPACITY, "async buffer holds {buffered} > {ASYNC_CAPACITY} events");
            if seq % 256 == 0 {
                rss.sample("async consumer");
            }
        }
    });
    assert!(max_buffered >= ASYNC_CAPACITY / 2, "the consumer was never slow enough to fill the buffer");
    drop(sub);
    writer.join().unwrap();
    let async_time = started.elapsed() - write_time;

    // 2. A blocking stream over the whole log, slow too, while more commits come.
    let first_concurrent = INITIAL_TXNS + CONCURRENT_TXNS;
    let writer = {
        let (db, filler) = (db.clone(), filler.clone());
        std::thread::spawn(move || write(&db, &filler, first_concurrent..first_concurrent + CONCURRENT_TXNS))
    };
    let total = (first_concurrent + CONCURRENT_TXNS) * CHANGES_PER_TXN;
    let mut stream = cdc.subscribe(SubscriptionOptions::from_lsn(0)).unwrap();
    let mut max_stream_buffered = 0;
    for seq in 0..total {
        let event = stream.next_timeout(Duration::from_secs(10)).expect("no stall").unwrap();
        let Event::Change(change) = event else { panic!("only row changes were written") };
        check_change(&change, seq, &filler);
        max_stream_buffered = max_stream_buffered.max(stream.buffered());
        assert!(stream.buffered() <= 2, "the blocking stream buffered {} events", stream.buffered());
        if seq % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if seq % 256 == 0 {
            rss.sample("blocking consumer");
        }
    }
    writer.join().unwrap();
    rss.sample("end");

    let log_bytes: u64 = db.segments().iter().map(|s| s.size_bytes).sum();
    println!(
        "log {} MiB; anonymous RSS grew by at most {} MiB; async buffer peak {max_buffered}/{ASYNC_CAPACITY}; \
         blocking stream buffer peak {max_stream_buffered}; write {write_time:?}, async {async_time:?}, total {:?}",
        log_bytes >> 20,
        rss.growth_bytes() >> 20,
        started.elapsed()
    );
    assert!(log_bytes >= 3 * RSS_ANON_BOUND_BYTES, "the log ({log_bytes} bytes) must dwarf the memory bound");
}
