//! Receipts a person can keep: each proven inquiry of their report as a C2SP `tlog-proof` file
//! (the log entry, its index and inclusion proof, the recording node's checkpoint with any
//! cosignatures), and the offline check of one against the nodes' keys and, when given, a
//! tlog-policy's witnesses and quorum.

use super::{institution_of, KeySource, RegulatorError};
use crate::{
    audit::{
        checkpoint::{parse_verifier_key, Checkpoint},
        merkle::{self, Hash},
        policy::Policy,
        tlog_proof::TlogProof,
        Entry,
    },
    wire::pb::bureau::v1 as pb,
};

/// One `(file name, tlog-proof text)` per inquiry of `report` that carries a proof, against the
/// checkpoint the report holds for the node that recorded it.
pub fn receipts(report: &pb::SubjectReport) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in report.inquiries.iter().filter(|i| !i.log_entry.is_empty()) {
        let Some(cp) = report.checkpoints.iter().find(|c| institution_of(&c.origin) == i.responder) else { continue };
        let (Some(index), true) = (i.log_index, i.proof_tree_size == cp.tree_size) else { continue };
        let proof: Vec<Hash> = i.inclusion_proof.iter().filter_map(|h| h.as_slice().try_into().ok()).collect();
        let p = TlogProof { extra: Some(i.log_entry.clone()), index, proof, checkpoint: cp.signed_note.clone() };
        let name = format!("{}-{}.tlog-proof", i.responder, i.query_id.replace(['/', '\\'], "_"));
        out.push((name, p.encode()));
    }
    out
}

/// What a receipt proves, once checked.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The log.
    pub origin: String,
    /// The entry's index in it.
    pub index: u64,
    /// The logged entry.
    pub entry: Entry,
    /// The policy's witnesses that cosigned the checkpoint (empty without a policy).
    pub cosigners: Vec<String>,
    /// Whether they meet the policy's quorum (`None` without a policy).
    pub quorum: Option<bool>,
}

/// Checks a tlog-proof offline: the checkpoint is signed by its origin's key in `keys` (a
/// failing line from that key rejects it), the entry in `extra` is included at `index`, and,
/// with `policy`, which witnesses cosigned (a failing line from a known witness rejects it).
pub fn verify_receipt(text: &str, keys: &KeySource, policy: Option<&str>) -> Result<Receipt, RegulatorError> {
    let bad = |why: String| RegulatorError::Checkpoint(why);
    let p = TlogProof::parse(text).map_err(|e| bad(format!("tlog-proof: {e}")))?;
    let origin = p.checkpoint.lines().next().unwrap_or_default().to_owned();
    let (name, key) =
        parse_verifier_key(&keys.for_origin(&origin)?).map_err(|e| bad(format!("key of {origin}: {e}")))?;
    let cp = Checkpoint::open(&p.checkpoint, &name, &key).map_err(|e| bad(format!("checkpoint of {origin}: {e}")))?;
    let leaf = p.extra.as_deref().ok_or_else(|| bad("tlog-proof has no entry (extra line)".into()))?;
    if !merkle::verify_inclusion(&merkle::leaf_hash(leaf), p.index, cp.size, &p.proof, &cp.root) {
        return Err(bad(format!("the entry is not in {origin}'s signed log at index {}", p.index)));
    }
    let entry = Entry::from_bytes(leaf).map_err(|e| bad(format!("the entry does not parse: {e}")))?;
    let (cosigners, quorum) = match policy {
        None => (Vec::new(), None),
        Some(text) => {
            let policy = Policy::parse(text).map_err(|e| bad(format!("tlog policy: {e}")))?;
            let who = policy.cosigners(&p.checkpoint).map_err(|w| bad(format!("a failing cosignature by {w}")))?;
            let q = policy.satisfied(&who);
            (who, Some(q))
        }
    };
    Ok(Receipt { origin, index: p.index, entry, cosigners, quorum })
}
