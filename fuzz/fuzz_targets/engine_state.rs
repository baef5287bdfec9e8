#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_engine::fuzzing::engine_state(data));
