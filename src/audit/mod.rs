//! The tamper-evident audit log, storage-agnostic: entries (the leaves), RFC 6962 Merkle math,
//! C2SP signed checkpoints, their hash tiles, witnesses' cosignatures and the witness's rules.
//! Storage backends keep the bytes and subtree hashes.

pub(crate) mod checkpoint;
// The verifying half is used by the test kit until the node collects cosignatures itself.
#[cfg_attr(not(feature = "testkit"), allow(dead_code))]
pub(crate) mod cosignature;
mod entry;
mod lifecycle_entries;
pub mod merkle;
pub(crate) mod tiles;
#[cfg_attr(not(feature = "testkit"), allow(dead_code))]
pub(crate) mod witness;

pub(crate) use entry::About;
pub use entry::{Action, Entry};
