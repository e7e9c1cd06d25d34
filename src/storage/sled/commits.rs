//! Group commit over the write-ahead log, on demand. A record is synced when somebody waits for
//! it ([`Commits::wait`] kicks the flusher), or at the next [`Commits::nudge`] (the
//! checkpointer's poll) if nobody does, so the durable head a checkpoint may sign never trails
//! far. One `fdatasync` covers every record
//! written before it began, however many callers wait; the change that writes a person's inquiry
//! and the one that spends a consent nonce before it share it. Syncing on demand rather than on
//! every write saves, on a lightly loaded node (every member of a large federation), a flusher
//! wake-up and often a whole `fdatasync` per answer: measured in BENCHMARKS.md.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Condvar, Mutex,
};

use tokio::sync::watch;

/// A record of the write-ahead log and the audit log's size after it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Point {
    pub seq: u64,
    pub size: u64,
}

/// What the last `fdatasync` covered.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Synced {
    Upto(u64),
    /// Durability failed (or the store closed): no later wait succeeds.
    Failed(String),
}

#[derive(Default)]
struct State {
    written: Point,
    synced: Point,
    /// The audit log's size in sled.
    applied_size: u64,
    /// The last record somebody waits on: a sync is owed while it is not synced.
    wanted: u64,
    kicked: bool,
    stopping: bool,
}

pub(super) struct Commits {
    state: Mutex<State>,
    kick: Condvar,
    synced: watch::Sender<Synced>,
    /// The audit log's size both applied to sled and synced: the head a checkpoint may sign.
    durable: AtomicU64,
    /// The last record applied to sled, and the audit log's size after it.
    applied_seq: AtomicU64,
    applied_size: AtomicU64,
}

