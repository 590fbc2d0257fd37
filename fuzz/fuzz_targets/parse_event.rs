#![no_main]

include!("../parse_event.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| parse_event(data));
