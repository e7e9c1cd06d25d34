//! A node's store opened directly, without a node: for loading data before nodes start (the
//! benchmarks) and for timing the store alone. The same trait the node uses.

use std::path::Path;

pub use crate::storage::{
    Applied, ApplyResult, Deleted, DynStorage, InquiryCursor, Page, RawSled, RecordCursor, Storage, StoreError,
    StoredRecord, TreeHead,
};

/// Opens (or creates) a sled store in `dir` with a page cache of `cache_capacity` bytes and
/// `fdatasync` after each flush, as a node opens it.
pub async fn open_sled(dir: &Path, cache_capacity: u64) -> Result<DynStorage, StoreError> {
    crate::storage::open_sled(crate::storage::SledOptions { path: dir.to_owned(), cache_capacity, fsync: true }).await
}
