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
/// How often the checkpointer looks for work while there is some.
const CHECKPOINT_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// How often it looks on a store that wrote nothing since its last look: an idle node (most
/// members of a large federation, most of the time) wakes once a second, not ten times.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Most time sled's cache may hold writes that only the write-ahead log has on disk.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// What the writer calls once its group is committed (or failed).
pub(super) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// One change: runs over the group's write set; says whether it failed (to be rolled back).
pub(super) type Job = Box<dyn FnOnce(&mut WriteSet<'_>) -> (bool, Finish) + Send>;

pub(super) enum WriteMsg {
    /// A change; `true` when its caller syncs right after (see [`Syncer::now_or_ask`]).
    Job(Job, bool),
    /// Finish the queue and stop.
    Stop(oneshot::Sender<()>),
    /// Commit what is applied, then stream the whole ledger while no write runs.
    Backup(tokio::sync::mpsc::Sender<BackupPart>, oneshot::Sender<Result<(), StoreError>>),
}

/// Checkpoint a last time and stop.
pub(super) struct CheckpointStop(pub(super) oneshot::Sender<Result<(), StoreError>>);

/// The writer thread: groups queued changes into one write-ahead record each round.
pub(super) fn writer(
    ledger: Tree,
    mut log: wal::Writer,
    syncer: Arc<Syncer>,
    mut rx: mpsc::Receiver<WriteMsg>,
    mut log_size: u64,
) {
    let (commits, failure) = (&syncer.commits, &syncer.failure);
    // Looked up once: a lookup hashes the name and labels, once per group otherwise.
    let group_size = metrics::histogram!("bureau_store_commit_group_size", "backend" => "sled");
    let mut stop = None;
    while stop.is_none() {
        let Some(first) = rx.blocking_recv() else { break };
        let mut backup = None;
        let mut durable = false;
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
                WriteMsg::Job(job, sync) => {
                    let savepoint = ws.savepoint();
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut ws))) {
                        Ok((false, finish)) => {
                            durable |= sync;
                            finishers.push(finish);
                        }
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
        group_size.record(finishers.len() as f64);
        let result = match failure.get() {
            // No write after an I/O error or with the disk nearly full, so a node never takes
            // writes it could not checkpoint, and sled never errs (reads go on: [`space`]).
            Some(why) => Err(StoreError::Unavailable(why)),
            None if ws.is_empty() => Ok(None),
            None => failure.check_space().and_then(|()| commit(ws, &mut log, commits)).map(Some),
        };
        let result = match result {
            Ok(at) => {
                log_size = new_size;
                if let (Some(at), true) = (at, durable) {
                    // Before the callers hear back, so their sync finds it done.
                    syncer.now_or_ask(at, rx.is_empty());
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(()) => {}
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
fn commit(mut ws: WriteSet<'_>, log: &mut wal::Writer, commits: &Commits) -> Result<Point, StoreError> {
    let at = Point { seq: log.next_seq(), size: ws.log_size };
    ws.insert(wal::SEQ_KEY, &at.seq.to_be_bytes()[..]);
    let written = log.append(ws.changes()).map_err(|e| unavailable(format!("write-ahead log: {e}")))?;
    commits.written(at);
    match ws.commit(wal::SEQ_KEY) {
        Ok(()) => {
            commits.applied(at);
            Ok(at)
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

/// Makes the write-ahead log durable and moves the marks: the flusher's work, which the writer
/// does itself for a durable group when nothing else is queued (a quiet node: every member of a
/// large federation), saving its callers a hand-off to the flusher and back.
pub(super) struct Syncer {
    pub(super) wal: Arc<wal::Shared>,
    pub(super) fsync: bool,
    /// Held for a whole sync, so marks and releases go in order.
    pub(super) marker: std::sync::Mutex<Marker>,
    pub(super) commits: Arc<Commits>,
    pub(super) failure: Arc<space::Failure>,
    /// `bureau_store_commit_duration_seconds`, looked up once.
    pub(super) sync_duration: metrics::Histogram,
}

impl Syncer {
    /// Syncs every record up to `at` and tells its waiters; `false` when the sync failed (every
    /// wait fails from then on).
    fn sync(&self, marker: &mut Marker, at: Point) -> bool {
        let started = std::time::Instant::now();
        // The mark of what this sync covers goes out with it (see [`wal`]).
        let result = self.wal.sync(at.seq, self.fsync);
        self.sync_duration.record(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            let e = unavailable(format!("fdatasync of the write-ahead log: {e}"));
            error!(error = %e, "store sync failed");
            self.failure.record(&e);
            self.commits.failed(e.to_string());
            return false;
        }
        // The audit log's mark is moved before any writer hears "durable", so it never lags an
        // acknowledgement.
        marker.advance(self.commits.synced(at));
        self.commits.release(at);
        true
    }

    /// For the writer, after a group its callers will sync: syncs it now when nothing else is
    /// `queued` and the flusher is idle, else asks the flusher.
    fn now_or_ask(&self, at: Point, queued_nothing: bool) {
        let marker = if queued_nothing { self.marker.try_lock().ok() } else { None };
        match marker {
            Some(mut m) if self.failure.get().is_none() => {
                if self.commits.synced_seq() < at.seq {
                    self.sync(&mut m, at);
                }
            }
            _ => self.commits.want(at.seq),
        }
    }
}

/// The flusher thread: one `fdatasync` of the write-ahead log for everything written since the
/// last, when somebody waits for it (see [`commits`]).
pub(super) fn flusher(syncer: Arc<Syncer>) {
    while let Some((at, needs_sync)) = syncer.commits.next() {
        let mut marker = syncer.marker.lock().unwrap_or_else(|p| p.into_inner());
        // The writer may have synced it meanwhile.
        if needs_sync && syncer.commits.synced_seq() < at.seq {
            if !syncer.sync(&mut marker, at) {
                return;
            }
        } else {
            // The durable head: synced, and applied (which may finish after the sync).
            marker.advance(syncer.commits.durable());
        }
    }
}

/// Everything applied is checkpointed (`done`) and synced: nothing for the checkpointer to do.
fn covered_all(commits: &Commits, done: u64) -> bool {
    commits.applied_seq() == done && commits.synced_seq() >= done
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
    let mut seen = done;
    loop {
        let quiet = commits.written_seq() == seen && covered_all(&commits, done);
        let poll = if broken || quiet { IDLE_POLL } else { CHECKPOINT_POLL };
        let stop = match rx.recv_timeout(poll) {
            Ok(CheckpointStop(tx)) => Some(tx),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        seen = commits.written_seq();
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
