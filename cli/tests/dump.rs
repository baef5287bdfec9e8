//! `walden dump`.

mod common;

use std::io::{BufRead, BufReader};

use walden_engine::{Config, Database};

use common::*;

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
        lsns(&json_lines(&walden(&dir, &all)))
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
    let mut child = spawn(&["dump", "--data-dir", dir.to_str().expect("utf-8")]);
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    // The reader is gone now (dropped above): the rest of the output hits a closed pipe.
    let o = child.wait_with_output().expect("wait");
    expect(&o, OK);
    assert!(first.starts_with("lsn "), "{first}");
    assert_eq!(err(&o), "");
}
