//! Test support (feature `testkit`, on by default through `cli`): a local federation in a
//! directory, reproducible synthetic credit files, the storage conformance suite and hooks
//! that damage a stopped node's store. Used by the tests, the demo and the benchmarks, so all
//! three run the same real parts; not part of the API a partner builds on.

pub mod fuzz;
pub mod gen;
pub mod local;
pub mod store;
pub mod tamper;

pub use crate::storage::conformance;
pub use crate::storage::postgres_harness as postgres;
