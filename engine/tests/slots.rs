//! Replication slots: lifecycle, persistence across reopen and power loss, monotonic
//! confirmation, names, bad input, corrupted slot files, acquire/release.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::small_config;
use walden_engine::walden_wal::Storage;
use walden_engine::walden_wal::testing::fault::FaultStorage;
use walden_engine::{
    ChangeOp, Config, Database, EngineError, Operation, SlotFilter, SlotOptions, SlotState, StartPosition, SyncMode,
};

fn commit_one(db: &Database, key: &[u8]) -> u64 {
    db.log_change(ChangeOp::Insert, "t", key, None, Some(b"v")).unwrap()
}

fn at(start: StartPosition) -> SlotOptions {
    SlotOptions { start, ..SlotOptions::default() }
}

#[test]
fn create_inspect_advance_drop_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(SyncMode::Always);
    let db = Database::open(dir.path(), config.clone()).unwrap();
    let c1 = commit_one(&db, b"1"); // LSNs 1..=3
    let filter = SlotFilter {
        tables: Some(BTreeSet::from(["orders".to_string(), "users".to_string()])),
        operations: Some(BTreeSet::from([Operation::Insert, Operation::Update])),
    };
    let a = db.create_slot(
        "from_start",
        SlotOptions { start: StartPosition::Oldest, filter: filter.clone(), temporary: false },
    );
    let a = a.unwrap();
    assert_eq!((a.restart_lsn, a.confirmed_lsn, a.state), (1, 0, SlotState::Inactive));
    assert!(a.created_at_us > 0 && a.created_at_us == a.last_active_at_us);
    let b = db.create_slot("from_now", SlotOptions::default()).unwrap();
    assert_eq!((b.restart_lsn, b.confirmed_lsn), (c1 + 1, c1));
    let c = db.create_slot("from_lsn", at(StartPosition::Lsn(2))).unwrap();
    assert_eq!((c.restart_lsn, c.confirmed_lsn), (2, 1));
    let t = db.create_slot("temp", SlotOptions { temporary: true, ..SlotOptions::default() }).unwrap();
    assert!(t.temporary);
    assert_eq!(
        db.slots().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["from_lsn", "from_now", "from_start", "temp"]
    );

    let c2 = commit_one(&db, b"2");
    let advanced = db.advance("from_start", c1).unwrap();
    assert_eq!((advanced.confirmed_lsn, advanced.restart_lsn), (c1, c1 + 1));
    assert!(advanced.last_active_at_us >= a.last_active_at_us);
    db.advance("from_now", c2).unwrap();
    db.advance("temp", c2).unwrap();
    db.drop_slot("from_lsn").unwrap();
    assert!(matches!(db.slot("from_lsn"), Err(EngineError::SlotNotFound { .. })));
    assert!(matches!(db.drop_slot("from_lsn"), Err(EngineError::SlotNotFound { .. })));
    assert!(!dir.path().join("slots/from_lsn.slot").exists());
    assert!(!dir.path().join("slots/temp.slot").exists(), "temporary slots are never persisted");
    let before: Vec<_> = db.slots().into_iter().filter(|s| !s.temporary).collect();
    db.close().unwrap();

    let db = Database::open(dir.path(), config).unwrap();
    assert_eq!(db.slots(), before, "persistent slots reload exactly; the temporary one vanished");
    assert_eq!(db.slot("from_start").unwrap().filter, filter);
    assert!(matches!(db.slot("temp"), Err(EngineError::SlotNotFound { .. })));
    assert_eq!(db.open_report().slots_loaded, 2);
}

#[test]
fn confirmed_lsn_never_regresses() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    db.create_slot("s", at(StartPosition::Oldest)).unwrap();
    let c1 = commit_one(&db, b"1");
    let c2 = commit_one(&db, b"2");
    assert_eq!(db.advance("s", c2).unwrap().confirmed_lsn, c2);
    // Lower and equal values are no-ops that return the current position.
    let again = db.advance("s", c1).unwrap();
    assert_eq!((again.confirmed_lsn, again.restart_lsn), (c2, c2 + 1));
    assert_eq!(db.advance("s", 0).unwrap().confirmed_lsn, c2);
    assert_eq!(db.advance("s", c2).unwrap().confirmed_lsn, c2);
    db.close().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    assert_eq!(db.advance("s", c1).unwrap().confirmed_lsn, c2);
}

