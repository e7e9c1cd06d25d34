//! The API's errors and their one mapping to gRPC status codes, with `google.rpc` details a
//! caller can act on (`ErrorInfo` reasons, `BadRequest` field violations).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::app::{
    answer::QueryRefusal, attest::AttestError, decide::DecideError, disputes::DisputeError,
    protection::ProtectionError, score::ScoreError, StoreError,
};

/// The `ErrorInfo.domain` of every error this service sends.
pub(crate) const ERROR_DOMAIN: &str = "bureau.v1";

/// A field violation as sent to callers: the request path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldViolation {
    /// Path in the request, e.g. `records[3].opened_date`.
    pub field: String,
    /// What is wrong; names the record id where there is one.
    pub description: String,
}

/// Why a caller was refused: the `ErrorInfo.reason` it receives and the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Reason {
    /// No client certificate reached the handler.
    NoClientCertificate,
    /// The certificate names no identity we accept.
    BadIdentity,
    /// The caller belongs to another federation.
    WrongFederation,
    /// Another institution's caller on a service only the node's own institution may use.
    NotOwnInstitution,
    /// A role that may not use this service.
    WrongRole,
    /// A record name of another furnisher.
    NotOwnRecord,
    /// This node does not answer for that purpose.
    PurposeNotAccepted,
    /// The purpose needs a consent reference.
    ConsentRequired,
    /// No checkpoint signing key is configured.
    NoLogKey,
    /// The store's backend does not do this (a database's own tools do).
    NotSupportedByStore,
    /// Only the record's furnisher (or the notice's sender) may do this to a dispute.
    NotDisputeParty,
    /// A security freeze stands on the subject.
    SubjectFrozen,
    /// A peer's notice names another institution as the one a change went through.
    NotNoticeSender,
    /// An application the node's configuration does not name administrator (`admin.applications`).
    NotAdministrator,
    /// An application the configuration allows only attestations (`admin.attest_only`).
    AttestOnly,
    /// An institution the federation's directory does not list.
    NotAMember,
    /// A member the directory lists as suspended.
    MemberSuspended,
    /// This node does not run the record locator.
    NotALocator,
    /// The consent given is not a valid consent token (malformed, forged, or signed by a
    /// certificate that does not chain to the authority or is revoked).
    ConsentInvalid,
    /// The consent token has expired.
    ConsentExpired,
    /// The consent token is for another person, purpose or institution.
    ConsentMismatch,
    /// The consent token was already spent on another query.
    ConsentReplayed,
    /// The person's own reports through this institution are spent for the window.
    ReportLimitExceeded,
}

impl Reason {
    /// The UPPER_SNAKE name sent in `ErrorInfo.reason`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NoClientCertificate => "NO_CLIENT_CERTIFICATE",
            Self::BadIdentity => "BAD_IDENTITY",
            Self::WrongFederation => "WRONG_FEDERATION",
            Self::NotOwnInstitution => "NOT_OWN_INSTITUTION",
            Self::WrongRole => "WRONG_ROLE",
            Self::NotOwnRecord => "NOT_OWN_RECORD",
            Self::PurposeNotAccepted => "PURPOSE_NOT_ACCEPTED",
            Self::ConsentRequired => "CONSENT_REQUIRED",
            Self::NoLogKey => "NO_LOG_KEY",
            Self::NotSupportedByStore => "NOT_SUPPORTED_BY_STORE",
            Self::NotDisputeParty => "NOT_DISPUTE_PARTY",
            Self::SubjectFrozen => crate::domain::protection::FROZEN_REASON,
            Self::NotNoticeSender => "NOT_NOTICE_SENDER",
            Self::NotAdministrator => "NOT_ADMINISTRATOR",
            Self::AttestOnly => "ATTEST_ONLY",
            Self::NotAMember => "NOT_A_MEMBER",
            Self::MemberSuspended => "MEMBER_SUSPENDED",
            Self::NotALocator => "NOT_A_LOCATOR",
            Self::ConsentInvalid => "CONSENT_INVALID",
            Self::ConsentExpired => "CONSENT_EXPIRED",
            Self::ConsentMismatch => "CONSENT_MISMATCH",
            Self::ConsentReplayed => "CONSENT_REPLAYED",
            Self::ReportLimitExceeded => "REPORT_LIMIT_EXCEEDED",
        }
    }
}

