//! The scorecard: an explainable, points-based model (after standard credit scorecards) that
//! turns a subject's merged credit file into a score from 350 to 950 with adverse reason codes.
//!
//! Each line maps one characteristic to log-odds through bins read from a TOML model
//! (`default_model.toml` is embedded); the score is
//! `offset + factor * (intercept + Σ points)`, `factor = pdo / ln 2`,
//! `offset = base_score - factor * ln(base_odds)`, rounded and clamped.
//!
//! [`Model::from_toml`] refuses any model whose bins could reward a worse file, which is what
//! makes these hold for every accepted model (and the property tests check them): more or more
//! recent delinquency, a charge-off or collection, higher utilisation, or another recent hard
//! inquiry never raise a score, all else equal.

use std::collections::HashSet;

use chrono::NaiveDate;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    domain::inquiry::Inquiry,
    domain::record::{CreditRecord, PaymentStatus, RecordKind},
};

/// Lowest score.
pub(crate) const MIN_SCORE: i32 = 350;
/// Highest score.
pub(crate) const MAX_SCORE: i32 = 950;
/// Most reason codes given with a score, before the inquiry reason a fifth may add.
pub(crate) const MAX_REASONS: usize = 4;
/// The line whose loss earns a fifth reason when it is not among the first four (FCRA
/// 15 U.S.C. 1681g(f)(9): inquiries that adversely affected the score must be disclosed).
const INQUIRY_LINE: &str = "recent_hard_inquiries";

/// Score bands, after the consumer scores people know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Band {
    /// 350–549.
    Poor,
    /// 550–599.
    Fair,
    /// 600–649.
    Good,
    /// 650–699.
    VeryGood,
    /// 700–950.
    Excellent,
}

impl Band {
    /// The band of `score`.
    pub fn of(score: i32) -> Self {
        match score {
            ..=549 => Self::Poor,
            550..=599 => Self::Fair,
            600..=649 => Self::Good,
            650..=699 => Self::VeryGood,
            _ => Self::Excellent,
        }
    }

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poor => "poor",
            Self::Fair => "fair",
            Self::Good => "good",
            Self::VeryGood => "very good",
            Self::Excellent => "excellent",
        }
    }
}

/// An adverse reason: a line on which the subject lost points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// Stable code, e.g. `D01`.
    pub code: String,
    /// Text a lender can give the subject.
    pub description: String,
    /// Score points lost against the line's best value.
    pub points_lost: i32,
}

/// One line's contribution, for explaining a score line by line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineScore {
    /// The line's id.
    pub id: String,
    /// The characteristic's value; `None` when missing.
    pub value: Option<u64>,
    /// Log-odds points earned.
    pub points: f64,
}

/// A score and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreResult {
    /// 350–950.
    pub score: i32,
    /// Its band.
    pub band: Band,
    /// Up to four adverse reasons, largest loss first, and a fifth naming recent inquiries
    /// when they cost points but did not make the four.
    pub reasons: Vec<Reason>,
    /// Every line's value and points.
    pub lines: Vec<LineScore>,
    /// Records under dispute (XB) whose delinquency and derogatory status were left out.
    pub disputed_excluded: usize,
}

