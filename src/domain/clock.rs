//! The one clock every deadline and retention window reads, so tests can move time forward
//! (day 19, 20, 21 of a dispute) without waiting. Production nodes use the system clock.

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use chrono::{DateTime, Duration, Utc};

/// The system clock plus an offset that only tests ever move. Cheap to clone; clones share the
/// offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward by `by` (tests only: a node never calls it).
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let c = Clock::system();
        let d = c.clone();
        c.advance(Duration::days(20));
        let ahead = d.now() - Utc::now();
        assert!(
            ahead >= Duration::days(20) - Duration::seconds(5) && ahead <= Duration::days(20) + Duration::seconds(5)
        );
    }
}
