//! The credit record (one tradeline) and its validation rules, free of any transport.
//!
//! Field set after the Metro 2 base segment and the PBC report's loan and card sections; money
//! is integer minor units, never floats.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::subject;

/// Most monthly statuses a payment history holds (two years).
pub(crate) const MAX_PAYMENT_HISTORY: usize = 24;
/// Longest record id a furnisher may use.
pub(crate) const MAX_RECORD_ID_LEN: usize = 64;
/// Largest `days_past_due` accepted (ten years).
pub(crate) const MAX_DAYS_PAST_DUE: u32 = 3650;

/// The kind of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A term loan.
    Loan,
    /// A revolving card line.
    CreditCard,
    /// An instalment plan, buy-now-pay-later included.
    Instalment,
    /// A rental whose deposit was waived.
    DepositFreeRental,
    /// A utility or telecom account.
    Utility,
    /// A guarantee for another party's debt.
    Guarantee,
}

/// The account's standing as of its reported date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Open and paid as agreed.
    Current,
    /// Open with a payment past due.
    Delinquent,
    /// Written off as a loss.
    ChargedOff,
    /// Passed to collections.
    InCollection,
    /// Closed in good standing.
    Closed,
}

impl AccountStatus {
    /// Charge-offs and collections: the derogatory events a scorecard weighs most.
    pub fn is_derogatory(self) -> bool {
        matches!(self, Self::ChargedOff | Self::InCollection)
    }
}

/// One month of payment history, ordered from best to worst so that `>` means "worse".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Nothing due or nothing reported.
    NoData,
    /// Paid as agreed.
    Current,
    /// 30–59 days late.
    Late30,
    /// 60–89 days late.
    Late60,
    /// 90–119 days late.
    Late90,
    /// 120 or more days late.
    Late120Plus,
}

/// One account furnished by one institution about one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRecord {
    /// The furnishing institution; always set from the caller's certificate, never trusted
    /// from input.
    #[serde(default)]
    pub furnisher: String,
    /// The furnisher's id for the account, unique within that furnisher.
    pub record_id: String,
    /// The subject's pseudonym (see [`crate::domain::subject`]).
    pub subject_id: String,
    /// Kind of account.
    pub kind: RecordKind,
    /// Day opened.
    pub opened: NaiveDate,
    /// Day closed, if closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<NaiveDate>,
    /// Day the furnisher reported this state.
    pub reported: NaiveDate,
    /// Limit or original amount, minor units.
    pub credit_limit_minor: i64,
    /// Balance owed, minor units.
    pub balance_minor: i64,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// Standing.
    pub status: AccountStatus,
    /// Days the oldest unpaid amount is past due.
    #[serde(default)]
    pub days_past_due: u32,
    /// Up to 24 monthly statuses, newest first.
    #[serde(default)]
    pub payment_history: Vec<PaymentStatus>,
    /// The furnisher's version; a higher one replaces a lower one.
    pub version: u64,
    /// The record's dispute flag as its furnisher's node reports it; never furnished (set by
    /// the node from its dispute state, ignored on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<crate::domain::dispute::DisputeMark>,
}

/// A field that failed validation: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path within the record, as named in the API (`opened_date`, `payment_history`).
    pub field: String,
    /// What is wrong, for a developer.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// True when `id` can name a record: 1–64 characters of `[A-Za-z0-9._:-]`.
