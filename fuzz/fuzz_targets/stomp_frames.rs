#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porter_fuzz_targets::stomp_frames(data));
