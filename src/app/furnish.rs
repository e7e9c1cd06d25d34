//! Furnishing: stores the valid records of a batch in one transaction, makes them durable, and
//! reports what happened to each record, rejected ones included. Knows nothing of gRPC.

use chrono::{DateTime, Utc};

use crate::{
    domain::record::{CreditRecord, Violation},
    storage::{Applied, Storage, StoreError},
};

/// What happened to one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored as new.
    Created,
    /// Replaced a lower version.
    Replaced,
    /// An equal or higher version was already stored: nothing changed.
    IgnoredStale,
    /// Not stored, for these reasons.
    Rejected(Vec<Violation>),
}

/// The result for one record, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordResult {
    /// The record id as sent.
    pub record_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// The version stored after the call (0 when none).
    pub stored_version: u64,
}

/// A record of a batch after conversion and validation: either a valid record or its id and
/// violations.
pub(crate) type Candidate = Result<CreditRecord, (String, Vec<Violation>)>;

/// Stores the valid candidates and returns one result per candidate, in order, without
/// waiting for durability: the caller must [`Storage::sync`] before it acknowledges anything (a furnishing stream overlaps one batch's flush with the next batch).
pub(crate) async fn apply(
    store: &dyn Storage,
    candidates: Vec<Candidate>,
    now: DateTime<Utc>,
) -> Result<Vec<RecordResult>, StoreError> {
    let valid: Vec<CreditRecord> = candidates.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let applied = if valid.is_empty() { Vec::new() } else { store.furnish(valid, now).await? };
    if applied.len() != candidates.iter().filter(|c| c.is_ok()).count() {
        return Err(StoreError::Corrupt {
            key: String::new(),
            why: "store returned the wrong number of results".into(),
        });
    }
    let mut applied = applied.into_iter();
    let results = candidates
        .into_iter()
        .map(|c| match c {
            Err((record_id, violations)) => {
                RecordResult { record_id, outcome: Outcome::Rejected(violations), stored_version: 0 }
            }
            Ok(r) => {
                // One applied result per valid candidate, in the same order.
                let Some(a) = applied.next() else { unreachable!("counted above: one result per valid record") };
                let outcome = match a.applied {
                    Applied::Created => Outcome::Created,
                    Applied::Replaced => Outcome::Replaced,
                    Applied::IgnoredStale => Outcome::IgnoredStale,
                    Applied::SubjectMismatch => Outcome::Rejected(vec![subject_mismatch(&r)]),
                };
                RecordResult { record_id: r.record_id, outcome, stored_version: a.stored_version }
            }
        })
        .collect();
    Ok(results)
}

/// The violation for a record that would move to another subject.
pub(crate) fn subject_mismatch(r: &CreditRecord) -> Violation {
    Violation::new(
        "subject_id",
        format!("record {} is stored for another subject; delete it and furnish it anew", r.record_id),
    )
}
