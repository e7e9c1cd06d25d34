//! A person's own report: the federation's records and inquiries about them, each inquiry with
//! an inclusion proof against the signed checkpoint of the node that recorded it, so the
//! person's application can check that the inquiries it was shown are the ones regulators see.

use std::collections::HashMap;

use ed25519_dalek::SigningKey;

use crate::{
    audit::checkpoint::Checkpoint,
    domain::inquiry::Inquiry,
    storage::{Storage, StoreError},
    wire::{convert, pb::bureau::v1 as pb},
};

/// This node's signed checkpoint at its durable head, and the inquiries it recorded (those of
/// `inquiries` with `responder == me` and a log index the checkpoint covers) with their log
/// entries and inclusion proofs.
pub(crate) async fn prove(
    store: &dyn Storage,
    key: &SigningKey,
    origin: String,
    me: &str,
    inquiries: &[Inquiry],
) -> Result<(pb::Checkpoint, Vec<pb::Inquiry>), StoreError> {
    let head = store.durable_head().await?;
    let checkpoint = convert::signed_checkpoint(&Checkpoint { origin, size: head.size, root: head.root }, key);
    let mut proven = Vec::new();
    for i in inquiries.iter().filter(|i| i.responder == me) {
        let Some(index) = i.log_index.filter(|x| *x < head.size) else { continue };
        let Some((_, leaf)) = store.audit_entries(index, 1).await?.into_iter().next() else { continue };
        let hashes = store.audit_inclusion(index, head.size).await?;
        let mut p = convert::inquiry_to_pb(i);
        p.log_entry = leaf;
        p.inclusion_proof = hashes.iter().map(|h| h.to_vec()).collect();
        p.proof_tree_size = head.size;
        proven.push(p);
    }
    Ok((checkpoint, proven))
}

/// The report's inquiries: every one the score counted, newest first, each with its proof
/// where the node that recorded it sent one.
pub(crate) fn inquiries_with_proofs(inquiries: &[Inquiry], proven: Vec<pb::Inquiry>) -> Vec<pb::Inquiry> {
    let mut by_key: HashMap<(String, String), pb::Inquiry> =
        proven.into_iter().map(|p| ((p.responder.clone(), p.query_id.clone()), p)).collect();
    inquiries
        .iter()
        .map(|i| by_key.remove(&(i.responder.clone(), i.query_id.clone())).unwrap_or_else(|| convert::inquiry_to_pb(i)))
        .collect()
}
