//! Raw sled for benchmark baselines (feature `testkit`): the node's engine with the node's
//! durability (sled's flush, then `fdatasync` of its data file) and none of bureau's work, so a
//! benchmark can print what bureau adds as a ratio. Never used by a node.

use std::path::Path;

use crate::storage::StoreError;

/// A sled database of its own, written directly.
pub struct RawSled {
    db: sled::Db,
    file: std::fs::File,
}

impl RawSled {
    /// Opens (or creates) a database in `dir` with a page cache of `cache_capacity` bytes.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).cache_capacity(cache_capacity).open()?;
        let file = std::fs::File::open(dir.join("db")).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { db, file })
    }

    /// Inserts `pairs` as one atomic batch (not yet durable).
    pub fn apply(&self, pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(k, v);
        }
        Ok(self.db.apply_batch(batch)?)
    }

    /// Makes every insert so far durable, as the node does.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        self.file.sync_data().map_err(|e| StoreError::Unavailable(format!("fdatasync: {e}")))
    }
}
