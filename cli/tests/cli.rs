//! Runs the real `walden` binary: every command, every documented error path with its exit code,
//! the demo end to end, and that read-only commands create and modify nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use walden_engine::record::Column;
use walden_engine::slot::SlotRecord;
use walden_engine::{Config, Database, SlotOptions, StartPosition, WalConfig};

const BIN: &str = env!("CARGO_BIN_EXE_walden");

// Exit codes (documented in `walden --help` and the README).
const OK: i32 = 0;
const USAGE: i32 = 2;
const MISSING: i32 = 3;
const FOREIGN: i32 = 4;
const LOCKED: i32 = 5;
const PERMISSION: i32 = 6;
const SLOT_NOT_FOUND: i32 = 7;
const SLOT_CONFLICT: i32 = 8;
const LSN_UNAVAILABLE: i32 = 9;
const DAMAGED: i32 = 10;
const LAKE_UNAVAILABLE: i32 = 11;

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("WALDEN_DATA_DIR")
        .env_remove("WALDEN_LAKE")
        .env_remove("WALDEN_LAKE_CATALOG")
        .stdin(Stdio::null());
    cmd
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("the walden binary runs")
}

/// `walden <args> --data-dir <dir>`.
fn walden(dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", dir.to_str().expect("UTF-8 path")]);
    run(&all)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn expect(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "exit code\n--- stdout\n{}\n--- stderr\n{}", out(o), err(o));
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out(o)))
}

fn json_lines(o: &Output) -> Vec<Value> {
    out(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// Sends SIGINT to a child process (as Ctrl-C would).
fn interrupt(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).expect("a child's pid is positive");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("signal the child");
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A temporary directory other users may traverse (the unprivileged runs need to).
fn tmp() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// The `walden` binary at a path any user may execute. The build's copy can sit under a directory
/// only its owner may traverse (CI keeps `CARGO_TARGET_DIR` under `$HOME`), so the unprivileged
/// runs use a copy in a world-readable temporary directory, made once per test process.
fn world_executable_bin() -> &'static Path {
    static COPY: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = COPY.get_or_init(|| {
        let dir = tmp();
        let path = dir.path().join("walden");
        fs::copy(BIN, &path).expect("copy the walden binary");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        (dir, path)
    });
    path
}

/// A `walden <args>` command that cannot write `path` (recursively): when the tests run as root
/// (which ignores permissions), the command runs as `nobody` instead; otherwise every write bit is
/// cleared. Returns the command and a closure restoring the permissions.
fn unwritable(path: &Path, args: &[&str]) -> (Command, impl FnOnce() + use<>) {
    fn walk(p: &Path, f: &dyn Fn(&Path)) {
        f(p);
        if p.is_dir() {
            for e in fs::read_dir(p).expect("list").flatten() {
                walk(&e.path(), f);
            }
        }
    }
    let root = path.to_path_buf();
    let mut cmd;
    if is_root() {
        cmd = Command::new(world_executable_bin());
        cmd.args(args).env_remove("WALDEN_DATA_DIR").stdin(Stdio::null());
        cmd.uid(65534).gid(65534);
    } else {
        cmd = command(args);
        walk(&root, &|p| {
            let mode = fs::metadata(p).expect("stat").permissions().mode();
            fs::set_permissions(p, fs::Permissions::from_mode(mode & !0o222)).expect("chmod");
        });
    }
    let restore = move || {
        if !is_root() {
            walk(&root, &|p| {
                let mode = fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0o644);
                let _ = fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o200));
            });
        }
    };
    (cmd, restore)
}

/// A database with three transactions (11 records) and slot `s1` at the start:
///
/// ```text
/// 1 BEGIN · 2 SCHEMA users · 3 INSERT users u1 · 4 COMMIT
/// 5 BEGIN · 6 INSERT orders o1 · 7 UPDATE users u1 · 8 COMMIT
/// 9 BEGIN · 10 DELETE orders o1 · 11 COMMIT
/// ```
fn fixture(dir: &Path) {
    let db = Database::open(dir, Config::default()).expect("open");
    db.create_slot("s1", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }).expect("slot");
    let mut t = db.begin();
    t.set_actor("alice");
    t.create_table("users", 1, &[Column::new("id", "TEXT", false)]).expect("schema");
    t.insert("users", b"u1", br#"{"name":"Alice"}"#).expect("insert");
    assert_eq!(t.commit().expect("commit"), 4);
    let mut t = db.begin();
    t.insert("orders", b"o1", br#"{"total":5}"#).expect("insert");
    t.update("users", b"u1", br#"{"name":"Alice"}"#, br#"{"name":"Alice Smith"}"#).expect("update");
    assert_eq!(t.commit().expect("commit"), 8);
    let mut t = db.begin();
    t.delete("orders", b"o1", br#"{"total":5}"#).expect("delete");
    assert_eq!(t.commit().expect("commit"), 11);
    db.close().expect("close");
}

/// A database of 4 KiB segments (200 one-insert transactions, LSN 1-600) whose oldest segments
/// were removed by a checkpoint at LSN 300: returns the oldest retained LSN (> 1). Sealed segments
/// remain.
fn trimmed_fixture(dir: &Path) -> u64 {
    let config =
        Config { wal: WalConfig { target_segment_size_bytes: 4096, ..WalConfig::default() }, ..Config::default() };
    let db = Database::open(dir, config).expect("open");
    for i in 0..200u32 {
        let mut t = db.begin();
        t.insert("t", &i.to_le_bytes(), b"{\"v\":1}").expect("insert");
        t.commit().expect("commit");
    }
    db.set_checkpoint_lsn(300).expect("checkpoint lsn");
    let report = db.checkpoint().expect("checkpoint");
    assert!(!report.removed_segments.is_empty());
    let oldest = db.wal().oldest_lsn();
    db.close().expect("close");
    assert!(oldest > 1);
    oldest
}

fn active_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// Offsets of the records of a segment file, from their headers (64-byte segment header,
/// 32-byte record headers with the stored length at bytes 8..12).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 64;
    let mut offsets = Vec::new();
    while at + 32 <= bytes.len() && bytes[at + 4..at + 6] == 0x57A1u16.to_le_bytes() {
        offsets.push(at);
        at += 32 + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
    }
    offsets
}

/// What [`snapshot`] records of one path: kind, size, mtime (s, ns), mode, contents of files.
type Entry = (bool, u64, i64, i64, u32, Vec<u8>);

/// Every path under `root` with its kind, size, mtime, mode and (for files) contents.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut map = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).expect("stat");
        let contents = if m.is_file() { fs::read(&p).expect("read") } else { Vec::new() };
        map.insert(p.clone(), (m.is_dir(), m.len(), m.mtime(), m.mtime_nsec(), m.mode(), contents));
        if m.is_dir() {
            for e in fs::read_dir(&p).expect("list").flatten() {
                stack.push(e.path());
            }
        }
    }
    map
}

const READ_ONLY_COMMANDS: &[&[&str]] = &[
    &["status"],
    &["status", "--json"],
    &["dump"],
    &["dump", "--json"],
    &["dump", "--stats"],
    &["dump", "--stats", "--json"],
    &["dump", "--table", "users", "--start-lsn", "2", "--end-lsn", "9"],
    &["verify"],
    &["verify", "--json"],
    &["slots", "list"],
    &["slots", "list", "--json"],
];

// ----- help and usage -----

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    let o = run(&["--help"]);
    expect(&o, OK);
    let help = out(&o);
    for cmd in ["demo", "dump", "tail", "slots", "status", "verify", "recover", "archive", "replay", "bench"] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
    assert!(help.contains("Exit codes:"), "{help}");
    for code in 0..=11 {
        assert!(help.contains(&format!("\n  {code:>2}  ")), "exit code {code} undocumented:\n{help}");
    }
    assert!(help.contains("\n 130  interrupted"), "{help}");
    // The README's CLI tour documents the same codes.
    let readme = include_str!("../../README.md");
    let tour = &readme[readme.find("## CLI tour").expect("a CLI tour section")..];
    for code in (0..=11).chain([130]) {
        assert!(tour.contains(&format!("\n| {code} | ")), "exit code {code} missing from the README's CLI tour");
    }
    assert!(!help.contains("Not in this build"), "{help}");
    assert!(help.contains("<data-dir>.lake"), "{help}");
    for sub in [
        &["demo", "--help"][..],
        &["dump", "--help"],
        &["tail", "--help"],
        &["slots", "--help"],
        &["slots", "list", "--help"],
        &["slots", "create", "--help"],
        &["slots", "drop", "--help"],
        &["slots", "advance", "--help"],
        &["status", "--help"],
        &["verify", "--help"],
        &["recover", "--help"],
        &["archive", "--help"],
        &["archive", "compact", "--help"],
        &["archive", "expire", "--help"],
        &["replay", "--help"],
        &["bench", "--help"],
    ] {
        let o = run(sub);
        expect(&o, OK);
        assert!(out(&o).contains("--data-dir"), "{sub:?}");
    }
    expect(&run(&["--version"]), OK);
    expect(&run(&[]), USAGE);
    let archive_help = out(&run(&["archive", "--help"]));
    for needle in ["--once", "--follow", "--lake", "--catalog-path", "compact", "expire"] {
        assert!(archive_help.contains(needle), "{needle} missing from archive --help:\n{archive_help}");
    }
    let expire_help = out(&run(&["archive", "expire", "--help"]));
    assert!(expire_help.contains("--retain-last") && expire_help.contains("--older-than"), "{expire_help}");
    let replay_help = out(&run(&["replay", "--help"]));
    for needle in ["--from-lsn", "--end-lsn", "--format", "--table", "--lake"] {
        assert!(replay_help.contains(needle), "{needle} missing from replay --help:\n{replay_help}");
    }
    expect(&run(&["archive", "--once", "--follow"]), USAGE);
    expect(&run(&["archive", "--follow", "compact"]), USAGE);
    expect(&run(&["archive", "expire"]), USAGE); // --retain-last is required
    expect(&run(&["archive", "expire", "--retain-last", "0"]), USAGE);
    expect(&run(&["archive", "expire", "--retain-last", "1", "--older-than", "soon"]), USAGE);
    expect(&run(&["archive", "--max-age", "5"]), USAGE); // --max-age needs --follow
    expect(&run(&["replay"]), USAGE); // --from-lsn is required
    expect(&run(&["replay", "--from-lsn", "0"]), USAGE);
    expect(&run(&["frobnicate"]), USAGE);
}

