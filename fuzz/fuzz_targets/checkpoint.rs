#![no_main]
//! `bureau::testkit::fuzz::checkpoint` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bureau::testkit::fuzz::checkpoint(data));
