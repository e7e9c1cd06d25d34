//! The regulator's tools over nodes' audit logs: verify a node's log against its signed
//! checkpoint and against the checkpoint seen last time (so a node that rewrites, drops or
//! truncates history is caught), and reconcile nodes against each other (every outbound query
//! logged by one must be logged inbound by the other, and the other way round).

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use tonic::transport::Channel;

use crate::{
    audit::{Action, Entry},
    checkpoint::{parse_verifier_key, Checkpoint},
    merkle::{self, Hash, StreamingRoot},
    pb::bureau::v1::{self as pb, audit_service_client::AuditServiceClient},
};

/// Where a regulator finds a node's checkpoint verifier key.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A PKI directory holding `institution-<id>.log.pub` files.
    PkiDir(PathBuf),
    /// One verifier key string.
    Key(String),
}

impl KeySource {
    fn for_origin(&self, origin: &str) -> Result<String> {
        match self {
            Self::Key(k) => Ok(k.clone()),
            Self::PkiDir(dir) => {
                let id = origin.rsplit('/').next().unwrap_or_default();
                let path = dir.join(format!("institution-{id}.log.pub"));
                fs::read_to_string(&path).with_context(|| format!("checkpoint key for {origin}: {}", path.display()))
            }
        }
    }
}

/// A node's log as fetched and checked.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The checkpoint's root.
    pub root: Hash,
    /// The size of the checkpoint seen last time, if any.
    pub previous: Option<u64>,
    /// The entries, in order (those the checkpoint covers).
    pub entries: Vec<Entry>,
    /// Everything found wrong; empty when the log verifies.
    pub problems: Vec<String>,
}

/// Fetches every entry with index below `size`.
pub async fn fetch_entries(client: &mut AuditServiceClient<Channel>, size: u64) -> Result<Vec<pb::AuditEntry>> {
    let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
    let mut token = String::new();
    while (out.len() as u64) < size {
        let page = client
            .list_audit_entries(pb::ListAuditEntriesRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        let done = page.next_page_token.is_empty();
        out.extend(page.entries.into_iter().take_while(|e| e.index < size));
        if done {
            break;
        }
        token = page.next_page_token;
    }
    out.truncate(size as usize);
    Ok(out)
}

fn state_file(state: &Path, origin: &str) -> PathBuf {
    state.join(format!("{}.checkpoint", origin.replace(['/', ':'], "_")))
}

/// Verifies one node's log: the checkpoint's signature, that the entries served hash to its
/// root, and that it is consistent with the checkpoint kept from last time in `state`
/// (which is replaced by the new one when everything verifies).
pub async fn verify(channel: Channel, keys: &KeySource, state: &Path) -> Result<VerifiedLog> {
    let mut client = AuditServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let cp = client.get_checkpoint(pb::GetCheckpointRequest {}).await?.into_inner();
    let (name, vk) = parse_verifier_key(&keys.for_origin(&cp.origin)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut problems = Vec::new();
    let checkpoint = match Checkpoint::open(&cp.signed_note, &name, &vk) {
        Ok(c) => c,
        Err(e) => anyhow::bail!("checkpoint of {} does not verify: {e}", cp.origin),
    };
    if checkpoint.size != cp.tree_size || checkpoint.root.as_slice() != cp.root_hash.as_slice() {
        problems.push("checkpoint fields disagree with its signed note".to_owned());
    }

    let fetched = fetch_entries(&mut client, checkpoint.size).await?;
    let mut stream = StreamingRoot::default();
    let mut entries = Vec::with_capacity(fetched.len());
    for (expected, e) in fetched.iter().enumerate() {
        if e.index != expected as u64 {
            problems.push(format!("entry {expected} is missing (next served is {})", e.index));
            break;
        }
        stream.push(&e.leaf_data);
        match Entry::from_bytes(&e.leaf_data) {
            Ok(parsed) => entries.push(parsed),
            Err(err) => problems.push(format!("entry {} does not parse: {err}", e.index)),
        }
    }
    if stream.size() != checkpoint.size {
        problems.push(format!("checkpoint covers {} entries, node served {}", checkpoint.size, stream.size()));
    } else if stream.root() != checkpoint.root {
        problems.push("entries do not hash to the checkpoint's root: an entry was altered".to_owned());
    }

    fs::create_dir_all(state).with_context(|| state.display().to_string())?;
    let path = state_file(state, &checkpoint.origin);
    let mut previous = None;
    if let Ok(note) = fs::read_to_string(&path) {
        let old = Checkpoint::open(&note, &name, &vk)
            .map_err(|e| anyhow::anyhow!("saved checkpoint {}: {e}", path.display()))?;
        previous = Some(old.size);
        if old.size > checkpoint.size {
            problems.push(format!("log shrank from {} to {} entries since last verified", old.size, checkpoint.size));
        } else if old.size > 0 {
            let proof = client
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    first_size: old.size,
                    second_size: checkpoint.size,
                })
                .await?
                .into_inner();
            let hashes: Vec<Hash> = proof.hashes.iter().filter_map(|h| h.as_slice().try_into().ok()).collect();
            if hashes.len() != proof.hashes.len()
                || !merkle::verify_consistency(old.size, checkpoint.size, &old.root, &checkpoint.root, &hashes)
            {
                problems.push(format!(
                    "history rewritten: the log at {} entries is not an extension of the one verified at {}",
                    checkpoint.size, old.size
                ));
            }
        }
    }
    if problems.is_empty() {
        fs::write(&path, &cp.signed_note).with_context(|| path.display().to_string())?;
    }
    Ok(VerifiedLog {
        origin: checkpoint.origin,
        size: checkpoint.size,
        root: checkpoint.root,
        previous,
        entries,
        problems,
    })
}

