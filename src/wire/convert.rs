//! Conversions between the API's protobuf messages and the domain types. Enum and date checks
//! that the domain types make unrepresentable happen here, reported as field violations.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::{
    domain::dispute::{Dispute, DisputeMark, DisputeReason, DisputeStatus, MarkState, Resolution},
    domain::inquiry::{Inquiry, Purpose},
    domain::protection::{Change, Protection},
    domain::record::{AccountStatus, CreditRecord, PaymentStatus, RecordKind, Violation},
    wire::pb::{bureau::v1 as pb, google::r#type::Date},
};

/// `institutions/{furnisher}/records/{record_id}`.
pub fn record_name(furnisher: &str, record_id: &str) -> String {
    format!("institutions/{furnisher}/records/{record_id}")
}

/// Splits `institutions/{furnisher}/records/{record_id}`.
pub fn parse_record_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("institutions/")?;
    let (furnisher, rest) = rest.split_once('/')?;
    let record_id = rest.strip_prefix("records/")?;
    (!furnisher.is_empty() && !record_id.is_empty() && !record_id.contains('/')).then_some((furnisher, record_id))
}

/// Splits `subjects/{subject_id}`.
pub fn parse_subject_name(name: &str) -> Option<&str> {
    name.strip_prefix("subjects/")
}

/// A protobuf timestamp for `t`.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// The time of a protobuf timestamp, if in range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000).and_then(|n| DateTime::from_timestamp(t.seconds, n))
}

fn date_to_pb(d: NaiveDate) -> Date {
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

fn date_from_pb(d: &Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?)
}

fn kind_from_pb(v: i32) -> Option<RecordKind> {
    Some(match pb::RecordKind::try_from(v).ok()? {
        pb::RecordKind::Unspecified => return None,
        pb::RecordKind::Loan => RecordKind::Loan,
        pb::RecordKind::CreditCard => RecordKind::CreditCard,
        pb::RecordKind::Instalment => RecordKind::Instalment,
        pb::RecordKind::DepositFreeRental => RecordKind::DepositFreeRental,
        pb::RecordKind::Utility => RecordKind::Utility,
        pb::RecordKind::Guarantee => RecordKind::Guarantee,
    })
}

fn kind_to_pb(k: RecordKind) -> pb::RecordKind {
    match k {
        RecordKind::Loan => pb::RecordKind::Loan,
        RecordKind::CreditCard => pb::RecordKind::CreditCard,
        RecordKind::Instalment => pb::RecordKind::Instalment,
        RecordKind::DepositFreeRental => pb::RecordKind::DepositFreeRental,
        RecordKind::Utility => pb::RecordKind::Utility,
        RecordKind::Guarantee => pb::RecordKind::Guarantee,
    }
}

fn status_from_pb(v: i32) -> Option<AccountStatus> {
    Some(match pb::AccountStatus::try_from(v).ok()? {
        pb::AccountStatus::Unspecified => return None,
        pb::AccountStatus::Current => AccountStatus::Current,
        pb::AccountStatus::Delinquent => AccountStatus::Delinquent,
        pb::AccountStatus::ChargedOff => AccountStatus::ChargedOff,
        pb::AccountStatus::InCollection => AccountStatus::InCollection,
        pb::AccountStatus::Closed => AccountStatus::Closed,
    })
}

fn status_to_pb(s: AccountStatus) -> pb::AccountStatus {
    match s {
        AccountStatus::Current => pb::AccountStatus::Current,
        AccountStatus::Delinquent => pb::AccountStatus::Delinquent,
        AccountStatus::ChargedOff => pb::AccountStatus::ChargedOff,
        AccountStatus::InCollection => pb::AccountStatus::InCollection,
        AccountStatus::Closed => pb::AccountStatus::Closed,
    }
}

fn payment_from_pb(v: i32) -> Option<PaymentStatus> {
    Some(match pb::PaymentStatus::try_from(v).ok()? {
        pb::PaymentStatus::Unspecified => return None,
        pb::PaymentStatus::NoData => PaymentStatus::NoData,
        pb::PaymentStatus::Current => PaymentStatus::Current,
        pb::PaymentStatus::Late30 => PaymentStatus::Late30,
        pb::PaymentStatus::Late60 => PaymentStatus::Late60,
        pb::PaymentStatus::Late90 => PaymentStatus::Late90,
        pb::PaymentStatus::Late120Plus => PaymentStatus::Late120Plus,
    })
}

