//! The tamper-evident audit log, storage-agnostic: entries (the leaves), RFC 6962 Merkle math,
//! and C2SP signed checkpoints. Storage backends keep the bytes and subtree hashes.

pub mod checkpoint;
mod entry;
mod lifecycle_entries;
pub mod merkle;

pub use entry::{About, Action, Entry};
