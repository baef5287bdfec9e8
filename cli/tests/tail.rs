//! `walden tail`: streaming, acknowledging, resuming, the envelope formats, --file and SIGINT.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

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
    assert_eq!(lsns(&json_lines(&o)), vec![6, 10]);
    // Everything was acknowledged, including the transactions the filter left out.
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    assert_eq!(slot_row(&rows, "t2")["confirmed_lsn"], 11);
    // --start-lsn later than the slot's position skips the events before it.
    let o = walden(&dir, &["slots", "create", "t4", "--start", "1"]);
    expect(&o, OK);
    let o = walden(&dir, &["tail", "--slot", "t4", "--start-lsn", "7", "--drain"]);
    assert_eq!(lsns(&json_lines(&o)), vec![7, 10]);

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
    let mut child = spawn(&["tail", "--slot", "s1", "--data-dir", dir.to_str().expect("utf-8")]);
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
    wait_for(Duration::from_secs(10), Duration::from_millis(20), "tail did not acknowledge", || {
        json(&walden(&dir, &["slots", "list", "--json"]))[0]["confirmed_lsn"] == 11
    });
    assert!(child.try_wait().expect("try_wait").is_none(), "tail waits for more without --drain");
    let status = interrupt_and_wait(&mut child, Duration::from_secs(10), "tail");
    assert_eq!(status.code(), Some(0));
    let stderr = stderr_of(&mut child);
    assert!(stderr.contains("stopped by signal"), "{stderr}");
    assert!(stderr.contains("caught up at LSN 11; waiting"), "{stderr}");
    // The database was closed: another command can open it.
    expect(&walden(&dir, &["slots", "create", "after"]), OK);
}
