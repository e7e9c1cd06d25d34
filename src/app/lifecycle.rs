//! What a node may show of what it stores, and when it must forget it: retention windows and
//! dispute suppression applied on every read (peer answers, the node's own part of a score,
//! listings), whatever the state of the background purge; and the purge itself.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::{
    app::state::{from_bytes, State, Version},
    domain::{
        clock::Clock, dispute::RecordMark, inquiry::Inquiry, protection::Protection, record::CreditRecord,
        retention::Retention,
    },
    storage::{mark_key, DynStorage, RecordCursor, RecordFilter, Space, StoreError, StoredRecord},
};

/// A node's store with the rules for reading it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Lifecycle {
    /// This node's institution.
    pub institution: String,
    /// Its store.
    pub store: DynStorage,
    /// The clock every window reads.
    pub clock: Clock,
    /// The windows.
    pub retention: Retention,
}

impl Lifecycle {
    /// The read rules at `now` for this node's own records, given each record's flag as
    /// stored: drops expired and suppressed ones, attaches every other one's flag. A flag that
    /// does not decode hides its record (fail closed) and is logged.
    pub(crate) fn rules(&self, now: DateTime<Utc>) -> RecordFilter {
        self.rules_for(now, true)
    }

    /// [`Lifecycle::rules`], keeping suppressed records when `hide_suppressed` is false (the
    /// furnisher reads one by name to resolve its dispute).
    fn rules_for(&self, now: DateTime<Utc>, hide_suppressed: bool) -> RecordFilter {
        let retention = self.retention;
        let today = now.date_naive();
        Arc::new(move |r: &mut CreditRecord, mark: Option<&[u8]>| {
            if retention.record_expired(r, today) {
                return false;
            }
            let Some(bytes) = mark else { return true };
            match from_bytes::<RecordMark>(bytes) {
                Ok(m) if hide_suppressed && m.suppressed(now) => false,
                Ok(m) => {
                    r.dispute = Some(m.mark);
                    true
                }
                Err(e) => {
                    tracing::error!(record = %r.record_id, error = %e, "a dispute flag does not decode: the record is withheld");
                    false
                }
            }
        })
    }

