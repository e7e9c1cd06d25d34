//! A member's registrations at the record locator follow its records. Rather than a second
//! write beside every record change, the worker reads the node's own log: every change of a
//! record is logged in the same atomic write as the change, so reading the log from where the
//! last delivery ended finds every person whose holding may have changed, and nothing can be
//! missed by a crash. For each it sends the holding as it stands now (holds a live record or
//! not), versioned by the log index read up to, so a repeated delivery after a restart (of
//! either side) changes nothing. Where the log was read up to is kept in the store, written
//! with a `HOLDINGS_DELIVERED` entry once the locator has taken the batch.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{atomic::AtomicU64, atomic::Ordering, Arc},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

mod reshard;

use crate::{
    app::{
        lifecycle::Lifecycle,
        locator::{batch_digest, MAX_HOLDINGS},
        state::{Change, State, StateItem, Version},
    },
    audit::{Action, Entry},
    net::peers::Peers,
    storage::{Space, StoreError},
    wire::pb::bureau::v1 as pb,
};

/// Most log entries one pass reads.
const PASS: usize = 2000;
/// How far the log may run ahead of the stored mark before it is written though nothing was
/// sent (so a restart does not re-read a long stretch of queries).
const MARK_SLACK: u64 = 50_000;
/// How long one delivery may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// The mark's key in [`Space::Progress`].
const MARK: &str = "holdings";

/// How far the log has been delivered.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Mark {
    /// Entries before this index are delivered.
    next: u64,
}

impl StateItem for Mark {
    const SPACE: Space = Space::Progress;
}

/// The registration worker of a member node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Holdings {
    life: Lifecycle,
    state: State,
    peers: Arc<Peers>,
    /// Where reading resumes (ahead of the stored mark when nothing needed sending).
    next: Arc<AtomicU64>,
    /// The directory serial whose shard map the holdings are known to follow ([`reshard`]).
    settled: Arc<AtomicU64>,
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pass {
    /// Holdings the locator took.
    pub sent: usize,
    /// Log entries read.
    pub read: usize,
}

impl Holdings {
    /// The worker for `life`'s store, delivering through `peers`.
    pub(crate) fn new(life: Lifecycle, peers: Arc<Peers>) -> Self {
        let state = State::new(life.store.clone());
        let (next, settled) = (Arc::new(AtomicU64::new(u64::MAX)), Arc::new(AtomicU64::new(u64::MAX)));
        Self { life, state, peers, next, settled }
    }

    /// Runs passes every `tick` until dropped, each after a step of following the shard map
    /// ([`reshard`]); a failed pass is retried at the next tick (one WARN when delivery starts
    /// failing, one INFO when it works again).
    pub(crate) async fn run(self, tick: Duration) {
        let mut failing = false;
        loop {
            if self.peers.has_locator() {
                let step = async { Ok::<_, StoreError>((self.reshard().await?, self.pass().await?)) };
                match step.await {
                    Ok((sweeping, p)) => {
                        if failing {
                            info!("holdings are delivered to the record locator again");
                            failing = false;
                        }
                        if sweeping || p.read == PASS {
                            continue;
                        }
                    }
                    Err(e) if !failing => {
                        warn!(error = %e, "holdings not delivered to the record locator; retried every tick");
                        failing = true;
                    }
                    Err(e) => debug!(error = %e, "holdings still not delivered"),
                }
            }
            tokio::time::sleep(tick).await;
        }
    }

