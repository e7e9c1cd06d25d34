//! The storage seam: one async trait for everything a node keeps — records under their version
//! rules, the subject index, inquiries, and the audit log appended in the same atomic write as
//! the change it records — plus making writes durable. Backends live in their own folders and
//! nothing above this module names them; their errors and page cursors carry no backend types.
//!
//! Write semantics every backend keeps (the conformance suite checks them):
//! - a write method returns once its change and its audit entries are applied atomically and
//!   visible to reads; it is **durable** once a later [`Storage::sync`] returns;
//! - [`Storage::durable_head`] never names a log state that a crash could take back, so a
//!   checkpoint signed over it is never contradicted (C2SP tlog-checkpoint).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    audit::{merkle::Hash, Entry},
    domain::{inquiry::Inquiry, record::CreditRecord},
};

mod answer;
#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
mod ledger;
pub(crate) mod open;
// `pub(crate)` so the test kit reaches the backends' own test parts (tamper hooks, PostgreSQL
// harness, raw baselines) without this module re-exporting them.
pub(crate) mod postgres;
pub(crate) mod sled;

pub(crate) use ledger::{corrected_entry, deleted_entry, furnished_entry, inquiry_purged_entry, version_rule};

/// Which records an answer shows (`false` drops one: expired, suppressed), and what the node
/// adds to those it shows (their dispute flag). Runs inside the answering write, given the
/// record and its [`Space::Mark`] value (under [`mark_key`]) read in that same write.
pub(crate) type RecordFilter = Arc<dyn Fn(&mut CreditRecord, Option<&[u8]>) -> bool + Send + Sync>;

/// Decides, inside the answering write and before anything is written, whether the answer may
/// be made at all, given the subject's [`Space::Protection`] value: an `Err` writes nothing.
pub(crate) type AnswerGate = Arc<dyn Fn(Option<&[u8]>) -> Result<(), GateError> + Send + Sync>;

/// Why an answer gate refused an answer: one of the app's fixed policy texts, handed back in
/// [`InquiryAnswer::refused`] for the caller to tell the asking peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub &'static str);

/// What stops an answer at the gate: a refusal the caller is told about, or a value the gate
/// cannot read, which is damage to the store (the answer fails with [`StoreError::Corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// The gate's policy refuses the answer.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The value the gate reads does not decode: why.
    #[error("the value the gate reads does not decode: {0}")]
    Undecodable(String),
}

/// A gate that lets every answer through.
pub(crate) fn open_gate() -> AnswerGate {
    Arc::new(|_| Ok(()))
}

/// A filter that shows every record as stored.
pub(crate) fn show_all() -> RecordFilter {
    Arc::new(|_, _| true)
}

/// A peer's query to answer in one write ([`Storage::answer_inquiry`]): the inquiry and its
/// entry to record, how many of the subject's newest inquiries to read and from when, which
/// records to show, the gate that may refuse, and a state change to make first.
#[derive(Clone)]
pub struct AnswerQuery {
    pub inquiry: Inquiry,
    pub entry: Entry,
    pub max_inquiries: usize,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub show: RecordFilter,
    pub gate: AnswerGate,
    /// Made in the same write once the gate lets the answer through, before the inquiry is
    /// recorded (a consent token's nonce spent on this query), if its expectations hold; if they
    /// do not, nothing is written ([`InquiryAnswer::unmet`]).
    pub first: Option<StateChange>,
}

impl AnswerQuery {
    /// Answers `inquiry`, logging `entry`, with at most `max_inquiries` inquiries of any age,
    /// every record shown and no gate.
    pub(crate) fn new(inquiry: Inquiry, entry: Entry, max_inquiries: usize) -> Self {
        Self { inquiry, entry, max_inquiries, since: None, show: show_all(), gate: open_gate(), first: None }
    }
}

/// The [`Space::Mark`] key of a record's dispute flag: `subject/furnisher/record_id`, so one
/// prefix scan finds every flag of a subject.
pub(crate) fn mark_key(subject: &str, furnisher: &str, record_id: &str) -> String {
    format!("{subject}/{furnisher}/{record_id}")
}

/// A storage backend shared by every part of a node.
pub type DynStorage = Arc<dyn Storage>;

