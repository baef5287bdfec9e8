#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_engine::testing::fuzzing::engine_state(data));
