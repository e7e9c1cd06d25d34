//! A person's protections: a security freeze (hard inquiries refused everywhere) and a fraud
//! alert (lenders verify identity first, for one year). Every node keeps a copy; copies merge by
//! keeping, per kind, the latest change, so notices may arrive late, twice or out of order and
//! every node still ends with the same state.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The `google.rpc.ErrorInfo.reason` of a query refused because a freeze stands.
pub(crate) const FROZEN_REASON: &str = "SUBJECT_FROZEN";

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

    /// The change as `google.rpc.ErrorInfo` metadata (lowerCamelCase keys, RFC 3339 times): how
    /// a node that refuses a hard inquiry for a freeze tells the asking node which freeze.
    pub(crate) fn to_metadata(&self) -> Vec<(String, String)> {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        vec![
            (META_ACTIVE.into(), self.active.to_string()),
            (META_CHANGED.into(), time(self.at)),
            (META_CHANGED_BY.into(), self.by.clone()),
            (META_PLACED_BY.into(), self.placed_by.clone()),
            (META_PLACED_AT.into(), time(self.placed_at)),
        ]
    }

    /// Reads [`Change::to_metadata`] back; `Err` names the key at fault. Nothing is checked
    /// against a clock here: see `peer_time`.
    pub(crate) fn from_metadata(get: impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, &'static str)> {
        let text = |key: &'static str| get(key).ok_or((key, "is missing"));
        let time = |key: &'static str| -> Result<DateTime<Utc>, (&'static str, &'static str)> {
            DateTime::parse_from_rfc3339(&text(key)?).map(|t| t.to_utc()).map_err(|_| (key, "must be an RFC 3339 time"))
        };
        let active = match text(META_ACTIVE)?.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err((META_ACTIVE, "must be true or false")),
        };
        Ok(Self {
            active,
            at: time(META_CHANGED)?,
            by: text(META_CHANGED_BY)?,
            placed_by: text(META_PLACED_BY)?,
            placed_at: time(META_PLACED_AT)?,
        })
    }
}

/// `ErrorInfo.metadata` key: the freeze is in force.
pub(crate) const META_ACTIVE: &str = "freezeActive";
/// `ErrorInfo.metadata` key: when the freeze last changed.
pub(crate) const META_CHANGED: &str = "freezeChanged";
/// `ErrorInfo.metadata` key: through which institution it last changed.
pub(crate) const META_CHANGED_BY: &str = "freezeChangedBy";
/// `ErrorInfo.metadata` key: through which institution it was placed.
pub(crate) const META_PLACED_BY: &str = "freezePlacedBy";
/// `ErrorInfo.metadata` key: when it was placed.
pub(crate) const META_PLACED_AT: &str = "freezePlacedAt";

/// When an alert placed at `placed_at` lapses; `None` beyond the calendar (never, in effect).
pub(crate) fn alert_end(placed_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    placed_at.checked_add_signed(Duration::days(ALERT_DAYS))
}

/// When an alert lapsing at `end` was placed; `None` before the calendar's start.
pub(crate) fn alert_start(end: DateTime<Utc>) -> Option<DateTime<Utc>> {
    end.checked_sub_signed(Duration::days(ALERT_DAYS))
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
        self.alert.as_ref().is_some_and(|c| c.active && alert_end(c.placed_at).is_none_or(|end| now < end))
    }

    /// When the alert lapses, if one stands (none when that lies beyond the calendar).
    pub(crate) fn alert_expires(&self) -> Option<DateTime<Utc>> {
        self.alert.as_ref().filter(|c| c.active).and_then(|c| alert_end(c.placed_at))
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
    fn a_change_reads_back_from_its_metadata() {
        let mut p = Protection::default();
        p.set(Kind::SecurityFreeze, true, t(0) + Duration::nanoseconds(7), "payapp");
        let c = p.freeze.unwrap();
        let meta: std::collections::HashMap<String, String> = c.to_metadata().into_iter().collect();
        assert_eq!(Change::from_metadata(|k| meta.get(k).cloned()), Ok(c));
        assert_eq!(Change::from_metadata(|_| None), Err((META_ACTIVE, "is missing")));
        let bad = |k: &str| if k == META_CHANGED { Some("yesterday".into()) } else { meta.get(k).cloned() };
        assert_eq!(Change::from_metadata(bad), Err((META_CHANGED, "must be an RFC 3339 time")));
    }

    #[test]
    fn an_alert_at_the_end_of_time_never_overflows() {
        let mut p = Protection::default();
        p.set(Kind::FraudAlert, true, DateTime::<Utc>::MAX_UTC, "bank");
        assert!(p.alert_active(DateTime::<Utc>::MAX_UTC));
        assert_eq!(p.alert_expires(), None);
        assert_eq!(alert_start(DateTime::<Utc>::MIN_UTC), None);
    }

    #[test]
    fn an_alert_lapses_after_a_year() {
        let mut p = Protection::default();
        p.set(Kind::FraudAlert, true, t(0), "bank");
        assert!(p.alert_active(t(0) + Duration::days(364)));
        assert!(!p.alert_active(t(0) + Duration::days(365)));
    }
}