/// Every way a request can fail, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
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
        /// Why, e.g. [`Reason::WrongRole`].
        reason: Reason,
        /// Summary.
        message: String,
    },
    /// The request is well-formed but the system is not in a state to allow it (e.g. consent
    /// missing). FAILED_PRECONDITION with an `ErrorInfo` reason.
    #[error("{message}")]
    FailedPrecondition {
        /// Why, e.g. [`Reason::ConsentRequired`].
        reason: Reason,
        /// Summary.
        message: String,
    },
    /// A hard inquiry refused for a freeze, to a peer: FAILED_PRECONDITION with `ErrorInfo`
    /// reason `SUBJECT_FROZEN` and the freeze's latest change in its metadata (see
    /// `domain::protection::Change::to_metadata`), so the asking node adopts it.
    #[error("{message}")]
    Frozen {
        /// Summary.
        message: String,
        /// The freeze's latest change as `ErrorInfo.metadata`.
        freeze: HashMap<String, String>,
    },
    /// A size or count limit was exceeded. RESOURCE_EXHAUSTED.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A quota of the caller's is spent (the person's free reports). RESOURCE_EXHAUSTED with an
    /// `ErrorInfo` reason.
    #[error("{message}")]
    Quota {
        /// Why, e.g. [`Reason::ReportLimitExceeded`].
        reason: Reason,
        /// Summary.
        message: String,
    },
    /// Try again later (shutting down, overloaded). UNAVAILABLE.
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side; details are logged, not sent. INTERNAL.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// INVALID_ARGUMENT for one field.
    pub(crate) fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let field = field.into();
        let description = description.into();
        Self::InvalidArgument {
            message: format!("invalid {field}: {description}"),
            violations: vec![FieldViolation { field, description }],
        }
    }
}

impl ApiError {
    /// A spawned task that panicked or was cancelled: a fault on our side, the one place such
    /// failures become INTERNAL (nothing of the task's write was acknowledged).
    pub(crate) fn task_failed(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("task failed: {e}"))
    }
}

impl ApiError {
    /// The error for a status tonic itself produced while reading a request message, when it
    /// is the caller's fault: an oversized message is RESOURCE_EXHAUSTED (the code gRPC
    /// specifies; tonic says OUT_OF_RANGE) and an undecodable one INVALID_ARGUMENT (tonic says
    /// INTERNAL, which reads as our fault and makes clients retry). `None` for anything else.
    pub(crate) fn from_framing(status: &Status) -> Option<Self> {
        let m = status.message();
        match status.code() {
            Code::OutOfRange if m.contains("message length too large") => Some(Self::ResourceExhausted(m.to_owned())),
            Code::Internal if m.starts_with("failed to decode Protobuf message") => Some(Self::invalid(
                "request",
                format!(
                    "is not a valid bureau.v1 message: {}",
                    m.trim_start_matches("failed to decode Protobuf message: ")
                ),
            )),
            _ => None,
        }
    }

    /// A request-stream message error: [`ApiError::from_framing`] where it applies, else as is.
    pub(crate) fn inbound(status: Status) -> Status {
        match Self::from_framing(&status) {
            Some(e) => e.into(),
            None => status,
        }
    }
}

/// Applies [`ApiError::from_framing`] to unary answers: tonic answers a request message it
/// cannot read before any handler runs, with the status in the response headers; this rewrites
/// those headers so unary and streaming calls fail alike, with the same `ErrorInfo`.
#[derive(Clone, Copy)]
pub(crate) struct FramingErrorsLayer;

impl<S> tower::Layer<S> for FramingErrorsLayer {
    type Service = FramingErrors<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FramingErrors(inner)
    }
}

/// See [`FramingErrorsLayer`].
#[derive(Clone)]
pub(crate) struct FramingErrors<S>(S);

impl<S, Req, B> tower::Service<Req> for FramingErrors<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<http::Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let rewritten = Status::from_header_map(res.headers()).and_then(|s| ApiError::from_framing(&s));
            if let Some(e) = rewritten {
                let h = res.headers_mut();
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    h.remove(name);
                }
                if let Err(e) = Status::from(e).add_header(h) {
                    error!(error = %e, "could not encode a framing error");
                }
            }
            Ok(res)
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::Unavailable("node is shutting down".into()),
            StoreError::Unsupported(message) => {
                Self::FailedPrecondition { reason: Reason::NotSupportedByStore, message }
            }
            StoreError::Unavailable(why) => Self::Unavailable(format!("storage unavailable, try again: {why}")),
            e @ (StoreError::Corrupt { .. } | StoreError::Panicked(_)) => Self::Internal(e.to_string()),
        }
    }
}

impl From<QueryRefusal> for ApiError {
    fn from(e: QueryRefusal) -> Self {
        let message = e.to_string();
        match e {
            QueryRefusal::Invalid(field, description) => Self::invalid(field, description),
            QueryRefusal::PurposeRequired => Self::invalid("purpose", "a permissible purpose is required"),
            QueryRefusal::PurposeNotAccepted(_) => {
                Self::PermissionDenied { reason: Reason::PurposeNotAccepted, message }
            }
            QueryRefusal::ConsentRequired(_) => Self::FailedPrecondition { reason: Reason::ConsentRequired, message },
            QueryRefusal::SubjectFrozen(_) => Self::FailedPrecondition { reason: Reason::SubjectFrozen, message },
            // A consent that does not authorise this query: PERMISSION_DENIED, each with its
            // reason; an expired one is a state the caller fixes with a fresh token.
            QueryRefusal::ConsentInvalid(_) => Self::PermissionDenied { reason: Reason::ConsentInvalid, message },
            QueryRefusal::ConsentMismatch(_) => Self::PermissionDenied { reason: Reason::ConsentMismatch, message },
            QueryRefusal::ConsentReplayed => Self::PermissionDenied { reason: Reason::ConsentReplayed, message },
            QueryRefusal::ConsentExpired(_) => Self::FailedPrecondition { reason: Reason::ConsentExpired, message },
            QueryRefusal::ReportLimit { .. } => Self::Quota { reason: Reason::ReportLimitExceeded, message },
        }
    }
}

