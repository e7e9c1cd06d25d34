//! What every backend writes the same way, so it is written once: the version rule of records
//! and the audit entries of record changes (built by the typed constructors in `audit`).

use chrono::{DateTime, Utc};

use super::{Applied, ApplyResult};
use crate::{audit::Entry, domain::inquiry::Inquiry, domain::record::CreditRecord};

/// A furnishing entry: who furnished, how many records changed and which (keys only).
pub(crate) fn furnished_entry(records: &[CreditRecord], results: &[ApplyResult], now: DateTime<Utc>) -> Entry {
    let actor = records.first().map(|r| r.furnisher.as_str()).unwrap_or_default();
    let changed: Vec<&str> = records
        .iter()
        .zip(results)
        .filter(|(_, a)| matches!(a.applied, Applied::Created | Applied::Replaced))
        .map(|(r, _)| r.record_id.as_str())
        .collect();
    Entry::furnished(now, actor, &changed, records.len())
}

/// A correction entry.
pub(crate) fn corrected_entry(record: &CreditRecord, a: ApplyResult, now: DateTime<Utc>) -> Entry {
    let outcome = format!("{:?}", a.applied).to_lowercase();
    let replaced = a.applied == Applied::Replaced;
    Entry::corrected(now, &record.furnisher, &record.subject_id, &record.record_id, outcome, replaced, a.stored_version)
}

/// The entry logging an expired inquiry's deletion: its keys, never its content.
pub(crate) fn inquiry_purged_entry(i: &Inquiry, now: DateTime<Utc>) -> Entry {
    Entry::inquiry_purged(now, &i.responder, &i.inquirer, &i.subject_id, &i.query_id, i.time)
}

/// A deletion entry.
pub(crate) fn deleted_entry(
    furnisher: &str,
    subject: &str,
    record_id: &str,
    version: u64,
    reason: &str,
    now: DateTime<Utc>,
) -> Entry {
    Entry::deleted(now, furnisher, subject, record_id, version, reason)
}

/// The version rule, shared by every backend: what storing `incoming` over `existing` does.
/// `existing` is (stored version, live, subject) of what is under the key, if anything.
pub(crate) fn version_rule(
    incoming: &CreditRecord,
    existing: Option<(u64, bool, &str)>,
    must_exist: bool,
) -> ApplyResult {
    let (stored_version, was_live, old_subject) = existing.unwrap_or((0, false, ""));
    if must_exist && !was_live {
        return ApplyResult { applied: Applied::IgnoredStale, stored_version: 0 };
    }
    if incoming.version <= stored_version {
        let stored_version = if was_live { stored_version } else { 0 };
        return ApplyResult { applied: Applied::IgnoredStale, stored_version };
    }
    if was_live && old_subject != incoming.subject_id {
        return ApplyResult { applied: Applied::SubjectMismatch, stored_version };
    }
    let applied = if was_live { Applied::Replaced } else { Applied::Created };
    ApplyResult { applied, stored_version: incoming.version }
}