impl Commits {
    /// Everything up to `at` is applied and durable (the state after opening the store).
    pub(super) fn new(at: Point) -> Self {
        let state = State { written: at, synced: at, applied_size: at.size, ..State::default() };
        Self {
            state: Mutex::new(state),
            kick: Condvar::new(),
            synced: watch::Sender::new(Synced::Upto(at.seq)),
            durable: AtomicU64::new(at.size),
            applied_seq: AtomicU64::new(at.seq),
            applied_size: AtomicU64::new(at.size),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer wrote record `at` to the log (not yet applied to sled). It is synced at the
    /// next wait or [`Commits::nudge`]; the flusher is woken now only if a wait is owed one.
    pub(super) fn written(&self, at: Point) {
        let mut s = self.lock();
        s.written = at;
        if s.wanted > s.synced.seq && !s.kicked {
            s.kicked = true;
            self.kick.notify_one();
        }
    }

    /// The writer applied record `at` to sled. When its sync finished first, this is what
    /// makes it durable: the flusher is woken to move the high-water mark along.
    pub(super) fn applied(&self, at: Point) {
        let mut s = self.lock();
        s.applied_size = at.size;
        self.applied_size.store(at.size, Ordering::Release);
        self.applied_seq.store(at.seq, Ordering::Release);
        let durable = s.synced.size.min(at.size);
        if self.durable.fetch_max(durable, Ordering::AcqRel) < durable {
            s.kicked = true;
            self.kick.notify_one();
        }
    }

    /// The last record applied to sled.
    pub(super) fn applied_seq(&self) -> u64 {
        self.applied_seq.load(Ordering::Acquire)
    }

    /// The audit log's size in sled.
    pub(super) fn applied_size(&self) -> u64 {
        self.applied_size.load(Ordering::Acquire)
    }

    /// The audit log's size both applied and durable.
    pub(super) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// For the flusher: waits for work and returns the last record written, and whether it
    /// still needs a sync (else only the durable head moved); `None` once stopping with nothing
    /// left. Work is a kick: a wait, the durable head moving, [`Commits::nudge`], stopping.
    pub(super) fn next(&self) -> Option<(Point, bool)> {
        let mut s = self.lock();
        loop {
            if s.kicked {
                s.kicked = false;
                return Some((s.written, s.written.seq > s.synced.seq));
            }
            if s.stopping {
                return None;
            }
            s = self.kick.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// For a periodic thread: kicks the flusher when something written is not yet synced
    /// though nobody waits for it, so the durable head trails by one period at most.
    pub(super) fn nudge(&self) {
        let mut s = self.lock();
        if s.written.seq > s.synced.seq && !s.kicked {
            s.kicked = true;
            self.kick.notify_one();
        }
    }

    /// For the flusher: everything up to `at` is on the disk. Returns the durable head (synced
    /// and applied); no waiter is told yet ([`Commits::release`]).
    pub(super) fn synced(&self, at: Point) -> u64 {
        let mut s = self.lock();
        if at.seq > s.synced.seq {
            s.synced = at;
        }
        let durable = at.size.min(s.applied_size);
        self.durable.fetch_max(durable, Ordering::AcqRel).max(durable)
    }

    /// For the flusher, once the marks are moved: tells the waiters for records up to `at`.
    pub(super) fn release(&self, at: Point) {
        self.synced.send_if_modified(|v| match v {
            Synced::Upto(n) if *n < at.seq => {
                *v = Synced::Upto(at.seq);
                true
            }
            _ => false,
        });
    }

    /// For the flusher: a sync failed; every wait from now on fails with `why`.
    pub(super) fn failed(&self, why: String) {
        self.synced.send_replace(Synced::Failed(why));
    }

    /// Tells the flusher to sync what is left and stop.
    pub(super) fn stop(&self) {
        let mut s = self.lock();
        s.stopping = true;
        s.kicked = true;
        self.kick.notify_one();
    }

    /// The last record written to the log.
    pub(super) fn written_seq(&self) -> u64 {
        self.lock().written.seq
    }

    /// The last record a finished sync covers.
    pub(super) fn synced_seq(&self) -> u64 {
        self.lock().synced.seq
    }

    /// Asks the flusher for a sync covering record `seq`, unless one does already.
    pub(super) fn want(&self, seq: u64) {
        let mut s = self.lock();
        s.wanted = s.wanted.max(seq);
        if s.synced.seq < seq && !s.kicked {
            s.kicked = true;
            self.kick.notify_one();
        }
    }

    /// Waits until record `seq` is durable, asking the flusher for a sync if none covers it.
    pub(super) async fn wait(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.synced.subscribe();
        if !matches!(&*rx.borrow(), Synced::Upto(n) if *n >= seq) {
            self.want(seq);
        }
        let seen = rx.wait_for(|s| matches!(s, Synced::Failed(_)) || matches!(s, Synced::Upto(n) if *n >= seq)).await;
        match seen.as_deref() {
            Ok(Synced::Upto(_)) => Ok(()),
            Ok(Synced::Failed(why)) => Err(why.clone()),
            Err(_) => Err("the store closed".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_is_what_is_both_synced_and_applied() {
        let c = Commits::new(Point { seq: 1, size: 10 });
        c.written(Point { seq: 2, size: 12 });
        c.nudge();
        assert_eq!(c.next(), Some((Point { seq: 2, size: 12 }, true)));
        assert_eq!(c.synced(Point { seq: 2, size: 12 }), 10, "synced but not yet applied");
        assert_eq!(c.durable(), 10);
        c.applied(Point { seq: 2, size: 12 });
        assert_eq!(c.durable(), 12);
        assert_eq!(c.next(), Some((Point { seq: 2, size: 12 }, false)), "the mark moves, no second sync");
        c.written(Point { seq: 3, size: 15 });
        c.applied(Point { seq: 3, size: 15 });
        assert_eq!((c.applied_seq(), c.applied_size()), (3, 15));
        assert_eq!(c.durable(), 12, "applied but not yet synced");
        c.stop();
        assert_eq!(c.next(), Some((Point { seq: 3, size: 15 }, true)), "what is left is synced before stopping");
        assert_eq!(c.next(), None);
    }

    /// A write alone wakes nobody; a wait (or a nudge) asks for the sync it needs.
    #[tokio::test]
    async fn a_sync_is_owed_on_demand_not_per_write() {
        let c = std::sync::Arc::new(Commits::new(Point::default()));
        c.written(Point { seq: 1, size: 1 });
        c.applied(Point { seq: 1, size: 1 });
        c.written(Point { seq: 2, size: 2 });
        c.applied(Point { seq: 2, size: 2 });
        assert!(!c.lock().kicked, "nobody waits yet");
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.wait(2).await }
        });
        let flusher = tokio::task::spawn_blocking({
            let c = c.clone();
            move || c.next()
        });
        assert_eq!(flusher.await.unwrap(), Some((Point { seq: 2, size: 2 }, true)), "one sync for both");
        c.synced(Point { seq: 2, size: 2 });
        c.release(Point { seq: 2, size: 2 });
        assert_eq!(waiting.await.unwrap(), Ok(()));
        c.nudge();
        assert!(!c.lock().kicked, "nothing owed, no nudge");
    }

    #[tokio::test]
    async fn a_wait_ends_at_the_sync_that_covers_it_or_a_failure() {
        let c = std::sync::Arc::new(Commits::new(Point::default()));
        assert_eq!(c.wait(0).await, Ok(()));
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.wait(2).await }
        });
        c.synced(Point { seq: 1, size: 1 });
        c.release(Point { seq: 1, size: 1 });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        c.synced(Point { seq: 3, size: 3 });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "synced, but not released before the marks move");
        c.release(Point { seq: 3, size: 3 });
        assert_eq!(waiting.await.unwrap(), Ok(()));
        c.failed("disk gone".into());
        assert_eq!(c.wait(1).await, Err("disk gone".into()));
    }
}
