//! What every service of one node shares: who the node is, its store, its scorer and limits.

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    app::{disputes::Disputes, lifecycle::Lifecycle, protection::Protections, score::Scorer},
    config::{Limits, PolicyConfig},
    domain::inquiry::Purpose,
    storage::DynStorage,
};

/// The shared state of a running node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Node {
    /// The institution this node serves.
    pub institution: String,
    /// The federation's name; callers from another are refused.
    pub federation: String,
    /// The node's storage.
    pub store: DynStorage,
    /// Request limits.
    pub limits: Limits,
    /// Purposes this node answers peer queries for.
    pub accepted_purposes: Vec<Purpose>,
    /// Federated scoring: peers, model, deadline.
    pub scorer: Scorer,
    /// Named decision policies.
    pub policies: Arc<BTreeMap<String, PolicyConfig>>,
    /// The key that signs audit checkpoints, if configured.
    pub log_key: Option<Arc<ed25519_dalek::SigningKey>>,
    /// The store with its read rules (retention, dispute suppression) and clock.
    pub life: Lifecycle,
    /// Disputes.
    pub disputes: Disputes,
    /// People's freezes and fraud alerts.
    pub protections: Protections,
}

impl Node {
    /// The audit log's origin (and checkpoint key name): `<federation>/institution/<id>`.
    pub(crate) fn origin(&self) -> String {
        format!("{}/institution/{}", self.federation, self.institution)
    }
}
