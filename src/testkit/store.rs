//! A node's store opened directly, without a node: for loading data before nodes start (the
//! benchmarks) and for timing the store alone. The same trait the node uses.

use std::path::Path;

/// Raw sled, and a raw preallocated log file, for the benchmarks' same-run baselines (kept
/// beside the sled backend they measure against).
pub use crate::storage::open::test_parts::baseline::{PreallocatedLog, RawSled};
pub use crate::storage::{
    Applied, ApplyResult, Deleted, DynStorage, InquiryCursor, Page, RecordCursor, Space, StateChange, Storage,
    StoreError, StoredRecord, TreeHead,
};

/// Opens (or creates) a sled store in `dir` with a page cache of `cache_capacity` bytes and
/// `fdatasync` after each flush, as a node opens it.
pub async fn open_sled(dir: &Path, cache_capacity: u64) -> Result<DynStorage, StoreError> {
    crate::storage::open::open_sled(crate::storage::open::SledOptions {
        path: dir.to_owned(),
        cache_capacity,
        fsync: true,
    })
    .await
}

/// Connects to a PostgreSQL store at `url` as a node does (pool of 16, 5 s statement timeout),
/// applying the schema migrations.
pub async fn open_postgres(url: &str) -> Result<DynStorage, StoreError> {
    crate::storage::open::open_postgres(crate::storage::open::PostgresOptions {
        url: url.to_owned(),
        pool_size: 16,
        statement_timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(2),
        tls_ca: None,
    })
    .await
}

/// Opens the store a local node with data directory `data_dir` uses (see
/// [`crate::testkit::local::test_store`]): sled there, or its PostgreSQL database.
pub async fn open_for(data_dir: &Path) -> Result<DynStorage, StoreError> {
    match crate::testkit::local::test_store(data_dir).postgres {
        Some(pg) => open_postgres(&pg.url).await,
        None => open_sled(data_dir, 16 << 20).await,
    }
}