fn payment_to_pb(p: PaymentStatus) -> pb::PaymentStatus {
    match p {
        PaymentStatus::NoData => pb::PaymentStatus::NoData,
        PaymentStatus::Current => pb::PaymentStatus::Current,
        PaymentStatus::Late30 => pb::PaymentStatus::Late30,
        PaymentStatus::Late60 => pb::PaymentStatus::Late60,
        PaymentStatus::Late90 => pb::PaymentStatus::Late90,
        PaymentStatus::Late120Plus => pb::PaymentStatus::Late120Plus,
    }
}

/// The purpose named by a protobuf enum value; `None` for unspecified or unknown values.
pub fn purpose_from_pb(v: i32) -> Option<Purpose> {
    Some(match pb::Purpose::try_from(v).ok()? {
        pb::Purpose::Unspecified => return None,
        pb::Purpose::CreditApplication => Purpose::CreditApplication,
        pb::Purpose::AccountReview => Purpose::AccountReview,
        pb::Purpose::DepositWaiver => Purpose::DepositWaiver,
        pb::Purpose::Collections => Purpose::Collections,
        pb::Purpose::SubjectRequest => Purpose::SubjectRequest,
    })
}

/// The protobuf enum of a purpose.
pub fn purpose_to_pb(p: Purpose) -> pb::Purpose {
    match p {
        Purpose::CreditApplication => pb::Purpose::CreditApplication,
        Purpose::AccountReview => pb::Purpose::AccountReview,
        Purpose::DepositWaiver => pb::Purpose::DepositWaiver,
        Purpose::Collections => pb::Purpose::Collections,
        Purpose::SubjectRequest => pb::Purpose::SubjectRequest,
    }
}

/// Converts and validates a record received from a caller. `furnisher` replaces whatever the
/// caller put in the output-only `furnisher` field. Every violation found is returned.
pub fn record_from_pb(r: pb::CreditRecord, furnisher: &str, today: NaiveDate) -> Result<CreditRecord, Vec<Violation>> {
    let mut v = Vec::new();
    let mut date = |field: &str, d: Option<&Date>, required: bool| match d {
        None if required => {
            v.push(Violation::new(field, "is required"));
            None
        }
        None => None,
        Some(d) => {
            let parsed = date_from_pb(d);
            if parsed.is_none() {
                v.push(Violation::new(field, "must be a valid full calendar date"));
            }
            parsed
        }
    };
    let opened = date("opened_date", r.opened_date.as_ref(), true);
    let closed = date("closed_date", r.closed_date.as_ref(), false);
    let reported = date("reported_date", r.reported_date.as_ref(), true);
    let kind = kind_from_pb(r.kind);
    if kind.is_none() {
        v.push(Violation::new("kind", "must be a known RecordKind other than RECORD_KIND_UNSPECIFIED"));
    }
    let status = status_from_pb(r.status);
    if status.is_none() {
        v.push(Violation::new("status", "must be a known AccountStatus other than ACCOUNT_STATUS_UNSPECIFIED"));
    }
    let mut history = Vec::with_capacity(r.payment_history.len());
    for (i, p) in r.payment_history.iter().enumerate() {
        match payment_from_pb(*p) {
            Some(p) => history.push(p),
            None => v.push(Violation::new(
                format!("payment_history[{i}]"),
                "must be a known PaymentStatus other than PAYMENT_STATUS_UNSPECIFIED",
            )),
        }
    }
    let (Some(opened), Some(reported), Some(kind), Some(status), true) = (opened, reported, kind, status, v.is_empty())
    else {
        return Err(v);
    };
    let record = CreditRecord {
        furnisher: furnisher.to_owned(),
        record_id: r.record_id,
        subject_id: r.subject_id,
        kind,
        opened,
        closed,
        reported,
        credit_limit_minor: r.credit_limit_minor,
        balance_minor: r.balance_minor,
        currency: r.currency_code,
        status,
        days_past_due: r.days_past_due,
        payment_history: history,
        version: r.version,
        dispute: None,
    };
    let v = record.violations(today);
    if v.is_empty() {
        Ok(record)
    } else {
        Err(v)
    }
}

