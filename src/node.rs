//! What every service of one node shares: who the node is, its store and its limits.

use crate::{config::Limits, store::Store};

/// The shared state of a running node.
#[derive(Clone)]
pub struct Node {
    /// The institution this node serves.
    pub institution: String,
    /// The federation's name; callers from another are refused.
    pub federation: String,
    /// The node's storage.
    pub store: Store,
    /// Request limits.
    pub limits: Limits,
}
