//! The gRPC layer: thin handlers that authorise, validate, call the use cases and map their
//! results to messages; the one error→status map; page tokens; the node state they share.

pub(crate) mod admin;
pub(crate) mod attest;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod decisions;
pub(crate) mod disputes;
pub(crate) mod error;
pub(crate) mod federation;
pub(crate) mod locator;
pub(crate) mod metrics;
pub(crate) mod node;
pub(crate) mod records;
pub(crate) mod scoring;
pub(crate) mod subjects;
pub(crate) mod token;

/// Page size rules shared by every list call: 0 means `default`, above `max` is `max`,
/// negative is an error.
pub(crate) fn page_size(requested: i32, default: usize, max: usize) -> Result<usize, error::ApiError> {
    match requested {
        n if n < 0 => Err(error::ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok((n as usize).min(max)),
    }
}

/// Logs a refusal of an identified (licensed) caller: permission and precondition failures are
/// what a regulator wants to see. Other errors pass through unlogged.
pub(crate) async fn log_refusal(
    node: &crate::grpc::node::Node,
    caller: &crate::net::identity::Identity,
    subject: &str,
    e: error::ApiError,
) -> error::ApiError {
    use crate::grpc::error::ApiError;
    let reason = match &e {
        ApiError::PermissionDenied { reason, .. }
        | ApiError::FailedPrecondition { reason, .. }
        | ApiError::Quota { reason, .. } => reason.as_str(),
        ApiError::Frozen { .. } => error::Reason::SubjectFrozen.as_str(),
        _ => return e,
    };
    node.journal.refusal(&caller.id, caller.to_string(), subject, reason).await;
    e
}

/// This call's hop in the caller's W3C trace (a child of the span its `traceparent` names), or
/// a new trace when it sent none (or a malformed one).
pub(crate) fn trace_of<T>(req: &tonic::Request<T>) -> crate::net::trace::TraceContext {
    req.metadata()
        .get(crate::net::trace::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::net::trace::TraceContext::parse)
        .map(|caller| caller.child())
        .unwrap_or_else(crate::net::trace::TraceContext::new_root)
}

/// Runs a handler's body as the server span `method` of hop `trace` (exported when OTLP is on;
/// a refusal marks it failed with its code).
pub(crate) async fn server_span<T>(
    method: &'static str,
    trace: crate::net::trace::TraceContext,
    caller: &crate::net::identity::Identity,
    body: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    let started = std::time::SystemTime::now();
    let result = body.await;
    let attributes = vec![opentelemetry::KeyValue::new("bureau.caller", caller.to_string())];
    let error = result.as_ref().err().map(|s| format!("{:?}: {}", s.code(), s.message()));
    crate::net::otlp::record(method, crate::net::otlp::Side::Server, &trace, started, attributes, error);
    result
}
