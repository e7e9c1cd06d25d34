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

use self::facts::Facts;
use crate::{domain::inquiry::Inquiry, domain::record::CreditRecord};

mod facts;
pub(crate) mod whatif;

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
    /// The day the file was scored as of (inquiry windows and account ages count to it).
    pub as_of: NaiveDate,
    /// Set when the file is too thin to score (see [`Exclusion`]): `score` is then computed
    /// but must not be given as the person's score, and decisions treat it by their policy.
    pub exclusion: Option<Exclusion>,
}

/// Why a file is unscoreable, after VantageScore's exclusion codes. The documented rule
/// ([`Exclusion::of`]): a file with no record at all, or whose only records are under
/// dispute, has no usable records; a file whose oldest account was opened less than
/// [`MIN_HISTORY_MONTHS`] months before the scoring day has too little history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    /// No record the score could rest on (`X01`).
    NoUsableRecords,
    /// Every record is under dispute (`X02`).
    AllDisputed,
    /// The oldest account is younger than [`MIN_HISTORY_MONTHS`] (`X03`).
    TooLittleHistory,
}

/// Months of history the oldest account needs before a file is scored (FICO asks six).
pub(crate) const MIN_HISTORY_MONTHS: u64 = 6;

impl Exclusion {
    /// The rule, over the facts of one file: records used, records under dispute, and the age
    /// of the oldest account in months.
    fn of(records: usize, disputed: usize, history_months: Option<u64>) -> Option<Self> {
        if records == 0 {
            Some(Self::NoUsableRecords)
        } else if disputed == records {
            Some(Self::AllDisputed)
        } else if history_months.is_none_or(|m| m < MIN_HISTORY_MONTHS) {
            Some(Self::TooLittleHistory)
        } else {
            None
        }
    }

    /// Its stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoUsableRecords => "X01",
            Self::AllDisputed => "X02",
            Self::TooLittleHistory => "X03",
        }
    }

    /// Its text for the person and the lender.
    pub fn description(self) -> &'static str {
        match self {
            Self::NoUsableRecords => "No credit record on file",
            Self::AllDisputed => "Every record on file is under dispute",
            Self::TooLittleHistory => "Oldest account opened less than six months ago",
        }
    }
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
        let exclusion = Exclusion::of(records.len(), facts.disputed_excluded, facts.value("history_months"));
        ScoreResult {
            score,
            band: Band::of(score),
            reasons,
            lines,
            disputed_excluded: facts.disputed_excluded,
            as_of,
            exclusion,
        }
    }

    /// How many days back the inquiry line counts hard inquiries (180 unless the model says).
    pub fn window_days(&self) -> u32 {
        self.spec.line.iter().find_map(|l| l.window_days).unwrap_or(180)
    }
}

#[cfg(test)]
mod tests;
