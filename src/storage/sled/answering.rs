//! A peer's answer as one write on the sled store: the write set as the answer's view of the
//! store, so records, flags and the count logged come from the state the inquiry is written in.

use prost::Message as _;

use super::{
    codec::{decode, decode_inquiry, live},
    keys,
    ledger::{append, compare_and_set},
    writeset::WriteSet,
};
use crate::{
    audit::Entry,
    domain::inquiry::Inquiry,
    storage::{
        answer::{self, AnswerSource},
        AnswerQuery, InquiryAnswer, Space, StateChange, StoreError,
    },
    wire::convert,
};

/// The change that answers: gate, records, inquiry and entry, newest inquiries.
pub(super) fn change(
    q: AnswerQuery,
) -> impl FnOnce(&mut WriteSet<'_>) -> Result<InquiryAnswer, StoreError> + Send + 'static {
    move |ws| answer::answer(&mut Source(ws), q)
}

/// The answering write's view: the write set, its own changes included.
struct Source<'w, 'a>(&'w mut WriteSet<'a>);

impl AnswerSource for Source<'_, '_> {
    fn protection(&mut self, subject: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(&keys::state(Space::Protection, subject))?.map(|v| v.to_vec()))
    }

    fn records(&mut self, subject: &str, responder: &str) -> Result<Vec<answer::Marked>, StoreError> {
        let marks: std::collections::HashMap<Vec<u8>, sled::IVec> =
            self.0.scan_prefix(&keys::state(Space::Mark, &format!("{subject}/")))?.into_iter().collect();
        let mut records = Vec::new();
        for (k, _) in self.0.scan_prefix(&keys::prefixed(keys::SUBJECT, &[subject.as_bytes()]))? {
            let rkey = keys::record_of_index(&k, subject);
            let Some(bytes) = self.0.get(&rkey)? else { continue };
            if let Some(r) = live(&rkey, decode(&rkey, &bytes)?)?.filter(|r| r.record.furnisher == responder) {
                let mark_key = crate::storage::mark_key(subject, &r.record.furnisher, &r.record.record_id);
                let mark = marks.get(&keys::state(Space::Mark, &mark_key)).map(|v| v.to_vec());
                records.push((r.record, mark));
            }
        }
        Ok(records)
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        Ok(self.0.log_size)
    }

    fn record(&mut self, inquiry: Inquiry, entry: Entry) -> Result<(), StoreError> {
        self.0.insert(keys::inquiry(&inquiry), convert::inquiry_to_pb(&inquiry).encode_to_vec());
        append(self.0, std::slice::from_ref(&entry))?;
        Ok(())
    }

    fn change_state(&mut self, change: &StateChange) -> Result<bool, StoreError> {
        compare_and_set(self.0, change)
    }

    fn newest_inquiries(&mut self, subject: &str, max: usize, since: Option<i64>) -> Result<Vec<Inquiry>, StoreError> {
        // Backwards from the newest, stopping at `max` or the window's start: never reads
        // the subject's older inquiries.
        let (from, to) = keys::inquiries_since(subject, since);
        self.0.range_rev(&from, &to, max)?.iter().map(|(k, v)| decode_inquiry(k, v)).collect()
    }
}
