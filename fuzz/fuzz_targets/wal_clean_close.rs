#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_wal::fuzzing::clean_close(data));
