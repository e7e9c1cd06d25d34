//! The domain: credit records and their rules, subject pseudonyms, purposes and inquiries,
//! disputes, retention windows and the clock they read. No tonic, no storage backend, no async
//! runtime.

pub mod clock;
pub mod dispute;
pub mod inquiry;
pub mod peer_time;
pub mod protection;
pub mod record;
pub mod retention;
pub mod subject;
