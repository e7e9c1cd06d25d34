//! The audit log's durable high-water mark, kept beside sled's files (`audit-head`): the size and
//! root of the log after the last completed flush. sled takes some damage for a torn tail and
//! opens without the last acknowledged writes; a log shorter than the mark, or with another root
//! at the mark's size, is refused at open instead of served.
//!
//! Written after each `fdatasync` of the write-ahead log and before any writer waiting on it is
//! answered, so it never lags an acknowledgement; in place, without a sync of its own: it
//! survives a process crash like any page-cache write; after a power loss it can only be older
//! than the store (never ahead), so it never raises a false alarm. What a power loss must not
//! lose — which records a writer may have been told are durable — is the write-ahead log's own
//! mark, synced with its records ([`super::wal`]). 48 bytes: size (big-endian) ‖ root ‖ checksum.

use std::{fs::File, io, os::unix::fs::FileExt, path::Path};

use sha2::{Digest, Sha256};

use crate::audit::merkle::Hash;

/// The mark's file name inside the store's directory.
pub(super) const FILE: &str = "audit-head";

fn checksum(body: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The mark in `dir`, if there is one: `Err` when it is there but unreadable or damaged.
pub(super) fn read(dir: &Path) -> Result<Option<(u64, Hash)>, String> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", dir.join(FILE).display())),
    };
    // Created but never written: the node stopped before its first flush. The same as no
    // file (which is what a node that never wrote had before).
    if bytes.is_empty() {
        return Ok(None);
    }
    let damaged = || format!("{} is damaged", dir.join(FILE).display());
    if bytes.len() != 48 || checksum(&bytes[..40]) != bytes[40..48] {
        return Err(damaged());
    }
    let size = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| damaged())?);
    let root: Hash = bytes[8..40].try_into().map_err(|_| damaged())?;
    Ok(Some((size, root)))
}

/// Opens (or creates) the mark for writing.
pub(super) fn open(dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(FILE))
}

/// Records that the log's first `size` entries, with root `root`, are durable.
pub(super) fn write(file: &File, size: u64, root: &Hash) -> io::Result<()> {
    let mut bytes = [0u8; 48];
    bytes[..8].copy_from_slice(&size.to_be_bytes());
    bytes[8..40].copy_from_slice(root);
    let sum = checksum(&bytes[..40]);
    bytes[40..].copy_from_slice(&sum);
    file.write_all_at(&bytes, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node stopped before its first flush leaves the file created and empty; it must start
    /// again (found by a test that stopped a fresh node and restarted it).
    #[test]
    fn an_empty_mark_is_no_mark_and_a_short_one_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        let f = open(dir.path()).unwrap();
        assert_eq!(read(dir.path()), Ok(None), "created, never written");
        write(&f, 7, &[3; 32]).unwrap();
        assert_eq!(read(dir.path()), Ok(Some((7, [3; 32]))));
        f.set_len(20).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
