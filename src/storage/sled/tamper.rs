//! Test hooks (feature `testkit`): what an attacker with the disk of a stopped node could do to
//! its sled store, so tests can check that a regulator catches it. Never used by a node.

use std::path::Path;

use super::{keys, SledOptions, SledStorage};
use crate::{
    audit::Entry,
    storage::{Storage, StoreError},
};

fn with_ledger<T>(dir: &Path, f: impl FnOnce(&sled::Tree) -> T) -> T {
    // No periodic flusher thread: dropping the handle then releases the files at once.
    let db = super::open_db(&sled::Config::new().path(dir).flush_every_ms(None)).expect("open sled store");
    let out = f(&db.open_tree(keys::LEDGER).expect("ledger tree"));
    db.flush().expect("flush");
    out
}

/// Rewrites audit entry `index` in place (its Merkle nodes left as they were).
pub(crate) fn alter_entry(dir: &Path, index: u64, edit: impl FnOnce(&mut Entry)) {
    with_ledger(dir, |t| {
        let k = keys::entry(index);
        let mut e = Entry::from_bytes(&t.get(k).unwrap().expect("entry exists")).unwrap();
        edit(&mut e);
        t.insert(k, e.to_bytes()).unwrap();
    })
}

/// Deletes audit entry `index`.
pub(crate) fn remove_entry(dir: &Path, index: u64) {
    with_ledger(dir, |t| {
        t.remove(keys::entry(index)).unwrap();
    })
}

/// Sets the audit log's recorded size (a truncation when smaller) and deletes the high-water
/// mark, as an attacker with the disk would: a truncation the node itself cannot see.
pub(crate) fn set_log_size(dir: &Path, size: u64) {
    lose_tail(dir, size);
    remove_mark(dir);
}

/// Sets the audit log's recorded size and nothing else: what sled does when it takes damage
/// for a torn tail and opens without the last acknowledged writes.
pub(crate) fn lose_tail(dir: &Path, size: u64) {
    with_ledger(dir, |t| {
        t.insert(keys::SIZE, &size.to_be_bytes()[..]).unwrap();
    })
}

/// Deletes the audit log's high-water mark.
pub(crate) fn remove_mark(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(super::mark::FILE));
}

/// Replaces the whole log with `edit(old entries)`, hashed afresh: a self-consistent new history
/// (and deletes the high-water mark, as an attacker rewriting history would).
pub(crate) async fn rewrite_log(dir: &Path, edit: impl FnOnce(Vec<Entry>) -> Vec<Entry>) -> Result<(), StoreError> {
    remove_mark(dir);
    let old: Vec<Entry> = with_ledger(dir, |t| {
        let old = t.scan_prefix([keys::ENTRY]).map(|kv| Entry::from_bytes(&kv.unwrap().1).unwrap()).collect();
        for prefix in [&[keys::ENTRY][..], &[keys::NODE][..], keys::SIZE] {
            for k in t.scan_prefix(prefix).keys() {
                t.remove(k.unwrap()).unwrap();
            }
        }
        old
    });
    let store = SledStorage::open(&SledOptions { path: dir.to_owned(), cache_capacity: 16 << 20, fsync: false })?;
    store.append_audit(edit(old)).await?;
    store.sync().await?;
    store.close().await
}

/// The valid records of a stopped store's write-ahead log, by sequence number: segment file,
/// byte offset, length (header and body) and sequence number.
pub(crate) fn wal_records(dir: &Path) -> Vec<(std::path::PathBuf, u64, u64, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join(super::wal::DIR)).expect("write-ahead log") {
        let segment = e.expect("dir entry").path();
        if segment.extension().is_none_or(|x| x != "seg") {
            continue;
        }
        let bytes = std::fs::read(&segment).expect("segment");
        for (offset, seq, body) in super::replay::parse(&bytes).records {
            out.push((segment.clone(), offset, (super::wal::RECORD_HEADER + body.len()) as u64, seq));
        }
    }
    out.sort_by_key(|r| r.3);
    out
}

/// The sequence number of the last write-ahead record sled holds (sled opened as a node would).
pub(crate) fn applied_seq(dir: &Path) -> u64 {
    with_ledger(dir, |t| super::replay::sled_seq(t).expect("sled"))
}
