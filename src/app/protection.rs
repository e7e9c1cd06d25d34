//! A person's security freeze and fraud alert: placed or lifted through any institution's node
//! (its application attests the person's identity with a consent reference), carried to every
//! peer through the [outbox](crate::app::outbox), and merged by each node (the latest change of
//! each kind wins), so a lift reaches a node that was down when it comes back.

use tracing::{info, warn};

use crate::{
    app::{
        answer::{check_consent, QueryRefusal},
        lifecycle::Lifecycle,
        notice_checks::{check_adopted, check_change, check_notice, KINDS},
        outbox::{Courier, Kind, Outbox, Queued},
        state::{Change, Settled, State, Step},
    },
    audit::Entry,
    domain::{
        inquiry::Purpose,
        peer_time::Window,
        protection::{Change as ProtectionChange, Kind as ProtectionKind, Protection},
        subject::is_valid_subject_id,
    },
    net::peers::{Refusal, RefusalReason},
    storage::StoreError,
    wire::{convert, pb::bureau::v1 as pb},
};

/// Why a protection change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtectionError {
    /// A malformed field in a peer's notice, or a time outside what this node's clock allows:
    /// (field, what is wrong).
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    /// A peer's notice names another institution as the one a change went through (or a
    /// placement through another): (field, what is wrong). A node tells only its own changes.
    #[error("{0} {1}")]
    NotSender(&'static str, String),
    /// Refused as a subject request would be (consent missing, a malformed subject).
    #[error(transparent)]
    Refused(#[from] QueryRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::app::notice_checks::NoticeProblem> for ProtectionError {
    fn from(p: crate::app::notice_checks::NoticeProblem) -> Self {
        use crate::app::notice_checks::NoticeProblem;
        match p {
            NoticeProblem::Invalid(field, why) => Self::Invalid(field, why),
            NoticeProblem::NotSender(field, why) => Self::NotSender(field, why),
        }
    }
}

/// A node's side of people's protections: changes through this node and those arriving from
/// peers; one user of the outbox. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Protections {
    /// Store, clock and the institution changes go through.
    life: Lifecycle,
    /// The protections, typed.
    state: State,
    /// Where notices to peers wait.
    outbox: Outbox,
    /// Verifies the person's consent token for a change.
    consents: crate::app::consent::Consents,
}

/// The error when other writers kept changing the person's protections first.
fn busy() -> StoreError {
    StoreError::Unavailable("the person's protections kept changing; try again".into())
}

impl Protections {
    /// Protections over `life`, telling peers through `outbox`.
    pub(crate) fn new(life: Lifecycle, outbox: Outbox, consents: crate::app::consent::Consents) -> Self {
        Self { state: State::new(life.store.clone()), life, outbox, consents }
    }

    fn me(&self) -> &str {
        &self.life.institution
    }

    /// Places (`active`) or lifts a freeze or alert through this node, and queues the new state
    /// for every peer. A lift through an institution that did not place it is allowed with the
    /// person's consent reference (always required here) and logged as such.
    pub(crate) async fn change(
        &self,
        subject: &str,
        kind: ProtectionKind,
        active: bool,
        consent: &str,
    ) -> Result<Protection, ProtectionError> {
        if !is_valid_subject_id(subject) {
            return Err(QueryRefusal::Invalid("subject_id", "must be 64 lowercase hex characters").into());
        }
        check_consent(Purpose::SubjectRequest, consent)?;
        let spent_on = format!("protect-{}", uuid::Uuid::new_v4());
        let asked = crate::app::consent::Asked {
            inquirer: self.me(),
            subject,
            purpose: Purpose::SubjectRequest,
            query_id: &spent_on,
            consent,
            counts_as_report: false,
        };
        self.consents.check(&asked).await.map_err(|e| match e {
            crate::app::consent::ConsentError::Refused(r) => ProtectionError::Refused(r),
            crate::app::consent::ConsentError::Store(s) => ProtectionError::Store(s),
        })?;
        let consent = &crate::net::consent_token::logged_form(consent);
        match self.state.compare_and_set(|| self.set(subject, (kind, active), consent)).await? {
            Settled::Written(p) | Settled::Unchanged(p) => {
                self.outbox.wake();
                info!(subject, kind = kind.as_str(), active, "protection changed; peers are told through the outbox");
                Ok(p)
            }
            Settled::Contended => Err(busy().into()),
        }
    }

