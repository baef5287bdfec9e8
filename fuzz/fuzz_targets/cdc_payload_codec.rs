#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_cdc::testing::fuzzing::payload_codec(data));
