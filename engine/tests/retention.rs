//! Retention: what checkpoints remove and what holds segments back, the guard rails (byte cap,
//! idle timeout) with reasons that survive reopening, the sealed-segment hook, and a model-based
//! property test over random slot / commit / checkpoint / power-loss sequences.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{read_all, small_config, transactions};
use proptest::prelude::*;
use walden_engine::slot::SlotRecord;
use walden_engine::walden_wal::Storage;
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{
    ChangeOp, Config, Database, EngineError, EngineRecord, InvalidationReason, Lsn, RetentionHolder, SegmentInfo,
    SegmentSealed, SlotFilter, SlotOptions, SlotState, StartPosition, SyncMode,
};

fn commit_n(db: &Database, n: u32, value_len: usize) -> Lsn {
    let mut last = 0;
    for i in 0..n {
        let mut t = db.begin();
        t.insert("t", &i.to_be_bytes(), &vec![b'x'; value_len]).unwrap();
        last = t.commit().unwrap();
    }
    last
}

fn oldest_at(start: StartPosition) -> SlotOptions {
    SlotOptions { start, ..SlotOptions::default() }
}

#[test]
fn checkpoint_removes_only_what_nothing_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Always)).unwrap();
    db.create_slot("reader", oldest_at(StartPosition::Oldest)).unwrap();
    let end = commit_n(&db, 150, 100);
    let segments = db.segments();
    assert!(segments.len() >= 6, "{} segments", segments.len());

    // The slot at LSN 1 holds everything.
    let report = db.checkpoint().unwrap();
    assert!(report.removed_segments.is_empty());
    assert_eq!((report.horizon, &report.held_by), (Some(1), &RetentionHolder::Slot("reader".into())));
    assert_eq!(db.status().oldest_segment_held_by, RetentionHolder::Slot("reader".into()));

    // Advance into the 4th segment: the three before it go, the one holding the restart LSN stays.
    let restart = segments[3].first_lsn + 2;
    db.advance("reader", restart - 1).unwrap();
    let report = db.checkpoint().unwrap();
    assert_eq!(report.removed_segments, segments[..3].to_vec());
    assert_eq!(report.removed_bytes, segments[..3].iter().map(|s| s.size_bytes).sum::<u64>());
    assert_eq!(db.wal().oldest_lsn(), segments[3].first_lsn);
    let tail: Vec<_> = db.read_log(restart).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(tail.len() as u64, end - restart + 1, "everything the slot needs is readable");
    assert!(matches!(db.read_log(1), Err(EngineError::Wal(walden_engine::WalError::LsnNotFound { .. }))));

    // A lower retain-from horizon takes over; then the host checkpoint; then nothing.
    db.set_retain_from(Some(segments[3].first_lsn)).unwrap();
    db.advance("reader", end).unwrap();
    assert_eq!(db.status().oldest_segment_held_by, RetentionHolder::RetainFrom(segments[3].first_lsn));
    assert!(db.checkpoint().unwrap().removed_segments.is_empty());
    db.set_retain_from(Some(segments[4].first_lsn)).unwrap();
    assert_eq!(db.checkpoint().unwrap().removed_segments, vec![segments[3].clone()]);

    db.set_retain_from(None).unwrap();
    assert_eq!(db.set_checkpoint_lsn(segments[4].last_lsn).unwrap(), segments[4].last_lsn);
    assert_eq!(db.set_checkpoint_lsn(1).unwrap(), segments[4].last_lsn, "the checkpoint never moves back");
    db.drop_slot("reader").unwrap();
    let report = db.checkpoint().unwrap();
    assert_eq!(report.held_by, RetentionHolder::Checkpoint(segments[4].last_lsn));
    assert_eq!(report.removed_segments, vec![segments[4].clone()]);
    assert_eq!(db.status().oldest_segment_held_by, RetentionHolder::Checkpoint(segments[4].last_lsn));

    // Move the checkpoint to the end: every sealed segment goes, the active one stays.
    db.set_checkpoint_lsn(end).unwrap();
    let report = db.checkpoint().unwrap();
    assert!(!report.removed_segments.is_empty());
    assert_eq!(db.segments().len(), 1);
    assert_eq!(db.status().oldest_segment_held_by, RetentionHolder::ActiveSegment);
    db.close().unwrap();

    // The retention inputs are on disk.
    let db = Database::open(dir.path(), small_config(SyncMode::Always)).unwrap();
    assert_eq!((db.checkpoint_lsn(), db.retain_from()), (Some(end), None));
}

