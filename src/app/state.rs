//! The state spaces beside the ledger, typed: callers get and put disputes, record marks,
//! protections and outbox items, never bytes, and every read-decide-write step goes through one
//! compare-and-set helper that retries when another writer (a concurrent caller, or a replica
//! on the same database) moved first.
//!
//! The codec is JSON, on purpose: this is small lifecycle state, read and written a few values
//! at a time, and every existing store holds it as JSON; records and log entries, which are
//! many and travel, are protobuf and JSON leaves respectively. One codec here ([`to_bytes`],
//! [`from_bytes`]) serves every space, including the read rules' view of a record's mark.

use std::future::Future;

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    audit::Entry,
    domain::{dispute::Dispute, dispute::RecordMark, protection::Protection},
    storage::{DynStorage, Space, StateChange, StoreError},
};

/// Times a compare-and-set step is tried before giving up on a value that keeps changing.
pub(crate) const CAS_ATTEMPTS: usize = 16;

/// A value kept in one state space.
pub(crate) trait StateItem: Serialize + DeserializeOwned {
    /// The space its values live in.
    const SPACE: Space;
}

impl StateItem for Dispute {
    const SPACE: Space = Space::Dispute;
}

impl StateItem for RecordMark {
    const SPACE: Space = Space::Mark;
}

impl StateItem for Protection {
    const SPACE: Space = Space::Protection;
}

/// The stored form of a state value (JSON).
pub(crate) fn to_bytes<T: StateItem>(v: &T) -> Vec<u8> {
    // Plain data always serialises.
    serde_json::to_vec(v).expect("state serialises")
}

/// Reads a stored state value; says what is wrong when it does not decode.
pub(crate) fn from_bytes<T: StateItem>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

fn decode<T: StateItem>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    from_bytes(bytes).map_err(|why| StoreError::Corrupt { key: format!("{} {key}", T::SPACE.as_str()), why })
}

/// What a key held when it was read: the expectation of a compare-and-set. Opaque.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Version(Option<Vec<u8>>);

impl Version {
    /// The key held nothing.
    pub(crate) const ABSENT: Version = Version(None);
}

/// An atomic change of typed state with the log entries that record it (see
/// [`StateChange`]): applied only if every expected key still holds what was read.
#[derive(Debug, Default)]
pub(crate) struct Change(StateChange);

impl Change {
    /// A change that logs `entry` (every change logs at least one).
    pub(crate) fn logged(entry: Entry) -> Self {
        Self(StateChange { entries: vec![entry], ..Default::default() })
    }

    /// Applies only if `key` still holds what it held at `version`.
    pub(crate) fn expect<T: StateItem>(&mut self, key: &str, version: &Version) -> &mut Self {
        self.0.expect.push((T::SPACE, key.to_owned(), version.0.clone()));
        self
    }

    /// Sets `key` to `value`.
    pub(crate) fn put<T: StateItem>(&mut self, key: &str, value: &T) -> &mut Self {
        self.0.put.push((T::SPACE, key.to_owned(), Some(to_bytes(value))));
        self
    }

    /// Sets `key` to `value`, or removes it for `None`.
    pub(crate) fn set<T: StateItem>(&mut self, key: &str, value: Option<&T>) -> &mut Self {
        self.0.put.push((T::SPACE, key.to_owned(), value.map(to_bytes)));
        self
    }

    /// Removes `key`.
    pub(crate) fn remove<T: StateItem>(&mut self, key: &str) -> &mut Self {
        self.set::<T>(key, None)
    }

    /// Logs `entry` too.
    pub(crate) fn log(&mut self, entry: Entry) -> &mut Self {
        self.0.entries.push(entry);
        self
    }
}

/// What one compare-and-set attempt decided, after reading.
pub(crate) enum Step<T> {
    /// Nothing to write: the answer as things stand.
    Done(T),
    /// Write this change; the answer once it is in.
    Write(Change, T),
}

