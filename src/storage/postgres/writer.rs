//! The group writer: one task per process takes the queued writes (up to [`GROUP`]), applies
//! them in order over what the group read before (the version rules, compare-and-set, the log's
//! edge), and commits them as one statement. A group whose view of the log is stale (another
//! process appended meanwhile) reloads the edge and retries; a group that fails otherwise is
//! retried one change at a time, so a change that cannot be stored fails alone.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{
    frontier::Frontier,
    group::{self, AnswerReads, GroupError, Pending},
    model::RecordRow,
    op::{Done, Op},
    pool::{pool_error, unavailable},
};
use crate::{
    audit::Entry,
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{
        answer::{self, AnswerSource},
        corrected_entry, deleted_entry, furnished_entry, inquiry_purged_entry, mark_key, version_rule, Applied,
        ApplyResult, Deleted, Space, StateChange, StoreError,
    },
};

/// Most changes applied in one transaction.
pub(super) const GROUP: usize = 256;
/// Changes waiting for the writer before callers wait for room.
const QUEUE: usize = 1024;
/// Most attempts at one group when other processes keep appending first.
const ATTEMPTS: usize = 64;

/// A write waiting for the writer.
struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The handle callers queue their writes through.
pub(super) struct Writer {
    /// The queue; `None` once closing.
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer task, until it has finished.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The statement timeout, which bounds how long a caller waits.
    timeout: Duration,
}

impl Writer {
    /// Starts the writer task on `pool`.
    pub(super) fn start(pool: Pool, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(pool, rx));
        Self { queue: Mutex::new(Some(tx)), task: Mutex::new(Some(task)), timeout }
    }

    /// Queues `op` and waits for what it did (committed when `Ok`).
    pub(super) async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let queue = self.queue.lock().await.clone().ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        queue.send(Job { op, reply }).await.map_err(|_| StoreError::Closed)?;
        drop(queue);
        // The writer answers every job; a generous bound keeps a caller from waiting forever
        // on a writer stuck behind a hung database (statement_timeout normally fires first).
        match tokio::time::timeout(self.timeout * 4 + Duration::from_secs(1), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(unavailable("the write did not finish within the statement timeout")),
        }
    }

    /// Stops taking writes and waits for the writer to finish what is queued.
    pub(super) async fn stop(&self) {
        drop(self.queue.lock().await.take());
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// The writer task: takes what is queued (up to [`GROUP`]) and commits it as one transaction.
async fn run(pool: Pool, mut rx: mpsc::Receiver<Job>) {
    let mut frontier = Frontier::default();
    let mut client: Option<deadpool_postgres::Object> = None;
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
        let started = std::time::Instant::now();
        metrics::histogram!("bureau_store_commit_group_size", "backend" => "postgres").record(ops.len() as f64);
        let results = match commit_group(&pool, &mut client, &mut frontier, &ops).await {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(e) if ops.len() == 1 => vec![Err(e)],
            Err(_) => {
                // Find the change that fails: each alone, so the others still commit.
                let mut each = Vec::with_capacity(ops.len());
                for op in &ops {
                    let one = commit_group(&pool, &mut client, &mut frontier, std::slice::from_ref(op)).await;
                    each.push(one.map(|mut d| d.remove(0)));
                }
                each
            }
        };
        metrics::histogram!("bureau_store_commit_duration_seconds", "backend" => "postgres")
            .record(started.elapsed().as_secs_f64());
        for (reply, r) in replies.into_iter().zip(results) {
            let _ = reply.send(r);
        }
    }
}

/// Commits `ops` as one statement (one implicit transaction, one commit), retrying while other
/// processes append first. The connection is dropped (and replaced) after any other error.
async fn commit_group(
    pool: &Pool,
    client: &mut Option<deadpool_postgres::Object>,
    frontier: &mut Frontier,
    ops: &[Op],
) -> Result<Vec<Done>, StoreError> {
    for _ in 0..ATTEMPTS {
        let c = match client.take() {
            Some(c) => c,
            None => pool.get().await.map_err(pool_error)?,
        };
        let c = client.insert(c);
        let attempt = async {
            if frontier.size.is_none() {
                frontier.load(c).await?;
            }
            let mut f = frontier.clone();
            let done = apply_group(c, &mut f, ops).await?;
            Ok::<_, GroupError>((done, f))
        }
        .await;
        match attempt {
            Ok((done, f)) => {
                *frontier = f;
                return Ok(done);
            }
            Err(GroupError::Stale) => *frontier = Frontier::default(),
            Err(GroupError::Store(e)) => {
                *client = None;
                *frontier = Frontier::default();
                return Err(e);
            }
        }
    }
    Err(unavailable(format!("the audit log moved under this node {ATTEMPTS} times in a row (other node processes)")))
}

