//! Connections: the pool every read and the group writer draw from (plain TCP as today; TLS to
//! the database is the deployment's), the session settings every write relies on, and how the
//! driver's errors read as [`StoreError`]s.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

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
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(opts.pool_size.max(2))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(opts.connect_timeout))
        .create_timeout(Some(opts.connect_timeout))
        .recycle_timeout(Some(opts.connect_timeout))
        .build()
        .map_err(unavailable)
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
        None => unavailable(e),
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
