//! Durable work paired in time with the raw `pwrite` + `fdatasync` loop.
//!
//! fdatasync latency on a shared virtual disk swings ten-fold within seconds, so every durable
//! benchmark (WAL appends, engine commits) also times the raw loop under the same conditions:
//! one worker interleaves one raw operation with each of its operations (alternating which goes
//! first); several workers alternate rounds of at most [`ROUND_OPS_PER_THREAD`] operations each
//! with raw blocks of as many operations as one worker made.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use walden_wal::Lsn;

use crate::{BenchError, BenchRoot, RawSyncLoop, Sample};

/// Operations per worker per round of a multi-worker paired run: small enough that the raw loop
/// alternates with the measured work every few tens of milliseconds, large enough that a round
/// is many group commits long.
pub const ROUND_OPS_PER_THREAD: u64 = 32;

/// What one durable run measured: the work, and the raw `fdatasync` loop run right next to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paired {
    /// The measured work (WAL appends, engine commits).
    pub wal: Sample,
    /// The raw loop block: as many write + fdatasync operations as one worker made.
    pub raw: Sample,
}

/// The timings of one [`RawPairing::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairedRun {
    /// Time of the measured work: the sum of the operations' latencies for one worker, the sum of
    /// the rounds' wall times (all workers released → all done) for several.
    pub work_elapsed: Duration,
    /// The raw-loop operations run beside the work.
    pub raw: Sample,
    /// Every operation's latency (call → acknowledgement), in no particular order.
    pub latencies: Vec<Duration>,
    /// The LSNs the operations were acknowledged with, per worker, in the order they returned.
    pub acked_lsns: Vec<Vec<Lsn>>,
}

impl PairedRun {
    /// Checks the acknowledgements: `workers × ops_per_thread` of them, each worker's strictly
    /// increasing (a later call never gets an earlier LSN), no LSN given twice.
    pub fn check_acks(&self, ops_per_thread: u64) -> Result<(), BenchError> {
        let mut all = Vec::with_capacity(self.acked_lsns.iter().map(Vec::len).sum());
        for (worker, lsns) in self.acked_lsns.iter().enumerate() {
            if lsns.len() as u64 != ops_per_thread {
                return Err(BenchError::Check(format!(
                    "worker {worker} was acknowledged {} times, made {ops_per_thread} calls",
                    lsns.len()
                )));
            }
            if let Some(w) = lsns.windows(2).find(|w| w[0] >= w[1]) {
                return Err(BenchError::Check(format!("worker {worker}: LSN {} acknowledged after {}", w[1], w[0])));
            }
            all.extend_from_slice(lsns);
        }
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(BenchError::Check(format!("LSN {} acknowledged twice", w[0])));
        }
        Ok(())
    }
}

/// A raw-loop file run beside durable work; see the module documentation.
#[derive(Debug)]
pub struct RawPairing {
    raw: RawSyncLoop,
    raw_first: bool,
}

impl RawPairing {
    /// A new raw-loop file under `root` whose operations write `record_bytes` bytes (what one
    /// measured operation writes to the log).
    pub fn new(root: &BenchRoot, record_bytes: usize) -> Result<RawPairing, BenchError> {
        Ok(RawPairing { raw: RawSyncLoop::new(root, record_bytes)?, raw_first: true })
    }

    /// Bytes written per raw operation.
    pub fn record_bytes(&self) -> usize {
        self.raw.record_bytes()
    }

    /// `threads` workers each make `ops_per_thread` calls of `op(worker)` (which returns the LSN
    /// its work was acknowledged at), with the raw loop making `ops_per_thread` operations
    /// beside them: interleaved one by one for one worker, in alternating rounds of at most
    /// [`ROUND_OPS_PER_THREAD`] for several. Worker threads live across rounds, held by two
    /// barriers; after an error a worker stops calling `op` but keeps meeting the barriers.
    pub fn run<F>(&mut self, threads: usize, ops_per_thread: u64, op: F) -> Result<PairedRun, BenchError>
    where
        F: Fn(usize) -> Result<Lsn, BenchError> + Sync,
    {
        if threads == 0 {
            return Err(BenchError::Check("at least one worker thread".to_string()));
        }
        let run = if threads == 1 {
            self.run_interleaved(ops_per_thread, &op)?
        } else {
            self.run_rounds(threads, ops_per_thread, &op)?
        };
        self.raw.verify()?;
        Ok(run)
    }

    /// One worker: each operation next to one raw operation, alternating which goes first.
    fn run_interleaved<F>(&mut self, ops: u64, op: &F) -> Result<PairedRun, BenchError>
    where
        F: Fn(usize) -> Result<Lsn, BenchError>,
    {
        let mut work_elapsed = Duration::ZERO;
        let mut raw_elapsed = Duration::ZERO;
        let mut latencies = Vec::with_capacity(ops as usize);
        let mut lsns = Vec::with_capacity(ops as usize);
        for _ in 0..ops {
            self.raw_first = !self.raw_first;
            if self.raw_first {
                raw_elapsed += self.raw.write_one()?;
            }
            let start = Instant::now();
            let lsn = op(0)?;
            let took = start.elapsed();
            work_elapsed += took;
            latencies.push(took);
            lsns.push(lsn);
            if !self.raw_first {
                raw_elapsed += self.raw.write_one()?;
            }
        }
        Ok(PairedRun { work_elapsed, raw: self.raw_sample(raw_elapsed, ops), latencies, acked_lsns: vec![lsns] })
    }

