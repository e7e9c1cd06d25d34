//! Backup and restore of a sled store: the whole ledger streamed after its log state (on the
//! writer thread, so the snapshot is consistent), and a restore into an empty directory that
//! writes the high-water mark so opening it checks the log against the backup's head.

use sled::Tree;

use super::{keys, mark, node_reader, open_db, unavailable};
use crate::{
    audit::merkle,
    storage::{BackupPart, StoreError, TreeHead},
};

/// Streams the ledger (every key space lives in it) after its log state; runs on the writer
/// thread between groups, so the snapshot is consistent.
pub(super) fn export(ledger: &Tree, size: u64, tx: &tokio::sync::mpsc::Sender<BackupPart>) -> Result<(), StoreError> {
    const CHUNK: usize = 1000;
    let root = merkle::Tree::new(node_reader(ledger)).root(size)?;
    send_part(tx, BackupPart::Head(TreeHead { size, root }))?;
    let mut chunk = Vec::with_capacity(CHUNK);
    for kv in ledger.iter() {
        let (k, v) = kv?;
        chunk.push((k.to_vec(), v.to_vec()));
        if chunk.len() == CHUNK {
            send_part(tx, BackupPart::Pairs(std::mem::take(&mut chunk)))?;
        }
    }
    if !chunk.is_empty() {
        send_part(tx, BackupPart::Pairs(chunk))?;
    }
    Ok(())
}

/// Most time a backup's reader may leave one chunk untaken: writes wait while a backup runs, so
/// a reader that stalls (slow or hostile) ends the backup instead of the node's writes.
const BACKUP_STALL: std::time::Duration = std::time::Duration::from_secs(10);

fn send_part(tx: &tokio::sync::mpsc::Sender<BackupPart>, part: BackupPart) -> Result<(), StoreError> {
    use tokio::sync::mpsc::error::TrySendError;
    let until = std::time::Instant::now() + BACKUP_STALL;
    let mut part = part;
    loop {
        match tx.try_send(part) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => {
                return Err(StoreError::Unavailable("the backup's reader went away".into()))
            }
            Err(TrySendError::Full(p)) if std::time::Instant::now() < until => {
                part = p;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(TrySendError::Full(_)) => {
                return Err(StoreError::Unavailable(format!(
                    "the backup's reader took no data for {} s; backup abandoned so writes can go on",
                    BACKUP_STALL.as_secs()
                )))
            }
        }
    }
}

/// Restores a backup into `dir`, which must not hold a store: writes the pairs, flushes and
/// syncs, and writes the high-water mark (so opening it checks the log against `head`).
pub(crate) fn restore(
    dir: &std::path::Path,
    head: TreeHead,
    pairs: impl Iterator<Item = Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>>,
) -> Result<(), StoreError> {
    if dir.join("db").exists() || dir.join("conf").exists() {
        return Err(StoreError::Unsupported(format!(
            "{} already holds a store: restore into an empty directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
    {
        let db = open_db(&sled::Config::new().path(dir).flush_every_ms(None))?;
        let ledger = db.open_tree(keys::LEDGER)?;
        for chunk in pairs {
            let mut batch = sled::Batch::default();
            for (k, v) in chunk? {
                batch.insert(k, v);
            }
            ledger.apply_batch(batch)?;
        }
        db.flush()?;
        std::fs::File::open(dir.join("db"))
            .and_then(|f| f.sync_all())
            .map_err(|e| unavailable(format!("fdatasync: {e}")))?;
        let mark_file = mark::open(dir).map_err(|e| unavailable(format!("{}: {e}", mark::FILE)))?;
        mark::write(&mark_file, head.size, &head.root).map_err(|e| unavailable(format!("{}: {e}", mark::FILE)))?;
        mark_file.sync_all().map_err(|e| unavailable(format!("{}: {e}", mark::FILE)))?;
    }
    Ok(())
}