/// Why a model is refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not TOML, or not the model's shape.
    #[error("model file: {0}")]
    Parse(#[from] toml::de::Error),
    /// A rule a model must obey.
    #[error("line {line}: {why}")]
    Invalid {
        /// The line id (or `scaling`).
        line: String,
        /// What is wrong.
        why: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Direction {
    HigherIsWorse,
    HigherIsBetter,
}

/// What a missing value means, which decides how its points must relate to the bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Missing {
    /// Nothing bad ever happened (e.g. never late): must earn at least every bin.
    Clean,
    /// No data, from which a worsening can reach the worst bin: must earn at least that bin.
    NoData,
    /// No accounts at all: no worsening reaches it, so any points.
    NoAccounts,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bin {
    upto: Option<u64>,
    points: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineSpec {
    id: String,
    #[allow(dead_code)]
    describe: Option<String>,
    direction: Direction,
    missing: Option<Missing>,
    missing_points: Option<f64>,
    window_days: Option<u32>,
    reason_code: String,
    reason: String,
    /// The reason's text when the value is missing (e.g. no card at all), if it differs.
    missing_reason: Option<String>,
    bins: Vec<Bin>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scaling {
    base_score: f64,
    base_odds: f64,
    pdo: f64,
    intercept: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    name: String,
    version: String,
    scaling: Scaling,
    line: Vec<LineSpec>,
}

/// The characteristics the code knows how to compute, with the direction and meaning of a
/// missing value each must be declared with.
const KNOWN: [(&str, Direction, Option<Missing>); 8] = [
    ("worst_delinquency", Direction::HigherIsWorse, None),
    ("months_since_delinquency", Direction::HigherIsBetter, Some(Missing::Clean)),
    ("current_days_past_due", Direction::HigherIsWorse, None),
    ("derogatory_count", Direction::HigherIsWorse, None),
    ("revolving_utilisation", Direction::HigherIsWorse, Some(Missing::NoData)),
    ("history_months", Direction::HigherIsBetter, Some(Missing::NoAccounts)),
    ("recent_hard_inquiries", Direction::HigherIsWorse, None),
    ("credit_mix", Direction::HigherIsBetter, None),
];

/// A loaded, checked scorecard.
#[derive(Debug, Clone)]
pub struct Model {
    spec: ModelSpec,
    version: String,
    factor: f64,
    offset: f64,
    /// Best points attainable per line (for reason codes).
    best: Vec<f64>,
    text: String,
}

impl Model {
    /// The embedded default model.
    pub fn embedded_default() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail in a build that
        // passed its tests.
        Self::from_toml(include_str!("default_model.toml")).expect("embedded model is valid")
    }

    /// Parses and checks a model.
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let spec: ModelSpec = toml::from_str(text)?;
        let invalid = |line: &str, why: String| ModelError::Invalid { line: line.to_owned(), why };
        let s = &spec.scaling;
        if !(s.pdo > 0.0
            && s.base_odds > 0.0
            && s.base_score.is_finite()
            && s.intercept.is_finite()
            && s.pdo.is_finite())
        {
            return Err(invalid("scaling", "pdo and base_odds must be positive and every value finite".into()));
        }
        let mut seen = HashSet::new();
        let mut best = Vec::new();
        for l in &spec.line {
            let Some((_, direction, missing)) = KNOWN.iter().find(|(id, _, _)| *id == l.id) else {
                return Err(invalid(&l.id, "unknown characteristic".into()));
            };
            if !seen.insert(l.id.clone()) {
                return Err(invalid(&l.id, "appears twice".into()));
            }
            if l.direction != *direction {
                return Err(invalid(&l.id, format!("direction must be {direction:?}")));
            }
            if l.missing != *missing || l.missing_points.is_some() != missing.is_some() {
                return Err(invalid(
                    &l.id,
                    format!("missing must be {missing:?}, with missing_points exactly when set"),
                ));
            }
            if l.bins.is_empty() || l.bins.iter().any(|b| !b.points.is_finite()) {
                return Err(invalid(&l.id, "needs at least one bin, all points finite".into()));
            }
            let (last, rest) = l.bins.split_last().expect("non-empty");
            if last.upto.is_some() || rest.iter().any(|b| b.upto.is_none()) {
                return Err(invalid(&l.id, "every bin but the last needs `upto`, the last none".into()));
            }
            if rest.windows(2).any(|w| w[0].upto >= w[1].upto) {
                return Err(invalid(&l.id, "`upto` bounds must strictly ascend".into()));
            }
            let monotone = l.bins.windows(2).all(|w| match direction {
                Direction::HigherIsWorse => w[1].points <= w[0].points,
                Direction::HigherIsBetter => w[1].points >= w[0].points,
            });
            if !monotone {
                return Err(invalid(&l.id, "points must never reward a worse value".into()));
            }
            let max = l.bins.iter().map(|b| b.points).fold(f64::MIN, f64::max);
            let worst = match direction {
                Direction::HigherIsWorse => last.points,
                Direction::HigherIsBetter => l.bins[0].points,
            };
            let mp = l.missing_points.unwrap_or(f64::MIN);
            match missing {
                Some(Missing::Clean) if mp < max => {
                    return Err(invalid(&l.id, "a clean (missing) value must earn at least every bin".into()))
                }
                Some(Missing::NoData) if mp < worst => {
                    return Err(invalid(&l.id, "missing data must earn at least the worst bin".into()))
                }
                _ => {}
            }
            if l.window_days.is_some() != (l.id == "recent_hard_inquiries") {
                return Err(invalid(&l.id, "window_days belongs to recent_hard_inquiries only, which needs it".into()));
            }
            best.push(max.max(l.missing_points.unwrap_or(f64::MIN)));
        }
        let factor = s.pdo / std::f64::consts::LN_2;
        let offset = s.base_score - factor * s.base_odds.ln();
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        let version = format!("{}-{}+{}", spec.name, spec.version, &digest[..12]);
        Ok(Self { spec, version, factor, offset, best, text: text.to_owned() })
    }

    /// `<name>-<version>+<first 12 hex of the file's SHA-256>`: any change to the weights
    /// changes it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The model's TOML text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Scores a merged credit file as of `as_of`. Pure and deterministic; never panics.
    pub fn score(&self, records: &[CreditRecord], inquiries: &[Inquiry], as_of: NaiveDate) -> ScoreResult {
        let facts = Facts::of(records, inquiries, as_of, self.window_days());
        let mut inquiry_reason = None;
        let mut log_odds = self.spec.scaling.intercept;
        let mut lines = Vec::with_capacity(self.spec.line.len());
        let mut reasons = Vec::new();
        for (l, best) in self.spec.line.iter().zip(&self.best) {
            let value = facts.value(&l.id);
            let points = match value {
                None => l.missing_points.unwrap_or(0.0),
                Some(v) => l.bins.iter().find(|b| b.upto.is_none_or(|u| v <= u)).map_or(0.0, |b| b.points),
            };
            log_odds += points;
            let lost = (self.factor * (best - points)).round() as i32;
            if lost >= 1 {
                let description = match (value, &l.missing_reason) {
                    (None, Some(text)) => text.clone(),
                    _ => l.reason.clone(),
                };
                let reason = Reason { code: l.reason_code.clone(), description, points_lost: lost };
                if l.id == INQUIRY_LINE {
                    inquiry_reason = Some(reason.clone());
                }
                reasons.push(reason);
            }
            lines.push(LineScore { id: l.id.clone(), value, points });
        }
        reasons.sort_by(|a, b| b.points_lost.cmp(&a.points_lost).then_with(|| a.code.cmp(&b.code)));
        reasons.truncate(MAX_REASONS);
        if let Some(r) = inquiry_reason.filter(|r| !reasons.iter().any(|k| k.code == r.code)) {
            reasons.push(r);
        }
        let raw = self.offset + self.factor * log_odds;
        let score = if raw.is_finite() {
            (raw.round() as i64).clamp(MIN_SCORE as i64, MAX_SCORE as i64) as i32
        } else {
            MIN_SCORE
        };
        ScoreResult { score, band: Band::of(score), reasons, lines, disputed_excluded: facts.disputed_excluded }
    }

    fn window_days(&self) -> u32 {
        self.spec.line.iter().find_map(|l| l.window_days).unwrap_or(180)
    }
}

/// The characteristics of one credit file, computed in one pass.
struct Facts {
    worst_delinquency: u64,
    months_since_delinquency: Option<u64>,
    current_days_past_due: u64,
    derogatory_count: u64,
    revolving: Option<u64>,
    history_months: Option<u64>,
    recent_hard_inquiries: u64,
    credit_mix: u64,
    disputed_excluded: usize,
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
    fn of(records: &[CreditRecord], inquiries: &[Inquiry], as_of: NaiveDate, window_days: u32) -> Self {
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

    fn value(&self, id: &str) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::{
        domain::inquiry::Purpose,
        domain::record::AccountStatus,
        testkit::gen::{self, GenConfig},
    };

    fn as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
    }

    fn cfg(seed: u64) -> GenConfig {
        GenConfig {
            subjects: 1,
            seed,
            institutions: vec!["a".into(), "b".into(), "c".into()],
            federation_key: b"k".to_vec(),
            as_of: as_of(),
        }
    }

    /// A realistic file: subject `i` of a generated population.
    fn file(seed: u64, i: usize) -> Vec<CreditRecord> {
        gen::subject_records(&cfg(seed), i)
    }

    fn hard(days_ago: i64) -> Inquiry {
        let t = Utc.from_utc_datetime(&(as_of() - chrono::Duration::days(days_ago)).and_hms_opt(12, 0, 0).unwrap());
        Inquiry {
            inquirer: "x".into(),
            responder: "y".into(),
            subject_id: "s".into(),
            purpose: Purpose::CreditApplication,
            hard: true,
            time: t,
            query_id: format!("q{days_ago}"),
            log_index: None,
        }
    }

    #[test]
    fn embedded_model_loads_with_a_content_version() {
        let m = Model::embedded_default();
        assert!(m.version().starts_with("bureau-default-2026.11+"), "{}", m.version());
        assert_eq!(m.version().len(), "bureau-default-2026.11+".len() + 12);
        let tweaked = m.text().replace("pdo = 45.0", "pdo = 46.0");
        assert_ne!(Model::from_toml(&tweaked).unwrap().version(), m.version());
    }

    #[test]
    fn a_thin_file_scores_low_but_not_minimum_and_says_why() {
        let r = Model::embedded_default().score(&[], &[], as_of());
        assert!(r.score > MIN_SCORE && r.score < 600, "{}", r.score);
        assert_eq!(r.reasons[0].code, "H01", "{:?}", r.reasons);
        assert!(r.reasons.len() <= MAX_REASONS + 1);
    }

    /// Inquiries that cost points are named even when four other reasons lost more: a file
    /// with four serious problems and recent hard inquiries gets the inquiry reason fifth.
    #[test]
    fn recent_inquiries_that_cost_points_are_a_fifth_reason() {
        let m = Model::embedded_default();
        let mut bad = crate::domain::record::tests::sample();
        bad.status = AccountStatus::ChargedOff;
        bad.days_past_due = 150;
        bad.payment_history = vec![PaymentStatus::Late120Plus; 3];
        bad.balance_minor = bad.credit_limit_minor;
        let inquiries: Vec<_> = (0..6).map(|d| hard(d * 10)).collect();
        let r = m.score(std::slice::from_ref(&bad), &inquiries, as_of());
        assert_eq!(r.reasons.len(), MAX_REASONS + 1, "{:?}", r.reasons);
        assert_eq!(r.reasons[MAX_REASONS].code, "I01");
        assert!(r.reasons[..MAX_REASONS].iter().all(|x| x.code != "I01"));
        let none = m.score(std::slice::from_ref(&bad), &[], as_of());
        assert!(none.reasons.len() <= MAX_REASONS, "no inquiries, no fifth reason: {:?}", none.reasons);
    }

    /// A disputed record's delinquency and charge-off are left out while the flag stands; the
    /// score says so. Resolved flags (XC, XH) count as usual.
    #[test]
    fn a_disputed_record_s_derogatory_lines_are_left_out() {
        use crate::domain::dispute::{DisputeMark, MarkState};
        let m = Model::embedded_default();
        let good = crate::domain::record::tests::sample();
        let mut bad = good.clone();
        bad.record_id = "acct-2".into();
        bad.status = AccountStatus::ChargedOff;
        bad.days_past_due = 150;
        bad.payment_history = vec![PaymentStatus::Late120Plus; 3];
        let plain = m.score(&[good.clone(), bad.clone()], &[], as_of());
        let mut disputed = bad.clone();
        disputed.dispute = Some(DisputeMark { state: MarkState::Disputed, statement: "not mine".into() });
        let flagged = m.score(&[good.clone(), disputed], &[], as_of());
        assert_eq!(flagged.disputed_excluded, 1);
        assert!(flagged.score > plain.score, "{} vs {}", flagged.score, plain.score);
        assert!(!flagged.reasons.iter().any(|r| r.code == "R01" || r.code == "D01"), "{:?}", flagged.reasons);
        let mut closed = bad.clone();
        closed.dispute = Some(DisputeMark { state: MarkState::PreviouslyDisputed, statement: String::new() });
        let after = m.score(&[good, closed], &[], as_of());
        assert_eq!((after.score, after.disputed_excluded), (plain.score, 0));
    }

    #[test]
    fn bands_follow_the_published_ranges() {
        assert_eq!(Band::of(350), Band::Poor);
        assert_eq!(Band::of(549), Band::Poor);
        assert_eq!(Band::of(550), Band::Fair);
        assert_eq!(Band::of(600), Band::Good);
        assert_eq!(Band::of(650), Band::VeryGood);
        assert_eq!(Band::of(699), Band::VeryGood);
        assert_eq!(Band::of(700), Band::Excellent);
        assert_eq!(Band::of(950), Band::Excellent);
    }

    #[test]
    fn models_that_could_reward_a_worse_file_are_refused() {
        let text = Model::embedded_default().text().to_owned();
        let broken = [
            // A 60-day delinquency earning more than a 30-day one.
            text.replace("{ upto = 2, points = -0.45 }", "{ upto = 2, points = 0.3 }"),
            // Never late earning less than recently late.
            text.replace("missing_points = 0.25", "missing_points = -1.0"),
            // A flipped direction.
            text.replacen("direction = \"higher_is_worse\"", "direction = \"higher_is_better\"", 1),
            // Unsorted bounds.
            text.replace("{ upto = 2999, points = 0.4 }", "{ upto = 500, points = 0.4 }"),
            // An unknown characteristic.
            text.replace("id = \"credit_mix\"", "id = \"shoe_size\""),
        ];
        for (i, t) in broken.iter().enumerate() {
            assert_ne!(t, &text, "case {i} changed nothing");
            assert!(Model::from_toml(t).is_err(), "case {i} accepted");
        }
    }

    #[test]
    fn reasons_name_the_worst_lines_first() {
        let mut f = file(1, 0);
        while f.is_empty() {
            f = file(1, 1);
        }
        for r in &mut f {
            r.status = AccountStatus::ChargedOff;
            r.days_past_due = 150;
        }
        let res = Model::embedded_default().score(&f, &[hard(3), hard(10), hard(20)], as_of());
        let codes: Vec<_> = res.reasons.iter().map(|r| r.code.as_str()).collect();
        assert!(codes.contains(&"D01") && codes.contains(&"R01"), "{codes:?}");
        assert!(res.reasons.windows(2).all(|w| w[0].points_lost >= w[1].points_lost));
        assert_eq!(res.band, Band::Poor);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn score_is_bounded_and_deterministic(seed in any::<u64>(), i in 0usize..10_000, n in 0usize..8) {
            let f = file(seed, i);
            let inq: Vec<_> = (0..n).map(|d| hard(d as i64 * 17)).collect();
            let m = Model::embedded_default();
            let a = m.score(&f, &inq, as_of());
            prop_assert!((MIN_SCORE..=MAX_SCORE).contains(&a.score));
            prop_assert_eq!(&a, &m.score(&f, &inq, as_of()));
            prop_assert_eq!(a.band, Band::of(a.score));
        }

        #[test]
        fn more_delinquency_never_raises_a_score(
            seed in any::<u64>(), i in 0usize..10_000, pick in any::<usize>(), month in 0usize..24,
            worse in 1u8..=4, extra_dpd in 1u32..400, derog in any::<bool>(),
        ) {
            let f = file(seed, i);
            prop_assume!(!f.is_empty());
            let m = Model::embedded_default();
            let before = m.score(&f, &[], as_of()).score;
            let k = pick % f.len();
            let mut g = f.clone();
            let r = &mut g[k];
            if month < r.payment_history.len() {
                let target = [PaymentStatus::Late30, PaymentStatus::Late60, PaymentStatus::Late90, PaymentStatus::Late120Plus][worse as usize - 1];
                r.payment_history[month] = r.payment_history[month].max(target);
            }
            prop_assert!(m.score(&g, &[], as_of()).score <= before, "worse month raised the score");
            let mut h = f.clone();
            h[k].days_past_due = h[k].days_past_due.saturating_add(extra_dpd);
            prop_assert!(m.score(&h, &[], as_of()).score <= before, "more days past due raised the score");
            let mut d = f.clone();
            d[k].status = if derog { AccountStatus::ChargedOff } else { AccountStatus::InCollection };
            prop_assert!(m.score(&d, &[], as_of()).score <= before, "a charge-off raised the score");
        }

        #[test]
        fn higher_utilisation_never_raises_a_score(seed in any::<u64>(), i in 0usize..10_000, pick in any::<usize>(), more in 1i64..10_000_000) {
            let f = file(seed, i);
            let cards: Vec<usize> = f.iter().enumerate().filter(|(_, r)| r.kind == RecordKind::CreditCard).map(|(k, _)| k).collect();
            prop_assume!(!cards.is_empty());
            let m = Model::embedded_default();
            let before = m.score(&f, &[], as_of()).score;
            let mut g = f.clone();
            let k = cards[pick % cards.len()];
            g[k].balance_minor += more;
            prop_assert!(m.score(&g, &[], as_of()).score <= before);
        }

        #[test]
        fn another_recent_hard_inquiry_never_raises_a_score(seed in any::<u64>(), i in 0usize..10_000, n in 0usize..8, days in 0i64..180) {
            let f = file(seed, i);
            let m = Model::embedded_default();
            let inq: Vec<_> = (0..n).map(|d| hard(d as i64 * 13)).collect();
            let before = m.score(&f, &inq, as_of()).score;
            let mut more = inq.clone();
            more.push(hard(days));
            prop_assert!(m.score(&f, &more, as_of()).score <= before);
        }
    }
}
