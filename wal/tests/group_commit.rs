//! Group commit with the leader's gather (`WalConfig::group_commit_gather_max_us`): a lone writer
//! never waits, the switch turns it off, and with many committers and a slow `fdatasync` (so
//! leaders do gather) every acknowledgement still follows the sync that made it durable, also
//! when that sync fails. Only counts and contents are asserted, never durations.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use walden_wal::fault::FaultStorage;
use walden_wal::{Lsn, Storage, StorageFile, SyncMode, Wal, WalConfig, WalError};

const DIR: &str = "/wal";

fn config(gather_max_us: u64) -> WalConfig {
    WalConfig {
        sync_mode: SyncMode::Group,
        target_segment_size_bytes: 16 << 10,
        group_commit_gather_max_us: gather_max_us,
        ..WalConfig::default()
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
}

impl SlowSync {
    fn new(delay: Duration, fail_at: u64) -> SlowSync {
        SlowSync { inner: FaultStorage::new(), delay, syncs: Arc::default(), fail_at }
    }
}

#[derive(Debug)]
struct SlowFile {
    file: Box<dyn StorageFile>,
    delay: Duration,
    syncs: Arc<AtomicU64>,
    fail_at: u64,
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
        Ok(Box::new(SlowFile { file, delay: self.delay, syncs: self.syncs.clone(), fail_at: self.fail_at }))
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
fn a_lone_writer_never_gathers() {
    let storage = SlowSync::new(Duration::from_micros(300), 0);
    let cfg = config(1_000_000);
    let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
    let (acked, errors) = run(&wal, 1, 200);
    assert!(errors.iter().all(Option::is_none));
    let stats = wal.stats();
    assert_eq!((stats.group_commit_gathers, stats.group_commit_gather_us), (0, 0), "{stats:?}");
    assert_eq!(stats.data_syncs, 200, "one sync per append for a lone writer");
    wal.close().expect("close");
    check_durable(&storage, &cfg, &acked);
}

#[test]
fn gathering_can_be_turned_off() {
    let storage = SlowSync::new(Duration::from_micros(500), 0);
    let cfg = config(0);
    let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
    let (acked, errors) = run(&wal, 8, 60);
    assert!(errors.iter().all(Option::is_none));
    assert_eq!(acked.len(), 8 * 60);
    assert_eq!(wal.stats().group_commit_gathers, 0, "{:?}", wal.stats());
    wal.close().expect("close");
    check_durable(&storage, &cfg, &acked);
}

#[test]
fn gathered_commits_are_acknowledged_only_once_durable() {
    for threads in [2, 8, 32] {
        let storage = SlowSync::new(Duration::from_micros(800), 0);
        let cfg = config(2_000);
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

#[test]
fn a_failed_sync_while_gathering_fails_every_committer() {
    for fail_at in [3, 10, 25] {
        let storage = SlowSync::new(Duration::from_micros(800), fail_at);
        let cfg = config(2_000);
        let wal = Wal::open_with_storage(DIR, cfg.clone(), Arc::new(storage.clone())).expect("open");
        let (acked, errors) = run(&wal, 8, 200);
        let mut io_errors = 0;
        for e in &errors {
            match e {
                Some(WalError::Io { op: "fdatasync", .. }) => io_errors += 1,
                Some(WalError::Failed { .. }) => {}
                other => panic!("fail_at {fail_at}: every committer must fail, got {other:?}"),
            }
        }
        assert_eq!(io_errors, 1, "fail_at {fail_at}: exactly the leader of the failed sync gets the I/O error");
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
    for with_explicit_syncs in [false, true] {
        let storage = SlowSync::new(Duration::from_millis(1), 0);
        let cfg = config(2_000);
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
