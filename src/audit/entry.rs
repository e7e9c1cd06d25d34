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
    /// The inquiries this node holds about a person were listed for one of its applications.
    InquiriesListed,
    /// A backup of the whole store was taken by one of the institution's administrators.
    BackupTaken,
    /// At a record locator: a member registered where it holds records.
    HoldingsRegistered,
    /// At a member: its holdings were delivered to a locator.
    HoldingsDelivered,
    /// A consent token was verified and its nonce recorded, or a relationship purpose was
    /// asked without one (outcome `relationship`).
    ConsentVerified,
    /// Expired consent nonces were forgotten.
    ConsentNoncesPurged,
    /// A threshold attestation was issued (`detail` is the signed statement, with no score).
    AttestationIssued,
    /// As a witness: a peer's checkpoint was cosigned (it extends the last one cosigned).
    CheckpointCosigned,
    /// As a witness: a peer presented a checkpoint inconsistent with one cosigned before —
    /// two histories of one log (a split view). Evidence for the regulator.
    SplitViewAlarm,
}

/// The query an entry is about: the federated query id, the person, the purpose named and the
/// consent given. Every entry of one query carries the same four.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    /// The federated query id.
    pub query_id: &'a str,
    /// The person's pseudonym.
    pub subject_id: &'a str,
    /// The purpose named.
    pub purpose: Purpose,
    /// The consent reference given.
    pub consent_reference: &'a str,
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

    /// A bare entry made at `now` (the node's clock); the typed constructors below start here.
    fn at(now: DateTime<Utc>, action: Action, actor: &str, outcome: impl Into<String>) -> Self {
        Self { time: now, ..Self::new(action, actor, outcome) }
    }

    /// Copies the query's id, person, purpose and consent into the entry.
    fn about(mut self, q: &About<'_>) -> Self {
        self.query_id = q.query_id.to_owned();
        self.subject_id = q.subject_id.to_owned();
        self.purpose = Some(q.purpose);
        self.consent_reference = q.consent_reference.to_owned();
        self
    }

    /// This node (`asker`) asked `peer` about a person; `outcome` is how the peer answered.
    pub(crate) fn query_outbound(
        now: DateTime<Utc>,
        asker: &str,
        q: &About<'_>,
        peer: &str,
        outcome: &str,
        records: usize,
    ) -> Self {
        let mut e = Self::at(now, Action::QueryOutbound, asker, outcome).about(q);
        e.counterparty = peer.to_owned();
        e.record_count = records as u32;
        e
    }

    /// `inquirer` asked this node (`responder`); the store sets the number of records answered.
    pub(crate) fn query_inbound(now: DateTime<Utc>, inquirer: &str, responder: &str, q: &About<'_>) -> Self {
        let mut e = Self::at(now, Action::QueryInbound, inquirer, "answered").about(q);
        e.counterparty = responder.to_owned();
        e
    }

    /// A score this node was asked for and did not serve, logged after peers were asked.
    pub(crate) fn score_refused(
        now: DateTime<Utc>,
        institution: &str,
        q: &About<'_>,
        why: impl std::fmt::Display,
    ) -> Self {
        Self::at(now, Action::Refusal, institution, format!("score not served: {why}")).about(q)
    }

    /// A score served: `outcome` is `score=641` with its ` partial` / ` fraud_alert` marks.
    pub(crate) fn score_served(
        now: DateTime<Utc>,
        institution: &str,
        q: &About<'_>,
        outcome: String,
        records: usize,
        model_version: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::ScoreServed, institution, outcome).about(q);
        e.record_count = records as u32;
        e.model_version = model_version.to_owned();
        e
    }

    /// A policy decision served: `outcome` is `policy:approved|declined|referred`, logged with
    /// the score and the threshold it was held against.
    pub(crate) fn decision_served(
        now: DateTime<Utc>,
        institution: &str,
        q: &About<'_>,
        outcome: String,
        score: i32,
        threshold: i32,
        model_version: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::DecisionServed, institution, outcome).about(q);
        e.model_version = model_version.to_owned();
        e.detail = format!("score={score} threshold={threshold}");
        e
    }

    /// A person's own report served, resting on `records` records.
    pub(crate) fn report_served(
        now: DateTime<Utc>,
        institution: &str,
        q: &About<'_>,
        records: usize,
        model_version: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::ReportServed, institution, "served").about(q);
        e.record_count = records as u32;
        e.model_version = model_version.to_owned();
        e
    }

    /// A page of `count` inquiries about a person listed for `caller` (one of `institution`'s
    /// applications), with the purpose and consent it named; `query_id` is empty (no federated
    /// query).
    pub(crate) fn inquiries_listed(
        now: DateTime<Utc>,
        institution: &str,
        caller: &str,
        q: &About<'_>,
        count: usize,
    ) -> Self {
        let mut e = Self::at(now, Action::InquiriesListed, institution, "listed").about(q);
        e.counterparty = caller.to_owned();
        e.record_count = count as u32;
        e
    }

    /// A licensed caller refused for `reason` (an UPPER_SNAKE reason); `subject` is kept only
    /// when it is a valid pseudonym, `caller` is the caller's full identity.
    pub(crate) fn refusal(
        now: DateTime<Utc>,
        caller_id: &str,
        institution: &str,
        subject: &str,
        reason: &str,
        caller: String,
    ) -> Self {
        let mut e = Self::at(now, Action::Refusal, caller_id, format!("refused:{reason}"));
        e.counterparty = institution.to_owned();
        if crate::domain::subject::is_valid_subject_id(subject) {
            e.subject_id = subject.to_owned();
        }
        e.detail = caller;
        e
    }

    /// Administrator `caller` (its identity) took a backup of `institution`'s whole store: the
    /// snapshot holds the log up to `tree_size` entries and `pairs` key-value pairs.
    pub(crate) fn backup_taken(
        now: DateTime<Utc>,
        institution: &str,
        caller: &str,
        tree_size: u64,
        pairs: u64,
    ) -> Self {
        let mut e = Self::at(now, Action::BackupTaken, institution, format!("tree_size={tree_size} pairs={pairs}"));
        e.counterparty = institution.to_owned();
        e.detail = caller.to_owned();
        e
    }

    /// At a locator: `member` registered a batch whose SHA-256 is `digest`; `applied` were
    /// newer than what was stored, `stale` were not.
    pub(crate) fn holdings_registered(
        now: DateTime<Utc>,
        locator: &str,
        member: &str,
        applied: u32,
        stale: u32,
        digest: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::HoldingsRegistered, member, "registered");
        e.counterparty = locator.to_owned();
        e.record_count = applied;
        e.detail = format!("stale={stale} sha256={digest}");
        e
    }

    /// At a member: `sent` holdings, covering its log up to `through`, were taken by `locator`.
    pub(crate) fn holdings_delivered(
        now: DateTime<Utc>,
        institution: &str,
        locator: &str,
        sent: u32,
        through: u64,
        batches: &[String],
    ) -> Self {
        let mut e = Self::at(now, Action::HoldingsDelivered, institution, format!("through={through}"));
        if !batches.is_empty() {
            // The batches' digests, as the locator logs each one it registers.
            e.detail = format!("sha256={}", batches.join(","));
        }
        e.counterparty = locator.to_owned();
        e.record_count = sent;
        e
    }

    /// `q.consent_reference` (the logged form: `sha256:` and the evidence hash) was verified for
    /// `inquirer`'s query at `responder`: signed by `signer`, nonce `nonce`, expiring `exp`.
    /// `outcome` is `verified`, or `relationship` for a relationship purpose asked without one.
    pub(crate) fn consent_verified(
        now: DateTime<Utc>,
        inquirer: &str,
        responder: &str,
        q: &About<'_>,
        outcome: &str,
        detail: String,
    ) -> Self {
        let mut e = Self::at(now, Action::ConsentVerified, inquirer, outcome).about(q);
        e.counterparty = responder.to_owned();
        e.detail = detail;
        e
    }

    /// `count` expired consent nonces were forgotten at `institution`.
    pub(crate) fn consent_nonces_purged(now: DateTime<Utc>, institution: &str, count: usize) -> Self {
        let mut e = Self::at(now, Action::ConsentNoncesPurged, institution, "purged");
        e.record_count = count as u32;
        e
    }

    /// As a witness (`institution`), this node cosigned `origin`'s checkpoint of `size` and
    /// `root` (base64).
    pub(crate) fn checkpoint_cosigned(
        now: DateTime<Utc>,
        institution: &str,
        origin: &str,
        size: u64,
        root: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::CheckpointCosigned, institution, format!("size={size}"));
        e.counterparty = origin.to_owned();
        e.detail = format!("root={root}");
        e
    }

    /// As a witness (`institution`), this node refused `origin`'s checkpoint `body` as
    /// inconsistent with the one of `seen_size` and `seen_root` it cosigned before (`why`).
    pub(crate) fn split_view_alarm(
        now: DateTime<Utc>,
        institution: &str,
        origin: &str,
        (seen_size, seen_root): (u64, &str),
        body: &str,
        why: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::SplitViewAlarm, institution, format!("refused:{why}"));
        e.counterparty = origin.to_owned();
        e.detail =
            format!("cosigned size={seen_size} root={seen_root}; presented {}", body.trim_end().replace('\n', " "));
        e
    }

    /// A regulator read `what` of this institution's log.
    pub(crate) fn regulator_read(now: DateTime<Utc>, regulator: &str, institution: &str, what: &str) -> Self {
        let mut e = Self::at(now, Action::RegulatorRead, regulator, "ok");
        e.counterparty = institution.to_owned();
        e.detail = what.to_owned();
        e
    }

    /// `furnisher` sent `total` records of which those in `changed` (ids) were stored.
    pub(crate) fn furnished(now: DateTime<Utc>, furnisher: &str, changed: &[&str], total: usize) -> Self {
        let outcome = format!("accepted={} not_stored={}", changed.len(), total - changed.len());
        let mut e = Self::at(now, Action::RecordFurnished, furnisher, outcome);
        e.record_count = changed.len() as u32;
        e.detail = changed.join(",");
        e
    }

    /// A correction of `record_id`: `outcome` names what the version rule did; `replaced` when
    /// it changed the record, now at `version`.
    pub(crate) fn corrected(
        now: DateTime<Utc>,
        furnisher: &str,
        subject: &str,
        record_id: &str,
        outcome: String,
        replaced: bool,
        version: u64,
    ) -> Self {
        let mut e = Self::at(now, Action::RecordCorrected, furnisher, outcome);
        e.subject_id = subject.to_owned();
        e.record_count = u32::from(replaced);
        e.detail = format!("{record_id} v{version}");
        e
    }

    /// A deletion of `record_id` at `version`, for `reason`.
    pub(crate) fn deleted(
        now: DateTime<Utc>,
        furnisher: &str,
        subject: &str,
        record_id: &str,
        version: u64,
        reason: &str,
    ) -> Self {
        let mut e = Self::at(now, Action::RecordDeleted, furnisher, reason.to_owned());
        e.subject_id = subject.to_owned();
        e.record_count = 1;
        e.detail = format!("{record_id} v{version}");
        e
    }

    /// An expired inquiry's deletion: its keys (who asked whom, when), never its content.
    pub(crate) fn inquiry_purged(
        now: DateTime<Utc>,
        responder: &str,
        inquirer: &str,
        subject: &str,
        query_id: &str,
        inquiry_time: DateTime<Utc>,
    ) -> Self {
        let mut e = Self::at(now, Action::InquiryPurged, responder, "retention_expired");
        e.query_id = query_id.to_owned();
        e.counterparty = inquirer.to_owned();
        e.subject_id = subject.to_owned();
        e.detail = format!("inquiry_time={}", inquiry_time.timestamp_micros());
        e
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
