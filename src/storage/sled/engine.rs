//! The sled store's three threads: the **writer** (owns every write: groups queued changes,
//! appends each group to the write-ahead log and applies it to sled), the **flusher** (marks and
//! `fdatasync`s the log when a waiter asks or a poll finds writes unsynced, moves the audit
//! log's mark, then answers the waiters) and the
//! **checkpointer** (flushes and syncs sled in the background so log segments can be reused).

use std::sync::Arc;

use sled::Tree;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::{
    backup::export,
    commits::{Commits, Point},
    mark, node_reader, space, unavailable, wal,
    writeset::{CommitError, WriteSet},
};
use crate::{
    audit::merkle,
    storage::{BackupPart, StoreError},
};

/// Most changes the writer applies as one batch.
pub(super) const MAX_GROUP: usize = 256;
/// How often the checkpointer looks for work.
const CHECKPOINT_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Most time sled's cache may hold writes that only the write-ahead log has on disk.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// What the writer calls once its group is committed (or failed).
pub(super) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// One change: runs over the group's write set; says whether it failed (to be rolled back).
pub(super) type Job = Box<dyn FnOnce(&mut WriteSet<'_>) -> (bool, Finish) + Send>;

pub(super) enum WriteMsg {
    Job(Job),
    /// Finish the queue and stop.
    Stop(oneshot::Sender<()>),
    /// Commit what is applied, then stream the whole ledger while no write runs.
    Backup(tokio::sync::mpsc::Sender<BackupPart>, oneshot::Sender<Result<(), StoreError>>),
}

/// Checkpoint a last time and stop.
pub(super) struct CheckpointStop(pub(super) oneshot::Sender<Result<(), StoreError>>);

/// The writer thread: groups queued changes into one atomic batch each round.
pub(super) fn writer(
    ledger: Tree,
    mut log: wal::Writer,
    commits: Arc<Commits>,
    mut rx: mpsc::Receiver<WriteMsg>,
    failure: Arc<space::Failure>,
    mut log_size: u64,
) {
    let mut stop = None;
    while stop.is_none() {
        let Some(first) = rx.blocking_recv() else { break };
        let mut backup = None;
        let mut ws = WriteSet::new(&ledger, log_size);
        let mut finishers: Vec<Finish> = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WriteMsg::Stop(tx) => {
                    stop = Some(tx);
                    break;
                }
                WriteMsg::Backup(tx, done) => {
                    backup = Some((tx, done));
                    break;
                }
                WriteMsg::Job(job) => {
                    let savepoint = ws.savepoint();
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut ws))) {
                        Ok((false, finish)) => finishers.push(finish),
                        Ok((true, finish)) => {
                            ws.rollback(savepoint);
                            finish(Ok(()));
                        }
                        // The job's reply sender is gone with it; its caller learns of the panic.
                        Err(_) => {
                            ws.rollback(savepoint);
                            error!("a storage change panicked; rolled back");
                        }
                    }
                }
            }
            if finishers.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        let new_size = ws.log_size;
        metrics::histogram!("bureau_store_commit_group_size", "backend" => "sled").record(finishers.len() as f64);
        let result = match failure.get() {
            // No write after an I/O error or with the disk nearly full, so a node never takes
            // writes it could not checkpoint, and sled never errs (reads go on: [`space`]).
            Some(why) => Err(StoreError::Unavailable(why)),
            None if ws.is_empty() => Ok(()),
            None => failure.check_space().and_then(|()| commit(ws, &mut log, &commits)),
        };
        match &result {
            Ok(()) => {
                log_size = new_size;
            }
            Err(e) => {
                error!(error = %e, "storage write failed; nothing of its group was applied");
                failure.record(e);
            }
        }
        for finish in finishers {
            finish(result.clone());
        }
        if let Some((tx, done)) = backup {
            let _ = done.send(export(&ledger, log_size, &tx));
        }
    }
    // Dropping the receiver fails whatever is still queued with `Closed`.
    drop(rx);
    if let Some(tx) = stop {
        let _ = tx.send(());
    }
}

/// Writes the group to the write-ahead log, then applies it to sled (taking the record back if
/// sled refuses the first write; if it refuses a later one, the record stays, so the next start
/// applies the whole group, and this one fails the store).
fn commit(mut ws: WriteSet<'_>, log: &mut wal::Writer, commits: &Commits) -> Result<(), StoreError> {
    let at = Point { seq: log.next_seq(), size: ws.log_size };
    ws.insert(wal::SEQ_KEY, &at.seq.to_be_bytes()[..]);
    let written = log.append(ws.changes()).map_err(|e| unavailable(format!("write-ahead log: {e}")))?;
    commits.written(at);
    match ws.commit(wal::SEQ_KEY) {
        Ok(()) => {
            commits.applied(at);
            Ok(())
        }
        Err(CommitError { error, partial: false }) => {
            if let Err(undo) = log.unwrite(written) {
                error!(error = %undo, "could not take back a write-ahead record sled refused");
            }
            Err(error.into())
        }
        Err(CommitError { error, partial: true }) => Err(unavailable(format!(
            "sled refused part of a group ({error}); its write-ahead record is kept and applied whole at the next start"
        ))),
    }
}

