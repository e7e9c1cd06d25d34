//! The log's right edge as the writer keeps it between groups, and the stored subtree hashes
//! every root and proof is computed from (the tree itself is `audit::merkle`, shared with sled).

use std::collections::{HashMap, HashSet};

use tokio_postgres::GenericClient;

use super::{
    pool::{corrupt, db},
    statements,
};
use crate::{
    audit::merkle::{self, Hash, Tree},
    storage::StoreError,
};

/// The log's right edge: the complete subtrees of the first `size` leaves (one per set bit),
/// enough to append and to compute the root. `size` is `None` until loaded (and after any
/// failure, so the next group reloads what is committed).
#[derive(Clone, Default)]
pub(super) struct Frontier {
    /// The log's size this edge is of.
    pub size: Option<u64>,
    /// The complete subtrees' hashes by (level, index).
    nodes: HashMap<(u8, u64), Hash>,
}

impl Frontier {
    /// Where the complete subtrees of a log of `size` leaves sit.
    fn coordinates(size: u64) -> Vec<(u8, u64)> {
        (0..64u8).filter(|b| size >> b & 1 == 1).map(|b| (b, (size >> b) - 1)).collect()
    }

    /// Reads the committed head and its edge.
    pub(super) async fn load(&mut self, c: &deadpool_postgres::Object) -> Result<(), StoreError> {
        let stmt = c.prepare_cached(statements::LOG_SIZE).await.map_err(db)?;
        let size = c.query_one(&stmt, &[]).await.map_err(db)?.get::<_, i64>("size") as u64;
        self.nodes = read_nodes(&***c, &Self::coordinates(size)).await?;
        self.size = Some(size);
        Ok(())
    }

    /// The loaded size; a [`StoreError::Panicked`] if the writer forgot to load it.
    pub(super) fn loaded_size(&self) -> Result<u64, StoreError> {
        self.size.ok_or_else(|| StoreError::Panicked("the log's edge was not loaded".into()))
    }

    /// The root of the log at `size` (the edge's own size).
    pub(super) fn root(&self, size: u64) -> Result<Hash, StoreError> {
        Tree::new(|l, i| {
            self.nodes.get(&(l, i)).copied().ok_or_else(|| corrupt("audit_nodes", "frontier node missing"))
        })
        .root(size)
    }

    /// Appends one leaf; returns the nodes it completed (leaf included).
    pub(super) fn push(&mut self, leaf: &[u8]) -> Result<merkle::Nodes, StoreError> {
        let size = self.loaded_size()?;
        let nodes = merkle::append_nodes(size, merkle::leaf_hash(leaf), |l, i| {
            self.nodes
                .get(&(l, i))
                .copied()
                .ok_or_else(|| corrupt(format!("audit_nodes ({l}, {i})"), "missing left sibling"))
        })?;
        for (k, h) in &nodes {
            self.nodes.insert(*k, *h);
        }
        let keep: HashSet<(u8, u64)> = Self::coordinates(size + 1).into_iter().collect();
        self.nodes.retain(|k, _| keep.contains(k));
        self.size = Some(size + 1);
        Ok(nodes)
    }
}

/// Reads a stored complete-subtree hash by (level, index).
pub(super) type NodeReader<'a> = dyn FnMut(u8, u64) -> Result<Hash, StoreError> + 'a;

/// Reads the given subtree hashes in one query.
pub(super) async fn read_nodes(
    c: &impl GenericClient,
    wanted: &[(u8, u64)],
) -> Result<HashMap<(u8, u64), Hash>, StoreError> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let level: Vec<i16> = wanted.iter().map(|(l, _)| i16::from(*l)).collect();
    let idx: Vec<i64> = wanted.iter().map(|(_, i)| *i as i64).collect();
    let rows = c.query(statements::AUDIT_NODES, &[&level, &idx]).await.map_err(db)?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let (l, i, h): (i16, i64, Vec<u8>) = (row.get("level"), row.get("idx"), row.get("hash"));
        let hash: Hash =
            h.try_into().map_err(|_| corrupt(format!("audit_nodes ({l}, {i})"), "hash is not 32 bytes"))?;
        out.insert((l as u8, i as u64), hash);
    }
    Ok(out)
}