    /// The flags stored for `subject`'s records, by [`mark_key`].
    pub(crate) async fn marks(&self, subject: &str) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let marks = State::new(self.store.clone()).all_stored(Space::Mark, &format!("{subject}/")).await?;
        Ok(marks.into_iter().collect())
    }

    /// Applies the read rules now to records of `subject` read outside an answer (listings).
    pub(crate) async fn visible(
        &self,
        subject: &str,
        records: Vec<StoredRecord>,
        suppressed_too: bool,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let marks = self.marks(subject).await?;
        let rules = self.rules_for(self.clock.now(), !suppressed_too);
        Ok(records
            .into_iter()
            .filter_map(|mut s| {
                let mark = marks.get(&mark_key(subject, &s.record.furnisher, &s.record.record_id));
                rules(&mut s.record, mark.map(Vec::as_slice)).then_some(s)
            })
            .collect())
    }

    /// The person's protections as this node holds them (none when it holds nothing), with
    /// the version a change may expect.
    pub(crate) async fn protection(&self, subject: &str) -> Result<(Protection, Version), StoreError> {
        let (p, version) = State::new(self.store.clone()).get::<Protection>(subject).await?;
        Ok((p.unwrap_or_default(), version))
    }

    /// Drops expired inquiries.
    pub(crate) fn live_inquiries(&self, inquiries: Vec<Inquiry>, now: DateTime<Utc>) -> Vec<Inquiry> {
        inquiries.into_iter().filter(|i| !self.retention.inquiry_expired(i, now)).collect()
    }

    /// Deletes what has expired now: negative records past their window (through the record
    /// deletion path, logged with reason `retention_expired`) and inquiries past theirs (each
    /// logged). Returns (records, inquiries) deleted.
    pub(crate) async fn purge(&self) -> Result<(usize, usize), StoreError> {
        const PAGE: usize = 500;
        let now = self.clock.now();
        let today = now.date_naive();
        let mut records = 0;
        let mut after: Option<RecordCursor> = None;
        loop {
            let page = self.store.scan_records(after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(RecordCursor {
                furnisher: last.record.furnisher.clone(),
                record_id: last.record.record_id.clone(),
            });
            for s in &page {
                let r = &s.record;
                if r.furnisher == self.institution && self.retention.record_expired(r, today) {
                    let gone = self.store.delete(&r.furnisher, &r.record_id, "retention_expired", "", now).await?;
                    if matches!(gone, crate::storage::Deleted::Removed(_)) {
                        records += 1;
                    }
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        let mut inquiries = 0;
        let cutoff = self.retention.inquiry_cutoff(now);
        loop {
            let old = self.store.inquiries_before(cutoff, PAGE).await?;
            if old.is_empty() {
                break;
            }
            let n = old.len();
            let deleted = self.store.purge_inquiries(old, now).await?;
            inquiries += deleted;
            if n < PAGE || deleted == 0 {
                break;
            }
        }
        let nonces = purge_nonces(&self.store, &self.institution, now).await?;
        self.store.sync().await?;
        if nonces > 0 {
            info!(nonces, "expired consent nonces forgotten");
        }
        if records + inquiries > 0 {
            info!(records, inquiries, "expired data purged");
        }
        Ok((records, inquiries))
    }

    /// Purges every `every` until dropped (the node's background purge).
    pub(crate) async fn purge_every(self, every: std::time::Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.purge().await {
                warn!(error = %e, "retention purge failed; retried at the next interval");
            }
        }
    }
}

/// How long after its expiry a consent nonce is kept: a token cannot be used once expired, so
/// its nonce is forgotten then, with this margin for the clocks of the nodes that check it.
const NONCE_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// Forgets the consent nonces of tokens expired more than [`NONCE_GRACE`] before `now` (one
/// logged write per page); returns how many.
pub(crate) async fn purge_nonces(
    store: &DynStorage,
    institution: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    const PAGE: usize = 500;
    let cutoff = format!("{:012}/", (now - NONCE_GRACE).timestamp().max(0));
    let mut purged = 0;
    loop {
        let page = store.state_scan(Space::ConsentNonce, "", None, PAGE).await?;
        let expired: Vec<String> =
            page.into_iter().map(|(k, _)| k).take_while(|k| k.as_str() < cutoff.as_str()).collect();
        if expired.is_empty() {
            return Ok(purged);
        }
        let n = expired.len();
        let change = crate::storage::StateChange {
            expect: Vec::new(),
            put: expired.into_iter().map(|k| (Space::ConsentNonce, k, None)).collect(),
            entries: vec![crate::audit::Entry::consent_nonces_purged(now, institution, n)],
        };
        store.state_write(change).await?;
        purged += n;
        if n < PAGE {
            return Ok(purged);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use chrono::{NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    use super::Lifecycle;
    use crate::{
        app::{
            answer::{answer_unsynced, PeerQuery},
            score::score_input,
        },
        domain::{
            clock::Clock,
            inquiry::{Inquiry, Purpose},
            retention::{Profile, Retention},
        },
        net::peers::{PeerOutcome, PeerResult},
        storage::{
            open::{SledOptions, SledStorage},
            Storage,
        },
        testkit::gen::{self, GenConfig},
    };

    fn as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 6, 1).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// For any generated file and any "today": nothing expired is ever in a peer answer
        /// (and everything not expired is), nor in what a score rests on, whatever a peer
        /// sends. Real sled store, real read path, no purge run.
        #[test]
        fn nothing_expired_ever_reaches_an_answer_or_a_score(
            seed in any::<u64>(),
            i in 0usize..5_000,
            days_later in 0i64..5_000,
            fcra in any::<bool>(),
            inquiry_ages in proptest::collection::vec(0i64..1_500, 0..6),
        ) {
            let retention = Retention::of(if fcra { Profile::Fcra } else { Profile::Pbc });
            let cfg = GenConfig { subjects: 1, seed, institutions: vec!["a".into()], federation_key: b"k".to_vec(), as_of: as_of() };
            let file = gen::subject_records(&cfg, i);
            prop_assume!(!file.is_empty());
            let subject = file[0].subject_id.clone();
            let now = Utc.from_utc_datetime(&(as_of() + chrono::Duration::days(days_later)).and_hms_opt(12, 0, 0).unwrap());
            let today = now.date_naive();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let (answer, expected, judged) = rt.block_on(async {
                let store = Arc::new(SledStorage::open(&SledOptions { path: dir.path().join("s"), cache_capacity: 1 << 20, fsync: false }).unwrap());
                store.furnish(file.clone(), now).await.unwrap();
                for (n, age) in inquiry_ages.iter().enumerate() {
                    let inquiry = Inquiry {
                        inquirer: "b".into(), responder: "a".into(), subject_id: subject.clone(), purpose: Purpose::CreditApplication,
                        hard: true, time: now - chrono::Duration::days(*age), query_id: format!("old-{n}"), log_index: None,
                    };
                    let e = crate::audit::Entry::new(crate::audit::Action::QueryInbound, "b", "answered");
                    store.add_inquiry(inquiry, e).await.unwrap();
                }
                let clock = Clock::system();
                clock.advance(now - Utc::now());
                let life = Lifecycle { institution: "a".into(), store: store.clone(), clock, retention };
                let q = PeerQuery { inquirer: "b".into(), subject_id: subject.clone(), purpose: Some(Purpose::AccountReview), consent_reference: String::new(), query_id: "q".into() };
                // The node judges at its own clock, read inside the call: no earlier than this.
                let judged = life.clock.now();
                let answer = answer_unsynced(&life, &q, Purpose::AccountReview, 180).await.unwrap();
                store.close().await.unwrap();
                let mut expected: Vec<String> = file.iter().filter(|r| !retention.record_expired(r, life.clock.now().date_naive())).map(|r| r.record_id.clone()).collect();
                expected.sort();
                (answer, expected, judged)
            });
            let mut got: Vec<String> = answer.records.iter().map(|r| r.record_id.clone()).collect();
            got.sort();
            prop_assert!(answer.records.iter().all(|r| !retention.record_expired(r, today)), "an expired record was answered");
            prop_assert_eq!(got, expected);
            prop_assert!(answer.inquiries.iter().all(|i| !retention.inquiry_expired(i, judged)), "an expired inquiry was answered");

            // A peer with no retention at all sends the whole file, expired parts included.
            let mut coverage = vec![PeerResult {
                peer: "c".into(), outcome: PeerOutcome::Answered,
                records: file.iter().cloned().map(|mut r| { r.furnisher = "c".into(); r }).collect(),
                records_returned: file.len(), inquiries: answer.inquiries.clone(), latency: Duration::ZERO, error: None,
                fraud_alert: false, proven: Vec::new(), checkpoint: None, frozen: None,
            }];
            let (records, inquiries, recorded) = score_input(&retention, now, answer, &mut coverage, "q", true);
            prop_assert!(recorded.iter().all(|i| !retention.inquiry_expired(i, now)), "an expired inquiry reached a report");
            prop_assert!(records.iter().all(|r| !retention.record_expired(r, today)), "an expired record reached a score");
            prop_assert!(inquiries.iter().all(|i| !retention.inquiry_expired(i, now)), "an expired inquiry reached a score");
        }
    }
}
