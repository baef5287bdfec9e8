#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_cdc::fuzzing::payload_codec(data));
