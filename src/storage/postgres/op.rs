//! The changes the group writer takes, and what each did: the vocabulary shared by the
//! writer, a group's round trips and the trait implementation.

use chrono::{DateTime, Utc};

use crate::{
    audit::Entry,
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{AnswerQuery, ApplyResult, Deleted, InquiryAnswer, StateChange},
};

/// A change for the writer.
pub(super) enum Op {
    /// Store records under the version rules; one furnishing entry.
    Furnish(Vec<CreditRecord>, DateTime<Utc>),
    /// Replace a live record with a higher version.
    Correct(CreditRecord, DateTime<Utc>),
    /// Turn a live record into a tombstone.
    Delete { furnisher: String, record_id: String, reason: String, note: String, now: DateTime<Utc> },
    /// Record an inquiry and its entry.
    AddInquiry(Inquiry, Entry),
    /// Answer a peer ([`crate::storage::answer`] over the group's view).
    Answer(AnswerQuery),
    /// Append entries to the log.
    Append(Vec<Entry>),
    /// Compare-and-set state values, with their entries.
    State(StateChange),
    /// Delete stored inquiries, one entry each.
    PurgeInquiries(Vec<Inquiry>, DateTime<Utc>),
}

/// What a change did, one variant per [`Op`].
pub(super) enum Done {
    /// [`Op::Furnish`]: one result per record.
    Furnished(Vec<ApplyResult>),
    /// [`Op::Correct`]: `None` when no live record was there.
    Corrected(Option<ApplyResult>),
    /// [`Op::Delete`].
    Deleted(Deleted),
    /// [`Op::AddInquiry`].
    Unit,
    /// [`Op::Answer`].
    Answer(InquiryAnswer),
    /// [`Op::Append`]: the index of the first entry.
    Appended(u64),
    /// [`Op::State`]: whether the expectations held (and the change applied).
    StateWritten(bool),
    /// [`Op::PurgeInquiries`]: how many were still stored and deleted.
    Purged(usize),
}