#[test]
fn without_any_holder_checkpoint_removes_every_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::None)).unwrap();
    commit_n(&db, 100, 100);
    db.flush().unwrap();
    let before = db.segments();
    assert!(before.len() > 2);
    assert_eq!(db.status().oldest_segment_held_by, RetentionHolder::Nothing);
    let report = db.checkpoint().unwrap();
    assert_eq!((report.horizon, report.held_by), (None, RetentionHolder::Nothing));
    assert_eq!(report.removed_segments.len(), before.len() - 1);
    assert_eq!(transactions(&read_all(&db)).first().map(|t| t.txn_id), Some(db.wal().oldest_lsn()));
}

#[test]
fn byte_cap_invalidates_the_laggard_and_frees_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { max_slot_wal_keep_bytes: Some(3 * 4096), ..small_config(SyncMode::Group) };
    let db = Database::open(dir.path(), config.clone()).unwrap();
    db.create_slot("laggard", oldest_at(StartPosition::Oldest)).unwrap();
    db.create_slot("keeper", SlotOptions::default()).unwrap();
    db.create_slot("laggard_tmp", SlotOptions { temporary: true, ..oldest_at(StartPosition::Oldest) }).unwrap();
    let small = commit_n(&db, 20, 50);
    // Under the cap: nothing happens.
    let report = db.checkpoint().unwrap();
    assert!(report.invalidated_slots.is_empty(), "{report:?}");
    let end = commit_n(&db, 200, 100);
    db.advance("keeper", end).unwrap();
    let status = db.status();
    let laggard = status.slots.iter().find(|s| s.info.name == "laggard").unwrap();
    assert!(laggard.pinned_bytes > 3 * 4096 && laggard.lag_lsns == end, "{laggard:?}");
    let segments_before = db.segments().len();

    let report = db.checkpoint().unwrap();
    let names: Vec<_> = report.invalidated_slots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["laggard", "laggard_tmp"]);
    let InvalidationReason::MaxWalKeepBytes { restart_lsn: 1, pinned_bytes, max_bytes } =
        report.invalidated_slots[0].reason
    else {
        panic!("{report:?}")
    };
    assert!(pinned_bytes > max_bytes && max_bytes == 3 * 4096);
    assert!(report.removed_segments.len() >= segments_before - 2, "the invalidated slot's segments are freed");
    assert_eq!(report.held_by, RetentionHolder::Slot("keeper".into()));
    assert!(small < db.wal().oldest_lsn());

    let lost = db.slot("laggard").unwrap();
    let SlotState::Lost(inv) = lost.state else { panic!("{lost:?}") };
    assert!(inv.reason.to_string().contains("max_slot_wal_keep_bytes"), "{}", inv.reason);
    assert!(matches!(db.advance("laggard", end), Err(EngineError::SlotInvalidated { name, .. }) if name == "laggard"));
    assert!(matches!(db.acquire_slot("laggard"), Err(EngineError::SlotInvalidated { .. })));
    assert!(db.status().slots.iter().any(|s| s.info.name == "laggard" && s.pinned_bytes == 0));
    db.close().unwrap();

    // The reason is readable after reopening; a lost slot can be dropped.
    let db = Database::open(dir.path(), config).unwrap();
    assert_eq!(db.slot("laggard").unwrap().state, SlotState::Lost(inv));
    assert!(db.slot("keeper").unwrap().state.is_valid());
    db.drop_slot("laggard").unwrap();
}

/// An acquired slot is exempt from the idle timeout however long it idles; an inactive one is
/// not. Deterministic: sleeping only ever makes the idle time longer than the timeout.
#[test]
fn idle_timeout_invalidates_inactive_slots_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { slot_idle_timeout_ms: Some(40), ..small_config(SyncMode::Group) };
    let db = Database::open(dir.path(), config.clone()).unwrap();
    db.create_slot("idle", SlotOptions::default()).unwrap();
    db.create_slot("busy", SlotOptions::default()).unwrap();
    let guard = db.acquire_slot("busy").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(80));
    let report = db.checkpoint().unwrap();
    assert_eq!(report.invalidated_slots.len(), 1, "{report:?}");
    assert_eq!(report.invalidated_slots[0].name, "idle");
    let InvalidationReason::IdleTimeout { idle_ms, timeout_ms: 40 } = report.invalidated_slots[0].reason else {
        panic!("{report:?}")
    };
    assert!(idle_ms >= 80);
    assert_eq!(guard.info().state, SlotState::Active);
    guard.release().unwrap();
    db.close().unwrap();
    let db = Database::open(dir.path(), config).unwrap();
    assert!(matches!(
        db.slot("idle").unwrap().state,
        SlotState::Lost(inv) if inv.reason == InvalidationReason::IdleTimeout { idle_ms, timeout_ms: 40 }
    ));
    assert!(db.slot("busy").unwrap().state.is_valid());
}

