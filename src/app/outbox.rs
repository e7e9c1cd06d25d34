//! The durable outbox of notices to peers. A use case queues a notice in the same atomic state
//! change as the step it tells of (so a step is never done without its notice, nor the
//! reverse); the worker then delivers each one until its peer acknowledges, across restarts of
//! either node, backing off per notice while the peer cannot be reached. A peer's refusal
//! ends a notice; a failure only delays it.
//!
//! Disputes (a filing to the furnisher, a resolution to the filer) and protection (a person's
//! freeze and fraud alert, to every peer) are its two users: each is a [`Courier`] that builds
//! the notices of its kinds and applies what the peer answered.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::warn;

use crate::{
    app::{
        lifecycle::Lifecycle,
        state::{Change, State, StateItem, Version},
    },
    audit::Entry,
    net::peers::{PeerError, Peers, Refusal},
    storage::{Space, StoreError},
    wire::pb::bureau::v1 as pb,
};

/// How long one background delivery may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// First wait before retrying a notice a peer did not take.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Most entries one pass reads.
const PASS: usize = 1000;

/// A notice waiting in the outbox for its peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Queued {
    /// The peer institution to deliver to.
    pub(crate) to: String,
    /// What the notice is.
    pub(crate) kind: Kind,
    /// The dispute's key (`filer/id`), or the subject whose protections changed.
    pub(crate) about: String,
    /// For a protection change: its id, logged at both ends.
    #[serde(default)]
    pub(crate) change: String,
}

impl StateItem for Queued {
    const SPACE: Space = Space::Outbox;
}

/// What a notice tells its peer, and so which user answers for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A dispute, to the furnisher (disputes).
    Filed,
    /// A dispute's resolution, to the filer (disputes).
    Resolved,
    /// A person's freeze and alert state, to every peer (protection).
    Protection,
}

/// How one delivery attempt ended.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// The peer acknowledged (and its courier recorded it).
    Acknowledged,
    /// The peer refused for good (it has no such record, the subject does not match, …).
    Refused(Refusal),
    /// Not now (unreachable, timed out): try again later.
    Later(String),
}

/// A user of the outbox: builds the notices of its kinds and applies the peer's answers.
pub(crate) trait Courier: Sync {
    /// The notice for `q` as things stand now; `None` when nothing is left to tell (the entry
    /// is then dropped).
    fn notice(&self, q: &Queued) -> impl Future<Output = Result<Option<pb::Notice>, StoreError>> + Send;

    /// True when `refusal` ends the notice; any other refusal is tried again later.
    fn ends(&self, refusal: &Refusal) -> bool;