/// The protobuf form of a record, with its resource name and the time it was stored.
pub fn record_to_pb(r: &CreditRecord, updated: DateTime<Utc>) -> pb::CreditRecord {
    pb::CreditRecord {
        name: record_name(&r.furnisher, &r.record_id),
        furnisher: r.furnisher.clone(),
        record_id: r.record_id.clone(),
        subject_id: r.subject_id.clone(),
        kind: kind_to_pb(r.kind) as i32,
        opened_date: Some(date_to_pb(r.opened)),
        closed_date: r.closed.map(date_to_pb),
        reported_date: Some(date_to_pb(r.reported)),
        credit_limit_minor: r.credit_limit_minor,
        balance_minor: r.balance_minor,
        currency_code: r.currency.clone(),
        status: status_to_pb(r.status) as i32,
        days_past_due: r.days_past_due,
        payment_history: r.payment_history.iter().map(|p| payment_to_pb(*p) as i32).collect(),
        version: r.version,
        update_time: Some(timestamp(updated)),
        dispute_state: r.dispute.as_ref().map_or(pb::RecordDisputeState::Unspecified, |m| mark_to_pb(m.state)) as i32,
        subject_statement: r.dispute.as_ref().map(|m| m.statement.clone()).unwrap_or_default(),
    }
}

fn mark_to_pb(m: MarkState) -> pb::RecordDisputeState {
    match m {
        MarkState::Disputed => pb::RecordDisputeState::Disputed,
        MarkState::CompletedSubjectDisagrees => pb::RecordDisputeState::CompletedSubjectDisagrees,
        MarkState::PreviouslyDisputed => pb::RecordDisputeState::PreviouslyDisputed,
    }
}

fn mark_from_pb(v: i32, statement: String) -> Option<DisputeMark> {
    let state = match pb::RecordDisputeState::try_from(v).ok()? {
        pb::RecordDisputeState::Unspecified => return None,
        pb::RecordDisputeState::Disputed => MarkState::Disputed,
        pb::RecordDisputeState::CompletedSubjectDisagrees => MarkState::CompletedSubjectDisagrees,
        pb::RecordDisputeState::PreviouslyDisputed => MarkState::PreviouslyDisputed,
    };
    Some(DisputeMark { state, statement })
}

/// The stored form of a record (the storage codec is the API's wire format).
pub fn record_to_stored(r: &CreditRecord, updated: DateTime<Utc>) -> pb::CreditRecord {
    let mut pb = record_to_pb(r, updated);
    pb.name.clear(); // derived from furnisher and record id; not worth its bytes on disk
                     // The dispute flag is the node's state, kept apart from what the furnisher sent.
    pb.dispute_state = 0;
    pb.subject_statement.clear();
    pb
}

/// Reads a stored or peer-sent record back, trusting its furnisher field. Errors name the
/// first problem; stored records were validated on the way in.
pub fn record_from_stored(r: pb::CreditRecord) -> Result<CreditRecord, String> {
    let furnisher = r.furnisher.clone();
    let far_future = NaiveDate::MAX;
    let mark = mark_from_pb(r.dispute_state, r.subject_statement.clone());
    if let Some(m) = &mark {
        if let Some(why) = crate::domain::dispute::statement_problem(&m.statement) {
            return Err(format!("subject_statement: {why}"));
        }
    }
    let mut record = record_from_pb(r, &furnisher, far_future)
        .map_err(|v| v.first().map(|v| format!("{}: {}", v.field, v.description)).unwrap_or_default())?;
    record.dispute = mark;
    Ok(record)
}

/// `institutions/{filer}/disputes/{id}`.
pub(crate) fn dispute_name(filer: &str, id: &str) -> String {
    format!("institutions/{filer}/disputes/{id}")
}

/// The (filer, id) of a dispute name, if well-formed.
pub(crate) fn parse_dispute_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("institutions/")?;
    let (filer, id) = rest.split_once("/disputes/")?;
    (!filer.is_empty() && !id.is_empty() && !id.contains('/')).then_some((filer, id))
}

/// The domain reason of a protobuf one; `None` for unspecified or unknown.
pub(crate) fn dispute_reason_from_pb(v: i32) -> Option<DisputeReason> {
    Some(match pb::DisputeReason::try_from(v).ok()? {
        pb::DisputeReason::Unspecified => return None,
        pb::DisputeReason::NotMine => DisputeReason::NotMine,
        pb::DisputeReason::InaccurateBalance => DisputeReason::InaccurateBalance,
        pb::DisputeReason::InaccurateStatus => DisputeReason::InaccurateStatus,
        pb::DisputeReason::InaccuratePaymentHistory => DisputeReason::InaccuratePaymentHistory,
        pb::DisputeReason::AccountClosed => DisputeReason::AccountClosed,
        pb::DisputeReason::IdentityTheft => DisputeReason::IdentityTheft,
        pb::DisputeReason::Other => DisputeReason::Other,
    })
}

