//! The adverse-action notice a lender gives a person it declined: the score with its range and
//! date (or why the file was unscoreable), up to four key factors in plain words plus recent
//! inquiries when they counted, the institutions whose data was used, and the person's rights
//! with the deadlines of the node's retention profile (FCRA §615(a), Reg. B §1002.9; PBC Decree
//! 631 Arts. 17 and 25).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::{
    app::score::FederatedScore,
    domain::retention::{Profile, Retention},
    scoring::{MAX_REASONS, MAX_SCORE, MIN_SCORE},
    wire::{convert, pb::bureau::v1 as pb},
};

/// The reason code of recent inquiries.
const INQUIRIES: &str = "I01";

/// What a decision was, for its notice.
pub(crate) struct Declined<'a> {
    /// The policy applied.
    pub policy: &'a str,
    /// The outcome (`decline`, `decline: unscoreable`).
    pub outcome: &'a str,
    /// The deciding institution.
    pub lender: &'a str,
    /// When.
    pub time: DateTime<Utc>,
}

/// The person's rights under `r`, in plain words.
fn rights(r: &Retention, lender: &str) -> Vec<String> {
    let free = match r.profile {
        Profile::Fcra => format!(
            "You may get a free copy of your credit report from {lender} within 60 days of this notice, with every record and inquiry it used."
        ),
        Profile::Pbc => format!(
            "You may get your credit report free of charge twice a year, through {lender} or any member of the federation, with every record and inquiry it used."
        ),
    };
    vec![
        free,
        format!(
            "You may dispute any record you believe is inaccurate or incomplete, through any member: the institution that reported it must answer within {} days, or the record is left out until it does.",
            r.dispute_days
        ),
        format!(
            "Late payments, charge-offs and collections are no longer shown {} years after they ended; inquiries are shown for {} days.",
            r.negative_years, r.inquiry_days
        ),
        format!("{lender} made this decision; the score was computed by its node from the records listed above."),
    ]
}

/// The notice for a declined decision on `s`.
pub(crate) fn adverse_notice(d: &Declined<'_>, s: &FederatedScore, r: &Retention) -> pb::AdverseActionNotice {
    let excluded = s.result.exclusion;
    let (mut key_factors, mut inquiries_factor) = (Vec::new(), String::new());
    if excluded.is_none() {
        for (i, reason) in s.result.reasons.iter().enumerate() {
            if i < MAX_REASONS {
                key_factors.push(reason.description.clone());
            } else if reason.code == INQUIRIES {
                inquiries_factor = reason.description.clone();
            }
        }
    }
    let sources: BTreeSet<String> = s.records.iter().map(|rec| rec.furnisher.clone()).collect();
    pb::AdverseActionNotice {
        subject_id: s.subject_id.clone(),
        lender: d.lender.to_owned(),
        policy: d.policy.to_owned(),
        outcome: d.outcome.to_owned(),
        decision_time: Some(convert::timestamp(d.time)),
        score: if excluded.is_some() { 0 } else { s.result.score },
        range_min: MIN_SCORE,
        range_max: MAX_SCORE,
        scored_on: s.result.as_of.format("%Y-%m-%d").to_string(),
        key_factors,
        inquiries_factor,
        exclusion_code: excluded.map(|e| e.code().to_owned()).unwrap_or_default(),
        exclusion: excluded.map(|e| e.description().to_owned()).unwrap_or_default(),
        sources: sources.into_iter().collect(),
        rights: rights(r, d.lender),
        retention_profile: match r.profile {
            Profile::Pbc => "pbc",
            Profile::Fcra => "fcra",
        }
        .to_owned(),
        dispute_days: r.dispute_days,
        model_version: s.model_version.clone(),
        query_id: s.query_id.clone(),
    }
}
