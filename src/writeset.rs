//! A write set over one sled tree: reads see the set's own pending writes, and the whole set is
//! applied as one atomic sled batch. Callers hold the store's writer lock from the first read to
//! the commit, so read-then-write is serialisable without sled's (far costlier) transactions.

use std::collections::BTreeMap;

use sled::{IVec, Tree};

/// Pending inserts (`Some`) and removals (`None`) over `tree`.
pub struct WriteSet<'a> {
    tree: &'a Tree,
    pending: BTreeMap<Vec<u8>, Option<IVec>>,
}

impl<'a> WriteSet<'a> {
    /// An empty set over `tree`.
    pub fn new(tree: &'a Tree) -> Self {
        Self { tree, pending: BTreeMap::new() }
    }

    /// The value under `key` as this set would leave it.
    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>, sled::Error> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.tree.get(key),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<IVec>) {
        self.pending.insert(key.into(), Some(value.into()));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), None);
    }

    /// Applies every pending write atomically (all or none survive a crash).
    pub fn commit(self) -> Result<(), sled::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (k, v) in self.pending {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch)
    }
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
        let mut ws = WriteSet::new(&t);
        ws.insert("a", "3");
        ws.remove("b");
        assert_eq!(ws.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(ws.get(b"b").unwrap(), None);
        assert_eq!(t.get("a").unwrap().as_deref(), Some(&b"1"[..]), "nothing applied before commit");
        ws.commit().unwrap();
        assert_eq!(t.get("a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(t.get("b").unwrap(), None);
    }
}
