//! Shared by the CLI tests: running the real `walden` binary and reading its output, temporary
//! and unwritable directories, and data directories in known states (fixtures).

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use walden_engine::record::Column;
use walden_engine::slot::SlotRecord;
use walden_engine::{Config, Database, SlotOptions, StartPosition, WalConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_walden");

// Exit codes (documented in `walden --help` and the README).
pub const OK: i32 = 0;
pub const USAGE: i32 = 2;
pub const MISSING: i32 = 3;
pub const FOREIGN: i32 = 4;
pub const LOCKED: i32 = 5;
pub const PERMISSION: i32 = 6;
pub const SLOT_NOT_FOUND: i32 = 7;
pub const SLOT_CONFLICT: i32 = 8;
pub const LSN_UNAVAILABLE: i32 = 9;
pub const DAMAGED: i32 = 10;
pub const LAKE_UNAVAILABLE: i32 = 11;

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("WALDEN_DATA_DIR")
        .env_remove("WALDEN_LAKE")
        .env_remove("WALDEN_LAKE_CATALOG")
        .stdin(Stdio::null());
    cmd
}

pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("the walden binary runs")
}

/// `walden <args> --data-dir <dir>`.
pub fn walden(dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", dir.to_str().expect("UTF-8 path")]);
    run(&all)
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn expect(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "exit code\n--- stdout\n{}\n--- stderr\n{}", out(o), err(o));
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out(o)))
}

pub fn json_lines(o: &Output) -> Vec<Value> {
    out(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// Sends SIGINT to a child process (as Ctrl-C would).
pub fn interrupt(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).expect("a child's pid is positive");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("signal the child");
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A temporary directory other users may traverse (the unprivileged runs need to).
pub fn tmp() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// The `walden` binary at a path any user may execute. The build's copy can sit under a directory
/// only its owner may traverse (CI keeps `CARGO_TARGET_DIR` under `$HOME`), so the unprivileged
/// runs use a copy in a world-readable temporary directory, made once per test process.
pub fn world_executable_bin() -> &'static Path {
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
pub fn unwritable(path: &Path, args: &[&str]) -> (Command, impl FnOnce() + use<>) {
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
pub fn fixture(dir: &Path) {
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
pub fn trimmed_fixture(dir: &Path) -> u64 {
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

/// The segment files of a data directory, oldest first.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments
}

/// The newest segment file (the active one).
pub fn active_segment(dir: &Path) -> PathBuf {
    segment_paths(dir).pop().expect("a segment")
}

/// Offsets of the records of a segment file, from their headers (64-byte segment header,
/// 32-byte record headers with the stored length at bytes 8..12).
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 64;
    let mut offsets = Vec::new();
    while at + 32 <= bytes.len() && bytes[at + 4..at + 6] == 0x57A1u16.to_le_bytes() {
        offsets.push(at);
        at += 32 + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
    }
    offsets
}

/// What [`snapshot`] records of one path: kind, size, mtime (s, ns), mode, contents of files.
pub type Entry = (bool, u64, i64, i64, u32, Vec<u8>);

/// Every path under `root` with its kind, size, mtime, mode and (for files) contents.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
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

pub const READ_ONLY_COMMANDS: &[&[&str]] = &[
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
/// Opens (creating) a database of 4 KiB segments with slot `s1` at the start, and commits `n`
/// transactions (numbered from `start`) of every kind: a CREATE TABLE in the first, inserts,
/// updates and deletes on `users` and `orders`, metadata. Returns the last LSN.
pub fn busy_fixture(dir: &Path, start: u32, n: u32) -> u64 {
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

pub fn lake_of(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".lake");
    PathBuf::from(name)
}

pub fn segment_files(dir: &Path) -> usize {
    segment_paths(dir).len()
}

/// `walden replay <extra>` (from LSN 1 unless `extra` says otherwise) as JSON lines (exit 0
/// asserted).
pub fn replay(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["replay"];
    if !extra.contains(&"--from-lsn") {
        args.extend(["--from-lsn", "1"]);
    }
    args.extend_from_slice(extra);
    let o = walden(dir, &args);
    expect(&o, OK);
    json_lines(&o)
}

/// `walden <args>` started with piped stdout and stderr.
pub fn spawn(args: &[&str]) -> Child {
    command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn")
}

/// Sends SIGINT to `child` and waits up to `within` for it to exit; kills it and fails the test
/// (`<what> did not exit on SIGINT`) if it does not.
pub fn interrupt_and_wait(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    interrupt(child.id() as i32);
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything `child` wrote to its piped stderr.
pub fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    stderr
}

/// Checks `done` every `poll` until it holds; fails the test with `what` after `within`.
#[track_caller]
pub fn wait_for(within: Duration, poll: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(poll);
    }
}

/// The `lsn` of each event or record.
pub fn lsns(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|e| e["lsn"].as_u64().expect("lsn")).collect()
}

/// The row of slot `name` in `slots list --json`.
pub fn slot_row(rows: &Value, name: &str) -> Value {
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no slot {name}"))
        .clone()
}

/// Writes slot file `<dir>/slots/<name>.slot` for a slot that confirmed LSN 100, beyond the end
/// of a fixture's log: the next open invalidates it.
pub fn write_slot_beyond_the_log(dir: &Path, name: &str) {
    let record = SlotRecord {
        name: name.into(),
        restart_lsn: 101,
        confirmed_lsn: 100,
        created_at_us: 1,
        last_active_at_us: 1,
        invalidation: None,
        filter: Default::default(),
    };
    fs::write(dir.join("slots").join(format!("{name}.slot")), record.encode()).expect("write");
}
