#![no_main]
//! `bureau::testkit::fuzz::audit_proof` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bureau::testkit::fuzz::audit_proof(data));