#[test]
fn advancing_past_the_durable_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    db.create_slot("s", SlotOptions::default()).unwrap();
    let c = commit_one(&db, b"1");
    let err = db.advance("s", c + 1).unwrap_err();
    assert!(
        matches!(err, EngineError::LsnBeyondDurable { requested, durable_lsn } if requested == c + 1 && durable_lsn == c)
    );
    assert!(matches!(db.advance("s", u64::MAX), Err(EngineError::LsnBeyondDurable { .. })));
    assert_eq!(db.slot("s").unwrap().confirmed_lsn, 0, "a refused advance changes nothing");
    assert!(matches!(db.advance("nope", 1), Err(EngineError::SlotNotFound { .. })));
    // Start positions outside the log.
    assert!(matches!(db.create_slot("x", at(StartPosition::Lsn(c + 2))), Err(EngineError::LsnBeyondDurable { .. })));
    assert!(matches!(db.set_checkpoint_lsn(c + 1), Err(EngineError::LsnBeyondDurable { .. })));
}

#[test]
fn in_non_durable_modes_advance_syncs_what_it_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::None)).unwrap();
    db.create_slot("s", SlotOptions::default()).unwrap();
    let c = commit_one(&db, b"1");
    assert!(db.wal().durable_lsn() < c, "SyncMode::None buffers");
    assert_eq!(db.advance("s", c).unwrap().confirmed_lsn, c);
    assert!(db.wal().durable_lsn() >= c, "a slot never confirms what a crash could lose");
    let created = db.create_slot("t", SlotOptions::default()).unwrap();
    assert!(db.wal().durable_lsn() >= created.confirmed_lsn);
}

#[test]
fn names_are_validated_and_duplicates_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::None)).unwrap();
    let long = "x".repeat(64);
    for bad in ["", "Upper", "dash-ed", "dot.ted", "../escape", "a/b", "sp ace", "ünï", "nul\0", long.as_str()] {
        let err = db.create_slot(bad, SlotOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::InvalidSlotName { .. }), "{bad:?}: {err}");
    }
    assert!(db.slots().is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("slots")).unwrap().count(), 0);
    db.create_slot(&"x".repeat(63), SlotOptions::default()).unwrap();
    db.create_slot("ok_1", SlotOptions::default()).unwrap();
    assert!(matches!(db.create_slot("ok_1", SlotOptions::default()), Err(EngineError::SlotExists { .. })));
    assert!(matches!(
        db.create_slot("ok_1", SlotOptions { temporary: true, ..SlotOptions::default() }),
        Err(EngineError::SlotExists { .. })
    ));
}

#[test]
fn slot_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { max_slots: 2, ..small_config(SyncMode::None) };
    let db = Database::open(dir.path(), config).unwrap();
    db.create_slot("a", SlotOptions::default()).unwrap();
    db.create_slot("b", SlotOptions { temporary: true, ..SlotOptions::default() }).unwrap();
    assert!(matches!(db.create_slot("c", SlotOptions::default()), Err(EngineError::TooManySlots { max_slots: 2 })));
    db.drop_slot("b").unwrap();
    db.create_slot("c", SlotOptions::default()).unwrap();
}

#[test]
fn start_position_must_still_be_retained() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::None)).unwrap();
    for i in 0..200u32 {
        commit_one(&db, &i.to_be_bytes());
    }
    db.checkpoint().unwrap();
    let oldest = db.wal().oldest_lsn();
    assert!(oldest > 1);
    assert!(matches!(
        db.create_slot("s", at(StartPosition::Lsn(oldest - 1))),
        Err(EngineError::LsnNotRetained { requested, oldest_lsn }) if requested == oldest - 1 && oldest_lsn == oldest
    ));
    assert_eq!(db.create_slot("s", at(StartPosition::Oldest)).unwrap().restart_lsn, oldest);
}

