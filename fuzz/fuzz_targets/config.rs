#![no_main]
//! `bureau::testkit::fuzz::config` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bureau::testkit::fuzz::config(data));
