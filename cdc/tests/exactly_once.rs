//! Exactly-once processing with real processes and SIGKILL.
//!
//! A consumer child process opens the database, subscribes through the slot `consumer`, and for
//! every row change applies a side effect to its own state file (a count per change LSN), written
//! atomically together with `last_applied_lsn` (temp file, fsync, rename, fsync of the directory).
//! It skips changes at or below `last_applied_lsn` and acks the slot after persisting, sometimes
//! after every change and sometimes every few. The parent commits transactions (several changes
//! over several tables) before and between rounds, and SIGKILLs the consumer at random moments,
//! and in some rounds exactly between persisting and acking. At the end every committed change
//! must have been applied exactly once: none missing, none twice, none extra.
//!
//! Only one process may open the database at a time (the WAL holds a lock on its directory), so
//! the parent never has it open while a child runs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use walden_cdc::{Cdc, Event, SubscriptionOptions};
use walden_engine::{Config, Database, SlotOptions, StartPosition, SyncMode};

/// Set (to the test directory) only in the child process.
const CHILD_DIR_ENV: &str = "WALDEN_CDC_EXACTLY_ONCE_DIR";
/// When set in the child: sleep this long between persisting a change and acking it.
const CHILD_HOLD_ENV: &str = "WALDEN_CDC_EXACTLY_ONCE_HOLD_MS";
const SLOT: &str = "consumer";
/// Marks the child's protocol lines (libtest may print its own text on the same line).
const MARK: &str = "@@ ";
/// Wall-clock budget of the kill rounds (the final, unkilled round comes after).
const TEST_BUDGET: Duration = Duration::from_secs(7);
const MIN_ROUNDS: u32 = 8;
/// A child never runs longer than this, even if nobody kills it.
const CHILD_MAX_LIFETIME: Duration = Duration::from_secs(60);

fn config() -> Config {
    Config::with_sync_mode(SyncMode::Group)
}

/// One applied change in the consumer's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    table: String,
    key: String,
    /// How many times the side effect was applied.
    count: u32,
}

/// The consumer's durable state: its side effects and the LSN they include.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConsumerState {
    last_applied_lsn: u64,
    applied: BTreeMap<u64, Applied>,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("consumer-state.json")
}

fn load_state(dir: &Path) -> ConsumerState {
    match std::fs::read(state_path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes).expect("the state file is always complete"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConsumerState::default(),
        Err(e) => panic!("reading the consumer state: {e}"),
    }
}

/// Replaces the state file atomically and durably: temp file, fsync, rename, fsync directory.
fn persist_state(dir: &Path, state: &ConsumerState) {
    let path = state_path(dir);
    let tmp = dir.join("consumer-state.json.tmp");
    let mut file = std::fs::File::create(&tmp).unwrap();
    file.write_all(&serde_json::to_vec(state).unwrap()).unwrap();
    file.sync_all().unwrap();
    drop(file);
    std::fs::rename(&tmp, &path).unwrap();
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
}

/// The consumer; a no-op unless this process was started by the parent test.
#[test]
fn consumer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else { return };
    let dir = PathBuf::from(dir);
    let hold = std::env::var(CHILD_HOLD_ENV).ok().map(|ms| Duration::from_millis(ms.parse().unwrap()));
    let mut rng = StdRng::seed_from_u64(rand::random());
    // Ack after every change, or every few (a held child acks every change, right after its hold).
    let ack_every = if hold.is_some() || rng.random_bool(0.3) { 1 } else { rng.random_range(2..=6) };
    let started = Instant::now();

    let mut state = load_state(&dir);
    let db = Arc::new(Database::open(dir.join("db"), config()).unwrap());
    let cdc = Cdc::new(db.clone());
    let mut sub = cdc.subscribe_slot(SLOT, SubscriptionOptions::default()).unwrap();
    println!("{MARK}START {} {}", sub.slot_info().confirmed_lsn, state.last_applied_lsn);
    let mut unacked = 0;
    while started.elapsed() < CHILD_MAX_LIFETIME {
        let Some(event) = sub.next_timeout(Duration::from_millis(200)) else { break };
        let Event::Change(change) = event.unwrap() else { continue };
        if change.lsn <= state.last_applied_lsn {
            println!("{MARK}SKIP {}", change.lsn);
            continue;
        }
        // The side effect and the position, in one atomic write.
        let applied = state.applied.entry(change.lsn).or_insert_with(|| Applied {
            table: change.table.clone(),
            key: String::from_utf8(change.key.to_vec()).unwrap(),
            count: 0,
        });
        applied.count += 1;
        state.last_applied_lsn = change.lsn;
        persist_state(&dir, &state);
        println!("{MARK}PERSISTED {}", change.lsn);
        match hold {
            Some(hold) => std::thread::sleep(hold),
            None if rng.random_bool(0.2) => std::thread::sleep(Duration::from_micros(rng.random_range(0..2000))),
            None => {}
        }
        unacked += 1;
        if unacked >= ack_every {
            sub.ack(change.lsn).unwrap();
            println!("{MARK}ACKED {}", change.lsn);
            unacked = 0;
        }
    }
    if state.last_applied_lsn > sub.slot_info().confirmed_lsn {
        sub.ack(state.last_applied_lsn).unwrap();
    }
    sub.close().unwrap();
    drop(cdc);
    Arc::try_unwrap(db).unwrap().close().unwrap();
    println!("{MARK}DONE {}", state.last_applied_lsn);
}

