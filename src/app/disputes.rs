//! Disputes across the federation. The filing node keeps its copy and a durable outbox entry
//! (one atomic write with the `dispute_filed` log entry) and delivers the dispute to the
//! furnisher's node until that node acknowledges, across restarts of either; the furnisher's
//! node marks the record at once and resolves it, telling the filer through its own outbox.
//! Every step is a compare-and-set state change with its log entry, so concurrent callers (or
//! replicas on one database) never apply a step twice. No gRPC server types here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tonic::Code;
use tracing::{info, warn};

use crate::{
    app::lifecycle::Lifecycle,
    audit::{Action, Entry},
    domain::{
        dispute::{
            dispute_key, statement_problem, Dispute, DisputeMark, DisputeReason, DisputeStatus, MarkState, RecordMark,
            Resolution,
        },
        record::CreditRecord,
        subject::is_valid_subject_id,
    },
    net::peers::Peers,
    storage::{mark_key, Applied, Space, StateChange, StoreError},
    wire::{convert, pb::bureau::v1 as pb},
};

/// How long a filing waits for the furnisher's node before answering PENDING_DELIVERY.
const FIRST_ATTEMPT: Duration = Duration::from_secs(2);
/// How long one background delivery may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// First wait before retrying a notice a peer did not take.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Times a compare-and-set step is retried when another writer moved first.
const CAS_ATTEMPTS: usize = 16;

/// Why a dispute operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DisputeError {
    /// A malformed or inconsistent field: (field, what is wrong).
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    /// No such dispute or record.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (resolve another institution's dispute; deliver a notice it
    /// is not the sender of).
    #[error("{0}")]
    NotAllowed(String),
    /// Refused as a query would be (consent missing, a malformed subject).
    #[error(transparent)]
    Refused(#[from] crate::app::answer::QueryRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What waits in the outbox: a notice for a peer about one dispute or one person's protections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Queued {
    /// The peer institution to deliver to.
    pub(super) to: String,
    /// What the notice is.
    pub(super) kind: Kind,
    /// The dispute's key (`filer/id`), or the subject whose protections changed.
    pub(super) about: String,
    /// For a protection change: its id, logged at both ends.
    #[serde(default)]
    pub(super) change: String,
}

/// What an outbox notice carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    /// A dispute, to the furnisher.
    Filed,
    /// A resolution, to the filer.
    Resolved,
    /// A person's freeze and alert state, to every peer.
    Protection,
}

/// How one delivery attempt ended.
enum Delivery {
    /// The peer acknowledged (and this node recorded it).
    Acknowledged,
    /// The peer refused for good (it has no such record, the subject does not match, …).
    Refused(Code, String),
    /// Not now (unreachable, timed out): try again later.
    Later(String),
}

/// A filing as an application sends it.
#[derive(Debug, Clone)]
pub(crate) struct Filing {
    /// The furnishing institution.
    pub furnisher: String,
    /// Its record id.
    pub record_id: String,
    /// The subject.
    pub subject_id: String,
    /// What is disputed; `None` when unspecified.
    pub reason: Option<DisputeReason>,
    /// The subject's statement.
    pub statement: String,
}

/// A node's disputes: filing, receiving, resolving, the outbox and the deadline sweep.
#[derive(Clone)]
pub(crate) struct Disputes {
    /// Store, clock and rules.
    pub life: Lifecycle,
    /// Peers, to deliver notices.
    pub peers: Arc<Peers>,
    /// Wakes the outbox worker when something is queued.
    pub wake: Arc<Notify>,
    /// Longest wait between two delivery attempts.
    pub retry_max: Duration,
    /// Per outbox key: attempts so far and when the next is due (in memory: a restart retries
    /// everything at once, which is what a restart should do).
    backoff: Arc<Mutex<HashMap<String, (u32, tokio::time::Instant)>>>,
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_owned(), why: e.to_string() })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain data always serialises.
    serde_json::to_vec(v).expect("state serialises")
}

