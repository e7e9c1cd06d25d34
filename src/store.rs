//! Durable storage in sled: furnished records keyed by (furnisher, record id), an index by
//! subject, inquiries, and the audit log, as key spaces of one `ledger` tree. Every change and
//! its log entry go in one atomic sled batch, made under the store's writer lock (a read-then-
//! write that no other writer can interleave). A write is acknowledged only after
//! [`Store::sync`], which groups the flushes of concurrent writers.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prost::Message as _;
use sled::Tree;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::{
    audit::{self, Action, Entry},
    convert,
    inquiry::Inquiry,
    merkle::{self, Hash},
    pb::bureau::v1 as pb,
    record::CreditRecord,
    writeset::WriteSet,
};

/// The one sled tree holding every key space.
pub const LEDGER: &str = "ledger";
/// Key-space prefix of records: `r` ‖ furnisher ‖ 0x00 ‖ record id → [`StoredValue`].
const RECORD: u8 = b'r';
/// Key-space prefix of the subject index: `s` ‖ subject ‖ furnisher ‖ 0x00 ‖ record id → empty.
const SUBJECT: u8 = b's';
/// Key-space prefix of inquiries: `i` ‖ subject ‖ time_micros(be) ‖ query id → [`pb::Inquiry`],
/// in time order per subject.
const INQUIRY: u8 = b'i';

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption error.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value that does not decode: the store is damaged.
    #[error("corrupt stored value under key {key}: {why}")]
    Corrupt {
        /// The key, hex.
        key: String,
        /// What failed.
        why: String,
    },
    /// The flush task is gone (the node is shutting down).
    #[error("store is closing")]
    Closed,
}

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New record (or a re-furnish after deletion at a lower version).
    Created,
    /// Replaced a lower version.
    Replaced,
    /// An equal or higher version is stored (or was deleted): nothing changed.
    IgnoredStale,
    /// A live record with this key belongs to another subject; a record never moves between
    /// subjects (delete it and furnish anew).
    SubjectMismatch,
}

/// The result of storing one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyResult {
    /// What happened.
    pub applied: Applied,
    /// The version stored after the call (0 when none).
    pub stored_version: u64,
}

/// A record as stored, with when it was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record.
    pub record: CreditRecord,
    /// When this version was stored.
    pub updated: DateTime<Utc>,
}

/// The result of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Removed at this version.
    Removed(u64),
    /// No live record under that key.
    NotFound,
}

/// A page of a subject's records.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records, in key order.
    pub records: Vec<StoredRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Vec<u8>>,
}

/// The on-disk form of a record: the API's protobuf message (its wire format evolves safely)
/// plus a tombstone.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredValue {
    #[prost(message, optional, tag = "1")]
    record: Option<pb::CreditRecord>,
    #[prost(bool, tag = "2")]
    deleted: bool,
    #[prost(string, tag = "3")]
    deletion_reason: String,
    #[prost(string, tag = "4")]
    deletion_note: String,
}

