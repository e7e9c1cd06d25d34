//! Opening and restoring the backends: the one place that names them, so the storage trait
//! above knows none (tikv's `engine_traits` rule). The server's wiring, the backup command and
//! the test kit open stores through here.

use std::sync::Arc;

use super::{DynStorage, StoreError, TreeHead};

use super::postgres as database;
use super::sled as embedded;

pub(crate) use database::PostgresOptions;
pub(crate) use embedded::{SledOptions, SledStorage};

/// The backends' own test parts, for the test kit: sled's damage hooks and raw baselines, a
/// real PostgreSQL server.
#[cfg(feature = "testkit")]
pub(crate) mod test_parts {
    pub use super::database::harness as postgres;
    pub(crate) use super::embedded::{baseline, tamper};
}

/// Opens (or creates) a sled store off the async workers. sled panics on some damage to its
/// files: that is a [`StoreError::Corrupt`] naming the store, never a crash.
pub(crate) async fn open_sled(opts: SledOptions) -> Result<DynStorage, StoreError> {
    let dir = opts.path.display().to_string();
    let store = tokio::task::spawn_blocking(move || SledStorage::open(&opts)).await.map_err(|e| {
        let why = match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()),
            Err(e) => e.to_string(),
        };
        StoreError::Corrupt { key: dir, why: format!("the store cannot be opened: {why}") }
    })??;
    Ok(Arc::new(store))
}

/// Restores a backup (its head, then its pairs) into the empty directory `dir` and checks the
/// result: the store opens (its log agrees with the restored high-water mark) and its root at
/// the backup's size is the backup's root.
pub(crate) async fn restore_sled(
    dir: std::path::PathBuf,
    head: TreeHead,
    pairs: impl Iterator<Item = Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>> + Send + 'static,
) -> Result<(), StoreError> {
    let at = dir.clone();
    tokio::task::spawn_blocking(move || embedded::restore(&at, head, pairs))
        .await
        .map_err(|e| StoreError::Panicked(e.to_string()))??;
    let store = open_sled(SledOptions { path: dir.clone(), cache_capacity: 16 << 20, fsync: true }).await?;
    let checked = async {
        let size = store.audit_size().await?;
        let root = store.audit_root(head.size.min(size)).await?;
        if size != head.size || root != head.root {
            return Err(StoreError::Corrupt {
                key: dir.display().to_string(),
                why: format!("the restored log has {size} entries; the backup had {} with another root", head.size),
            });
        }
        Ok(())
    }
    .await;
    store.close().await?;
    checked
}

/// Connects to a PostgreSQL store, applying the embedded schema migrations.
pub(crate) async fn open_postgres(opts: PostgresOptions) -> Result<DynStorage, StoreError> {
    Ok(Arc::new(database::PostgresStorage::open(&opts).await?))
}

/// True when `url` is a connection string the PostgreSQL backend can use (checked by config
/// validation, before anything connects).
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.parse::<tokio_postgres::Config>().is_ok()
}
