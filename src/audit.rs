//! The audit log's entries and their storage: an append-only RFC 6962 Merkle tree in three key
//! spaces of the store's ledger tree, beside the data it describes (entries by index,
//! complete-subtree hashes, the size). Appends join the same atomic write as the change they
//! record, so an entry is never lost while its action took effect, and cost O(1) amortised
//! hashes however long the log is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    inquiry::Purpose,
    merkle::{self, Hash},
    store::StoreError,
    writeset::WriteSet,
};

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// This node asked a peer.
    QueryOutbound,
    /// A peer asked this node.
    QueryInbound,
    /// A score was served.
    ScoreServed,
    /// A policy decision was served.
    DecisionServed,
    /// Records were furnished.
    RecordFurnished,
    /// A record was corrected.
    RecordCorrected,
    /// A record was deleted.
    RecordDeleted,
    /// A licensed caller was refused.
    Refusal,
    /// A regulator read the log.
    RegulatorRead,
}

/// One log entry. Serialised as JSON in this field order: those exact bytes are the Merkle
/// leaf, so a regulator can recompute the tree from the entries alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When.
    pub time: DateTime<Utc>,
    /// What.
    pub action: Action,
    /// The federated query id, where there is one.
    #[serde(default)]
    pub query_id: String,
    /// Who acted: the asking institution for queries (at both ends), the furnisher, the caller.
    pub actor: String,
    /// The other party: the institution asked, for queries (at both ends).
    #[serde(default)]
    pub counterparty: String,
    /// The subject's pseudonym, where there is one.
    #[serde(default)]
    pub subject_id: String,
    /// The purpose named.
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// The consent reference given.
    #[serde(default)]
    pub consent_reference: String,
    /// How it ended: `answered`, `timed_out`, `refused:CONSENT_REQUIRED`, `score=641`, …
    pub outcome: String,
    /// Records returned, furnished or affected.
    #[serde(default)]
    pub record_count: u32,
    /// The scorecard version, for scores and decisions.
    #[serde(default)]
    pub model_version: String,
    /// Record keys and similar detail; never record contents.
    #[serde(default)]
    pub detail: String,
}

impl Entry {
    /// A bare entry; callers fill in what applies.
    pub fn new(action: Action, actor: &str, outcome: impl Into<String>) -> Self {
        Self {
            time: Utc::now(),
            action,
            query_id: String::new(),
            actor: actor.to_owned(),
            counterparty: String::new(),
            subject_id: String::new(),
            purpose: None,
            consent_reference: String::new(),
            outcome: outcome.into(),
            record_count: 0,
            model_version: String::new(),
            detail: String::new(),
        }
    }

    /// The leaf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data to JSON cannot fail.
        serde_json::to_vec(self).expect("entry serialises")
    }

    /// Reads leaf bytes back.
    pub fn from_bytes(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }
}

/// Key-space prefix of the log's entries (`e` ‖ index) in the store's ledger tree.
pub const ENTRY_PREFIX: u8 = b'e';
/// Key-space prefix of the log's complete-subtree hashes (`n` ‖ level ‖ index).
pub const NODE_PREFIX: u8 = b'n';
/// The key of the log's size.
pub const SIZE_KEY: &[u8] = b"m/audit_size";

/// The ledger key of entry `index`.
pub fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [ENTRY_PREFIX; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The ledger key of the node at (level, index).
pub fn node_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [NODE_PREFIX; 10];
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn as_hash(key: &[u8], v: &[u8]) -> Result<Hash, StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { key: hex::encode(key), why: "node hash is not 32 bytes".into() })
}

/// Reads a tree size value.
pub fn decode_size(v: Option<&[u8]>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v).ok()).map_or(0, u64::from_be_bytes)
}

fn missing(key: &[u8]) -> StoreError {
    StoreError::Corrupt { key: hex::encode(key), why: "missing audit node".into() }
}

/// Appends `entries` in order to the log in `ws`; returns the index of the first.
pub fn append(ws: &mut WriteSet<'_>, entries: &[Entry]) -> Result<u64, StoreError> {
    let first = decode_size(ws.get(SIZE_KEY)?.as_deref());
    let mut size = first;
    for e in entries {
        let bytes = e.to_bytes();
        let new = merkle::append_nodes(size, merkle::leaf_hash(&bytes), |level, index| {
            let key = node_key(level, index);
            match ws.get(&key)? {
                Some(v) => as_hash(&key, &v),
                None => Err(missing(&key)),
            }
        })?;
        ws.insert(entry_key(size), bytes);
        for ((level, index), h) in new {
            ws.insert(node_key(level, index), &h[..]);
        }
        size += 1;
    }
    ws.insert(SIZE_KEY, &size.to_be_bytes()[..]);
    Ok(first)
}

/// Reads the log's stored nodes for roots and proofs.
pub fn node_reader(ledger: &sled::Tree) -> impl FnMut(u8, u64) -> Result<Hash, StoreError> + '_ {
    move |level, index| {
        let key = node_key(level, index);
        match ledger.get(key)? {
            Some(v) => as_hash(&key, &v),
            None => Err(missing(&key)),
        }
    }
}