    /// One attempt of [`Protections::change`]: the new state, its log entry and one notice per
    /// peer, in one change.
    async fn set(
        &self,
        subject: &str,
        (kind, active): (ProtectionKind, bool),
        consent: &str,
    ) -> Result<Step<Protection>, ProtectionError> {
        let (p, version) = self.state.get::<Protection>(subject).await?;
        let mut p = p.unwrap_or_default();
        let now = self.life.clock.now();
        let placed_by = p.set(kind, active, now, self.me());
        let change_id = uuid::Uuid::new_v4().to_string();
        let mut change = Change::logged(Entry::protection_changed(
            now,
            self.me(),
            &change_id,
            subject,
            consent,
            (kind, active),
            placed_by.as_deref(),
        ));
        change.expect::<Protection>(subject, &version).put(subject, &p);
        for (n, peer) in self.outbox.peers().ids().into_iter().enumerate() {
            let q = Queued { to: peer, kind: Kind::Protection, about: subject.to_owned(), change: change_id.clone() };
            Outbox::enqueue(&mut change, now, &format!("p{n}-{change_id}"), &q);
        }
        Ok(Step::Write(change, p))
    }

    /// A peer's protection state arrives: merged (the latest change of each kind wins) and
    /// logged, whether or not it changed anything here.
    pub(crate) async fn arrived(&self, from: &str, n: &pb::ProtectionNotice) -> Result<Protection, ProtectionError> {
        let theirs = check_notice(from, self.life.clock.now(), n).inspect_err(|e| {
            warn!(from, subject = %n.subject_id, change = %n.change_id, error = %e, "protection notice refused");
        })?;
        match self.state.compare_and_set(|| self.merge(from, n, &theirs)).await? {
            Settled::Written((p, changed)) | Settled::Unchanged((p, changed)) => {
                if changed {
                    info!(subject = %n.subject_id, from, frozen = p.frozen(), "protection change applied");
                }
                Ok(p)
            }
            Settled::Contended => Err(busy().into()),
        }
    }

    /// One attempt of [`Protections::arrived`]: the merged state (when it changed) and the
    /// entry that logs the arrival; true when it changed.
    async fn merge(
        &self,
        from: &str,
        n: &pb::ProtectionNotice,
        theirs: &Protection,
    ) -> Result<Step<(Protection, bool)>, ProtectionError> {
        let (p, version) = self.state.get::<Protection>(&n.subject_id).await?;
        let mut p = p.unwrap_or_default();
        let changed = p.merge(theirs);
        let now = self.life.clock.now();
        let detail = format!("frozen={} fraud_alert={}", p.frozen(), p.alert_active(now));
        let entry = Entry::protection_received(now, (from, self.me()), &n.change_id, &n.subject_id, changed, detail);
        let mut change = Change::logged(entry);
        change.expect::<Protection>(&n.subject_id, &version);
        if changed {
            change.put(&n.subject_id, &p);
        }
        Ok(Step::Write(change, (p, changed)))
    }
}

/// A freeze a peer refused a hard inquiry for, on its way to being adopted.
pub(crate) struct Adoption<'a> {
    /// The refusing peer.
    pub from: &'a str,
    /// The person.
    pub subject: &'a str,
    /// The freeze as the peer sent it, if it sent one.
    pub freeze: Option<&'a ProtectionChange>,
}

