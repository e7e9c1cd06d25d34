//! What a peer's notice must be before any of it is taken: every time it sends within this
//! node's clock's [`Window`] (a notice waits at most [`MAX_NOTICE_DELAY`] in an outbox, a peer's
//! clock runs at most [`CLOCK_SKEW`] ahead), and every change it tells of made through the
//! sending node itself. Pure functions of the notice, the sender (from its certificate) and the
//! clock, so `testkit::fuzz::deliver_notice` drives them without a node.
//!
//! [`MAX_NOTICE_DELAY`]: crate::domain::peer_time::MAX_NOTICE_DELAY
//! [`CLOCK_SKEW`]: crate::domain::peer_time::CLOCK_SKEW

use chrono::{DateTime, Utc};

use crate::{
    app::answer::is_valid_query_id,
    domain::{
        dispute::{plausible_deadline, Dispute, DisputeStatus},
        peer_time::{TimeProblem, Window},
        protection::{Change, Kind, Protection},
        retention::Retention,
    },
    net::identity::is_valid_member_id,
    wire::{convert, pb::bureau::v1 as pb},
};

/// Why a peer's notice is refused. Disputes and protections turn it into their own errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoticeProblem {
    /// A field that fails a check: (field, why). INVALID_ARGUMENT.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    /// A value the sender may not assert, such as a change through another institution:
    /// (field, why).
    #[error("{0} {1}")]
    NotSender(&'static str, String),
}

/// A dispute as the furnisher's node (`me`) takes it from `from` at `now`: delivered by its
/// filer, against a record of `me`, filed within [`Window::around`] `now`, with a deadline
/// (from the filing, checked) still ahead. Only what identifies the filing is taken; its state
/// is this node's to set: open, with that deadline.
pub(crate) fn check_filing(
    from: &str,
    me: &str,
    now: DateTime<Utc>,
    retention: &Retention,
    d: Dispute,
) -> Result<Dispute, NoticeProblem> {
    if d.furnisher != me {
        return Err(NoticeProblem::Invalid(
            "record",
            format!("{} is not furnished by {me}", convert::record_name(&d.furnisher, &d.record_id)),
        ));
    }
    if d.filer != from {
        return Err(NoticeProblem::NotSender("filer", format!("{from} may only deliver its own disputes")));
    }
    Window::around(now).check(d.filed).map_err(|p| NoticeProblem::Invalid("file_time", p.to_string()))?;
    let deadline = retention.dispute_deadline(d.filed).filter(|t| *t > now).ok_or_else(|| {
        NoticeProblem::Invalid("file_time", "leaves no time to answer: the deadline it starts has passed".into())
    })?;
    Ok(Dispute {
        status: DisputeStatus::Open,
        deadline: Some(deadline),
        resolved: None,
        corrected_version: 0,
        rejection: String::new(),
        suppression_logged: false,
        ..d
    })
}

/// A furnisher's resolution `r` of a dispute filed at `filed`, as the filer takes it at `now`:
/// resolved within [`Window::around`] `now` and not before the filing; a deadline, if sent,
/// plausible for that filing.
pub(crate) fn check_resolution(now: DateTime<Utc>, filed: DateTime<Utc>, r: &Dispute) -> Result<(), NoticeProblem> {
    if let Some(t) = r.resolved {
        Window::around(now).check(t).map_err(|p| NoticeProblem::Invalid("resolve_time", p.to_string()))?;
        if t < filed {
            return Err(NoticeProblem::Invalid("resolve_time", "must not be before the dispute was filed".into()));
        }
    }
    if r.deadline.is_some_and(|t| !plausible_deadline(filed, t)) {
        return Err(NoticeProblem::Invalid("deadline", "must lie within a year after the dispute was filed".into()));
    }
    Ok(())
}

/// Both kinds, in the order notices carry them.
pub(crate) const KINDS: [Kind; 2] = [Kind::SecurityFreeze, Kind::FraudAlert];