    /// Reads the log from where delivery stands, sends the holdings of every person whose
    /// records changed, then moves the mark.
    pub(crate) async fn pass(&self) -> Result<Pass, StoreError> {
        let (stored, version) = self.state.get::<Mark>(MARK).await?;
        let stored = stored.unwrap_or_default();
        let from = match self.next.load(Ordering::Relaxed) {
            u64::MAX => stored.next,
            n => n.max(stored.next),
        };
        let size = self.life.store.audit_size().await?;
        if from >= size {
            return Ok(Pass::default());
        }
        let entries = self.life.store.audit_entries(from, PASS).await?;
        let read = entries.len();
        let through = entries.last().map_or(from, |(i, _)| i + 1);
        let subjects = self.changed_subjects(&entries).await?;
        if subjects.is_empty() {
            self.next.store(through, Ordering::Relaxed);
            if through - stored.next >= MARK_SLACK {
                self.save(through, &version, 0, "", &[]).await?;
            }
            return Ok(Pass { sent: 0, read });
        }
        // The holding as it stands now, versioned by how far the log has been read.
        let mut by_shard: BTreeMap<String, Vec<pb::Holding>> = BTreeMap::new();
        for subject in subjects {
            let Some(shard) = self.peers.locator_id(&subject) else { continue };
            let holds = !self.life.store.list_subject(&subject, None, 1).await?.items.is_empty();
            by_shard.entry(shard).or_default().push(pb::Holding { subject_id: subject, holds, version: through });
        }
        let (sent, batches) = self.deliver(&by_shard, through).await?;
        let shards: Vec<&str> = by_shard.keys().map(String::as_str).collect();
        self.save(through, &version, sent, &shards.join(","), &batches).await?;
        self.next.store(through, Ordering::Relaxed);
        info!(sent, through, "holdings delivered to the record locator");
        Ok(Pass { sent, read })
    }

    /// Registers `by_shard`'s holdings a chunk per call; returns how many were taken and each
    /// taken chunk's digest ([`batch_digest`], as the locator logs it). When a chunk fails after
    /// others were taken, those are logged first, so every batch the locator logged as
    /// registered has its delivery logged here (`bureau audit reconcile` matches them).
    async fn deliver(
        &self,
        by_shard: &BTreeMap<String, Vec<pb::Holding>>,
        through: u64,
    ) -> Result<(usize, Vec<String>), StoreError> {
        let (mut sent, mut batches) = (0, Vec::new());
        for (shard, holdings) in by_shard {
            for chunk in holdings.chunks(MAX_HOLDINGS) {
                match self.peers.register(shard, chunk.to_vec(), ATTEMPT).await {
                    Ok(r) => {
                        sent += chunk.len();
                        batches.push(batch_digest(chunk.iter().map(|h| (h.subject_id.as_str(), h.holds, h.version))));
                        debug!(locator = %shard, applied = r.applied, stale = r.stale, "holdings registered");
                    }
                    Err(e) => {
                        if sent > 0 {
                            let shards: Vec<&str> = by_shard.keys().map(String::as_str).collect();
                            let (now, me) = (self.life.clock.now(), &self.life.institution);
                            let entry =
                                Entry::holdings_delivered(now, me, &shards.join(","), sent as u32, through, &batches);
                            self.life.store.append_audit_durably(vec![entry]).await?;
                        }
                        return Err(StoreError::Unavailable(format!("record locator {shard}: {e}")));
                    }
                }
            }
        }
        Ok((sent, batches))
    }

    /// Stores the mark at `through`, logging what was delivered. Only this worker writes it; a
    /// lost race (a second process on the same database) just leaves the other's mark.
    async fn save(
        &self,
        through: u64,
        version: &Version,
        sent: usize,
        shards: &str,
        batches: &[String],
    ) -> Result<(), StoreError> {
        let (now, me) = (self.life.clock.now(), &self.life.institution);
        let entry = Entry::holdings_delivered(now, me, shards, sent as u32, through, batches);
        let mut change = Change::logged(entry);
        change.expect::<Mark>(MARK, version).put(MARK, &Mark { next: through });
        if self.state.write(change).await? {
            self.state.sync().await?;
        }
        Ok(())
    }

    /// The people whose records the entries changed: corrections and deletions name them;
    /// a furnishing names record ids, looked up (a record deleted since is named by its
    /// deletion's entry further on).
    async fn changed_subjects(&self, entries: &[(u64, Vec<u8>)]) -> Result<BTreeSet<String>, StoreError> {
        let mut out = BTreeSet::new();
        for (index, bytes) in entries {
            let Ok(e) = Entry::from_bytes(bytes) else {
                return Err(StoreError::Corrupt { key: format!("log entry {index}"), why: "does not decode".into() });
            };
            match e.action {
                Action::RecordCorrected | Action::RecordDeleted if e.actor == self.life.institution => {
                    out.insert(e.subject_id);
                }
                Action::RecordFurnished if e.actor == self.life.institution => {
                    for id in e.detail.split(',').filter(|s| !s.is_empty()) {
                        if let Some(r) = self.life.store.get(&e.actor, id).await? {
                            out.insert(r.record.subject_id);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