// ----- missing and foreign data directories -----

#[test]
fn missing_and_empty_data_dirs_exit_3_and_nothing_is_created() {
    let t = tmp();
    let missing = t.path().join("nope");
    let commands: &[&[&str]] = &[
        &["status"],
        &["dump"],
        &["verify"],
        &["slots", "list"],
        &["slots", "create", "a"],
        &["slots", "drop", "a"],
        &["slots", "advance", "a", "1"],
        &["tail", "--slot", "a", "--create", "--drain"],
        &["recover", "--mode", "tolerate-torn-tail"],
        &["archive"],
        &["archive", "--follow"],
        &["archive", "compact"],
        &["archive", "expire", "--retain-last", "1"],
        &["replay", "--from-lsn", "1"],
    ];
    let missing_lake = t.path().join("nope.lake");
    for args in commands {
        let o = walden(&missing, args);
        expect(&o, MISSING);
        assert!(err(&o).contains("does not exist"), "{args:?}: {}", err(&o));
        assert!(!missing.exists(), "{args:?} created the data directory");
        assert!(!missing_lake.exists(), "{args:?} created a lake");
    }
    let empty = t.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    for args in commands {
        let o = walden(&empty, args);
        expect(&o, MISSING);
        assert_eq!(fs::read_dir(&empty).expect("list").count(), 0, "{args:?} wrote into the empty directory");
        assert!(!t.path().join("empty.lake").exists(), "{args:?} created a lake");
    }
    let o = run(&["status", "--json", "--data-dir", missing.to_str().expect("utf-8")]);
    expect(&o, MISSING);
    let e: Value = serde_json::from_str(err(&o).trim()).expect("a JSON error");
    assert_eq!(e["error"]["code"], 3);
    assert_eq!(e["error"]["kind"], "missing_data_dir");
}

#[test]
fn foreign_data_dirs_exit_4_and_are_left_alone() {
    let t = tmp();
    let foreign = t.path().join("foreign");
    fs::create_dir(&foreign).expect("mkdir");
    fs::write(foreign.join("notes.txt"), "mine").expect("write");
    let a_file = t.path().join("file");
    fs::write(&a_file, "x").expect("write");
    let odd_wal = t.path().join("oddwal");
    fixture(&odd_wal);
    fs::write(odd_wal.join("wal").join("README"), "not a segment").expect("write");
    for dir in [&foreign, &a_file, &odd_wal] {
        let before = snapshot(dir);
        for args in [
            &["status"][..],
            &["dump"],
            &["verify"],
            &["slots", "list"],
            &["slots", "create", "a"],
            &["tail", "--slot", "s1", "--drain"],
            &["recover", "--mode", "skip-corrupted"],
            &["archive", "--once"],
            &["replay", "--from-lsn", "1"],
        ] {
            let o = walden(dir, args);
            expect(&o, FOREIGN);
            assert!(err(&o).contains("not a Walden data directory"), "{}", err(&o));
        }
        assert_eq!(before, snapshot(dir), "{} was changed", dir.display());
        let mut lake = dir.as_os_str().to_owned();
        lake.push(".lake");
        assert!(!Path::new(&lake).exists(), "a lake was created beside {}", dir.display());
    }
    // A segment of another log (bad magic) is foreign too.
    let other = t.path().join("other");
    fixture(&other);
    let seg = active_segment(&other);
    let mut bytes = fs::read(&seg).expect("read");
    bytes[0..8].copy_from_slice(b"NOTWALDN");
    fs::write(&seg, bytes).expect("write");
    expect(&walden(&other, &["status"]), FOREIGN);
    expect(&walden(&other, &["slots", "create", "x"]), FOREIGN);
    let o = walden(&other, &["verify"]);
    expect(&o, DAMAGED);
    assert!(out(&o).contains("not a segment of a Walden log"), "{}", out(&o));
}

// ----- read-only commands -----

#[test]
fn read_only_commands_create_and_modify_nothing() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    // Things an open would repair or change: a torn tail, a slot whose WAL is "ahead" of the
    // log, no lock file, a leftover temporary slot file.
    let seg = active_segment(&dir);
    let mut bytes = fs::read(&seg).expect("read");
    bytes.extend_from_slice(&[0xAB; 10]);
    fs::write(&seg, &bytes).expect("write");
    let ahead = SlotRecord {
        name: "ahead".into(),
        restart_lsn: 101,
        confirmed_lsn: 100,
        created_at_us: 1,
        last_active_at_us: 1,
        invalidation: None,
        filter: Default::default(),
    };
    fs::write(dir.join("slots").join("ahead.slot"), ahead.encode()).expect("write");
    fs::write(dir.join("slots").join("s2.slot.tmp"), b"partial").expect("write");
    fs::remove_file(dir.join("wal").join("LOCK")).expect("rm LOCK");
    std::thread::sleep(Duration::from_millis(20)); // mtimes would differ if anything were touched
    let before = snapshot(&dir);
    for args in READ_ONLY_COMMANDS {
        let o = walden(&dir, args);
        let expected = if args[0] == "verify" { DAMAGED } else { OK };
        expect(&o, expected);
        assert_eq!(before, snapshot(&dir), "`walden {}` changed the data directory", args.join(" "));
    }
    let status = walden(&dir, &["status"]);
    assert!(out(&status).contains("incomplete tail   10 bytes"), "{}", out(&status));
    assert!(out(&status).contains("slot \"ahead\" will be invalidated at the next open"), "{}", out(&status));
    let verify = walden(&dir, &["verify"]);
    assert!(out(&verify).contains("WARNING") && out(&verify).contains("incomplete tail of 10 bytes"));
    assert!(out(&verify).contains("ERROR") && out(&verify).contains("confirmed LSN 100 but the log ends at 11"));
    assert!(out(&verify).contains("s2.slot.tmp"), "{}", out(&verify));
    // The dump leaves the torn tail out and says so.
    let dump = walden(&dir, &["dump"]);
    assert_eq!(out(&dump).lines().count(), 11);
    assert!(err(&dump).contains("10 bytes after LSN 11"), "{}", err(&dump));
}

#[test]
fn read_only_commands_work_while_another_process_holds_the_database() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let db = Database::open(&dir, Config::default()).expect("open");
    let before = snapshot(&dir);
    for args in READ_ONLY_COMMANDS {
        expect(&walden(&dir, args), OK);
    }
    assert_eq!(before, snapshot(&dir));
    let status = json(&walden(&dir, &["status", "--json"]));
    assert_eq!(status["in_use_by_pid"], std::process::id());
    assert!(out(&walden(&dir, &["status"])).contains(&format!("yes, by pid {}", std::process::id())));
    // Commands that open the database are refused, naming the holder.
    for args in [
        &["slots", "create", "x"][..],
        &["slots", "drop", "s1"],
        &["slots", "advance", "s1", "4"],
        &["tail", "--slot", "s1", "--drain"],
        &["recover", "--mode", "tolerate-torn-tail"],
    ] {
        let o = walden(&dir, args);
        expect(&o, LOCKED);
        assert!(err(&o).contains(&format!("in use by another process (pid {})", std::process::id())), "{}", err(&o));
    }
    db.close().expect("close");
    expect(&walden(&dir, &["slots", "create", "x"]), OK);
}

#[test]
fn status_reports_positions_segments_slots_and_retention() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let s = json(&walden(&dir, &["status", "--json"]));
    assert_eq!(s["current_lsn"], 11);
    assert_eq!(s["oldest_lsn"], 1);
    assert_eq!(s["segment_count"], 1);
    assert_eq!(s["in_use_by_pid"], Value::Null);
    assert_eq!(s["retention_horizon"], 1);
    assert_eq!(s["oldest_segment_held_by"], "the active segment");
    assert_eq!(s["slots"][0]["name"], "s1");
    assert_eq!(s["slots"][0]["lag_lsns"], 11);
    assert_eq!(s["archived_lsn"], Value::Null);
    assert_eq!(s["archive"]["archived_lsn"], Value::Null);
    assert_eq!(s["archive"]["readable_from"], 1);
    let text = out(&walden(&dir, &["status"]));
    assert!(text.contains("oldest 1, current 11"), "{text}");
    assert!(text.contains("largest lag 11 LSNs"), "{text}");
    assert!(text.contains("nothing archived"), "{text}");

    let trimmed = t.path().join("trimmed");
    let oldest = trimmed_fixture(&trimmed);
    let s = json(&walden(&trimmed, &["status", "--json"]));
    assert_eq!(s["oldest_lsn"], oldest);
    assert_eq!(s["current_lsn"], 600);
    assert_eq!(s["checkpoint_lsn"], 300);
    assert_eq!(s["retention_horizon"], 301);
    assert!(s["sealed_segment_count"].as_u64().expect("count") >= 1);
    assert!(s["oldest_segment_held_by"].as_str().expect("text").contains("checkpoint at LSN 300"), "{s}");
}