pub(crate) fn is_valid_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RECORD_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// True when `code` has the shape of an ISO 4217 alphabetic code (three upper-case letters).
pub(crate) fn is_valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl CreditRecord {
    /// Every rule the record breaks, empty when it is valid. `today` bounds reported dates.
    pub fn violations(&self, today: NaiveDate) -> Vec<Violation> {
        let mut v = Vec::new();
        if !is_valid_record_id(&self.record_id) {
            v.push(Violation::new("record_id", "must be 1 to 64 characters of letters, digits, '.', '_', ':' or '-'"));
        }
        if !subject::is_valid_subject_id(&self.subject_id) {
            v.push(Violation::new("subject_id", "must be 64 lowercase hex characters (an HMAC-SHA256 pseudonym)"));
        }
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).expect("constant date is valid");
        if self.opened < earliest {
            v.push(Violation::new("opened_date", "must not be before 1900-01-01"));
        }
        if self.opened > today {
            v.push(Violation::new("opened_date", "must not be in the future"));
        }
        if let Some(closed) = self.closed {
            if closed < self.opened {
                v.push(Violation::new("closed_date", "must not be before opened_date"));
            }
            if closed > today {
                v.push(Violation::new("closed_date", "must not be in the future"));
            }
        }
        if self.reported < self.opened {
            v.push(Violation::new("reported_date", "must not be before opened_date"));
        }
        if self.reported > today {
            v.push(Violation::new("reported_date", "must not be in the future"));
        }
        if self.credit_limit_minor < 0 {
            v.push(Violation::new("credit_limit_minor", "must not be negative"));
        }
        if self.balance_minor < 0 {
            v.push(Violation::new("balance_minor", "must not be negative"));
        }
        if !is_valid_currency(&self.currency) {
            v.push(Violation::new("currency_code", "must be an ISO 4217 code of three upper-case letters"));
        }
        if self.days_past_due > MAX_DAYS_PAST_DUE {
            v.push(Violation::new("days_past_due", format!("must be at most {MAX_DAYS_PAST_DUE}")));
        }
        if matches!(self.status, AccountStatus::Current | AccountStatus::Closed) && self.days_past_due > 0 {
            v.push(Violation::new("days_past_due", "must be 0 when status is current or closed"));
        }
        if self.status == AccountStatus::Closed && self.closed.is_none() {
            v.push(Violation::new("closed_date", "is required when status is closed"));
        }
        if self.payment_history.len() > MAX_PAYMENT_HISTORY {
            v.push(Violation::new("payment_history", format!("holds at most {MAX_PAYMENT_HISTORY} monthly statuses")));
        }
        if self.version == 0 || self.version > i64::MAX as u64 {
            v.push(Violation::new("version", "must be from 1 to 9223372036854775807"));
        }
        v
    }

    /// Utilisation in basis points (balance / limit), `None` when there is no limit.
    pub fn utilisation_bp(&self) -> Option<u32> {
        (self.credit_limit_minor > 0).then(|| {
            let bp = (self.balance_minor.max(0) as i128 * 10_000) / self.credit_limit_minor as i128;
            bp.min(u32::MAX as i128) as u32
        })
    }

    /// True while the record is under dispute (XB): a score leaves its derogatory lines out.
    pub fn under_dispute(&self) -> bool {
        self.dispute.as_ref().is_some_and(|m| m.state == crate::domain::dispute::MarkState::Disputed)
    }

    /// The worst monthly status in the history (NoData when empty).
    pub fn worst_payment(&self) -> PaymentStatus {
        self.payment_history.iter().copied().max().unwrap_or(PaymentStatus::NoData)
    }
}

/// Today's date in UTC, the bound for reported dates.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// De-duplicates by (furnisher, record id), keeping the highest version; sorted by key so the
/// result does not depend on which peer answered first.
pub fn merge_records(records: impl Iterator<Item = CreditRecord>) -> Vec<CreditRecord> {
    let mut best: std::collections::HashMap<(String, String), CreditRecord> = std::collections::HashMap::new();
    for r in records {
        let key = (r.furnisher.clone(), r.record_id.clone());
        match best.get(&key) {
            Some(b) if b.version >= r.version => {}
            _ => {
                best.insert(key, r);
            }
        }
    }
    let mut out: Vec<CreditRecord> = best.into_values().collect();
    out.sort_by(|a, b| (&a.furnisher, &a.record_id).cmp(&(&b.furnisher, &b.record_id)));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid record for tests to alter.
    pub(crate) fn sample() -> CreditRecord {
        CreditRecord {
            furnisher: "bank".into(),
            record_id: "acct-1".into(),
            subject_id: "a".repeat(64),
            kind: RecordKind::CreditCard,
            opened: NaiveDate::from_ymd_opt(2020, 1, 15).unwrap(),
            closed: None,
            reported: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            credit_limit_minor: 1_000_000,
            balance_minor: 250_000,
            currency: "CNY".into(),
            status: AccountStatus::Current,
            days_past_due: 0,
            payment_history: vec![PaymentStatus::Current; 12],
            version: 1,
            dispute: None,
        }
    }

    #[test]
    fn valid_record_has_no_violations() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(sample().violations(today), vec![]);
    }

    #[test]
    fn each_rule_names_its_field() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        type Alter = Box<dyn Fn(&mut CreditRecord)>;
        let cases: Vec<(&str, Alter)> = vec![
            ("record_id", Box::new(|r| r.record_id = "bad id".into())),
            ("subject_id", Box::new(|r| r.subject_id = "ABC".into())),
            ("opened_date", Box::new(|r| r.opened = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap())),
            ("closed_date", Box::new(|r| r.closed = Some(NaiveDate::from_ymd_opt(2019, 1, 1).unwrap()))),
            ("reported_date", Box::new(|r| r.reported = NaiveDate::from_ymd_opt(2019, 1, 1).unwrap())),
            ("credit_limit_minor", Box::new(|r| r.credit_limit_minor = -1)),
            ("balance_minor", Box::new(|r| r.balance_minor = -1)),
            ("currency_code", Box::new(|r| r.currency = "yuan".into())),
            ("days_past_due", Box::new(|r| r.days_past_due = 30)),
            ("payment_history", Box::new(|r| r.payment_history = vec![PaymentStatus::Current; 25])),
            ("version", Box::new(|r| r.version = 0)),
        ];
        for (field, alter) in cases {
            let mut r = sample();
            alter(&mut r);
            let v = r.violations(today);
            assert!(v.iter().any(|v| v.field == field), "{field}: {v:?}");
        }
    }

    #[test]
    fn utilisation_in_basis_points() {
        assert_eq!(sample().utilisation_bp(), Some(2_500));
        let mut r = sample();
        r.credit_limit_minor = 0;
        assert_eq!(r.utilisation_bp(), None);
    }
}
