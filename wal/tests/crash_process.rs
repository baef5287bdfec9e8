//! Crash test with real processes: a child process appends to the WAL and is killed with
//! `SIGKILL` at random moments; the parent reopens the directory and checks that nothing
//! acknowledged was lost, that LSNs are contiguous, and that no partial batch survived.
//!
//! The test binary re-executes itself. [`crash_child`] does nothing unless
//! `WALDEN_CRASH_CHILD_DIR` is set; then it opens the WAL in that directory and appends random
//! batches until it is killed, printing `@crash ACK <first_lsn> <last_lsn> <batch_id>` after every
//! acknowledged append. Every record's kind and payload are a pure function of (batch id, index in
//! the batch, batch length), so the parent can check any record it finds, acknowledged or not.
//!
//! Each round the parent kills the child (while it opens/recovers the log, after a random delay,
//! while a segment file is being created, or right after the n-th acknowledgement), reopens the
//! log, verifies it against everything acknowledged or seen in earlier rounds, closes it, and
//! starts the next round in the same directory, so the log grows across rounds. Some rounds verify
//! a copy instead and leave the directory as the kill left it, so that the next child recovers the
//! torn tail (or leftover temporary segment) itself, and may be killed while doing so. Old segments
//! are trimmed by the parent (never by the child) to keep each verification cheap.
//!
//! A failing campaign panics with its seed; `WALDEN_CRASH_SEED=<seed>` replays the same plan
//! (batch sizes, payloads, kill strategies and delays; the exact instant of each kill still
//! depends on scheduling).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use walden_wal::{Lsn, Record, RecoveryMode, SyncMode, Wal, WalConfig, WalError};

/// Directory of the log the child appends to; its presence makes [`crash_child`] run.
const ENV_CHILD_DIR: &str = "WALDEN_CRASH_CHILD_DIR";
/// Seed of the child's batch-size RNG.
const ENV_CHILD_SEED: &str = "WALDEN_CRASH_CHILD_SEED";
/// `always` (one appender thread) or `group` (four appender threads).
const ENV_CHILD_MODE: &str = "WALDEN_CRASH_CHILD_MODE";
/// High bits of every batch id the child uses (unique per round).
const ENV_CHILD_BATCH_BASE: &str = "WALDEN_CRASH_CHILD_BATCH_BASE";
/// `target_segment_size_bytes` for the child.
const ENV_CHILD_SEGMENT_BYTES: &str = "WALDEN_CRASH_CHILD_SEGMENT_BYTES";
/// `1` to enable payload compression in the child.
const ENV_CHILD_COMPRESS: &str = "WALDEN_CRASH_CHILD_COMPRESS";
/// Starts every line the child reports; the test harness may print text before it on the same
/// line (`test crash_child ... `).
const LINE_TAG: &str = "@crash ";
/// Set by a person to replay a campaign.
const ENV_REPLAY_SEED: &str = "WALDEN_CRASH_SEED";

/// A child the parent forgets to kill stops by itself after this long.
const CHILD_MAX_RUNTIME_MS: u64 = 30_000;
/// Longest wait for a line the parent expects from the child.
const CHILD_LINE_TIMEOUT_MS: u64 = 20_000;
/// Records per batch: 1..=MAX_BATCH_LEN.
const MAX_BATCH_LEN: usize = 8;
/// Payloads are 0..MAX_PAYLOAD_BYTES bytes.
const MAX_PAYLOAD_BYTES: u64 = 2000;
/// Normal segment size; some rounds use the minimum (4 KiB) so nearly every append rotates.
const SEGMENT_SIZE_BYTES: u64 = 64 << 10;
const SMALL_SEGMENT_SIZE_BYTES: u64 = 4 << 10;
/// The parent trims the log once it is larger than this (or has more segments than
/// `TRIM_ABOVE_SEGMENTS`), keeping about `TRIM_KEEP_BYTES` / `TRIM_KEEP_SEGMENTS`.
const TRIM_ABOVE_BYTES: u64 = 16 << 20;
const TRIM_KEEP_BYTES: u64 = 8 << 20;
const TRIM_ABOVE_SEGMENTS: usize = 512;
const TRIM_KEEP_SEGMENTS: usize = 256;

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Record contents: a pure function of (batch id, index, batch length).
// ---------------------------------------------------------------------------------------------

/// splitmix64 finaliser: a cheap, well-mixed hash.
fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The record kind encodes the index in the batch (bits 4..7) and the batch length - 1 (bits 0..3).
fn encode_kind(index: usize, batch_len: usize) -> u8 {
    debug_assert!(index < batch_len && batch_len <= MAX_BATCH_LEN);
    ((index as u8) << 4) | (batch_len as u8 - 1)
}

/// `(index, batch_len)` from a kind written by [`encode_kind`].
fn decode_kind(kind: u8) -> Option<(usize, usize)> {
    if kind & 0x88 != 0 {
        return None;
    }
    let index = usize::from(kind >> 4);
    let batch_len = usize::from(kind & 0x0F) + 1;
    (index < batch_len).then_some((index, batch_len))
}

