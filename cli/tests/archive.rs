//! `walden archive`: --once, --follow, compact and expire, and lakes that are bad, unreachable or
//! another database's.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use walden_engine::{Config, Database};

use common::*;

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
fn archive_follow_archives_then_stops_cleanly_on_sigint() {
    let t = tmp();
    let dir = t.path().join("db");
    busy_fixture(&dir, 0, 120);
    let mut child = spawn(&["archive", "--follow", "--data-dir", dir.to_str().expect("utf-8")]);
    // It catches up at once (whatever the batch target), and says so.
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("read");
    assert!(first.starts_with("archived    LSN 1-"), "{first}");
    wait_for(Duration::from_secs(30), Duration::from_millis(50), "archive --follow archived nothing", || {
        !json(&walden(&dir, &["status", "--json"]))["archived_lsn"].is_null()
    });
    // It holds the database while it follows.
    expect(&walden(&dir, &["archive", "--once"]), LOCKED);
    assert!(child.try_wait().expect("try_wait").is_none(), "--follow keeps running");
    let status = interrupt_and_wait(&mut child, Duration::from_secs(15), "archive --follow");
    assert_eq!(status.code(), Some(0));
    let stderr = stderr_of(&mut child);
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

#[test]
fn archive_expire_older_than_accepts_only_real_times() {
    let t = tmp();
    let dir = t.path().join("db");
    busy_fixture(&dir, 0, 60);
    expect(&walden(&dir, &["archive"]), OK);
    for (time, ms) in [
        ("2026-01-31T00:00:00Z", 1_769_817_600_000u64),
        ("2026-01-31T02:00:00+02:00", 1_769_817_600_000),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000), // 2024 is a leap year
    ] {
        let o = walden(&dir, &["archive", "expire", "--retain-last", "1", "--older-than", time, "--json"]);
        expect(&o, OK);
        let e = json(&o);
        assert_eq!(e["older_than_ms"], ms, "{time}: {e}");
        assert_eq!(e["expired_snapshot_ids"], Value::Array(Vec::new()), "{time}: {e}");
    }
    for (bad, why) in [
        ("2026-02-31T00:00:00Z", "is not a valid time"),
        ("2026-02-29T00:00:00Z", "is not a valid time"), // 2026 is not a leap year
        ("2026-02-29", "is neither an age"),
        ("garbage", "is neither an age"),
    ] {
        let o = walden(&dir, &["archive", "expire", "--retain-last", "1", "--older-than", bad]);
        expect(&o, USAGE);
        assert!(err(&o).contains(bad) && err(&o).contains(why), "{bad}: {}", err(&o));
    }
    assert_eq!(json(&walden(&dir, &["archive", "--json"]))["table"]["snapshots"], 1);
}
