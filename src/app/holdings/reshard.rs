//! Following the directory when it moves pseudonym prefixes between locator shards (a shard
//! split, a merge, a new cluster). Registrations are delivered to the shard serving each person
//! when a record changes; a person whose records did not change since the move would stay
//! registered only at the old shard, and a lookup at the new one would miss this member. So
//! when the shard map in force differs from the one its holdings were delivered under, the
//! member scans its own records, a page per tick, and registers every person whose shard
//! changed at the new shard, with the holding as it stands now. The map delivered under and the
//! scan's position are kept in the store, so the sweep resumes after a restart and runs once
//! per move; each page is logged (`HOLDINGS_DELIVERED`, shards named) like any delivery.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::Ordering,
};

use serde::{Deserialize, Serialize};
use tracing::info;

use super::Holdings;
use crate::{
    app::state::{Change, StateItem},
    audit::Entry,
    storage::{RecordCursor, Space, StoreError},
    wire::pb::bureau::v1 as pb,
};

/// Records one step of the sweep reads.
const PAGE: usize = 2000;
/// The key of [`Shards`] in [`Space::Progress`].
const SHARDS: &str = "holdings-shards";

/// A shard map: (pseudonym prefix, locator id), sorted.
type Map = Vec<(String, String)>;

/// The shard map this member's holdings were delivered under, and the move under way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Shards {
    delivered: Map,
    #[serde(default)]
    moving: Option<Moving>,
}

/// A move to the map `to`: the scan of this member's records resumes after record `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Moving {
    to: Map,
    after: String,
}

impl StateItem for Shards {
    const SPACE: Space = Space::Progress;
}

/// The shard serving `subject` under `map`: the longest matching prefix.
fn shard_of<'m>(map: &'m Map, subject: &str) -> Option<&'m str> {
    map.iter().filter(|(p, _)| subject.starts_with(p.as_str())).max_by_key(|(p, _)| p.len()).map(|(_, id)| id.as_str())
}

impl Holdings {
    /// One step of following the shard map in force; true while a sweep has more to read.
    /// Nothing to do (the usual case) costs nothing: an edition already settled is not read
    /// again; a new one costs one state read.
    pub(crate) async fn reshard(&self) -> Result<bool, StoreError> {
        let Some(dir) = self.peers.directory() else { return Ok(false) };
        if self.settled.load(Ordering::Relaxed) == dir.serial {
            return Ok(false);
        }
        let settle = || self.settled.store(dir.serial, Ordering::Relaxed);
        let mut current: Map = dir.locators.iter().map(|l| (l.prefix.clone(), l.id.clone())).collect();
        current.sort();
        let (stored, version) = self.state.get::<Shards>(SHARDS).await?;
        let Some(mut shards) = stored else {
            // The first look: what was delivered so far followed the map in force.
            self.save_shards(Shards { delivered: current, moving: None }, &version, (0, ""), &[]).await?;
            settle();
            return Ok(false);
        };
        let moving = match shards.moving.take() {
            // The map moved again during a sweep: start over towards the newest.
            Some(m) if m.to == current => m,
            _ if shards.delivered == current => {
                settle();
                return Ok(false);
            }
            _ => Moving { to: current, after: String::new() },
        };
        let me = self.life.institution.as_str();
        let after = RecordCursor { furnisher: me.to_owned(), record_id: moving.after.clone() };
        let page = self.life.store.scan_records(Some(after), PAGE).await?;
        let mine: Vec<_> = page.iter().take_while(|r| r.record.furnisher == me).collect();
        let done = mine.len() < PAGE;
        let moved: BTreeSet<&str> = mine
            .iter()
            .map(|r| r.record.subject_id.as_str())
            .filter(|s| shard_of(&shards.delivered, s) != shard_of(&moving.to, s))
            .collect();
        // Newer than any version delivered before (each is a log index read up to).
        let version_now = self.life.store.audit_size().await?;
        let mut by_shard: BTreeMap<String, Vec<pb::Holding>> = BTreeMap::new();
        for subject in moved {
            let Some(shard) = shard_of(&moving.to, subject) else { continue };
            let holds = !self.life.store.list_subject(subject, None, 1).await?.items.is_empty();
            let h = pb::Holding { subject_id: subject.to_owned(), holds, version: version_now };
            by_shard.entry(shard.to_owned()).or_default().push(h);
        }
        let (sent, batches) = self.deliver(&by_shard, version_now).await?;
        let names: Vec<&str> = by_shard.keys().map(String::as_str).collect();
        let next = match (done, mine.last()) {
            (true, _) | (_, None) => Shards { delivered: moving.to, moving: None },
            (false, Some(last)) => {
                let after = last.record.record_id.clone();
                Shards { delivered: shards.delivered, moving: Some(Moving { after, ..moving }) }
            }
        };
        self.save_shards(next, &version, (sent, &names.join(",")), &batches).await?;
        if done {
            settle();
            info!(moved = sent, "holdings follow the locator's new shard map");
        }
        Ok(!done)
    }

    /// Stores `shards`, logging what this step delivered (every state change logs: on the
    /// first look, that none was sent).
    async fn save_shards(
        &self,
        shards: Shards,
        version: &crate::app::state::Version,
        (sent, names): (usize, &str),
        batches: &[String],
    ) -> Result<(), StoreError> {
        let (now, size) = (self.life.clock.now(), self.life.store.audit_size().await?);
        let entry = Entry::holdings_delivered(now, &self.life.institution, names, sent as u32, size, batches);
        let mut change = Change::logged(entry);
        change.expect::<Shards>(SHARDS, version).put(SHARDS, &shards);
        if self.state.write(change).await? {
            self.state.sync().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_serves() {
        let map: Map = vec![("".into(), "a".into()), ("8".into(), "b".into()), ("8f".into(), "c".into())];
        assert_eq!(shard_of(&map, "12"), Some("a"));
        assert_eq!(shard_of(&map, "81"), Some("b"));
        assert_eq!(shard_of(&map, "8f0"), Some("c"));
        assert_eq!(shard_of(&Vec::new(), "8f0"), None);
    }
}
