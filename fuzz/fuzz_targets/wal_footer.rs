#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_wal::testing::fuzzing::footer(data));
