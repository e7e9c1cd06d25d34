//! Why a peer did not take a call, typed from the gRPC status and its `google.rpc` details.

use tonic::Code;
use tonic_types::StatusExt;

/// Why a peer did not take a call, as the use cases see it: a refusal it would give again, or
/// a failure worth retrying. Read from the gRPC status and its `google.rpc` details, so
/// callers match on a type, never on a message's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerError {
    /// The peer answered and refused: the same call would be refused again.
    #[error("{0}")]
    Refused(Refusal),
    /// Not now: unreachable, timed out, overloaded or failing (`code: message`).
    #[error("{0}")]
    Unavailable(String),
}

/// A peer's refusal: why (from the status code and its details) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Why, typed.
    pub reason: RefusalReason,
    /// The peer's message, for logs and for the caller.
    pub message: String,
}

/// Why a peer refused, after the gRPC code it answered with and its `google.rpc` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefusalReason {
    /// NOT_FOUND: it holds no such thing.
    NotFound,
    /// INVALID_ARGUMENT: the request's fields it named (`google.rpc.BadRequest`), maybe none.
    InvalidArgument {
        /// The request paths of the fields at fault.
        fields: Vec<String>,
    },
    /// PERMISSION_DENIED, with its `google.rpc.ErrorInfo` reason (e.g. `NOT_DISPUTE_PARTY`).
    PermissionDenied {
        /// The `ErrorInfo.reason`, empty when the peer sent none.
        reason: String,
    },
    /// FAILED_PRECONDITION, with its `google.rpc.ErrorInfo` reason (e.g. `SUBJECT_FROZEN`).
    FailedPrecondition {
        /// The `ErrorInfo.reason`, empty when the peer sent none.
        reason: String,
    },
}

impl RefusalReason {
    /// The gRPC code's name as logs and stored rejections have always spelled it
    /// (`NotFound`, `InvalidArgument`, …).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::InvalidArgument { .. } => "InvalidArgument",
            Self::PermissionDenied { .. } => "PermissionDenied",
            Self::FailedPrecondition { .. } => "FailedPrecondition",
        }
    }
}

impl Refusal {
    /// True when the peer named `field` as at fault.
    pub(crate) fn names_field(&self, field: &str) -> bool {
        matches!(&self.reason, RefusalReason::InvalidArgument { fields } if fields.iter().any(|f| f == field))
    }
}

impl std::fmt::Display for Refusal {
    /// `Code: message`, as a stored rejection reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.code(), self.message)
    }
}

impl From<tonic::Status> for PeerError {
    fn from(s: tonic::Status) -> Self {
        let info = || s.get_details_error_info().map(|i| i.reason).unwrap_or_default();
        let reason = match s.code() {
            Code::NotFound => RefusalReason::NotFound,
            Code::InvalidArgument => RefusalReason::InvalidArgument {
                fields: s
                    .get_details_bad_request()
                    .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                    .unwrap_or_default(),
            },
            Code::PermissionDenied => RefusalReason::PermissionDenied { reason: info() },
            Code::FailedPrecondition => RefusalReason::FailedPrecondition { reason: info() },
            code => return Self::Unavailable(format!("{code:?}: {}", s.message())),
        };
        Self::Refused(Refusal { reason, message: s.message().to_owned() })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};

    use super::{PeerError, Refusal, RefusalReason};

    /// A status with `google.rpc` details, as a peer sends one (shared with the peer client's tests).
    pub(crate) fn status(code: Code, message: &str, details: impl FnOnce(&mut ErrorDetails)) -> Status {
        let mut d = ErrorDetails::new();
        details(&mut d);
        Status::with_error_details(code, message, d)
    }

    /// A peer's refusal reads from its code and `google.rpc` details, not its message: the
    /// field it names, the `ErrorInfo` reason it gives; the code's name stays as logs and
    /// stored rejections have always spelt it.
    #[test]
    fn a_refusal_is_typed_from_the_code_and_its_details() {
        let mismatch = PeerError::from(status(Code::InvalidArgument, "no word of the field here", |d| {
            d.set_error_info("INVALID_ARGUMENT", "bureau.v1", std::collections::HashMap::new());
            d.add_bad_request_violation("subject_id", "does not match the disputed record's subject");
        }));
        let PeerError::Refused(r) = mismatch else { panic!("a refusal: {mismatch:?}") };
        assert!(r.names_field("subject_id"));
        assert!(!r.names_field("record"));
        assert_eq!(r.to_string(), "InvalidArgument: no word of the field here");

        let denied = PeerError::from(status(Code::PermissionDenied, "only b resolves it", |d| {
            d.set_error_info("NOT_DISPUTE_PARTY", "bureau.v1", std::collections::HashMap::new());
        }));
        let reason = RefusalReason::PermissionDenied { reason: "NOT_DISPUTE_PARTY".into() };
        assert_eq!(denied, PeerError::Refused(Refusal { reason, message: "only b resolves it".into() }));

        // A message that names a field is not a field violation.
        let bare = PeerError::from(Status::invalid_argument("invalid subject_id: whatever"));
        let PeerError::Refused(r) = bare else { panic!("a refusal") };
        assert!(!r.names_field("subject_id"), "read from the details, never from the text");
        assert_eq!(PeerError::from(Status::not_found("gone")).to_string(), "NotFound: gone");
        let frozen = PeerError::from(Status::failed_precondition("frozen"));
        assert!(matches!(frozen, PeerError::Refused(Refusal { reason: RefusalReason::FailedPrecondition { .. }, .. })));
    }

    /// Anything but a refusal is worth trying again, and says which code it was.
    #[test]
    fn failures_are_unavailable_with_their_code() {
        for (code, name) in [
            (Code::Unavailable, "Unavailable"),
            (Code::DeadlineExceeded, "DeadlineExceeded"),
            (Code::Internal, "Internal"),
            (Code::ResourceExhausted, "ResourceExhausted"),
        ] {
            assert_eq!(PeerError::from(Status::new(code, "x")), PeerError::Unavailable(format!("{name}: x")));
        }
    }
}
