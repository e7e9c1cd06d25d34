//! Proofs of a node's own log for people and regulators: its checkpoint signed at the durable
//! head, and inquiries it recorded with their log entries and inclusion proofs.

use std::sync::{Arc, Mutex};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ed25519_dalek::SigningKey;

use crate::{
    audit::attestation::{self, Bundle, Claims},
    audit::checkpoint::{verifier_key, Checkpoint},
    audit::Entry,
    domain::inquiry::Inquiry,
    storage::{DynStorage, StoreError, TreeHead},
    wire::{convert, pb::bureau::v1 as pb},
};

/// Proves to a person which inquiries about them this node recorded: signs its checkpoint at
/// the durable head and gives each inquiry its log entry and inclusion proof.
#[derive(Clone)]
pub(crate) struct Prover {
    /// The store the log lives in.
    store: DynStorage,
    /// The node's checkpoint key.
    key: Arc<SigningKey>,
    /// The log's origin: `<federation>/institution/<id>`.
    origin: String,
    /// This node's institution: only its own inquiries are proven here.
    institution: String,
    /// The latest checkpoint its witnesses cosigned, when it collects cosignatures
    /// ([`crate::app::witnessing::Collector`] fills it): proofs are made against it when it
    /// covers every inquiry to prove, so a person's receipts carry the cosignatures.
    pub(crate) witnessed: Arc<Mutex<Option<Witnessed>>>,
}

impl Prover {
    /// The log's checkpoint at its durable head, signed. Only a durable tree state is signed: a
    /// crash can never take back what someone holds a signature for (C2SP tlog-checkpoint).
    pub(crate) async fn signed_head(&self) -> Result<(pb::Checkpoint, TreeHead), StoreError> {
        let head = self.store.durable_head().await?;
        let cp = Checkpoint { origin: self.origin.clone(), size: head.size, root: head.root };
        Ok((convert::signed_checkpoint(&cp, &self.key), head))
    }
}

/// A signed checkpoint and the inquiries proven against it.
#[derive(Debug, Clone)]
pub(crate) struct Proofs {
    /// The node's signed checkpoint.
    pub checkpoint: pb::Checkpoint,
    /// Inquiries with their log entries and inclusion proofs.
    pub proven: Vec<pb::Inquiry>,
}

impl Prover {
    /// The log's origin, which is also its key's name.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs attestation claims with the checkpoint key, naming it by its verifier key string.
    pub(crate) fn sign_attestation(&self, claims: &Claims) -> String {
        let kid = verifier_key(&self.origin, &self.key.verifying_key());
        attestation::sign(claims, &self.key, &kid)
    }

    /// Appends `entry`, makes it durable, and proves it against a checkpoint signed at the
    /// durable head: the bundle an attestation's verifier keeps, around `jws`.
    pub(crate) async fn log_and_prove(&self, entry: Entry, jws: String) -> Result<Bundle, StoreError> {
        let index = self.store.append_audit(vec![entry]).await?;
        self.store.sync().await?;
        let (checkpoint, head) = self.signed_head().await?;
        let leaf = self.store.audit_entries(index, 1).await?.into_iter().next().map(|(_, l)| l).unwrap_or_default();
        let proof = self.store.audit_inclusion(index, head.size).await?;
        Ok(Bundle {
            jws,
            log_index: index,
            log_entry: STANDARD.encode(leaf),
            inclusion_proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
            tree_size: head.size,
            checkpoint: checkpoint.signed_note,
        })
    }

    /// A prover over `store`'s log, signing with `key` as `origin`.
    pub(crate) fn new(store: DynStorage, key: Arc<SigningKey>, origin: String, institution: String) -> Self {
        Self { store, key, origin, institution, witnessed: Arc::default() }
    }

    /// This node's signed checkpoint at its durable head, and the inquiries it recorded (those
    /// of `inquiries` with `responder == me` and a log index the checkpoint covers) with their
    /// log entries and inclusion proofs.
    pub(crate) async fn prove(&self, inquiries: &[Inquiry]) -> Result<Proofs, StoreError> {
        let store = &self.store;
        let (mut checkpoint, mut head) = self.signed_head().await?;
        let mine = || inquiries.iter().filter(|i| i.responder == self.institution).filter_map(|i| i.log_index);
        if let Some((cp, h)) = self.witnessed_covering(mine().filter(|x| *x < head.size).max()) {
            (checkpoint, head) = (cp, h);
        }
        let mut proven = Vec::new();
        for i in inquiries.iter().filter(|i| i.responder == self.institution) {
            let Some(index) = i.log_index.filter(|x| *x < head.size) else { continue };
            let Some((_, leaf)) = store.audit_entries(index, 1).await?.into_iter().next() else { continue };
            let hashes = store.audit_inclusion(index, head.size).await?;
            let mut p = convert::inquiry_to_pb(i);
            p.log_entry = leaf;
            p.inclusion_proof = hashes.iter().map(|h| h.to_vec()).collect();
            p.proof_tree_size = head.size;
            proven.push(p);
        }
        Ok(Proofs { checkpoint, proven })
    }

    /// The witnessed checkpoint and its head, when there is one covering index `last` (any,
    /// when `None`).
    fn witnessed_covering(&self, last: Option<u64>) -> Option<(pb::Checkpoint, TreeHead)> {
        let w = self.witnessed.lock().ok()?.clone()?;
        if last.is_some_and(|l| l >= w.size) {
            return None;
        }
        let root: crate::audit::merkle::Hash =
            w.note.lines().nth(2).and_then(|r| STANDARD.decode(r).ok())?.try_into().ok()?;
        let cp = pb::Checkpoint {
            origin: self.origin.clone(),
            tree_size: w.size,
            root_hash: root.to_vec(),
            signed_note: w.note,
        };
        Some((cp, TreeHead { size: w.size, root }))
    }
}

/// The latest checkpoint witnessed: its size, the note with the cosignature lines, who cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witnessed {
    /// Tree size.
    pub size: u64,
    /// The log's signed note with every good cosignature line appended.
    pub note: String,
    /// The policy labels of the witnesses that cosigned.
    pub cosigners: Vec<String>,
    /// Whether they meet the policy's quorum.
    pub quorum: bool,
}
