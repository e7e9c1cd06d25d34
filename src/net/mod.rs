//! Networking: rustls configurations and the TLS accept loop with CRL reload, identities from
//! certificates, the licensing authority's tooling, the peer client and member connections.

pub(crate) mod client;
pub mod consent_token;
pub(crate) mod crl;
pub mod directory;
pub(crate) mod directory_watch;
pub(crate) mod identity;
pub(crate) mod locator_client;
pub(crate) mod otlp;
mod peer;
pub(crate) mod peer_error;
pub(crate) mod peers;
pub mod pki;
mod revocation;
pub(crate) mod tlog_client;
pub(crate) mod tls;
pub(crate) mod trace;