    /// The peer took the notice under outbox `key`: the entry leaves the outbox, with what
    /// the user records of it, in one change.
    fn acknowledged(
        &self,
        key: &str,
        q: &Queued,
        receipt: &pb::NoticeReceipt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The peer refused the notice under `key` for good, found by the worker: the entry leaves
    /// the outbox, with what the user records of it.
    fn refused(&self, key: &str, q: &Queued, refusal: &Refusal) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's own housekeeping on the worker's beat (disputes: the deadline sweep).
    fn after_pass(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A node's outbox: the queue in the store, the peers it delivers to, and per-notice backoff.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox {
    /// Store, clock, and the institution notices are from.
    life: Lifecycle,
    /// The queue.
    state: State,
    /// Peers, to deliver to.
    peers: Arc<Peers>,
    /// Wakes the worker when something is queued.
    wake: Arc<Notify>,
    /// Longest wait between two delivery attempts.
    retry_max: Duration,
    /// Per outbox key: attempts so far and when the next is due (in memory: a restart retries
    /// everything at once, which is what a restart should do).
    backoff: Arc<Mutex<HashMap<String, (u32, tokio::time::Instant)>>>,
}

impl Outbox {
    /// The outbox of `life`'s store, delivering through `peers`, retrying at most every
    /// `retry_max`.
    pub(crate) fn new(life: Lifecycle, peers: Arc<Peers>, retry_max: Duration) -> Self {
        let state = State::new(life.store.clone());
        Self { life, state, peers, wake: Arc::new(Notify::new()), retry_max, backoff: Arc::default() }
    }

    /// The configured peers (every one is told of a protection change).
    pub(crate) fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Queues `q` in `change` (so it is queued exactly when the change is applied), under a
    /// key ordered by `now` and ending in `suffix`; returns the key. Call [`Outbox::wake`]
    /// once the change is in.
    pub(crate) fn enqueue(change: &mut Change, now: DateTime<Utc>, suffix: &str, q: &Queued) -> String {
        let key = format!("{:020}-{suffix}", now.timestamp_micros().max(0));
        change.put(&key, q);
        key
    }

    /// Tells the worker something was queued.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The entry under `key`, with its version for a change.
    pub(crate) async fn entry(&self, key: &str) -> Result<(Option<Queued>, Version), StoreError> {
        self.state.get::<Queued>(key).await
    }

    /// One delivery attempt of the entry under `key` through its user `courier`, within
    /// `timeout`, and what follows from the answer (an acknowledgement is recorded; a
    /// refusal is left to the caller).
    pub(crate) async fn attempt(
        &self,
        courier: &impl Courier,
        key: &str,
        q: &Queued,
        timeout: Duration,
    ) -> Result<Delivery, StoreError> {
        let Some(notice) = courier.notice(q).await? else {
            self.drop_entry(key).await?;
            return Ok(Delivery::Later("nothing left to deliver".into()));
        };
        Ok(match self.peers.deliver(&q.to, notice, timeout).await {
            Ok(receipt) => {
                courier.acknowledged(key, q, &receipt).await?;
                Delivery::Acknowledged
            }
            Err(PeerError::Refused(r)) if courier.ends(&r) => Delivery::Refused(r),
            Err(e) => Delivery::Later(e.to_string()),
        })
    }

    /// Drops the entry under `key` (its peer refused it for good), logged.
    pub(crate) async fn drop_entry(&self, key: &str) -> Result<(), StoreError> {
        if let (Some(_), version) = self.entry(key).await? {
            let mut change = Change::logged(Entry::notice_dropped(self.life.clock.now(), &self.life.institution, key));
            change.expect::<Queued>(key, &version).remove::<Queued>(key);
            self.state.write(change).await?;
        }
        Ok(())
    }

    /// Tries every entry that is due, each through the user of its kind; returns how many are
    /// still waiting.
    pub(crate) async fn deliver_due(
        &self,
        disputes: &impl Courier,
        protections: &impl Courier,
    ) -> Result<usize, StoreError> {
        let entries = self.state.page::<Queued>("", None, PASS).await?;
        let now = tokio::time::Instant::now();
        let mut waiting = 0;
        for (key, q, _) in entries {
            let due = self.backoff.lock().unwrap_or_else(|p| p.into_inner()).get(&key).is_none_or(|(_, at)| *at <= now);
            let still = !due
                || match q.kind {
                    Kind::Filed | Kind::Resolved => self.deliver_one(disputes, &key, &q, now).await?,
                    Kind::Protection => self.deliver_one(protections, &key, &q, now).await?,
                };
            waiting += usize::from(still);
        }
        Ok(waiting)
    }

    /// Delivers one due entry through `courier`; true when it is still waiting.
    async fn deliver_one(
        &self,
        courier: &impl Courier,
        key: &str,
        q: &Queued,
        now: tokio::time::Instant,
    ) -> Result<bool, StoreError> {
        match self.attempt(courier, key, q, ATTEMPT).await? {
            Delivery::Acknowledged => {
                self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                Ok(false)
            }
            Delivery::Refused(refusal) => {
                courier.refused(key, q, &refusal).await?;
                self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                Ok(false)
            }
            Delivery::Later(why) => {
                let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
                let (n, _) = b.get(key).copied().unwrap_or((0, now));
                let wait = RETRY_MIN.saturating_mul(1 << n.min(16)).min(self.retry_max);
                b.insert(key.to_owned(), (n + 1, tokio::time::Instant::now() + wait));
                if n == 0 || n % 10 == 0 {
                    warn!(to = %q.to, notice = %key, attempts = n + 1, retry_ms = wait.as_millis() as u64, error = %why, "notice not delivered; will retry");
                }
                Ok(true)
            }
        }
    }

    /// The worker: delivers what is due, then lets each user do its housekeeping; runs until
    /// dropped. Wakes when something is queued, and at least every `tick`.
    pub(crate) async fn run(self, tick: Duration, disputes: impl Courier, protections: impl Courier) {
        loop {
            if let Err(e) = self.deliver_due(&disputes, &protections).await {
                warn!(error = %e, "outbox pass failed; retrying");
            }
            disputes.after_pass().await;
            protections.after_pass().await;
            let _ = tokio::time::timeout(tick, self.wake.notified()).await;
        }
    }
}