fn dispute_reason_to_pb(r: DisputeReason) -> pb::DisputeReason {
    match r {
        DisputeReason::NotMine => pb::DisputeReason::NotMine,
        DisputeReason::InaccurateBalance => pb::DisputeReason::InaccurateBalance,
        DisputeReason::InaccurateStatus => pb::DisputeReason::InaccurateStatus,
        DisputeReason::InaccuratePaymentHistory => pb::DisputeReason::InaccuratePaymentHistory,
        DisputeReason::AccountClosed => pb::DisputeReason::AccountClosed,
        DisputeReason::IdentityTheft => pb::DisputeReason::IdentityTheft,
        DisputeReason::Other => pb::DisputeReason::Other,
    }
}

fn dispute_status_to_pb(s: DisputeStatus) -> pb::DisputeStatus {
    match s {
        DisputeStatus::PendingDelivery => pb::DisputeStatus::PendingDelivery,
        DisputeStatus::Open => pb::DisputeStatus::Open,
        DisputeStatus::Verified => pb::DisputeStatus::Verified,
        DisputeStatus::Corrected => pb::DisputeStatus::Corrected,
        DisputeStatus::Deleted => pb::DisputeStatus::Deleted,
        DisputeStatus::Rejected => pb::DisputeStatus::Rejected,
    }
}

fn dispute_status_from_pb(v: i32) -> Option<DisputeStatus> {
    Some(match pb::DisputeStatus::try_from(v).ok()? {
        pb::DisputeStatus::Unspecified => return None,
        pb::DisputeStatus::PendingDelivery => DisputeStatus::PendingDelivery,
        pb::DisputeStatus::Open => DisputeStatus::Open,
        pb::DisputeStatus::Verified => DisputeStatus::Verified,
        pb::DisputeStatus::Corrected => DisputeStatus::Corrected,
        pb::DisputeStatus::Deleted => DisputeStatus::Deleted,
        pb::DisputeStatus::Rejected => DisputeStatus::Rejected,
    })
}

/// The domain resolution of a protobuf one; `None` for unspecified or unknown.
pub(crate) fn resolution_from_pb(v: i32) -> Option<Resolution> {
    Some(match pb::DisputeResolution::try_from(v).ok()? {
        pb::DisputeResolution::Unspecified => return None,
        pb::DisputeResolution::Verified => Resolution::Verified,
        pb::DisputeResolution::Corrected => Resolution::Corrected,
        pb::DisputeResolution::Deleted => Resolution::Deleted,
    })
}

/// The protobuf form of a dispute as seen at `now` (for `overdue`).
pub(crate) fn dispute_to_pb(d: &Dispute, now: DateTime<Utc>) -> pb::Dispute {
    pb::Dispute {
        name: dispute_name(&d.filer, &d.id),
        filer: d.filer.clone(),
        record: record_name(&d.furnisher, &d.record_id),
        subject_id: d.subject_id.clone(),
        reason: dispute_reason_to_pb(d.reason) as i32,
        statement: d.statement.clone(),
        status: dispute_status_to_pb(d.status) as i32,
        file_time: Some(timestamp(d.filed)),
        deadline: d.deadline.map(timestamp),
        overdue: d.overdue(now),
        resolve_time: d.resolved.map(timestamp),
        corrected_version: d.corrected_version,
        rejection: d.rejection.clone(),
    }
}

