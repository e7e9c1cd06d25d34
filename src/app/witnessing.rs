//! Collecting this log's cosignatures, in the background (never on a query's path): every
//! tick, when the durable log has grown, the node signs its head and submits it to each witness
//! its `tlog-policy` names (C2SP tlog-witness `add-checkpoint`, with a consistency proof from
//! the size that witness last cosigned, learnt from its 409 after a restart), keeps the good
//! cosignature lines, and serves that checkpoint as witnessed, flagged when below quorum.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tracing::{debug, info, warn};

use crate::{
    app::proofs::{Prover, Witnessed},
    audit::{
        cosignature::{cosigned_by, Cosigned},
        policy::{Policy, PolicyWitness},
        witness::AddCheckpoint,
        Action, Entry,
    },
    net::tlog_client::TlogClient,
    storage::{DynStorage, StoreError},
};

/// New entries read to tell whether a log grew only by its own witness bookkeeping.
const LOOK_BACK: usize = 64;

/// The collector. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Collector {
    store: DynStorage,
    prover: Prover,
    policy: Arc<Policy>,
    witnesses: Arc<Vec<(PolicyWitness, TlogClient)>>,
    /// The size each witness (by label) last cosigned, as far as this node knows.
    known: Arc<Mutex<HashMap<String, u64>>>,
    /// What `/checkpoint` serves.
    pub latest: Arc<Mutex<Option<Witnessed>>>,
}

impl Collector {
    /// Collects for `prover`'s log from `witnesses` under `policy`.
    pub(crate) fn new(
        store: DynStorage,
        prover: Prover,
        policy: Policy,
        witnesses: Vec<(PolicyWitness, TlogClient)>,
    ) -> Self {
        Self {
            store,
            policy: Arc::new(policy),
            witnesses: Arc::new(witnesses),
            known: Arc::default(),
            latest: prover.witnessed.clone(),
            prover,
        }
    }

    /// The latest witnessed checkpoint.
    pub(crate) fn latest(&self) -> Option<Witnessed> {
        self.latest.lock().ok().and_then(|l| l.clone())
    }

    /// Runs rounds every `every` until dropped.
    pub(crate) async fn run(self, every: Duration) {
        loop {
            if let Err(e) = self.round().await {
                warn!(error = %e, "collecting cosignatures failed; retried next tick");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One round: submits the durable head to every witness when the log grew by more than
    /// cosigning others' logs (so two nodes witnessing each other settle instead of feeding
    /// each other's logs forever). Returns what is now served.
    pub(crate) async fn round(&self) -> Result<Option<Witnessed>, StoreError> {
        let (cp, head) = self.prover.signed_head().await?;
        let last = self.latest();
        if let Some(l) = &last {
            if head.size <= l.size || self.only_bookkeeping(l.size, head.size).await? {
                return Ok(last);
            }
        }
        let note = cp.signed_note;
        let submissions = self.witnesses.iter().map(|(w, client)| self.submit(w, client, &note, head.size));
        let lines: Vec<Option<String>> = futures::future::join_all(submissions).await;
        let mut full = note.clone();
        let mut cosigners = Vec::new();
        for ((w, _), line) in self.witnesses.iter().zip(lines) {
            if let Some(line) = line {
                full.push_str(&line);
                cosigners.push(w.label.clone());
            }
        }
        let quorum = self.policy.satisfied(&cosigners);
        metrics::gauge!("bureau_checkpoint_cosignatures").set(cosigners.len() as f64);
        metrics::gauge!("bureau_checkpoint_quorum").set(if quorum { 1.0 } else { 0.0 });
        if !quorum {
            warn!(size = head.size, cosigners = ?cosigners, "checkpoint below the policy's quorum");
        } else {
            debug!(size = head.size, cosigners = ?cosigners, "checkpoint witnessed");
        }
        let w = Witnessed { size: head.size, note: full, cosigners, quorum };
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(w.clone());
        }
        Ok(Some(w))
    }

    async fn only_bookkeeping(&self, from: u64, to: u64) -> Result<bool, StoreError> {
        if to - from > LOOK_BACK as u64 {
            return Ok(false);
        }
        let entries = self.store.audit_entries(from, LOOK_BACK).await?;
        Ok(entries
            .iter()
            .filter(|(i, _)| *i < to)
            .all(|(_, e)| Entry::from_bytes(e).is_ok_and(|e| e.action == Action::CheckpointCosigned)))
    }

    /// Submits `note` (of `size`) to one witness; its good cosignature line.
    async fn submit(&self, w: &PolicyWitness, client: &TlogClient, note: &str, size: u64) -> Option<String> {
        let mut old = self.known.lock().ok().and_then(|k| k.get(&w.label).copied()).unwrap_or(0);
        for _ in 0..2 {
            if old > size {
                warn!(witness = %w.label, cosigned = old, size, "the witness cosigned a larger tree of this log than it has: a fork or a lost tail");
                return None;
            }
            let proof = match old {
                0 => Vec::new(),
                o if o == size => Vec::new(),
                o => self.store.audit_consistency(o, size).await.ok()?,
            };
            let body = AddCheckpoint { old, proof, note: note.to_owned() }.body();
            let answer = match client.post("/add-checkpoint", body).await {
                Ok(a) => a,
                Err(e) => {
                    debug!(witness = %w.label, error = %e, "witness unreachable");
                    return None;
                }
            };
            match answer.status {
                200 => {
                    let line = String::from_utf8(answer.body).ok()?;
                    let with = format!("{note}{line}");
                    if matches!(cosigned_by(&with, &w.witness), Cosigned::At(t) if t > 0) {
                        if let Ok(mut k) = self.known.lock() {
                            k.insert(w.label.clone(), size);
                        }
                        return Some(line);
                    }
                    warn!(witness = %w.label, "a witness answered without a good cosignature by its key");
                    return None;
                }
                409 => {
                    let said = String::from_utf8_lossy(&answer.body).trim().parse().ok()?;
                    info!(witness = %w.label, cosigned = said, "witness's last cosigned size learnt");
                    old = said;
                }
                status => {
                    warn!(witness = %w.label, status, body = %String::from_utf8_lossy(&answer.body).trim(), "witness refused this log's checkpoint");
                    return None;
                }
            }
        }
        None
    }
}