#[test]
fn preallocated_zeros_after_a_crash_are_space_not_log_and_verify_passes() {
    let t = tmp();
    let dir = t.path().join("db");
    let config = Config {
        wal: WalConfig {
            preallocate_bytes: walden_engine::walden_wal::RECOMMENDED_PREALLOCATE_BYTES,
            sync_mode: walden_engine::SyncMode::Group,
            ..WalConfig::default()
        },
        ..Config::default()
    };
    let db = Database::open(&dir, config).expect("open");
    for i in 0..20u32 {
        let mut t = db.begin();
        t.insert("t", &i.to_le_bytes(), b"{}").expect("insert");
        t.commit().expect("commit");
    }
    // A crash: no close, so the zero-filled space ahead of the data stays in the file.
    std::mem::forget(db);
    let file_len = fs::metadata(active_segment(&dir)).expect("segment").len();
    let s = json(&walden(&dir, &["status", "--json"]));
    assert_eq!(s["current_lsn"], 60);
    let segment_bytes = s["segment_bytes"].as_u64().expect("bytes");
    assert!(segment_bytes < 64 << 10, "only the data counts: {segment_bytes} of {file_len} bytes");
    assert!(file_len >= segment_bytes + (1 << 20), "the zeros are still there: {file_len}");
    expect(&walden(&dir, &["verify"]), 0);
    assert_eq!(json_lines(&walden(&dir, &["dump", "--json"])).len(), 60);
}

// ----- dump -----

#[test]
fn dump_prints_ranges_filters_and_stats() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let o = walden(&dir, &["dump"]);
    expect(&o, OK);
    let text = out(&o);
    assert_eq!(text.lines().count(), 11);
    assert!(text.lines().next().expect("line").starts_with("lsn 1 "), "{text}");
    assert!(text.contains("SCHEMA  users v1 CREATE TABLE (id TEXT NOT NULL)"), "{text}");
    assert!(text.contains(r#"UPDATE  users key=u1 before={"name":"Alice"} after={"name":"Alice Smith"}"#), "{text}");
    assert!(text.contains(r#"actor="alice""#), "{text}");

    let lines = json_lines(&walden(&dir, &["dump", "--json"]));
    assert_eq!(lines.len(), 11);
    assert_eq!(lines[2]["kind"], "insert");
    assert_eq!(lines[2]["table"], "users");
    assert_eq!(lines[2]["key"], "u1");
    assert_eq!(lines[2]["after"]["name"], "Alice");
    assert_eq!(lines[6]["before"]["name"], "Alice");
    assert_eq!(lines[9]["kind"], "delete");
    assert_eq!(lines[9]["txn_id"], 9);
    assert_eq!(lines[1]["change"]["kind"], "create_table");

    let lsns = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["dump", "--json"];
        all.extend_from_slice(args);
        json_lines(&walden(&dir, &all)).iter().map(|v| v["lsn"].as_u64().expect("lsn")).collect()
    };
    assert_eq!(lsns(&["--start-lsn", "5", "--end-lsn", "8"]), vec![5, 6, 7, 8]);
    assert_eq!(lsns(&["--table", "users"]), vec![2, 3, 7]);
    assert_eq!(lsns(&["--op", "insert", "--op", "delete"]), vec![3, 6, 10]);
    assert_eq!(lsns(&["--txn", "5"]), vec![5, 6, 7, 8]);
    assert_eq!(lsns(&["--table", "orders", "--op", "delete"]), vec![10]);
    assert_eq!(lsns(&["--limit", "2", "--start-lsn", "3"]), vec![3, 4]);
    assert_eq!(lsns(&["--start-lsn", "12"]), Vec::<u64>::new()); // the next LSN: nothing yet
    assert_eq!(lsns(&["--end-lsn", "500"]).len(), 11);

    let stats = json(&walden(&dir, &["dump", "--stats", "--json"]));
    assert_eq!(stats["records"], 11);
    assert_eq!(stats["transactions"], 3);
    assert_eq!(stats["by_kind"]["begin"]["records"], 3);
    assert_eq!(stats["by_table"]["orders"]["insert"], 1);
    assert_eq!(stats["by_table"]["orders"]["delete"], 1);
    assert_eq!(stats["by_table"]["users"]["schema"], 1);
    let text = out(&walden(&dir, &["dump", "--stats"]));
    assert!(text.contains("11 records (LSN 1-11), 3 transactions committed"), "{text}");
    assert!(text.contains("TABLE") && text.contains("orders"), "{text}");
}

#[test]
fn dump_of_a_closed_pipe_exits_quietly() {
    let t = tmp();
    let dir = t.path().join("db");
    // About 1 MB of dump output: far more than a pipe buffers.
    let db = Database::open(&dir, Config::with_sync_mode(walden_engine::SyncMode::None)).expect("open");
    for i in 0..3000u32 {
        let mut t = db.begin();
        t.insert("t", &i.to_le_bytes(), br#"{"some":"payload","to":"make","the":"lines","longer":1}"#).expect("insert");
        t.commit().expect("commit");
    }
    db.close().expect("close");
    let mut child = command(&["dump", "--data-dir", dir.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    // The reader is gone now (dropped above): the rest of the output hits a closed pipe.
    let o = child.wait_with_output().expect("wait");
    expect(&o, OK);
    assert!(first.starts_with("lsn "), "{first}");
    assert_eq!(err(&o), "");
}

#[test]
fn bad_lsns_exit_2_or_9() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    for args in [
        &["dump", "--start-lsn", "0"][..],
        &["dump", "--start-lsn", "abc"],
        &["dump", "--end-lsn", "-3"],
        &["dump", "--start-lsn", "0/16B3748"],
        &["slots", "advance", "s1", "0"],
        &["slots", "create", "x", "--start", "later"],
        &["tail", "--slot", "s1", "--start-lsn", "x"],
    ] {
        let o = walden(&dir, args);
        expect(&o, USAGE);
    }
    let o = walden(&dir, &["dump", "--start-lsn", "9", "--end-lsn", "3"]);
    expect(&o, USAGE);
    assert!(err(&o).contains("--end-lsn 3 is before the start LSN 9"), "{}", err(&o));
    expect(&walden(&dir, &["tail", "--slot", "s1", "--start-lsn", "9", "--end-lsn", "3"]), USAGE);

    let o = walden(&dir, &["dump", "--start-lsn", "13"]);
    expect(&o, LSN_UNAVAILABLE);
    assert!(err(&o).contains("beyond the end of the log"), "{}", err(&o));
    expect(&walden(&dir, &["slots", "advance", "s1", "12"]), LSN_UNAVAILABLE);
    expect(&walden(&dir, &["slots", "create", "x", "--start", "13"]), LSN_UNAVAILABLE);
    expect(&walden(&dir, &["tail", "--slot", "s1", "--start-lsn", "13", "--drain"]), LSN_UNAVAILABLE);

    let trimmed = t.path().join("trimmed");
    let oldest = trimmed_fixture(&trimmed);
    let o = walden(&trimmed, &["dump", "--start-lsn", "1"]);
    expect(&o, LSN_UNAVAILABLE);
    assert!(err(&o).contains(&format!("the oldest retained LSN is {oldest}")), "{}", err(&o));
    expect(&walden(&trimmed, &["slots", "create", "x", "--start", "1"]), LSN_UNAVAILABLE);
    expect(&walden(&trimmed, &["tail", "--slot", "y", "--create", "--start-lsn", "1", "--drain"]), LSN_UNAVAILABLE);
    // A slot that already confirmed past the requested start cannot go back.
    expect(&walden(&dir, &["slots", "advance", "s1", "8"]), OK);
    let o = walden(&dir, &["tail", "--slot", "s1", "--start-lsn", "5", "--drain"]);
    expect(&o, LSN_UNAVAILABLE);
    assert!(err(&o).contains("never goes back"), "{}", err(&o));
}

// ----- slots -----

#[test]
fn slots_create_list_advance_drop() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let o = walden(&dir, &["slots", "create", "audit", "--start", "oldest", "--table", "orders", "--op", "insert"]);
    expect(&o, OK);
    assert!(out(&o).contains("created slot \"audit\": restart LSN 1"), "{}", out(&o));
    let o = walden(&dir, &["slots", "create", "live", "--json"]);
    expect(&o, OK);
    assert_eq!(json(&o)["restart_lsn"], 12);
    let o = walden(&dir, &["slots", "create", "at5", "--start", "5"]);
    expect(&o, OK);

    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    let names: Vec<&str> = rows.as_array().expect("rows").iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, vec!["at5", "audit", "live", "s1"]);
    let audit = &rows[1];
    assert_eq!(audit["tables"][0], "orders");
    assert_eq!(audit["operations"][0], "insert");
    assert_eq!(audit["lag_lsns"], 11);
    assert_eq!(rows[0]["confirmed_lsn"], 4);
    assert_eq!(rows[2]["lag_lsns"], 0);
    let text = out(&walden(&dir, &["slots", "list"]));
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("tables=orders ops=insert"), "{text}");
    assert!(text.contains("oldest segment held by"), "{text}");

    let o = walden(&dir, &["slots", "advance", "audit", "8"]);
    expect(&o, OK);
    assert!(out(&o).contains("confirmed up to LSN 8 (restart LSN 9)"), "{}", out(&o));
    let o = walden(&dir, &["slots", "advance", "audit", "4"]);
    expect(&o, OK);
    assert!(out(&o).contains("unchanged"), "{}", out(&o));
    assert_eq!(json(&walden(&dir, &["slots", "advance", "audit", "11", "--json"]))["confirmed_lsn"], 11);

    // Errors.
    let o = walden(&dir, &["slots", "create", "audit"]);
    expect(&o, SLOT_CONFLICT);
    assert!(err(&o).contains("already exists"), "{}", err(&o));
    expect(&walden(&dir, &["slots", "create", "Bad-Name"]), USAGE);
    expect(&walden(&dir, &["slots", "advance", "nope", "3"]), SLOT_NOT_FOUND);
    let o = walden(&dir, &["slots", "drop", "nope"]);
    expect(&o, SLOT_NOT_FOUND);
    assert!(err(&o).contains("does not exist"), "{}", err(&o));

    expect(&walden(&dir, &["slots", "drop", "audit"]), OK);
    assert_eq!(json(&walden(&dir, &["slots", "drop", "live", "--json"]))["dropped"], "live");
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    assert_eq!(rows.as_array().expect("rows").len(), 2);
}

#[test]
fn a_lost_slot_is_listed_with_its_reason_and_refuses_use() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let lost = SlotRecord {
        name: "lost".into(),
        restart_lsn: 101,
        confirmed_lsn: 100,
        created_at_us: 1,
        last_active_at_us: 1,
        invalidation: None,
        filter: Default::default(),
    };
    fs::write(dir.join("slots").join("lost.slot"), lost.encode()).expect("write");
    // Opening the database (recover) invalidates it: it confirmed LSNs the log does not have.
    let o = walden(&dir, &["recover", "--mode", "tolerate-torn-tail"]);
    expect(&o, OK);
    assert!(out(&o).contains("invalidated  slot \"lost\""), "{}", out(&o));
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    let row = rows.as_array().expect("rows").iter().find(|r| r["name"] == "lost").expect("lost row").clone();
    assert_eq!(row["state"], "lost");
    assert!(row["invalidation_reason"].as_str().expect("reason").contains("beyond the end of the log"));
    assert!(out(&walden(&dir, &["slots", "list"])).contains("slot \"lost\" is lost since"));
    expect(&walden(&dir, &["slots", "advance", "lost", "5"]), SLOT_CONFLICT);
    expect(&walden(&dir, &["tail", "--slot", "lost", "--drain"]), SLOT_CONFLICT);
    expect(&walden(&dir, &["verify"]), OK); // a lost slot is a state, not damage
    expect(&walden(&dir, &["slots", "drop", "lost"]), OK);
}

