#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_cdc::testing::fuzzing::stream(data));
