//! Durable storage of furnished records in sled: the records themselves, keyed by
//! (furnisher, record id), and an index by subject, both written in one transaction. A write is
//! acknowledged only after [`Store::sync`], which groups the flushes of concurrent writers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message as _;
use sled::{
    transaction::{ConflictableTransactionError, TransactionError},
    Transactional, Tree,
};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::{
    audit::{self, Action, Entry, LogTx},
    convert,
    inquiry::Inquiry,
    merkle::{self, Hash},
    pb::bureau::v1 as pb,
    record::CreditRecord,
};

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

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => Self::Sled(e),
        }
    }
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

/// The trees and the group-commit channel shared by every clone of a [`Store`].
pub struct Inner {
    db: sled::Db,
    /// `furnisher 0x00 record_id` → [`StoredValue`].
    records: Tree,
    /// `subject_id furnisher 0x00 record_id` → empty: a subject's live records.
    by_subject: Tree,
    /// `subject_id time_micros(be) query_id` → [`pb::Inquiry`]: who asked about whom, in time
    /// order per subject.
    inquiries: Tree,
    /// Audit log: index → entry bytes.
    audit_entries: Tree,
    /// Audit log: (level, index) → complete-subtree hash.
    audit_nodes: Tree,
    /// Audit log: `size`.
    audit_meta: Tree,
    /// Serialises log appends: they all touch the size key, and optimistic transactions would
    /// otherwise retry under contention.
    audit_lock: std::sync::Mutex<()>,
    flush: mpsc::UnboundedSender<FlushMsg>,
}

/// A request to the group-commit task.
enum FlushMsg {
    /// Flush, then answer.
    Sync(oneshot::Sender<Result<(), String>>),
    /// Flush, answer, and stop holding the database (so it can be reopened).
    Close(oneshot::Sender<Result<(), String>>),
}

fn record_key(furnisher: &str, record_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(furnisher.len() + 1 + record_id.len());
    k.extend_from_slice(furnisher.as_bytes());
    k.push(0);
    k.extend_from_slice(record_id.as_bytes());
    k
}

fn subject_key(subject: &str, furnisher: &str, record_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(subject.len() + furnisher.len() + 1 + record_id.len());
    k.extend_from_slice(subject.as_bytes());
    k.extend_from_slice(&record_key(furnisher, record_id));
    k
}