/// Why a storage operation failed, in terms a caller can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot read or write right now (I/O error, full disk, database
    /// unreachable). Nothing of the failed write is applied; the caller may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored value that does not decode: the store is damaged.
    #[error("corrupt stored value under {key}: {why}")]
    Corrupt {
        /// Where, in the backend's terms (a hex key, a table and row).
        key: String,
        /// What failed.
        why: String,
    },
    /// The store is closing (the node is shutting down).
    #[error("store is closing")]
    Closed,
    /// A storage task panicked; nothing of its write was applied.
    #[error("storage task failed: {0}")]
    Panicked(String),
    /// This backend does not do that (say, back itself up: a database has its own tools).
    #[error("{0}")]
    Unsupported(String),
}

/// One part of a backup stream: the log state first, then the store's key-value pairs in key
/// order, in chunks.
#[derive(Debug, Clone)]
pub enum BackupPart {
    /// The log state the snapshot holds.
    Head(TreeHead),
    /// Key-value pairs.
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
}

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New record (or a re-furnish after deletion at a higher version).
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

/// Where a subject's record listing resumes: strictly after this (furnisher, record id), the
/// listing's order. A key, never an offset, so records added meanwhile never repeat a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCursor {
    /// The last listed record's furnisher.
    pub furnisher: String,
    /// The last listed record's id.
    pub record_id: String,
}

/// Where a subject's inquiry listing (newest first) resumes: strictly older than this
/// (time, query id). New inquiries arriving meanwhile sort before it and never repeat a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InquiryCursor {
    /// The last listed inquiry's time, microseconds since the epoch.
    pub time_micros: i64,
    /// The last listed inquiry's query id.
    pub query_id: String,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T, C> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<C>,
}

/// What a node reads for a peer's query, in the same atomic write that logs it.
#[derive(Debug, Clone, PartialEq)]
pub struct InquiryAnswer {
    /// The subject's live records that the responder furnished.
    pub records: Vec<CreditRecord>,
    /// The subject's inquiries, newest first, the one just recorded included.
    pub inquiries: Vec<Inquiry>,
    /// The subject's [`Space::Protection`] value, read in the same write.
    pub protection: Option<Vec<u8>>,
    /// Why the gate refused the answer (then nothing was written and nothing else is set).
    pub refused: Option<Refusal>,
    /// The expectations of [`AnswerQuery::first`] did not hold: nothing was written and only
    /// `protection` is set.
    pub unmet: bool,
}

/// A space of small state kept beside the ledger, by string key: what the lifecycle of records
/// needs (disputes, the flags they put on records, the outbox of notices to peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Disputes filed here or received here, by `filer/id`.
    Dispute,
    /// Dispute flags on this institution's records, by `subject/furnisher/record_id`.
    Mark,
    /// Notices waiting for a peer's acknowledgement, by a time-ordered id.
    Outbox,
    /// A person's freeze and fraud alert, by subject id.
    Protection,
    /// At a record locator: which institution holds records about which person, by
    /// `subject/institution` (so one prefix scan finds a person's holders).
    Holding,
    /// Background work's progress marks, by name (how far the log's holdings were delivered).
    Progress,
    /// Consent nonces seen, by `<expiry seconds, 12 digits>/<nonce>` (so a scan from the start
    /// finds the expired ones first): the query each was used for.
    ConsentNonce,
    /// People's own reports counted against the yearly allowance, by `subject/institution`.
    ReportCount,
    /// This node as a C2SP tlog-witness: the last checkpoint it cosigned for each peer's log,
    /// by origin (checked and replaced in one compare-and-set, so it never rolls back).
    Witness,
}

impl Space {
    /// Every space.
    pub const ALL: [Space; 9] = [
        Self::Dispute,
        Self::Mark,
        Self::Outbox,
        Self::Protection,
        Self::Holding,
        Self::Progress,
        Self::ConsentNonce,
        Self::ReportCount,
        Self::Witness,
    ];

    /// The space's name in a backend (a key prefix, a column value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispute => "dispute",
            Self::Mark => "mark",
            Self::Outbox => "outbox",
            Self::Protection => "protection",
            Self::Holding => "holding",
            Self::Progress => "progress",
            Self::ConsentNonce => "consent_nonce",
            Self::ReportCount => "report_count",
            Self::Witness => "witness",
        }
    }

    /// One byte naming the space in byte-keyed backends.
    pub fn tag(self) -> u8 {
        match self {
            Self::Dispute => b'd',
            Self::Mark => b'm',
            Self::Outbox => b'o',
            Self::Protection => b'p',
            Self::Holding => b'h',
            Self::Progress => b'g',
            Self::ConsentNonce => b'n',
            Self::ReportCount => b'c',
            Self::Witness => b'w',
        }
    }
}

