//! A person's security freeze and fraud alert: placed or lifted through any institution's node
//! (its application attests the person's identity with a consent reference), carried to every
//! peer through the same durable outbox as disputes, and merged by each node (the latest change
//! of each kind wins), so a lift reaches a node that was down when it comes back.

use tracing::info;

use crate::{
    app::{
        answer::{check_consent, QueryRefusal},
        disputes::{DisputeError, Disputes, Kind, Queued},
    },
    audit::{Action, Entry},
    domain::{
        inquiry::Purpose,
        protection::{Kind as ProtectionKind, Protection},
        subject::is_valid_subject_id,
    },
    storage::{Space, StateChange, StoreError},
    wire::{convert, pb::bureau::v1 as pb},
};

/// Compare-and-set attempts before giving up on a subject that keeps changing.
const CAS_ATTEMPTS: usize = 16;

impl Disputes {
    /// Places (`active`) or lifts a freeze or alert through this node, and queues the new state
    /// for every peer. A lift through an institution that did not place it is allowed with the
    /// person's consent reference (always required here) and logged as such.
    pub(crate) async fn change_protection(
        &self,
        subject: &str,
        kind: ProtectionKind,
        active: bool,
        consent: &str,
    ) -> Result<Protection, DisputeError> {
        if !is_valid_subject_id(subject) {
            return Err(QueryRefusal::Invalid("subject_id", "must be 64 lowercase hex characters").into());
        }
        check_consent(Purpose::SubjectRequest, consent)?;
        for _ in 0..CAS_ATTEMPTS {
            let (mut p, bytes) = self.life.protection(subject).await?;
            let now = self.life.clock.now();
            let placed_by = p.set(kind, active, now, self.me());
            let change_id = uuid::Uuid::new_v4().to_string();
            let verb = if active { "placed" } else { "lifted" };
            let mut e = Entry::new(Action::ProtectionChanged, self.me(), format!("{}_{verb}", kind.as_str()));
            e.time = now;
            e.query_id = change_id.clone();
            e.subject_id = subject.to_owned();
            e.consent_reference = consent.to_owned();
            e.purpose = Some(Purpose::SubjectRequest);
            e.detail = match (&placed_by, active) {
                (Some(by), false) if by != self.me() => {
                    format!("placed by {by}; lifted through {} with the person's consent", self.me())
                }
                (Some(by), _) => format!("placed by {by}"),
                (None, _) => String::new(),
            };
            let mut change = StateChange {
                expect: vec![(Space::Protection, subject.to_owned(), bytes)],
                put: vec![(Space::Protection, subject.to_owned(), Some(p.encode()))],
                entries: vec![e],
            };
            for (n, peer) in self.peers.ids().into_iter().enumerate() {
                let key = format!("{:020}-p{n}-{change_id}", now.timestamp_micros().max(0));
                let q =
                    Queued { to: peer, kind: Kind::Protection, about: subject.to_owned(), change: change_id.clone() };
                change.put.push((Space::Outbox, key, Some(serde_json::to_vec(&q).expect("queued serialises"))));
            }
            if self.life.store.state_write(change).await? {
                self.life.store.sync().await?;
                self.wake.notify_one();
                info!(subject, kind = kind.as_str(), active, "protection changed; peers are told through the outbox");
                return Ok(p);
            }
        }
        Err(StoreError::Unavailable("the person's protections kept changing; try again".into()).into())
    }

    /// A peer's protection state arrives: merged (the latest change of each kind wins) and
    /// logged, whether or not it changed anything here.
    pub(crate) async fn protection_arrived(
        &self,
        from: &str,
        n: &pb::ProtectionNotice,
    ) -> Result<Protection, DisputeError> {
        let theirs = convert::protection_from_notice(n).map_err(|(f, why)| DisputeError::Invalid(f, why.into()))?;
        if !crate::app::answer::is_valid_query_id(&n.change_id) {
            return Err(DisputeError::Invalid("change_id", "must be 1 to 64 of [A-Za-z0-9-]".into()));
        }
        for _ in 0..CAS_ATTEMPTS {
            let (mut p, bytes) = self.life.protection(&n.subject_id).await?;
            let changed = p.merge(&theirs);
            let mut e =
                Entry::new(Action::ProtectionReceived, from, if changed { "applied" } else { "already_current" });
            e.time = self.life.clock.now();
            e.query_id = n.change_id.clone();
            e.counterparty = self.me().to_owned();
            e.subject_id = n.subject_id.clone();
            e.detail = format!("frozen={} fraud_alert={}", p.frozen(), p.alert_active(self.life.clock.now()));
            let change = StateChange {
                expect: vec![(Space::Protection, n.subject_id.clone(), bytes)],
                put: if changed { vec![(Space::Protection, n.subject_id.clone(), Some(p.encode()))] } else { vec![] },
                entries: vec![e],
            };
            if self.life.store.state_write(change).await? {
                self.life.store.sync().await?;
                if changed {
                    info!(subject = %n.subject_id, from, frozen = p.frozen(), "protection change applied");
                }
                return Ok(p);
            }
        }
        Err(StoreError::Unavailable("the person's protections kept changing; try again".into()).into())
    }
}