#[test]
fn acquire_is_exclusive_and_release_records_activity() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    db.create_slot("s", SlotOptions::default()).unwrap();
    let c = commit_one(&db, b"1");
    let guard = db.acquire_slot("s").unwrap();
    assert_eq!(guard.info().state, SlotState::Active);
    assert_eq!(db.slot("s").unwrap().state, SlotState::Active);
    assert!(matches!(db.acquire_slot("s"), Err(EngineError::SlotInUse { .. })));
    assert!(matches!(db.drop_slot("s"), Err(EngineError::SlotInUse { .. })));
    assert_eq!(guard.advance(c).unwrap().confirmed_lsn, c);
    let during = db.slot("s").unwrap().last_active_at_us;
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(guard);
    let after = db.slot("s").unwrap();
    assert_eq!(after.state, SlotState::Inactive);
    assert!(after.last_active_at_us > during);
    let guard = db.acquire_slot("s").unwrap();
    guard.release().unwrap();
    assert!(matches!(db.acquire_slot("nope"), Err(EngineError::SlotNotFound { .. })));
    let _held = db.acquire_slot("s").unwrap();
    drop(_held);
    db.drop_slot("s").unwrap();
    db.create_slot("s", SlotOptions::default()).unwrap();
    let held = db.acquire_slot("s").unwrap();
    std::mem::forget(held); // a consumer that never releases (the process dies)
    db.close().unwrap();
    // "Active" is not persisted: after reopen the slot is inactive and can be acquired.
    let db = Database::open(dir.path(), small_config(SyncMode::Group)).unwrap();
    assert_eq!(db.slot("s").unwrap().state, SlotState::Inactive);
    db.acquire_slot("s").unwrap().release().unwrap();
}

fn corrupt_open(dir: &Path, config: &Config) -> EngineError {
    Database::open(dir, config.clone()).unwrap_err()
}

fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["wal", "slots"] {
        let mut entries: Vec<_> = std::fs::read_dir(dir.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.file_name().unwrap() != "LOCK" {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn corrupted_slot_files_are_typed_errors_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(SyncMode::Group);
    let db = Database::open(dir.path(), config.clone()).unwrap();
    for i in 0..100u32 {
        commit_one(&db, &i.to_be_bytes());
    }
    db.create_slot("victim", at(StartPosition::Oldest)).unwrap();
    db.create_slot("other", SlotOptions::default()).unwrap();
    db.set_retain_from(Some(5)).unwrap();
    db.close().unwrap();
    let slot_path = dir.path().join("slots/victim.slot");
    let good = std::fs::read(&slot_path).unwrap();

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let other_name = std::fs::read(dir.path().join("slots/other.slot")).unwrap();
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("bit flip", flipped),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("empty", Vec::new()),
        ("bad magic", [b"XXXXXXXX".as_slice(), &good[8..]].concat()),
        ("garbage", vec![0xAB; 300]),
        ("another slot's content", other_name),
    ];
    for (what, bytes) in damages {
        std::fs::write(&slot_path, &bytes).unwrap();
        let before = files_under(dir.path());
        let err = corrupt_open(dir.path(), &config);
        assert!(
            matches!(&err, EngineError::CorruptFile { path, .. } if path == &slot_path),
            "{what}: expected CorruptFile for the slot file, got {err}"
        );
        assert_eq!(files_under(dir.path()), before, "{what}: nothing may be deleted or changed");
    }
    // Restored, everything opens again.
    std::fs::write(&slot_path, &good).unwrap();
    let db = Database::open(dir.path(), config.clone()).unwrap();
    assert_eq!(db.slot("victim").unwrap().restart_lsn, 1);
    db.close().unwrap();

    // A damaged engine.state is a typed error too.
    let state_path = dir.path().join("engine.state");
    let good_state = std::fs::read(&state_path).unwrap();
    let mut bad = good_state.clone();
    bad[13] ^= 1;
    std::fs::write(&state_path, &bad).unwrap();
    let before = files_under(dir.path());
    assert!(matches!(corrupt_open(dir.path(), &config), EngineError::CorruptFile { path, .. } if path == state_path));
    assert_eq!(files_under(dir.path()), before);
    std::fs::write(&state_path, &good_state).unwrap();
    let db = Database::open(dir.path(), config).unwrap();
    assert_eq!(db.retain_from(), Some(5));
}

#[test]
fn stray_files_in_the_slot_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(SyncMode::None);
    Database::open(dir.path(), config.clone()).unwrap().close().unwrap();
    let slots = dir.path().join("slots");
    std::fs::write(slots.join("README"), b"not a slot").unwrap();
    std::fs::write(slots.join("Bad-Name.slot"), b"x").unwrap();
    std::fs::write(slots.join("half.slot.tmp"), b"interrupted write").unwrap();
    std::fs::write(dir.path().join("engine.state.tmp"), b"interrupted write").unwrap();
    let db = Database::open(dir.path(), config).unwrap();
    let report = db.open_report().clone();
    assert_eq!(report.foreign_files.len(), 2);
    assert_eq!(report.temp_files_removed.len(), 2);
    assert!(slots.join("README").exists() && slots.join("Bad-Name.slot").exists(), "foreign files are kept");
    assert!(!slots.join("half.slot.tmp").exists());
    assert!(db.slots().is_empty());
}

