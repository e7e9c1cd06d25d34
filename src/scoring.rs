//! TEMPORARY STUB until the scorecard lands: same API, trivial scoring.
use chrono::NaiveDate;

use crate::{inquiry::Inquiry, record::CreditRecord};

/// Score bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// 350–549
    Poor,
    /// 550–599
    Fair,
    /// 600–649
    Good,
    /// 650–699
    VeryGood,
    /// 700–950
    Excellent,
}
/// A reason.
#[derive(Debug, Clone)]
pub struct Reason {
    /// code
    pub code: String,
    /// text
    pub description: String,
    /// points
    pub points_lost: i32,
}
/// A result.
#[derive(Debug, Clone)]
pub struct ScoreResult {
    /// score
    pub score: i32,
    /// band
    pub band: Band,
    /// reasons
    pub reasons: Vec<Reason>,
}
/// Model.
#[derive(Debug)]
pub struct Model;
impl Model {
    /// default
    pub fn embedded_default() -> Self {
        Model
    }
    /// parse
    pub fn from_toml(_: &str) -> Result<Self, String> {
        Ok(Model)
    }
    /// version
    pub fn version(&self) -> &str {
        "stub"
    }
    /// score
    pub fn score(&self, records: &[CreditRecord], _: &[Inquiry], _: NaiveDate) -> ScoreResult {
        ScoreResult { score: 600 + records.len() as i32, band: Band::Good, reasons: vec![] }
    }
}
