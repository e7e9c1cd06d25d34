//! The embedded backend: sled, one `ledger` tree with key spaces ([`keys`]), nothing to install.
//!
//! Threads, all bounded:
//! - **one writer thread** owns every write. Callers queue their change on a bounded channel
//!   (waiting asynchronously when it is full, never parking an OS thread); the writer takes
//!   every queued change, runs each over one write set (a failed change is rolled back alone),
//!   appends the group to the write-ahead log ([`wal`]) and applies it to sled as one atomic
//!   batch. Being the only writer, it needs no lock for read-then-write version checks and log
//!   appends.
//! - **one flusher thread** marks and `fdatasync`s the write-ahead log whenever the writer has
//!   written to it, while the writer applies the same group to sled ([`commits`]), and moves the
//!   audit log's mark ([`mark`]) before answering anyone; [`Storage::sync`]
//!   waits for the `fdatasync` that covers what was applied before it (group commit: one device
//!   wait for every caller). The audit log size both applied and synced is the durable head a
//!   checkpoint may sign.
//! - **one checkpointer thread** flushes sled and syncs its file in the background, then lets
//!   the write-ahead log reuse what that covers.
//! - **reads** run on tokio's blocking pool behind a semaphore of [`READERS`] permits.
//!
//! Files: the threads in [`engine`], the write-ahead log in [`wal`] (recovery in [`replay`]),
//! room on the disk in [`space`], backup and restore in [`backup`], the value codec in [`codec`];
//! opening the store and `impl Storage` here.

mod answering;
mod backup;
#[cfg(feature = "testkit")]
pub(crate) mod baseline;
mod codec;
mod commits;
mod engine;
mod keys;
mod ledger;
mod mark;
mod open;
mod replay;
mod space;
#[cfg(feature = "testkit")]
pub(crate) mod tamper;
mod wal;
mod writeset;

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prost::Message as _;
use sled::Tree;
use tokio::sync::{mpsc, oneshot, Semaphore};

pub(crate) use self::backup::restore;
use self::ledger::{append, apply, compare_and_set, indexed, node_reader};
use self::open::open_db;
use self::{
    codec::{decode, decode_inquiry, encode_record, live},
    commits::{Commits, Point},
    engine::{checkpointer, flusher, writer, CheckpointStop, Finish, Job, Marker, Syncer, WriteMsg},
    writeset::WriteSet,
};
use crate::{
    audit::{
        merkle::{self, Hash},
        Entry,
    },
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{
        corrected_entry, deleted_entry, furnished_entry, inquiry_purged_entry, version_rule, ApplyResult, BackupPart,
        Deleted, InquiryAnswer, InquiryCursor, Page, RecordCursor, Space, StateChange, Storage, StoreError,
        StoredRecord, TreeHead,
    },
    wire::convert,
};

/// Changes waiting for the writer thread; more wait asynchronously for a slot.
const WRITE_QUEUE: usize = 1024;
/// Reads running at once on the blocking pool.
pub(super) const READERS: usize = 8;

/// How to open a sled store.
#[derive(Debug, Clone)]
pub(crate) struct SledOptions {
    /// The directory (created if missing).
    pub path: PathBuf,
    /// sled's page cache, bytes.
    pub cache_capacity: u64,
    /// `fdatasync` the write-ahead log before acknowledging (power-loss safety), and sled's
    /// file at each checkpoint.
    pub fsync: bool,
}

/// The sled store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SledStorage {
    inner: Arc<Inner>,
}

struct Inner {
    /// Taken at close, so the files are released even while handles remain.
    ledger: std::sync::RwLock<Option<Tree>>,
    writes: mpsc::Sender<WriteMsg>,
    commits: Arc<Commits>,
    checkpoints: std::sync::mpsc::Sender<CheckpointStop>,
    readers: Semaphore,
    /// Set when a commit or flush failed with an I/O error, or the disk is nearly full: no more
    /// writes ([`space`]).
    failure: Arc<space::Failure>,
    closed: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(key: &[u8], why: impl Into<String>) -> StoreError {
    StoreError::Corrupt { key: hex::encode(key), why: why.into() }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt { key: String::new(), why: e.to_string() },
            e => unavailable(e),
        }
    }
}

