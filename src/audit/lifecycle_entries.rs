//! The log entries of the record lifecycle beyond queries: each step of a dispute, the outbox's
//! deliveries, and a person's freeze and fraud alert. One constructor per step, so every place
//! that logs a step writes the same fields; the bytes are those the hand-built entries always
//! had (existing logs and their Merkle leaves depend on them).

use chrono::{DateTime, Utc};

use super::{Action, Entry};
use crate::domain::{dispute::Dispute, inquiry::Purpose, protection::Kind as ProtectionKind};

impl Entry {
    /// A step of dispute `d` (`query_id` is its id): `record` is the disputed record's resource
    /// name, which the detail names with the reason and the deadline.
    fn dispute_step(
        action: Action,
        time: DateTime<Utc>,
        d: &Dispute,
        record: &str,
        (actor, counterparty): (&str, &str),
        outcome: String,
    ) -> Self {
        let mut e = Entry::new(action, actor, outcome);
        e.time = time;
        e.query_id = d.id.clone();
        e.counterparty = counterparty.to_owned();
        e.subject_id = d.subject_id.clone();
        e.detail = format!(
            "{record} reason={} deadline={}",
            d.reason.as_str(),
            d.deadline.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
        e
    }

    /// The filer's node took a filing (and queued it for the furnisher).
    pub(crate) fn dispute_filed(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        Self::dispute_step(Action::DisputeFiled, time, d, record, (&d.filer, &d.furnisher), "filed".into())
    }

    /// The furnisher's node received a filing and marked its record disputed.
    pub(crate) fn dispute_received(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        let parties = (d.filer.as_str(), d.furnisher.as_str());
        Self::dispute_step(Action::DisputeReceived, time, d, record, parties, "record_marked_disputed".into())
    }

    /// The furnisher's node resolved `d` (its status is the resolution).
    pub(crate) fn dispute_resolved(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        let outcome = format!("resolved:{}", d.status.as_str());
        Self::dispute_step(Action::DisputeResolved, time, d, record, (&d.furnisher, &d.filer), outcome)
    }

    /// The filer's node received the furnisher's resolution of `d`.
    pub(crate) fn resolution_received(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        let outcome = format!("resolved:{}", d.status.as_str());
        Self::dispute_step(Action::DisputeReceived, time, d, record, (&d.furnisher, &d.filer), outcome)
    }

    /// The furnisher's node acknowledged the filing of `d` sent from the filer's outbox.
    pub(crate) fn dispute_delivered(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        let parties = (d.filer.as_str(), d.furnisher.as_str());
        Self::dispute_step(Action::DisputeForwarded, time, d, record, parties, "acknowledged".into())
    }

    /// The filer's node acknowledged the resolution of `d` sent from the furnisher's outbox.
    pub(crate) fn resolution_delivered(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        let parties = (d.furnisher.as_str(), d.filer.as_str());
        Self::dispute_step(Action::DisputeForwarded, time, d, record, parties, "resolution_acknowledged".into())
    }

    /// The furnisher's node refused the filing of `d` with gRPC code `code` (`NotFound`, …).
    pub(crate) fn dispute_rejected(time: DateTime<Utc>, d: &Dispute, record: &str, code: &str) -> Self {
        let outcome = format!("refused:{code}");
        Self::dispute_step(Action::DisputeRejected, time, d, record, (&d.filer, &d.furnisher), outcome)
    }

    /// `d` passed its deadline unresolved at the furnisher: its record is suppressed.
    pub(crate) fn dispute_suppressed(time: DateTime<Utc>, d: &Dispute, record: &str) -> Self {
        let parties = (d.furnisher.as_str(), d.filer.as_str());
        Self::dispute_step(Action::DisputeSuppressed, time, d, record, parties, "deadline_passed".into())
    }

    /// `actor`'s outbox dropped the notice under `key` (its peer refused it for good).
    pub(crate) fn notice_dropped(time: DateTime<Utc>, actor: &str, key: &str) -> Self {
        let mut e = Entry::new(Action::DisputeRejected, actor, "notice_dropped");
        e.time = time;
        e.detail = key.to_owned();
        e
    }

    /// A freeze or alert was placed (`active`) or lifted through `actor` as change `change_id`,
    /// with the person's consent reference; the detail says who placed it (`placed_by`) and,
    /// for a lift through another institution, that the person consented to it.
    pub(crate) fn protection_changed(
        time: DateTime<Utc>,
        actor: &str,
        change_id: &str,
        subject: &str,
        consent: &str,
        (kind, active): (ProtectionKind, bool),
        placed_by: Option<&str>,
    ) -> Self {
        let verb = if active { "placed" } else { "lifted" };
        let mut e = Entry::new(Action::ProtectionChanged, actor, format!("{}_{verb}", kind.as_str()));
        e.time = time;
        e.query_id = change_id.to_owned();
        e.subject_id = subject.to_owned();
        e.consent_reference = consent.to_owned();
        e.purpose = Some(Purpose::SubjectRequest);
        e.detail = match (placed_by, active) {
            (Some(by), false) if by != actor => {
                format!("placed by {by}; lifted through {actor} with the person's consent")
            }
            (Some(by), _) => format!("placed by {by}"),
            (None, _) => String::new(),
        };
        e
    }

    /// Peer `from`'s protection change `change_id` arrived at `to`; `changed` when it changed
    /// anything there; `detail` is the state after it.
    pub(crate) fn protection_received(
        time: DateTime<Utc>,
        (from, to): (&str, &str),
        change_id: &str,
        subject: &str,
        changed: bool,
        detail: String,
    ) -> Self {
        let mut e = Entry::new(Action::ProtectionReceived, from, if changed { "applied" } else { "already_current" });
        e.time = time;
        e.query_id = change_id.to_owned();
        e.counterparty = to.to_owned();
        e.subject_id = subject.to_owned();
        e.detail = detail;
        e
    }

    /// Peer `to` acknowledged protection change `change_id` sent from `actor`'s outbox.
    pub(crate) fn protection_delivered(
        time: DateTime<Utc>,
        (actor, to): (&str, &str),
        change_id: &str,
        subject: &str,
    ) -> Self {
        let mut e = Entry::new(Action::ProtectionForwarded, actor, "acknowledged");
        e.time = time;
        e.query_id = change_id.to_owned();
        e.counterparty = to.to_owned();
        e.subject_id = subject.to_owned();
        e
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::ProtectionKind;
    use crate::{
        audit::{Action, Entry},
        domain::{
            dispute::{Dispute, DisputeReason, DisputeStatus},
            inquiry::Purpose,
        },
    };

    fn t() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn dispute() -> Dispute {
        Dispute {
            id: "0123456789abcdef01234567".into(),
            filer: "bank-a".into(),
            furnisher: "bank-b".into(),
            record_id: "r1".into(),
            subject_id: "s".repeat(64),
            reason: DisputeReason::NotMine,
            statement: "not mine".into(),
            status: DisputeStatus::Verified,
            filed: t(),
            deadline: Some(t()),
            resolved: None,
            corrected_version: 0,
            rejection: String::new(),
            suppression_logged: false,
        }
    }

    /// The entries exactly as they were built by hand before (field by field), so the
    /// constructors keep every existing log's bytes.
    fn by_hand(action: Action, d: &Dispute, actor: &str, counterparty: &str, outcome: &str) -> Entry {
        let mut e = Entry::new(action, actor, outcome);
        e.time = t();
        e.query_id = d.id.clone();
        e.counterparty = counterparty.to_owned();
        e.subject_id = d.subject_id.clone();
        e.detail = format!("REC reason={} deadline={}", d.reason.as_str(), d.deadline.unwrap().to_rfc3339());
        e
    }

    #[test]
    fn dispute_entries_keep_their_bytes() {
        let d = dispute();
        let cases = [
            (Entry::dispute_filed(t(), &d, "REC"), by_hand(Action::DisputeFiled, &d, "bank-a", "bank-b", "filed")),
            (
                Entry::dispute_received(t(), &d, "REC"),
                by_hand(Action::DisputeReceived, &d, "bank-a", "bank-b", "record_marked_disputed"),
            ),
            (
                Entry::dispute_resolved(t(), &d, "REC"),
                by_hand(Action::DisputeResolved, &d, "bank-b", "bank-a", "resolved:verified"),
            ),
            (
                Entry::resolution_received(t(), &d, "REC"),
                by_hand(Action::DisputeReceived, &d, "bank-b", "bank-a", "resolved:verified"),
            ),
            (
                Entry::dispute_delivered(t(), &d, "REC"),
                by_hand(Action::DisputeForwarded, &d, "bank-a", "bank-b", "acknowledged"),
            ),
            (
                Entry::resolution_delivered(t(), &d, "REC"),
                by_hand(Action::DisputeForwarded, &d, "bank-b", "bank-a", "resolution_acknowledged"),
            ),
            (
                Entry::dispute_rejected(t(), &d, "REC", "NotFound"),
                by_hand(Action::DisputeRejected, &d, "bank-a", "bank-b", "refused:NotFound"),
            ),
            (
                Entry::dispute_suppressed(t(), &d, "REC"),
                by_hand(Action::DisputeSuppressed, &d, "bank-b", "bank-a", "deadline_passed"),
            ),
        ];
        for (made, expected) in cases {
            assert_eq!(String::from_utf8(made.to_bytes()), String::from_utf8(expected.to_bytes()));
        }
        assert!(String::from_utf8(Entry::dispute_filed(t(), &d, "REC").to_bytes()).unwrap().contains(
            r#""outcome":"filed","record_count":0,"model_version":"","detail":"REC reason=not_mine deadline=2026-01-02T03:04:05+00:00"}"#
        ));
    }

    #[test]
    fn outbox_and_protection_entries_keep_their_bytes() {
        let json = |e: Entry| String::from_utf8(e.to_bytes()).unwrap();
        assert_eq!(
            json(Entry::notice_dropped(t(), "bank-a", "00000000000000000001-p0-c")),
            r#"{"time":"2026-01-02T03:04:05Z","action":"dispute_rejected","query_id":"","actor":"bank-a","counterparty":"","subject_id":"","purpose":null,"consent_reference":"","outcome":"notice_dropped","record_count":0,"model_version":"","detail":"00000000000000000001-p0-c"}"#
        );
        let lift = Entry::protection_changed(
            t(),
            "bank-b",
            "c1",
            "s",
            "ref-1",
            (ProtectionKind::SecurityFreeze, false),
            Some("bank-a"),
        );
        assert_eq!(lift.purpose, Some(Purpose::SubjectRequest));
        assert_eq!(
            json(lift),
            r#"{"time":"2026-01-02T03:04:05Z","action":"protection_changed","query_id":"c1","actor":"bank-b","counterparty":"","subject_id":"s","purpose":"subject_request","consent_reference":"ref-1","outcome":"freeze_lifted","record_count":0,"model_version":"","detail":"placed by bank-a; lifted through bank-b with the person's consent"}"#
        );
        let place = Entry::protection_changed(t(), "bank-b", "c2", "s", "r", (ProtectionKind::FraudAlert, true), None);
        assert_eq!((place.outcome.as_str(), place.detail.as_str()), ("alert_placed", ""));
        let own = Entry::protection_changed(t(), "a", "c3", "s", "r", (ProtectionKind::FraudAlert, false), Some("a"));
        assert_eq!((own.outcome.as_str(), own.detail.as_str()), ("alert_lifted", "placed by a"));
        assert_eq!(
            json(Entry::protection_received(
                t(),
                ("bank-a", "bank-b"),
                "c1",
                "s",
                true,
                "frozen=true fraud_alert=false".into()
            )),
            r#"{"time":"2026-01-02T03:04:05Z","action":"protection_received","query_id":"c1","actor":"bank-a","counterparty":"bank-b","subject_id":"s","purpose":null,"consent_reference":"","outcome":"applied","record_count":0,"model_version":"","detail":"frozen=true fraud_alert=false"}"#
        );
        assert_eq!(
            Entry::protection_received(t(), ("a", "b"), "c", "s", false, String::new()).outcome,
            "already_current"
        );
        assert_eq!(
            json(Entry::protection_delivered(t(), ("bank-a", "bank-b"), "c1", "s")),
            r#"{"time":"2026-01-02T03:04:05Z","action":"protection_forwarded","query_id":"c1","actor":"bank-a","counterparty":"bank-b","subject_id":"s","purpose":null,"consent_reference":"","outcome":"acknowledged","record_count":0,"model_version":"","detail":""}"#
        );
    }
}
