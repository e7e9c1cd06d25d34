//! Room on the store's disk, kept so that reads go on when writes cannot.
//!
//! sled 0.34 fails for good once one of its writes fails: its error is global to the handle,
//! and a read that must page in a node whose newest version never reached the disk fails with
//! it. So sled must never be the one to find the disk full. The store stops taking writes while
//! sled still has room for everything it was given:
//! - the writer refuses a group when the disk has less than [`LOW_WATER`] free (one `statvfs`
//!   per group, nothing beside a device wait), and the checkpointer looks every poll, so a disk
//!   filled by someone else stops writes too;
//! - a reserve file of [`RESERVE_BYTES`] is kept beside sled's files and deleted at the first
//!   failure, so what sled still holds in memory (at most a few of its 512 KiB buffers) and its
//!   own cleaning always find room to be written.
//!
//! Either way sled itself never errs, and every read keeps being served from the same handle.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use tracing::{error, warn};

use crate::storage::StoreError;

/// Writes stop when the disk has less free space than this.
pub(super) const LOW_WATER: u64 = 8 << 20;
/// The reserve file's size.
pub(super) const RESERVE_BYTES: u64 = 4 << 20;
/// The reserve file's name inside the store's directory.
pub(super) const RESERVE_FILE: &str = "reserve";

/// The first failure that stopped the store's writes, and the reserve given up at it.
pub(super) struct Failure {
    why: Mutex<Option<String>>,
    dir: PathBuf,
    reserve: PathBuf,
}

/// Free space on the filesystem holding `dir`; `None` when it cannot be told (then writes go
/// on, and a real write error stops them).
fn free(dir: &Path) -> Option<u64> {
    fs2::available_space(dir).ok()
}

impl Failure {
    /// No failure yet; makes sure the reserve is there (when there is room for it).
    pub(super) fn new(dir: &Path) -> Self {
        let reserve = dir.join(RESERVE_FILE);
        let made = (|| -> std::io::Result<()> {
            let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&reserve)?;
            if f.metadata()?.len() < RESERVE_BYTES {
                // Real blocks, not a hole: the space must be taken now to be given back later.
                fs2::FileExt::allocate(&f, RESERVE_BYTES)?;
                f.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_file(&reserve);
            warn!(error = %e, path = %reserve.display(), "no room for the store's reserve file; running without it");
        }
        Self { why: Mutex::new(None), dir: dir.to_owned(), reserve }
    }

    /// Why writes stopped, if they did.
    pub(super) fn get(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps the first I/O failure (later writes fail with it) and gives the reserve back.
    pub(super) fn record(&self, e: &StoreError) {
        if let StoreError::Unavailable(why) = e {
            if std::fs::remove_file(&self.reserve).is_ok() {
                warn!(freed_bytes = RESERVE_BYTES, "the store's reserve file is given back for sled's last writes");
            }
            self.why.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| why.clone());
        }
    }

    /// Fails (and records the failure) when the disk is too full to take a write safely.
    pub(super) fn check_space(&self) -> Result<(), StoreError> {
        if let Some(why) = self.get() {
            return Err(StoreError::Unavailable(why));
        }
        let free = match free(&self.dir) {
            Some(free) if free < LOW_WATER => free,
            _ => return Ok(()),
        };
        let e = StoreError::Unavailable(format!(
            "No space left on device: {free} bytes free on the store's disk, under the {LOW_WATER} kept so \
             that reads go on; writes stop until space is freed and the node restarts"
        ));
        error!(free_bytes = free, low_water = LOW_WATER, "the store's disk is nearly full: writes stop, reads go on");
        self.record(&e);
        Err(e)
    }
}
