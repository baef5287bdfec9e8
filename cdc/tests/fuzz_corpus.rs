//! CDC's decoders of untrusted bytes under hostile input: replays the committed fuzz corpora
//! (`fuzz/corpus/cdc_*`) and crash regressions (`fuzz/regressions/cdc_*`) through the fuzzing
//! entry points, and runs the same entry points over random bytes and random mutations of the
//! corpus (so the everyday test command exercises them even without cargo-fuzz). Running the
//! fuzzer is `scripts/fuzz.sh`.

use std::path::PathBuf;

use proptest::prelude::*;
use walden_cdc::testing::fuzzing;
use walden_wal::testing::corpus::{self, Mutation, fuzz_dir, mutate};

/// Runs `run` over every corpus and regression input of `target`; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    corpus::replay(&fuzz_dir(), target, run)
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    corpus::inputs(&fuzz_dir(), target)
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
    let targets: Vec<String> = corpus::targets("cdc_");
    assert_eq!(targets, TARGETS.map(|(name, _)| name));
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<usize>(), any::<u8>(), prop::collection::vec(any::<u8>(), 1..12))
        .prop_map(|(choice, at, byte, bytes)| Mutation::from_parts(choice, at, byte, bytes))
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