/// Commits `n` transactions of 2–5 changes over three tables; returns (lsn → (table, key)).
fn commit_batch(dir: &Path, n: usize, batch: u32, rng: &mut StdRng) -> BTreeMap<u64, (String, String)> {
    let db = Database::open(dir.join("db"), config()).unwrap();
    let mut written = BTreeMap::new();
    for i in 0..n {
        let mut txn = db.begin();
        let mut rows = Vec::new();
        for c in 0..rng.random_range(2..=5) {
            let table = ["users", "orders", "payments"][(i + c) % 3].to_string();
            let key = format!("b{batch}-t{i}-c{c}");
            let op = rng.random_range(0..3);
            match op {
                0 => txn.insert(&table, key.as_bytes(), br#"{"v":1}"#).unwrap(),
                1 => txn.update(&table, key.as_bytes(), br#"{"v":1}"#, br#"{"v":2}"#).unwrap(),
                _ => txn.delete(&table, key.as_bytes(), br#"{"v":2}"#).unwrap(),
            }
            rows.push((table, key));
        }
        let info = txn.commit_info().unwrap();
        for (lsn, row) in (info.txn_id + 1..info.commit_lsn).zip(rows) {
            written.insert(lsn, row);
        }
    }
    db.close().unwrap();
    written
}

/// What one child run printed (complete lines only: a line cut by the kill is dropped).
#[derive(Debug, Default)]
struct RoundLog {
    /// (slot confirmed LSN, consumer's last applied LSN) at start.
    start: Option<(u64, u64)>,
    persisted: Vec<u64>,
    acked: Vec<u64>,
    skipped: Vec<u64>,
    done: bool,
}

impl RoundLog {
    fn parse(&mut self, line: &str) {
        let Some(at) = line.find(MARK) else { return };
        let fields: Vec<&str> = line[at + MARK.len()..].split(' ').collect();
        let num = |i: usize| -> u64 { fields[i].parse().unwrap() };
        match fields[0] {
            "START" => self.start = Some((num(1), num(2))),
            "PERSISTED" => self.persisted.push(num(1)),
            "ACKED" => self.acked.push(num(1)),
            "SKIP" => self.skipped.push(num(1)),
            "DONE" => self.done = true,
            other => panic!("unknown child line {other:?}"),
        }
    }
}

enum Kill {
    /// SIGKILL after this long.
    After(Duration),
    /// SIGKILL right after the first persisted change (the child holds before acking).
    AfterFirstPersist,
    /// Let the child catch up and exit by itself.
    Never,
}

/// Runs one consumer child; returns its log and whether it was killed.
fn run_child(dir: &Path, round: u32, kill: Kill) -> (RoundLog, bool) {
    let exe = std::env::current_exe().unwrap();
    let stderr_path = dir.join(format!("child-{round}.stderr"));
    let mut command = Command::new(exe);
    command
        .args(["--exact", "consumer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    if matches!(kill, Kill::AfterFirstPersist) {
        command.env(CHILD_HOLD_ENV, "20000");
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            if buf.ends_with(b"\n") {
                let _ = lines_tx.send(String::from_utf8_lossy(&buf).trim_end().to_string());
            }
            buf.clear();
        }
    });
    let mut log = RoundLog::default();
    match kill {
        Kill::After(delay) => {
            let deadline = Instant::now() + delay;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = child.kill(); // SIGKILL (a no-op if it already exited)
        }
        Kill::AfterFirstPersist => {
            let deadline = Instant::now() + Duration::from_secs(20);
            while log.persisted.is_empty() && !log.done && Instant::now() < deadline {
                if let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
                    log.parse(&line);
                }
            }
            assert!(!log.persisted.is_empty() || log.done, "round {round}: the held child made no progress");
            let _ = child.kill();
        }
        Kill::Never => {}
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    for line in lines.try_iter() {
        log.parse(&line);
    }
    let killed = status.signal() == Some(9);
    if !killed && !status.success() {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        panic!("round {round}: the consumer failed ({status}):\n{stderr}");
    }
    (log, killed)
}

#[test]
fn every_change_is_processed_exactly_once_across_sigkills() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let db = Database::open(dir.join("db"), config()).unwrap();
        db.create_slot(SLOT, SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }).unwrap();
        db.close().unwrap();
    }
    let mut written = commit_batch(dir, 30, 0, &mut rng);
    let started = Instant::now();
    let mut round = 0;
    let mut batches = 1;
    let mut kills = 0;
    let mut held_kills = 0;
    let mut redelivery_rounds = 0;
    let mut skipped = 0;
    let mut expect_redelivery = false;
    let mut all_persisted = Vec::new();
    let mut all_acked = Vec::new();
    let final_round_persisted = loop {
        round += 1;
        let last = round > MIN_ROUNDS && started.elapsed() > TEST_BUDGET;
        let held = !last && round % 4 == 2;
        // More commits between rounds (always before a held round, so it has work to hold on).
        if !last && (held || rng.random_bool(0.4)) && batches < 24 {
            written.extend(commit_batch(dir, rng.random_range(3..=8), batches, &mut rng));
            batches += 1;
        }
        let kill = if last {
            Kill::Never
        } else if held {
            Kill::AfterFirstPersist
        } else {
            Kill::After(Duration::from_millis(rng.random_range(5..300)))
        };
        let (log, killed) = run_child(dir, round, kill);
        if let Some((confirmed, applied)) = log.start {
            assert!(confirmed <= applied, "round {round}: the slot ({confirmed}) is ahead of the state ({applied})");
            if expect_redelivery {
                assert!(confirmed < applied, "round {round}: a change persisted but not acked was confirmed");
            }
            if confirmed < applied {
                redelivery_rounds += 1;
            }
            expect_redelivery = false;
        }
        if held && killed && !log.persisted.is_empty() {
            held_kills += 1;
            expect_redelivery = true;
        }
        assert!(log.persisted.windows(2).all(|w| w[0] < w[1]), "round {round}: changes out of LSN order");
        assert!(log.acked.windows(2).all(|w| w[0] < w[1]), "round {round}: acks out of LSN order");
        kills += u32::from(killed);
        skipped += log.skipped.len();
        all_persisted.extend(&log.persisted);
        all_acked.extend(&log.acked);
        if last {
            assert!(log.done, "round {round}: the final consumer did not catch up");
            break log.persisted.len();
        }
    };

    let state = load_state(dir);
    let expected: BTreeMap<u64, Applied> = written
        .iter()
        .map(|(lsn, (table, key))| (*lsn, Applied { table: table.clone(), key: key.clone(), count: 1 }))
        .collect();
    let twice: Vec<_> = state.applied.iter().filter(|(_, a)| a.count != 1).collect();
    assert!(twice.is_empty(), "changes applied more than once: {twice:?}");
    let missing: Vec<_> = expected.keys().filter(|l| !state.applied.contains_key(l)).collect();
    assert!(missing.is_empty(), "changes never applied: {missing:?}");
    let extra: Vec<_> = state.applied.keys().filter(|l| !expected.contains_key(l)).collect();
    assert!(extra.is_empty(), "applied changes that were never committed: {extra:?}");
    assert_eq!(state.applied, expected, "every change applied once, with its table and key");
    assert_eq!(state.last_applied_lsn, *expected.keys().last().unwrap());

    let db = Database::open(dir.join("db"), config()).unwrap();
    assert_eq!(db.slot(SLOT).unwrap().confirmed_lsn, state.last_applied_lsn, "the final ack is durable");
    db.close().unwrap();

    // Every LSN persisted or acked was a committed change.
    assert!(all_persisted.iter().all(|l| expected.contains_key(l)));
    assert!(all_acked.iter().all(|l| expected.contains_key(l)));
    println!(
        "{round} rounds ({kills} SIGKILLs, {held_kills} between persist and ack), {} changes in {batches} batches, \
         {redelivery_rounds} rounds resumed behind the state, {skipped} redelivered changes skipped, \
         {final_round_persisted} applied by the final (unkilled) round, {:?}",
        expected.len(),
        started.elapsed()
    );
    assert!(kills >= MIN_ROUNDS / 2, "only {kills} kills");
    assert!(held_kills >= 1, "no kill landed between persist and ack");
    assert!(redelivery_rounds >= 1 && skipped >= 1, "redelivery after a kill was never exercised");
}
