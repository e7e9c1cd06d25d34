//! Disputes: a subject says a record is wrong. The filing node keeps its copy and an outbox
//! entry until the furnisher's node acknowledges; the furnisher's node keeps the dispute and a
//! flag on the record (Metro 2's XB / XC / XH) that travels with every answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest subject statement accepted.
pub(crate) const MAX_STATEMENT: usize = 500;

/// What the subject says is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DisputeReason {
    /// Not the subject's account.
    NotMine,
    /// Balance or limit wrong.
    InaccurateBalance,
    /// Status wrong.
    InaccurateStatus,
    /// Payment history wrong.
    InaccuratePaymentHistory,
    /// Closed but reported open.
    AccountClosed,
    /// Opened through identity theft.
    IdentityTheft,
    /// Anything else.
    Other,
}

impl DisputeReason {
    /// The reason's name in logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotMine => "not_mine",
            Self::InaccurateBalance => "inaccurate_balance",
            Self::InaccurateStatus => "inaccurate_status",
            Self::InaccuratePaymentHistory => "inaccurate_payment_history",
            Self::AccountClosed => "account_closed",
            Self::IdentityTheft => "identity_theft",
            Self::Other => "other",
        }
    }
}

/// Where a dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DisputeStatus {
    /// Filed; the furnisher's node has not acknowledged it yet.
    PendingDelivery,
    /// Held by the furnisher's node; the record is flagged.
    Open,
    /// The furnisher verified the record.
    Verified,
    /// The furnisher corrected the record.
    Corrected,
    /// The furnisher deleted the record.
    Deleted,
    /// The furnisher's node refused the dispute.
    Rejected,
}

impl DisputeStatus {
    /// True once the dispute can no longer change.
    pub(crate) fn is_final(self) -> bool {
        matches!(self, Self::Verified | Self::Corrected | Self::Deleted | Self::Rejected)
    }

    /// The status's name in logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PendingDelivery => "pending_delivery",
            Self::Open => "open",
            Self::Verified => "verified",
            Self::Corrected => "corrected",
            Self::Deleted => "deleted",
            Self::Rejected => "rejected",
        }
    }
}

/// How a furnisher resolves a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Accurate as reported.
    Verified,
    /// Replaced by a corrected version.
    Corrected,
    /// Deleted.
    Deleted,
}

impl Resolution {
    /// The dispute status it leads to.
    pub(crate) fn status(self) -> DisputeStatus {
        match self {
            Self::Verified => DisputeStatus::Verified,
            Self::Corrected => DisputeStatus::Corrected,
            Self::Deleted => DisputeStatus::Deleted,
        }
    }
}

/// One dispute, as the filing and the furnishing node each keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dispute {
    /// Unique within the filer: derived from what identifies the filing.
    pub id: String,
    /// The filing institution.
    pub filer: String,
    /// The furnishing institution.
    pub furnisher: String,
    /// The furnisher's record id.
    pub record_id: String,
    /// The subject.
    pub subject_id: String,
    /// What is disputed.
    pub reason: DisputeReason,
    /// The subject's statement (may be empty).
    pub statement: String,
    /// Where it stands.
    pub status: DisputeStatus,
    /// When it was filed.
    pub filed: DateTime<Utc>,
    /// When the furnisher must have resolved it; set by the furnisher's node.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    /// When it was resolved.
    #[serde(default)]
    pub resolved: Option<DateTime<Utc>>,
    /// The record's version after a correction.
    #[serde(default)]
    pub corrected_version: u64,
    /// Why the furnisher's node refused it.
    #[serde(default)]
    pub rejection: String,
    /// At the furnisher: the deadline's passing has been logged.
    #[serde(default)]
    pub suppression_logged: bool,
}

impl Dispute {
    /// The id of a filing: the same filer, record, subject, reason and statement give the same
    /// dispute, which makes filing idempotent.
    pub(crate) fn id_for(
        filer: &str,
        furnisher: &str,
        record_id: &str,
        subject: &str,
        reason: DisputeReason,
        statement: &str,
    ) -> String {
        let mut h = Sha256::new();
        for part in [filer, furnisher, record_id, subject, reason.as_str(), statement] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(&h.finalize()[..12])
    }

    /// The key both nodes keep it under: `filer/id`.
    pub(crate) fn key(&self) -> String {
        dispute_key(&self.filer, &self.id)
    }

    /// True while it is open past its deadline at `now`.
    pub(crate) fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == DisputeStatus::Open && self.deadline.is_some_and(|d| now >= d)
    }
}

/// The furthest a furnisher's deadline may lie after the filing, as a filer takes it from a
/// peer (no jurisdiction allows a year).
pub(crate) const MAX_DEADLINE_DAYS: i64 = 366;

/// True when `deadline`, sent by a furnisher's node, can be the deadline of a dispute filed at
/// `filed`: not before it, at most [`MAX_DEADLINE_DAYS`] after (checked, never overflowing).
pub(crate) fn plausible_deadline(filed: DateTime<Utc>, deadline: DateTime<Utc>) -> bool {
    deadline >= filed
        && filed.checked_add_signed(chrono::Duration::days(MAX_DEADLINE_DAYS)).is_none_or(|last| deadline <= last)
}

/// `filer/id`.
pub(crate) fn dispute_key(filer: &str, id: &str) -> String {
    format!("{filer}/{id}")
}

/// True for a dispute id this node could have made: 24 lowercase hex characters.
pub(crate) fn is_valid_dispute_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a subject's statement: at most [`MAX_STATEMENT`] characters, printable. Says what
/// is wrong, if anything.
pub(crate) fn statement_problem(statement: &str) -> Option<String> {
    if statement.chars().count() > MAX_STATEMENT {
        return Some(format!("must be at most {MAX_STATEMENT} characters"));
    }
    if statement.chars().any(|c| c.is_control() && c != '\n') {
        return Some("must be printable text (no control characters but newlines)".into());
    }
    None
}

/// A record's dispute flag, after Metro 2's compliance condition codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkState {
    /// XB: disputed, investigation in progress.
    Disputed,
    /// XC: completed, the subject disagrees.
    CompletedSubjectDisagrees,
    /// XH: previously disputed, completed.
    PreviouslyDisputed,
}

/// The flag a record carries in answers, with the subject's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeMark {
    /// The flag.
    pub state: MarkState,
    /// The subject's statement, if any.
    #[serde(default)]
    pub statement: String,
}

/// What the furnisher's node keeps per disputed record: the flag, and the open disputes with
/// the earliest deadline among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordMark {
    /// The flag and statement answers carry.
    pub mark: DisputeMark,
    /// Keys (`filer/id`) of the open disputes on the record.
    #[serde(default)]
    pub open: Vec<String>,
    /// The earliest deadline of the open disputes.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
}

impl RecordMark {
    /// True when the record must not be served at `now`: disputed past the deadline.
    pub(crate) fn suppressed(&self, now: DateTime<Utc>) -> bool {
        self.mark.state == MarkState::Disputed && self.deadline.is_some_and(|d| now >= d)
    }
}
