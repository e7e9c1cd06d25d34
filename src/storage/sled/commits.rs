//! Group commit over the write-ahead log. The writer kicks the flusher the moment a record is
//! written, so the `fdatasync` runs while sled applies the same group; [`Commits::wait`]
//! returns once a finished `fdatasync` covers every record applied before it was called. One
//! `fdatasync` covers every record written before it began, however many callers wait.

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

    /// The writer wrote record `at` to the log (not yet applied to sled): start syncing it.
    pub(super) fn written(&self, at: Point) {
        let mut s = self.lock();
        s.written = at;
        s.kicked = true;
        self.kick.notify_one();
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
    /// left.
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

    /// For the flusher: everything up to `at` is on the disk. Returns the durable head (synced
    /// and applied); no waiter is told yet ([`Commits::release`]).
    pub(super) fn synced(&self, at: Point) -> u64 {
        let mut s = self.lock();
        s.synced = at;
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
        self.kick.notify_one();
    }

    /// Waits until record `seq` is durable.
    pub(super) async fn wait(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.synced.subscribe();
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