    /// Several workers, in rounds; each round is timed from all workers released to all done,
    /// and is followed (or, on alternate rounds, preceded) by a raw-loop block of as many
    /// operations as one worker made.
    fn run_rounds<F>(&mut self, threads: usize, ops_per_thread: u64, op: &F) -> Result<PairedRun, BenchError>
    where
        F: Fn(usize) -> Result<Lsn, BenchError> + Sync,
    {
        let rounds = Rounds::new(threads, ops_per_thread);
        let (timing, worker_results) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|worker| {
                    let rounds = &rounds;
                    s.spawn(move || rounds.work(worker, ops_per_thread, op))
                })
                .collect();
            let timing = self.lead_rounds(&rounds);
            let worker_results: Vec<WorkerResult> = workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err(BenchError::Check("a worker thread panicked".into()))))
                .collect();
            (timing, worker_results)
        });
        let (work_elapsed, raw_elapsed) = timing?;
        let mut latencies = Vec::with_capacity((threads as u64 * ops_per_thread) as usize);
        let mut acked_lsns = Vec::with_capacity(threads);
        for result in worker_results {
            let (worker_latencies, lsns) = result?;
            latencies.extend(worker_latencies);
            acked_lsns.push(lsns);
        }
        Ok(PairedRun { work_elapsed, raw: self.raw_sample(raw_elapsed, ops_per_thread), latencies, acked_lsns })
    }

    /// The coordinator's part of [`RawPairing::run_rounds`]: releases every round, times it
    /// until all workers are done, and runs a raw block before or after it (alternating). It
    /// meets every barrier even after a raw error, so the workers never wait forever; the last
    /// raw error is returned. Returns the work's time and the raw blocks' time.
    fn lead_rounds(&mut self, rounds: &Rounds) -> Result<(Duration, Duration), BenchError> {
        let mut work_elapsed = Duration::ZERO;
        let mut raw_elapsed = Duration::ZERO;
        let mut raw_result = Ok(());
        for &n in &rounds.sizes {
            self.raw_first = !self.raw_first;
            if self.raw_first
                && let Err(e) = self.raw_block(n, &mut raw_elapsed)
            {
                raw_result = Err(e);
            }
            rounds.start.wait();
            let started = Instant::now();
            rounds.end.wait();
            work_elapsed += started.elapsed();
            if !self.raw_first
                && let Err(e) = self.raw_block(n, &mut raw_elapsed)
            {
                raw_result = Err(e);
            }
        }
        raw_result.map(|()| (work_elapsed, raw_elapsed))
    }

    /// `n` raw operations, their time added to `total`; stops at the first error.
    fn raw_block(&mut self, n: u64, total: &mut Duration) -> Result<(), BenchError> {
        for _ in 0..n {
            *total += self.raw.write_one()?;
        }
        Ok(())
    }

    fn raw_sample(&self, elapsed: Duration, ops: u64) -> Sample {
        Sample { elapsed, ops, bytes: ops * self.raw.record_bytes() as u64, syncs: ops, ..Sample::default() }
    }
}

/// What one worker of a multi-worker run returns: its latencies and acknowledged LSNs.
type WorkerResult = Result<(Vec<Duration>, Vec<Lsn>), BenchError>;

/// The rounds of a multi-worker paired run, and the two barriers that hold the workers and the
/// coordinator to them.
struct Rounds {
    /// Operations per worker in each round: [`ROUND_OPS_PER_THREAD`], the last one fewer.
    sizes: Vec<u64>,
    /// Every worker and the coordinator meet here to start a round.
    start: Barrier,
    /// ... and here when every worker is done with it.
    end: Barrier,
}

impl Rounds {
    fn new(threads: usize, ops_per_thread: u64) -> Rounds {
        let sizes: Vec<u64> = (0..ops_per_thread.div_ceil(ROUND_OPS_PER_THREAD))
            .map(|r| (ops_per_thread - r * ROUND_OPS_PER_THREAD).min(ROUND_OPS_PER_THREAD))
            .collect();
        debug_assert_eq!(sizes.iter().sum::<u64>(), ops_per_thread);
        Rounds { sizes, start: Barrier::new(threads + 1), end: Barrier::new(threads + 1) }
    }

    /// One worker's part: `op(worker)` as many times as each round asks. After an error it
    /// stops calling `op` but keeps meeting the barriers, so the others can finish.
    fn work<F>(&self, worker: usize, ops_per_thread: u64, op: &F) -> WorkerResult
    where
        F: Fn(usize) -> Result<Lsn, BenchError>,
    {
        let mut latencies = Vec::with_capacity(ops_per_thread as usize);
        let mut lsns = Vec::with_capacity(ops_per_thread as usize);
        let mut result = Ok(());
        for &n in &self.sizes {
            self.start.wait();
            for _ in 0..n {
                if result.is_err() {
                    break;
                }
                let began = Instant::now();
                match op(worker) {
                    Ok(lsn) => {
                        latencies.push(began.elapsed());
                        lsns.push(lsn);
                    }
                    Err(e) => result = Err(e),
                }
            }
            self.end.wait();
        }
        result.map(|()| (latencies, lsns))
    }
}
