//! An audit log entry: what happened, who acted, about whom, why, and how it ended. Its JSON
//! bytes are the Merkle leaf. Storage-agnostic: backends store the bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::inquiry::Purpose;

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
    /// A dispute was filed here (`query_id` is the dispute id).
    DisputeFiled,
    /// The furnisher's node acknowledged a dispute filed here.
    DisputeForwarded,
    /// A dispute against this institution's record arrived.
    DisputeReceived,
    /// A dispute was resolved (at the furnisher) or its resolution arrived (at the filer).
    DisputeResolved,
    /// A dispute passed its deadline unresolved; the record is suppressed.
    DisputeSuppressed,
    /// The furnisher's node refused a dispute filed here.
    DisputeRejected,
    /// An inquiry passed its retention period and was deleted.
    InquiryPurged,
    /// A freeze or fraud alert was placed or lifted through this node.
    ProtectionChanged,
    /// A peer acknowledged a protection change this node sent.
    ProtectionForwarded,
    /// A protection change arrived from a peer.
    ProtectionReceived,
    /// A person's own report was served.
    ReportServed,
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
