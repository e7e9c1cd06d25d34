//! The institution's own records, as its applications see them: furnish (durably), read one,
//! list a person's, correct, delete. Every read applies the lifecycle's rules (retention,
//! dispute flags); every time comes from the node's clock. No gRPC here.

use crate::{
    app::{
        furnish::{self, Candidate, RecordResult},
        lifecycle::Lifecycle,
    },
    domain::record::{CreditRecord, Violation},
    storage::{Applied, Deleted, Page, RecordCursor, StoreError, StoredRecord},
};

/// The records use cases over one node's store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Records {
    life: Lifecycle,
}

/// What a correction did.
#[derive(Debug)]
pub(crate) enum Corrected {
    /// No live record under the corrected record's key.
    NotFound,
    /// The record is stored for another person: nothing changed.
    SubjectMismatch(Violation),
    /// Stored: `replaced` when the version rule took the correction (false: an equal or higher
    /// version is stored and nothing changed), durably.
    Stored {
        /// True when the correction replaced the record.
        replaced: bool,
        /// The version stored now.
        version: u64,
        /// The record as stored.
        stored: Option<StoredRecord>,
    },
}

impl Records {
    /// The use cases over `life`'s store and clock.
    pub(crate) fn new(life: Lifecycle) -> Self {
        Self { life }
    }

    /// Today, by the node's clock: what a furnished record's dates are checked against.
    pub(crate) fn today(&self) -> chrono::NaiveDate {
        self.life.clock.now().date_naive()
    }

    /// Stores the valid candidates and makes them durable; one result per candidate, in order.
    pub(crate) async fn furnish(&self, candidates: Vec<Candidate>) -> Result<Vec<RecordResult>, StoreError> {
        let results = self.furnish_unsynced(candidates).await?;
        self.sync().await?;
        Ok(results)
    }

    /// [`Records::furnish`] without waiting for durability: the caller must [`Records::sync`]
    /// before it acknowledges anything (a stream overlaps one batch's flush with the next).
    pub(crate) async fn furnish_unsynced(&self, candidates: Vec<Candidate>) -> Result<Vec<RecordResult>, StoreError> {
        furnish::apply(&*self.life.store, candidates, self.life.clock.now()).await
    }

    /// Makes every write that returned before this call durable.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        self.life.store.sync().await
    }

    /// One of `furnisher`'s records with its flag, even suppressed (the furnisher must resolve
    /// the dispute); an expired one is gone.
    pub(crate) async fn get(&self, furnisher: &str, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let Some(s) = self.life.store.get(furnisher, record_id).await? else { return Ok(None) };
        let subject = s.record.subject_id.clone();
        Ok(self.life.visible(&subject, vec![s], true).await?.into_iter().next())
    }

    /// A page of `subject`'s records: expired ones and those suppressed by an overdue dispute
    /// are never listed.
    pub(crate) async fn list(
        &self,
        subject: &str,
        after: Option<RecordCursor>,
        size: usize,
    ) -> Result<Page<StoredRecord, RecordCursor>, StoreError> {
        let page = self.life.store.list_subject(subject, after, size).await?;
        let items = self.life.visible(subject, page.items, false).await?;
        Ok(Page { items, next: page.next })
    }

    /// Replaces a live record with a higher version, durably.
    pub(crate) async fn correct(&self, record: CreditRecord) -> Result<Corrected, StoreError> {
        let store = &self.life.store;
        let Some(applied) = store.correct(record.clone(), self.life.clock.now()).await? else {
            return Ok(Corrected::NotFound);
        };
        if applied.applied == Applied::SubjectMismatch {
            return Ok(Corrected::SubjectMismatch(furnish::subject_mismatch(&record)));
        }
        store.sync().await?;
        let stored = store.get(&record.furnisher, &record.record_id).await?;
        let replaced = applied.applied != Applied::IgnoredStale;
        Ok(Corrected::Stored { replaced, version: applied.stored_version, stored })
    }

    /// Removes a live record durably, keeping a tombstone at its version; `None` when there is
    /// none under that key.
    pub(crate) async fn delete(
        &self,
        furnisher: &str,
        record_id: &str,
        reason: &str,
        note: &str,
    ) -> Result<Option<u64>, StoreError> {
        match self.life.store.delete(furnisher, record_id, reason, note, self.life.clock.now()).await? {
            Deleted::NotFound => Ok(None),
            Deleted::Removed(version) => {
                self.sync().await?;
                Ok(Some(version))
            }
        }
    }
}