/// The node's store. Cheap to clone: every clone shares one [`Inner`].
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::ops::Deref for Store {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The ledger tree, the writer lock and the group-commit channel shared by every clone.
pub struct Inner {
    db: sled::Db,
    ledger: Tree,
    /// Held from a write's first read to its commit: one writer at a time, so version checks
    /// and log appends (which all touch the log's size) never interleave.
    writer: Mutex<()>,
    flush: mpsc::UnboundedSender<FlushMsg>,
}

/// A request to the group-commit task.
enum FlushMsg {
    /// Flush, then answer.
    Sync(oneshot::Sender<Result<(), String>>),
    /// Flush, answer, and stop holding the database (so it can be reopened).
    Close(oneshot::Sender<Result<(), String>>),
}

/// `furnisher 0x00 record_id`: a record's identity, and the page cursor of subject listings.
fn record_suffix(furnisher: &str, record_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(furnisher.len() + 1 + record_id.len());
    k.extend_from_slice(furnisher.as_bytes());
    k.push(0);
    k.extend_from_slice(record_id.as_bytes());
    k
}

fn prefixed(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn record_key(furnisher: &str, record_id: &str) -> Vec<u8> {
    prefixed(RECORD, &[&record_suffix(furnisher, record_id)])
}

fn subject_key(subject: &str, furnisher: &str, record_id: &str) -> Vec<u8> {
    prefixed(SUBJECT, &[subject.as_bytes(), &record_suffix(furnisher, record_id)])
}

fn inquiry_key(i: &Inquiry) -> Vec<u8> {
    let micros = i.time.timestamp_micros().max(0) as u64;
    prefixed(INQUIRY, &[i.subject_id.as_bytes(), &micros.to_be_bytes(), i.query_id.as_bytes()])
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredValue, StoreError> {
    StoredValue::decode(bytes).map_err(|e| StoreError::Corrupt { key: hex::encode(key), why: e.to_string() })
}

fn live(key: &[u8], v: StoredValue) -> Result<Option<StoredRecord>, StoreError> {
    if v.deleted {
        return Ok(None);
    }
    let pb = v.record.ok_or_else(|| StoreError::Corrupt { key: hex::encode(key), why: "no record".into() })?;
    let updated =
        pb.update_time.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)).unwrap_or_default();
    let record = convert::record_from_stored(pb).map_err(|why| StoreError::Corrupt { key: hex::encode(key), why })?;
    Ok(Some(StoredRecord { record, updated }))
}

impl Store {
    /// Opens (or creates) the store at `path` with a page cache of `cache_capacity` bytes,
    /// each group flush followed by an `fdatasync` (see [`Store::open_with`]).
    /// Must be called inside a tokio runtime (it starts the group-commit task).
    pub fn open(path: &std::path::Path, cache_capacity: u64) -> Result<Self, StoreError> {
        Self::open_with(path, cache_capacity, true)
    }

    /// Like [`Store::open`]; with `fsync` false a flush is sled's alone (`sync_file_range` on
    /// Linux): safe against a process crash, not against power loss.
    pub fn open_with(path: &std::path::Path, cache_capacity: u64, fsync: bool) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(cache_capacity).open()?;
        let ledger = db.open_tree(LEDGER)?;
        // sled 0.34 keeps its log and pages in this one file.
        let data_file =
            if fsync { Some(Arc::new(std::fs::File::open(path.join("db")).map_err(sled::Error::Io)?)) } else { None };
        let (flush, rx) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(db.clone(), data_file, rx));
        Ok(Self { inner: Arc::new(Inner { db, ledger, writer: Mutex::new(()), flush }) })
    }

    /// The underlying database, for modules that keep their own trees beside the records.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Makes every write completed before this call durable. Concurrent callers share one
    /// flush (group commit), so many small writers cost few fsyncs.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.flush.send(FlushMsg::Sync(tx)).map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(e)))),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        // A poisoned lock only means another writer panicked before its commit: nothing of its
        // write set was applied.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` over a fresh write set under the writer lock and commits what it wrote.
    fn write<T>(&self, f: impl FnOnce(&mut WriteSet<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _w = self.lock_writer();
        let mut ws = WriteSet::new(&self.ledger);
        let out = f(&mut ws)?;
        ws.commit()?;
        Ok(out)
    }

    /// Stores validated records (furnisher already set from the caller's certificate) in one
    /// atomic write, applying version ordering, and logs the furnishing (record keys only) in
    /// the same write. Not durable until [`Store::sync`].
    pub fn furnish(&self, records: &[CreditRecord], now: DateTime<Utc>) -> Result<Vec<ApplyResult>, StoreError> {
        let encoded: Vec<Vec<u8>> = records
            .iter()
            .map(|r| {
                StoredValue { record: Some(convert::record_to_stored(r, now)), ..Default::default() }.encode_to_vec()
            })
            .collect();
        let actor = records.first().map(|r| r.furnisher.clone()).unwrap_or_default();
        self.write(|ws| {
            let mut results = Vec::with_capacity(records.len());
            for (r, value) in records.iter().zip(encoded) {
                results.push(Self::apply(ws, r, value, false)?);
            }
            if !records.is_empty() {
                let changed: Vec<&str> = records
                    .iter()
                    .zip(&results)
                    .filter(|(_, a)| matches!(a.applied, Applied::Created | Applied::Replaced))
                    .map(|(r, _)| r.record_id.as_str())
                    .collect();
                let mut entry = Entry::new(
                    Action::RecordFurnished,
                    &actor,
                    format!("accepted={} not_stored={}", changed.len(), records.len() - changed.len()),
                );
                entry.time = now;
                entry.record_count = changed.len() as u32;
                entry.detail = changed.join(",");
                audit::append(ws, &[entry])?;
            }
            Ok(results)
        })
    }

    /// Replaces an existing live record with a higher version, logging it in the same atomic
    /// write. `None` when there is no such record.
    pub fn correct(&self, record: &CreditRecord, now: DateTime<Utc>) -> Result<Option<ApplyResult>, StoreError> {
        let value =
            StoredValue { record: Some(convert::record_to_stored(record, now)), ..Default::default() }.encode_to_vec();
        self.write(|ws| {
            let a = Self::apply(ws, record, value, true)?;
            if a.stored_version == 0 {
                return Ok(None);
            }
            let mut entry =
                Entry::new(Action::RecordCorrected, &record.furnisher, format!("{:?}", a.applied).to_lowercase());
            entry.time = now;
            entry.subject_id = record.subject_id.clone();
            entry.record_count = u32::from(a.applied == Applied::Replaced);
            entry.detail = format!("{} v{}", record.record_id, a.stored_version);
            audit::append(ws, &[entry])?;
            Ok(Some(a))
        })
    }

    fn apply(
        ws: &mut WriteSet<'_>,
        r: &CreditRecord,
        value: Vec<u8>,
        must_exist: bool,
    ) -> Result<ApplyResult, StoreError> {
        let key = record_key(&r.furnisher, &r.record_id);
        let existing = match ws.get(&key)? {
            Some(bytes) => Some(decode(&key, &bytes)?),
            None => None,
        };
        let stored_version = existing.as_ref().and_then(|e| e.record.as_ref()).map_or(0, |r| r.version);
        let was_live = existing.as_ref().is_some_and(|e| !e.deleted);
        if must_exist && !was_live {
            return Ok(ApplyResult { applied: Applied::IgnoredStale, stored_version: 0 });
        }
        if r.version <= stored_version {
            let stored_version = if was_live { stored_version } else { 0 };
            return Ok(ApplyResult { applied: Applied::IgnoredStale, stored_version });
        }
        if was_live {
            let old_subject = existing.as_ref().and_then(|e| e.record.as_ref()).map(|r| r.subject_id.as_str());
            if old_subject != Some(r.subject_id.as_str()) {
                return Ok(ApplyResult { applied: Applied::SubjectMismatch, stored_version });
            }
        }
        ws.insert(key, value);
        ws.insert(subject_key(&r.subject_id, &r.furnisher, &r.record_id), &[][..]);
        let applied = if was_live { Applied::Replaced } else { Applied::Created };
        Ok(ApplyResult { applied, stored_version: r.version })
    }

    /// One live record.
    pub fn get(&self, furnisher: &str, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let key = record_key(furnisher, record_id);
        match self.ledger.get(&key)? {
            Some(bytes) => live(&key, decode(&key, &bytes)?),
            None => Ok(None),
        }
    }

    /// The live record a subject-index key points at.
    fn indexed(&self, index_key: &[u8], subject: &str) -> Result<Option<StoredRecord>, StoreError> {
        let rkey = prefixed(RECORD, &[&index_key[1 + subject.len()..]]);
        match self.ledger.get(&rkey)? {
            Some(bytes) => live(&rkey, decode(&rkey, &bytes)?),
            None => Ok(None),
        }
    }

    /// Up to `limit` live records of `subject`, in key order, starting after cursor `after`.
    pub fn list_subject(&self, subject: &str, after: Option<&[u8]>, limit: usize) -> Result<Page, StoreError> {
        let prefix = prefixed(SUBJECT, &[subject.as_bytes()]);
        let start = match after {
            // Strictly after the cursor.
            Some(a) => prefixed(SUBJECT, &[subject.as_bytes(), a, &[0]]),
            None => prefix.clone(),
        };
        let mut records = Vec::with_capacity(limit.min(1024));
        let mut next = None;
        for item in self.ledger.range(start..) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if records.len() == limit {
                next = records.last().map(|r: &StoredRecord| record_suffix(&r.record.furnisher, &r.record.record_id));
                break;
            }
            if let Some(r) = self.indexed(&k, subject)? {
                records.push(r);
            }
        }
        Ok(Page { records, next })
    }

    /// Every live record of `subject` (the answer to a peer query).
    pub fn subject_records(&self, subject: &str) -> Result<Vec<CreditRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.ledger.scan_prefix(prefixed(SUBJECT, &[subject.as_bytes()])) {
            let (k, _) = item?;
            if let Some(r) = self.indexed(&k, subject)? {
                out.push(r.record);
            }
        }
        Ok(out)
    }

    /// Removes a live record, keeping a tombstone at its version so stale re-sends stay out,
    /// and logs it in the same atomic write.
    pub fn delete(&self, furnisher: &str, record_id: &str, reason: &str, note: &str) -> Result<Deleted, StoreError> {
        let key = record_key(furnisher, record_id);
        self.write(|ws| {
            let Some(bytes) = ws.get(&key)? else { return Ok(Deleted::NotFound) };
            let mut v = decode(&key, &bytes)?;
            if v.deleted {
                return Ok(Deleted::NotFound);
            }
            let Some(rec) = v.record.as_ref() else { return Ok(Deleted::NotFound) };
            let version = rec.version;
            let subject = rec.subject_id.clone();
            ws.remove(subject_key(&subject, furnisher, record_id));
            v.deleted = true;
            v.deletion_reason = reason.to_owned();
            v.deletion_note = note.to_owned();
            ws.insert(key.clone(), v.encode_to_vec());
            let mut entry = Entry::new(Action::RecordDeleted, furnisher, reason.to_owned());
            entry.subject_id = subject;
            entry.record_count = 1;
            entry.detail = format!("{record_id} v{version}");
            audit::append(ws, &[entry])?;
            Ok(Deleted::Removed(version))
        })
    }

    /// Records an inquiry and its audit entry in one atomic write (not durable until
    /// [`Store::sync`]).
    pub fn add_inquiry(&self, i: &Inquiry, entry: &Entry) -> Result<(), StoreError> {
        let value = convert::inquiry_to_pb(i).encode_to_vec();
        self.write(|ws| {
            ws.insert(inquiry_key(i), value);
            audit::append(ws, std::slice::from_ref(entry))?;
            Ok(())
        })
    }

    /// Appends audit entries (not durable until [`Store::sync`]); returns the first index.
    pub fn append_audit(&self, entries: &[Entry]) -> Result<u64, StoreError> {
        self.write(|ws| audit::append(ws, entries))
    }

    /// Number of audit entries.
    pub fn audit_size(&self) -> Result<u64, StoreError> {
        Ok(audit::decode_size(self.ledger.get(audit::SIZE_KEY)?.as_deref()))
    }

    /// Audit entries from index `from`, at most `limit`, as (index, leaf bytes).
    pub fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.ledger.range(audit::entry_key(from)..).take(limit) {
            let (k, v) = item?;
            if k.first() != Some(&audit::ENTRY_PREFIX) {
                break;
            }
            let index = k[1..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt { key: hex::encode(&k), why: "audit key is not 9 bytes".into() })?;
            out.push((index, v.to_vec()));
        }
        Ok(out)
    }

    /// The audit tree's root at `size`.
    pub fn audit_root(&self, size: u64) -> Result<Hash, StoreError> {
        merkle::Tree::new(audit::node_reader(&self.ledger)).root(size)
    }

    /// Inclusion proof of entry `index` in the tree of `size`.
    pub fn audit_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::Tree::new(audit::node_reader(&self.ledger)).inclusion_proof(index, size)
    }

    /// Consistency proof between tree sizes `m` and `n`.
    pub fn audit_consistency(&self, m: u64, n: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::Tree::new(audit::node_reader(&self.ledger)).consistency_proof(m, n)
    }

    /// Up to `limit` inquiries about `subject`, newest first, skipping the first `skip`.
    pub fn subject_inquiries(&self, subject: &str, skip: usize, limit: usize) -> Result<Vec<Inquiry>, StoreError> {
        // sled's reverse iteration re-seeks at every step; a forward scan keeping only the
        // newest `skip + limit` raw values is several times cheaper and just as bounded.
        let keep = skip.saturating_add(limit);
        let mut newest = std::collections::VecDeque::with_capacity(keep.min(256));
        if keep > 0 {
            for item in self.ledger.scan_prefix(prefixed(INQUIRY, &[subject.as_bytes()])) {
                if newest.len() == keep {
                    newest.pop_front();
                }
                newest.push_back(item?);
            }
        }
        let mut out = Vec::with_capacity(newest.len().saturating_sub(skip));
        for (k, v) in newest.into_iter().rev().skip(skip) {
            let corrupt = |why: String| StoreError::Corrupt { key: hex::encode(&k), why };
            let pb = pb::Inquiry::decode(v.as_ref()).map_err(|e| corrupt(e.to_string()))?;
            out.push(convert::inquiry_from_pb(&pb).ok_or_else(|| corrupt("incomplete inquiry".into()))?);
        }
        Ok(out)
    }

    /// Flushes and closes the database, so its directory can be opened again at once. Waits up
    /// to `grace` for other clones (e.g. connections still winding down) to be dropped first; if
    /// some remain, the database stays open until the last of them goes.
    pub async fn close(self, grace: std::time::Duration) -> Result<(), StoreError> {
        let until = tokio::time::Instant::now() + grace;
        while Arc::strong_count(&self.inner) > 1 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if Arc::strong_count(&self.inner) > 1 {
            tracing::warn!("store still in use at close; it closes when the last user lets go");
        }
        let (tx, rx) = oneshot::channel();
        let result = match self.flush.send(FlushMsg::Close(tx)) {
            Err(_) => Ok(()), // already closed
            Ok(()) => match rx.await {
                Ok(Ok(())) | Err(_) => Ok(()),
                Ok(Err(e)) => Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(e)))),
            },
        };
        // The flusher has let go of its handle; dropping ours closes the database.
        drop(self);
        result
    }
}

