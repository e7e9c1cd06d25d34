//! The domain: credit records and their rules, subject pseudonyms, purposes and inquiries.
//! No tonic, no storage backend, no async runtime.

pub mod inquiry;
pub mod record;
pub mod subject;
