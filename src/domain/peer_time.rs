//! Times a peer sends are checked against this node's clock, never taken on its word: a notice's
//! times must lie within [now − [`MAX_NOTICE_DELAY`], now + [`CLOCK_SKEW`]]. A time from the
//! far future would win every last-writer-wins merge for ever; a back-dated one would start a
//! dispute's deadline in the past. Arithmetic on such times is checked, never overflowing.

use chrono::{DateTime, Duration, Utc};

/// The longest a notice may legitimately wait in a peer's outbox (that peer or this node down,
/// a partition) before it is delivered. A notice with an older time is refused, and a refusal
/// ends it at the sender (see `app::outbox`): a node cut off for longer than this must be told
/// again. Shorter than the shortest dispute window (PBC's 20 days), so an accepted dispute
/// always leaves the furnisher time to answer.
pub(crate) const MAX_NOTICE_DELAY: Duration = Duration::days(7);

/// How far ahead of this node's clock a peer's clock may run.
pub(crate) const CLOCK_SKEW: Duration = Duration::minutes(5);

/// What is wrong with a peer's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TimeProblem {
    /// Older than a notice may wait.
    #[error("is older than a notice may wait in an outbox (7 days)")]
    TooOld,
    /// Ahead of this node's clock by more than the skew allowed.
    #[error("is ahead of this node's clock by more than 5 minutes")]
    Future,
}

/// The times a peer may send at one instant of this node's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The oldest time accepted.
    pub earliest: DateTime<Utc>,
    /// The latest time accepted.
    pub latest: DateTime<Utc>,
}

impl Window {
    /// The window around `now`.
    pub(crate) fn around(now: DateTime<Utc>) -> Self {
        Self {
            earliest: now.checked_sub_signed(MAX_NOTICE_DELAY).unwrap_or(DateTime::<Utc>::MIN_UTC),
            latest: now.checked_add_signed(CLOCK_SKEW).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// `t` when it lies within the window.
    pub(crate) fn check(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, TimeProblem> {
        if t > self.latest {
            return Err(TimeProblem::Future);
        }
        if t < self.earliest {
            return Err(TimeProblem::TooOld);
        }
        Ok(t)
    }

    /// `t` when it is not in the future: for a time that may lie long past (when a protection
    /// now lifted was placed).
    pub(crate) fn not_future(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, TimeProblem> {
        if t > self.latest {
            return Err(TimeProblem::Future);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_runs_from_the_outbox_delay_to_the_clock_skew() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let w = Window::around(now);
        assert_eq!(w.check(now), Ok(now));
        assert_eq!(w.check(now + CLOCK_SKEW), Ok(now + CLOCK_SKEW));
        assert_eq!(w.check(now + CLOCK_SKEW + Duration::seconds(1)), Err(TimeProblem::Future));
        assert_eq!(w.check(now - MAX_NOTICE_DELAY - Duration::seconds(1)), Err(TimeProblem::TooOld));
        assert_eq!(w.not_future(DateTime::<Utc>::MIN_UTC), Ok(DateTime::<Utc>::MIN_UTC));
        // At the ends of time the window saturates instead of overflowing.
        let edge = Window::around(DateTime::<Utc>::MAX_UTC);
        assert_eq!(edge.latest, DateTime::<Utc>::MAX_UTC);
        assert_eq!(Window::around(DateTime::<Utc>::MIN_UTC).earliest, DateTime::<Utc>::MIN_UTC);
    }
}
