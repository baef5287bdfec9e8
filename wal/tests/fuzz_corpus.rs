//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash regressions
//! (`fuzz/regressions/<target>/`) through the fuzzing entry points, so the everyday test command
//! checks every input the fuzzer ever found interesting. Running the fuzzer itself is
//! `scripts/fuzz.sh`.

use std::fs;
use std::path::{Path, PathBuf};

use walden_wal::fuzzing;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz")
}

/// Files directly inside `dir`, sorted; empty if the directory does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|err| panic!("listing {}: {err}", dir.display())).path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` over every corpus and regression input; fails if the corpus is missing or empty
/// (so a moved directory cannot make this test pass vacuously). Returns the number of inputs.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let corpus = files_in(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz corpus {} is missing or empty", fuzz_dir().join("corpus").join(target).display());
    let regressions = files_in(&fuzz_dir().join("regressions").join(target));
    let mut count = 0;
    for path in corpus.iter().chain(&regressions) {
        let input = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        // Name the input in the failure message; the panic itself says what broke.
        let result = std::panic::catch_unwind(|| run(&input));
        assert!(result.is_ok(), "fuzz target {target} panicked on {}", path.display());
        count += 1;
    }
    count
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
    let targets: Vec<String> = files_in(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("wal_"))
        .collect();
    assert_eq!(targets, replayed);
}