/// One attempt at a group: its reads, its changes applied in order, its write.
async fn apply_group(c: &deadpool_postgres::Object, f: &mut Frontier, ops: &[Op]) -> Result<Vec<Done>, GroupError> {
    let mut p = Pending::default();
    let t0 = std::time::Instant::now();
    let mut answers = group::read_before(c, ops, &mut p).await?.into_iter();
    let t1 = t0.elapsed();
    let mut done = Vec::with_capacity(ops.len());
    for op in ops {
        let reads = if matches!(op, Op::Answer(_)) { answers.next() } else { None };
        done.push(apply_op(f, &mut p, op, reads)?);
    }
    let t2 = t0.elapsed();
    group::write(c, f, p).await?;
    tracing::trace!(
        ops = ops.len(),
        read_us = t1.as_micros() as u64,
        apply_us = (t2 - t1).as_micros() as u64,
        write_us = (t0.elapsed() - t2).as_micros() as u64,
        "postgres group committed"
    );
    Ok(done)
}

/// Applies one change over the group's view; `reads` are an answer's reads from before the group.
fn apply_op(f: &mut Frontier, p: &mut Pending, op: &Op, reads: Option<AnswerReads>) -> Result<Done, StoreError> {
    match op {
        Op::Furnish(records, now) => furnish(f, p, records, *now).map(Done::Furnished),
        Op::Correct(record, now) => correct(f, p, record, *now).map(Done::Corrected),
        Op::Delete { furnisher, record_id, reason, note, now } => {
            delete(f, p, furnisher, record_id, (reason, note), *now).map(Done::Deleted)
        }
        Op::AddInquiry(inquiry, entry) => add_inquiry(f, p, inquiry, entry).map(|()| Done::Unit),
        Op::Answer(q) => {
            let reads = reads.ok_or_else(|| StoreError::Panicked("an answer without its reads".into()))?;
            let mut view = AnswerView { f, p, reads };
            answer::answer(&mut view, q.clone()).map(Done::Answer)
        }
        Op::Append(entries) => log(f, p, entries).map(Done::Appended),
        Op::State(change) => compare_and_set(f, p, change).map(Done::StateWritten),
        Op::PurgeInquiries(inquiries, now) => purge_inquiries(f, p, inquiries, *now).map(Done::Purged),
    }
}

fn furnish(
    f: &mut Frontier,
    p: &mut Pending,
    records: &[CreditRecord],
    now: DateTime<Utc>,
) -> Result<Vec<ApplyResult>, StoreError> {
    let results: Vec<ApplyResult> = records.iter().map(|r| store(p, r, now, false)).collect();
    if !records.is_empty() {
        log(f, p, &[furnished_entry(records, &results, now)])?;
    }
    Ok(results)
}

fn correct(
    f: &mut Frontier,
    p: &mut Pending,
    record: &CreditRecord,
    now: DateTime<Utc>,
) -> Result<Option<ApplyResult>, StoreError> {
    let a = store(p, record, now, true);
    if a.stored_version == 0 {
        return Ok(None);
    }
    log(f, p, &[corrected_entry(record, a, now)])?;
    Ok(Some(a))
}

fn delete(
    f: &mut Frontier,
    p: &mut Pending,
    furnisher: &str,
    record_id: &str,
    (reason, note): (&str, &str),
    now: DateTime<Utc>,
) -> Result<Deleted, StoreError> {
    let key = (furnisher.to_owned(), record_id.to_owned());
    let Some(row) = p.rows.get_mut(&key).filter(|s| s.live) else { return Ok(Deleted::NotFound) };
    row.live = false;
    row.deletion = (reason.to_owned(), note.to_owned());
    let (version, subject) = (row.version, row.subject.clone());
    p.dirty.push(key);
    log(f, p, &[deleted_entry(furnisher, &subject, record_id, version, reason, now)])?;
    Ok(Deleted::Removed(version))
}

fn add_inquiry(f: &mut Frontier, p: &mut Pending, inquiry: &Inquiry, entry: &Entry) -> Result<(), StoreError> {
    let mut inquiry = inquiry.clone();
    inquiry.log_index = Some(f.loaded_size()?);
    p.inquiries.push(inquiry);
    log(f, p, std::slice::from_ref(entry))?;
    Ok(())
}

fn compare_and_set(f: &mut Frontier, p: &mut Pending, change: &StateChange) -> Result<bool, StoreError> {
    let holds = change
        .expect
        .iter()
        .all(|(space, key, want)| p.state.get(&(*space, key.clone())).is_some_and(|now| now == want));
    if holds {
        for (space, key, value) in &change.put {
            p.state.insert((*space, key.clone()), value.clone());
            p.state_dirty.push((*space, key.clone()));
        }
        log(f, p, &change.entries)?;
    }
    Ok(holds)
}