/// Payload length of record `index` of batch `batch_id`: 0..2000 bytes, with one record in eight
/// under 16 bytes (so empty and tiny payloads are common).
fn payload_len(batch_id: u64, index: usize) -> usize {
    let h = mix64(batch_id ^ mix64(index as u64 + 1));
    let bound = if h.is_multiple_of(8) { 16 } else { MAX_PAYLOAD_BYTES };
    ((h >> 8) % bound) as usize
}

/// The payload: batch id (u64 LE), index, batch length, then runs of pseudo-random bytes (so that
/// compression has something to do), cut to [`payload_len`].
fn expected_payload(batch_id: u64, index: usize, batch_len: usize) -> Vec<u8> {
    let len = payload_len(batch_id, index);
    let mut bytes = Vec::with_capacity(len + 32);
    bytes.extend_from_slice(&batch_id.to_le_bytes());
    bytes.push(index as u8);
    bytes.push(batch_len as u8);
    let mut state = mix64(batch_id.rotate_left(17) ^ index as u64);
    while bytes.len() < len {
        state = mix64(state);
        let run = 1 + ((state >> 8) % 24) as usize;
        bytes.extend(std::iter::repeat_n(state as u8, run));
    }
    bytes.truncate(len);
    bytes
}

/// The batch id a payload names, if it is long enough to hold one.
fn payload_batch_id(payload: &[u8]) -> Option<u64> {
    let head: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

// ---------------------------------------------------------------------------------------------
// Configuration shared by child and parent.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    /// `SyncMode::Always`, one appender thread.
    Always,
    /// `SyncMode::Group`, four appender threads sharing syncs.
    Group,
}

impl Flavour {
    fn sync_mode(self) -> SyncMode {
        match self {
            Flavour::Always => SyncMode::Always,
            Flavour::Group => SyncMode::Group,
        }
    }

    fn appender_threads(self) -> u64 {
        match self {
            Flavour::Always => 1,
            Flavour::Group => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavour::Always => "always",
            Flavour::Group => "group",
        }
    }

    fn from_name(name: &str) -> Option<Flavour> {
        [Flavour::Always, Flavour::Group].into_iter().find(|f| f.name() == name)
    }
}

fn wal_config(flavour: Flavour, segment_size_bytes: u64, compress: bool, recovery_mode: RecoveryMode) -> WalConfig {
    WalConfig {
        target_segment_size_bytes: segment_size_bytes,
        sync_mode: flavour.sync_mode(),
        recovery_mode,
        compression_threshold_bytes: compress.then_some(64),
        index_interval_bytes: 4096,
        // Preallocation on, with a window small enough that kills land in mid-segment refills
        // (zero-fill + fdatasync ahead of the data) too, not only in the first fill.
        preallocate_bytes: segment_size_bytes / 4,
        ..WalConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

struct ChildParams {
    flavour: Flavour,
    seed: u64,
    batch_base: u64,
    segment_size_bytes: u64,
    compress: bool,
}

impl ChildParams {
    fn from_env() -> Result<ChildParams, String> {
        fn var(name: &str) -> Result<String, String> {
            std::env::var(name).map_err(|e| format!("{name}: {e}"))
        }
        fn number(name: &str) -> Result<u64, String> {
            var(name)?.parse().map_err(|e| format!("{name}: {e}"))
        }
        let mode = var(ENV_CHILD_MODE)?;
        Ok(ChildParams {
            flavour: Flavour::from_name(&mode).ok_or_else(|| format!("{ENV_CHILD_MODE}: unknown mode {mode:?}"))?,
            seed: number(ENV_CHILD_SEED)?,
            batch_base: number(ENV_CHILD_BATCH_BASE)?,
            segment_size_bytes: number(ENV_CHILD_SEGMENT_BYTES)?,
            compress: var(ENV_CHILD_COMPRESS)? == "1",
        })
    }
}

/// Writes one tagged line to stdout in a single `write` (the stdout lock keeps threads' lines
/// whole). If the parent is gone, there is nobody to report to: exit.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{LINE_TAG}{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(4);
    }
}

/// Reports an unexpected error to the parent and exits at once (other appender threads included).
fn child_fail(message: &str) -> ! {
    emit(&format!("ERR {}", message.replace('\n', " ")));
    std::process::exit(3);
}

/// The child half of the crash test; a no-op unless the parent set `WALDEN_CRASH_CHILD_DIR`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_CHILD_DIR) else { return };
    let params = ChildParams::from_env().unwrap_or_else(|e| child_fail(&format!("bad environment: {e}")));
    let config = wal_config(params.flavour, params.segment_size_bytes, params.compress, RecoveryMode::default());
    emit("START");
    let wal = Wal::open(PathBuf::from(dir), config).unwrap_or_else(|e| child_fail(&format!("open: {e}")));
    let report = wal.recovery_report();
    emit(&format!("OPEN {} {} {}", report.last_lsn, report.bytes_truncated, report.segment_count));
    let deadline = Instant::now() + Duration::from_millis(CHILD_MAX_RUNTIME_MS);
    std::thread::scope(|scope| {
        for thread in 0..params.flavour.appender_threads() {
            let (wal, params) = (&wal, &params);
            scope.spawn(move || append_until(wal, params, thread, deadline));
        }
    });
    // Only reached if the parent never killed us.
    if let Err(e) = wal.close() {
        child_fail(&format!("close: {e}"));
    }
}

