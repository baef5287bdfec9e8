//! Group commit with the leader's gather (`WalConfig::group_commit_gather_max_us`) and the
//! flusher thread (`WalConfig::group_commit_flusher`), each test with the flusher on and off: a
//! lone writer never waits and never hands over, the gather switch turns it off, a leader hands
//! batches queued during its sync to the flusher, and with many committers and a slow
//! `fdatasync` (so leaders do gather) every acknowledgement still follows the sync that made it
//! durable, also when that sync fails. Only counts and contents are asserted, never durations.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use walden_wal::testing::fault::FaultStorage;
use walden_wal::{Lsn, Storage, StorageFile, SyncMode, Wal, WalConfig, WalError};

const DIR: &str = "/wal";

fn config(gather_max_us: u64, flusher: bool) -> WalConfig {
    WalConfig {
        sync_mode: SyncMode::Group,
        target_segment_size_bytes: 16 << 10,
        group_commit_gather_max_us: gather_max_us,
        group_commit_flusher: flusher,
        ..WalConfig::default()
    }
}

/// Holds the next data sync once armed, until opened: lets a test queue a batch behind a
/// leader that is in the middle of its `fdatasync`. With `fail_the_next` set, the sync after
/// the held one fails with `EIO`.
#[derive(Debug, Default)]
struct SyncGate {
    armed: AtomicBool,
    entered: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
    fail_the_next: AtomicBool,
    failing: AtomicBool,
}

impl SyncGate {
    /// Called by every data sync: holds the armed one; returns whether this sync must fail.
    fn pass(&self) -> bool {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return self.failing.swap(false, Ordering::SeqCst);
        }
        self.entered.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().expect("gate");
        while !*open {
            open = self.opened.wait(open).expect("gate");
        }
        self.failing.store(self.fail_the_next.load(Ordering::SeqCst), Ordering::SeqCst);
        false
    }

    fn release(&self) {
        *self.open.lock().expect("gate") = true;
        self.opened.notify_all();
    }
}

/// `FaultStorage` whose data syncs take `delay` (a slow disk), and whose `fail_at`-th data sync
/// (counting from 1; 0 = never) fails with `EIO`.
#[derive(Debug, Clone)]
struct SlowSync {
    inner: FaultStorage,
    delay: Duration,
    syncs: Arc<AtomicU64>,
    fail_at: u64,
    gate: Arc<SyncGate>,
}

impl SlowSync {
    fn new(delay: Duration, fail_at: u64) -> SlowSync {
        SlowSync { inner: FaultStorage::new(), delay, syncs: Arc::default(), fail_at, gate: Arc::default() }
    }
}

#[derive(Debug)]
struct SlowFile {
    file: Box<dyn StorageFile>,
    delay: Duration,
    syncs: Arc<AtomicU64>,
    fail_at: u64,
    gate: Arc<SyncGate>,
}

impl StorageFile for SlowFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.gate.pass() {
            return Err(io::Error::from_raw_os_error(5));
        }
        std::thread::sleep(self.delay);
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.file.sync_data()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }
}

impl Storage for SlowSync {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.inner.create_new(path)
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let file = self.inner.open(path, writable)?;
        if !path.to_string_lossy().ends_with(".wal") {
            return Ok(file);
        }
        Ok(Box::new(SlowFile {
            file,
            delay: self.delay,
            syncs: self.syncs.clone(),
            fail_at: self.fail_at,
            gate: self.gate.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        self.inner.map_readonly(path)
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        self.inner.lock_exclusive(path)
    }
}

fn payload(thread: u64, i: u64) -> Vec<u8> {
    format!("thread {thread} append {i};").into_bytes()
}

/// Acknowledged LSNs with their payloads, ascending.
type Acked = Vec<(Lsn, Vec<u8>)>;

/// `threads` committers appending `per_thread` records each; returns every acknowledged LSN with
/// its payload, and each thread's first error.
fn run(wal: &Wal, threads: u64, per_thread: u64) -> (Acked, Vec<Option<WalError>>) {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..per_thread {
                        let p = payload(t, i);
                        match wal.append(1, &p) {
                            Ok(lsn) => {
                                // Acknowledged only once durable.
                                assert!(wal.durable_lsn() >= lsn, "LSN {lsn} acknowledged before its sync");
                                acked.push((lsn, p));
                            }
                            Err(e) => return (acked, Some(e)),
                        }
                    }
                    (acked, None)
                })
            })
            .collect();
        let mut acked = Vec::new();
        let mut errors = Vec::new();
        for h in handles {
            let (a, e) = h.join().expect("committer");
            acked.extend(a);
            errors.push(e);
        }
        acked.sort();
        (acked, errors)
    })
}

