//! The engine's decoders under hostile input: replays the committed fuzz corpora
//! (`fuzz/corpus/engine_*`) and regressions through the fuzzing entry points, and runs the same
//! entry points over random bytes and random mutations of valid encodings (so the everyday test
//! command exercises them even without cargo-fuzz). Running the fuzzer is `scripts/fuzz.sh`.

use proptest::prelude::*;
use walden_engine::slot::{Invalidation, InvalidationReason, SlotRecord};
use walden_engine::state::EngineState;
use walden_engine::testing::fuzzing;
use walden_engine::{Begin, ChangeOp, Column, Commit, EngineRecord, RowChange, SchemaChange, SchemaRecord, SlotFilter};
use walden_wal::testing::corpus::{self, Mutation, fuzz_dir, mutate};

/// Runs `run` over every corpus and regression input of `target`; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    corpus::replay(&fuzz_dir(), target, run)
}

#[test]
fn engine_record_corpus() {
    assert!(replay("engine_record", fuzzing::record) >= 10);
}

#[test]
fn engine_slot_file_corpus() {
    assert!(replay("engine_slot_file", fuzzing::slot_file) >= 5);
}

#[test]
fn engine_state_corpus() {
    assert!(replay("engine_state", fuzzing::engine_state) >= 10);
}

#[test]
fn every_engine_fuzz_target_has_a_replay() {
    let mut targets: Vec<String> = corpus::targets("engine_");
    targets.sort();
    assert_eq!(targets, ["engine_record", "engine_slot_file", "engine_state"]);
}

fn valid_records() -> Vec<Vec<u8>> {
    let records = [
        EngineRecord::Begin(Begin {
            change_count: 3,
            correlation_id: Some("c".into()),
            actor: None,
            namespace: Some("n".into()),
        }),
        EngineRecord::Change(RowChange {
            seq: 1,
            op: ChangeOp::Update,
            table: "t".into(),
            key: bytes::Bytes::from_static(b"key"),
            before: Some(bytes::Bytes::from_static(b"old")),
            after: Some(bytes::Bytes::from_static(b"new")),
        }),
        EngineRecord::Schema(SchemaRecord {
            seq: 2,
            table: "t".into(),
            schema_version: 3,
            change: SchemaChange::CreateTable {
                columns: vec![Column::new("a", "INT", false), Column::new("b", "TEXT", true)],
            },
        }),
        EngineRecord::Commit(Commit { change_count: 3 }),
    ];
    records
        .iter()
        .map(|r| {
            let mut b = vec![r.kind()];
            b.extend(r.encode());
            b
        })
        .collect()
}

fn valid_files() -> Vec<Vec<u8>> {
    let slot = SlotRecord {
        name: "s".into(),
        restart_lsn: 10,
        confirmed_lsn: 9,
        created_at_us: 1,
        last_active_at_us: 2,
        invalidation: Some(Invalidation {
            reason: InvalidationReason::IdleTimeout { idle_ms: 5, timeout_ms: 4 },
            invalidated_at_us: 3,
        }),
        filter: SlotFilter { tables: Some(["a".to_string()].into()), operations: None },
    };
    vec![slot.encode(), EngineState { checkpoint_lsn: Some(5), retain_from: None, archived_lsn: None }.encode()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<usize>(), any::<u8>(), prop::collection::vec(any::<u8>(), 1..12))
        .prop_map(|(choice, at, byte, bytes)| Mutation::from_parts(choice, at, byte, bytes))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::record(&data);
        fuzzing::slot_file(&data);
        fuzzing::engine_state(&data);
    }

    #[test]
    fn decoders_never_panic_on_mutated_valid_input(
        which in 0usize..7,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let records = valid_records();
        let files = valid_files();
        if which < records.len() {
            fuzzing::record(&mutate(records[which].clone(), &mutations));
        } else if which < records.len() + files.len() {
            fuzzing::slot_file(&mutate(files[which - records.len()].clone(), &mutations));
        } else {
            // engine.state (version 2) behind the harness's control byte (bit 0: repair the CRC).
            let mut input = vec![0b111];
            input.extend(EngineState { checkpoint_lsn: Some(5), retain_from: Some(3), archived_lsn: Some(2) }.encode());
            fuzzing::engine_state(&mutate(input, &mutations));
        }
    }
}
