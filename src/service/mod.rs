//! The gRPC services: thin handlers that authorise, validate, call the domain code and map its
//! results to messages.

pub mod audit;
pub mod federation;
pub mod records;
pub mod scoring;
pub mod subjects;

/// Page size rules shared by every list call: 0 means `default`, above `max` is `max`,
/// negative is an error.
pub fn page_size(requested: i32, default: usize, max: usize) -> Result<usize, crate::error::ApiError> {
    match requested {
        n if n < 0 => Err(crate::error::ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok((n as usize).min(max)),
    }
}

/// Logs a refusal of an identified (licensed) caller: permission and precondition failures are
/// what a regulator wants to see. Other errors pass through unlogged.
pub async fn log_refusal(
    node: &crate::node::Node,
    caller: &crate::identity::Identity,
    subject: &str,
    e: crate::error::ApiError,
) -> crate::error::ApiError {
    use crate::{
        audit::{Action, Entry},
        error::ApiError,
    };
    let reason = match &e {
        ApiError::PermissionDenied { reason, .. } | ApiError::FailedPrecondition { reason, .. } => *reason,
        _ => return e,
    };
    let mut entry = Entry::new(Action::Refusal, &caller.id, format!("refused:{reason}"));
    entry.counterparty = node.institution.clone();
    entry.subject_id = if crate::subject::is_valid_subject_id(subject) { subject.to_owned() } else { String::new() };
    entry.detail = caller.role.as_str().to_owned();
    let logged = node.store.append_audit(&[entry]);
    if let Err(err) = match logged {
        Ok(_) => node.store.sync().await,
        Err(err) => Err(err),
    } {
        tracing::error!(error = %err, "could not log a refusal");
    }
    e
}
