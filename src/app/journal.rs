//! The node's one way to log what is not part of a data change (a score served, a decision, a
//! refusal, a regulator's read): entries made by `audit`'s typed constructors at the node's
//! clock, appended and made durable before the caller answers anyone.

use chrono::{DateTime, Utc};

use crate::{
    audit::Entry,
    domain::clock::Clock,
    storage::{DynStorage, StoreError},
};

/// Appends entries durably and tells the time by the node's clock. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Journal {
    /// This node's institution (the counterparty of refusals and reads).
    institution: String,
    /// The store the log lives in.
    store: DynStorage,
    /// The clock every entry's time is read from.
    clock: Clock,
}

impl Journal {
    /// A journal over `store`, for `institution`'s node.
    pub(crate) fn new(institution: String, store: DynStorage, clock: Clock) -> Self {
        Self { institution, store, clock }
    }

    /// Now, by the node's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// This node's institution.
    pub(crate) fn institution(&self) -> &str {
        &self.institution
    }

    /// Appends `entries` in order and returns once they are durable (group commit with every
    /// concurrent caller).
    pub(crate) async fn record(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        self.store.append_audit_durably(entries).await.map(drop)
    }

    /// Logs that a licensed caller was refused for `reason`. A failure to log is itself logged
    /// and never hides the refusal from the caller.
    pub(crate) async fn refusal(&self, caller_id: &str, caller: String, subject: &str, reason: &str) {
        let entry = Entry::refusal(self.now(), caller_id, &self.institution, subject, reason, caller);
        if let Err(err) = self.record(vec![entry]).await {
            tracing::error!(error = %err, "could not log a refusal");
        }
    }
}