/// How a compare-and-set ended.
#[derive(Debug)]
pub(crate) enum Settled<T> {
    /// The step wrote nothing.
    Unchanged(T),
    /// Its change is in, and synced.
    Written(T),
    /// Other writers moved first [`CAS_ATTEMPTS`] times: nothing was written.
    Contended,
}

/// The state spaces of one store, typed. Cheap to clone.
#[derive(Clone)]
pub(crate) struct State {
    store: DynStorage,
}

impl State {
    /// The state of `store`.
    pub(crate) fn new(store: DynStorage) -> Self {
        Self { store }
    }

    /// The value under `key`, with the version a change may expect.
    pub(crate) async fn get<T: StateItem>(&self, key: &str) -> Result<(Option<T>, Version), StoreError> {
        match self.store.state_get(T::SPACE, key).await? {
            Some(bytes) => Ok((Some(decode(key, &bytes)?), Version(Some(bytes)))),
            None => Ok((None, Version::ABSENT)),
        }
    }

    /// Up to `limit` values under `prefix` after key `after`, in key order.
    pub(crate) async fn page<T: StateItem>(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T, Version)>, StoreError> {
        let page = self.store.state_scan(T::SPACE, prefix, after, limit).await?;
        page.into_iter()
            .map(|(key, bytes)| {
                let value = decode(&key, &bytes)?;
                Ok((key, value, Version(Some(bytes))))
            })
            .collect()
    }

    /// Every value under `prefix`, in key order, read a page at a time.
    pub(crate) async fn all<T: StateItem>(&self, prefix: &str) -> Result<Vec<(String, T, Version)>, StoreError> {
        self.all_stored(T::SPACE, prefix)
            .await?
            .into_iter()
            .map(|(key, bytes)| {
                let value = decode(&key, &bytes)?;
                Ok((key, value, Version(Some(bytes))))
            })
            .collect()
    }

    /// Every value of `space` under `prefix` as stored, in key order, read a page at a time:
    /// for the read rules, which judge each record's mark as the store hands it over.
    pub(crate) async fn all_stored(&self, space: Space, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        const PAGE: usize = 256;
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let after = out.last().map(|(k, _)| k.clone());
            let page = self.store.state_scan(space, prefix, after.as_deref(), PAGE).await?;
            let full = page.len() == PAGE;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Applies `change` once: false when an expectation did not hold (nothing was written).
    /// Not synced.
    pub(crate) async fn write(&self, change: Change) -> Result<bool, StoreError> {
        self.store.state_write(change.0).await
    }

    /// Makes what was written durable.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        self.store.sync().await
    }

    /// The compare-and-set loop: `step` reads and decides; its change is written unless
    /// another writer moved first, and then `step` runs again from a fresh read, up to
    /// [`CAS_ATTEMPTS`] times. A written change is synced before this returns.
    pub(crate) async fn compare_and_set<T, E, F, Fut>(&self, mut step: F) -> Result<Settled<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Step<T>, E>>,
        E: From<StoreError>,
    {
        for _ in 0..CAS_ATTEMPTS {
            match step().await? {
                Step::Done(answer) => return Ok(Settled::Unchanged(answer)),
                Step::Write(change, answer) => {
                    if self.write(change).await? {
                        self.sync().await?;
                        return Ok(Settled::Written(answer));
                    }
                }
            }
        }
        Ok(Settled::Contended)
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, sync::Arc};

    use chrono::Utc;

    use super::{Change, Settled, State, Step, Version, CAS_ATTEMPTS};
    use crate::{
        audit::Entry,
        domain::protection::{Kind, Protection},
        storage::{
            open::{SledOptions, SledStorage},
            DynStorage, Space,
        },
    };

    fn store(dir: &tempfile::TempDir) -> DynStorage {
        let opts = SledOptions { path: dir.path().join("s"), cache_capacity: 1 << 20, fsync: false };
        Arc::new(SledStorage::open(&opts).unwrap())
    }