impl Protections {
    /// A peer refused a hard inquiry because a freeze stands there: its freeze is merged here
    /// as a notice's would be (the latest change of each kind wins), in one write with `log`
    /// (the scoring node's entries for the refused score, the refusal last, whose detail says
    /// what became of the freeze), so this node refuses the next hard inquiry itself. A freeze
    /// that fails [`check_adopted`] is not adopted; `log` is written all the same. True when
    /// this node's state changed.
    pub(crate) async fn adopt(&self, a: Adoption<'_>, log: Vec<Entry>) -> Result<bool, StoreError> {
        let checked = a.freeze.map(|c| check_adopted(self.life.clock.now(), c).map(|()| c.clone()));
        let (theirs, why) = match checked {
            Some(Ok(c)) => (Some(c), String::new()),
            Some(Err(why)) => (None, why),
            None => (None, "the refusal carried no freeze".into()),
        };
        let theirs = Protection { freeze: theirs, alert: None };
        match self.state.compare_and_set(|| self.take(&a, &theirs, &why, &log)).await? {
            Settled::Written(changed) | Settled::Unchanged(changed) => {
                if !why.is_empty() {
                    warn!(from = a.from, subject = a.subject, why, "a peer's freeze not adopted");
                } else if changed {
                    info!(from = a.from, subject = a.subject, "freeze adopted from a peer's refusal");
                }
                metrics::counter!("bureau_freezes_adopted_total").increment(u64::from(changed));
                Ok(changed)
            }
            Settled::Contended => Err(busy()),
        }
    }

    /// One attempt of [`Protections::adopt`].
    async fn take(
        &self,
        a: &Adoption<'_>,
        theirs: &Protection,
        why: &str,
        log: &[Entry],
    ) -> Result<Step<bool>, StoreError> {
        let (p, version) = self.state.get::<Protection>(a.subject).await?;
        let mut p = p.unwrap_or_default();
        let changed = p.merge(theirs);
        let detail = match (&theirs.freeze, changed) {
            (Some(c), true) => {
                format!("freeze adopted from {}: placed through {} at {}", a.from, c.placed_by, c.placed_at)
            }
            (Some(_), false) => format!("freeze from {} already held", a.from),
            (None, _) => format!("freeze from {} not adopted: {why}", a.from),
        };
        let mut entries = log.to_vec();
        if let Some(refusal) = entries.last_mut() {
            refusal.detail = detail;
        }
        let mut change = Change::default();
        for e in entries {
            change.log(e);
        }
        change.expect::<Protection>(a.subject, &version);
        if changed {
            change.put(a.subject, &p);
        }
        Ok(Step::Write(change, changed))
    }
}

/// Protection's notices: a person's state now, to every peer, each kind only as far as it
/// changed through this node (a peer takes no node's word for another's change).
impl Courier for Protections {
    async fn notice(&self, q: &Queued) -> Result<Option<pb::Notice>, StoreError> {
        let (p, _) = self.state.get::<Protection>(&q.about).await?;
        let mut p = p.unwrap_or_default();
        let now = self.life.clock.now();
        let window = Window::around(now);
        for kind in KINDS {
            let slot = match kind {
                ProtectionKind::SecurityFreeze => &mut p.freeze,
                ProtectionKind::FraudAlert => &mut p.alert,
            };
            if let Some(Err(e)) = slot.as_ref().map(|c| check_change(self.me(), &window, kind, c)) {
                if slot.as_ref().is_some_and(|c| c.by == self.me()) {
                    warn!(to = %q.to, subject = %q.about, kind = kind.as_str(), error = %e, "own protection change too old for a notice; not sent");
                }
                *slot = None;
            }
        }
        let notice = convert::protection_notice(&q.change, &q.about, &p, now);
        Ok(Some(pb::Notice { body: Some(pb::notice::Body::Protection(notice)) }))
    }

    fn ends(&self, r: &Refusal) -> bool {
        // A peer that cannot find or take it now may later; one that calls it malformed or
        // refuses this node will not.
        matches!(r.reason, RefusalReason::InvalidArgument { .. } | RefusalReason::PermissionDenied { .. })
    }

    async fn acknowledged(&self, outbox: &str, q: &Queued, _: &pb::NoticeReceipt) -> Result<(), StoreError> {
        let (Some(_), version) = self.outbox.entry(outbox).await? else { return Ok(()) };
        let entry = Entry::protection_delivered(self.life.clock.now(), (self.me(), &q.to), &q.change, &q.about);
        let mut change = Change::logged(entry);
        change.expect::<Queued>(outbox, &version).remove::<Queued>(outbox);
        if self.state.write(change).await? {
            self.state.sync().await?;
        }
        Ok(())
    }

    async fn refused(&self, outbox: &str, q: &Queued, r: &Refusal) -> Result<(), StoreError> {
        warn!(to = %q.to, code = r.reason.code(), error = %r.message, "protection notice refused; dropped");
        self.outbox.drop_entry(outbox).await
    }
}
