//! A write set over one sled tree: reads see the set's own pending writes, savepoints let one
//! operation of a group be undone alone, and the whole set is applied to sled key by key, its
//! sequence number last ([`WriteSet::commit`]).
//! Only the writer thread builds write sets, so read-then-write is serialisable without sled's
//! (far costlier) transactions.

use std::collections::BTreeMap;

use sled::{IVec, Tree};

/// Pending inserts (`Some`) and removals (`None`) over `tree`.
pub(super) struct WriteSet<'a> {
    tree: &'a Tree,
    pending: BTreeMap<Vec<u8>, Option<IVec>>,
    /// Since the last savepoint: each touched key and what `pending` held for it before.
    undo: Vec<(Vec<u8>, Option<Option<IVec>>)>,
    /// The audit log's size as this set would leave it (the writer thread's running count).
    pub(super) log_size: u64,
}

impl<'a> WriteSet<'a> {
    /// An empty set over `tree`, whose log holds `log_size` entries.
    pub(super) fn new(tree: &'a Tree, log_size: u64) -> Self {
        Self { tree, pending: BTreeMap::new(), undo: Vec::new(), log_size }
    }

    /// The value under `key` as this set would leave it.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<IVec>, sled::Error> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.tree.get(key),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Option<IVec>) {
        let before = self.pending.insert(key.clone(), value);
        self.undo.push((key, before));
    }

    /// Every (key, value) under `prefix` as this set would leave them, in key order.
    pub(super) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, IVec)>, sled::Error> {
        let mut merged: BTreeMap<Vec<u8>, IVec> = BTreeMap::new();
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item?;
            merged.insert(k.to_vec(), v);
        }
        for (k, v) in self.pending.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// The last `max` (key, value) pairs in `[from, to)` as this set would leave them, last key
    /// first: reads the tree backwards and stops after `max`, so it never reads what it does not
    /// return (a pending removal costs one extra read each).
    pub(super) fn range_rev(&self, from: &[u8], to: &[u8], max: usize) -> Result<Vec<(Vec<u8>, IVec)>, sled::Error> {
        let mut stored = self.tree.range(from.to_vec()..to.to_vec()).rev();
        let mut pending = self.pending.range(from.to_vec()..to.to_vec()).rev().peekable();
        let mut next_stored = stored.next().transpose()?;
        let mut out = Vec::new();
        while out.len() < max {
            // Take whichever side has the greater key; a pending write shadows the stored value.
            let take_pending = match (&next_stored, pending.peek()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((sk, _)), Some((pk, _))) => pk.as_slice() >= sk.as_ref(),
            };
            if take_pending {
                let Some((k, v)) = pending.next() else { break };
                if next_stored.as_ref().is_some_and(|(sk, _)| sk.as_ref() == k.as_slice()) {
                    next_stored = stored.next().transpose()?;
                }
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
            } else {
                let Some((k, v)) = next_stored.take() else { break };
                out.push((k.to_vec(), v));
                next_stored = stored.next().transpose()?;
            }
        }
        Ok(out)
    }

    /// Sets `key` to `value`.
    pub(super) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<IVec>) {
        self.put(key.into(), Some(value.into()));
    }

    /// Removes `key`.
    pub(super) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.put(key.into(), None);
    }

    /// Starts a savepoint: what follows can be undone by [`WriteSet::rollback`].
    pub(super) fn savepoint(&mut self) -> u64 {
        self.undo.clear();
        self.log_size
    }

    /// Undoes every write since the savepoint that returned `log_size`.
    pub(super) fn rollback(&mut self, log_size: u64) {
        while let Some((key, before)) = self.undo.pop() {
            match before {
                Some(v) => self.pending.insert(key, v),
                None => self.pending.remove(&key),
            };
        }
        self.log_size = log_size;
    }

    /// Every pending write in key order: `None` is a removal.
    pub(super) fn changes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.pending.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// True when nothing is pending.
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Applies every pending write, the key `last` (the group's sequence number) after all others.
    ///
    /// Key by key rather than as one sled batch: a batch rolls sled's I/O buffer twice and wakes
    /// its whole I/O thread pool, about 27 context switches per federated score on a lightly
    /// loaded member (BENCHMARKS.md). Crash atomicity comes from the write-ahead log instead:
    /// sled recovers a prefix of its own log, so a store that holds a group's sequence number
    /// holds all of that group, and recovery re-applies every later record (absolute values),
    /// completing a group cut short. Readers lose nothing: sled locked out a batch per
    /// operation only, so no read of several keys was ever isolated from a group.
    pub(super) fn commit(self, last: &[u8]) -> Result<(), CommitError> {
        let mut applied = false;
        let (tail, rest): (Vec<_>, Vec<_>) = self.pending.into_iter().partition(|(k, _)| k.as_slice() == last);
        for (k, v) in rest.into_iter().chain(tail) {
            let done = match v {
                Some(v) => self.tree.insert(k, v).map(drop),
                None => self.tree.remove(k).map(drop),
            };
            if let Err(error) = done {
                return Err(CommitError { error, partial: applied });
            }
            applied = true;
        }
        Ok(())
    }
}

/// sled refused a write of a group; with `partial`, after applying some of it.
#[derive(Debug)]
pub(super) struct CommitError {
    pub(super) error: sled::Error,
    pub(super) partial: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_pending_writes_and_commit_applies_them_all() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        t.insert("a", "1").unwrap();
        t.insert("b", "2").unwrap();
        let mut ws = WriteSet::new(&t, 0);
        ws.insert("a", "3");
        ws.remove("b");
        assert_eq!(ws.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(ws.get(b"b").unwrap(), None);
        assert_eq!(t.get("a").unwrap().as_deref(), Some(&b"1"[..]), "nothing applied before commit");
        ws.commit(b"z").unwrap();
        assert_eq!(t.get("a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(t.get("b").unwrap(), None);
    }

    #[test]
    fn rollback_undoes_only_what_followed_the_savepoint() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        t.insert("c", "0").unwrap();
        let mut ws = WriteSet::new(&t, 5);
        ws.insert("a", "1");
        let sp = ws.savepoint();
        ws.insert("a", "2");
        ws.insert("b", "2");
        ws.remove("c");
        ws.log_size = 9;
        ws.rollback(sp);
        assert_eq!(ws.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(ws.get(b"b").unwrap(), None);
        assert_eq!(ws.get(b"c").unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(ws.log_size, 5);
    }
}