/// A peer's protection notice, decoded and checked against this node's clock at `now`: every
/// time within [`Window::around`] `now` (a lift's placement may lie further back, never ahead),
/// and every change made through `from`, the sending node's institution (from its certificate).
pub(crate) fn check_notice(
    from: &str,
    now: DateTime<Utc>,
    n: &pb::ProtectionNotice,
) -> Result<Protection, NoticeProblem> {
    let theirs = convert::protection_from_notice(n).map_err(|(f, why)| NoticeProblem::Invalid(f, why.into()))?;
    if !is_valid_query_id(&n.change_id) {
        return Err(NoticeProblem::Invalid("change_id", "must be 1 to 64 of [A-Za-z0-9-]".into()));
    }
    let window = Window::around(now);
    for (kind, change) in KINDS.into_iter().zip([&theirs.freeze, &theirs.alert]) {
        if let Some(c) = change {
            check_change(from, &window, kind, c)?;
        }
    }
    Ok(theirs)
}

/// The notice's fields for one kind: when it changed, through whom, who placed it and when.
fn fields(kind: Kind) -> [&'static str; 4] {
    match kind {
        Kind::SecurityFreeze => {
            ["freeze_changed", "freeze_changed_by", "protection.freeze_placed_by", "protection.freeze_time"]
        }
        Kind::FraudAlert => {
            ["alert_changed", "alert_changed_by", "protection.alert_placed_by", "protection.alert_expire_time"]
        }
    }
}

/// One kind's change as `from` may tell it within `window`.
pub(crate) fn check_change(from: &str, window: &Window, kind: Kind, c: &Change) -> Result<(), NoticeProblem> {
    let [changed, changed_by, placed_by, placed_at] = fields(kind);
    let time = |field: &'static str, p: TimeProblem| NoticeProblem::Invalid(field, p.to_string());
    window.check(c.at).map_err(|p| time(changed, p))?;
    let not_sender = |field: &'static str, named: &str| {
        NoticeProblem::NotSender(field, format!("names {named:?}, but the notice comes from {from}"))
    };
    if c.by != from {
        return Err(not_sender(changed_by, &c.by));
    }
    if c.active {
        // A placement: through the sender, at the change's time.
        if c.placed_by != from {
            return Err(not_sender(placed_by, &c.placed_by));
        }
        window.check(c.placed_at).map_err(|p| time(placed_at, p))?;
    } else {
        // A lift keeps who placed it and when, which may lie long past but never ahead.
        window.not_future(c.placed_at).map_err(|p| time(placed_at, p))?;
    }
    if c.placed_at > c.at {
        return Err(NoticeProblem::Invalid(placed_at, "must not be after the change".into()));
    }
    Ok(())
}

