//! The log as C2SP publishes logs: its checkpoint and hash tiles for any member or regulator,
//! its entry bundles for regulators, and this node as a `tlog-witness` of its peers' logs —
//! cosigning a peer's checkpoint only if it extends the last one cosigned, and raising a
//! split-view alarm (logged, counted) when a peer shows one that does not.

use std::{collections::HashMap, sync::Arc};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::{
    app::{
        journal::Journal,
        proofs::Prover,
        state::{Change, Settled, State, StateItem, Step},
        witnessing::Collector,
    },
    audit::{
        cosignature,
        policy::{Policy, PolicyWitness},
        tiles::{entry_bundle, Tile, TileKind},
        witness::{AddCheckpoint, Refusal, Seen},
        Entry,
    },
    net::{peers::Peers, tlog_client::TlogClient},
    storage::{DynStorage, Space, StoreError},
};

impl StateItem for Seen {
    const SPACE: Space = Space::Witness;
}

/// This node as a witness: its key and name, and the logs it witnesses (origin → key).
pub(crate) struct WitnessSettings {
    /// The witness key (never the checkpoint key: one key per role).
    pub key: Arc<SigningKey>,
    /// The cosigner name, `<federation>/witness/<id>`.
    pub name: String,
    /// The log keys it accepts checkpoints from, by origin.
    pub logs: HashMap<String, VerifyingKey>,
}

/// What collecting this log's cosignatures needs: the policy, and a client per witness.
pub(crate) type Witnessing = (Policy, Vec<(PolicyWitness, TlogClient)>);

/// Why an `add-checkpoint` was not cosigned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WitnessError {
    /// The spec's refusal.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// This node runs no witness.
    #[error("this node runs no witness (tlog.witness_key)")]
    NotAWitness,
    /// The last cosigned checkpoint kept changing under concurrent submissions.
    #[error("concurrent submissions for this log; retry")]
    Contended,
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tlog use cases. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Tlog {
    store: DynStorage,
    prover: Option<Prover>,
    journal: Journal,
    witness: Option<Arc<WitnessSettings>>,
    /// Collects this log's cosignatures, when a policy names witnesses.
    collector: Option<Collector>,
    /// The peers, whose signed directory (as it stands now) names the members' log keys.
    peers: Arc<Peers>,
}

impl Tlog {
    /// Over `store`'s log, signed by `prover`, witnessing as `witness`.
    pub(crate) fn new(
        store: DynStorage,
        prover: Option<Prover>,
        journal: Journal,
        witness: Option<WitnessSettings>,
        witnessing: Option<Witnessing>,
        peers: Arc<Peers>,
    ) -> Self {
        let collector = match (&prover, witnessing) {
            (Some(p), Some((policy, witnesses))) => Some(Collector::new(store.clone(), p.clone(), policy, witnesses)),
            _ => None,
        };
        Self { store, prover, journal, witness: witness.map(Arc::new), collector, peers }
    }

    /// The cosignature collector, for the server to run in the background.
    pub(crate) fn collector(&self) -> Option<Collector> {
        self.collector.clone()
    }

