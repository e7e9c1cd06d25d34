//! An exact what-if: for a file and a target score, the smallest change in each family of
//! changes within the person's control that reaches the target, found by re-scoring with the
//! scorecard itself, so applying a suggestion and scoring again gives exactly its prediction.
//!
//! Families, each monotone in its size (the model refuses bins that reward a worse file, so a
//! bigger change of the same kind never scores lower), which makes the smallest size found by
//! search the smallest there is:
//! - **pay down** card balances by a total amount, largest balance first (utilisation is the
//!   total over the cards, so how it is spread does not change the score);
//! - **bring current** the accounts past due, most days past due first;
//! - **wait** a number of days with no new hard inquiry and no new late payment: inquiries leave
//!   the window and the oldest account ages.

use chrono::NaiveDate;

use super::Model;
use crate::domain::{
    inquiry::Inquiry,
    record::{AccountStatus, CreditRecord, RecordKind},
};

/// Longest wait considered, in days.
pub(crate) const MAX_WAIT_DAYS: u32 = 730;

/// A family of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lever {
    /// Pay card balances down.
    PayDown,
    /// Bring accounts past due current.
    BringCurrent,
    /// Wait with no new inquiry or late payment.
    Wait,
}

impl Lever {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PayDown => "pay_down",
            Self::BringCurrent => "bring_current",
            Self::Wait => "wait",
        }
    }
}

/// One account's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    /// The furnisher.
    pub furnisher: String,
    /// Its record id.
    pub record_id: String,
    /// The balance to pay down to, minor units (pay down).
    pub balance_to_minor: Option<i64>,
    /// Brought current: no days past due.
    pub bring_current: bool,
}

/// The smallest change of one family that reaches the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// Its family.
    pub lever: Lever,
    /// The accounts it changes (none for a wait).
    pub accounts: Vec<AccountChange>,
    /// Total paid down, minor units (pay down only).
    pub pay_minor: i64,
    /// Days to wait (wait only).
    pub wait_days: u32,
    /// The score after the change, exactly.
    pub predicted: i32,
    /// What to do, in plain words.
    pub text: String,
}

impl Suggestion {
    /// The file with the change applied, and the day it is scored as of.
    pub fn apply(&self, records: &[CreditRecord], as_of: NaiveDate) -> (Vec<CreditRecord>, NaiveDate) {
        let mut out = records.to_vec();
        for c in &self.accounts {
            for r in out.iter_mut().filter(|r| r.furnisher == c.furnisher && r.record_id == c.record_id) {
                if let Some(b) = c.balance_to_minor {
                    r.balance_minor = b;
                }
                if c.bring_current {
                    r.days_past_due = 0;
                    if r.status == AccountStatus::Delinquent {
                        r.status = AccountStatus::Current;
                    }
                }
            }
        }
        (out, as_of + chrono::Duration::days(i64::from(self.wait_days)))
    }
}

/// Card balances paid down by `amount` in total, largest first.
fn pay_down(records: &[CreditRecord], amount: i64) -> Vec<AccountChange> {
    let mut cards: Vec<&CreditRecord> =
        records.iter().filter(|r| r.kind == RecordKind::CreditCard && r.balance_minor > 0).collect();
    cards.sort_by(|a, b| b.balance_minor.cmp(&a.balance_minor).then_with(|| a.record_id.cmp(&b.record_id)));
    let mut left = amount;
    let mut out = Vec::new();
    for r in cards {
        if left <= 0 {
            break;
        }
        let paid = left.min(r.balance_minor);
        left -= paid;
        out.push(AccountChange {
            furnisher: r.furnisher.clone(),
            record_id: r.record_id.clone(),
            balance_to_minor: Some(r.balance_minor - paid),
            bring_current: false,
        });
    }
    out
}

/// Accounts past due whose days count in the score (a disputed record's do not), most days
/// first: every part of the score they touch is a maximum over accounts, so bringing current
/// the first `k` of them does at least as much as any `k` others.
fn past_due(records: &[CreditRecord]) -> Vec<&CreditRecord> {
    let mut late: Vec<&CreditRecord> = records.iter().filter(|r| r.days_past_due > 0 && !r.under_dispute()).collect();
    late.sort_by(|a, b| b.days_past_due.cmp(&a.days_past_due).then_with(|| a.record_id.cmp(&b.record_id)));
    late
}

