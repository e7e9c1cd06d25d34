//! The record locator, on a node that runs it: which member holds records about which person.
//! Members register their holdings (version-gated, so a repeated or late delivery never undoes
//! a newer one: exactly once in effect); a lookup reads a person's holders. A lookup is also
//! an inquiry, answered and logged by the same use case as any peer query, before anyone is
//! named ([`Locator::lookup`]). No gRPC here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    app::{
        answer::{AnswerError, Answers, Given, PeerQuery},
        journal::Journal,
        state::{Change, Settled, State, StateItem, Step},
    },
    audit::Entry,
    domain::subject::is_valid_subject_id,
    storage::{Space, StoreError},
};

/// Most holdings one registration may carry.
pub(crate) const MAX_HOLDINGS: usize = 1000;

/// The SHA-256 (hex) of a registration batch as sent, `subject holds version` per line: logged
/// by the member that delivers it and by the locator that registers it, so `bureau audit
/// reconcile` can match the two logs batch by batch.
pub(crate) fn batch_digest<'a>(batch: impl Iterator<Item = (&'a str, bool, u64)>) -> String {
    let mut h = Sha256::new();
    for (subject, holds, version) in batch {
        h.update(format!("{subject} {} {version}\n", u8::from(holds)));
    }
    hex::encode(h.finalize())
}

/// One member's standing on one person, as the locator stores it under `subject/member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// The member's log index of the change this reflects.
    #[serde(rename = "v")]
    pub version: u64,
    /// The member holds at least one live record about the person.
    #[serde(rename = "h")]
    pub holds: bool,
}

impl StateItem for Held {
    const SPACE: Space = Space::Holding;
}

/// One holding as a member sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registration {
    /// The person's pseudonym.
    pub subject_id: String,
    /// Holds records now.
    pub holds: bool,
    /// The member's log index this reflects.
    pub version: u64,
}

/// What a registration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Registered {
    /// Stored (newer than what was there).
    pub applied: u32,
    /// Ignored: an equal or newer version was stored.
    pub stale: u32,
}

/// Why a registration or lookup was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocatorError {
    /// This node runs no locator (`federation.locator` is off).
    #[error("this node does not run the record locator")]
    NotALocator,
    /// A malformed field: (field, what is wrong).
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    /// Other writers kept moving the same keys.
    #[error("the registration met concurrent changes too often; retry")]
    Contended,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The locator's use cases. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Locator {
    /// Runs the locator at all.
    serving: bool,
    state: State,
    journal: Journal,
}

/// The state key of `member`'s holding on `subject`.
fn key(subject: &str, member: &str) -> String {
    format!("{subject}/{member}")
}

impl Locator {
    /// The locator over `state`, logging to `journal`; refuses everything unless `serving`.
    pub(crate) fn new(serving: bool, state: State, journal: Journal) -> Self {
        Self { serving, state, journal }
    }

    /// Stores `member`'s holdings that are newer than what is stored, in one logged change
    /// (the entry names the member, the counts and the batch's SHA-256).
    pub(crate) async fn register(&self, member: &str, batch: Vec<Registration>) -> Result<Registered, LocatorError> {
        if !self.serving {
            return Err(LocatorError::NotALocator);
        }
        if batch.len() > MAX_HOLDINGS {
            return Err(LocatorError::Invalid("holdings", format!("at most {MAX_HOLDINGS} per call")));
        }
        if let Some(bad) = batch.iter().find(|r| !is_valid_subject_id(&r.subject_id)) {
            return Err(LocatorError::Invalid(
                "holdings.subject_id",
                format!("{:?} is not a pseudonym", bad.subject_id),
            ));
        }
        // The newest per subject, should a batch name one twice.
        let mut newest: std::collections::BTreeMap<&str, &Registration> = Default::default();
        for r in &batch {
            let e = newest.entry(&r.subject_id).or_insert(r);
            if r.version > e.version {
                *e = r;
            }
        }
        let digest = batch_digest(batch.iter().map(|r| (r.subject_id.as_str(), r.holds, r.version)));
        let settled = self
            .state
            .compare_and_set(|| async {
                let mut change = Change::default();
                let mut done = Registered::default();
                for r in newest.values() {
                    let k = key(&r.subject_id, member);
                    let (stored, version) = self.state.get::<Held>(&k).await?;
                    if stored.is_some_and(|s| s.version >= r.version) {
                        done.stale += 1;
                        continue;
                    }
                    change.expect::<Held>(&k, &version).put(&k, &Held { version: r.version, holds: r.holds });
                    done.applied += 1;
                }
                done.stale += (batch.len() - newest.len()) as u32;
                let entry = Entry::holdings_registered(
                    self.journal.now(),
                    self.journal.institution(),
                    member,
                    done.applied,
                    done.stale,
                    &digest,
                );
                change.log(entry);
                Ok::<_, LocatorError>(Step::Write(change, done))
            })
            .await?;
        match settled {
            Settled::Written(done) | Settled::Unchanged(done) => Ok(done),
            Settled::Contended => Err(LocatorError::Contended),
        }
    }

    /// Answers a lookup: `q` checked, recorded and logged by `answers` as any peer query (its
    /// answer carries the person's hard inquiries: every federated query passed through here),
    /// and only then the members holding records about the person named.
    pub(crate) async fn lookup(&self, answers: &Answers, q: &PeerQuery) -> Result<Lookup, LookupError> {
        if !self.serving {
            return Err(LocatorError::NotALocator.into());
        }
        let given = answers.answer(q).await?;
        let holders = self.holders(&q.subject_id).await?;
        Ok(Lookup { given, holders })
    }

    /// The members that hold records about `subject` now (on a node that serves: [`Self::lookup`]).
    async fn holders(&self, subject: &str) -> Result<Vec<String>, LocatorError> {
        let prefix = format!("{subject}/");
        let held = self.state.all::<Held>(&prefix).await?;
        Ok(held
            .into_iter()
            .filter(|(_, h, _)| h.holds)
            .filter_map(|(k, _, _)| k.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }
}

/// A lookup answered.
pub(crate) struct Lookup {
    /// The answer to the lookup as a peer query.
    pub given: Given,
    /// The members that hold records about the person.
    pub holders: Vec<String>,
}

/// Why a lookup was not answered: the locator's reasons, or the peer query's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    /// Not a locator, or its store failed.
    #[error(transparent)]
    Locator(#[from] LocatorError),
    /// The query was refused or could not be answered.
    #[error(transparent)]
    Answer(#[from] AnswerError),
}