/// A freeze a peer refused a hard inquiry for, as this node may adopt it: in force, placed
/// through a plausible institution, not ahead of this node's clock (an old one is harmless: the
/// latest change wins). Says what is wrong otherwise.
pub(crate) fn check_adopted(now: DateTime<Utc>, c: &Change) -> Result<(), String> {
    let window = Window::around(now);
    if !c.active {
        return Err("the refusal's freeze is not in force".into());
    }
    window.not_future(c.at).map_err(|p| format!("its change time {p}"))?;
    window.not_future(c.placed_at).map_err(|p| format!("its placement time {p}"))?;
    if c.placed_at > c.at {
        return Err("it was placed after it changed".into());
    }
    if !is_valid_member_id(&c.by) || !is_valid_member_id(&c.placed_by) {
        return Err("it names no valid institution".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::{
        dispute::DisputeReason,
        retention::{Profile, Retention},
    };

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn filing(filed: DateTime<Utc>) -> Dispute {
        Dispute {
            id: "0123456789abcdef01234567".into(),
            filer: "payapp".into(),
            furnisher: "bank".into(),
            record_id: "r-1".into(),
            subject_id: "ab".repeat(32),
            reason: DisputeReason::NotMine,
            statement: String::new(),
            status: DisputeStatus::PendingDelivery,
            filed,
            deadline: Some(DateTime::<Utc>::MIN_UTC),
            resolved: Some(filed),
            corrected_version: 9,
            rejection: "x".into(),
            suppression_logged: true,
        }
    }

    #[test]
    fn a_filing_is_taken_only_within_the_window_and_with_its_deadline_ahead() {
        let pbc = Retention::of(Profile::Pbc);
        let taken = check_filing("payapp", "bank", now(), &pbc, filing(now() - Duration::days(6))).unwrap();
        assert_eq!(taken.deadline, Some(now() + Duration::days(14)));
        assert_eq!((taken.status, taken.resolved, taken.corrected_version), (DisputeStatus::Open, None, 0));
        for filed in [now() - Duration::days(8), now() + Duration::minutes(6), DateTime::<Utc>::MAX_UTC] {
            let e = check_filing("payapp", "bank", now(), &pbc, filing(filed)).unwrap_err();
            assert!(matches!(e, NoticeProblem::Invalid("file_time", _)), "{e:?}");
        }
        // A window as short as the notice delay would leave no time: refused, never past due.
        let short = Retention { dispute_days: 3, ..pbc };
        let e = check_filing("payapp", "bank", now(), &short, filing(now() - Duration::days(4))).unwrap_err();
        assert!(matches!(e, NoticeProblem::Invalid("file_time", _)), "{e:?}");
        let e = check_filing("bank2", "bank", now(), &pbc, filing(now())).unwrap_err();
        assert!(matches!(e, NoticeProblem::NotSender(_, _)), "{e:?}");
    }

    #[test]
    fn a_resolution_is_taken_only_with_believable_times() {
        let mut r = filing(now() - Duration::days(3));
        r.deadline = Some(now() + Duration::days(17));
        r.resolved = Some(now());
        assert!(check_resolution(now(), r.filed, &r).is_ok());
        r.resolved = Some(now() + Duration::days(1));
        assert!(matches!(check_resolution(now(), r.filed, &r), Err(NoticeProblem::Invalid("resolve_time", _))));
        r.resolved = None;
        r.deadline = Some(r.filed - Duration::seconds(1));
        assert!(matches!(check_resolution(now(), r.filed, &r), Err(NoticeProblem::Invalid("deadline", _))));
    }

    fn told(p: &Protection) -> pb::ProtectionNotice {
        convert::protection_notice("change-1", &"ab".repeat(32), p, now())
    }

    #[test]
    fn a_protection_change_is_taken_only_from_its_sender_and_within_the_window() {
        let mut p = Protection::default();
        p.set(Kind::SecurityFreeze, true, DateTime::<Utc>::MIN_UTC + Duration::days(1), "payapp");
        p.set(Kind::SecurityFreeze, false, now(), "bank");
        p.set(Kind::FraudAlert, true, now() - Duration::days(1), "bank");
        // A lift keeps a placement from long ago, through another institution.
        assert_eq!(check_notice("bank", now(), &told(&p)).unwrap(), p);
        let e = check_notice("payapp", now(), &told(&p)).unwrap_err();
        assert!(matches!(e, NoticeProblem::NotSender("freeze_changed_by", _)), "{e:?}");
        let mut q = Protection::default();
        q.set(Kind::SecurityFreeze, true, now() + Duration::days(3650), "bank");
        let e = check_notice("bank", now(), &told(&q)).unwrap_err();
        assert!(matches!(e, NoticeProblem::Invalid("freeze_changed", _)), "{e:?}");
        let mut old = Protection::default();
        old.set(Kind::FraudAlert, true, now() - Duration::days(8), "bank");
        let e = check_notice("bank", now(), &told(&old)).unwrap_err();
        assert!(matches!(e, NoticeProblem::Invalid("alert_changed", _)), "{e:?}");
        // A placement through another institution, told as this sender's change.
        let mut n = told(&q);
        n.freeze_changed = Some(convert::timestamp(now()));
        n.protection.as_mut().unwrap().freeze_time = Some(convert::timestamp(now()));
        n.protection.as_mut().unwrap().freeze_placed_by = "payapp".into();
        let e = check_notice("bank", now(), &n).unwrap_err();
        assert!(matches!(e, NoticeProblem::NotSender("protection.freeze_placed_by", _)), "{e:?}");
    }

    #[test]
    fn an_adopted_freeze_is_in_force_and_not_ahead_of_the_clock() {
        let mut p = Protection::default();
        p.set(Kind::SecurityFreeze, true, now() - Duration::days(400), "payapp");
        let c = p.freeze.clone().unwrap();
        assert_eq!(check_adopted(now(), &c), Ok(()), "an old freeze is harmless: the latest change wins");
        p.set(Kind::SecurityFreeze, true, now() + Duration::hours(1), "payapp");
        assert!(check_adopted(now(), p.freeze.as_ref().unwrap()).is_err());
        p.set(Kind::SecurityFreeze, false, now(), "payapp");
        assert!(check_adopted(now(), p.freeze.as_ref().unwrap()).is_err());
    }
}