fn append_until(wal: &Wal, params: &ChildParams, thread: u64, deadline: Instant) {
    let mut rng = StdRng::seed_from_u64(params.seed ^ mix64(thread));
    let mut counter = 0u64;
    while Instant::now() < deadline {
        let batch_len = rng.random_range(1..=MAX_BATCH_LEN);
        let batch_id = params.batch_base | (thread << 32) | counter;
        counter += 1;
        let records: Vec<(u8, Vec<u8>)> =
            (0..batch_len).map(|i| (encode_kind(i, batch_len), expected_payload(batch_id, i, batch_len))).collect();
        match wal.append_batch(records) {
            Ok(range) => {
                if range.end() - range.start() + 1 != batch_len as u64 {
                    child_fail(&format!("batch {batch_id} of {batch_len} records got LSNs {range:?}"));
                }
                emit(&format!("ACK {} {} {batch_id}", range.start(), range.end()));
            }
            Err(e) => child_fail(&format!("append of batch {batch_id}: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: plans, rounds, verification.
// ---------------------------------------------------------------------------------------------

/// When the parent kills the child.
#[derive(Clone, Copy, Debug)]
enum KillPlan {
    /// `delay_us` after the child says it is about to open the log (hits open and recovery).
    DuringOpen { delay_us: u64 },
    /// `delay_ms` after spawning the child.
    AfterDelay { delay_ms: u64 },
    /// After `min_wait_ms`, as soon as a `*.wal.tmp` file shows a segment being created (plus
    /// `extra_delay_us`, to land anywhere in sealing/creation); gives up waiting after 500 ms.
    AtSegmentCreation { min_wait_ms: u64, extra_delay_us: u64 },
    /// Right after the child printed its `acks`-th acknowledgement.
    AfterAcks { acks: usize },
}

impl KillPlan {
    fn label(self) -> &'static str {
        match self {
            KillPlan::DuringOpen { .. } => "during-open",
            KillPlan::AfterDelay { .. } => "after-delay",
            KillPlan::AtSegmentCreation { .. } => "at-segment-creation",
            KillPlan::AfterAcks { .. } => "after-acks",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct RoundPlan {
    kill: KillPlan,
    child_seed: u64,
    segment_size_bytes: u64,
    compress: bool,
    /// Verify a copy of the killed log and leave the real one as the kill left it, so the next
    /// child recovers the torn tail (and any leftover temporary file) itself.
    verify_on_copy: bool,
}

impl RoundPlan {
    fn random(rng: &mut StdRng, round: usize) -> RoundPlan {
        let after_acks = |rng: &mut StdRng| KillPlan::AfterAcks { acks: rng.random_range(1..=64) };
        let kill = if round == 1 {
            // At least one round per campaign is guaranteed to have acknowledgements to check.
            after_acks(rng)
        } else {
            match rng.random_range(0..100u32) {
                0..15 => KillPlan::DuringOpen { delay_us: rng.random_range(0..3000) },
                15..40 => KillPlan::AtSegmentCreation {
                    min_wait_ms: rng.random_range(5..150),
                    extra_delay_us: rng.random_range(0..1500),
                },
                40..55 => after_acks(rng),
                55..62 => KillPlan::AfterDelay { delay_ms: rng.random_range(0..=5) },
                _ => KillPlan::AfterDelay { delay_ms: rng.random_range(20..=300) },
            }
        };
        RoundPlan {
            kill,
            child_seed: rng.random(),
            segment_size_bytes: if rng.random_bool(0.25) { SMALL_SEGMENT_SIZE_BYTES } else { SEGMENT_SIZE_BYTES },
            compress: rng.random_bool(0.25),
            verify_on_copy: rng.random_bool(0.4),
        }
    }
}

/// One acknowledged append reported by the child.
#[derive(Clone, Copy, Debug)]
struct Ack {
    first_lsn: Lsn,
    last_lsn: Lsn,
    batch_id: u64,
}

/// What the child printed.
#[derive(Default, Debug)]
struct ChildOutput {
    started: bool,
    /// `(last_lsn, bytes_truncated, segment_count)` of the child's own recovery.
    opened: Option<(Lsn, u64, usize)>,
    acks: Vec<Ack>,
    errors: Vec<String>,
}

impl ChildOutput {
    fn parse(lines: &[String]) -> Result<ChildOutput, String> {
        let mut out = ChildOutput::default();
        for line in lines {
            let Some(at) = line.find(LINE_TAG) else { continue }; // the test harness's own output
            let mut words = line[at + LINE_TAG.len()..].split(' ');
            let tag = words.next().unwrap_or_default();
            let mut number = |what: &str| -> Result<u64, String> {
                words.next().and_then(|w| w.parse().ok()).ok_or_else(|| format!("bad {what} in child line {line:?}"))
            };
            match tag {
                "START" => out.started = true,
                "OPEN" => {
                    out.opened = Some((number("last LSN")?, number("bytes")?, number("segments")? as usize));
                }
                "ACK" => out.acks.push(Ack {
                    first_lsn: number("first LSN")?,
                    last_lsn: number("last LSN")?,
                    batch_id: number("batch id")?,
                }),
                "ERR" => out.errors.push(line.clone()),
                _ => return Err(format!("unknown child line {line:?}")),
            }
        }
        Ok(out)
    }
}

/// What an acknowledged record must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    batch_id: u64,
    index: usize,
    batch_len: usize,
}

/// Identity of a record seen at an earlier verification; it must never change or vanish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    kind: u8,
    batch_end: bool,
    payload_len: usize,
    payload_crc: u32,
}

impl Fingerprint {
    fn of(record: &Record) -> Fingerprint {
        Fingerprint {
            kind: record.kind,
            batch_end: record.batch_end,
            payload_len: record.payload.len(),
            payload_crc: walden_wal::format::crc32(&record.payload),
        }
    }
}

/// Everything the parent knows the log must contain.
#[derive(Default)]
struct Model {
    /// Every acknowledged LSN (not yet trimmed by the parent) and its content.
    acked: BTreeMap<Lsn, Expected>,
    /// Every record present at the last verification.
    seen: BTreeMap<Lsn, Fingerprint>,
    /// Last LSN at the last verification (where the next child starts).
    last_lsn: Lsn,
    /// Bytes the next child's recovery must truncate: the torn tail found by the last
    /// verification if it ran on a copy, else 0 (the parent's own recovery already cut it).
    next_open_truncates_bytes: u64,
}

/// How the `AbsoluteConsistency` open of a copy of the killed log ended.
#[derive(Debug)]
enum AbsoluteOutcome {
    Clean { last_lsn: Lsn },
    IncompleteTail { segment_name: String, offset: u64, bytes: u64 },
}

#[derive(Default, Debug)]
struct Summary {
    rounds: usize,
    kills: BTreeMap<&'static str, usize>,
    acks: usize,
    acked_records: usize,
    rounds_killed_before_first_ack: usize,
    rounds_verified_on_copy: usize,
    torn_tails: usize,
    torn_tails_recovered_by_child: usize,
    /// Rounds whose reopen found preallocated zeros after the data (kept, not truncated).
    preallocated_tails: usize,
    bytes_truncated: u64,
    records_dropped_from_torn_batches: u64,
    temp_files_removed: usize,
    absolute_clean: usize,
    absolute_incomplete_tail: usize,
    trims: usize,
    final_last_lsn: Lsn,
    final_segments: usize,
    elapsed: Duration,
}

struct CampaignOptions {
    max_rounds: usize,
    budget: Duration,
    /// Open a copy of every killed log with `RecoveryMode::AbsoluteConsistency` first.
    check_absolute: bool,
}

/// Kills and reaps the child if a round ends early (a failed check must not leak a process).
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn campaign_seed() -> u64 {
    if let Some(seed) = std::env::var(ENV_REPLAY_SEED).ok().and_then(|s| s.parse().ok()) {
        return seed;
    }
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    mix64(now_ns as u64 ^ u64::from(std::process::id()))
}

fn run_campaign(flavour: Flavour, seed: u64, options: &CampaignOptions) -> Summary {
    let mut rng = StdRng::seed_from_u64(seed ^ mix64(flavour as u64));
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let dir = tmp.path().join("wal");
    let mut model = Model::default();
    let mut summary = Summary::default();
    let started = Instant::now();
    for round in 0..options.max_rounds {
        if started.elapsed() >= options.budget {
            break;
        }
        let plan = RoundPlan::random(&mut rng, round);
        if let Err(message) = run_round(&dir, flavour, round, &plan, options, &mut model, &mut summary) {
            panic!(
                "crash test failed: flavour {}, seed {seed} (replay with {ENV_REPLAY_SEED}={seed}), round {round}, \
                 plan {plan:?}: {message}\nsummary so far: {summary:?}",
                flavour.name()
            );
        }
        summary.rounds += 1;
    }
    summary.elapsed = started.elapsed();
    summary
}

/// Blocks until the child prints a line matching `wanted` (true), its stdout closes or the
/// timeout passes (false).
fn wait_for_line(lines: &Receiver<String>, timeout: Duration, mut wanted: impl FnMut(&str) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if wanted(&line) => return true,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
        }
    }
}

fn has_temp_segment(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".tmp")))
        .unwrap_or(false)
}