    fn frozen_by(by: &str) -> Protection {
        let mut p = Protection::default();
        p.set(Kind::SecurityFreeze, true, Utc::now(), by);
        p
    }

    /// Sets `key` to `p` whatever it holds: another writer.
    async fn overwrite(state: &State, key: &str, p: &Protection) {
        let mut c = Change::logged(Entry::notice_dropped(Utc::now(), "other", key));
        c.put(key, p);
        assert!(state.write(c).await.unwrap());
    }

    /// Typed values are stored as the JSON every existing store holds, and what such a store
    /// holds reads back typed.
    #[tokio::test]
    async fn typed_values_are_the_json_existing_stores_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let state = State::new(store.clone());
        let p = frozen_by("a");
        let mut c = Change::logged(Entry::notice_dropped(Utc::now(), "a", "s"));
        c.expect::<Protection>("s", &Version::ABSENT).put("s", &p);
        assert!(state.write(c).await.unwrap());
        assert_eq!(store.state_get(Space::Protection, "s").await.unwrap(), Some(p.encode()));
        assert_eq!(state.get::<Protection>("s").await.unwrap().0, Some(p.clone()));
        let listed = state.all::<Protection>("").await.unwrap();
        assert_eq!(listed.iter().map(|(k, v, _)| (k.as_str(), v)).collect::<Vec<_>>(), [("s", &p)]);
    }

    /// Runs a step that adds a fraud alert to `s`, with another writer freezing `s` between
    /// the step's read and its write on the attempts `interfere` picks; returns how it settled
    /// and after how many attempts.
    async fn alert_with_interference(state: &State, interfere: impl Fn(usize) -> bool) -> (Settled<Protection>, usize) {
        let attempts = Cell::new(0);
        let (interfere, attempts_ref) = (&interfere, &attempts);
        let settled = state
            .compare_and_set(|| async move {
                attempts_ref.set(attempts_ref.get() + 1);
                let (held, version) = state.get::<Protection>("s").await?;
                if interfere(attempts_ref.get()) {
                    overwrite(state, "s", &frozen_by(&format!("other{}", attempts_ref.get()))).await;
                }
                let mut p = held.unwrap_or_default();
                p.set(Kind::FraudAlert, true, Utc::now(), "a");
                let mut c = Change::logged(Entry::notice_dropped(Utc::now(), "a", "s"));
                c.expect::<Protection>("s", &version).put("s", &p);
                Ok::<_, crate::storage::StoreError>(Step::Write(c, p))
            })
            .await
            .unwrap();
        (settled, attempts.get())
    }

    /// A step whose read went stale is run again from a fresh read, and its change then goes
    /// in (synced) on top of the other writer's.
    #[tokio::test]
    async fn a_stale_step_runs_again_from_a_fresh_read() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(store(&dir));
        let (settled, attempts) = alert_with_interference(&state, |n| n == 1).await;
        assert_eq!(attempts, 2, "the first write found the value changed");
        let Settled::Written(p) = settled else { panic!("written: {settled:?}") };
        assert!(p.frozen() && p.alert.is_some(), "built on the other writer's freeze");
        assert_eq!(state.get::<Protection>("s").await.unwrap().0, Some(p));
    }

    /// A value that keeps changing under the step is given up on after [`CAS_ATTEMPTS`]
    /// attempts, with nothing of the step's written; a step that writes nothing ends at once.
    #[tokio::test]
    async fn a_value_that_keeps_changing_is_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(store(&dir));
        let (settled, attempts) = alert_with_interference(&state, |_| true).await;
        assert!(matches!(settled, Settled::Contended));
        assert_eq!(attempts, CAS_ATTEMPTS);
        let left = state.get::<Protection>("s").await.unwrap().0.unwrap();
        assert!(left.frozen() && left.alert.is_none(), "the step never wrote");

        let done = state.compare_and_set(|| async { Ok::<_, crate::storage::StoreError>(Step::Done(7)) }).await;
        assert!(matches!(done, Ok(Settled::Unchanged(7))));
    }
}
