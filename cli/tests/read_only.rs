//! The read-only commands create and modify nothing, and work while another process has the
//! database open.

mod common;

use std::fs;
use std::time::Duration;

use walden_engine::{Config, Database};

use common::*;

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
    write_slot_beyond_the_log(&dir, "ahead");
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