impl Disputes {
    /// Disputes over `life`, delivering through `peers`.
    pub(crate) fn new(life: Lifecycle, peers: Arc<Peers>, retry_max: Duration) -> Self {
        Self { life, peers, wake: Arc::new(Notify::new()), retry_max, backoff: Arc::default() }
    }

    pub(super) fn me(&self) -> &str {
        &self.life.institution
    }

    fn entry(&self, action: Action, d: &Dispute, actor: &str, counterparty: &str, outcome: impl Into<String>) -> Entry {
        let mut e = Entry::new(action, actor, outcome);
        e.time = self.life.clock.now();
        e.query_id = d.id.clone();
        e.counterparty = counterparty.to_owned();
        e.subject_id = d.subject_id.clone();
        e.detail = format!(
            "{} reason={} deadline={}",
            convert::record_name(&d.furnisher, &d.record_id),
            d.reason.as_str(),
            d.deadline.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
        e
    }

    /// A dispute by key, as stored (with its raw bytes for a compare-and-set).
    async fn load(&self, key: &str) -> Result<Option<(Dispute, Vec<u8>)>, StoreError> {
        match self.life.store.state_get(Space::Dispute, key).await? {
            Some(bytes) => Ok(Some((decode(key, &bytes)?, bytes))),
            None => Ok(None),
        }
    }

    /// Reads a dispute this node filed or received.
    pub(crate) async fn get(&self, filer: &str, id: &str) -> Result<Dispute, DisputeError> {
        match self.load(&dispute_key(filer, id)).await? {
            Some((d, _)) => Ok(d),
            None => Err(DisputeError::NotFound(format!("{} not found", convert::dispute_name(filer, id)))),
        }
    }

    /// Files a dispute for an application of this node's institution.
    pub(crate) async fn file(&self, f: Filing) -> Result<Dispute, DisputeError> {
        if !is_valid_subject_id(&f.subject_id) {
            return Err(DisputeError::Invalid("subject_id", "must be 64 lowercase hex characters".into()));
        }
        let reason = f.reason.ok_or_else(|| DisputeError::Invalid("reason", "a dispute reason is required".into()))?;
        if let Some(why) = statement_problem(&f.statement) {
            return Err(DisputeError::Invalid("statement", why));
        }
        let local = f.furnisher == self.me();
        if !local && !self.peers.knows(&f.furnisher) {
            return Err(DisputeError::NotFound(format!(
                "{} not found: {} is not an institution this node exchanges records with",
                convert::record_name(&f.furnisher, &f.record_id),
                f.furnisher
            )));
        }
        let id = Dispute::id_for(self.me(), &f.furnisher, &f.record_id, &f.subject_id, reason, &f.statement);
        let key = dispute_key(self.me(), &id);
        if let Some((d, _)) = self.load(&key).await? {
            return Ok(d); // the same filing again
        }
        let now = self.life.clock.now();
        let d = Dispute {
            id,
            filer: self.me().to_owned(),
            furnisher: f.furnisher,
            record_id: f.record_id,
            subject_id: f.subject_id,
            reason,
            statement: f.statement,
            status: DisputeStatus::PendingDelivery,
            filed: now,
            deadline: None,
            resolved: None,
            corrected_version: 0,
            rejection: String::new(),
            suppression_logged: false,
        };
        if local {
            // The filer furnished the record itself: no one to deliver to.
            return self.receive(self.me(), d).await;
        }
        let outbox = format!("{:020}-{key}", now.timestamp_micros().max(0));
        let queued = Queued { to: d.furnisher.clone(), kind: Kind::Filed, about: key.clone(), change: String::new() };
        let filed = StateChange {
            expect: vec![(Space::Dispute, key.clone(), None)],
            put: vec![
                (Space::Dispute, key.clone(), Some(encode(&d))),
                (Space::Outbox, outbox.clone(), Some(encode(&queued))),
            ],
            entries: vec![self.entry(Action::DisputeFiled, &d, self.me(), &d.furnisher, "filed")],
        };
        if !self.life.store.state_write(filed).await? {
            return self.get(self.me(), &d.id).await; // filed concurrently
        }
        self.life.store.sync().await?;
        info!(dispute = %d.id, furnisher = %d.furnisher, "dispute filed");
        // One attempt now, so that a furnisher that refuses it answers the application directly.
        match self.attempt(&outbox, &queued, FIRST_ATTEMPT).await? {
            Delivery::Refused(code, message) => {
                self.forget_refused(&outbox, &d, code, &message).await?;
                Err(match code {
                    Code::NotFound => DisputeError::NotFound(message),
                    Code::InvalidArgument if message.contains("subject_id") => {
                        DisputeError::Invalid("subject_id", "does not match the disputed record's subject".into())
                    }
                    Code::InvalidArgument => DisputeError::Invalid("record", message),
                    _ => DisputeError::NotAllowed(message),
                })
            }
            Delivery::Acknowledged | Delivery::Later(_) => {
                self.wake.notify_one();
                self.get(self.me(), &d.id).await
            }
        }
    }

    /// A filing the furnisher refused at once: forgotten (so it may be filed again once fixed),
    /// the refusal logged.
    async fn forget_refused(&self, outbox: &str, d: &Dispute, code: Code, message: &str) -> Result<(), StoreError> {
        let key = d.key();
        let Some((_, bytes)) = self.load(&key).await? else { return Ok(()) };
        let change = StateChange {
            expect: vec![(Space::Dispute, key.clone(), Some(bytes))],
            put: vec![(Space::Dispute, key, None), (Space::Outbox, outbox.to_owned(), None)],
            entries: vec![self.entry(Action::DisputeRejected, d, self.me(), &d.furnisher, format!("refused:{code:?}"))],
        };
        self.life.store.state_write(change).await?;
        warn!(dispute = %d.id, furnisher = %d.furnisher, code = ?code, error = %message, "dispute refused by the furnisher's node");
        self.life.store.sync().await
    }

    /// A dispute arrives at the furnisher's node (from a peer's outbox, or filed here against
    /// this institution's own record): the record is marked disputed at once. Idempotent.
    pub(crate) async fn receive(&self, from: &str, mut d: Dispute) -> Result<Dispute, DisputeError> {
        if d.furnisher != self.me() {
            return Err(DisputeError::Invalid(
                "record",
                format!("{} is not furnished by {}", convert::record_name(&d.furnisher, &d.record_id), self.me()),
            ));
        }
        if d.filer != from {
            return Err(DisputeError::NotAllowed(format!("{from} may only deliver its own disputes")));
        }
        let key = d.key();
        let mkey = mark_key(&d.subject_id, &d.furnisher, &d.record_id);
        for _ in 0..CAS_ATTEMPTS {
            if let Some((held, _)) = self.load(&key).await? {
                return Ok(held);
            }
            let now = self.life.clock.now();
            let name = convert::record_name(&d.furnisher, &d.record_id);
            let Some(stored) = self.life.store.get(&d.furnisher, &d.record_id).await? else {
                return Err(DisputeError::NotFound(format!("{name} not found")));
            };
            if self.life.retention.record_expired(&stored.record, now.date_naive()) {
                return Err(DisputeError::NotFound(format!("{name} not found")));
            }
            if stored.record.subject_id != d.subject_id {
                // Says nothing of the record: not whose it is, not what it holds.
                return Err(DisputeError::Invalid("subject_id", "does not match the disputed record's subject".into()));
            }
            let current = self.life.store.state_get(Space::Mark, &mkey).await?;
            let mut mark = match &current {
                Some(b) => decode::<RecordMark>(&mkey, b)?,
                None => RecordMark {
                    mark: DisputeMark { state: MarkState::Disputed, statement: String::new() },
                    open: Vec::new(),
                    deadline: None,
                },
            };
            d.status = DisputeStatus::Open;
            d.deadline = Some(self.life.retention.dispute_deadline(d.filed));
            d.suppression_logged = false;
            mark.mark.state = MarkState::Disputed;
            if !d.statement.is_empty() {
                mark.mark.statement = d.statement.clone();
            }
            mark.open.push(key.clone());
            mark.deadline = [mark.deadline, d.deadline].into_iter().flatten().min();
            let change = StateChange {
                expect: vec![(Space::Dispute, key.clone(), None), (Space::Mark, mkey.clone(), current)],
                put: vec![
                    (Space::Dispute, key.clone(), Some(encode(&d))),
                    (Space::Mark, mkey.clone(), Some(encode(&mark))),
                ],
                entries: vec![self.entry(Action::DisputeReceived, &d, &d.filer, self.me(), "record_marked_disputed")],
            };
            if self.life.store.state_write(change).await? {
                self.life.store.sync().await?;
                info!(dispute = %d.id, filer = %d.filer, record = %d.record_id, "dispute received; record marked disputed");
                return Ok(d);
            }
        }
        Err(StoreError::Unavailable("the dispute's record kept changing; try again".into()).into())
    }

    /// Every dispute this node holds about `subject` (filed here or received here).
    pub(crate) async fn about(&self, subject: &str) -> Result<Vec<Dispute>, StoreError> {
        let mut out = Vec::new();
        for (key, bytes) in self.life.scan_all(Space::Dispute, "").await? {
            let d: Dispute = decode(&key, &bytes)?;
            if d.subject_id == subject {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Disputes against this institution's records, oldest key first, after `after`.
    pub(crate) async fn list_against_us(
        &self,
        include_resolved: bool,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Dispute>, Option<String>), DisputeError> {
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let page = self.life.store.state_scan(Space::Dispute, "", cursor.as_deref(), 256).await?;
            let full = page.len() == 256;
            for (key, bytes) in page {
                cursor = Some(key.clone());
                let d: Dispute = decode(&key, &bytes)?;
                if d.furnisher == self.me() && (include_resolved || !d.status.is_final()) {
                    out.push(d);
                    if out.len() == limit {
                        return Ok((out, cursor));
                    }
                }
            }
            if !full {
                return Ok((out, None));
            }
        }
    }

    /// Resolves a dispute against this institution's record, with every other open dispute on
    /// the same record; tells each filer through the outbox.
    pub(crate) async fn resolve(
        &self,
        filer: &str,
        id: &str,
        resolution: Resolution,
        corrected: Option<CreditRecord>,
    ) -> Result<Dispute, DisputeError> {
        let d = self.get(filer, id).await?;
        if d.furnisher != self.me() {
            return Err(DisputeError::NotAllowed(format!(
                "only {}'s applications resolve disputes of its records",
                d.furnisher
            )));
        }
        if d.status.is_final() {
            return Ok(d);
        }
        let now = self.life.clock.now();
        // The record changes first (its own logged write); the dispute state then says so.
        let mut corrected_version = 0;
        match resolution {
            Resolution::Verified => {}
            Resolution::Corrected => {
                let Some(mut r) = corrected else {
                    return Err(DisputeError::Invalid(
                        "corrected_record",
                        "is required to resolve as CORRECTED".into(),
                    ));
                };
                if r.record_id != d.record_id || r.subject_id != d.subject_id {
                    return Err(DisputeError::Invalid(
                        "corrected_record",
                        "must keep the disputed record's id and subject".into(),
                    ));
                }
                r.furnisher = self.me().to_owned();
                match self.life.store.correct(r, now).await? {
                    Some(a) if a.applied == Applied::Replaced => corrected_version = a.stored_version,
                    Some(_) => {
                        return Err(DisputeError::Invalid(
                            "corrected_record.version",
                            "must be higher than the stored version".into(),
                        ))
                    }
                    None => {
                        return Err(DisputeError::NotFound(format!(
                            "{} not found",
                            convert::record_name(&d.furnisher, &d.record_id)
                        )))
                    }
                }
            }
            Resolution::Deleted => {
                self.life.store.delete(&d.furnisher, &d.record_id, "dispute_resolved", "", now).await?;
            }
        }
        let mkey = mark_key(&d.subject_id, &d.furnisher, &d.record_id);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.life.store.state_get(Space::Mark, &mkey).await?;
            let mark: Option<RecordMark> = current.as_deref().map(|b| decode(&mkey, b)).transpose()?;
            let mut keys = mark.as_ref().map(|m| m.open.clone()).unwrap_or_default();
            if !keys.contains(&d.key()) {
                keys.push(d.key());
            }
            let mut change =
                StateChange { expect: vec![(Space::Mark, mkey.clone(), current.clone())], ..Default::default() };
            let mut statement = String::new();
            let mut resolved_here = None;
            for key in &keys {
                let Some((mut one, bytes)) = self.load(key).await? else { continue };
                if one.status.is_final() {
                    continue;
                }
                if !one.statement.is_empty() {
                    statement = one.statement.clone();
                }
                one.status = resolution.status();
                one.resolved = Some(now);
                one.corrected_version = corrected_version;
                change.expect.push((Space::Dispute, key.clone(), Some(bytes)));
                change.put.push((Space::Dispute, key.clone(), Some(encode(&one))));
                change.entries.push(self.entry(
                    Action::DisputeResolved,
                    &one,
                    self.me(),
                    &one.filer,
                    format!("resolved:{}", one.status.as_str()),
                ));
                if one.filer != self.me() {
                    let outbox = format!("{:020}-{key}", now.timestamp_micros().max(0));
                    let q = Queued {
                        to: one.filer.clone(),
                        kind: Kind::Resolved,
                        about: key.clone(),
                        change: String::new(),
                    };
                    change.put.push((Space::Outbox, outbox, Some(encode(&q))));
                }
                if key == &d.key() {
                    resolved_here = Some(one);
                }
            }
            // The flag after the investigation (Metro 2): verified with a statement is XC (the
            // subject disagrees, the statement stays), otherwise XH; a deleted record has none.
            let new_mark = match resolution {
                Resolution::Deleted => None,
                Resolution::Verified if !statement.is_empty() => Some(RecordMark {
                    mark: DisputeMark { state: MarkState::CompletedSubjectDisagrees, statement },
                    open: Vec::new(),
                    deadline: None,
                }),
                _ => Some(RecordMark {
                    mark: DisputeMark { state: MarkState::PreviouslyDisputed, statement: String::new() },
                    open: Vec::new(),
                    deadline: None,
                }),
            };
            change.put.push((Space::Mark, mkey.clone(), new_mark.as_ref().map(encode)));
            let Some(resolved) = resolved_here else {
                return self.get(filer, id).await; // resolved concurrently
            };
            if self.life.store.state_write(change).await? {
                self.life.store.sync().await?;
                self.wake.notify_one();
                info!(dispute = %id, record = %d.record_id, resolution = resolved.status.as_str(), "dispute resolved");
                return Ok(resolved);
            }
        }
        Err(StoreError::Unavailable("the dispute kept changing; try again".into()).into())
    }

    /// The furnisher's resolution of a dispute this node filed arrives. Idempotent.
    pub(crate) async fn resolution_arrived(&self, from: &str, r: Dispute) -> Result<Dispute, DisputeError> {
        if r.filer != self.me() {
            return Err(DisputeError::Invalid("name", format!("{} did not file this dispute", self.me())));
        }
        for _ in 0..CAS_ATTEMPTS {
            let (mut d, bytes) = self.load(&r.key()).await?.ok_or_else(|| {
                DisputeError::NotFound(format!("{} not found", convert::dispute_name(&r.filer, &r.id)))
            })?;
            if d.furnisher != from {
                return Err(DisputeError::NotAllowed(format!("only {} resolves this dispute", d.furnisher)));
            }
            if d.status.is_final() {
                return Ok(d);
            }
            if !r.status.is_final() {
                return Err(DisputeError::Invalid(
                    "status",
                    "a resolution must be VERIFIED, CORRECTED or DELETED".into(),
                ));
            }
            d.status = r.status;
            d.resolved = r.resolved.or(Some(self.life.clock.now()));
            d.corrected_version = r.corrected_version;
            d.deadline = d.deadline.or(r.deadline);
            let change = StateChange {
                expect: vec![(Space::Dispute, d.key(), Some(bytes))],
                put: vec![(Space::Dispute, d.key(), Some(encode(&d)))],
                entries: vec![self.entry(
                    Action::DisputeReceived,
                    &d,
                    from,
                    self.me(),
                    format!("resolved:{}", d.status.as_str()),
                )],
            };
            if self.life.store.state_write(change).await? {
                self.life.store.sync().await?;
                return Ok(d);
            }
        }
        Err(StoreError::Unavailable("the dispute kept changing; try again".into()).into())
    }

    /// One delivery attempt of an outbox entry, and what follows from its answer.
    async fn attempt(&self, outbox: &str, q: &Queued, timeout: Duration) -> Result<Delivery, StoreError> {
        if q.kind == Kind::Protection {
            let notice = self.protection_notice(q).await?;
            return Ok(match self.peers.deliver(&q.to, notice, timeout).await {
                Ok(_) => {
                    self.protection_acknowledged(outbox, q).await?;
                    Delivery::Acknowledged
                }
                Err(s) if matches!(s.code(), Code::InvalidArgument | Code::PermissionDenied) => {
                    warn!(to = %q.to, code = ?s.code(), error = %s.message(), "protection notice refused; dropped");
                    self.drop_entry(outbox).await?;
                    Delivery::Refused(s.code(), s.message().to_owned())
                }
                Err(s) => Delivery::Later(format!("{:?}: {}", s.code(), s.message())),
            });
        }
        let Some((d, _)) = self.load(&q.about).await? else {
            // The dispute is gone (refused at once): the entry has nothing to deliver.
            self.drop_entry(outbox).await?;
            return Ok(Delivery::Later("no such dispute".into()));
        };
        let body = convert::dispute_to_pb(&d, self.life.clock.now());
        let notice = pb::Notice {
            body: Some(match q.kind {
                Kind::Filed => pb::notice::Body::DisputeFiled(body),
                Kind::Resolved | Kind::Protection => pb::notice::Body::DisputeResolved(body),
            }),
        };
        let outcome = match self.peers.deliver(&q.to, notice, timeout).await {
            Ok(receipt) => {
                self.acknowledged(outbox, q, &receipt).await?;
                Delivery::Acknowledged
            }
            Err(s)
                if matches!(
                    s.code(),
                    Code::NotFound | Code::InvalidArgument | Code::PermissionDenied | Code::FailedPrecondition
                ) =>
            {
                Delivery::Refused(s.code(), s.message().to_owned())
            }
            Err(s) => Delivery::Later(format!("{:?}: {}", s.code(), s.message())),
        };
        match &outcome {
            Delivery::Refused(code, message) if q.kind == Kind::Resolved => {
                // The filer no longer knows the dispute: nothing more to tell it.
                warn!(dispute = %d.id, to = %q.to, code = ?code, error = %message, "resolution notice refused; dropped");
                self.drop_entry(outbox).await?;
            }
            _ => {}
        }
        Ok(outcome)
    }

    pub(super) async fn drop_entry(&self, outbox: &str) -> Result<(), StoreError> {
        if let Some(bytes) = self.life.store.state_get(Space::Outbox, outbox).await? {
            let mut e = Entry::new(Action::DisputeRejected, self.me(), "notice_dropped");
            e.time = self.life.clock.now();
            e.detail = outbox.to_owned();
            let change = StateChange {
                expect: vec![(Space::Outbox, outbox.to_owned(), Some(bytes))],
                put: vec![(Space::Outbox, outbox.to_owned(), None)],
                entries: vec![e],
            };
            self.life.store.state_write(change).await?;
        }
        Ok(())
    }

    /// The peer took the notice: the entry leaves the outbox; for a filing, this node's copy
    /// takes the furnisher's state (open, with its deadline). Logged once.
    async fn acknowledged(&self, outbox: &str, q: &Queued, receipt: &pb::NoticeReceipt) -> Result<(), StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(entry) = self.life.store.state_get(Space::Outbox, outbox).await? else { return Ok(()) };
            let Some((mut d, bytes)) = self.load(&q.about).await? else { return Ok(()) };
            let (outcome, put_dispute) = match q.kind {
                Kind::Filed => {
                    if let Some(theirs) = receipt.dispute.as_ref().and_then(|p| convert::dispute_from_pb(p).ok()) {
                        if !d.status.is_final() {
                            d.status = theirs.status;
                            d.resolved = theirs.resolved;
                            d.corrected_version = theirs.corrected_version;
                        }
                        d.deadline = theirs.deadline;
                    } else if d.status == DisputeStatus::PendingDelivery {
                        d.status = DisputeStatus::Open;
                    }
                    ("acknowledged", true)
                }
                Kind::Resolved | Kind::Protection => ("resolution_acknowledged", false),
            };
            let mut change = StateChange {
                expect: vec![
                    (Space::Outbox, outbox.to_owned(), Some(entry)),
                    (Space::Dispute, q.about.clone(), Some(bytes)),
                ],
                put: vec![(Space::Outbox, outbox.to_owned(), None)],
                entries: vec![self.entry(Action::DisputeForwarded, &d, self.me(), &q.to, outcome)],
            };
            if put_dispute {
                change.put.push((Space::Dispute, q.about.clone(), Some(encode(&d))));
            }
            if self.life.store.state_write(change).await? {
                self.life.store.sync().await?;
                info!(dispute = %d.id, to = %q.to, outcome, "notice delivered");
                return Ok(());
            }
        }
        Ok(())
    }

