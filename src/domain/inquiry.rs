//! Permissible purposes and inquiries: why an institution looked at a subject, and the record
//! of it that the answering node keeps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why an institution looks at a subject's history. Every query names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The subject applied for credit.
    CreditApplication,
    /// Review of an existing account.
    AccountReview,
    /// The subject asked for a deposit to be waived.
    DepositWaiver,
    /// Collection of a debt owed to the caller.
    Collections,
    /// The subject asked to see their own report.
    SubjectRequest,
}

impl Purpose {
    /// Purposes that need a reference to the subject's signed consent: those the subject starts
    /// (an application, a waiver request, a request for their own report). Account review and
    /// collections rest on an existing relationship instead.
    pub fn needs_consent(self) -> bool {
        matches!(self, Self::CreditApplication | Self::DepositWaiver | Self::SubjectRequest)
    }

    /// Hard inquiries count against a subject's score; soft ones do not.
    pub fn is_hard(self) -> bool {
        matches!(self, Self::CreditApplication | Self::DepositWaiver)
    }

    /// The purpose's name in logs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreditApplication => "credit_application",
            Self::AccountReview => "account_review",
            Self::DepositWaiver => "deposit_waiver",
            Self::Collections => "collections",
            Self::SubjectRequest => "subject_request",
        }
    }
}

/// A query about a subject that `inquirer` made at `responder`'s node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inquiry {
    /// The institution that asked.
    pub inquirer: String,
    /// The institution whose node was asked.
    pub responder: String,
    /// The subject's pseudonym.
    pub subject_id: String,
    /// Why.
    pub purpose: Purpose,
    /// Hard inquiries count in scores.
    pub hard: bool,
    /// When.
    pub time: DateTime<Utc>,
    /// Federation-wide query id, the same in both nodes' logs.
    pub query_id: String,
    /// The index of the responder's log entry that recorded it, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}