/// Keeps the high-water mark ([`mark`]) after each flush.
pub(super) struct Marker {
    pub(super) ledger: Tree,
    pub(super) file: std::fs::File,
    pub(super) marked: u64,
}

impl Marker {
    fn advance(&mut self, size: u64) {
        if size <= self.marked {
            return;
        }
        let written = merkle::Tree::new(node_reader(&self.ledger))
            .root(size)
            .map_err(|e| e.to_string())
            .and_then(|root| mark::write(&self.file, size, &root).map_err(|e| e.to_string()));
        match written {
            Ok(()) => self.marked = size,
            Err(e) => error!(error = %e, "could not record the audit log's high-water mark"),
        }
    }
}

/// The flusher thread: one `fdatasync` of the write-ahead log for everything written since the
/// last, started as soon as the writer has written (see [`commits`]).
pub(super) fn flusher(
    wal: Arc<wal::Shared>,
    fsync: bool,
    mut marker: Marker,
    commits: Arc<Commits>,
    failure: Arc<space::Failure>,
) {
    while let Some((at, needs_sync)) = commits.next() {
        if needs_sync {
            let started = std::time::Instant::now();
            // The mark of what this sync covers goes out with it (see [`wal`]).
            let result = wal.sync(at.seq, fsync);
            metrics::histogram!("bureau_store_commit_duration_seconds", "backend" => "sled")
                .record(started.elapsed().as_secs_f64());
            if let Err(e) = result {
                let e = unavailable(format!("fdatasync of the write-ahead log: {e}"));
                error!(error = %e, "store sync failed");
                failure.record(&e);
                commits.failed(e.to_string());
                return;
            }
            // The audit log's mark is moved before any writer hears "durable", so it never
            // lags an acknowledgement.
            marker.advance(commits.synced(at));
            commits.release(at);
        } else {
            // The durable head: synced, and applied (which may finish after the sync).
            marker.advance(commits.durable());
        }
    }
}

/// The checkpointer thread: flushes sled and syncs its file once a segment of the write-ahead
/// log is full or [`CHECKPOINT_EVERY`] after a write, then lets the log reuse what that covers.
/// A failure stops it (sled writes nothing after one) and fails the writer's next groups.
pub(super) fn checkpointer(
    db: sled::Db,
    data_file: Option<std::fs::File>,
    wal: Arc<wal::Shared>,
    commits: Arc<Commits>,
    rx: std::sync::mpsc::Receiver<CheckpointStop>,
    failure: Arc<space::Failure>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut done = commits.applied_seq();
    let mut last = std::time::Instant::now();
    let mut broken = false;
    let checkpoint = |covered: u64| -> Result<(), StoreError> {
        db.flush()?;
        if let Some(f) = &data_file {
            f.sync_data().map_err(|e| unavailable(format!("fdatasync: {e}")))?;
        }
        wal.checkpointed(covered).map_err(|e| unavailable(format!("write-ahead log: {e}")))
    };
    loop {
        let stop = match rx.recv_timeout(if broken { CHECKPOINT_EVERY } else { CHECKPOINT_POLL }) {
            Ok(CheckpointStop(tx)) => Some(tx),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A disk filled by someone else stops writes too, before sled finds it full.
        let _ = failure.check_space();
        // Writes nobody waited for are synced within a poll.
        commits.nudge();
        let covered = commits.applied_seq();
        let due = wal.full_segments() > 0 || (covered > done && last.elapsed() >= CHECKPOINT_EVERY);
        let result = if broken {
            Ok(())
        } else if due || stop.is_some() || !wal.spares_ready() {
            let started = std::time::Instant::now();
            let r = checkpoint(covered);
            metrics::histogram!("bureau_store_checkpoint_duration_seconds", "backend" => "sled")
                .record(started.elapsed().as_secs_f64());
            if r.is_ok() {
                done = covered;
                last = std::time::Instant::now();
            }
            r
        } else {
            Ok(())
        };
        if let Err(e) = &result {
            error!(error = %e, "store checkpoint failed; the store takes no more writes");
            failure.record(e);
            broken = true;
        }
        if let Some(tx) = stop {
            let _ = tx.send(result);
            return;
        }
    }
}
