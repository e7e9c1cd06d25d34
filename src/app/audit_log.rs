//! The regulator's view of this node's log: entries, the signed checkpoint, inclusion and
//! consistency proofs. Every read is itself logged, durably, before it is answered, so it is in
//! what the next checkpoint covers.

use crate::{
    app::{journal::Journal, proofs::Prover},
    audit::{merkle::Hash, Entry},
    storage::{DynStorage, StoreError},
    wire::pb::bureau::v1 as pb,
};

/// The audit-log use cases. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AuditLog {
    /// The store the log lives in.
    store: DynStorage,
    /// Signs checkpoints, if the node has a checkpoint key.
    prover: Option<Prover>,
    /// Where reads are logged.
    journal: Journal,
}

impl AuditLog {
    /// The log in `store`, signed by `prover`, reads logged in `journal`.
    pub(crate) fn new(store: DynStorage, prover: Option<Prover>, journal: Journal) -> Self {
        Self { store, prover, journal }
    }

    /// Logs that `regulator` read `what`, durably.
    pub(crate) async fn log_read(&self, regulator: &str, what: &str) -> Result<(), StoreError> {
        let entry = Entry::regulator_read(self.journal.now(), regulator, self.journal.institution(), what);
        self.journal.record(vec![entry]).await
    }

    /// Up to `limit` entries from index `from`, as (index, leaf bytes).
    pub(crate) async fn entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.store.audit_entries(from, limit).await
    }

    /// The signed checkpoint at the durable head; `None` when the node has no checkpoint key.
    pub(crate) async fn checkpoint(&self) -> Result<Option<pb::Checkpoint>, StoreError> {
        match &self.prover {
            Some(p) => Ok(Some(p.signed_head().await?.0)),
            None => Ok(None),
        }
    }

    /// Entries appended so far (visible, not necessarily durable).
    pub(crate) async fn size(&self) -> Result<u64, StoreError> {
        self.store.audit_size().await
    }

    /// RFC 9162 inclusion proof of entry `index` in the tree of `size`.
    pub(crate) async fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.store.audit_inclusion(index, size).await
    }

    /// RFC 9162 consistency proof between sizes `m` and `n`.
    pub(crate) async fn consistency(&self, m: u64, n: u64) -> Result<Vec<Hash>, StoreError> {
        self.store.audit_consistency(m, n).await
    }
}
