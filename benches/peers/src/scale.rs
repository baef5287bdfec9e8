//! Sizes of a run: the full comparison and the smoke run.

use std::time::Duration;

/// Sizes and times of one run of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// `"full"` or `"smoke"`.
    pub name: &'static str,
    /// Small record: an 8-byte key plus value, 128 bytes in all.
    pub small_record_bytes: usize,
    /// Large record: 4 KiB including the 8-byte key.
    pub large_record_bytes: usize,
    /// Concurrent committers for the group-commit workload.
    pub committer_threads: Vec<usize>,
    /// Rows in the large transaction (the small one has 1).
    pub large_txn_rows: usize,
    /// Length of one contender's turn in a round of a rate workload.
    pub slice: Duration,
    /// Rounds of a rate workload; every contender gets one slice per round, in a random order,
    /// so all of them see the same phases of the disk.
    pub rounds: u32,
    /// Records written and then replayed from the start.
    pub replay_records: u64,
    /// Rows per transaction when loading the replay and reopen fixtures.
    pub load_txn_rows: usize,
    /// Bytes written before the reopen is timed (1 GiB), in records of `large_record_bytes`.
    pub reopen_log_bytes: u64,
}

impl Scale {
    /// The full comparison `BENCHMARKS.md` reports.
    pub fn full() -> Scale {
        Scale {
            name: "full",
            small_record_bytes: 128,
            large_record_bytes: 4096,
            committer_threads: vec![1, 8, 64],
            large_txn_rows: 100,
            slice: Duration::from_millis(250),
            rounds: 8,
            replay_records: 1_000_000,
            load_txn_rows: 1000,
            reopen_log_bytes: 1 << 30,
        }
    }

    /// Tiny sizes: every workload runs for a few milliseconds, to prove the harness and its
    /// checks still work (`cargo test`).
    pub fn smoke() -> Scale {
        Scale {
            name: "smoke",
            slice: Duration::from_millis(5),
            rounds: 2,
            replay_records: 3_000,
            load_txn_rows: 100,
            reopen_log_bytes: 1 << 20,
            ..Scale::full()
        }
    }

    /// `self` with `WALDEN_PEERS_SLICE_MS`, `WALDEN_PEERS_ROUNDS`, `WALDEN_PEERS_REPLAY_RECORDS`
    /// and `WALDEN_PEERS_REOPEN_MIB` applied where set.
    pub fn with_env_overrides(mut self) -> Scale {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&n| n > 0);
        if let Some(ms) = num("WALDEN_PEERS_SLICE_MS") {
            self.slice = Duration::from_millis(ms);
        }
        if let Some(r) = num("WALDEN_PEERS_ROUNDS") {
            self.rounds = r.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(n) = num("WALDEN_PEERS_REPLAY_RECORDS") {
            self.replay_records = n;
        }
        if let Some(mib) = num("WALDEN_PEERS_REOPEN_MIB") {
            self.reopen_log_bytes = mib << 20;
        }
        self
    }

    /// Records in the reopen fixture.
    pub fn reopen_records(&self) -> u64 {
        (self.reopen_log_bytes / self.large_record_bytes as u64).max(1)
    }
}
