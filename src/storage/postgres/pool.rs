//! Connections: the pool every read and the group writer draw from (TLS with the server's
//! certificate and name verified when the configuration names the database's authority, else
//! plain TCP), the session settings every write relies on, and how the driver's errors read as
//! [`StoreError`]s.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresOptions;
use crate::storage::StoreError;

/// Builds the pool (no connection is made yet). Sessions run with `synchronous_commit = on`, so
/// a returned write is committed durably, and with the statement timeout as their lock timeout.
pub(super) fn connect(opts: &PostgresOptions) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config =
        opts.url.parse().map_err(|e| unavailable(format!("store.postgres.url: {e}")))?;
    config.connect_timeout(opts.connect_timeout);
    config.options(format!(
        "-c statement_timeout={} -c synchronous_commit=on -c lock_timeout={}",
        opts.statement_timeout.as_millis(),
        opts.statement_timeout.as_millis()
    ));
    config.application_name("bureau");
    // A primary that vanishes without a reset must not hold a caller past the timeouts.
    config.keepalives_idle(Duration::from_secs(5));
    config.tcp_user_timeout(opts.connect_timeout + opts.statement_timeout);
    let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match &opts.tls_ca {
        Some(pem) => {
            // TLS or nothing: never fall back to plain TCP.
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(config, MakeRustlsConnect::new(tls_config(pem)?), recycling)
        }
        None => {
            let remote = config.get_hosts().iter().any(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => {
                    !(name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
                }
                _ => false,
            });
            if remote {
                tracing::warn!("store.postgres: plain TCP to a remote database; set store.postgres.tls_ca to use TLS");
            }
            Manager::from_config(config, NoTls, recycling)
        }
    };
    Pool::builder(manager)
        .max_size(opts.pool_size.max(2))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(opts.connect_timeout))
        .create_timeout(Some(opts.connect_timeout))
        .recycle_timeout(Some(opts.connect_timeout))
        .build()
        .map_err(unavailable)
}

/// A rustls client trusting only the certificates in `pem` (the database's authority).
fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig, StoreError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| unavailable(format!("store.postgres.tls_ca: {e}")))?;
        roots.add(cert).map_err(|e| unavailable(format!("store.postgres.tls_ca: {e}")))?;
    }
    if roots.is_empty() {
        return Err(unavailable("store.postgres.tls_ca holds no certificate"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The database cannot be used right now; the caller may retry.
pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("postgres: {e}"))
}

/// A driver error, with the server's code and message when the server sent one.
pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    // `Display` of a server error is only "db error"; the source carries the message.
    match e.as_db_error() {
        Some(d) => unavailable(format!("{}: {}", d.code().code(), d.message())),
        None => {
            // The cause (a refused certificate, a reset connection) is in the source chain.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            unavailable(why)
        }
    }
}

/// A stored value that does not read back: `key` names the table and row.
pub(super) fn corrupt(key: impl Into<String>, why: impl Into<String>) -> StoreError {
    StoreError::Corrupt { key: key.into(), why: why.into() }
}

/// A connection the pool could not hand out.
pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        e => unavailable(e),
    }
}