/// The first `k` of [`past_due`], brought current.
fn bring_current(records: &[CreditRecord], k: usize) -> Vec<AccountChange> {
    past_due(records)
        .into_iter()
        .take(k)
        .map(|r| AccountChange {
            furnisher: r.furnisher.clone(),
            record_id: r.record_id.clone(),
            balance_to_minor: None,
            bring_current: true,
        })
        .collect()
}

impl Model {
    /// A scoreable file's score after `s`, or `None` when the change leaves it unscoreable.
    fn after(&self, s: &Suggestion, records: &[CreditRecord], inquiries: &[Inquiry], as_of: NaiveDate) -> Option<i32> {
        let (changed, day) = s.apply(records, as_of);
        let r = self.score(&changed, inquiries, day);
        r.exclusion.is_none().then_some(r.score)
    }

    /// The smallest change of each family that brings the file to `target` or above, each with
    /// the exact score it gives; none when the file already reaches it or no change of a family
    /// does.
    pub fn what_if(
        &self,
        records: &[CreditRecord],
        inquiries: &[Inquiry],
        as_of: NaiveDate,
        target: i32,
    ) -> Vec<Suggestion> {
        let now = self.score(records, inquiries, as_of);
        if now.exclusion.is_none() && now.score >= target {
            return Vec::new();
        }
        let reaches = |s: &Suggestion| self.after(s, records, inquiries, as_of).filter(|p| *p >= target);
        let blank = |lever| Suggestion {
            lever,
            accounts: Vec::new(),
            pay_minor: 0,
            wait_days: 0,
            predicted: 0,
            text: String::new(),
        };
        let mut out = Vec::new();

        // Pay down: the least total, by bisection over [1, every card balance].
        let total: i64 =
            records.iter().filter(|r| r.kind == RecordKind::CreditCard).map(|r| r.balance_minor.max(0)).sum();
        let paying =
            |amount| Suggestion { accounts: pay_down(records, amount), pay_minor: amount, ..blank(Lever::PayDown) };
        if total > 0 && reaches(&paying(total)).is_some() {
            let (mut lo, mut hi) = (0i64, total); // lo never reaches, hi does
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if reaches(&paying(mid)).is_some() {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            let mut s = paying(hi);
            s.predicted = reaches(&s).unwrap_or_default();
            let list: Vec<String> = s
                .accounts
                .iter()
                .map(|a| format!("{}/{} to {}", a.furnisher, a.record_id, money(a.balance_to_minor.unwrap_or(0))))
                .collect();
            s.text = format!("Pay card balances down by {} in total: {}", money(hi), list.join(", "));
            out.push(s);
        }

        // Bring current: the fewest accounts, most days past due first.
        let late = past_due(records).len();
        let current = |k| Suggestion { accounts: bring_current(records, k), ..blank(Lever::BringCurrent) };
        if let Some(mut s) = (1..=late).map(current).find(|s| reaches(s).is_some()) {
            s.predicted = reaches(&s).unwrap_or_default();
            let list: Vec<String> = s.accounts.iter().map(|a| format!("{}/{}", a.furnisher, a.record_id)).collect();
            s.text = format!("Pay what is past due on {}", list.join(", "));
            out.push(s);
        }

        // Wait: the fewest days.
        let waiting = |d| Suggestion { wait_days: d, ..blank(Lever::Wait) };
        if let Some(mut s) = (1..=MAX_WAIT_DAYS).map(waiting).find(|s| reaches(s).is_some()) {
            s.predicted = reaches(&s).unwrap_or_default();
            let until = as_of + chrono::Duration::days(i64::from(s.wait_days));
            s.text = format!(
                "Apply for no new credit and pay every account on time for {} days (until {until})",
                s.wait_days
            );
            out.push(s);
        }
        out
    }
}

/// Minor units as `1,234.56`.
fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}

#[cfg(test)]
#[path = "whatif_tests.rs"]
mod tests;
