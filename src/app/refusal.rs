//! Why a query is refused, before anything is read: shared by the answer, the consent check and
//! the score.

use crate::domain::inquiry::Purpose;

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryRefusal {
    /// A malformed field: (field, what is wrong).
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, &'static str),
    /// No purpose named.
    #[error("a permissible purpose is required")]
    PurposeRequired,
    /// This node does not answer queries for this purpose.
    #[error("this node does not accept queries for purpose {}", .0.as_str())]
    PurposeNotAccepted(Purpose),
    /// The purpose needs a consent reference and none was given.
    #[error("purpose {} requires a consent reference", .0.as_str())]
    ConsentRequired(Purpose),
    /// The consent token is not one: malformed, badly signed, or signed by a certificate that
    /// does not chain to the authority or is revoked.
    #[error("consent token refused: {0}")]
    ConsentInvalid(String),
    /// The consent token has expired (or claims a life it may not have).
    #[error("consent token refused: {0}")]
    ConsentExpired(String),
    /// The consent token is valid but for another query: this field differs.
    #[error("consent token is for another {0}")]
    ConsentMismatch(&'static str),
    /// The consent token's nonce was already spent on another query.
    #[error("consent token was already used for another query")]
    ConsentReplayed,
    /// The person's own reports this institution may ask for in the window are spent.
    #[error("the person's own reports through this institution are limited to {limit} in {days} days")]
    ReportLimit {
        /// Reports allowed in the window.
        limit: u32,
        /// The window, in days.
        days: i64,
    },
    /// A security freeze stands: no hard inquiry (nor, at the asking node, a review by an
    /// institution that furnishes nothing about the person).
    #[error("the subject's file is frozen: {0}")]
    SubjectFrozen(&'static str),
}