#[async_trait]
impl Storage for SledStorage {
    fn backend(&self) -> &'static str {
        "sled"
    }

    fn write_failure(&self) -> Option<String> {
        self.inner.failure.get()
    }

    async fn furnish(&self, records: Vec<CreditRecord>, now: DateTime<Utc>) -> Result<Vec<ApplyResult>, StoreError> {
        let encoded: Vec<Vec<u8>> = records.iter().map(|r| encode_record(r, now)).collect();
        self.write(move |ws| {
            let mut results = Vec::with_capacity(records.len());
            for (r, value) in records.iter().zip(encoded) {
                results.push(apply(ws, r, value, false)?);
            }
            if !records.is_empty() {
                append(ws, &[furnished_entry(&records, &results, now)])?;
            }
            Ok(results)
        })
        .await
    }

    async fn correct(&self, record: CreditRecord, now: DateTime<Utc>) -> Result<Option<ApplyResult>, StoreError> {
        let value = encode_record(&record, now);
        self.write(move |ws| {
            let a = apply(ws, &record, value, true)?;
            if a.stored_version == 0 {
                return Ok(None);
            }
            append(ws, &[corrected_entry(&record, a, now)])?;
            Ok(Some(a))
        })
        .await
    }

    async fn delete(
        &self,
        furnisher: &str,
        record_id: &str,
        reason: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Deleted, StoreError> {
        let (furnisher, record_id, reason, note) =
            (furnisher.to_owned(), record_id.to_owned(), reason.to_owned(), note.to_owned());
        self.write(move |ws| {
            let key = keys::record(&furnisher, &record_id);
            let Some(bytes) = ws.get(&key)? else { return Ok(Deleted::NotFound) };
            let mut v = decode(&key, &bytes)?;
            let Some(rec) = v.record.as_ref().filter(|_| !v.deleted) else { return Ok(Deleted::NotFound) };
            let (version, subject) = (rec.version, rec.subject_id.clone());
            ws.remove(keys::subject(&subject, &furnisher, &record_id));
            v.deleted = true;
            v.deletion_reason = reason.clone();
            v.deletion_note = note;
            ws.insert(key, v.encode_to_vec());
            append(ws, &[deleted_entry(&furnisher, &subject, &record_id, version, &reason, now)])?;
            Ok(Deleted::Removed(version))
        })
        .await
    }

    async fn get(&self, furnisher: &str, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let key = keys::record(furnisher, record_id);
        self.read(move |ledger| match ledger.get(&key)? {
            Some(bytes) => live(&key, decode(&key, &bytes)?),
            None => Ok(None),
        })
        .await
    }

    async fn list_subject(
        &self,
        subject: &str,
        after: Option<RecordCursor>,
        limit: usize,
    ) -> Result<Page<StoredRecord, RecordCursor>, StoreError> {
        let subject = subject.to_owned();
        self.read(move |ledger| {
            let prefix = keys::prefixed(keys::SUBJECT, &[subject.as_bytes()]);
            let start = match &after {
                // Strictly after the cursor.
                Some(c) => {
                    let mut k = keys::subject(&subject, &c.furnisher, &c.record_id);
                    k.push(0);
                    k
                }
                None => prefix.clone(),
            };
            let mut items: Vec<StoredRecord> = Vec::with_capacity(limit.min(1024));
            let mut next = None;
            for item in ledger.range(start..) {
                let (k, _) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                if items.len() == limit {
                    next = items.last().map(|r| RecordCursor {
                        furnisher: r.record.furnisher.clone(),
                        record_id: r.record.record_id.clone(),
                    });
                    break;
                }
                if let Some(r) = indexed(ledger, &k, &subject)? {
                    items.push(r);
                }
            }
            Ok(Page { items, next })
        })
        .await
    }

    async fn subject_records(&self, subject: &str) -> Result<Vec<CreditRecord>, StoreError> {
        let subject = subject.to_owned();
        self.read(move |ledger| {
            let mut out = Vec::new();
            for item in ledger.scan_prefix(keys::prefixed(keys::SUBJECT, &[subject.as_bytes()])) {
                let (k, _) = item?;
                if let Some(r) = indexed(ledger, &k, &subject)? {
                    out.push(r.record);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn add_inquiry(&self, mut inquiry: Inquiry, entry: Entry) -> Result<(), StoreError> {
        self.write(move |ws| {
            inquiry.log_index = Some(ws.log_size);
            ws.insert(keys::inquiry(&inquiry), convert::inquiry_to_pb(&inquiry).encode_to_vec());
            append(ws, std::slice::from_ref(&entry))?;
            Ok(())
        })
        .await
    }

    async fn answer_inquiry(&self, q: crate::storage::AnswerQuery) -> Result<InquiryAnswer, StoreError> {
        self.write(answering::change(q)).await
    }

    async fn answer_inquiry_durably(&self, q: crate::storage::AnswerQuery) -> Result<InquiryAnswer, StoreError> {
        self.write_durable(answering::change(q)).await
    }

    async fn subject_inquiries(
        &self,
        subject: &str,
        before: Option<InquiryCursor>,
        limit: usize,
    ) -> Result<Page<Inquiry, InquiryCursor>, StoreError> {
        let subject = subject.to_owned();
        self.read(move |ledger| {
            let prefix = keys::prefixed(keys::INQUIRY, &[subject.as_bytes()]);
            let mut end = prefix.clone();
            match &before {
                Some(c) => {
                    end.extend_from_slice(&keys::inquiry_time(c.time_micros));
                    end.extend_from_slice(c.query_id.as_bytes());
                }
                // Past every key of this subject (subject ids are fixed-length hex).
                None => end.push(0xff),
            }
            // sled's reverse iteration re-seeks at every step; a forward scan keeping only the
            // newest `limit + 1` raw values is several times cheaper and just as bounded.
            let keep = limit.saturating_add(1);
            let mut newest = VecDeque::with_capacity(keep.min(256));
            if limit > 0 {
                for item in ledger.range(prefix.clone()..end) {
                    if newest.len() == keep {
                        newest.pop_front();
                    }
                    newest.push_back(item?);
                }
            }
            let more = newest.len() > limit;
            if more {
                newest.pop_front();
            }
            let mut items = Vec::with_capacity(newest.len());
            for (k, v) in newest.into_iter().rev() {
                items.push(decode_inquiry(&k, &v)?);
            }
            let next = if more {
                items
                    .last()
                    .map(|i| InquiryCursor { time_micros: i.time.timestamp_micros(), query_id: i.query_id.clone() })
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn append_audit(&self, entries: Vec<Entry>) -> Result<u64, StoreError> {
        self.write(move |ws| append(ws, &entries)).await
    }

    async fn append_audit_durably(&self, entries: Vec<Entry>) -> Result<u64, StoreError> {
        self.write_durable(move |ws| append(ws, &entries)).await
    }

    async fn state_get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = keys::state(space, key);
        self.read(move |ledger| Ok(ledger.get(&key)?.map(|v| v.to_vec()))).await
    }

    async fn state_scan(
        &self,
        space: Space,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let full = keys::state(space, prefix);
        let start = match after {
            Some(a) => {
                let mut k = keys::state(space, a);
                k.push(0); // strictly after
                k.max(full.clone())
            }
            None => full.clone(),
        };
        self.read(move |ledger| {
            let mut out = Vec::new();
            for item in ledger.range(start..) {
                if out.len() == limit {
                    break;
                }
                let (k, v) = item?;
                if !k.starts_with(&full) {
                    break;
                }
                let key = String::from_utf8(k[2..].to_vec()).map_err(|_| corrupt(&k, "state key is not UTF-8"))?;
                out.push((key, v.to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn state_write(&self, change: StateChange) -> Result<bool, StoreError> {
        if let Some(refused) = change.unlogged() {
            return Err(refused);
        }
        self.write(move |ws| compare_and_set(ws, &change)).await
    }

    async fn scan_records(&self, after: Option<RecordCursor>, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        self.read(move |ledger| {
            let start = match &after {
                Some(c) => {
                    let mut k = keys::record(&c.furnisher, &c.record_id);
                    k.push(0);
                    k
                }
                None => vec![keys::RECORD],
            };
            let mut out = Vec::new();
            for item in ledger.range(start..) {
                if out.len() == limit {
                    break;
                }
                let (k, v) = item?;
                if k.first() != Some(&keys::RECORD) {
                    break;
                }
                if let Some(r) = live(&k, decode(&k, &v)?)? {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn inquiries_before(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Inquiry>, StoreError> {
        let cutoff = before.timestamp_micros();
        self.read(move |ledger| {
            let mut out = Vec::new();
            for item in ledger.scan_prefix([keys::INQUIRY]) {
                if out.len() == limit {
                    break;
                }
                let (k, v) = item?;
                if keys::inquiry_key_time(&k).is_some_and(|t| t < cutoff) {
                    out.push(decode_inquiry(&k, &v)?);
                }
            }
            out.sort_by_key(|i| i.time);
            Ok(out)
        })
        .await
    }

    async fn purge_inquiries(&self, inquiries: Vec<Inquiry>, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.write(move |ws| {
            let mut entries = Vec::new();
            for i in &inquiries {
                let key = keys::inquiry(i);
                if ws.get(&key)?.is_some() {
                    ws.remove(key);
                    entries.push(inquiry_purged_entry(i, now));
                }
            }
            append(ws, &entries)?;
            Ok(entries.len())
        })
        .await
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        Ok(self.inner.commits.applied_size())
    }

    async fn durable_head(&self) -> Result<TreeHead, StoreError> {
        let size = self.inner.commits.durable();
        Ok(TreeHead { size, root: self.audit_root(size).await? })
    }

    async fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(move |ledger| {
            let mut out = Vec::with_capacity(limit.min(1024));
            for item in ledger.range(keys::entry(from)..).take(limit) {
                let (k, v) = item?;
                if k.first() != Some(&keys::ENTRY) {
                    break;
                }
                let index =
                    k[1..].try_into().map(u64::from_be_bytes).map_err(|_| corrupt(&k, "audit key is not 9 bytes"))?;
                out.push((index, v.to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn audit_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.read(move |ledger| merkle::Tree::new(node_reader(ledger)).root(size)).await
    }

    async fn audit_nodes(&self, level: u8, from: u64, count: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(move |ledger| (from..from.saturating_add(count)).map(|i| node_reader(ledger)(level, i)).collect())
            .await
    }

    async fn audit_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(move |ledger| merkle::Tree::new(node_reader(ledger)).inclusion_proof(index, size)).await
    }

    async fn audit_consistency(&self, m: u64, n: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(move |ledger| merkle::Tree::new(node_reader(ledger)).consistency_proof(m, n)).await
    }

    async fn sync(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        // Everything applied before this call; the flusher is already syncing it, or done.
        let applied = self.inner.commits.applied_seq();
        self.inner.commits.wait(applied).await.map_err(StoreError::Unavailable)
    }

    async fn backup(&self, tx: tokio::sync::mpsc::Sender<BackupPart>) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.inner.writes.send(WriteMsg::Backup(tx, done)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self.inner.writes.send(WriteMsg::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        // No more writes: the flusher syncs what is left and stops.
        let synced = self.inner.commits.wait(self.inner.commits.applied_seq()).await.map_err(StoreError::Unavailable);
        self.inner.commits.stop();
        let (tx, rx) = oneshot::channel();
        let checkpointed = match self.inner.checkpoints.send(CheckpointStop(tx)) {
            Ok(()) => rx.await.unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        let result = synced.and(checkpointed);
        let threads = std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        // The writer, flusher and checkpointer have let go of theirs; this was the last handle on
        // the files (reads in flight hold a clone only until they finish).
        self.inner.ledger.write().unwrap_or_else(|p| p.into_inner()).take();
        // Every thread has answered its stop message; joining them is immediate.
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())))
            .await
            .map_err(|e| StoreError::Panicked(e.to_string()))?;
        result
    }
}

#[cfg(test)]
mod tests;
