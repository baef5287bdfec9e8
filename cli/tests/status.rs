//! `walden status`.

mod common;

use std::fs;

use serde_json::Value;
use walden_engine::{Config, Database, WalConfig};

use common::*;

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