/// Power loss, reopen: every acknowledged record is there, with its payload.
fn check_durable(storage: &SlowSync, cfg: &WalConfig, acked: &[(Lsn, Vec<u8>)]) {
    storage.inner.power_loss();
    let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.inner.clone())).expect("reopen");
    let records: Vec<_> = wal.reader(1).expect("reader").collect::<Result<_, _>>().expect("read");
    for (lsn, p) in acked {
        let r = records.get(*lsn as usize - 1).unwrap_or_else(|| panic!("acknowledged LSN {lsn} lost"));
        assert_eq!((r.lsn, &r.payload[..]), (*lsn, &p[..]));
    }
    wal.close().expect("close");
}

#[test]
fn a_lone_writer_never_gathers_nor_hands_over() {
    for flusher in [true, false] {
        let storage = SlowSync::new(Duration::from_micros(300), 0);
        let cfg = config(1_000_000, flusher);
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let (acked, errors) = run(&wal, 1, 200);
        assert!(errors.iter().all(Option::is_none));
        let stats = wal.stats();
        assert_eq!((stats.group_commit_gathers, stats.group_commit_gather_us), (0, 0), "{stats:?}");
        assert_eq!(stats.data_syncs, 200, "one sync per append for a lone writer");
        assert_eq!(stats.flusher_syncs, 0, "a lone writer leads its own syncs: {stats:?}");
        wal.close().expect("close");
        check_durable(&storage, &cfg, &acked);
    }
}

#[test]
fn gathering_can_be_turned_off() {
    for flusher in [true, false] {
        let storage = SlowSync::new(Duration::from_micros(500), 0);
        let cfg = config(0, flusher);
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let (acked, errors) = run(&wal, 8, 60);
        assert!(errors.iter().all(Option::is_none));
        assert_eq!(acked.len(), 8 * 60);
        assert_eq!(wal.stats().group_commit_gathers, 0, "{:?}", wal.stats());
        wal.close().expect("close");
        check_durable(&storage, &cfg, &acked);
    }
}

/// A leader's append held inside its `fdatasync` (holding `io`) while a second append queues
/// and parks behind it; then the sync ends. Returns both appends' results.
fn queue_behind_a_held_sync(storage: &SlowSync, wal: &Wal) -> (Result<Lsn, WalError>, Result<Lsn, WalError>) {
    storage.gate.armed.store(true, Ordering::SeqCst);
    std::thread::scope(|s| {
        let leader = s.spawn(|| wal.append(1, b"leader"));
        while !storage.gate.entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let follower = s.spawn(|| wal.append(1, b"follower"));
        while wal.next_lsn() < 3 {
            std::thread::yield_now();
        }
        // Queued; give it time to park (a follower that has not parked yet by the end of the
        // leader's sync would lead itself, which is also correct, but not what is tested).
        std::thread::sleep(Duration::from_millis(20));
        storage.gate.release();
        (leader.join().expect("leader"), follower.join().expect("follower"))
    })
}

/// A leader whose sync ends with a batch queued behind it hands that batch to the flusher and
/// returns; the flusher syncs it and wakes its committer. Without the flusher, the leader wakes
/// that committer to lead its own sync. Either way: two syncs, both commits durable.
#[test]
fn a_batch_queued_during_a_sync_is_synced_by_the_flusher() {
    for flusher in [true, false] {
        let storage = SlowSync::new(Duration::ZERO, 0);
        let cfg = WalConfig { preallocate_bytes: 0, ..config(0, flusher) };
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let before = wal.stats();
        let (leader, follower) = queue_behind_a_held_sync(&storage, &wal);
        let acked = vec![
            (leader.expect("leader's append"), b"leader".to_vec()),
            (follower.expect("follower's append"), b"follower".to_vec()),
        ];
        assert_eq!((acked[0].0, acked[1].0), (1, 2));
        let stats = wal.stats();
        assert_eq!(stats.data_syncs - before.data_syncs, 2, "flusher {flusher}: {stats:?}");
        assert_eq!(stats.flusher_syncs, u64::from(flusher), "flusher {flusher}: {stats:?}");
        assert_eq!(wal.durable_lsn(), 2);
        wal.close().expect("close");
        check_durable(&storage, &cfg, &acked);
    }
}

/// The flusher's sync fails: its committer gets `Failed` naming the `fdatasync` error (the
/// flusher has no caller to return the I/O error to), the log refuses everything after, and
/// the leader's acknowledged commit survives a power loss. Without the flusher, the follower
/// leads that sync itself and gets the I/O error.
#[test]
fn a_failed_flusher_sync_fails_the_committers_it_covered() {
    for flusher in [true, false] {
        let storage = SlowSync::new(Duration::ZERO, 0);
        storage.gate.fail_the_next.store(true, Ordering::SeqCst);
        let cfg = WalConfig { preallocate_bytes: 0, ..config(0, flusher) };
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let (leader, follower) = queue_behind_a_held_sync(&storage, &wal);
        assert_eq!(leader.expect("the leader's own sync succeeded"), 1);
        match follower {
            Err(WalError::Failed { reason }) if flusher => assert!(reason.contains("fdatasync"), "{reason}"),
            Err(WalError::Io { op: "fdatasync", .. }) if !flusher => {}
            other => panic!("flusher {flusher}: {other:?}"),
        }
        assert!(wal.is_failed());
        assert!(matches!(wal.append(1, b"later"), Err(WalError::Failed { .. })));
        assert_eq!(wal.durable_lsn(), 1);
        assert_eq!(wal.stats().flusher_syncs, 0, "a failed round is not counted");
        drop(wal);
        check_durable(&storage, &cfg, &[(1, b"leader".to_vec())]);
    }
}