    /// A filing refused when delivered later: the dispute is REJECTED with the reason.
    async fn rejected(&self, outbox: &str, q: &Queued, code: Code, message: &str) -> Result<(), StoreError> {
        let Some(entry) = self.life.store.state_get(Space::Outbox, outbox).await? else { return Ok(()) };
        let Some((mut d, bytes)) = self.load(&q.about).await? else { return Ok(()) };
        d.status = DisputeStatus::Rejected;
        d.rejection = format!("{code:?}: {message}").chars().take(500).collect();
        let change = StateChange {
            expect: vec![
                (Space::Outbox, outbox.to_owned(), Some(entry)),
                (Space::Dispute, q.about.clone(), Some(bytes)),
            ],
            put: vec![(Space::Outbox, outbox.to_owned(), None), (Space::Dispute, q.about.clone(), Some(encode(&d)))],
            entries: vec![self.entry(Action::DisputeRejected, &d, self.me(), &q.to, format!("refused:{code:?}"))],
        };
        self.life.store.state_write(change).await?;
        self.life.store.sync().await
    }

    /// Tries every outbox entry that is due; returns how many are still waiting.
    pub(crate) async fn deliver_due(&self) -> Result<usize, StoreError> {
        let entries = self.life.store.state_scan(Space::Outbox, "", None, 1000).await?;
        let now = tokio::time::Instant::now();
        let mut waiting = 0;
        for (key, bytes) in entries {
            let due = self.backoff.lock().unwrap_or_else(|p| p.into_inner()).get(&key).is_none_or(|(_, at)| *at <= now);
            if !due {
                waiting += 1;
                continue;
            }
            let q: Queued = decode(&key, &bytes)?;
            match self.attempt(&key, &q, ATTEMPT).await? {
                Delivery::Acknowledged => {
                    self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                }
                Delivery::Refused(code, message) => {
                    if q.kind == Kind::Filed {
                        self.rejected(&key, &q, code, &message).await?;
                    }
                    self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                }
                Delivery::Later(why) => {
                    waiting += 1;
                    let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
                    let (n, _) = b.get(&key).copied().unwrap_or((0, now));
                    let wait = RETRY_MIN.saturating_mul(1 << n.min(16)).min(self.retry_max);
                    b.insert(key.clone(), (n + 1, tokio::time::Instant::now() + wait));
                    if n == 0 || n % 10 == 0 {
                        warn!(to = %q.to, notice = %key, attempts = n + 1, retry_ms = wait.as_millis() as u64, error = %why, "notice not delivered; will retry");
                    }
                }
            }
        }
        Ok(waiting)
    }

