#![no_main]
//! `bureau::testkit::fuzz::deliver_notice` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bureau::testkit::fuzz::deliver_notice(data));
