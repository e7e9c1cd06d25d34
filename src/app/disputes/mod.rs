//! Disputes across the federation. The filing node keeps its copy and queues the dispute in
//! the [outbox](crate::app::outbox) (one atomic write with the `dispute_filed` log entry), which
//! delivers it to the furnisher's node until that node acknowledges, across restarts of either;
//! the furnisher's node marks the record at once and resolves it, telling the filer through its
//! own outbox. Every step is a compare-and-set state change with its log entry, so concurrent
//! callers (or replicas on one database) never apply a step twice. No gRPC types here.

mod delivery;

use std::time::Duration;

use tracing::{info, warn};

use crate::{
    app::{
        lifecycle::Lifecycle,
        notice_checks::{check_filing, check_resolution},
        outbox::{Courier, Delivery, Kind, Outbox, Queued},
        state::{Change, Settled, State, Step, Version},
    },
    audit::Entry,
    domain::{
        dispute::{
            dispute_key, plausible_deadline, statement_problem, Dispute, DisputeMark, DisputeReason, DisputeStatus,
            MarkState, RecordMark, Resolution,
        },
        peer_time::Window,
        record::CreditRecord,
        subject::is_valid_subject_id,
    },
    net::peers::{Refusal, RefusalReason},
    storage::{mark_key, Applied, StoreError},
    wire::{convert, pb::bureau::v1 as pb},
};

/// How long a filing waits for the furnisher's node before answering PENDING_DELIVERY.
const FIRST_ATTEMPT: Duration = Duration::from_secs(2);

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
    /// Filing needs the person's consent reference and none was given.
    #[error("filing a dispute requires a consent reference")]
    ConsentRequired,
    /// The person's consent token was refused.
    #[error(transparent)]
    Consent(crate::app::answer::QueryRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::app::notice_checks::NoticeProblem> for DisputeError {
    fn from(p: crate::app::notice_checks::NoticeProblem) -> Self {
        use crate::app::notice_checks::NoticeProblem;
        match p {
            NoticeProblem::Invalid(field, why) => Self::Invalid(field, why),
            NoticeProblem::NotSender(_, why) => Self::NotAllowed(why),
        }
    }
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
    /// The person's consent reference (their identity attested by the application); required.
    pub consent_reference: String,
}

/// What every miss of a filing answers, whatever it was (no such furnisher, no such record at
/// it, a record of another person): one message, so a filing never tells the caller whether
/// another institution holds a given record about a person.
pub(crate) const NO_SUCH_RECORD: &str = "no record about this subject was found under that name";

/// True for a miss here: no such record, or another person's.
fn is_miss(e: &DisputeError) -> bool {
    matches!(e, DisputeError::NotFound(_) | DisputeError::Invalid("subject_id", _))
}

/// True for a furnisher's refusal that is a miss: no such record, or another person's.
fn refused_as_miss(r: &Refusal) -> bool {
    matches!(r.reason, RefusalReason::NotFound)
        || matches!(r.reason, RefusalReason::InvalidArgument { .. }) && r.names_field("subject_id")
}

/// A node's disputes: filing, receiving, resolving and the deadline sweep; one user of the
/// outbox. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Disputes {
    /// Store, clock and rules.
    pub life: Lifecycle,
    /// The disputes and record marks, typed.
    state: State,
    /// Where notices to peers wait.
    outbox: Outbox,
    /// Verifies the person's consent token for a filing.
    consents: crate::app::consent::Consents,
}

/// The disputed record's resource name, as log entries name it.
fn record(d: &Dispute) -> String {
    convert::record_name(&d.furnisher, &d.record_id)
}

/// The error when other writers kept moving `what` first.
fn busy(what: &str) -> StoreError {
    StoreError::Unavailable(format!("{what} kept changing; try again"))
}

impl Disputes {
    /// Disputes over `life`, telling peers through `outbox`.
    pub(crate) fn new(life: Lifecycle, outbox: Outbox, consents: crate::app::consent::Consents) -> Self {
        Self { state: State::new(life.store.clone()), life, outbox, consents }
    }

    fn me(&self) -> &str {
        &self.life.institution
    }

