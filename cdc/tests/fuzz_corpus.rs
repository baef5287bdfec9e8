//! CDC's decoders of untrusted bytes under hostile input: replays the committed fuzz corpora
//! (`fuzz/corpus/cdc_*`) and crash regressions (`fuzz/regressions/cdc_*`) through the fuzzing
//! entry points, and runs the same entry points over random bytes and random mutations of the
//! corpus (so the everyday test command exercises them even without cargo-fuzz). Running the
//! fuzzer is `scripts/fuzz.sh`.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use walden_cdc::fuzzing;

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

/// The corpus inputs of `target` (must exist and be non-empty, so a moved directory cannot make
/// the replay pass vacuously) followed by its regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let corpus_dir = fuzz_dir().join("corpus").join(target);
    let corpus = files_in(&corpus_dir);
    assert!(!corpus.is_empty(), "fuzz corpus {} is missing or empty", corpus_dir.display());
    let regressions = files_in(&fuzz_dir().join("regressions").join(target));
    corpus
        .into_iter()
        .chain(regressions)
        .map(|p| {
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Runs `run` over every corpus and regression input of `target`; returns how many there were.
fn replay(target: &str, run: Harness) -> usize {
    let inputs = inputs(target);
    for (path, input) in &inputs {
        let result = std::panic::catch_unwind(|| run(input));
        assert!(result.is_ok(), "fuzz target {target} panicked on {}", path.display());
    }
    inputs.len()
}

/// A fuzzing entry point.
type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 4] = [
    ("cdc_column_mask", fuzzing::column_mask),
    ("cdc_dlq_entry", fuzzing::dlq_entry),
    ("cdc_payload_codec", fuzzing::payload_codec),
    ("cdc_stream", fuzzing::stream),
];

#[test]
fn cdc_dlq_entry_corpus() {
    assert!(replay("cdc_dlq_entry", fuzzing::dlq_entry) >= 10);
}

#[test]
fn cdc_payload_codec_corpus() {
    assert!(replay("cdc_payload_codec", fuzzing::payload_codec) >= 10);
}

#[test]
fn cdc_column_mask_corpus() {
    assert!(replay("cdc_column_mask", fuzzing::column_mask) >= 10);
}

#[test]
fn cdc_stream_corpus() {
    assert!(replay("cdc_stream", fuzzing::stream) >= 10);
}

#[test]
fn every_cdc_fuzz_target_has_a_replay() {
    // A new `cdc_*` target in fuzz/fuzz_targets must be added to TARGETS too, or its corpus
    // would go unreplayed.
    let targets: Vec<String> = files_in(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| s.starts_with("cdc_"))
        .collect();
    assert_eq!(targets, TARGETS.map(|(name, _)| name));
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn mutate(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = data.len().max(1);
        match m {
            Mutation::Flip { at, bit } => {
                if !data.is_empty() {
                    data[at % len] ^= 1 << (bit % 8);
                }
            }
            Mutation::Set { at, byte } => {
                if !data.is_empty() {
                    data[at % len] = *byte;
                }
            }
            Mutation::Truncate { at } => data.truncate(at % len),
            Mutation::Insert { at, bytes } => {
                let at = at % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
        }
    }
    data
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        for (_, run) in TARGETS {
            run(&data);
        }
    }

    #[test]
    fn decoders_never_panic_on_mutated_corpus_inputs(
        target in 0..TARGETS.len(),
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (name, run) = TARGETS[target];
        let inputs = inputs(name);
        let (_, input) = &inputs[pick.index(inputs.len())];
        run(&mutate(input.clone(), &mutations));
    }
}
