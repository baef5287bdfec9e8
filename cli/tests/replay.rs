//! `walden replay`: hot + cold replay from the archive lake and the WAL.

mod common;

use std::fs;

use serde_json::Value;

use common::*;

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
