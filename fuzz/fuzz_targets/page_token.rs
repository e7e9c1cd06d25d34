#![no_main]
//! `bureau::testkit::fuzz::page_token` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bureau::testkit::fuzz::page_token(data));