/// One state key's value: `None` is absent (to expect) or removed (to put).
pub(crate) type StateValue = (Space, String, Option<Vec<u8>>);

/// An atomic change of state and the audit entries that record it: applied only when every
/// expectation holds (compare-and-set), all or nothing. A change always logs, so concurrent
/// writers (several processes on one database) are ordered by the log.
#[derive(Debug, Clone, Default)]
pub struct StateChange {
    /// Values the keys must have now (`None`: absent).
    pub expect: Vec<StateValue>,
    /// New values (`None`: remove).
    pub put: Vec<StateValue>,
    /// The entries to log, at least one.
    pub entries: Vec<Entry>,
}

impl StateChange {
    /// The refusal of a change that logs no entry, if this is one.
    pub fn unlogged(&self) -> Option<StoreError> {
        self.entries.is_empty().then(|| StoreError::Unsupported("a state change must log at least one entry".into()))
    }
}

/// A log state: its size and RFC 6962 root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of entries.
    pub size: u64,
    /// The root hash of the first `size` entries.
    pub root: Hash,
}

/// Everything a node stores. Implementations must be safe to share across tasks and must never
/// block an async worker thread.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The backend's name, for logs.
    fn backend(&self) -> &'static str;

    /// Why the backend can no longer write, once a write or flush has failed in a way it does
    /// not recover from by itself (sled's I/O errors are sticky); `None` while it can write.
    fn write_failure(&self) -> Option<String> {
        None
    }

    /// Checks that the backend can be reached now (a database round trip); embedded backends
    /// are always reachable. Drives the node's health while a database is away.
    async fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Stores validated records (furnisher set from the caller's certificate) under the version
    /// rules, and one [`Action::RecordFurnished`](crate::audit::Action::RecordFurnished) entry naming the changed record ids, in one
    /// atomic write. One result per record, in order.
    async fn furnish(&self, records: Vec<CreditRecord>, now: DateTime<Utc>) -> Result<Vec<ApplyResult>, StoreError>;

    /// Replaces a live record with a higher version, logging [`Action::RecordCorrected`](crate::audit::Action::RecordCorrected) in the
    /// same write. `None` when there is no live record under its key.
    async fn correct(&self, record: CreditRecord, now: DateTime<Utc>) -> Result<Option<ApplyResult>, StoreError>;

    /// Removes a live record, keeping a tombstone at its version so stale re-sends stay out, and
    /// logs [`Action::RecordDeleted`](crate::audit::Action::RecordDeleted) in the same write.
    async fn delete(
        &self,
        furnisher: &str,
        record_id: &str,
        reason: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Deleted, StoreError>;

    /// One live record.
    async fn get(&self, furnisher: &str, record_id: &str) -> Result<Option<StoredRecord>, StoreError>;

    /// Up to `limit` live records of `subject` ordered by (furnisher, record id), after `after`.
    async fn list_subject(
        &self,
        subject: &str,
        after: Option<RecordCursor>,
        limit: usize,
    ) -> Result<Page<StoredRecord, RecordCursor>, StoreError>;

    /// Every live record of `subject` (the answer to a peer query).
    async fn subject_records(&self, subject: &str) -> Result<Vec<CreditRecord>, StoreError>;

    /// Records an inquiry and its audit entry in one atomic write.
    async fn add_inquiry(&self, inquiry: Inquiry, entry: Entry) -> Result<(), StoreError>;

    /// Answers a peer's query as one atomic write: reads the subject's protection and lets
    /// `gate` refuse (writing nothing); reads the subject's live records furnished by
    /// `inquiry.responder` and their flags, keeps those `show` keeps, sets `entry.record_count` to their number,
    /// records `inquiry` and `entry`, and reads the newest `max_inquiries` inquiries about the
    /// subject recorded at or after `since` (this one included), reading only those: never every
    /// inquiry the subject has. One storage round trip instead of three; records and the count
    /// logged come from the same state.
    async fn answer_inquiry(&self, q: AnswerQuery) -> Result<InquiryAnswer, StoreError>;

    /// [`Storage::answer_inquiry`], durable before it returns, as a peer's answer must be. A
    /// backend may do both in one round trip (sled's writer syncs a lone answer itself, where
    /// the write and a separate [`Storage::sync`] cost a quiet node two hand-offs each way).
    async fn answer_inquiry_durably(&self, q: AnswerQuery) -> Result<InquiryAnswer, StoreError> {
        let answer = self.answer_inquiry(q).await?;
        self.sync().await?;
        Ok(answer)
    }

    /// Up to `limit` inquiries about `subject`, newest first, older than `before`.
    async fn subject_inquiries(
        &self,
        subject: &str,
        before: Option<InquiryCursor>,
        limit: usize,
    ) -> Result<Page<Inquiry, InquiryCursor>, StoreError>;

    /// One state value.
    async fn state_get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` (key, value) pairs of `space` whose key starts with `prefix`, in key (byte)
    /// order, strictly after `after`.
    async fn state_scan(
        &self,
        space: Space,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Applies `change` atomically if its expectations hold: `Ok(true)`; `Ok(false)` when one
    /// does not (nothing applied, nothing logged). A change that logs nothing is refused
    /// ([`StateChange::unlogged`]): PostgreSQL orders writers by the log and would drop it.
    async fn state_write(&self, change: StateChange) -> Result<bool, StoreError>;

    /// Up to `limit` live records of any subject, ordered by (furnisher, record id), after
    /// `after` (for the retention purge).
    async fn scan_records(&self, after: Option<RecordCursor>, limit: usize) -> Result<Vec<StoredRecord>, StoreError>;

    /// Up to `limit` inquiries made before `before`, any subject, oldest first.
    async fn inquiries_before(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Inquiry>, StoreError>;

    /// Deletes those of `inquiries` still stored and logs an [`Action::InquiryPurged`](crate::audit::Action::InquiryPurged) entry for
    /// each (keys only), in one atomic write; returns how many were deleted.
    async fn purge_inquiries(&self, inquiries: Vec<Inquiry>, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Appends entries in order to the audit log; returns the index of the first.
    async fn append_audit(&self, entries: Vec<Entry>) -> Result<u64, StoreError>;

    /// [`Storage::append_audit`], durable before it returns; one round trip where the backend
    /// can (as [`Storage::answer_inquiry_durably`]).
    async fn append_audit_durably(&self, entries: Vec<Entry>) -> Result<u64, StoreError> {
        let first = self.append_audit(entries).await?;
        self.sync().await?;
        Ok(first)
    }

    /// Number of entries appended (visible, not necessarily durable).
    async fn audit_size(&self) -> Result<u64, StoreError>;

    /// The largest log state known durable: what a checkpoint may be signed over.
    async fn durable_head(&self) -> Result<TreeHead, StoreError>;

    /// Up to `limit` entries from index `from`, as (index, leaf bytes).
    async fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The log's root at `size` (at most the current size).
    async fn audit_root(&self, size: u64) -> Result<Hash, StoreError>;

    /// The stored complete-subtree hashes at `level` with indexes `from..from + count`, in
    /// order: the node at (level, i) is the root of leaves `[i·2^level, (i+1)·2^level)`. A C2SP
    /// hash tile of tile level L is `count` ≤ 256 of these at level 8·L. Every one must be
    /// complete at the current size; a missing one is [`StoreError::Corrupt`].
    async fn audit_nodes(&self, level: u8, from: u64, count: u64) -> Result<Vec<Hash>, StoreError>;

    /// RFC 9162 inclusion proof of entry `index` in the tree of `size`.
    async fn audit_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError>;

    /// RFC 9162 consistency proof between sizes `m` and `n`.
    async fn audit_consistency(&self, m: u64, n: u64) -> Result<Vec<Hash>, StoreError>;

    /// Streams a consistent snapshot of the whole store into `tx` (writes wait meanwhile):
    /// [`BackupPart::Head`], then the pairs. Embedded stores only; a database is backed up with
    /// its own tools.
    async fn backup(&self, tx: tokio::sync::mpsc::Sender<BackupPart>) -> Result<(), StoreError> {
        drop(tx);
        Err(StoreError::Unsupported(format!(
            "the {} store is backed up with the database's own tools (pg_basebackup, PITR)",
            self.backend()
        )))
    }

    /// Makes every write that returned before this call durable. Concurrent callers share one
    /// device wait (group commit).
    async fn sync(&self) -> Result<(), StoreError>;

    /// Finishes queued writes, makes them durable and stops the backend's threads and
    /// connections; later calls get [`StoreError::Closed`]. Handles may outlive it.
    async fn close(&self) -> Result<(), StoreError>;
}