    /// At the furnisher: logs once each dispute whose deadline passed unresolved (its record is
    /// suppressed from then on, by the read rules). Returns how many were logged.
    pub(crate) async fn sweep(&self) -> Result<usize, StoreError> {
        let now = self.life.clock.now();
        let mut logged = 0;
        for (key, bytes) in self.life.scan_all(Space::Dispute, "").await? {
            let mut d: Dispute = decode(&key, &bytes)?;
            if d.furnisher != self.me() || !d.overdue(now) || d.suppression_logged {
                continue;
            }
            d.suppression_logged = true;
            let change = StateChange {
                expect: vec![(Space::Dispute, key.clone(), Some(bytes))],
                put: vec![(Space::Dispute, key.clone(), Some(encode(&d)))],
                entries: vec![self.entry(Action::DisputeSuppressed, &d, self.me(), &d.filer, "deadline_passed")],
            };
            if self.life.store.state_write(change).await? {
                warn!(dispute = %d.id, record = %d.record_id, "dispute unresolved at its deadline: record suppressed until resolved");
                logged += 1;
            }
        }
        if logged > 0 {
            self.life.store.sync().await?;
        }
        Ok(logged)
    }

    /// The outbox worker and deadline sweep: runs until dropped. Wakes when something is
    /// queued, and at least every `tick`.
    pub(crate) async fn run(self, tick: Duration) {
        loop {
            if let Err(e) = self.deliver_due().await {
                warn!(error = %e, "outbox pass failed; retrying");
            }
            if let Err(e) = self.sweep().await {
                warn!(error = %e, "dispute deadline sweep failed; retrying");
            }
            let _ = tokio::time::timeout(tick, self.wake.notified()).await;
        }
    }

