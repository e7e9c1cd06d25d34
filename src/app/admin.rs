//! The institution's own maintenance of its node: a consistent backup streamed while the node
//! serves, taken only by an application the configuration names administrator and logged, and
//! the retention purge on demand.

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    app::{journal::Journal, lifecycle::Lifecycle},
    audit::Entry,
    storage::{BackupPart, StoreError},
};

/// The maintenance use cases. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Admin {
    life: Lifecycle,
    journal: Journal,
    /// The institution's applications that may take a backup.
    administrators: Vec<String>,
    /// Applications that may only ask for attestations.
    attest_only: Vec<String>,
}

impl Admin {
    /// Maintenance of `life`'s store; backups are logged in `journal` and taken only by the
    /// applications named in `administrators`.
    pub(crate) fn new(
        life: Lifecycle,
        journal: Journal,
        administrators: Vec<String>,
        attest_only: Vec<String>,
    ) -> Self {
        Self { life, journal, administrators, attest_only }
    }

    /// True when application `app` may only ask for threshold attestations, never a score.
    pub(crate) fn is_attest_only(&self, app: &str) -> bool {
        self.attest_only.iter().any(|a| a == app)
    }

    /// True when application `app` of this institution may take a backup.
    pub(crate) fn is_administrator(&self, app: &str) -> bool {
        self.administrators.iter().any(|a| a == app)
    }

    /// The applications that may take a backup, for a refusal's message.
    pub(crate) fn administrators(&self) -> &[String] {
        &self.administrators
    }

    /// Starts a consistent snapshot of the whole store for `caller`: its parts arrive on the
    /// receiver (the log state first), and the task tells how the reading ended. Writes wait
    /// meanwhile. Once the store has been read whole, the backup is logged (`backup_taken`,
    /// with the snapshot's log size) and durable before the task ends, so the caller's stream
    /// only ends cleanly once its backup is in the log.
    pub(crate) fn backup(&self, caller: String) -> (mpsc::Receiver<BackupPart>, JoinHandle<Result<(), StoreError>>) {
        let (tx, rx) = mpsc::channel(4);
        let (inner_tx, mut inner_rx) = mpsc::channel(4);
        let store = self.life.store.clone();
        let journal = self.journal.clone();
        let task = tokio::spawn(async move {
            let reading = tokio::spawn(async move { store.backup(inner_tx).await });
            let (mut tree_size, mut pairs) = (0, 0u64);
            while let Some(part) = inner_rx.recv().await {
                match &part {
                    BackupPart::Head(h) => tree_size = h.size,
                    BackupPart::Pairs(p) => pairs += p.len() as u64,
                }
                if tx.send(part).await.is_err() {
                    break; // the caller went away; the store's export stops at its next send
                }
            }
            drop(inner_rx);
            reading.await.map_err(|e| StoreError::Unavailable(format!("backup task: {e}")))??;
            if tx.is_closed() {
                return Err(StoreError::Unavailable("the backup's reader went away".into()));
            }
            let entry = Entry::backup_taken(journal.now(), journal.institution(), &caller, tree_size, pairs);
            journal.record(vec![entry]).await?;
            tracing::info!(caller = %caller, tree_size, pairs, "backup taken and logged");
            Ok(())
        });
        (rx, task)
    }

    /// Deletes what has expired now; returns (records, inquiries) deleted.
    pub(crate) async fn purge(&self) -> Result<(usize, usize), StoreError> {
        self.life.purge().await
    }
}
