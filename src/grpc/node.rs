//! What every service of one node shares: who the node is, its limits, and its use cases — the
//! only way a handler reaches the store.

use crate::{app::UseCases, config::Limits};

/// The shared state of a running node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Node {
    /// The institution this node serves.
    pub institution: String,
    /// The federation's name; callers from another are refused.
    pub federation: String,
    /// Request limits.
    pub limits: Limits,
    /// The use cases.
    pub app: UseCases,
}

impl std::ops::Deref for Node {
    type Target = UseCases;

    /// Handlers name a use case directly (`node.records`, `node.scorer`): the node is its
    /// identity plus its use cases, nothing else.
    fn deref(&self) -> &UseCases {
        &self.app
    }
}