/// A dispute sent by a peer, checked; `Err` names the first field at fault.
pub(crate) fn dispute_from_pb(p: &pb::Dispute) -> Result<Dispute, (&'static str, &'static str)> {
    let (filer, id) = parse_dispute_name(&p.name).ok_or(("name", "must be institutions/{filer}/disputes/{id}"))?;
    if filer != p.filer {
        return Err(("filer", "must be the filer named in the dispute's name"));
    }
    if !crate::domain::dispute::is_valid_dispute_id(id) {
        return Err(("name", "the dispute id must be 24 lowercase hex characters"));
    }
    let (furnisher, record_id) =
        parse_record_name(&p.record).ok_or(("record", "must be institutions/{furnisher}/records/{record_id}"))?;
    if !crate::domain::subject::is_valid_subject_id(&p.subject_id) {
        return Err(("subject_id", "must be 64 lowercase hex characters"));
    }
    let reason = dispute_reason_from_pb(p.reason).ok_or(("reason", "must be a known DisputeReason"))?;
    if crate::domain::dispute::statement_problem(&p.statement).is_some() {
        return Err(("statement", "must be at most 500 printable characters"));
    }
    let status = dispute_status_from_pb(p.status).ok_or(("status", "must be a known DisputeStatus"))?;
    let filed = p.file_time.as_ref().and_then(from_timestamp).ok_or(("file_time", "is required"))?;
    Ok(Dispute {
        id: id.to_owned(),
        filer: filer.to_owned(),
        furnisher: furnisher.to_owned(),
        record_id: record_id.to_owned(),
        subject_id: p.subject_id.clone(),
        reason,
        statement: p.statement.clone(),
        status,
        filed,
        deadline: p.deadline.as_ref().and_then(from_timestamp),
        resolved: p.resolve_time.as_ref().and_then(from_timestamp),
        corrected_version: p.corrected_version,
        rejection: p.rejection.chars().take(500).collect(),
        suppression_logged: false,
    })
}

/// The protobuf form of a person's protections as seen at `now`.
pub(crate) fn protection_to_pb(p: &Protection, now: DateTime<Utc>) -> pb::SubjectProtection {
    let freeze = p.freeze.as_ref().filter(|c| c.active);
    let alert = p.alert.as_ref().filter(|_| p.alert_active(now));
    pb::SubjectProtection {
        frozen: freeze.is_some(),
        freeze_placed_by: freeze.map(|c| c.placed_by.clone()).unwrap_or_default(),
        freeze_time: freeze.map(|c| timestamp(c.placed_at)),
        fraud_alert: alert.is_some(),
        alert_placed_by: alert.map(|c| c.placed_by.clone()).unwrap_or_default(),
        alert_expire_time: alert.and(p.alert_expires()).map(timestamp),
    }
}

fn change_to_pb(c: &Change) -> (Option<prost_types::Timestamp>, String) {
    (Some(timestamp(c.at)), c.by.clone())
}

/// A protection notice: the sender's whole state for the subject, with when and through whom
/// each kind last changed (what copies merge by).
pub(crate) fn protection_notice(
    change_id: &str,
    subject: &str,
    p: &Protection,
    now: DateTime<Utc>,
) -> pb::ProtectionNotice {
    let (freeze_changed, freeze_changed_by) = p.freeze.as_ref().map(change_to_pb).unwrap_or_default();
    let (alert_changed, alert_changed_by) = p.alert.as_ref().map(change_to_pb).unwrap_or_default();
    let mut state = protection_to_pb(p, now);
    // Who placed a lifted protection and when still travels, so every copy keeps it.
    if let Some(c) = &p.freeze {
        state.freeze_placed_by = c.placed_by.clone();
        state.freeze_time = Some(timestamp(c.placed_at));
    }
    if let Some(c) = &p.alert {
        state.alert_placed_by = c.placed_by.clone();
        state.alert_expire_time = crate::domain::protection::alert_end(c.placed_at).map(timestamp);
        state.fraud_alert = c.active;
    }
    pb::ProtectionNotice {
        change_id: change_id.to_owned(),
        subject_id: subject.to_owned(),
        protection: Some(state),
        freeze_changed,
        freeze_changed_by,
        alert_changed,
        alert_changed_by,
    }
}

/// The state a protection notice carries; `Err` names the field at fault.
pub(crate) fn protection_from_notice(n: &pb::ProtectionNotice) -> Result<Protection, (&'static str, &'static str)> {
    if !crate::domain::subject::is_valid_subject_id(&n.subject_id) {
        return Err(("subject_id", "must be 64 lowercase hex characters"));
    }
    let state = n.protection.clone().unwrap_or_default();
    let change = |at: &Option<prost_types::Timestamp>,
                  by: &str,
                  active: bool,
                  placed_by: &str,
                  placed_at: Option<DateTime<Utc>>|
     -> Result<Option<Change>, (&'static str, &'static str)> {
        let Some(at) = at.as_ref() else { return Ok(None) };
        let at = from_timestamp(at).ok_or(("changed", "must be a valid time"))?;
        Ok(Some(Change {
            active,
            at,
            by: by.to_owned(),
            placed_by: placed_by.to_owned(),
            placed_at: placed_at.unwrap_or(at),
        }))
    };
    // A peer's time meets a duration: checked, never overflowing.
    let alert_placed = match state.alert_expire_time.as_ref() {
        Some(t) => Some(
            from_timestamp(t)
                .and_then(crate::domain::protection::alert_start)
                .ok_or(("protection.alert_expire_time", "must be a valid time"))?,
        ),
        None => None,
    };
    Ok(Protection {
        freeze: change(
            &n.freeze_changed,
            &n.freeze_changed_by,
            state.frozen,
            &state.freeze_placed_by,
            state.freeze_time.as_ref().and_then(from_timestamp),
        )?,
        alert: change(&n.alert_changed, &n.alert_changed_by, state.fraud_alert, &state.alert_placed_by, alert_placed)?,
    })
}

