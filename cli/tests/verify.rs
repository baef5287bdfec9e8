//! `walden verify` and `walden recover`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use common::*;

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
    let sealed = segment_paths(&trimmed)[0].clone();
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