/// Slot state survives power loss exactly as acknowledged; a failed fsync leaves the slot
/// where it was (in memory and, after power loss, on disk).
#[test]
fn slots_survive_power_loss_and_failed_syncs_change_nothing() {
    let fs = FaultStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(fs.clone());
    let config = small_config(SyncMode::Group);
    let db = Database::open_with_storage("/db", config.clone(), storage.clone()).unwrap();
    db.create_slot("s", at(StartPosition::Oldest)).unwrap();
    db.create_slot("gone", SlotOptions::default()).unwrap();
    db.create_slot("tmp", SlotOptions { temporary: true, ..SlotOptions::default() }).unwrap();
    let c1 = commit_one(&db, b"1");
    let c2 = commit_one(&db, b"2");
    db.advance("s", c1).unwrap();
    db.drop_slot("gone").unwrap();
    fs.fail_next_sync();
    assert!(matches!(db.advance("s", c2), Err(EngineError::Io { .. })));
    assert_eq!(db.slot("s").unwrap().confirmed_lsn, c1, "memory never runs ahead of disk");
    fs.power_loss();
    drop(db);

    let db = Database::open_with_storage("/db", config.clone(), storage.clone()).unwrap();
    assert_eq!(db.slot("s").unwrap().confirmed_lsn, c1);
    assert!(matches!(db.slot("gone"), Err(EngineError::SlotNotFound { .. })), "a durable drop stays dropped");
    assert!(matches!(db.slot("tmp"), Err(EngineError::SlotNotFound { .. })));
    db.advance("s", c2).unwrap();
    fs.power_loss();
    drop(db);
    let db = Database::open_with_storage("/db", config, storage).unwrap();
    assert_eq!(db.slot("s").unwrap().confirmed_lsn, c2);
    assert!(fs.list_all_files().iter().all(|p| !p.to_string_lossy().ends_with(".tmp")));
}

#[test]
fn a_shared_guard_owns_its_database_handle() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path(), small_config(SyncMode::Group)).unwrap());
    db.create_slot("s", SlotOptions::default()).unwrap();
    let c = commit_one(&db, b"1");
    let guard = Database::acquire_slot_shared(&db, "s").unwrap();
    assert!(matches!(db.acquire_slot("s"), Err(EngineError::SlotInUse { .. })));
    // The guard is 'static: it can move to another thread on its own.
    let confirmed = std::thread::spawn(move || {
        let info = guard.advance(c).unwrap();
        guard.release().unwrap();
        info.confirmed_lsn
    })
    .join()
    .unwrap();
    assert_eq!(confirmed, c);
    assert_eq!(db.slot("s").unwrap().state, SlotState::Inactive);
    Arc::try_unwrap(db).unwrap().close().unwrap();
}
