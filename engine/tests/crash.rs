//! Crash test with real processes: a child process commits transactions from several threads in
//! `Group` mode, advances a slot and runs checkpoints, printing every acknowledgement; the parent
//! SIGKILLs it at random moments, reopens the database and checks that every acknowledged commit
//! is complete, that no partial transaction is visible, and that the slot's confirmed LSN is at
//! least every acknowledged advance and never beyond the log. Many rounds, bounded in time.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{read_all, transactions};
use rand::Rng;
use walden_engine::{Config, Database, EngineRecord, SlotOptions, StartPosition, SyncMode, WalConfig};

/// Set (to the database directory) only in the child process.
const CHILD_ENV: &str = "WALDEN_ENGINE_CRASH_CHILD_DIR";
const SLOT: &str = "consumer";
const COMMIT_THREADS: u64 = 3;
/// Wall-clock budget of the parent test.
const TEST_BUDGET: Duration = Duration::from_secs(8);
/// A child never runs longer than this, even if nobody kills it.
const CHILD_MAX_LIFETIME: Duration = Duration::from_secs(30);

fn config() -> Config {
    Config {
        wal: WalConfig {
            target_segment_size_bytes: 16 << 10,
            index_interval_bytes: 1024,
            sync_mode: SyncMode::Group,
            ..WalConfig::default()
        },
        ..Config::default()
    }
}

/// The child's body; a no-op unless this process was started by the parent test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let db = Database::open(&dir, config()).unwrap();
    let pid = std::process::id();
    let max_acked = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..COMMIT_THREADS {
            let (db, max_acked) = (&db, &max_acked);
            s.spawn(move || {
                let mut i = 0u64;
                while started.elapsed() < CHILD_MAX_LIFETIME {
                    let tag = format!("{pid}-{thread}-{i}");
                    let changes = 1 + i % 3;
                    let mut txn = db.begin();
                    txn.set_correlation_id(tag.clone());
                    for c in 0..changes {
                        txn.insert("t", format!("{tag}-{c}").as_bytes(), &[b'v'; 200]).unwrap();
                    }
                    match txn.commit_info() {
                        Ok(info) => {
                            println!("C {} {} {} {tag}", info.commit_lsn, info.txn_id, info.change_count);
                            max_acked.fetch_max(info.commit_lsn, Ordering::SeqCst);
                        }
                        Err(e) => println!("E commit failed: {e}"),
                    }
                    i += 1;
                }
            });
        }
        let (db, max_acked) = (&db, &max_acked);
        s.spawn(move || {
            let mut n = 0u64;
            while started.elapsed() < CHILD_MAX_LIFETIME {
                std::thread::sleep(Duration::from_millis(3));
                let target = max_acked.load(Ordering::SeqCst);
                // Lag a little behind, like a consumer would.
                let target = target.saturating_sub(1500);
                match db.advance(SLOT, target) {
                    Ok(info) => println!("A {target} {}", info.confirmed_lsn),
                    Err(e) => println!("E advance failed: {e}"),
                }
                n += 1;
                if n.is_multiple_of(10)
                    && let Err(e) = db.checkpoint()
                {
                    println!("E checkpoint failed: {e}");
                }
            }
        });
    });
}

#[derive(Debug)]
struct Acked {
    txn_id: u64,
    changes: u64,
    tag: String,
}

#[test]
fn sigkill_keeps_acknowledged_commits_and_slot_positions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), config()).unwrap();
        db.create_slot(SLOT, SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }).unwrap();
        db.close().unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let started = Instant::now();
    let mut acked: BTreeMap<u64, Acked> = BTreeMap::new();
    let mut max_advance = 0u64;
    let mut rounds = 0;
    let mut removed_commits = 0;
    while rounds < 3 || started.elapsed() < TEST_BUDGET {
        rounds += 1;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
                // A line cut by the kill has no newline: it was never fully acknowledged.
                if buf.ends_with(b"\n") {
                    lines.push(String::from_utf8_lossy(&buf).trim_end().to_string());
                }
                buf.clear();
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(40..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for line in &lines {
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "C" => {
                    let commit: u64 = f[1].parse().unwrap();
                    let a =
                        Acked { txn_id: f[2].parse().unwrap(), changes: f[3].parse().unwrap(), tag: f[4].to_string() };
                    assert!(acked.insert(commit, a).is_none(), "commit LSN {commit} acknowledged twice");
                }
                "A" => max_advance = max_advance.max(f[2].parse().unwrap()),
                "E" => panic!("child reported an error: {line}"),
                _ => {} // libtest chatter
            }
        }

        let db = Database::open(dir.path(), config()).unwrap();
        let slot = db.slot(SLOT).unwrap();
        let status = db.status();
        assert!(slot.state.is_valid(), "{slot:?}");
        assert!(
            slot.confirmed_lsn >= max_advance,
            "slot regressed: {} < acknowledged {max_advance}",
            slot.confirmed_lsn
        );
        assert!(slot.confirmed_lsn <= status.current_lsn, "slot beyond the log: {slot:?} {status:?}");
        assert!(db.wal().oldest_lsn() <= slot.restart_lsn, "retention removed WAL the slot needs");
        let txns = transactions(&read_all(&db));
        if let Some(first) = txns.first() {
            assert_eq!(first.txn_id, db.wal().oldest_lsn());
        }
        let by_commit: BTreeMap<u64, _> = txns.iter().map(|t| (t.commit_lsn, t)).collect();
        removed_commits = 0;
        for (commit, a) in &acked {
            if *commit < db.wal().oldest_lsn() {
                assert!(*commit < slot.restart_lsn, "acknowledged commit {commit} removed while the slot needs it");
                removed_commits += 1;
                continue;
            }
            let txn =
                by_commit.get(commit).unwrap_or_else(|| panic!("acknowledged commit {commit} ({a:?}) is missing"));
            assert_eq!((txn.txn_id, txn.changes.len() as u64), (a.txn_id, a.changes), "commit {commit}");
            let EngineRecord::Begin(b) = &txn.begin else { unreachable!() };
            assert_eq!(b.correlation_id.as_deref(), Some(a.tag.as_str()));
            for (c, change) in txn.changes.iter().enumerate() {
                let EngineRecord::Change(ch) = change else { panic!("{change:?}") };
                assert_eq!(&ch.key[..], format!("{}-{c}", a.tag).as_bytes());
            }
        }
        db.close().unwrap();
    }
    assert!(acked.len() > 100, "only {} commits acknowledged in {rounds} rounds", acked.len());
    assert!(max_advance > 0, "the slot was never advanced");
    eprintln!(
        "{rounds} rounds, {} acknowledged commits ({removed_commits} since removed by retention), slot confirmed ≥ {max_advance}",
        acked.len()
    );
}
