//! A person's protections: a security freeze (hard inquiries refused everywhere) and a fraud
//! alert (lenders verify identity first, for one year). Every node keeps a copy; copies merge by
//! keeping, per kind, the latest change, so notices may arrive late, twice or out of order and
//! every node still ends with the same state.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long an initial fraud alert lasts (FCRA §605A(a)(1)).
pub(crate) const ALERT_DAYS: i64 = 365;

/// Which protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A security freeze.
    SecurityFreeze,
    /// A fraud alert.
    FraudAlert,
}

impl Kind {
    /// The kind's name in logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::SecurityFreeze => "freeze",
            Self::FraudAlert => "alert",
        }
    }
}

/// The latest change of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    /// In force after the change.
    pub active: bool,
    /// When it changed.
    pub at: DateTime<Utc>,
    /// Through which institution it changed.
    pub by: String,
    /// Through which institution it was placed (the last placement).
    pub placed_by: String,
    /// When it was placed (the last placement).
    pub placed_at: DateTime<Utc>,
}

impl Change {
    /// True when `self` is later than `other` (ties broken by institution id, so every node
    /// picks the same one).
    fn newer_than(&self, other: &Change) -> bool {
        (self.at, &self.by) > (other.at, &other.by)
    }
}

/// A person's protections as one node holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Protection {
    /// The freeze's latest change.
    #[serde(default)]
    pub freeze: Option<Change>,
    /// The alert's latest change.
    #[serde(default)]
    pub alert: Option<Change>,
}

impl Protection {
    /// Reads a stored value (JSON).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The stored form (JSON).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data always serialises.
        serde_json::to_vec(self).expect("protection serialises")
    }

    /// True while a freeze stands.
    pub(crate) fn frozen(&self) -> bool {
        self.freeze.as_ref().is_some_and(|c| c.active)
    }

    /// True while an alert stands at `now` (placed less than a year ago, not lifted).
    pub(crate) fn alert_active(&self, now: DateTime<Utc>) -> bool {
        self.alert.as_ref().is_some_and(|c| c.active && now < c.placed_at + Duration::days(ALERT_DAYS))
    }

    /// When the alert lapses, if one stands.
    pub(crate) fn alert_expires(&self) -> Option<DateTime<Utc>> {
        self.alert.as_ref().filter(|c| c.active).map(|c| c.placed_at + Duration::days(ALERT_DAYS))
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<Change> {
        match kind {
            Kind::SecurityFreeze => &mut self.freeze,
            Kind::FraudAlert => &mut self.alert,
        }
    }

    /// Places (`active`) or lifts a protection through `by` at `now`; returns who had placed it.
    pub(crate) fn set(&mut self, kind: Kind, active: bool, now: DateTime<Utc>, by: &str) -> Option<String> {
        let slot = self.slot(kind);
        let before = slot.as_ref().filter(|c| c.active).map(|c| c.placed_by.clone());
        let (placed_by, placed_at) = match (active, slot.as_ref()) {
            (true, _) => (by.to_owned(), now),
            (false, Some(c)) => (c.placed_by.clone(), c.placed_at),
            (false, None) => (String::new(), now),
        };
        *slot = Some(Change { active, at: now, by: by.to_owned(), placed_by, placed_at });
        before
    }

    /// Takes, per kind, the later of the two changes; true when anything changed.
    pub(crate) fn merge(&mut self, other: &Protection) -> bool {
        let mut changed = false;
        for kind in [Kind::SecurityFreeze, Kind::FraudAlert] {
            let theirs = match kind {
                Kind::SecurityFreeze => other.freeze.clone(),
                Kind::FraudAlert => other.alert.clone(),
            };
            let Some(theirs) = theirs else { continue };
            let mine = self.slot(kind);
            if mine.as_ref().is_none_or(|m| theirs.newer_than(m)) {
                *mine = Some(theirs);
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn copies_converge_whatever_the_order_of_notices() {
        let mut placed = Protection::default();
        placed.set(Kind::SecurityFreeze, true, t(0), "payapp");
        let mut lifted = placed.clone();
        lifted.set(Kind::SecurityFreeze, false, t(10), "bank");
        // A node that hears the lift first and the placement late stays lifted.
        let mut a = Protection::default();
        a.merge(&lifted);
        assert!(!a.merge(&placed), "an older change never wins");
        let mut b = Protection::default();
        b.merge(&placed);
        assert!(b.merge(&lifted));
        assert_eq!(a, b);
        assert!(!a.frozen());
        assert_eq!(a.freeze.as_ref().unwrap().placed_by, "payapp", "who placed it is kept");
    }

    #[test]
    fn an_alert_lapses_after_a_year() {
        let mut p = Protection::default();
        p.set(Kind::FraudAlert, true, t(0), "bank");
        assert!(p.alert_active(t(0) + Duration::days(364)));
        assert!(!p.alert_active(t(0) + Duration::days(365)));
    }
}