/// A checkpoint signed with `key`, in the form the API sends it.
pub(crate) fn signed_checkpoint(
    cp: &crate::audit::checkpoint::Checkpoint,
    key: &ed25519_dalek::SigningKey,
) -> pb::Checkpoint {
    pb::Checkpoint {
        origin: cp.origin.clone(),
        tree_size: cp.size,
        root_hash: cp.root.to_vec(),
        signed_note: cp.sign(key),
    }
}

/// The protobuf form of an inquiry.
pub(crate) fn inquiry_to_pb(i: &Inquiry) -> pb::Inquiry {
    pb::Inquiry {
        inquirer: i.inquirer.clone(),
        responder: i.responder.clone(),
        subject_id: i.subject_id.clone(),
        purpose: purpose_to_pb(i.purpose) as i32,
        hard: i.hard,
        inquiry_time: Some(timestamp(i.time)),
        query_id: i.query_id.clone(),
        log_index: i.log_index,
        ..Default::default()
    }
}

/// An inquiry from its protobuf form; `None` when the purpose or time is missing.
pub(crate) fn inquiry_from_pb(i: &pb::Inquiry) -> Option<Inquiry> {
    Some(Inquiry {
        inquirer: i.inquirer.clone(),
        responder: i.responder.clone(),
        subject_id: i.subject_id.clone(),
        purpose: purpose_from_pb(i.purpose)?,
        hard: i.hard,
        time: from_timestamp(i.inquiry_time.as_ref()?)?,
        query_id: i.query_id.clone(),
        log_index: i.log_index,
    })
}

/// A hard inquiry as a scoring answer carries it: its query id and time, nothing about who
/// asked or why.
pub(crate) fn hard_inquiry_to_pb(i: &Inquiry) -> pb::HardInquiry {
    pb::HardInquiry { query_id: i.query_id.clone(), inquiry_time: Some(timestamp(i.time)) }
}

/// A hard inquiry `responder` answered about `subject_id`, from a scoring answer; `None` when
/// its time is missing. Who asked is unknown (empty) and the purpose stands for "a hard one":
/// a score reads only that it is hard, when, and under which query id.
pub(crate) fn hard_inquiry_from_pb(h: &pb::HardInquiry, responder: &str, subject_id: &str) -> Option<Inquiry> {
    Some(Inquiry {
        inquirer: String::new(),
        responder: responder.to_owned(),
        subject_id: subject_id.to_owned(),
        purpose: Purpose::CreditApplication,
        hard: true,
        time: from_timestamp(h.inquiry_time.as_ref()?)?,
        query_id: h.query_id.clone(),
        log_index: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_protobuf() {
        let r = crate::domain::record::tests::sample();
        let now = Utc::now();
        let back = record_from_pb(record_to_pb(&r, now), "bank", NaiveDate::MAX).unwrap();
        assert_eq!(back, r);
        assert_eq!(parse_record_name(&record_name("bank", "a-1")), Some(("bank", "a-1")));
        assert_eq!(parse_record_name("institutions/bank/records/a/b"), None);
    }

    #[test]
    fn unspecified_enums_and_bad_dates_are_violations() {
        let mut pb = record_to_pb(&crate::domain::record::tests::sample(), Utc::now());
        pb.kind = 0;
        pb.status = 99;
        pb.opened_date = Some(Date { year: 2021, month: 2, day: 30 });
        pb.reported_date = None;
        pb.payment_history = vec![2, 0];
        let v = record_from_pb(pb, "bank", NaiveDate::MAX).unwrap_err();
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["opened_date", "reported_date", "kind", "status", "payment_history[1]"]);
    }
}
