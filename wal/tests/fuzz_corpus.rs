//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash regressions
//! (`fuzz/regressions/<target>/`) through the fuzzing entry points, so the everyday test command
//! checks every input the fuzzer ever found interesting. Running the fuzzer itself is
//! `scripts/fuzz.sh`.

use walden_wal::testing::corpus::{self, fuzz_dir};
use walden_wal::testing::fuzzing;

/// Runs `run` over every corpus and regression input of `target`; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    corpus::replay(&fuzz_dir(), target, run)
}

#[test]
fn wal_record_corpus() {
    assert!(replay("wal_record", fuzzing::record) > 0);
}

#[test]
fn wal_segment_header_corpus() {
    assert!(replay("wal_segment_header", fuzzing::segment_header) > 0);
}

#[test]
fn wal_footer_corpus() {
    assert!(replay("wal_footer", fuzzing::footer) > 0);
}

#[test]
fn wal_scan_corpus() {
    assert!(replay("wal_scan", fuzzing::scan) > 0);
}

#[test]
fn wal_open_corpus() {
    assert!(replay("wal_open", fuzzing::open) > 0);
}

#[test]
fn wal_clean_close_corpus() {
    assert!(replay("wal_clean_close", fuzzing::clean_close) > 0);
}

#[test]
fn every_wal_fuzz_target_has_a_replay() {
    // A new `wal_*` target in fuzz/fuzz_targets must be added here too, or its corpus would go
    // unreplayed. (Other crates' targets are replayed by their own tests.)
    let replayed = ["wal_clean_close", "wal_footer", "wal_open", "wal_record", "wal_scan", "wal_segment_header"];
    let targets: Vec<String> = corpus::targets("wal_");
    assert_eq!(targets, replayed);
}