fn run_round(
    dir: &Path,
    flavour: Flavour,
    round: usize,
    plan: &RoundPlan,
    options: &CampaignOptions,
    model: &mut Model,
    summary: &mut Summary,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let batch_base = (round as u64 + 1) << 40;
    let child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD_DIR, dir)
        .env(ENV_CHILD_SEED, plan.child_seed.to_string())
        .env(ENV_CHILD_MODE, flavour.name())
        .env(ENV_CHILD_BATCH_BASE, batch_base.to_string())
        .env(ENV_CHILD_SEGMENT_BYTES, plan.segment_size_bytes.to_string())
        .env(ENV_CHILD_COMPRESS, if plan.compress { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn child: {e}"))?;
    let spawned_at = Instant::now();
    let mut guard = ChildGuard(Some(child));
    let child = guard.0.as_mut().expect("just set");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let stdout_thread = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                // A line cut short by the kill is dropped: it proves nothing.
                Ok(0) | Err(_) => break,
                Ok(_) if buf.last() != Some(&b'\n') => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
                    let _ = line_tx.send(line.clone());
                    lines.push(line);
                }
            }
        }
        lines
    });
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let line_timeout = Duration::from_millis(CHILD_LINE_TIMEOUT_MS);
    match plan.kill {
        KillPlan::DuringOpen { delay_us } => {
            wait_for_line(&line_rx, line_timeout, |l| l.ends_with(&format!("{LINE_TAG}START")));
            std::thread::sleep(Duration::from_micros(delay_us));
        }
        KillPlan::AfterDelay { delay_ms } => {
            std::thread::sleep(Duration::from_millis(delay_ms).saturating_sub(spawned_at.elapsed()));
        }
        KillPlan::AtSegmentCreation { min_wait_ms, extra_delay_us } => {
            std::thread::sleep(Duration::from_millis(min_wait_ms));
            let give_up = Instant::now() + Duration::from_millis(500);
            while Instant::now() < give_up && !has_temp_segment(dir) {
                std::thread::sleep(Duration::from_micros(50));
            }
            std::thread::sleep(Duration::from_micros(extra_delay_us));
        }
        KillPlan::AfterAcks { acks } => {
            let mut seen = 0;
            let reached = wait_for_line(&line_rx, line_timeout, |l| {
                seen += usize::from(l.contains(&format!("{LINE_TAG}ACK ")));
                seen >= acks
            });
            ensure!(
                reached || child.try_wait().map(|s| s.is_some()).unwrap_or(false),
                "child acknowledged only {seen} of {acks} batches in {CHILD_LINE_TIMEOUT_MS} ms"
            );
        }
    }
    // SIGKILL on Unix.
    child.kill().map_err(|e| format!("kill child: {e}"))?;
    let status = child.wait().map_err(|e| format!("wait for child: {e}"))?;
    guard.0 = None;
    *summary.kills.entry(plan.kill.label()).or_default() += 1;
    let lines = stdout_thread.join().map_err(|_| "stdout reader panicked".to_string())?;
    let stderr_text = stderr_thread.join().map_err(|_| "stderr reader panicked".to_string())?;
    let output = ChildOutput::parse(&lines)?;
    ensure!(
        output.errors.is_empty() && status.signal() == Some(libc::SIGKILL),
        "the child failed on its own ({status}): {:?}\nchild stderr:\n{stderr_text}",
        output.errors
    );

    // The child's recovery must find exactly what the parent's last verification found.
    if let Some((last_lsn, bytes_truncated, _)) = output.opened {
        ensure!(
            last_lsn == model.last_lsn && bytes_truncated == model.next_open_truncates_bytes,
            "child recovered last LSN {last_lsn} truncating {bytes_truncated} bytes; the parent's last \
             verification found last LSN {} and a torn tail of {} bytes",
            model.last_lsn,
            model.next_open_truncates_bytes
        );
        summary.torn_tails_recovered_by_child += usize::from(bytes_truncated > 0);
    }
    ensure!(output.started || output.acks.is_empty(), "acknowledgements without START");
    summary.acks += output.acks.len();
    if output.acks.is_empty() {
        summary.rounds_killed_before_first_ack += 1;
    }
    for ack in &output.acks {
        ensure!(
            ack.first_lsn > model.last_lsn && ack.first_lsn <= ack.last_lsn,
            "acknowledged LSNs {}..={} (batch {}) are not after the log's end {} at the child's open",
            ack.first_lsn,
            ack.last_lsn,
            ack.batch_id,
            model.last_lsn
        );
        let batch_len = (ack.last_lsn - ack.first_lsn + 1) as usize;
        ensure!(batch_len <= MAX_BATCH_LEN, "ack of {batch_len} records: {ack:?}");
        for (index, lsn) in (ack.first_lsn..=ack.last_lsn).enumerate() {
            let expected = Expected { batch_id: ack.batch_id, index, batch_len };
            if let Some(earlier) = model.acked.insert(lsn, expected) {
                return Err(format!("LSN {lsn} acknowledged twice: for {earlier:?} and for {expected:?}"));
            }
            summary.acked_records += 1;
        }
    }

    let config = wal_config(flavour, plan.segment_size_bytes, plan.compress, RecoveryMode::TolerateTornTail);
    let absolute = if options.check_absolute { Some(open_copy_with_absolute_consistency(dir, &config)?) } else { None };

    let copy = if plan.verify_on_copy { Some(copy_log(dir)?) } else { None };
    let verify_dir = copy.as_ref().map_or(dir, |(_, copy_dir)| copy_dir.as_path());
    let wal = Wal::open(verify_dir, config).map_err(|e| format!("reopen after kill (TolerateTornTail): {e}"))?;
    let report = wal.recovery_report().clone();
    match (&absolute, &report.torn_tail) {
        (None, _) => {}
        (Some(AbsoluteOutcome::Clean { last_lsn }), None) => {
            ensure!(*last_lsn == report.last_lsn, "AbsoluteConsistency found last LSN {last_lsn}, default {report:?}");
            summary.absolute_clean += 1;
        }
        (Some(AbsoluteOutcome::IncompleteTail { segment_name, offset, bytes }), Some(torn)) => {
            let torn_name = torn.segment.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ensure!(
                *segment_name == torn_name && *offset == torn.offset && *bytes == torn.bytes,
                "AbsoluteConsistency reported an incomplete tail in {segment_name} at {offset} ({bytes} bytes), \
                 the default mode truncated {torn:?}"
            );
            summary.absolute_incomplete_tail += 1;
        }
        (Some(outcome), torn) => {
            return Err(format!("AbsoluteConsistency gave {outcome:?} but the default mode's torn tail is {torn:?}"));
        }
    }
    if let Some(torn) = &report.torn_tail {
        summary.torn_tails += 1;
        summary.bytes_truncated += torn.bytes;
        summary.records_dropped_from_torn_batches += torn.records_dropped;
    }
    summary.temp_files_removed += report.temp_files_removed.len();
    if report.preallocated_bytes > 0 {
        summary.preallocated_tails += 1;
    }

    verify(&wal, model)?;
    if plan.verify_on_copy {
        summary.rounds_verified_on_copy += 1;
        model.next_open_truncates_bytes = report.bytes_truncated;
    } else {
        model.next_open_truncates_bytes = 0;
        // Trimming a copy would not shrink the real log.
        if trim(&wal, model)? {
            summary.trims += 1;
        }
    }
    summary.final_last_lsn = model.last_lsn;
    summary.final_segments = wal.segments().len();
    wal.close().map_err(|e| format!("close after verification: {e}"))?;
    Ok(())
}

