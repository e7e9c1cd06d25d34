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

/// The physical floor of a durable append: a log file preallocated with zeros (so appending
/// changes no file size and allocates no block), each append one `pwrite` and one `fdatasync`.
pub struct PreallocatedLog {
    file: std::fs::File,
    offset: u64,
    len: u64,
}

impl PreallocatedLog {
    /// Creates `path` with `len` bytes of zeros, synced.
    pub fn create(path: &Path, len: u64) -> std::io::Result<Self> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut written = 0;
        while written < len {
            file.write_all(&zeros)?;
            written += zeros.len() as u64;
        }
        file.sync_all()?;
        Ok(Self { file, offset: 0, len: written })
    }

    /// Appends `bytes` (wrapping to the start when the file is full) and makes them durable.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.offset + bytes.len() as u64 > self.len {
            self.offset = 0;
        }
        self.file.write_all_at(bytes, self.offset)?;
        self.offset += bytes.len() as u64;
        self.file.sync_data()
    }
}
