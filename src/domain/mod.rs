//! The domain: credit records and their rules, subject pseudonyms, purposes and inquiries,
//! disputes, retention windows and the clock they read. No tonic, no storage backend, no async
//! runtime.

pub(crate) mod clock;
pub(crate) mod dispute;
pub(crate) mod inquiry;
pub(crate) mod peer_time;
pub(crate) mod protection;
pub(crate) mod record;
pub(crate) mod retention;
pub(crate) mod subject;