/// Copies the killed log and opens the copy with `AbsoluteConsistency`: it must either succeed
/// or refuse with `IncompleteTail`; a plain kill never produces corruption.
fn open_copy_with_absolute_consistency(dir: &Path, config: &WalConfig) -> Result<AbsoluteOutcome, String> {
    let (_copy_root, copy) = copy_log(dir)?;
    let config = WalConfig { recovery_mode: RecoveryMode::AbsoluteConsistency, ..config.clone() };
    match Wal::open(&copy, config) {
        Ok(wal) => {
            let report = wal.recovery_report().clone();
            ensure!(
                report.torn_tail.is_none() && report.bytes_truncated == 0,
                "AbsoluteConsistency opened the log but truncated it: {report:?}"
            );
            let records = wal.reader(wal.oldest_lsn()).and_then(|r| r.collect::<Result<Vec<_>, _>>());
            let records = records.map_err(|e| format!("read the AbsoluteConsistency copy: {e}"))?;
            ensure!(
                records.last().map(|r| r.lsn).unwrap_or(report.oldest_lsn - 1) == report.last_lsn,
                "AbsoluteConsistency copy: report {report:?}, but reading ends at {:?}",
                records.last().map(|r| r.lsn)
            );
            wal.close().map_err(|e| format!("close the AbsoluteConsistency copy: {e}"))?;
            Ok(AbsoluteOutcome::Clean { last_lsn: report.last_lsn })
        }
        Err(WalError::IncompleteTail { segment, offset, bytes }) => Ok(AbsoluteOutcome::IncompleteTail {
            segment_name: segment.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            offset,
            bytes,
        }),
        Err(e) => Err(format!("AbsoluteConsistency open of a freshly killed log failed with {e:?}")),
    }
}