/// The institution id of a log's origin `<federation>/institution/<id>`.
pub fn institution_of(origin: &str) -> &str {
    origin.rsplit('/').next().unwrap_or_default()
}

/// Cross-checks nodes' logs: each answered outbound query at A to B must be logged inbound at B
/// (same query id, asker and asked), and each inbound query at B from A must be logged outbound
/// at A. Only pairs of nodes both given are checked. Returns the mismatches.
pub fn reconcile(logs: &[VerifiedLog]) -> Vec<String> {
    let ids: HashSet<&str> = logs.iter().map(|l| institution_of(&l.origin)).collect();
    let key = |e: &Entry| (e.query_id.clone(), e.actor.clone(), e.counterparty.clone());
    let mut outbound: HashMap<(String, String, String), &Entry> = HashMap::new();
    let mut inbound: HashMap<(String, String, String), &Entry> = HashMap::new();
    for log in logs {
        let me = institution_of(&log.origin);
        for e in &log.entries {
            match e.action {
                Action::QueryOutbound if e.actor == me => {
                    outbound.insert(key(e), e);
                }
                Action::QueryInbound if e.counterparty == me && e.actor != me => {
                    inbound.insert(key(e), e);
                }
                _ => {}
            }
        }
    }
    let mut problems = Vec::new();
    for (k, e) in &outbound {
        if e.outcome == "answered" && ids.contains(e.counterparty.as_str()) && !inbound.contains_key(k) {
            problems.push(format!(
                "{} logged query {} to {} as answered, but {} has no inbound entry for it",
                e.actor, e.query_id, e.counterparty, e.counterparty
            ));
        }
    }
    for (k, e) in &inbound {
        if ids.contains(e.actor.as_str()) && !outbound.contains_key(k) {
            problems.push(format!(
                "{} logged an inbound query {} from {}, but {} has no outbound entry for it",
                e.counterparty, e.query_id, e.actor, e.actor
            ));
        }
    }
    problems.sort();
    problems
}
