//! The documented error paths: missing, empty, foreign and unwritable data directories, bad
//! and unavailable LSNs, each with its exit code, and nothing created or changed on the way.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use common::*;

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
