//! The tamper-evident audit log, storage-agnostic: entries (the leaves), RFC 6962 Merkle math,
//! and C2SP signed checkpoints. Storage backends keep the bytes and subtree hashes.

pub mod attestation;
pub(crate) mod checkpoint;
mod entry;
mod lifecycle_entries;
pub mod merkle;

pub(crate) use entry::About;
pub use entry::{Action, Entry};