#[test]
fn gathered_commits_are_acknowledged_only_once_durable() {
    for (threads, flusher) in [(2, true), (8, true), (32, true), (2, false), (8, false), (32, false)] {
        let storage = SlowSync::new(Duration::from_micros(800), 0);
        let cfg = config(2_000, flusher);
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let (acked, errors) = run(&wal, threads, 40);
        assert!(errors.iter().all(Option::is_none), "{errors:?}");
        // Every append acknowledged once, with contiguous LSNs.
        let lsns: Vec<Lsn> = acked.iter().map(|(l, _)| *l).collect();
        assert_eq!(lsns, (1..=threads * 40).collect::<Vec<_>>());
        let stats = wal.stats();
        assert!(stats.data_syncs <= threads * 40, "{stats:?}");
        assert_eq!(wal.durable_lsn(), threads * 40);
        wal.close().expect("close");
        check_durable(&storage, &cfg, &acked);
    }
}

/// Every committer fails. With the flusher off, exactly the leader of the failed sync gets the
/// I/O error and the others `Failed`; with it on, the flusher may have run that sync, and then
/// every committer gets `Failed` naming it.
#[test]
fn a_failed_sync_while_gathering_fails_every_committer() {
    for (fail_at, flusher) in [(3, true), (10, true), (25, true), (3, false), (10, false), (25, false)] {
        let storage = SlowSync::new(Duration::from_micros(800), fail_at);
        let cfg = config(2_000, flusher);
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let (acked, errors) = run(&wal, 8, 200);
        let mut io_errors = 0;
        for e in &errors {
            match e {
                Some(WalError::Io { op: "fdatasync", .. }) => io_errors += 1,
                Some(WalError::Failed { reason }) => assert!(reason.contains("fdatasync"), "{reason}"),
                other => panic!("fail_at {fail_at}: every committer must fail, got {other:?}"),
            }
        }
        if flusher {
            assert!(io_errors <= 1, "fail_at {fail_at}: at most the leader of the failed sync gets the I/O error");
        } else {
            assert_eq!(io_errors, 1, "fail_at {fail_at}: exactly the leader of the failed sync gets the I/O error");
        }
        assert!(wal.is_failed());
        assert!(matches!(wal.append(1, b"later"), Err(WalError::Failed { .. })));
        let acked_end = acked.last().map_or(0, |(l, _)| *l);
        assert!(wal.durable_lsn() >= acked_end);
        drop(wal);
        check_durable(&storage, &cfg, &acked);
    }
}

/// Parked followers are woken by the sync that covers them, not by the safety-net timeout
/// (50 ms): with syncs of 1 ms, a missed wake-up would show as about one timeout per parked
/// follower. Also while another thread seals segments and syncs explicitly (both hold the
/// `io` lock the followers park behind).
#[test]
fn followers_are_woken_by_the_sync_that_covers_them() {
    for (with_explicit_syncs, flusher) in [(false, true), (true, true), (false, false), (true, false)] {
        let storage = SlowSync::new(Duration::from_millis(1), 0);
        let cfg = config(2_000, flusher);
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (acked, errors) = std::thread::scope(|s| {
            let sealer = s.spawn(|| {
                while with_explicit_syncs && !stop.load(Ordering::Relaxed) {
                    wal.seal_active_segment().expect("seal");
                    wal.sync().expect("sync");
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let result = run(&wal, 16, 60);
            stop.store(true, Ordering::Relaxed);
            sealer.join().expect("sealer");
            result
        });
        assert!(errors.iter().all(Option::is_none), "{errors:?}");
        assert_eq!(acked.len(), 16 * 60);
        let stats = wal.stats();
        // Far fewer syncs than commits: followers did park behind leaders.
        assert!(stats.data_syncs < 16 * 60 / 2, "{stats:?}");
        // Scheduling noise on a loaded machine may stretch a rare wait past the timeout; a
        // missed wake-up makes almost every parked follower time out.
        assert!(stats.group_commit_park_timeouts * 20 < 16 * 60, "{stats:?}");
        wal.close().expect("close");
        check_durable(&storage, &cfg, &acked);
    }
}