/// Idle time is measured from the persisted last activity, so time the database was closed
/// counts, and any activity (here an advance) resets it. The timeout is ten minutes and two slots
/// were last active an hour ago (their files are rewritten while the database is closed, as if
/// it had been down for an hour), so only a ten-minute stall could make this test flaky.
#[test]
fn idle_time_counts_from_the_persisted_last_activity_and_activity_resets_it() {
    const TIMEOUT_MS: u64 = 10 * 60 * 1000;
    const HOUR_US: u64 = 3600 * 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let config = Config { slot_idle_timeout_ms: Some(TIMEOUT_MS), ..small_config(SyncMode::Group) };
    let db = Database::open(dir.path(), config.clone()).unwrap();
    for name in ["stale", "revived", "fresh"] {
        db.create_slot(name, SlotOptions::default()).unwrap();
    }
    db.close().unwrap();
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let hour_ago_us = now_us - HOUR_US;
    for name in ["stale", "revived"] {
        let path = dir.path().join("slots").join(format!("{name}.slot"));
        let mut rec = SlotRecord::decode(&std::fs::read(&path).unwrap()).unwrap();
        rec.last_active_at_us = hour_ago_us;
        std::fs::write(&path, rec.encode()).unwrap();
    }

    let db = Database::open(dir.path(), config.clone()).unwrap();
    assert_eq!(db.slot("stale").unwrap().last_active_at_us, hour_ago_us, "opening is not activity");
    let c = commit_n(&db, 1, 10);
    db.advance("revived", c).unwrap();
    assert!(db.slot("revived").unwrap().last_active_at_us >= now_us, "an advance is activity");
    let report = db.checkpoint().unwrap();
    let names: Vec<_> = report.invalidated_slots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["stale"], "{report:?}");
    let reason = report.invalidated_slots[0].reason;
    let InvalidationReason::IdleTimeout { idle_ms, timeout_ms: TIMEOUT_MS } = reason else { panic!("{report:?}") };
    assert!(idle_ms >= HOUR_US / 1000, "idle for {idle_ms} ms");
    assert!(reason.to_string().contains("idle"), "{reason}");
    // The lost slot no longer holds WAL or accepts advances.
    assert!(matches!(db.advance("stale", c), Err(EngineError::SlotInvalidated { .. })));
    db.close().unwrap();

    // The reason is readable after reopening; the others are still valid.
    let db = Database::open(dir.path(), config).unwrap();
    let SlotState::Lost(inv) = db.slot("stale").unwrap().state else { panic!("stale is not lost") };
    assert_eq!(inv.reason, reason);
    assert!(inv.invalidated_at_us >= now_us);
    assert!(db.slot("revived").unwrap().state.is_valid() && db.slot("fresh").unwrap().state.is_valid());
    assert!(db.checkpoint().unwrap().invalidated_slots.is_empty(), "an invalidation happens once");
}

#[test]
fn status_reports_positions_sizes_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    db.create_slot("s", oldest_at(StartPosition::Oldest)).unwrap();
    db.create_slot("caught_up", SlotOptions::default()).unwrap();
    let end = commit_n(&db, 60, 100);
    db.advance("caught_up", end).unwrap();
    let st = db.status();
    assert_eq!((st.current_lsn, st.durable_lsn, st.oldest_lsn), (end, end, 1));
    let segments = db.segments();
    assert_eq!(st.segment_count, segments.len());
    assert_eq!(st.segment_bytes, segments.iter().map(|s| s.size_bytes).sum::<u64>());
    assert_eq!(st.retention_horizon, Some(1));
    let s = &st.slots.iter().find(|s| s.info.name == "s").unwrap();
    assert_eq!((s.lag_lsns, s.lag_bytes), (end, st.segment_bytes));
    let c = &st.slots.iter().find(|s| s.info.name == "caught_up").unwrap();
    assert_eq!((c.lag_lsns, c.lag_bytes, c.pinned_bytes), (0, 0, 0));
}

