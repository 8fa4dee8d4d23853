#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porter_fuzz_targets::kafka_records(data));