    /// The checkpoint as a note: the latest witnessed one (with its cosignatures) when this
    /// node collects them and has one, else signed at the durable head; `None` without a
    /// checkpoint key.
    pub(crate) async fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        if let Some(w) = self.collector.as_ref().and_then(Collector::latest) {
            return Ok(Some(w.note));
        }
        match &self.prover {
            Some(p) => Ok(Some(p.signed_head().await?.0.signed_note)),
            None => Ok(None),
        }
    }

    /// A hash tile or entry bundle, if the durable log holds all of it (else `None`: a tile is
    /// only served once no crash can take it back, so it never changes). Every size a
    /// checkpoint was signed at is at most the durable head, so its partial tiles are here,
    /// and never deleted: the store keeps every complete subtree (minimum index 0).
    pub(crate) async fn tile(&self, tile: Tile) -> Result<Option<Vec<u8>>, StoreError> {
        let head = self.store.durable_head().await?;
        let (Some(needs), Some(first)) = (tile.needs_size(), tile.first_node()) else { return Ok(None) };
        if needs > head.size {
            return Ok(None);
        }
        match tile.kind {
            TileKind::Hash(_) => {
                let nodes = self.store.audit_nodes(tile.node_level(), first, tile.width).await?;
                Ok(Some(nodes.concat()))
            }
            TileKind::Entries => {
                let entries = self.store.audit_entries(first, tile.width as usize).await?;
                let bundle = entry_bundle(entries.iter().map(|(_, e)| e.as_slice())).ok_or_else(|| {
                    StoreError::Corrupt { key: format!("entry bundle {first}"), why: "an entry over 64 KiB".into() }
                })?;
                Ok(Some(bundle))
            }
        }
    }

    /// Handles a C2SP `add-checkpoint` request: the cosignature line(s) once the checkpoint is
    /// checked and this witness's record of the log moved to it, durably and atomically (a
    /// concurrent older submission can never roll it back).
    pub(crate) async fn add_checkpoint(&self, body: &str) -> Result<String, WitnessError> {
        let w = self.witness.as_ref().ok_or(WitnessError::NotAWitness)?;
        let req = AddCheckpoint::parse(body)?;
        let origin = req.origin().to_owned();
        let key = self.log_key(w, &origin).ok_or_else(|| Refusal::UnknownOrigin(origin.clone()))?;
        let state = State::new(self.store.clone());
        let settled = state
            .compare_and_set(|| async {
                let (last, version) = state.get::<Seen>(&origin).await?;
                match req.check(&key, last.as_ref()) {
                    Ok((cp, mut seen)) => {
                        let now = self.journal.now();
                        let line = cosignature::cosign(&cp.body(), &w.name, &w.key, now.timestamp().max(1) as u64);
                        seen.cosignature = line.clone();
                        let entry =
                            Entry::checkpoint_cosigned(now, self.journal.institution(), &origin, cp.size, &seen.root);
                        let mut change = Change::logged(entry);
                        change.expect::<Seen>(&origin, &version).put(&origin, &seen);
                        Ok::<_, StoreError>(Step::Write(change, Ok(line)))
                    }
                    Err(r) => Ok::<_, StoreError>(Step::Done(Err((r, last)))),
                }
            })
            .await?;
        let answer = match settled {
            Settled::Written(answer) | Settled::Unchanged(answer) => answer,
            Settled::Contended => return Err(WitnessError::Contended),
        };
        match answer {
            Ok(line) => {
                info!(origin = %origin, "checkpoint cosigned");
                Ok(line)
            }
            Err((refusal, last)) => {
                if let (Refusal::Inconsistent(why), Some(seen)) = (&refusal, &last) {
                    self.alarm(&origin, seen, &req.note, why).await?;
                }
                Err(refusal.into())
            }
        }
    }

    /// The witness's monitoring view of the log whose origin hashes (SHA-256, lowercase hex) to
    /// `origin_hash`: the last checkpoint it cosigned, the log's signature and its own
    /// cosignature on it; `None` when it never cosigned one (or runs no witness).
    pub(crate) async fn witnessed_checkpoint(&self, origin_hash: &str) -> Result<Option<String>, StoreError> {
        let Some(w) = &self.witness else { return Ok(None) };
        let named = |o: &String| hex::encode(Sha256::digest(o.as_bytes())) == origin_hash;
        let listed = self.directory_keys().into_iter().filter_map(|k| k.split_once('+').map(|(o, _)| o.to_owned()));
        let Some(origin) = w.logs.keys().cloned().chain(listed).find(named) else {
            return Ok(None);
        };
        let (seen, _) = State::new(self.store.clone()).get::<Seen>(&origin).await?;
        Ok(seen.filter(|s| !s.cosignature.is_empty()).map(|s| format!("{}{}", s.note, s.cosignature)))
    }

    /// The verifier key of the log `origin`: from the configured logs, else from the signed
    /// directory in force, so a member licensed after this node started is witnessed without a
    /// restart.
    fn log_key(&self, w: &WitnessSettings, origin: &str) -> Option<VerifyingKey> {
        if let Some(key) = w.logs.get(origin) {
            return Some(*key);
        }
        // A verifier key starts with its log's origin: only the matching one is parsed.
        let listed = self.directory_keys().into_iter().find(|k| k.split_once('+').is_some_and(|(o, _)| o == origin))?;
        crate::audit::checkpoint::parse_verifier_key(&listed).ok().map(|(_, key)| key)
    }

    /// The log verifier keys (`<origin>+<id>+<key>`) of every active member in the directory in
    /// force, other than this node.
    fn directory_keys(&self) -> Vec<String> {
        let Some(d) = self.peers.directory() else { return Vec::new() };
        let me = self.journal.institution();
        d.members
            .iter()
            .filter(|m| m.id != me && m.status == crate::net::directory::Status::Active && !m.log_key.is_empty())
            .map(|m| m.log_key.clone())
            .collect()
    }

    /// Logs (durably) and counts a split view: `origin` showed `note`, inconsistent with
    /// `seen`, which this witness cosigned. The regulator finds it in this node's log.
    async fn alarm(&self, origin: &str, seen: &Seen, note: &str, why: &str) -> Result<(), StoreError> {
        metrics::counter!("bureau_split_view_alarms_total", "origin" => origin.to_owned()).increment(1);
        warn!(
            origin,
            cosigned_size = seen.size,
            why,
            "split view: a checkpoint inconsistent with one this witness cosigned"
        );
        let body = note.split_once("\n\n").map_or(note, |(b, _)| b);
        let entry = Entry::split_view_alarm(
            self.journal.now(),
            self.journal.institution(),
            origin,
            (seen.size, &seen.root),
            body,
            why,
        );
        self.journal.record(vec![entry]).await
    }
}