    /// The notice for a queued protection change: this node's whole state for the subject now.
    async fn protection_notice(&self, q: &Queued) -> Result<pb::Notice, StoreError> {
        let (p, _) = self.life.protection(&q.about).await?;
        let notice = convert::protection_notice(&q.change, &q.about, &p, self.life.clock.now());
        Ok(pb::Notice { body: Some(pb::notice::Body::Protection(notice)) })
    }

    /// A peer took a protection notice: the entry leaves the outbox, logged once.
    async fn protection_acknowledged(&self, outbox: &str, q: &Queued) -> Result<(), StoreError> {
        let Some(entry) = self.life.store.state_get(Space::Outbox, outbox).await? else { return Ok(()) };
        let mut e = Entry::new(Action::ProtectionForwarded, self.me(), "acknowledged");
        e.time = self.life.clock.now();
        e.query_id = q.change.clone();
        e.counterparty = q.to.clone();
        e.subject_id = q.about.clone();
        let change = StateChange {
            expect: vec![(Space::Outbox, outbox.to_owned(), Some(entry))],
            put: vec![(Space::Outbox, outbox.to_owned(), None)],
            entries: vec![e],
        };
        if self.life.store.state_write(change).await? {
            self.life.store.sync().await?;
        }
        Ok(())
    }
}