/// Copies every file of the log directory (which may not exist yet) into a fresh temporary
/// directory; returns the directory's guard and the copy's path.
fn copy_log(dir: &Path) -> Result<(tempfile::TempDir, PathBuf), String> {
    let copy_root = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let copy = copy_root.path().join("wal");
    std::fs::create_dir(&copy).map_err(|e| format!("create {}: {e}", copy.display()))?;
    if dir.exists() {
        for entry in std::fs::read_dir(dir).map_err(|e| format!("list {}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("list {}: {e}", dir.display()))?;
            std::fs::copy(entry.path(), copy.join(entry.file_name()))
                .map_err(|e| format!("copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok((copy_root, copy))
}

/// Checks the reopened log against the model, then records what it holds as seen.
fn verify(wal: &Wal, model: &mut Model) -> Result<(), String> {
    let report = wal.recovery_report();
    let segments = wal.segments();
    let oldest = wal.oldest_lsn();
    let last = wal.next_lsn() - 1;

    // The recovery report agrees with the log.
    ensure!(report.mode == RecoveryMode::TolerateTornTail, "report mode {:?}", report.mode);
    ensure!(report.segment_count == segments.len(), "report {report:?} but segments {segments:?}");
    let active = segments.last().ok_or("no segments after open")?;
    ensure!(
        segments[..segments.len() - 1].iter().all(|s| s.sealed) && !active.sealed,
        "all segments but the last must be sealed: {segments:?}"
    );
    ensure!(report.sealed_segments_trusted == segments.len() - 1, "report {report:?} but segments {segments:?}");
    ensure!(
        report.oldest_lsn == oldest && segments[0].first_lsn == oldest,
        "oldest LSN: report {}, log {oldest}, first segment {}",
        report.oldest_lsn,
        segments[0].first_lsn
    );
    ensure!(
        report.last_lsn == last && wal.durable_lsn() == last && wal.visible_lsn() == last,
        "last LSN: report {}, next_lsn - 1 {last}, durable {}, visible {}",
        report.last_lsn,
        wal.durable_lsn(),
        wal.visible_lsn()
    );
    ensure!(
        report.records_recovered == last + 1 - active.first_lsn,
        "report says {} records recovered, the active segment holds LSNs {}..={last}",
        report.records_recovered,
        active.first_lsn
    );
    for pair in segments.windows(2) {
        ensure!(pair[1].first_lsn == pair[0].last_lsn + 1, "segments not contiguous: {pair:?}");
    }
    match &report.torn_tail {
        Some(torn) => ensure!(
            report.bytes_truncated == torn.bytes
                && torn.bytes > 0
                && torn.segment == active.path
                && torn.offset == active.size_bytes,
            "torn tail {torn:?} does not match report {report:?} / active segment {active:?}"
        ),
        None => ensure!(report.bytes_truncated == 0, "bytes truncated without a torn tail: {report:?}"),
    }
    for tmp in &report.temp_files_removed {
        ensure!(tmp.to_string_lossy().ends_with(".tmp"), "recovery removed a non-temporary file {}", tmp.display());
    }
    ensure!(
        last >= model.last_lsn,
        "the log ends at LSN {last}, but the previous verification saw it end at {}",
        model.last_lsn
    );

    // LSNs are contiguous from the oldest to the last.
    let records = wal.reader(oldest).and_then(|r| r.collect::<Result<Vec<_>, _>>());
    let records = records.map_err(|e| format!("reading the recovered log from LSN {oldest}: {e}"))?;
    ensure!(
        records.len() as u64 == last + 1 - oldest,
        "read {} records, expected LSNs {oldest}..={last}",
        records.len()
    );
    for (i, record) in records.iter().enumerate() {
        ensure!(record.lsn == oldest + i as u64, "record {i} has LSN {}, expected {}", record.lsn, oldest + i as u64);
    }
    let at = |lsn: Lsn| -> Option<&Record> {
        lsn.checked_sub(oldest).and_then(|i| usize::try_from(i).ok()).and_then(|i| records.get(i))
    };

    // Every acknowledged record is there, with its content.
    if let Some((&first_acked, _)) = model.acked.first_key_value() {
        ensure!(first_acked >= oldest, "acknowledged LSN {first_acked} is below the oldest LSN {oldest}");
    }
    for (&lsn, expected) in &model.acked {
        let Some(record) = at(lsn) else {
            return Err(format!("acknowledged LSN {lsn} ({expected:?}) is missing; the log holds {oldest}..={last}"));
        };
        let payload = expected_payload(expected.batch_id, expected.index, expected.batch_len);
        ensure!(
            record.kind == encode_kind(expected.index, expected.batch_len)
                && record.batch_end == (expected.index + 1 == expected.batch_len)
                && record.payload[..] == payload[..],
            "acknowledged LSN {lsn} ({expected:?}) has kind {:#04x}, batch_end {}, {} payload bytes (expected {})",
            record.kind,
            record.batch_end,
            record.payload.len(),
            payload.len()
        );
    }

    // Every record seen at the last verification is still there, unchanged.
    for (&lsn, fingerprint) in model.seen.range(oldest..) {
        let found = at(lsn).map(Fingerprint::of);
        ensure!(found == Some(*fingerprint), "LSN {lsn} was {fingerprint:?} at the last verification, now {found:?}");
    }

    // Only whole batches, each with the content its batch id dictates, each batch id once.
    let mut batch_ids = HashSet::new();
    let mut i = 0;
    while i < records.len() {
        let first = &records[i];
        let (index, batch_len) = decode_kind(first.kind)
            .ok_or_else(|| format!("LSN {} has kind {:#04x}, which the child never writes", first.lsn, first.kind))?;
        ensure!(index == 0, "LSN {} is record {index} of a batch whose start is missing", first.lsn);
        ensure!(
            i + batch_len <= records.len(),
            "partial batch at the end: LSN {} starts a batch of {batch_len}, only {} records follow",
            first.lsn,
            records.len() - i
        );
        let batch = &records[i..i + batch_len];
        let mut batch_id = None;
        for (j, record) in batch.iter().enumerate() {
            ensure!(
                decode_kind(record.kind) == Some((j, batch_len)) && record.batch_end == (j + 1 == batch_len),
                "LSN {}: kind {:#04x}, batch_end {} where record {j} of a batch of {batch_len} was expected",
                record.lsn,
                record.kind,
                record.batch_end
            );
            let named = payload_batch_id(&record.payload).or(model.acked.get(&record.lsn).map(|e| e.batch_id));
            if let Some(id) = named {
                ensure!(
                    *batch_id.get_or_insert(id) == id,
                    "batch starting at LSN {} mixes batch ids {batch_id:?} and {id}",
                    first.lsn
                );
            }
        }
        if let Some(id) = batch_id {
            ensure!(batch_ids.insert(id), "batch {id} appears twice (second time at LSN {})", first.lsn);
            for (j, record) in batch.iter().enumerate() {
                ensure!(
                    record.payload[..] == expected_payload(id, j, batch_len)[..],
                    "LSN {}: payload of {} bytes is not record {j} of batch {id}",
                    record.lsn,
                    record.payload.len()
                );
            }
        }
        i += batch_len;
    }

    model.seen = records.iter().map(|r| (r.lsn, Fingerprint::of(r))).collect();
    model.last_lsn = last;
    Ok(())
}

/// Keeps the log small enough to verify quickly: removes the oldest segments once it exceeds
/// the trim thresholds, and forgets what the model expected of them. Returns whether it trimmed.
fn trim(wal: &Wal, model: &mut Model) -> Result<bool, String> {
    let segments = wal.segments();
    let total_bytes: u64 = segments.iter().map(|s| s.size_bytes).sum();
    if total_bytes <= TRIM_ABOVE_BYTES && segments.len() <= TRIM_ABOVE_SEGMENTS {
        return Ok(false);
    }
    let mut kept_bytes = 0;
    let mut keep_from = segments.len() - 1;
    while keep_from > 0 && kept_bytes < TRIM_KEEP_BYTES && segments.len() - keep_from < TRIM_KEEP_SEGMENTS {
        kept_bytes += segments[keep_from].size_bytes;
        keep_from -= 1;
    }
    let cut_lsn = segments[keep_from + 1].first_lsn;
    let removed = wal.remove_segments_before(cut_lsn).map_err(|e| format!("trim below LSN {cut_lsn}: {e}"))?;
    ensure!(
        removed.len() == keep_from + 1 && wal.oldest_lsn() == cut_lsn,
        "trimming below LSN {cut_lsn} removed {} segments (expected {}), oldest is now {}",
        removed.len(),
        keep_from + 1,
        wal.oldest_lsn()
    );
    model.acked = model.acked.split_off(&cut_lsn);
    model.seen = model.seen.split_off(&cut_lsn);
    Ok(true)
}

/// Kills a WAL-writing child process at random moments, many rounds per sync mode, and checks
/// after every kill that every acknowledged batch survived whole and nothing else is broken.
#[test]
fn sigkill_never_loses_acknowledged_batches() {
    let seed = campaign_seed();
    let options = CampaignOptions { max_rounds: 25, budget: Duration::from_secs(12), check_absolute: false };
    for flavour in [Flavour::Always, Flavour::Group] {
        let summary = run_campaign(flavour, seed, &options);
        eprintln!("crash campaign {} (seed {seed}): {summary:?}", flavour.name());
        assert!(summary.rounds >= 1, "no round ran: {summary:?}");
        assert!(summary.acked_records > 0, "no acknowledged record was ever checked: {summary:?}");
    }
}

/// After a plain kill, `AbsoluteConsistency` recovery (on a copy of the log) either opens it or
/// refuses with `IncompleteTail`, never `Corruption`, and agrees with the default mode's torn tail.
#[test]
fn sigkill_leaves_no_corruption_for_absolute_consistency() {
    let seed = campaign_seed();
    let options = CampaignOptions { max_rounds: 12, budget: Duration::from_secs(5), check_absolute: true };
    for flavour in [Flavour::Always, Flavour::Group] {
        let summary = run_campaign(flavour, seed, &options);
        eprintln!("absolute-consistency crash campaign {} (seed {seed}): {summary:?}", flavour.name());
        assert!(summary.rounds >= 1, "no round ran: {summary:?}");
        assert_eq!(
            summary.absolute_clean + summary.absolute_incomplete_tail,
            summary.rounds,
            "every round must open the copy with AbsoluteConsistency: {summary:?}"
        );
    }
}