/// sled's flush, then (when configured) `fdatasync` of its data file, off the async workers.
async fn flush(db: &sled::Db, data_file: Option<&Arc<std::fs::File>>) -> std::io::Result<()> {
    db.flush_async().await.map_err(std::io::Error::other)?;
    if let Some(f) = data_file {
        let f = Arc::clone(f);
        tokio::task::spawn_blocking(move || f.sync_data()).await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

/// Scheduler turns the group-commit task gives other tasks before each flush.
const COMMIT_YIELDS: usize = 2;

/// Serves [`Store::sync`]: takes every waiting request, flushes once, answers them all.
async fn group_commit(db: sled::Db, data_file: Option<Arc<std::fs::File>>, mut rx: mpsc::UnboundedReceiver<FlushMsg>) {
    while let Some(first) = rx.recv().await {
        // Let writers that are already running reach their sync before the flush starts, so
        // one fsync serves them too (a commit delay measured in task turns, not timer ticks).
        for _ in 0..COMMIT_YIELDS {
            tokio::task::yield_now().await;
        }
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let result = flush(&db, data_file.as_ref()).await.map_err(|e| {
            error!(error = %e, "store flush failed");
            e.to_string()
        });
        let mut closers = Vec::new();
        for w in waiters {
            match w {
                FlushMsg::Sync(tx) => {
                    let _ = tx.send(result.clone());
                }
                FlushMsg::Close(tx) => closers.push(tx),
            }
        }
        if !closers.is_empty() {
            rx.close();
            // Let go of the database before saying so, so the closer's drop is the last one.
            drop(db);
            for tx in closers {
                let _ = tx.send(result.clone());
            }
            return;
        }
    }
}

/// Shared handle type used by services.
pub type SharedStore = Arc<Store>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inquiry::Purpose;

    #[tokio::test]
    async fn inquiries_come_newest_first_and_page_by_skip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let subject = "a".repeat(64);
        let t0 = Utc::now();
        for n in 0..5 {
            let i = Inquiry {
                inquirer: "bank".into(),
                responder: "payapp".into(),
                subject_id: subject.clone(),
                purpose: Purpose::AccountReview,
                hard: false,
                time: t0 + chrono::Duration::seconds(n),
                query_id: format!("q{n}"),
            };
            store.add_inquiry(&i, &Entry::new(Action::QueryInbound, "bank", "answered")).unwrap();
        }
        // Another subject's inquiries stay out.
        let other = Inquiry {
            subject_id: "b".repeat(64),
            query_id: "x".into(),
            ..store.subject_inquiries(&subject, 0, 1).unwrap()[0].clone()
        };
        store.add_inquiry(&other, &Entry::new(Action::QueryInbound, "bank", "answered")).unwrap();
        let ids = |skip, limit| -> Vec<String> {
            store.subject_inquiries(&subject, skip, limit).unwrap().into_iter().map(|i| i.query_id).collect()
        };
        assert_eq!(ids(0, 2), ["q4", "q3"]);
        assert_eq!(ids(2, 2), ["q2", "q1"]);
        assert_eq!(ids(4, 10), ["q0"]);
        assert_eq!(ids(5, 10), Vec::<String>::new());
        assert_eq!(ids(0, 0), Vec::<String>::new());
        assert_eq!(store.audit_size().unwrap(), 6);
    }
}
