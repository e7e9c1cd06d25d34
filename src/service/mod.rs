//! The gRPC services: thin handlers that authorise, validate, call the domain code and map its
//! results to messages.

pub mod federation;
pub mod records;
pub mod scoring;

/// Page size rules shared by every list call: 0 means `default`, above `max` is `max`,
/// negative is an error.
pub fn page_size(requested: i32, default: usize, max: usize) -> Result<usize, crate::error::ApiError> {
    match requested {
        n if n < 0 => Err(crate::error::ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok((n as usize).min(max)),
    }
}