impl From<DisputeError> for ApiError {
    fn from(e: DisputeError) -> Self {
        match e {
            DisputeError::Invalid(field, description) => Self::invalid(field, description),
            DisputeError::NotFound(m) => Self::NotFound(m),
            DisputeError::NotAllowed(message) => Self::PermissionDenied { reason: Reason::NotDisputeParty, message },
            DisputeError::ConsentRequired => {
                Self::FailedPrecondition { reason: Reason::ConsentRequired, message: e.to_string() }
            }
            DisputeError::Consent(r) => r.into(),
            DisputeError::Store(s) => s.into(),
        }
    }
}

impl From<ProtectionError> for ApiError {
    fn from(e: ProtectionError) -> Self {
        match e {
            ProtectionError::Invalid(field, description) => Self::invalid(field, description),
            ProtectionError::NotSender(field, why) => {
                Self::PermissionDenied { reason: Reason::NotNoticeSender, message: format!("{field} {why}") }
            }
            ProtectionError::Refused(r) => r.into(),
            ProtectionError::Store(s) => s.into(),
        }
    }
}

impl From<crate::app::answer::AnswerError> for ApiError {
    fn from(e: crate::app::answer::AnswerError) -> Self {
        match e {
            crate::app::answer::AnswerError::Refused(r) => r.into(),
            crate::app::answer::AnswerError::Frozen { freeze } => Self::Frozen {
                message: QueryRefusal::SubjectFrozen(crate::app::answer::FROZEN).to_string(),
                freeze: freeze.map(|c| c.to_metadata()).unwrap_or_default().into_iter().collect(),
            },
            crate::app::answer::AnswerError::Store(s) => s.into(),
        }
    }
}

impl From<crate::app::locator::LookupError> for ApiError {
    fn from(e: crate::app::locator::LookupError) -> Self {
        match e {
            crate::app::locator::LookupError::Locator(e) => e.into(),
            crate::app::locator::LookupError::Answer(e) => e.into(),
        }
    }
}

impl From<crate::app::locator::LocatorError> for ApiError {
    fn from(e: crate::app::locator::LocatorError) -> Self {
        use crate::app::locator::LocatorError;
        match e {
            LocatorError::NotALocator => {
                Self::FailedPrecondition { reason: Reason::NotALocator, message: e.to_string() }
            }
            LocatorError::Invalid(field, why) => Self::invalid(field, why),
            LocatorError::Contended => Self::Unavailable(e.to_string()),
            LocatorError::Store(s) => s.into(),
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

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::UnknownPolicy { .. } => Self::NotFound(e.to_string()),
            DecideError::Score(s) => s.into(),
        }
    }
}

impl From<AttestError> for ApiError {
    fn from(e: AttestError) -> Self {
        match e {
            AttestError::Invalid { field, why } => Self::invalid(field, why),
            AttestError::NoKey => Self::FailedPrecondition { reason: Reason::NoLogKey, message: e.to_string() },
            AttestError::Decide(d) => d.into(),
            AttestError::Store(s) => s.into(),
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
                Status::with_error_details(Code::PermissionDenied, message, info(reason.as_str()))
            }
            ApiError::FailedPrecondition { reason, message } => {
                Status::with_error_details(Code::FailedPrecondition, message, info(reason.as_str()))
            }
            ApiError::Frozen { message, freeze } => {
                let mut d = ErrorDetails::new();
                d.set_error_info(Reason::SubjectFrozen.as_str(), ERROR_DOMAIN, freeze);
                Status::with_error_details(Code::FailedPrecondition, message, d)
            }
            ApiError::ResourceExhausted(m) => {
                Status::with_error_details(Code::ResourceExhausted, m, info("RESOURCE_EXHAUSTED"))
            }
            ApiError::Quota { reason, message } => {
                Status::with_error_details(Code::ResourceExhausted, message, info(reason.as_str()))
            }
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::Internal(detail) => {
                error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicked task becomes INTERNAL in one place, whichever way it surfaces (a spawned
    /// task's join error, or the storage writer's report of a change it rolled back), and the
    /// caller never sees the panic's text.
    #[tokio::test]
    async fn a_panicked_task_is_internal_without_details() {
        let joined = tokio::spawn(async { panic!("secret detail") }).await.unwrap_err();
        let from_join = Status::from(ApiError::task_failed(joined));
        let from_store = Status::from(ApiError::from(StoreError::Panicked("secret detail".into())));
        for s in [from_join, from_store] {
            assert_eq!(s.code(), Code::Internal);
            assert_eq!(s.message(), "internal error");
        }
        // A store that is closing or unreachable is UNAVAILABLE (retry), not INTERNAL.
        assert_eq!(Status::from(ApiError::from(StoreError::Closed)).code(), Code::Unavailable);
        assert_eq!(Status::from(ApiError::from(StoreError::Unavailable("disk".into()))).code(), Code::Unavailable);
    }
}