    /// A dispute by key, as stored, with its version for a change.
    async fn load(&self, key: &str) -> Result<(Option<Dispute>, Version), StoreError> {
        self.state.get::<Dispute>(key).await
    }

    /// Reads a dispute this node filed or received.
    pub(crate) async fn get(&self, filer: &str, id: &str) -> Result<Dispute, DisputeError> {
        match self.load(&dispute_key(filer, id)).await? {
            (Some(d), _) => Ok(d),
            (None, _) => Err(DisputeError::NotFound(format!("{} not found", convert::dispute_name(filer, id)))),
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
        if crate::app::answer::consent_malformed(&f.consent_reference) {
            return Err(DisputeError::Invalid(
                "consent_reference",
                "must be a consent token or at most 128 printable characters".into(),
            ));
        }
        if f.consent_reference.trim().is_empty() {
            return Err(DisputeError::ConsentRequired);
        }
        let local = f.furnisher == self.me();
        if !local && !self.outbox.peers().knows(&f.furnisher) {
            return Err(DisputeError::NotFound(NO_SUCH_RECORD.into()));
        }
        let id = Dispute::id_for(self.me(), &f.furnisher, &f.record_id, &f.subject_id, reason, &f.statement);
        // The person's own request: a token is spent on this dispute id, so the same filing
        // again is accepted and any other refused.
        let asked = crate::app::consent::Asked {
            inquirer: self.me(),
            subject: &f.subject_id,
            purpose: crate::domain::inquiry::Purpose::SubjectRequest,
            query_id: &id,
            consent: &f.consent_reference,
            counts_as_report: false,
        };
        self.consents.check(&asked).await.map_err(|e| match e {
            crate::app::consent::ConsentError::Refused(r) => DisputeError::Consent(r),
            crate::app::consent::ConsentError::Store(s) => DisputeError::Store(s),
        })?;
        let key = dispute_key(self.me(), &id);
        if let (Some(d), _) = self.load(&key).await? {
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
            return match self.receive(self.me(), d).await {
                Err(e) if is_miss(&e) => Err(DisputeError::NotFound(NO_SUCH_RECORD.into())),
                other => other,
            };
        }
        let queued = Queued { to: d.furnisher.clone(), kind: Kind::Filed, about: key.clone(), change: String::new() };
        let mut entry = Entry::dispute_filed(self.life.clock.now(), &d, &record(&d));
        entry.consent_reference = crate::net::consent_token::logged_form(&f.consent_reference);
        let mut filed = Change::logged(entry);
        filed.expect::<Dispute>(&key, &Version::ABSENT).put(&key, &d);
        let outbox = Outbox::enqueue(&mut filed, now, &key, &queued);
        if !self.state.write(filed).await? {
            return self.get(self.me(), &d.id).await; // filed concurrently
        }
        self.state.sync().await?;
        info!(dispute = %d.id, furnisher = %d.furnisher, "dispute filed");
        // One attempt now, so that a furnisher that refuses it answers the application directly.
        match self.outbox.attempt(self, &outbox, &queued, FIRST_ATTEMPT).await? {
            Delivery::Refused(r) => {
                self.forget_refused(&outbox, &d, &r).await?;
                // No such record and another person's record are one answer to the caller.
                Err(match r.reason {
                    RefusalReason::NotFound => DisputeError::NotFound(NO_SUCH_RECORD.into()),
                    _ if refused_as_miss(&r) => DisputeError::NotFound(NO_SUCH_RECORD.into()),
                    RefusalReason::InvalidArgument { .. } => DisputeError::Invalid("record", r.message),
                    RefusalReason::PermissionDenied { .. } | RefusalReason::FailedPrecondition { .. } => {
                        DisputeError::NotAllowed(r.message)
                    }
                })
            }
            Delivery::Acknowledged | Delivery::Later(_) => {
                self.outbox.wake();
                self.get(self.me(), &d.id).await
            }
        }
    }

    /// A filing the furnisher refused at once: forgotten (so it may be filed again once fixed),
    /// the refusal logged.
    async fn forget_refused(&self, outbox: &str, d: &Dispute, r: &Refusal) -> Result<(), StoreError> {
        let key = d.key();
        let (Some(_), version) = self.load(&key).await? else { return Ok(()) };
        let mut change = Change::logged(Entry::dispute_rejected(self.life.clock.now(), d, &record(d), r.reason.code()));
        change.expect::<Dispute>(&key, &version).remove::<Dispute>(&key).remove::<Queued>(outbox);
        self.state.write(change).await?;
        warn!(dispute = %d.id, furnisher = %d.furnisher, code = r.reason.code(), error = %r.message, "dispute refused by the furnisher's node");
        self.state.sync().await
    }

    /// A dispute arrives at the furnisher's node (from a peer's outbox, or filed here against
    /// this institution's own record): the record is marked disputed at once. Idempotent.
    pub(crate) async fn receive(&self, from: &str, d: Dispute) -> Result<Dispute, DisputeError> {
        let now = self.life.clock.now();
        let d = check_filing(from, self.me(), now, &self.life.retention, d).inspect_err(|e| {
            warn!(from, error = %e, "dispute notice refused");
        })?;
        let mkey = mark_key(&d.subject_id, &d.furnisher, &d.record_id);
        match self.state.compare_and_set(|| self.mark_disputed(&d, &mkey)).await? {
            Settled::Unchanged(held) => Ok(held),
            Settled::Written(d) => {
                info!(dispute = %d.id, filer = %d.filer, record = %d.record_id, "dispute received; record marked disputed");
                Ok(d)
            }
            Settled::Contended => Err(busy("the dispute's record").into()),
        }
    }

    /// One attempt of [`Disputes::receive`]: the dispute open with its deadline, its record's
    /// mark (under `mkey`) disputed.
    async fn mark_disputed(&self, d: &Dispute, mkey: &str) -> Result<Step<Dispute>, DisputeError> {
        let key = d.key();
        if let (Some(held), _) = self.load(&key).await? {
            return Ok(Step::Done(held));
        }
        let now = self.life.clock.now();
        let name = record(d);
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
        let (mark, mark_version) = self.state.get::<RecordMark>(mkey).await?;
        let mut mark = mark.unwrap_or(RecordMark {
            mark: DisputeMark { state: MarkState::Disputed, statement: String::new() },
            open: Vec::new(),
            deadline: None,
        });
        let d = d.clone();
        mark.mark.state = MarkState::Disputed;
        if !d.statement.is_empty() {
            mark.mark.statement = d.statement.clone();
        }
        mark.open.push(key.clone());
        mark.deadline = [mark.deadline, d.deadline].into_iter().flatten().min();
        let mut change = Change::logged(Entry::dispute_received(self.life.clock.now(), &d, &name));
        change.expect::<Dispute>(&key, &Version::ABSENT).expect::<RecordMark>(mkey, &mark_version);
        change.put(&key, &d).put(mkey, &mark);
        Ok(Step::Write(change, d))
    }

    /// Every dispute this node holds about `subject` (filed here or received here).
    pub(crate) async fn about(&self, subject: &str) -> Result<Vec<Dispute>, StoreError> {
        let all = self.state.all::<Dispute>("").await?;
        Ok(all.into_iter().map(|(_, d, _)| d).filter(|d| d.subject_id == subject).collect())
    }

    /// Disputes against this institution's records, oldest key first, after `after`.
    pub(crate) async fn list_against_us(
        &self,
        include_resolved: bool,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Dispute>, Option<String>), DisputeError> {
        const PAGE: usize = 256;
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let page = self.state.page::<Dispute>("", cursor.as_deref(), PAGE).await?;
            let full = page.len() == PAGE;
            for (key, d, _) in page {
                cursor = Some(key);
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
        let resolving = Resolving { d: &d, resolution, corrected_version, now, mkey: &mkey };
        match self.state.compare_and_set(|| self.resolve_all(&resolving)).await? {
            Settled::Written(Some(resolved)) => {
                self.outbox.wake();
                info!(dispute = %id, record = %d.record_id, resolution = resolved.status.as_str(), "dispute resolved");
                Ok(resolved)
            }
            Settled::Unchanged(_) | Settled::Written(None) => self.get(filer, id).await, // resolved concurrently
            Settled::Contended => Err(busy("the dispute").into()),
        }
    }

    /// One attempt of [`Disputes::resolve`]: every open dispute on the record resolved (each
    /// filer told through the outbox) and the record's mark set after the investigation.
    /// `None` when the dispute was resolved concurrently.
    async fn resolve_all(&self, r: &Resolving<'_>) -> Result<Step<Option<Dispute>>, DisputeError> {
        let (mark, mark_version) = self.state.get::<RecordMark>(r.mkey).await?;
        let mut keys = mark.as_ref().map(|m| m.open.clone()).unwrap_or_default();
        if !keys.contains(&r.d.key()) {
            keys.push(r.d.key());
        }
        let mut change = Change::default();
        change.expect::<RecordMark>(r.mkey, &mark_version);
        let mut statement = String::new();
        let mut resolved_here = None;
        for key in &keys {
            let (Some(mut one), version) = self.load(key).await? else { continue };
            if one.status.is_final() {
                continue;
            }
            if !one.statement.is_empty() {
                statement = one.statement.clone();
            }
            one.status = r.resolution.status();
            one.resolved = Some(r.now);
            one.corrected_version = r.corrected_version;
            change.expect::<Dispute>(key, &version).put(key, &one);
            change.log(Entry::dispute_resolved(self.life.clock.now(), &one, &record(&one)));
            if one.filer != self.me() {
                let q =
                    Queued { to: one.filer.clone(), kind: Kind::Resolved, about: key.clone(), change: String::new() };
                Outbox::enqueue(&mut change, r.now, key, &q);
            }
            if key == &r.d.key() {
                resolved_here = Some(one);
            }
        }
        // The flag after the investigation (Metro 2): verified with a statement is XC (the
        // subject disagrees, the statement stays), otherwise XH; a deleted record has none.
        let new_mark = match r.resolution {
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
        change.set(r.mkey, new_mark.as_ref());
        Ok(match resolved_here {
            Some(resolved) => Step::Write(change, Some(resolved)),
            None => Step::Done(None),
        })
    }

    /// The furnisher's resolution of a dispute this node filed arrives. Idempotent.
    pub(crate) async fn resolution_arrived(&self, from: &str, r: Dispute) -> Result<Dispute, DisputeError> {
        if r.filer != self.me() {
            return Err(DisputeError::Invalid("name", format!("{} did not file this dispute", self.me())));
        }
        match self.state.compare_and_set(|| self.take_resolution(from, &r)).await? {
            Settled::Unchanged(d) | Settled::Written(d) => Ok(d),
            Settled::Contended => Err(busy("the dispute").into()),
        }
    }

    /// One attempt of [`Disputes::resolution_arrived`].
    async fn take_resolution(&self, from: &str, r: &Dispute) -> Result<Step<Dispute>, DisputeError> {
        let (d, version) = self.load(&r.key()).await?;
        let mut d =
            d.ok_or_else(|| DisputeError::NotFound(format!("{} not found", convert::dispute_name(&r.filer, &r.id))))?;
        if d.furnisher != from {
            return Err(DisputeError::NotAllowed(format!("only {} resolves this dispute", d.furnisher)));
        }
        if d.status.is_final() {
            return Ok(Step::Done(d));
        }
        if !r.status.is_final() {
            return Err(DisputeError::Invalid("status", "a resolution must be VERIFIED, CORRECTED or DELETED".into()));
        }
        check_resolution(self.life.clock.now(), d.filed, r).inspect_err(|e| {
            warn!(from, dispute = %d.id, error = %e, "resolution notice refused");
        })?;
        d.status = r.status;
        d.resolved = r.resolved.or(Some(self.life.clock.now()));
        d.corrected_version = r.corrected_version;
        d.deadline = d.deadline.or(r.deadline);
        let mut change = Change::logged(Entry::resolution_received(self.life.clock.now(), &d, &record(&d)));
        change.expect::<Dispute>(&d.key(), &version).put(&d.key(), &d);
        Ok(Step::Write(change, d))
    }
}

/// What [`Disputes::resolve`] applies to every open dispute on the record.
struct Resolving<'a> {
    /// The dispute resolved by name.
    d: &'a Dispute,
    /// The furnisher's finding.
    resolution: Resolution,
    /// The record's version after a correction, else 0.
    corrected_version: u64,
    /// When.
    now: chrono::DateTime<chrono::Utc>,
    /// The record's mark key.
    mkey: &'a str,
}
