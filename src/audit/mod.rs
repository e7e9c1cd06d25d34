//! The tamper-evident audit log, storage-agnostic: entries (the leaves), RFC 6962 Merkle math,
//! C2SP signed checkpoints, their hash tiles, witnesses' cosignatures and the witness's rules.
//! Storage backends keep the bytes and subtree hashes.

pub mod attestation;
pub(crate) mod checkpoint;
pub(crate) mod cosignature;
mod entry;
mod lifecycle_entries;
pub mod merkle;
pub(crate) mod policy;
pub(crate) mod tiles;
pub(crate) mod tlog_proof;
pub(crate) mod witness;

pub(crate) use entry::About;
pub use entry::{Action, Entry};
