//! A person's security freeze and fraud alert: placed or lifted through any institution's node
//! (its application attests the person's identity with a consent reference), carried to every
//! peer through the [outbox](crate::app::outbox), and merged by each node (the latest change of
//! each kind wins), so a lift reaches a node that was down when it comes back.

use tracing::{info, warn};

use crate::{
    app::{
        answer::{check_consent, is_valid_query_id, QueryRefusal},
        lifecycle::Lifecycle,
        outbox::{Courier, Kind, Outbox, Queued},
        state::{Change, Settled, State, Step},
    },
    audit::Entry,
    domain::{
        inquiry::Purpose,
        protection::{Kind as ProtectionKind, Protection},
        subject::is_valid_subject_id,
    },
    net::peers::{Refusal, RefusalReason},
    storage::StoreError,
    wire::{convert, pb::bureau::v1 as pb},
};

/// Why a protection change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtectionError {
    /// A malformed field in a peer's notice: (field, what is wrong).
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    /// Refused as a subject request would be (consent missing, a malformed subject).
    #[error(transparent)]
    Refused(#[from] QueryRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
}

/// The error when other writers kept changing the person's protections first.
fn busy() -> StoreError {
    StoreError::Unavailable("the person's protections kept changing; try again".into())
}

impl Protections {
    /// Protections over `life`, telling peers through `outbox`.
    pub(crate) fn new(life: Lifecycle, outbox: Outbox) -> Self {
        Self { state: State::new(life.store.clone()), life, outbox }
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
        let theirs = convert::protection_from_notice(n).map_err(|(f, why)| ProtectionError::Invalid(f, why.into()))?;
        if !is_valid_query_id(&n.change_id) {
            return Err(ProtectionError::Invalid("change_id", "must be 1 to 64 of [A-Za-z0-9-]".into()));
        }
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

/// Protection's notices: a person's whole state now, to every peer.
impl Courier for Protections {
    async fn notice(&self, q: &Queued) -> Result<Option<pb::Notice>, StoreError> {
        let (p, _) = self.state.get::<Protection>(&q.about).await?;
        let notice = convert::protection_notice(&q.change, &q.about, &p.unwrap_or_default(), self.life.clock.now());
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
