//! Test support (feature `testkit`, turned on by `lab` and by the tests, never in the default
//! build): a local federation in a directory, reproducible synthetic credit files, nodes as
//! child processes, the storage conformance suite, hooks that damage a stopped node's store,
//! the PostgreSQL test harness and the raw-store benchmark baselines. Used by the tests, the
//! demo and the benchmarks, so all three run the same real parts; not part of the API a
//! partner builds on.

pub mod fuzz;
pub mod gen;
pub mod local;
pub mod process;
pub mod store;
pub mod tamper;
pub mod tlog;

pub use crate::storage::conformance;
/// A real PostgreSQL server for tests and benchmarks (the PostgreSQL backend's own harness).
pub use crate::storage::open::test_parts::postgres;

/// A gRPC channel to `addr` over any rustls client configuration: for tests of what a node
/// refuses to a client that is not a member (members' channels come from [`crate::ClientConfig`]).
pub fn tls_channel(
    addr: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    connect_timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    crate::net::tls::channel(addr, config, connect_timeout)
}
