//! Answering a peer over one write's view of the store, written once for every backend (as the
//! Merkle code in `audit::merkle` is): each backend supplies the reads and the one write over its
//! own snapshot ([`AnswerSource`]); the order and the policy live here. Names no backend.

use crate::{
    audit::Entry,
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{AnswerQuery, GateError, InquiryAnswer, StateChange, StoreError},
};

/// A record with its [`Space::Mark`](crate::storage::Space::Mark) value (its dispute flag).
pub(crate) type Marked = (CreditRecord, Option<Vec<u8>>);

/// What one answering write sees and does, in a backend's terms: its reads see the store as the
/// write does (its own earlier changes included), and nothing it records is visible to anyone
/// else before the write commits.
pub(crate) trait AnswerSource {
    /// The subject's [`Space::Protection`](crate::storage::Space::Protection) value.
    fn protection(&mut self, subject: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The subject's live records that `responder` furnished, by record id, each with its flag.
    fn records(&mut self, subject: &str, responder: &str) -> Result<Vec<Marked>, StoreError>;

    /// The log's size now: the index the next entry gets.
    fn log_size(&self) -> Result<u64, StoreError>;

    /// Stores `inquiry` and appends `entry` to the log.
    fn record(&mut self, inquiry: Inquiry, entry: Entry) -> Result<(), StoreError>;

    /// Makes `change` if its expectations hold (its entries appended); whether they did.
    fn change_state(&mut self, change: &StateChange) -> Result<bool, StoreError>;

    /// The newest `max` inquiries about the subject recorded at or after `since` (micros since the
    /// epoch; any time when `None`), newest first, those recorded above included. Reads only what
    /// it returns: never every inquiry the subject has.
    fn newest_inquiries(&mut self, subject: &str, max: usize, since: Option<i64>) -> Result<Vec<Inquiry>, StoreError>;
}

/// Answers `inquiry` inside one write: the gate reads the subject's protection and may refuse
/// (nothing is written); then `first`, if any, is made, or nothing is written when its
/// expectations do not hold; otherwise the responder's live records that `show` keeps are answered,
/// their number goes into `entry`, the inquiry and its entry are recorded (the inquiry carrying
/// its entry's index), and the newest inquiries come back with it: at most `max`, none older than
/// `since` (`inquiries` = (`max`, `since`)).
///
/// A protection value the gate cannot decode is damage to the store: [`StoreError::Corrupt`].
pub(crate) fn answer(src: &mut impl AnswerSource, q: AnswerQuery) -> Result<InquiryAnswer, StoreError> {
    let AnswerQuery { mut inquiry, mut entry, max_inquiries: max, since, show, gate, first } = q;
    if let Some(refused) = first.as_ref().and_then(StateChange::unlogged) {
        return Err(refused);
    }
    let subject = inquiry.subject_id.clone();
    let protection = src.protection(&subject)?;
    let nothing = |protection, refused, unmet| InquiryAnswer {
        records: Vec::new(),
        inquiries: Vec::new(),
        protection,
        refused,
        unmet,
    };
    match gate(protection.as_deref()) {
        Ok(()) => {}
        Err(GateError::Refused(why)) => return Ok(nothing(protection, Some(why), false)),
        Err(GateError::Undecodable(why)) => {
            return Err(StoreError::Corrupt { key: format!("protection {subject}"), why });
        }
    }
    if let Some(change) = &first {
        if !src.change_state(change)? {
            return Ok(nothing(protection, None, true));
        }
    }
    let records: Vec<CreditRecord> = src
        .records(&subject, &inquiry.responder)?
        .into_iter()
        .filter_map(|(mut record, mark)| show(&mut record, mark.as_deref()).then_some(record))
        .collect();
    entry.record_count = records.len() as u32;
    inquiry.log_index = Some(src.log_size()?);
    src.record(inquiry, entry)?;
    let inquiries = src.newest_inquiries(&subject, max, since.map(|t| t.timestamp_micros()))?;
    Ok(InquiryAnswer { records, inquiries, protection, refused: None, unmet: false })
}