#[derive(Default)]
struct Recorder {
    sealed: Mutex<Vec<SegmentInfo>>,
    calls: AtomicUsize,
}

impl SegmentSealed for Recorder {
    fn segment_sealed(&self, segment: &SegmentInfo) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.sealed.lock().unwrap().push(segment.clone());
    }
}

#[test]
fn the_sealed_segment_hook_sees_every_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    let recorder = Arc::new(Recorder::default());
    db.set_segment_sealed_hook(Some(recorder.clone()));
    commit_n(&db, 80, 100);
    db.wal().seal_active_segment().unwrap();
    let sealed: Vec<_> = db.segments().into_iter().filter(|s| s.sealed).collect();
    assert!(sealed.len() >= 3);
    assert_eq!(*recorder.sealed.lock().unwrap(), sealed);
    db.set_segment_sealed_hook(None);
    commit_n(&db, 1, 10);
    db.wal().seal_active_segment().unwrap();
    assert_eq!(recorder.calls.load(Ordering::SeqCst), sealed.len());
}

#[test]
fn open_invalidates_slots_the_log_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(SyncMode::Group);
    let db = Database::open(dir.path(), config.clone()).unwrap();
    let end = commit_n(&db, 5, 10);
    db.close().unwrap();
    // A slot file claiming more than the log holds (as after a point-in-time truncation).
    let rec = SlotRecord {
        name: "ahead".into(),
        restart_lsn: end + 11,
        confirmed_lsn: end + 10,
        created_at_us: 1,
        last_active_at_us: 1,
        invalidation: None,
        filter: SlotFilter::default(),
    };
    std::fs::write(dir.path().join("slots/ahead.slot"), rec.encode()).unwrap();
    let db = Database::open(dir.path(), config.clone()).unwrap();
    let reason = InvalidationReason::AheadOfLog { confirmed_lsn: end + 10, last_lsn: end };
    assert_eq!(db.open_report().slots_invalidated.len(), 1);
    assert_eq!(db.open_report().slots_invalidated[0].reason, reason);
    assert!(matches!(db.slot("ahead").unwrap().state, SlotState::Lost(inv) if inv.reason == reason));
    db.close().unwrap();
    let db = Database::open(dir.path(), config).unwrap();
    assert!(db.open_report().slots_invalidated.is_empty(), "persisted: not re-invalidated");
    assert!(matches!(db.slot("ahead").unwrap().state, SlotState::Lost(inv) if inv.reason == reason));
}

// ----- model-based property test -----

const SLOT_NAMES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const SEGMENT_BYTES: u64 = 4096;

