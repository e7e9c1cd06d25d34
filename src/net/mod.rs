//! Networking: rustls configurations and the TLS accept loop with CRL reload, identities from
//! certificates, the licensing authority's tooling, the peer client and member connections.

pub mod client;
pub mod crl;
pub mod identity;
pub(crate) mod peers;
pub mod pki;
mod revocation;
pub mod tls;
pub mod trace;
