#![no_main]
//! `bureau::testkit::fuzz::record` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bureau::testkit::fuzz::record(data));