fn purge_inquiries(
    f: &mut Frontier,
    p: &mut Pending,
    inquiries: &[Inquiry],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut entries = Vec::new();
    for i in inquiries {
        let key = (i.subject_id.clone(), i.time.timestamp_micros(), i.query_id.clone());
        if p.inquiries_stored.remove(&key) {
            p.inquiries_deleted.push(key);
            entries.push(inquiry_purged_entry(i, now));
        }
    }
    log(f, p, &entries)?;
    Ok(entries.len())
}

/// Stores one record under the version rule in the group's view.
fn store(p: &mut Pending, r: &CreditRecord, now: DateTime<Utc>, must_exist: bool) -> ApplyResult {
    let key = (r.furnisher.clone(), r.record_id.clone());
    let existing = p.rows.get(&key);
    let a = version_rule(r, existing.map(|s| (s.version, s.live, s.subject.as_str())), must_exist);
    if matches!(a.applied, Applied::Created | Applied::Replaced) {
        let in_db = existing.is_some_and(|s| s.in_db);
        let row = RecordRow {
            in_db,
            version: r.version,
            live: true,
            subject: r.subject_id.clone(),
            record: Some(r.clone()),
            updated: now,
            deletion: Default::default(),
        };
        p.rows.insert(key.clone(), row);
        p.dirty.push(key);
    }
    a
}

/// Appends `entries` to the group's log; returns the index of the first.
fn log(f: &mut Frontier, p: &mut Pending, entries: &[Entry]) -> Result<u64, StoreError> {
    let first = f.loaded_size()?;
    for e in entries {
        let bytes = e.to_bytes();
        p.nodes.extend(f.push(&bytes)?);
        p.leaves.push(bytes);
    }
    Ok(first)
}

/// An answer's view: what was committed before the group, with the group's own earlier
/// changes over it (records, flags, protection, inquiries).
struct AnswerView<'a> {
    f: &'a mut Frontier,
    p: &'a mut Pending,
    reads: AnswerReads,
}

impl AnswerSource for AnswerView<'_> {
    fn protection(&mut self, subject: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match self.p.state.get(&(Space::Protection, subject.to_owned())) {
            Some(changed) => changed.clone(),
            None => self.reads.protection.clone(),
        })
    }

    fn records(&mut self, subject: &str, responder: &str) -> Result<Vec<answer::Marked>, StoreError> {
        let mut marks = std::mem::take(&mut self.reads.marks);
        let prefix = format!("{subject}/");
        for ((space, key), value) in &self.p.state {
            if *space == Space::Mark && key.starts_with(&prefix) {
                match value {
                    Some(v) => marks.insert(key.clone(), v.clone()),
                    None => marks.remove(key),
                };
            }
        }
        let mut records: BTreeMap<String, CreditRecord> =
            std::mem::take(&mut self.reads.records).into_iter().map(|r| (r.record_id.clone(), r)).collect();
        for ((furnisher, id), row) in &self.p.rows {
            if furnisher == responder {
                match (&row.record, row.live && row.subject == subject) {
                    (Some(r), true) => records.insert(id.clone(), r.clone()),
                    _ => records.remove(id),
                };
            }
        }
        Ok(records
            .into_values()
            .map(|r| {
                let mark = marks.remove(&mark_key(subject, &r.furnisher, &r.record_id));
                (r, mark)
            })
            .collect())
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        self.f.loaded_size()
    }

    fn record(&mut self, inquiry: Inquiry, entry: Entry) -> Result<(), StoreError> {
        self.p.inquiries.push(inquiry);
        log(self.f, self.p, std::slice::from_ref(&entry))?;
        Ok(())
    }

    fn change_state(&mut self, change: &StateChange) -> Result<bool, StoreError> {
        compare_and_set(self.f, self.p, change)
    }

    fn newest_inquiries(&mut self, subject: &str, max: usize, since: Option<i64>) -> Result<Vec<Inquiry>, StoreError> {
        let mut all = std::mem::take(&mut self.reads.newest);
        let from = since.unwrap_or(i64::MIN);
        for i in self.p.inquiries.iter().filter(|i| i.subject_id == subject && i.time.timestamp_micros() >= from) {
            all.retain(|o| !(o.time == i.time && o.query_id == i.query_id));
            all.push(i.clone());
        }
        all.sort_by(|a, b| (b.time, &b.query_id).cmp(&(a.time, &a.query_id)));
        all.truncate(max);
        Ok(all)
    }
}