// ----- tail -----

#[test]
fn tail_streams_acknowledges_and_resumes() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let o = walden(&dir, &["tail", "--slot", "s1", "--drain"]);
    expect(&o, OK);
    let events = json_lines(&o);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, vec!["schema", "insert", "insert", "update", "delete"]);
    assert_eq!(events[1]["data"]["name"], "Alice");
    assert!(
        err(&o).contains("5 events written, slot \"s1\" confirmed up to LSN 11 (stopped by drained)"),
        "{}",
        err(&o)
    );
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    assert_eq!(rows[0]["confirmed_lsn"], 11);
    // Nothing new: resumes after the acknowledged position.
    let o = walden(&dir, &["tail", "--slot", "s1", "--drain"]);
    expect(&o, OK);
    assert_eq!(out(&o), "");

    // Transactions, end LSN and a filtered slot created on the fly.
    let o = walden(&dir, &["tail", "--slot", "t1", "--create", "--start-lsn", "1", "--end-lsn", "4", "--transactions"]);
    expect(&o, OK);
    let types: Vec<String> = json_lines(&o).iter().map(|e| e["type"].as_str().expect("type").to_string()).collect();
    assert_eq!(types, vec!["begin", "schema", "insert", "commit"]);
    assert!(err(&o).contains("stopped by end-lsn"), "{}", err(&o));
    let o = walden(&dir, &["tail", "--slot", "t2", "--create", "--start-lsn", "1", "--table", "orders", "--drain"]);
    expect(&o, OK);
    let lsns: Vec<u64> = json_lines(&o).iter().map(|e| e["lsn"].as_u64().expect("lsn")).collect();
    assert_eq!(lsns, vec![6, 10]);
    // Everything was acknowledged, including the transactions the filter left out.
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    let t2 = rows.as_array().expect("rows").iter().find(|r| r["name"] == "t2").expect("t2").clone();
    assert_eq!(t2["confirmed_lsn"], 11);
    // --start-lsn later than the slot's position skips the events before it.
    let o = walden(&dir, &["slots", "create", "t4", "--start", "1"]);
    expect(&o, OK);
    let o = walden(&dir, &["tail", "--slot", "t4", "--start-lsn", "7", "--drain"]);
    let lsns: Vec<u64> = json_lines(&o).iter().map(|e| e["lsn"].as_u64().expect("lsn")).collect();
    assert_eq!(lsns, vec![7, 10]);

    let o = walden(&dir, &["tail", "--slot", "nope", "--drain"]);
    expect(&o, SLOT_NOT_FOUND);
    assert!(err(&o).contains("--create"), "{}", err(&o));
    expect(&walden(&dir, &["tail", "--slot", "s1", "--table", "x"]), USAGE); // --table needs --create
}

#[test]
fn tail_renders_every_envelope_format() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    for (slot, format, key) in [
        ("f1", "native", "txnId"),
        ("f2", "debezium", "op"),
        ("f3", "cdcevent", "collection"),
        ("f4", "unified", "txid"),
    ] {
        expect(&walden(&dir, &["slots", "create", slot, "--start", "oldest"]), OK);
        let o = walden(&dir, &["tail", "--slot", slot, "--format", format, "--drain"]);
        expect(&o, OK);
        let events = json_lines(&o);
        // Schema changes have no representation in debezium, cdcevent and unified.
        let expected = if format == "native" { 5 } else { 4 };
        assert_eq!(events.len(), expected, "{format}: {}", out(&o));
        assert!(events.iter().all(|e| e.get(key).is_some()), "{format}: {}", out(&o));
    }
    let o = walden(&dir, &["tail", "--slot", "f1", "--format", "avro"]);
    expect(&o, USAGE);
}

#[test]
fn tail_to_a_file_appends_and_fsyncs_before_acknowledging() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let file = t.path().join("events.jsonl");
    let file_arg = file.to_str().expect("utf-8");
    let o = walden(&dir, &["tail", "--slot", "s1", "--file", file_arg, "--end-lsn", "8"]);
    expect(&o, OK);
    assert_eq!(out(&o), "", "events go to the file, not stdout");
    let written = fs::read_to_string(&file).expect("file");
    assert_eq!(written.lines().count(), 4);
    assert_eq!(json(&walden(&dir, &["slots", "list", "--json"]))[0]["confirmed_lsn"], 8);
    let o = walden(&dir, &["tail", "--slot", "s1", "--file", file_arg, "--drain"]);
    expect(&o, OK);
    let written = fs::read_to_string(&file).expect("file");
    let lsns: Vec<u64> = written
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["lsn"].as_u64().expect("lsn"))
        .collect();
    assert_eq!(lsns, vec![2, 3, 6, 7, 10], "appended, nothing lost or repeated");
}

