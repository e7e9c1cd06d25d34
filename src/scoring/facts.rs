//! The characteristics of one credit file that the scorecard's lines read, computed in one pass
//! over the merged records and inquiries.

use chrono::NaiveDate;

use crate::{
    domain::inquiry::Inquiry,
    domain::record::{CreditRecord, PaymentStatus, RecordKind},
};

/// The characteristics of one credit file, computed in one pass.
pub(super) struct Facts {
    worst_delinquency: u64,
    months_since_delinquency: Option<u64>,
    current_days_past_due: u64,
    derogatory_count: u64,
    revolving: Option<u64>,
    history_months: Option<u64>,
    recent_hard_inquiries: u64,
    credit_mix: u64,
    pub(super) disputed_excluded: usize,
}

fn severity(p: PaymentStatus) -> u64 {
    match p {
        PaymentStatus::NoData | PaymentStatus::Current => 0,
        PaymentStatus::Late30 => 1,
        PaymentStatus::Late60 => 2,
        PaymentStatus::Late90 => 3,
        PaymentStatus::Late120Plus => 4,
    }
}

fn dpd_severity(dpd: u32) -> u64 {
    match dpd {
        0..=29 => 0,
        30..=59 => 1,
        60..=89 => 2,
        90..=119 => 3,
        _ => 4,
    }
}

fn months_between(from: NaiveDate, to: NaiveDate) -> u64 {
    use chrono::Datelike;
    let m = (to.year() as i64 - from.year() as i64) * 12 + to.month() as i64
        - from.month() as i64
        - i64::from(to.day() < from.day());
    m.max(0) as u64
}

impl Facts {
    pub(super) fn of(records: &[CreditRecord], inquiries: &[Inquiry], as_of: NaiveDate, window_days: u32) -> Self {
        let mut f = Facts {
            worst_delinquency: 0,
            months_since_delinquency: None,
            current_days_past_due: 0,
            derogatory_count: 0,
            revolving: None,
            history_months: None,
            recent_hard_inquiries: 0,
            credit_mix: 0,
            disputed_excluded: 0,
        };
        let (mut balance, mut limit, mut cards) = (0i128, 0i128, 0u32);
        let mut kinds = 0u8;
        let mut oldest: Option<NaiveDate> = None;
        let recent_late = |f: &mut Facts, months: u64| {
            f.months_since_delinquency = Some(f.months_since_delinquency.map_or(months, |m| m.min(months)));
        };
        for r in records {
            // A record under dispute counts for age, mix and utilisation only: its delinquency
            // and derogatory status are what the subject contests (VantageScore 4.0 treats
            // XB-flagged accounts alike).
            if r.under_dispute() {
                f.disputed_excluded += 1;
            } else {
                let derogatory = r.status.is_derogatory();
                let mut worst = dpd_severity(r.days_past_due);
                if derogatory {
                    worst = 4;
                    f.derogatory_count += 1;
                }
                if worst > 0 {
                    recent_late(&mut f, 0);
                }
                for (months_ago, p) in r.payment_history.iter().enumerate() {
                    let s = severity(*p);
                    if s > 0 {
                        worst = worst.max(s);
                        recent_late(&mut f, months_ago as u64);
                    }
                }
                f.worst_delinquency = f.worst_delinquency.max(worst);
                f.current_days_past_due = f.current_days_past_due.max(u64::from(r.days_past_due));
            }
            if r.kind == RecordKind::CreditCard {
                cards += 1;
                balance += i128::from(r.balance_minor.max(0));
                limit += i128::from(r.credit_limit_minor.max(0));
            }
            kinds |= 1 << (r.kind as u8);
            oldest = Some(oldest.map_or(r.opened, |o| o.min(r.opened)));
        }
        if cards > 0 {
            f.revolving = match (limit, balance) {
                (0, 0) => None,
                (0, _) => Some(u64::MAX),
                (l, b) => Some(((b * 10_000) / l).min(u64::MAX as i128) as u64),
            };
        }
        f.history_months = oldest.map(|o| months_between(o, as_of));
        f.credit_mix = u64::from(kinds.count_ones());
        let since = as_of - chrono::Duration::days(i64::from(window_days));
        f.recent_hard_inquiries =
            inquiries.iter().filter(|i| i.hard && i.time.date_naive() > since && i.time.date_naive() <= as_of).count()
                as u64;
        f
    }

    pub(super) fn value(&self, id: &str) -> Option<u64> {
        match id {
            "worst_delinquency" => Some(self.worst_delinquency),
            "months_since_delinquency" => self.months_since_delinquency,
            "current_days_past_due" => Some(self.current_days_past_due),
            "derogatory_count" => Some(self.derogatory_count),
            "revolving_utilisation" => self.revolving,
            "history_months" => self.history_months,
            "recent_hard_inquiries" => Some(self.recent_hard_inquiries),
            "credit_mix" => Some(self.credit_mix),
            _ => None,
        }
    }
}
