//! `walden bench`.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;

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
    let child = spawn(&["bench", "--dir", dir.to_str().expect("utf-8"), "--seconds", "60"]);
    let started = Instant::now();
    wait_for(Duration::from_secs(10), Duration::from_millis(10), "bench did not start", || {
        fs::read_dir(&dir).expect("list").count() > 0
    });
    std::thread::sleep(Duration::from_millis(200));
    interrupt(child.id() as i32);
    let o = child.wait_with_output().expect("wait");
    expect(&o, 130);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(fs::read_dir(&dir).expect("list").count(), 0, "the work directory was removed");
}
