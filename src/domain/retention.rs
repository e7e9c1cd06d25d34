//! Retention by jurisdiction profile: how long negative information and inquiries may be shown,
//! and how long a furnisher has to answer a dispute. Enforced wherever data is read (answers,
//! listings, scores), whatever the state of the background purge.
//!
//! - `pbc` (PRC Regulation on the Administration of Credit Reporting, Decree 631): negative
//!   information 5 years from the day the adverse act ended (Art. 16); an objection answered in
//!   20 days (Art. 25); inquiries shown for 2 years (as the PBC personal credit report does).
//! - `fcra` (US Fair Credit Reporting Act): negative items 7 years (§605(a)); inquiries 2 years
//!   (§609(a)(3)); reinvestigation within 30 days (§611(a)(1)).

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    inquiry::Inquiry,
    record::{AccountStatus, CreditRecord, PaymentStatus},
};

/// A jurisdiction's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// People's Bank of China rules (Decree 631).
    #[default]
    Pbc,
    /// US FCRA rules.
    Fcra,
}

/// The windows a node enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The profile the numbers came from.
    pub profile: Profile,
    /// Years negative information is kept after the adverse event ended.
    pub negative_years: u32,
    /// Days an inquiry is kept and shown.
    pub inquiry_days: u32,
    /// Days a furnisher has to resolve a dispute before the record is suppressed.
    pub dispute_days: u32,
}

impl Retention {
    /// A profile's defaults.
    pub fn of(profile: Profile) -> Self {
        match profile {
            Profile::Pbc => Self { profile, negative_years: 5, inquiry_days: 730, dispute_days: 20 },
            Profile::Fcra => Self { profile, negative_years: 7, inquiry_days: 730, dispute_days: 30 },
        }
    }

    /// True when `r` is negative information whose retention period has ended on `today`.
    /// Positive information (never late, never derogatory) does not expire.
    pub fn record_expired(&self, r: &CreditRecord, today: NaiveDate) -> bool {
        adverse_event_end(r).is_some_and(|end| {
            end.checked_add_months(Months::new(12 * self.negative_years)).is_none_or(|until| until <= today)
        })
    }

    /// True when `i` is older than the inquiry window at `now`.
    pub fn inquiry_expired(&self, i: &Inquiry, now: DateTime<Utc>) -> bool {
        // The time may be a peer's: checked, never overflowing (beyond the calendar is never).
        i.time.checked_add_signed(Duration::days(i64::from(self.inquiry_days))).is_some_and(|end| end <= now)
    }

    /// The first moment inquiries are kept at `now`: anything before it has expired.
    pub fn inquiry_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::days(i64::from(self.inquiry_days))
    }

    /// When a dispute filed at `filed` must be resolved; `None` beyond the calendar (`filed`
    /// may be a peer's time: checked, never overflowing).
    pub fn dispute_deadline(&self, filed: DateTime<Utc>) -> Option<DateTime<Utc>> {
        filed.checked_add_signed(Duration::days(i64::from(self.dispute_days)))
    }
}

/// True when the record carries negative information: a derogatory status, a payment past due
/// now, or a late month in its history.
pub(crate) fn is_negative(r: &CreditRecord) -> bool {
    r.status.is_derogatory()
        || r.status == AccountStatus::Delinquent
        || r.days_past_due > 0
        || r.payment_history.iter().any(|p| *p > PaymentStatus::Current)
}

/// The day the record's adverse event ended, from which its retention runs; `None` while it is
/// still going on (an open account past due now) or when the record is not negative.
///
/// - closed: the closing day;
/// - charged off or in collection: the reported day (the write-off or hand-over is the last
///   adverse act the furnisher reports);
/// - open and past due now: not ended;
/// - open and current with late months in its history: the end of the latest late month.
pub(crate) fn adverse_event_end(r: &CreditRecord) -> Option<NaiveDate> {
    if !is_negative(r) {
        return None;
    }
    if let Some(closed) = r.closed {
        return Some(closed);
    }
    if r.status.is_derogatory() {
        return Some(r.reported);
    }
    if r.status == AccountStatus::Delinquent || r.days_past_due > 0 {
        return None;
    }
    let months_ago = r.payment_history.iter().position(|p| *p > PaymentStatus::Current)?;
    // The month `months_ago` before the reported one ends on its last day.
    let month = r.reported.checked_sub_months(Months::new(months_ago as u32))?;
    let first_of_next = NaiveDate::from_ymd_opt(month.year(), month.month(), 1)?.checked_add_months(Months::new(1))?;
    first_of_next.pred_opt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::tests::sample;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn a_closed_charge_off_expires_five_years_after_closing_under_pbc_and_seven_under_fcra() {
        let mut r = sample();
        r.status = AccountStatus::ChargedOff;
        r.closed = Some(d(2019, 3, 10));
        r.reported = d(2019, 3, 10);
        let pbc = Retention::of(Profile::Pbc);
        let fcra = Retention::of(Profile::Fcra);
        assert!(!pbc.record_expired(&r, d(2024, 3, 9)));
        assert!(pbc.record_expired(&r, d(2024, 3, 10)));
        assert!(!fcra.record_expired(&r, d(2026, 3, 9)));
        assert!(fcra.record_expired(&r, d(2026, 3, 10)));
    }

    #[test]
    fn positive_and_ongoing_records_never_expire() {
        let r = sample();
        assert!(!Retention::of(Profile::Pbc).record_expired(&r, d(2199, 1, 1)));
        let mut late = sample();
        late.status = AccountStatus::Delinquent;
        late.days_past_due = 45;
        assert_eq!(adverse_event_end(&late), None);
        assert!(!Retention::of(Profile::Pbc).record_expired(&late, d(2199, 1, 1)));
    }

    #[test]
    fn a_cured_late_month_runs_from_the_end_of_that_month() {
        let mut r = sample();
        r.reported = d(2026, 10, 31);
        r.payment_history = vec![PaymentStatus::Current, PaymentStatus::Current, PaymentStatus::Late30];
        assert_eq!(adverse_event_end(&r), Some(d(2026, 8, 31)));
    }

    #[test]
    fn inquiries_expire_after_their_window() {
        let p = Retention::of(Profile::Fcra);
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let i = Inquiry {
            inquirer: "a".into(),
            responder: "b".into(),
            subject_id: "a".repeat(64),
            purpose: crate::domain::inquiry::Purpose::CreditApplication,
            hard: true,
            time: t,
            query_id: "q".into(),
            log_index: None,
        };
        assert!(!p.inquiry_expired(&i, t + Duration::days(729)));
        assert!(p.inquiry_expired(&i, t + Duration::days(730)));
    }
}