#[derive(Debug, Clone)]
enum Op {
    Commit {
        changes: u8,
        value_len: u16,
    },
    CreateSlot {
        slot: usize,
        oldest: bool,
        temporary: bool,
    },
    Advance {
        slot: usize,
        permille: u16,
        past_end: bool,
    },
    DropSlot {
        slot: usize,
    },
    SetRetainFrom(Option<u16>),
    SetCheckpoint(u16),
    /// The archiver's "everything up to here is in the lake" (slots stop pinning it).
    SetArchived(Option<u16>),
    Checkpoint,
    PowerLoss {
        seed: Option<u64>,
    },
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..4, 0u16..1500).prop_map(|(changes, value_len)| Op::Commit { changes, value_len }),
        2 => (0..SLOT_NAMES.len(), any::<bool>(), prop::bool::weighted(0.25))
            .prop_map(|(slot, oldest, temporary)| Op::CreateSlot { slot, oldest, temporary }),
        3 => (0..SLOT_NAMES.len(), 0u16..=1000, prop::bool::weighted(0.1))
            .prop_map(|(slot, permille, past_end)| Op::Advance { slot, permille, past_end }),
        1 => (0..SLOT_NAMES.len()).prop_map(|slot| Op::DropSlot { slot }),
        1 => prop::option::of(0u16..=1100).prop_map(Op::SetRetainFrom),
        1 => (0u16..=1000).prop_map(Op::SetCheckpoint),
        1 => prop::option::of(0u16..=1000).prop_map(Op::SetArchived),
        3 => Just(Op::Checkpoint),
        1 => prop::option::of(any::<u64>()).prop_map(|seed| Op::PowerLoss { seed }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct ModelSlot {
    confirmed: Lsn,
    temporary: bool,
    lost: bool,
}

#[derive(Default, Debug)]
struct Model {
    /// BEGIN LSN → (COMMIT LSN, the inserted keys).
    txns: BTreeMap<Lsn, (Lsn, Vec<Vec<u8>>)>,
    next_lsn: Lsn,
    slots: BTreeMap<String, ModelSlot>,
    retain_from: Option<Lsn>,
    checkpoint: Option<Lsn>,
    archived: Option<Lsn>,
    /// Oldest LSN in the log: moves only at a checkpoint.
    oldest: Lsn,
}

impl Model {
    /// The oldest LSN a consumer can read: the WAL's, or 1 when the archive reaches the WAL.
    fn readable_from(&self) -> Lsn {
        match self.archived {
            Some(a) if a + 1 >= self.oldest => 1,
            _ => self.oldest,
        }
    }
}

struct Harness {
    fs: FaultStorage,
    storage: Arc<dyn Storage>,
    config: Config,
    db: Option<Database>,
    model: Model,
    commits: u32,
}

impl Harness {
    fn new(max_keep: Option<u64>) -> Harness {
        let fs = FaultStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(fs.clone());
        let config = Config { max_slot_wal_keep_bytes: max_keep, ..small_config(SyncMode::Group) };
        let db = Database::open_with_storage("/db", config.clone(), storage.clone()).unwrap();
        Harness {
            fs,
            storage,
            config,
            db: Some(db),
            model: Model { next_lsn: 1, oldest: 1, ..Model::default() },
            commits: 0,
        }
    }

    fn db(&self) -> &Database {
        self.db.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        let db = Database::open_with_storage("/db", self.config.clone(), self.storage.clone()).unwrap();
        self.model.slots.retain(|_, s| !s.temporary);
        // A slot whose restart LSN neither the WAL nor the archive still has is invalidated.
        let readable_from = self.model.readable_from();
        for inv in &db.open_report().slots_invalidated {
            let InvalidationReason::WalRemoved { restart_lsn, oldest_lsn } = inv.reason else {
                panic!("unexpected invalidation at open {inv:?}")
            };
            assert!(restart_lsn < readable_from && oldest_lsn == self.model.oldest, "{inv:?}");
            let s = self.model.slots.get_mut(&inv.name).expect("invalidated a slot that does not exist");
            assert!(!s.lost);
            s.lost = true;
        }
        for (name, s) in &self.model.slots {
            assert!(
                s.lost || s.confirmed + 1 >= readable_from,
                "slot {name} at {} should have been invalidated at open",
                s.confirmed + 1
            );
        }
        self.db = Some(db);
    }

    fn apply(&mut self, op: &Op) {
        let current = self.model.next_lsn - 1;
        let scale = |permille: u16| current * u64::from(permille) / 1000;
        match *op {
            Op::Commit { changes, value_len } => {
                let mut t = self.db().begin();
                let mut keys = Vec::new();
                for c in 0..changes {
                    let key = format!("{}-{c}", self.commits).into_bytes();
                    t.insert("t", &key, &vec![c; usize::from(value_len)]).unwrap();
                    keys.push(key);
                }
                let info = t.commit_info().unwrap();
                assert_eq!(info.txn_id, self.model.next_lsn);
                self.model.txns.insert(info.txn_id, (info.commit_lsn, keys));
                self.model.next_lsn = info.commit_lsn + 1;
                self.commits += 1;
            }
            Op::CreateSlot { slot, oldest, temporary } => {
                let name = SLOT_NAMES[slot];
                let start = if oldest { StartPosition::Oldest } else { StartPosition::Current };
                let result = self.db().create_slot(name, SlotOptions { start, temporary, ..SlotOptions::default() });
                if self.model.slots.contains_key(name) {
                    assert!(matches!(result, Err(EngineError::SlotExists { .. })), "{result:?}");
                } else {
                    let info = result.unwrap();
                    let expected_restart = if oldest { self.db().wal().oldest_lsn() } else { self.model.next_lsn };
                    assert_eq!(info.restart_lsn, expected_restart);
                    self.model
                        .slots
                        .insert(name.into(), ModelSlot { confirmed: info.confirmed_lsn, temporary, lost: false });
                }
            }
            Op::Advance { slot, permille, past_end } => {
                let name = SLOT_NAMES[slot];
                let target = if past_end { current + 1 } else { scale(permille) };
                let result = self.db().advance(name, target);
                match self.model.slots.get_mut(name) {
                    None => assert!(matches!(result, Err(EngineError::SlotNotFound { .. })), "{result:?}"),
                    Some(s) if s.lost => {
                        assert!(matches!(result, Err(EngineError::SlotInvalidated { .. })), "{result:?}")
                    }
                    Some(_) if past_end => {
                        assert!(matches!(result, Err(EngineError::LsnBeyondDurable { .. })), "{result:?}")
                    }
                    Some(s) => {
                        s.confirmed = s.confirmed.max(target);
                        assert_eq!(result.unwrap().confirmed_lsn, s.confirmed);
                    }
                }
            }
            Op::DropSlot { slot } => {
                let name = SLOT_NAMES[slot];
                let result = self.db().drop_slot(name);
                if self.model.slots.remove(name).is_some() {
                    result.unwrap();
                } else {
                    assert!(matches!(result, Err(EngineError::SlotNotFound { .. })), "{result:?}");
                }
            }
            Op::SetRetainFrom(p) => {
                let lsn = p.map(|p| (current + 1) * u64::from(p) / 1000);
                self.db().set_retain_from(lsn).unwrap();
                self.model.retain_from = lsn;
            }
            Op::SetArchived(p) => {
                let lsn = p.map(scale);
                self.db().set_archived_lsn(lsn).unwrap();
                self.model.archived = lsn;
                let readable_from = self.model.readable_from();
                for (name, s) in self.model.slots.iter_mut() {
                    if !s.lost && s.confirmed + 1 < readable_from {
                        s.lost = true;
                        let info = self.db.as_ref().unwrap().slot(name).unwrap();
                        assert!(
                            matches!(info.state, SlotState::Lost(inv) if matches!(inv.reason, InvalidationReason::WalRemoved { .. })),
                            "{info:?}"
                        );
                    }
                }
            }
            Op::SetCheckpoint(p) => {
                let lsn = scale(p);
                let in_force = self.db().set_checkpoint_lsn(lsn).unwrap();
                self.model.checkpoint = Some(self.model.checkpoint.map_or(lsn, |c| c.max(lsn)));
                assert_eq!(Some(in_force), self.model.checkpoint);
            }
            Op::Checkpoint => {
                let report = self.db().checkpoint().unwrap();
                for inv in &report.invalidated_slots {
                    let InvalidationReason::MaxWalKeepBytes { pinned_bytes, max_bytes, .. } = inv.reason else {
                        panic!("unexpected invalidation {inv:?}")
                    };
                    assert!(pinned_bytes > max_bytes && Some(max_bytes) == self.config.max_slot_wal_keep_bytes);
                    let s = self.model.slots.get_mut(&inv.name).expect("invalidated a slot that does not exist");
                    assert!(!s.lost, "invalidated twice");
                    s.lost = true;
                }
                // The horizon is exactly min(valid slots' pins, retain_from, checkpoint + 1), a
                // slot's pin being its restart LSN, or the first unarchived LSN if that is later.
                let m = &self.model;
                let horizon = m
                    .slots
                    .values()
                    .filter(|s| !s.lost)
                    .map(|s| (s.confirmed + 1).max(m.archived.map_or(0, |a| a + 1)))
                    .chain(m.retain_from)
                    .chain(m.checkpoint.map(|c| c + 1))
                    .min();
                assert_eq!(report.horizon, horizon, "{report:?}");
                // Safety: nothing at or after the horizon was removed.
                let oldest = self.db().wal().oldest_lsn();
                assert!(oldest >= m.oldest, "the oldest LSN moved backwards");
                if let Some(h) = horizon {
                    let bound = h.clamp(1, m.next_lsn).max(m.oldest);
                    assert!(oldest <= bound, "removed WAL at or after the horizon {h}: {report:?}");
                }
                // Liveness: whatever nothing holds is gone.
                let segments = self.db().segments();
                if segments[0].sealed {
                    let horizon = horizon.expect("an unrestricted checkpoint removes every sealed segment");
                    assert!(segments[0].last_lsn >= horizon, "{segments:?} {report:?}");
                }
                self.model.oldest = oldest;
            }
            Op::PowerLoss { seed } => {
                match seed {
                    Some(seed) => self.fs.power_loss_keep_random_prefix(seed),
                    None => self.fs.power_loss(),
                }
                drop(self.db.take());
                self.reopen();
            }
            Op::Reopen => {
                self.db.take().unwrap().close().unwrap();
                self.reopen();
            }
        }
    }

    /// Everything the engine shows must agree with the model, and retention must never have
    /// removed a record that a valid slot (or retain-from, or the checkpoint) still needs.
    fn check(&self) {
        let db = self.db();
        let m = &self.model;
        assert_eq!(db.wal().next_lsn(), m.next_lsn, "acknowledged commits lost or phantom ones appeared");
        let oldest = db.wal().oldest_lsn();
        let entries = read_all(db);
        let txns = transactions(&entries);
        if let Some(first) = entries.first() {
            assert_eq!(first.lsn, oldest, "the log starts at a transaction boundary at the oldest LSN");
        }
        let expected: Vec<_> = m.txns.range(oldest..).collect();
        assert_eq!(txns.len(), expected.len(), "oldest {oldest}");
        for (got, (begin, (commit, keys))) in txns.iter().zip(expected) {
            assert_eq!((got.txn_id, got.commit_lsn), (*begin, *commit));
            let got_keys: Vec<_> = got
                .changes
                .iter()
                .map(|c| match c {
                    EngineRecord::Change(c) if c.op == ChangeOp::Insert => c.key.to_vec(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(&got_keys, keys);
        }
        let end = m.next_lsn;
        let engine_slots = db.slots();
        assert_eq!(
            engine_slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            m.slots.keys().collect::<Vec<_>>()
        );
        for info in engine_slots {
            let s = &m.slots[&info.name];
            assert_eq!(info.state.is_valid(), !s.lost, "{info:?}");
            assert_eq!(info.confirmed_lsn, s.confirmed, "{info:?}");
            assert_eq!(info.restart_lsn, s.confirmed + 1);
            assert_eq!(info.temporary, s.temporary);
            if !s.lost {
                assert!(
                    m.readable_from() <= info.restart_lsn,
                    "retention removed WAL slot {} still needs and the archive does not hold",
                    info.name
                );
            }
        }
        assert_eq!(oldest, m.oldest, "segments may only be removed by a checkpoint, and removals are durable");
        assert!(oldest <= end);
        assert_eq!((db.retain_from(), db.checkpoint_lsn()), (m.retain_from, m.checkpoint));
        assert_eq!(db.archived_lsn(), m.archived);
        assert_eq!(db.status().archived_lsn, m.archived);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn retention_never_removes_what_a_valid_slot_needs(
        ops in prop::collection::vec(op_strategy(), 1..80),
        max_keep_segments in prop::option::of(1u64..5),
    ) {
        let mut h = Harness::new(max_keep_segments.map(|n| n * SEGMENT_BYTES));
        for op in &ops {
            h.apply(op);
            h.check();
        }
    }
}

/// The archiver's pattern: on every sealed segment, move the retain-from horizon. The hook runs
/// inside syncs that slot operations trigger, so it must be able to call back into the database.
struct MoveHorizon {
    db: std::sync::Weak<Database>,
    calls: AtomicUsize,
}

impl SegmentSealed for MoveHorizon {
    fn segment_sealed(&self, segment: &SegmentInfo) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(db) = self.db.upgrade() {
            db.set_retain_from(Some(segment.last_lsn + 1)).unwrap();
            let _ = db.status();
        }
    }
}

#[test]
fn the_hook_may_call_back_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path(), small_config(SyncMode::None)).unwrap());
    let hook = Arc::new(MoveHorizon { db: Arc::downgrade(&db), calls: AtomicUsize::new(0) });
    db.set_segment_sealed_hook(Some(hook.clone()));
    // Buffered (SyncMode::None): the segments are sealed by the syncs below, inside slot calls.
    let end = commit_n(&db, 40, 200);
    db.create_slot("a", SlotOptions::default()).unwrap();
    assert!(hook.calls.load(Ordering::SeqCst) > 0, "creating the slot synced and sealed");
    let end2 = commit_n(&db, 40, 200);
    assert!(end2 > end);
    db.advance("a", end2).unwrap();
    commit_n(&db, 40, 200);
    db.set_checkpoint_lsn(db.wal().next_lsn() - 1).unwrap();
    let sealed_last = db.segments().iter().filter(|s| s.sealed).map(|s| s.last_lsn).max().unwrap();
    assert_eq!(db.retain_from(), Some(sealed_last + 1));
    db.set_segment_sealed_hook(None);
}
