//! The institution's own maintenance of its node: a consistent backup streamed while the node
//! serves, and the retention purge on demand.

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    app::lifecycle::Lifecycle,
    storage::{BackupPart, StoreError},
};

/// The maintenance use cases. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Admin {
    life: Lifecycle,
}

impl Admin {
    /// Maintenance of `life`'s store.
    pub(crate) fn new(life: Lifecycle) -> Self {
        Self { life }
    }

    /// Starts a consistent snapshot of the whole store: its parts arrive on the receiver (the
    /// log state first), and the task tells how the reading ended. Writes wait meanwhile.
    pub(crate) fn backup(&self) -> (mpsc::Receiver<BackupPart>, JoinHandle<Result<(), StoreError>>) {
        let (tx, rx) = mpsc::channel(4);
        let store = self.life.store.clone();
        (rx, tokio::spawn(async move { store.backup(tx).await }))
    }

    /// Deletes what has expired now; returns (records, inquiries) deleted.
    pub(crate) async fn purge(&self) -> Result<(usize, usize), StoreError> {
        self.life.purge().await
    }
}
