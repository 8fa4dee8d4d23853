#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porter_fuzz_targets::rocketmq_requests(data));