fn inquiry_key(i: &Inquiry) -> Vec<u8> {
    let micros = i.time.timestamp_micros().max(0) as u64;
    let mut k = Vec::with_capacity(i.subject_id.len() + 8 + i.query_id.len());
    k.extend_from_slice(i.subject_id.as_bytes());
    k.extend_from_slice(&micros.to_be_bytes());
    k.extend_from_slice(i.query_id.as_bytes());
    k
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

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    /// Opens (or creates) the store at `path` with a page cache of `cache_capacity` bytes.
    /// Must be called inside a tokio runtime (it starts the group-commit task).
    pub fn open(path: &std::path::Path, cache_capacity: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(cache_capacity).open()?;
        let records = db.open_tree("records")?;
        let by_subject = db.open_tree("by_subject")?;
        let inquiries = db.open_tree("inquiries")?;
        let audit_entries = db.open_tree("audit_entries")?;
        let audit_nodes = db.open_tree("audit_nodes")?;
        let audit_meta = db.open_tree("audit_meta")?;
        let (flush, rx) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(db.clone(), rx));
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                records,
                by_subject,
                inquiries,
                audit_entries,
                audit_nodes,
                audit_meta,
                audit_lock: std::sync::Mutex::new(()),
                flush,
            }),
        })
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

    /// Stores validated records (furnisher already set from the caller's certificate) in one
    /// transaction, applying version ordering, and logs the furnishing (record keys only) in the
    /// same transaction. Not durable until [`Store::sync`].
    pub fn furnish(&self, records: &[CreditRecord], now: DateTime<Utc>) -> Result<Vec<ApplyResult>, StoreError> {
        let encoded: Vec<Vec<u8>> = records
            .iter()
            .map(|r| {
                StoredValue { record: Some(convert::record_to_stored(r, now)), ..Default::default() }.encode_to_vec()
            })
            .collect();
        let actor = records.first().map(|r| r.furnisher.clone()).unwrap_or_default();
        let _log = self.lock_log();
        let out = (&self.records, &self.by_subject, &self.audit_entries, &self.audit_nodes, &self.audit_meta)
            .transaction(|(rt, st, e, n, m)| {
                let mut results = Vec::with_capacity(records.len());
                for (r, value) in records.iter().zip(&encoded) {
                    results.push(Self::apply_tx(rt, st, r, value, false)?);
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
                    LogTx { entries: e, nodes: n, meta: m }.append(&[entry])?;
                }
                Ok(results)
            })?;
        Ok(out)
    }

    /// Replaces an existing live record with a higher version, logging it in the same
    /// transaction. `None` when there is no such record.
    pub fn correct(&self, record: &CreditRecord, now: DateTime<Utc>) -> Result<Option<ApplyResult>, StoreError> {
        let value =
            StoredValue { record: Some(convert::record_to_stored(record, now)), ..Default::default() }.encode_to_vec();
        let _log = self.lock_log();
        let out = (&self.records, &self.by_subject, &self.audit_entries, &self.audit_nodes, &self.audit_meta)
            .transaction(|(rt, st, e, n, m)| {
                let a = Self::apply_tx(rt, st, record, &value, true)?;
                if a.stored_version == 0 {
                    return Ok(None);
                }
                let mut entry =
                    Entry::new(Action::RecordCorrected, &record.furnisher, format!("{:?}", a.applied).to_lowercase());
                entry.time = now;
                entry.subject_id = record.subject_id.clone();
                entry.record_count = u32::from(a.applied == Applied::Replaced);
                entry.detail = format!("{} v{}", record.record_id, a.stored_version);
                LogTx { entries: e, nodes: n, meta: m }.append(&[entry])?;
                Ok(Some(a))
            })?;
        Ok(out)
    }

    fn apply_tx(
        rt: &sled::transaction::TransactionalTree,
        st: &sled::transaction::TransactionalTree,
        r: &CreditRecord,
        value: &[u8],
        must_exist: bool,
    ) -> TxResult<ApplyResult> {
        let key = record_key(&r.furnisher, &r.record_id);
        let existing = match rt.get(&key)? {
            Some(bytes) => Some(decode(&key, &bytes).map_err(ConflictableTransactionError::Abort)?),
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
        rt.insert(key, value)?;
        st.insert(subject_key(&r.subject_id, &r.furnisher, &r.record_id), &[][..])?;
        let applied = if was_live { Applied::Replaced } else { Applied::Created };
        Ok(ApplyResult { applied, stored_version: r.version })
    }

    /// One live record.
    pub fn get(&self, furnisher: &str, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let key = record_key(furnisher, record_id);
        match self.records.get(&key)? {
            Some(bytes) => live(&key, decode(&key, &bytes)?),
            None => Ok(None),
        }
    }

    /// Up to `limit` live records of `subject`, in key order, starting after cursor `after`.
    pub fn list_subject(&self, subject: &str, after: Option<&[u8]>, limit: usize) -> Result<Page, StoreError> {
        let prefix = subject.as_bytes();
        let start = match after {
            Some(a) => {
                let mut s = prefix.to_vec();
                s.extend_from_slice(a);
                s.push(0); // strictly after the cursor
                s
            }
            None => prefix.to_vec(),
        };
        let mut records = Vec::with_capacity(limit.min(1024));
        let mut next = None;
        for item in self.by_subject.range(start..) {
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            let rkey = &k[prefix.len()..];
            if records.len() == limit {
                next = records.last().map(|r: &StoredRecord| record_key(&r.record.furnisher, &r.record.record_id));
                break;
            }
            if let Some(bytes) = self.records.get(rkey)? {
                if let Some(r) = live(rkey, decode(rkey, &bytes)?)? {
                    records.push(r);
                }
            }
        }
        Ok(Page { records, next })
    }

    /// Every live record of `subject` (the answer to a peer query).
    pub fn subject_records(&self, subject: &str) -> Result<Vec<CreditRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.by_subject.scan_prefix(subject.as_bytes()) {
            let (k, _) = item?;
            let rkey = &k[subject.len()..];
            if let Some(bytes) = self.records.get(rkey)? {
                if let Some(r) = live(rkey, decode(rkey, &bytes)?)? {
                    out.push(r.record);
                }
            }
        }
        Ok(out)
    }

    /// Removes a live record, keeping a tombstone at its version so stale re-sends stay out,
    /// and logs it in the same transaction.
    pub fn delete(&self, furnisher: &str, record_id: &str, reason: &str, note: &str) -> Result<Deleted, StoreError> {
        let key = record_key(furnisher, record_id);
        let _log = self.lock_log();
        let out = (&self.records, &self.by_subject, &self.audit_entries, &self.audit_nodes, &self.audit_meta)
            .transaction(|(rt, st, e, n, m)| {
                let Some(bytes) = rt.get(&key)? else { return Ok(Deleted::NotFound) };
                let mut v = decode(&key, &bytes).map_err(ConflictableTransactionError::Abort)?;
                if v.deleted {
                    return Ok(Deleted::NotFound);
                }
                let Some(rec) = v.record.as_ref() else { return Ok(Deleted::NotFound) };
                let version = rec.version;
                let subject = rec.subject_id.clone();
                st.remove(subject_key(&subject, furnisher, record_id))?;
                v.deleted = true;
                v.deletion_reason = reason.to_owned();
                v.deletion_note = note.to_owned();
                rt.insert(key.as_slice(), v.encode_to_vec())?;
                let mut entry = Entry::new(Action::RecordDeleted, furnisher, reason.to_owned());
                entry.subject_id = subject;
                entry.record_count = 1;
                entry.detail = format!("{record_id} v{version}");
                LogTx { entries: e, nodes: n, meta: m }.append(&[entry])?;
                Ok(Deleted::Removed(version))
            })?;
        Ok(out)
    }

    /// Records an inquiry and its audit entry in one transaction (not durable until
    /// [`Store::sync`]).
    pub fn add_inquiry(&self, i: &Inquiry, entry: &Entry) -> Result<(), StoreError> {
        let value = convert::inquiry_to_pb(i).encode_to_vec();
        let key = inquiry_key(i);
        let _log = self.lock_log();
        (&self.inquiries, &self.audit_entries, &self.audit_nodes, &self.audit_meta).transaction(|(it, e, n, m)| {
            it.insert(key.as_slice(), value.as_slice())?;
            LogTx { entries: e, nodes: n, meta: m }.append(std::slice::from_ref(entry))?;
            Ok(())
        })?;
        Ok(())
    }

    /// Appends audit entries (not durable until [`Store::sync`]); returns the first index.
    pub fn append_audit(&self, entries: &[Entry]) -> Result<u64, StoreError> {
        let _log = self.lock_log();
        let first = (&self.audit_entries, &self.audit_nodes, &self.audit_meta)
            .transaction(|(e, n, m)| LogTx { entries: e, nodes: n, meta: m }.append(entries))?;
        Ok(first)
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock only means another append panicked; the trees are transactional.
        self.audit_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of audit entries.
    pub fn audit_size(&self) -> Result<u64, StoreError> {
        Ok(audit::decode_size(self.audit_meta.get(b"size")?.as_deref()))
    }

    /// Audit entries from index `from`, at most `limit`, as (index, leaf bytes).
    pub fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.audit_entries.range(from.to_be_bytes()..).take(limit) {
            let (k, v) = item?;
            let index =
                u64::from_be_bytes(k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: hex::encode(&k),
                    why: "audit key is not 8 bytes".into(),
                })?);
            out.push((index, v.to_vec()));
        }
        Ok(out)
    }

    /// The audit tree's root at `size`.
    pub fn audit_root(&self, size: u64) -> Result<Hash, StoreError> {
        merkle::Tree::new(audit::node_reader(&self.audit_nodes)).root(size)
    }

    /// Inclusion proof of entry `index` in the tree of `size`.
    pub fn audit_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::Tree::new(audit::node_reader(&self.audit_nodes)).inclusion_proof(index, size)
    }

    /// Consistency proof between tree sizes `m` and `n`.
    pub fn audit_consistency(&self, m: u64, n: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::Tree::new(audit::node_reader(&self.audit_nodes)).consistency_proof(m, n)
    }

    /// Up to `limit` inquiries about `subject`, newest first, skipping the first `skip`.
    pub fn subject_inquiries(&self, subject: &str, skip: usize, limit: usize) -> Result<Vec<Inquiry>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(128));
        for item in self.inquiries.scan_prefix(subject.as_bytes()).rev().skip(skip).take(limit) {
            let (k, v) = item?;
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

    /// Number of keys in the record tree, live or deleted (cheap estimate for logs).
    pub fn record_count(&self) -> usize {
        self.records.len()
    }
}

/// Serves [`Store::sync`]: takes every waiting request, flushes once, answers them all.
async fn group_commit(db: sled::Db, mut rx: mpsc::UnboundedReceiver<FlushMsg>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let result = db.flush_async().await.map(|_| ()).map_err(|e| {
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