#[test]
fn tail_exits_cleanly_on_sigint() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let mut child = command(&["tail", "--slot", "s1", "--data-dir", dir.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while lines.len() < 5 && Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        lines.push(line);
    }
    assert_eq!(lines.len(), 5, "tail delivered the five events");
    // Caught up and waiting: the acknowledgement is already on disk.
    let wait_ack = Instant::now() + Duration::from_secs(10);
    while json(&walden(&dir, &["slots", "list", "--json"]))[0]["confirmed_lsn"] != 11 {
        assert!(Instant::now() < wait_ack, "tail did not acknowledge");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().expect("try_wait").is_none(), "tail waits for more without --drain");
    interrupt(pid);
    let stop_deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > stop_deadline {
            let _ = child.kill();
            panic!("tail did not exit on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(stderr.contains("stopped by signal"), "{stderr}");
    assert!(stderr.contains("caught up at LSN 11; waiting"), "{stderr}");
    // The database was closed: another command can open it.
    expect(&walden(&dir, &["slots", "create", "after"]), OK);
}

// ----- archive and replay -----

/// Opens (creating) a database of 4 KiB segments with slot `s1` at the start, and commits `n`
/// transactions (numbered from `start`) of every kind: a CREATE TABLE in the first, inserts,
/// updates and deletes on `users` and `orders`, metadata. Returns the last LSN.
fn busy_fixture(dir: &Path, start: u32, n: u32) -> u64 {
    let config =
        Config { wal: WalConfig { target_segment_size_bytes: 4096, ..WalConfig::default() }, ..Config::default() };
    let db = Database::open(dir, config).expect("open");
    if db.slot("s1").is_err() {
        db.create_slot("s1", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() }).expect("slot");
    }
    let mut last = 0;
    for i in start..start + n {
        let mut t = db.begin();
        t.set_actor(format!("user-{}", i % 3));
        if i == 0 {
            t.create_table("users", 1, &[Column::new("id", "TEXT", false)]).expect("schema");
        }
        let key = format!("u{i}");
        let row = format!(r#"{{"n":{i},"name":"User {i}"}}"#);
        t.insert("users", key.as_bytes(), row.as_bytes()).expect("insert");
        if i % 3 == 1 {
            t.insert("orders", format!("o{i}").as_bytes(), format!(r#"{{"total":{i}}}"#).as_bytes()).expect("insert");
        }
        if i % 4 == 2 {
            let new = format!(r#"{{"n":{i},"name":"User {i}","plan":"pro"}}"#);
            t.update("users", key.as_bytes(), row.as_bytes(), new.as_bytes()).expect("update");
        }
        if i % 5 == 4 {
            t.delete("users", key.as_bytes(), row.as_bytes()).expect("delete");
        }
        last = t.commit().expect("commit");
    }
    db.close().expect("close");
    last
}

fn lake_of(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".lake");
    PathBuf::from(name)
}

fn segment_files(dir: &Path) -> usize {
    fs::read_dir(dir.join("wal"))
        .expect("wal")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .count()
}

/// `walden replay <extra>` (from LSN 1 unless `extra` says otherwise) as JSON lines (exit 0
/// asserted).
fn replay(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["replay"];
    if !extra.contains(&"--from-lsn") {
        args.extend(["--from-lsn", "1"]);
    }
    args.extend_from_slice(extra);
    let o = walden(dir, &args);
    expect(&o, OK);
    json_lines(&o)
}

#[test]
fn archive_once_moves_sealed_segments_to_the_lake_and_status_shows_the_horizon() {
    let t = tmp();
    let dir = t.path().join("db");
    let last = busy_fixture(&dir, 0, 150);
    let lake = lake_of(&dir);
    let before = json(&walden(&dir, &["status", "--json"]));
    let segments_before = before["segment_count"].as_u64().expect("count");
    assert!(before["sealed_segment_count"].as_u64().expect("count") >= 3, "{before}");
    assert_eq!(before["archived_lsn"], Value::Null);
    let s1_before = json(&walden(&dir, &["slots", "list", "--json"]))[0].clone();
    assert!(s1_before["pinned_bytes"].as_u64().expect("bytes") > 0);
    assert_eq!(s1_before["reads_archive"], false);

    let o = walden(&dir, &["archive", "--once", "--json"]);
    expect(&o, OK);
    let r = json(&o);
    let archived = r["archived_lsn"].as_u64().expect("archived LSN");
    assert_eq!(r["first_lsn"], 1);
    assert_eq!(r["last_lsn"], archived);
    assert!(archived < last, "the active segment is not archived: {r}");
    assert!(r["rows"].as_u64().expect("rows") > 100, "{r}");
    assert_eq!(r["retain_from"], archived + 1);
    assert!(r["checkpoint"]["removed_segments"].as_u64().expect("n") >= 3, "{r}");
    assert_eq!(r["lake"]["dir"], lake.to_str().expect("utf-8"));
    assert_eq!(r["lake"]["url"], format!("file://{}", lake.display()));
    assert!(Path::new(r["lake"]["catalog"].as_str().expect("path")).is_file(), "{r}");
    assert_eq!(r["table"]["records"], r["rows"]);
    assert_eq!(r["table"]["snapshots"], 1);
    assert_eq!(r["table"]["last_lsn"], archived);
    let metadata = r["table"]["metadata_location"].as_str().expect("metadata").to_string();
    assert!(Path::new(metadata.strip_prefix("file://").expect("a file URL")).is_file(), "{metadata}");
    for file in r["batches"][0]["data_files"].as_array().expect("files") {
        let path = file.as_str().expect("path").strip_prefix("file://").expect("a file URL").to_string();
        assert!(path.ends_with(".parquet") && Path::new(&path).is_file(), "{path}");
    }

    // The status and the slot view (read-only, from the files) show the archive horizon.
    let s = json(&walden(&dir, &["status", "--json"]));
    assert_eq!(s["archived_lsn"], archived);
    assert_eq!(s["archive"]["archived_lsn"], archived);
    assert_eq!(s["archive"]["readable_from"], 1);
    assert_eq!(s["archive"]["unarchived_sealed_segments"], 0);
    assert_eq!(s["retain_from"], archived + 1);
    assert_eq!(s["oldest_lsn"], archived + 1);
    assert!(s["segment_count"].as_u64().expect("count") < segments_before, "{s}");
    assert_eq!(s["segment_count"].as_u64().expect("count") as usize, segment_files(&dir));
    let text = out(&walden(&dir, &["status"]));
    assert!(text.contains(&format!("archived up to LSN {archived}; slots pin only the WAL after it")), "{text}");
    let s1 = json(&walden(&dir, &["slots", "list", "--json"]))[0].clone();
    assert_eq!(s1["state"], "valid");
    assert_eq!(s1["restart_lsn"], 1);
    assert_eq!(s1["pinned_bytes"], 0, "a slot pins only unarchived WAL: {s1}");
    assert_eq!(s1["reads_archive"], true);
    assert_eq!(s1["invalid_at_next_open"], Value::Null);
    let text = out(&walden(&dir, &["slots", "list"]));
    assert!(text.contains(&format!("archive horizon: LSN {archived}")), "{text}");
    assert!(text.contains("slot \"s1\" starts in the archive"), "{text}");
    // engine.state is version 2 (40 bytes, with the archived LSN).
    assert_eq!(fs::metadata(dir.join("engine.state")).expect("state").len(), 40);
    // The trimmed log still verifies: s1 is served by the archive, not lost.
    let v = walden(&dir, &["verify"]);
    expect(&v, OK);
    assert!(out(&v).contains("0 errors, 0 warnings"), "{}", out(&v));
    let before = snapshot(&dir);
    let lake_before = snapshot(&lake);
    for args in READ_ONLY_COMMANDS.iter().filter(|a| !a.contains(&"--start-lsn")) {
        expect(&walden(&dir, args), OK);
    }
    assert_eq!(before, snapshot(&dir), "a read-only command changed the data directory");
    assert_eq!(lake_before, snapshot(&lake), "a read-only command touched the lake");

    // Again: nothing new; the text form says so.
    let o = walden(&dir, &["archive"]);
    expect(&o, OK);
    let text = out(&o);
    assert!(text.contains("nothing new"), "{text}");
    assert!(text.contains(&format!("archived up to LSN {archived}")), "{text}");
    assert!(text.contains("table       walden.events: 1 snapshot"), "{text}");
    // More work: the next run archives from where the last one ended.
    busy_fixture(&dir, 150, 60);
    let o = walden(&dir, &["archive"]);
    expect(&o, OK);
    assert!(out(&o).contains(&format!("archived    LSN {}-", archived + 1)), "{}", out(&o));
    assert!(out(&o).contains("2 snapshots"), "{}", out(&o));

    // While another process has the database open, archive waits its turn.
    let db = Database::open(&dir, Config::default()).expect("open");
    expect(&walden(&dir, &["archive"]), LOCKED);
    expect(&walden(&dir, &["replay", "--from-lsn", "1"]), LOCKED);
    db.close().expect("close");
}

#[test]
fn replay_after_trimming_equals_what_tail_and_dump_gave_before() {
    let t = tmp();
    let dir = t.path().join("db");
    let last = busy_fixture(&dir, 0, 150);
    // Before archiving: every event through a fresh slot, and the records dump shows.
    let o = walden(&dir, &["tail", "--slot", "before", "--create", "--start-lsn", "1", "--drain", "--transactions"]);
    expect(&o, OK);
    let tailed = json_lines(&o);
    let dumped = json_lines(&walden(&dir, &["dump", "--json"]));
    assert_eq!(dumped.len() as u64, last);
    let debezium = {
        let o =
            walden(&dir, &["tail", "--slot", "dbz", "--create", "--start-lsn", "1", "--drain", "--format", "debezium"]);
        expect(&o, OK);
        json_lines(&o)
    };
    let s1_tail_expected: Vec<Value> =
        tailed.iter().filter(|e| e["type"] != "begin" && e["type"] != "commit").cloned().collect();

    expect(&walden(&dir, &["archive", "--once"]), OK);
    let oldest = json(&walden(&dir, &["status", "--json"]))["oldest_lsn"].as_u64().expect("oldest");
    assert!(oldest > 100, "the WAL was trimmed: oldest LSN {oldest}");
    let o = walden(&dir, &["dump", "--start-lsn", "1"]);
    expect(&o, LSN_UNAVAILABLE);
    assert!(err(&o).contains("walden replay --from-lsn 1"), "{}", err(&o));

    // Hot + cold: the archive, then the WAL, one stream equal to the pure hot one.
    let o = walden(&dir, &["replay", "--from-lsn", "1", "--transactions"]);
    expect(&o, OK);
    let replayed = json_lines(&o);
    assert_eq!(replayed, tailed, "replay from the archive + WAL equals tail before trimming");
    let summary = err(&o);
    assert!(summary.contains(&format!("from LSN 1 to {last}")), "{summary}");
    assert!(!summary.contains(" 0 from the archive"), "{summary}");
    // The changes match what dump showed, record for record.
    let changes: Vec<(u64, String)> = replayed
        .iter()
        .filter(|e| e["type"] != "begin" && e["type"] != "commit")
        .map(|e| (e["lsn"].as_u64().expect("lsn"), e["type"].as_str().expect("type").to_string()))
        .collect();
    let dumped_changes: Vec<(u64, String)> = dumped
        .iter()
        .filter(|r| r["kind"] != "begin" && r["kind"] != "commit")
        .map(|r| (r["lsn"].as_u64().expect("lsn"), r["kind"].as_str().expect("kind").to_string()))
        .collect();
    assert_eq!(changes, dumped_changes);
    assert_eq!(replay(&dir, &["--format", "debezium"]), debezium);
    // Bounded and filtered.
    let mid = oldest - 10;
    let bounded = replay(&dir, &["--end-lsn", &mid.to_string(), "--transactions"]);
    assert!(!bounded.is_empty() && bounded.len() < replayed.len());
    assert_eq!(bounded[..], replayed[..bounded.len()], "a bounded replay is a prefix");
    // It ends with the transaction holding --end-lsn.
    let last_commit = bounded.last().expect("events")["commitLsn"].as_u64().expect("commit LSN");
    assert_eq!(bounded.last().expect("events")["type"], "commit");
    assert!(last_commit >= mid, "{last_commit} < {mid}");
    assert!(bounded.iter().all(|e| e["lsn"].as_u64().expect("lsn") <= mid || e["commitLsn"] == last_commit));
    assert!(replayed[bounded.len()..].iter().all(|e| e["lsn"].as_u64().expect("lsn") > mid));
    let from_mid = replay(&dir, &["--from-lsn", &mid.to_string()]);
    assert!(from_mid.iter().all(|e| e["lsn"].as_u64().expect("lsn") >= mid - 3)); // a transaction's rest
    let orders = replay(&dir, &["--table", "orders"]);
    let expected: Vec<&Value> = s1_tail_expected.iter().filter(|e| e["table"] == "orders").collect();
    assert_eq!(orders.iter().collect::<Vec<_>>(), expected);
    let deletes = replay(&dir, &["--op", "delete", "--op", "schema"]);
    let expected: Vec<&Value> =
        s1_tail_expected.iter().filter(|e| e["type"] == "delete" || e["type"] == "schema").collect();
    assert_eq!(deletes.iter().collect::<Vec<_>>(), expected);
    assert!(deletes.iter().any(|e| e["type"] == "schema"));

    // A slot behind the trimmed WAL keeps working: tail reads the archived part from the lake.
    let o = walden(&dir, &["tail", "--slot", "s1", "--drain"]);
    expect(&o, OK);
    assert_eq!(json_lines(&o), s1_tail_expected);
    assert_eq!(json(&walden(&dir, &["slots", "list", "--json"]))[1]["confirmed_lsn"], last); // "s1" (after "dbz")

    // Without the lake only the WAL is there, and the error says where the lake was looked for.
    let moved = t.path().join("elsewhere");
    fs::rename(lake_of(&dir), &moved).expect("move the lake");
    let o = walden(&dir, &["replay", "--from-lsn", "1"]);
    expect(&o, LSN_UNAVAILABLE);
    assert!(err(&o).contains("no archive lake") || err(&o).contains("there is none"), "{}", err(&o));
    assert!(!lake_of(&dir).exists(), "replay created a lake");
    assert_eq!(replay(&dir, &["--from-lsn", &oldest.to_string()]).len() as u64, {
        tailed
            .iter()
            .filter(|e| e["lsn"].as_u64().expect("lsn") >= oldest && e["type"] != "begin" && e["type"] != "commit")
            .count() as u64
    });
    // A moved lake does not open (its catalog records absolute locations): lake unavailable.
    let o = walden(&dir, &["replay", "--from-lsn", "1", "--lake", moved.to_str().expect("utf-8")]);
    expect(&o, LAKE_UNAVAILABLE);
    fs::rename(&moved, lake_of(&dir)).expect("move the lake back");
    let o = walden(
        &dir,
        &["replay", "--from-lsn", "1", "--transactions", "--lake", lake_of(&dir).to_str().expect("utf-8")],
    );
    expect(&o, OK);
    assert_eq!(json_lines(&o), tailed, "--lake names the lake explicitly");
    let o = walden(&dir, &["replay", "--from-lsn", "1", "--lake", t.path().join("none").to_str().expect("utf-8")]);
    expect(&o, LAKE_UNAVAILABLE);
    assert!(err(&o).contains("no archive lake at"), "{}", err(&o));
    assert!(!t.path().join("none").exists());
    // Bad ranges.
    expect(&walden(&dir, &["replay", "--from-lsn", &(last + 5).to_string()]), LSN_UNAVAILABLE);
    expect(&walden(&dir, &["replay", "--from-lsn", "9", "--end-lsn", "3"]), USAGE);
}

#[test]
fn archive_follow_archives_then_stops_cleanly_on_sigint() {
    let t = tmp();
    let dir = t.path().join("db");
    busy_fixture(&dir, 0, 120);
    let mut child = command(&["archive", "--follow", "--data-dir", dir.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    // It catches up at once (whatever the batch target), and says so.
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("read");
    assert!(first.starts_with("archived    LSN 1-"), "{first}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(&walden(&dir, &["status", "--json"]))["archived_lsn"].is_null() {
        assert!(Instant::now() < deadline, "archive --follow archived nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    // It holds the database while it follows.
    expect(&walden(&dir, &["archive", "--once"]), LOCKED);
    assert!(child.try_wait().expect("try_wait").is_none(), "--follow keeps running");
    interrupt(pid);
    let stop_deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > stop_deadline {
            let _ = child.kill();
            panic!("archive --follow did not exit on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(stderr.contains("following") && stderr.contains("stopped by signal"), "{stderr}");
    // The database and the lake were closed cleanly: the next run opens both and has nothing to do.
    let o = walden(&dir, &["archive", "--json"]);
    expect(&o, OK);
    assert_eq!(json(&o)["batches"], Value::Array(Vec::new()));
    expect(&walden(&dir, &["verify"]), OK);
}

#[test]
fn archive_compact_and_expire_maintain_the_table() {
    let t = tmp();
    let dir = t.path().join("db");
    busy_fixture(&dir, 0, 60);
    for round in 1..=3 {
        expect(&walden(&dir, &["archive"]), OK);
        busy_fixture(&dir, round * 60, 60);
    }
    let r = json(&walden(&dir, &["archive", "--json"]));
    let files_before = r["table"]["data_files"].as_u64().expect("files");
    let records = r["table"]["records"].as_u64().expect("records");
    assert!(files_before >= 4, "one small file per archive run: {r}");
    assert_eq!(r["table"]["snapshots"].as_u64(), Some(files_before));
    let events_before = replay(&dir, &["--transactions"]);

    // Compaction: one replace snapshot, the same rows in one file.
    let o = walden(&dir, &["archive", "compact", "--json"]);
    expect(&o, OK);
    let c = json(&o);
    assert_eq!(c["input_files"].as_array().expect("files").len() as u64, files_before, "{c}");
    assert_eq!(c["output_files"].as_array().expect("files").len(), 1, "{c}");
    assert_eq!(c["rows"], records);
    assert!(c["snapshot_id"].is_i64());
    assert_eq!(c["table"]["data_files"], 1);
    assert_eq!(c["table"]["records"], records);
    assert_eq!(c["table"]["snapshots"].as_u64(), Some(files_before + 1));
    let replaced: Vec<PathBuf> = c["input_files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| PathBuf::from(f.as_str().expect("path").strip_prefix("file://").expect("file URL")))
        .collect();
    assert!(replaced.iter().all(|p| p.is_file()), "replaced files stay until their snapshots expire");
    assert_eq!(replay(&dir, &["--transactions"]), events_before, "compaction changes no event");
    let o = walden(&dir, &["archive", "compact"]);
    expect(&o, OK);
    assert!(out(&o).contains("compacted   nothing"), "{}", out(&o));

    // Expiry: young snapshots survive --older-than; --retain-last 1 removes the replaced files.
    let o = walden(&dir, &["archive", "expire", "--retain-last", "1", "--older-than", "7d", "--json"]);
    expect(&o, OK);
    assert_eq!(json(&o)["expired_snapshot_ids"], Value::Array(Vec::new()));
    assert!(replaced.iter().all(|p| p.is_file()));
    let o = walden(&dir, &["archive", "expire", "--retain-last", "1", "--json"]);
    expect(&o, OK);
    let e = json(&o);
    assert_eq!(e["expired_snapshot_ids"].as_array().expect("ids").len() as u64, files_before, "{e}");
    assert_eq!(e["table"]["snapshots"], 1);
    assert_eq!(e["table"]["records"], records);
    let removed: Vec<&str> =
        e["removed_files"].as_array().expect("files").iter().map(|f| f.as_str().expect("path")).collect();
    for p in &replaced {
        assert!(!p.exists(), "{} was not removed", p.display());
        assert!(removed.iter().any(|r| r.ends_with(p.to_str().expect("utf-8"))), "{removed:?}");
    }
    assert_eq!(replay(&dir, &["--transactions"]), events_before, "expiry changes no event");
    let o = walden(&dir, &["archive", "expire", "--retain-last", "3"]);
    expect(&o, OK);
    assert!(out(&o).contains("expired     0 snapshots"), "{}", out(&o));

    // Maintenance needs a lake.
    let fresh = t.path().join("fresh");
    fixture(&fresh);
    for args in [&["archive", "compact"][..], &["archive", "expire", "--retain-last", "1"]] {
        let o = walden(&fresh, args);
        expect(&o, LAKE_UNAVAILABLE);
        assert!(err(&o).contains("no archive lake at"), "{}", err(&o));
        assert!(!lake_of(&fresh).exists());
    }
}

#[test]
fn bad_or_unreachable_lakes_are_refused_with_their_exit_code() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let before = snapshot(&dir);
    for (lake, needle) in [
        ("gs://bucket/x", "unsupported scheme"),
        ("memory://x", "memory:// lake"),
        ("s3://bucket/x", "needs --catalog-path"),
        ("s3:///x", "no bucket"),
    ] {
        for args in [&["archive"][..], &["replay", "--from-lsn", "1"], &["tail", "--slot", "s1", "--drain"]] {
            let mut all = args.to_vec();
            all.extend(["--lake", lake]);
            let o = walden(&dir, &all);
            expect(&o, USAGE);
            assert!(err(&o).contains(needle), "{lake}: {}", err(&o));
        }
    }
    // An S3 endpoint nobody listens on: refused at once, nothing created.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let catalog = t.path().join("cat").join("catalog.db");
    let started = Instant::now();
    let o = command(&[
        "archive",
        "--json",
        "--lake",
        "s3://bucket/lake",
        "--catalog-path",
        catalog.to_str().expect("utf-8"),
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ])
    .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
    .env("AWS_ALLOW_HTTP", "true")
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("AWS_REGION", "us-east-1")
    .env_remove("HTTPS_PROXY")
    .env_remove("https_proxy")
    .env_remove("HTTP_PROXY")
    .env_remove("http_proxy")
    .env_remove("ALL_PROXY")
    .env_remove("all_proxy")
    .env_remove("AWS_PROXY_URL")
    .output()
    .expect("run");
    expect(&o, LAKE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let e: Value = serde_json::from_str(err(&o).trim()).expect("a JSON error");
    assert_eq!(e["error"]["kind"], "lake_unavailable");
    assert!(e["error"]["message"].as_str().expect("message").contains("cannot reach the lake s3://bucket/lake"), "{e}");
    assert!(!t.path().join("cat").exists(), "nothing is created for an unreachable lake");
    assert_eq!(before, snapshot(&dir), "the data directory was not touched");
    // A lake that belongs to another database: refused as damage, nothing archived.
    let other = t.path().join("other");
    busy_fixture(&other, 0, 120);
    expect(&walden(&other, &["archive"]), OK);
    let o = walden(&dir, &["archive", "--lake", lake_of(&other).to_str().expect("utf-8")]);
    expect(&o, DAMAGED);
    assert!(err(&o).contains("wrong lake") || err(&o).contains("another database"), "{}", err(&o));
}

// ----- verify and recover -----

#[test]
fn verify_reports_damage_precisely_and_recover_repairs_what_the_mode_allows() {
    let t = tmp();
    // A clean database.
    let dir = t.path().join("db");
    fixture(&dir);
    let o = walden(&dir, &["verify"]);
    expect(&o, OK);
    assert!(out(&o).contains("1 segments, 11 records"), "{}", out(&o));
    assert!(out(&o).contains("0 errors, 0 warnings"), "{}", out(&o));
    let report = json(&walden(&dir, &["verify", "--json"]));
    assert_eq!(report["ok"], true);
    assert_eq!(report["records"], 11);

    // A damaged record followed by valid ones in the active segment.
    let seg = active_segment(&dir);
    let mut bytes = fs::read(&seg).expect("read");
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 11);
    bytes[offsets[5] + 33] ^= 0xFF; // inside the payload of LSN 6
    fs::write(&seg, &bytes).expect("write");
    let o = walden(&dir, &["verify"]);
    expect(&o, DAMAGED);
    let expected = format!("ERROR {} at byte {} (LSN 6)", seg.display(), offsets[5]);
    assert!(out(&o).contains(&expected), "{expected}\n{}", out(&o));
    assert!(err(&o).contains("verify found 1 error"), "{}", err(&o));
    let report = json(&walden(&dir, &["verify", "--json"]));
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["offset"], offsets[5]);
    assert_eq!(report["problems"][0]["lsn"], 6);
    expect(&walden(&dir, &["dump"]), DAMAGED);
    expect(&walden(&dir, &["status"]), DAMAGED);

    let before = snapshot(&dir);
    let o = walden(&dir, &["recover", "--mode", "tolerate-torn-tail"]);
    expect(&o, DAMAGED);
    assert!(err(&o).contains("point-in-time"), "{}", err(&o));
    expect(&walden(&dir, &["recover", "--mode", "absolute-consistency"]), DAMAGED);
    // Nothing but the lock file's clean-close record (which recover never trusts, and which
    // the WAL clears once it has looked at it) changes.
    let lock = dir.join("wal").join("LOCK");
    let without_lock = |mut m: BTreeMap<PathBuf, Entry>| {
        m.remove(&lock);
        m
    };
    assert_eq!(without_lock(before), without_lock(snapshot(&dir)), "a refused recovery changes nothing");
    let o = walden(&dir, &["recover", "--mode", "point-in-time"]);
    expect(&o, OK);
    assert!(out(&o).contains("recovered") && out(&o).contains("LSN 1-4"), "{}", out(&o));
    let o = walden(&dir, &["verify"]);
    expect(&o, OK);
    assert_eq!(json(&walden(&dir, &["status", "--json"]))["current_lsn"], 4);

    // A torn tail: a warning for verify, truncated by recover.
    let torn = t.path().join("torn");
    fixture(&torn);
    let seg = active_segment(&torn);
    let mut bytes = fs::read(&seg).expect("read");
    let len = bytes.len();
    bytes.extend_from_within(64..64 + 20); // a record header cut short
    fs::write(&seg, &bytes).expect("write");
    let o = walden(&torn, &["verify"]);
    expect(&o, OK);
    assert!(out(&o).contains("WARNING") && out(&o).contains("0 errors, 1 warning"), "{}", out(&o));
    expect(&walden(&torn, &["recover", "--mode", "absolute-consistency"]), DAMAGED);
    let report = json(&walden(&torn, &["recover", "--mode", "tolerate-torn-tail", "--json"]));
    assert_eq!(report["bytes_truncated"], 20);
    assert_eq!(report["torn_tail"]["offset"], len);
    assert_eq!(report["last_lsn"], 11);
    let o = walden(&torn, &["verify"]);
    assert!(out(&o).contains("0 errors, 0 warnings"), "{}", out(&o));

    // A damaged sealed segment (never scanned by open, found by verify) and a corrupt slot file.
    let trimmed = t.path().join("trimmed");
    trimmed_fixture(&trimmed);
    let mut segs: Vec<PathBuf> = fs::read_dir(trimmed.join("wal"))
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    let sealed = segs[0].clone();
    let mut bytes = fs::read(&sealed).expect("read");
    let offsets = record_offsets(&bytes);
    bytes[offsets[3] + 34] ^= 0x01;
    fs::write(&sealed, &bytes).expect("write");
    fs::write(trimmed.join("slots").join("bad.slot"), b"WALDSLOT garbage").expect("write");
    let o = walden(&trimmed, &["verify"]);
    expect(&o, DAMAGED);
    assert!(out(&o).contains(&format!("ERROR {} at byte {}", sealed.display(), offsets[3])), "{}", out(&o));
    assert!(out(&o).contains("bad.slot: corrupt slot file"), "{}", out(&o));
    assert!(out(&o).contains("DAMAGED"), "{}", out(&o));
    let o = walden(&trimmed, &["slots", "list"]);
    expect(&o, DAMAGED);
    assert!(err(&o).contains("bad.slot"), "{}", err(&o));

    expect(&walden(&dir, &["recover", "--mode", "sideways"]), USAGE);
    expect(&walden(&dir, &["recover"]), USAGE);
}

// ----- unwritable directories -----

#[test]
fn unwritable_directories_exit_6() {
    let t = tmp();
    // demo into a directory it cannot create.
    let parent = t.path().join("ro");
    fs::create_dir(&parent).expect("mkdir");
    let target = parent.join("demo");
    let (mut cmd, restore) =
        unwritable(&parent, &["demo", "--transactions", "5", "--data-dir", target.to_str().expect("utf-8")]);
    let o = cmd.output().expect("run");
    restore();
    expect(&o, PERMISSION);
    assert!(err(&o).contains("ermission denied"), "{}", err(&o));
    assert!(!target.exists());

    // slots create on a data directory it cannot write.
    let dir = t.path().join("db");
    fixture(&dir);
    let before = snapshot(&dir);
    let (mut cmd, restore) = unwritable(&dir, &["slots", "create", "x", "--data-dir", dir.to_str().expect("utf-8")]);
    let o = cmd.output().expect("run");
    restore();
    expect(&o, PERMISSION);
    assert_eq!(before.keys().collect::<Vec<_>>(), snapshot(&dir).keys().collect::<Vec<_>>());

    // tail --file into a directory it cannot write: refused before anything is consumed.
    let out_dir = t.path().join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    fs::set_permissions(&out_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let events = out_dir.join("events.jsonl");
    let (mut cmd, restore) = unwritable(
        &out_dir,
        &[
            "tail",
            "--slot",
            "s1",
            "--drain",
            "--file",
            events.to_str().expect("utf-8"),
            "--data-dir",
            dir.to_str().expect("utf-8"),
        ],
    );
    let o = cmd.output().expect("run");
    restore();
    expect(&o, PERMISSION);
    assert!(err(&o).contains("cannot open the output file"), "{}", err(&o));
    assert_eq!(json(&walden(&dir, &["slots", "list", "--json"]))[0]["confirmed_lsn"], 0);
}

// ----- demo and bench -----

#[test]
fn demo_runs_end_to_end_and_can_be_run_again() {
    let t = tmp();
    let dir = t.path().join("demo");
    let d = dir.to_str().expect("utf-8");
    let o = run(&["demo", "--data-dir", d, "--transactions", "300", "--threads", "3", "--segment-kib", "16"]);
    expect(&o, OK);
    let text = out(&o);
    for needle in [
        "commits/s",
        "events delivered",
        "slot lag now 0 LSNs",
        "slot audit",
        "segments",
        "rolled back",
        "Parquet file",
        "removed",
        "query the lake with pyiceberg",
        "from pyiceberg.catalog.sql import SqlCatalog",
        "INSTALL iceberg; LOAD iceberg;",
        "iceberg_scan(",
        "walden replay",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(err(&o).contains(&format!("creating {d}")), "{}", err(&o));
    let lake = lake_of(&dir);
    assert!(err(&o).contains(&format!("creating its lake {}", lake.display())), "{}", err(&o));
    assert!(lake.join("catalog.db").is_file() && lake.join(".walden-demo").is_file());
    // Every path the summary prints is real: the data files, the catalog and metadata in the snippets.
    let printed_files: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("file://")).collect();
    assert!(!printed_files.is_empty(), "{text}");
    for f in &printed_files {
        assert!(f.ends_with(".parquet") && Path::new(f).is_file(), "{f}");
    }
    assert!(text.contains(&format!("uri=\"sqlite:///{}\"", lake.join("catalog.db").display())), "{text}");
    let metadata = text
        .split("iceberg_scan('")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a metadata path in the DuckDB snippet");
    assert!(metadata.ends_with(".metadata.json") && Path::new(metadata).is_file(), "{metadata}");
    // The log it leaves is consistent, and the tools see it.
    expect(&walden(&dir, &["verify"]), OK);
    let slots = json(&walden(&dir, &["slots", "list", "--json"]));
    let demo = slots.as_array().expect("rows").iter().find(|r| r["name"] == "demo").expect("demo").clone();
    let audit = slots.as_array().expect("rows").iter().find(|r| r["name"] == "audit").expect("audit").clone();
    assert_eq!(demo["lag_lsns"], 0);
    assert!(audit["lag_lsns"].as_u64().expect("lag") > 0);
    // The unconsumed slot no longer pins the archived WAL: its consumer reads it from the lake.
    assert_eq!(audit["reads_archive"], true);
    assert_eq!(audit["pinned_bytes"], 0);
    let status = json(&walden(&dir, &["status", "--json"]));
    assert!(status["archived_lsn"].as_u64().expect("archived") > 0, "{status}");
    assert_eq!(status["sealed_segment_count"], 0, "the archived segments left the WAL: {status}");
    // The whole history, from the lake and then the WAL.
    let events = replay(&dir, &[]);
    let count = |table: &str, ty: &str| events.iter().filter(|e| e["table"] == table && e["type"] == ty).count();
    assert!(count("payments", "insert") > 0);
    assert!(count("orders", "delete") > 0);
    assert_eq!(count("users", "schema"), 2); // CREATE TABLE, ADD COLUMN
    let o = walden(&dir, &["tail", "--slot", "audit", "--drain"]);
    expect(&o, OK);
    assert_eq!(json_lines(&o).len(), count("payments", "insert"), "the audit slot reads its backlog from the lake");

    // Again, as JSON: it says it resets the directory it left.
    let o = run(&["demo", "--json", "--data-dir", d, "--transactions", "200", "--threads", "2", "--segment-kib", "16"]);
    expect(&o, OK);
    let s = json(&o);
    assert!(s["prepared"].as_str().expect("text").starts_with("resetting"), "{s}");
    assert!(s["prepared"].as_str().expect("text").contains("resetting its lake"), "{s}");
    let a = &s["archive"];
    assert_eq!(a["lake"]["dir"], lake.to_str().expect("utf-8"));
    assert_eq!(a["first_lsn"], 1);
    assert_eq!(a["table"]["snapshots"], 1, "the reset lake holds only this run: {a}");
    assert_eq!(a["table"]["records"], a["rows"]);
    assert_eq!(a["checkpoint"]["removed_segments"].as_u64(), a["segments"].as_u64());
    assert_eq!(s["checkpoint_removed_segments"].as_u64(), a["segments"].as_u64());
    assert!(Path::new(a["lake"]["catalog"].as_str().expect("path")).is_file());
    let metadata = a["table"]["metadata_location"].as_str().expect("metadata");
    assert!(Path::new(metadata.strip_prefix("file://").expect("file URL")).is_file(), "{metadata}");
    assert!(a["pyiceberg"].as_str().expect("code").contains(lake.join("catalog.db").to_str().expect("utf-8")));
    assert!(a["duckdb_sql"].as_str().expect("sql").contains(metadata.strip_prefix("file://").expect("file URL")));
    check_demo_snippets(a);
    let sub = &s["subscriber"];
    assert_eq!(
        sub["events"].as_u64(),
        Some(
            s["inserts"].as_u64().expect("n")
                + s["updates"].as_u64().expect("n")
                + s["deletes"].as_u64().expect("n")
                + s["schema_changes"].as_u64().expect("n")
        ),
        "the subscriber saw every change: {s}"
    );
    assert_eq!(sub["transactions"], s["transactions_committed"]);
    assert_eq!(sub["acknowledged_lsn"], s["last_lsn"]);
    assert_eq!(s["slot_demo_lag_lsns"], 0);
    assert!(s["transactions_rolled_back"].as_u64().expect("n") > 0);
    assert_eq!(
        s["transactions_committed"].as_u64().expect("n") + s["transactions_rolled_back"].as_u64().expect("n"),
        201
    );
    assert!(s["segments"].as_u64().expect("n") > 1);
    assert!(s["commits_per_second"].as_f64().expect("rate") > 0.0);
    let o = run(&["demo", "--data-dir", d, "--transactions", "20"]);
    expect(&o, OK);
    assert!(err(&o).contains("resetting"), "{}", err(&o));

    // Locked while another process has it open.
    let db = Database::open(&dir, Config::default()).expect("open");
    let o = run(&["demo", "--data-dir", d, "--transactions", "20"]);
    expect(&o, LOCKED);
    db.close().expect("close");

    // A directory the demo did not create is never reset.
    let other = t.path().join("mine");
    fixture(&other);
    let before = snapshot(&other);
    let o = run(&["demo", "--data-dir", other.to_str().expect("utf-8"), "--transactions", "20"]);
    expect(&o, FOREIGN);
    assert!(err(&o).contains("refusing to reset"), "{}", err(&o));
    assert_eq!(before, snapshot(&other));
    // Nor a lake directory it did not create: refused before either directory is touched.
    let fresh = t.path().join("fresh");
    fs::create_dir(lake_of(&fresh)).expect("mkdir");
    fs::write(lake_of(&fresh).join("mine.parquet"), "x").expect("write");
    let o = run(&["demo", "--data-dir", fresh.to_str().expect("utf-8"), "--transactions", "20"]);
    expect(&o, FOREIGN);
    assert!(err(&o).contains("refusing to reset"), "{}", err(&o));
    assert!(!fresh.exists());
    assert_eq!(fs::read_dir(lake_of(&fresh)).expect("list").count(), 1);
    expect(&run(&["demo", "--data-dir", d, "--threads", "0"]), USAGE);
}

/// The lake venv's python (`scripts/lake_venv.sh`, as the archive's reader tests find it), if
/// there is one with pyiceberg and DuckDB.
fn lake_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WALDEN_LAKE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let mut venvs: Vec<PathBuf> = std::env::var_os("WALDEN_LAKE_VENV").map(PathBuf::from).into_iter().collect();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    venvs.extend(cache.map(|c| c.join("walden/lake-venv")));
    venvs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    venvs.into_iter().map(|v| v.join("bin/python")).find(|p| {
        p.exists()
            && Command::new(p)
                .args(["-c", "import duckdb, pyiceberg.catalog.sql"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// Runs the demo's pyiceberg snippet as printed, and its DuckDB query (with the iceberg
/// extension loaded from the venv's wheels instead of `INSTALL iceberg`, which needs the
/// network): both must see every archived row. Skipped without the lake venv unless
/// `WALDEN_REQUIRE_LAKE_VENV` is set (as the test command sets it).
fn check_demo_snippets(archive: &Value) {
    let required = std::env::var("WALDEN_REQUIRE_LAKE_VENV").is_ok_and(|v| !v.is_empty() && v != "0");
    let Some(python) = lake_python() else {
        assert!(!required, "WALDEN_REQUIRE_LAKE_VENV is set but there is no lake venv with pyiceberg and duckdb");
        eprintln!("skipping the pyiceberg / DuckDB run of the demo's snippets: no lake venv (scripts/lake_venv.sh)");
        return;
    };
    let records = archive["table"]["records"].as_u64().expect("records");
    let o = Command::new(&python).args(["-c", archive["pyiceberg"].as_str().expect("code")]).output().expect("python");
    assert!(
        o.status.success(),
        "the pyiceberg snippet failed:
{}",
        err(&o)
    );
    let text = out(&o);
    assert!(
        text.starts_with(&format!(
            "{records} events
"
        )),
        "{text}"
    );
    let per_group: u64 =
        text.lines().skip(1).map(|l| l.split_whitespace().last().expect("a count").parse::<u64>().expect("n")).sum();
    assert_eq!(per_group, records, "{text}");
    assert!(text.lines().any(|l| l.starts_with("payments  insert")), "{text}");
    let duck = r#"
import glob, os, sys, sysconfig
import duckdb
root = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions", "v" + duckdb.__version__)
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
for name in ("parquet", "avro", "iceberg"):
    (path,) = glob.glob(os.path.join(root, "*", name + ".duckdb_extension"))
    con.execute("LOAD '" + path + "'")
print(sum(row[2] for row in con.execute(sys.argv[1]).fetchall()))
"#;
    let o = Command::new(&python)
        .args(["-c", duck, archive["duckdb_sql"].as_str().expect("sql")])
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "the DuckDB query failed:
{}",
        err(&o)
    );
    assert_eq!(out(&o).trim(), records.to_string());
}

#[test]
fn bench_measures_and_cleans_up() {
    let t = tmp();
    let dir = t.path().join("bench");
    fs::create_dir(&dir).expect("mkdir");
    let o = run(&["bench", "--dir", dir.to_str().expect("utf-8"), "--seconds", "0.6", "--threads", "2", "--json"]);
    expect(&o, OK);
    let r = json(&o);
    assert!(r["raw_write_fdatasync"]["syncs"].as_u64().expect("n") > 0);
    assert!(r["durable_group_commit"]["appends"].as_u64().expect("n") > 0);
    assert!(r["durable_group_commit"]["fdatasyncs"].as_u64().expect("n") > 0);
    assert!(r["buffered"]["appends"].as_u64().expect("n") > 0);
    assert!(r["buffered"]["final_sync_ms"].as_f64().is_some());
    assert_eq!(fs::read_dir(&dir).expect("list").count(), 0, "the bench directory was removed");
    let o = run(&["bench", "--dir", dir.to_str().expect("utf-8"), "--seconds", "0.3", "--threads", "1"]);
    expect(&o, OK);
    assert!(out(&o).contains("raw write+fdatasync") && out(&o).contains("group commit"), "{}", out(&o));
    expect(&run(&["bench", "--dir", dir.join("nope").to_str().expect("utf-8"), "--seconds", "0.3"]), MISSING);
    expect(&run(&["bench", "--seconds", "0"]), USAGE);

    // Interrupted: stops early, removes its work directory, exits 130.
    let child = command(&["bench", "--dir", dir.to_str().expect("utf-8"), "--seconds", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while fs::read_dir(&dir).expect("list").count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "bench did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    interrupt(child.id() as i32);
    let o = child.wait_with_output().expect("wait");
    expect(&o, 130);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(fs::read_dir(&dir).expect("list").count(), 0, "the work directory was removed");
}
