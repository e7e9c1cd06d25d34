//! The API's errors and their one mapping to gRPC status codes, with `google.rpc` details a
//! caller can act on (`ErrorInfo` reasons, `BadRequest` field violations).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::{federated::ScoreError, peer_query::QueryRefusal, store::StoreError};

/// The `ErrorInfo.domain` of every error this service sends.
pub const ERROR_DOMAIN: &str = "bureau.v1";

/// A field violation as sent to callers: the request path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path in the request, e.g. `records[3].opened_date`.
    pub field: String,
    /// What is wrong; names the record id where there is one.
    pub description: String,
}

/// Every way a request can fail, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request itself is malformed; fix it. INVALID_ARGUMENT with `BadRequest`.
    #[error("{message}")]
    InvalidArgument {
        /// Summary.
        message: String,
        /// Each field at fault.
        violations: Vec<FieldViolation>,
    },
    /// No such resource. NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// The caller's identity may not do this. PERMISSION_DENIED with an `ErrorInfo` reason.
    #[error("{message}")]
    PermissionDenied {
        /// UPPER_SNAKE reason, e.g. `WRONG_ROLE`.
        reason: &'static str,
        /// Summary.
        message: String,
    },
    /// The request is well-formed but the system is not in a state to allow it (e.g. consent
    /// missing). FAILED_PRECONDITION with an `ErrorInfo` reason.
    #[error("{message}")]
    FailedPrecondition {
        /// UPPER_SNAKE reason, e.g. `CONSENT_REQUIRED`.
        reason: &'static str,
        /// Summary.
        message: String,
    },
    /// A size or count limit was exceeded. RESOURCE_EXHAUSTED.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Try again later (shutting down, overloaded). UNAVAILABLE.
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side; details are logged, not sent. INTERNAL.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// INVALID_ARGUMENT for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let field = field.into();
        let description = description.into();
        Self::InvalidArgument {
            message: format!("invalid {field}: {description}"),
            violations: vec![FieldViolation { field, description }],
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::Unavailable("node is shutting down".into()),
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<QueryRefusal> for ApiError {
    fn from(e: QueryRefusal) -> Self {
        let message = e.to_string();
        match e {
            QueryRefusal::Invalid(field, description) => Self::invalid(field, description),
            QueryRefusal::PurposeRequired => Self::invalid("purpose", "a permissible purpose is required"),
            QueryRefusal::PurposeNotAccepted(_) => Self::PermissionDenied { reason: "PURPOSE_NOT_ACCEPTED", message },
            QueryRefusal::ConsentRequired(_) => Self::FailedPrecondition { reason: "CONSENT_REQUIRED", message },
        }
    }
}

impl From<ScoreError> for ApiError {
    fn from(e: ScoreError) -> Self {
        match e {
            ScoreError::Refused(r) => r.into(),
            ScoreError::Store(s) => s.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let info = |reason: &str| {
            let mut d = ErrorDetails::new();
            d.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
            d
        };
        match e {
            ApiError::InvalidArgument { message, violations } => {
                let mut d = info("INVALID_ARGUMENT");
                for v in violations {
                    d.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, d)
            }
            ApiError::NotFound(m) => Status::with_error_details(Code::NotFound, m, info("NOT_FOUND")),
            ApiError::PermissionDenied { reason, message } => {
                Status::with_error_details(Code::PermissionDenied, message, info(reason))
            }
            ApiError::FailedPrecondition { reason, message } => {
                Status::with_error_details(Code::FailedPrecondition, message, info(reason))
            }
            ApiError::ResourceExhausted(m) => {
                Status::with_error_details(Code::ResourceExhausted, m, info("RESOURCE_EXHAUSTED"))
            }
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::Internal(detail) => {
                error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
