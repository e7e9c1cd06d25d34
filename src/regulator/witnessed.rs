//! The regulator's look at a node's *witnessed* checkpoint, served at its C2SP endpoint: the
//! log's signature (a failing line from its key rejects it), which of the policy's witnesses
//! cosigned it (a failing line from a known witness rejects it), and whether they meet the
//! policy's quorum.

use super::{KeySource, RegulatorError};
use crate::{
    audit::{
        checkpoint::{parse_verifier_key, Checkpoint},
        policy::Policy,
    },
    net::tlog_client::TlogClient,
};

/// A node's witnessed checkpoint as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessing {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint's size.
    pub size: u64,
    /// The policy names of the witnesses that cosigned it.
    pub cosigners: Vec<String>,
    /// Whether they meet the policy's quorum (a checkpoint below it is not witnessed).
    pub quorum: bool,
}

/// Fetches `GET /checkpoint` through `client` and checks it against `keys` and the C2SP
/// tlog-policy text `policy`.
pub async fn witnessed(client: &TlogClient, keys: &KeySource, policy: &str) -> Result<Witnessing, RegulatorError> {
    let policy = Policy::parse(policy).map_err(|e| RegulatorError::Checkpoint(format!("tlog policy: {e}")))?;
    let answer =
        client.get("/checkpoint").await.map_err(|e| RegulatorError::Stalled(format!("tlog checkpoint: {e}")))?;
    if answer.status != 200 {
        return Err(RegulatorError::Checkpoint(format!("tlog checkpoint: HTTP {}", answer.status)));
    }
    let note = String::from_utf8(answer.body)
        .map_err(|_| RegulatorError::Checkpoint("tlog checkpoint is not UTF-8".into()))?;
    let origin = note.lines().next().unwrap_or_default().to_owned();
    let (name, key) = parse_verifier_key(&keys.for_origin(&origin)?)
        .map_err(|e| RegulatorError::Checkpoint(format!("key of {origin}: {e}")))?;
    let cp = Checkpoint::open(&note, &name, &key)
        .map_err(|e| RegulatorError::Checkpoint(format!("witnessed checkpoint of {origin}: {e}")))?;
    let cosigners = policy
        .cosigners(&note)
        .map_err(|w| RegulatorError::Checkpoint(format!("a failing cosignature line by witness {w} on {origin}")))?;
    let quorum = policy.satisfied(&cosigners);
    Ok(Witnessing { origin: cp.origin, size: cp.size, cosigners, quorum })
}

/// Who cosigned each checkpoint a person's report holds, under the tlog-policy text `policy`
/// (the log signatures are [`super::check_report`]'s to check). A failing line from a known
/// witness is an error naming it.
pub fn report_witnesses(
    report: &crate::wire::pb::bureau::v1::SubjectReport,
    policy: &str,
) -> Result<Vec<Witnessing>, RegulatorError> {
    let policy = Policy::parse(policy).map_err(|e| RegulatorError::Checkpoint(format!("tlog policy: {e}")))?;
    let mut out = Vec::new();
    for cp in &report.checkpoints {
        let cosigners = policy.cosigners(&cp.signed_note).map_err(|w| {
            RegulatorError::Checkpoint(format!("a failing cosignature line by witness {w} on {}", cp.origin))
        })?;
        let quorum = policy.satisfied(&cosigners);
        out.push(Witnessing { origin: cp.origin.clone(), size: cp.tree_size, cosigners, quorum });
    }
    Ok(out)
}
