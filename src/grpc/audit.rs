//! AuditService: the regulator's view of this node's log — entries, signed checkpoints,
//! inclusion and consistency proofs. Every read is itself logged. Other roles are refused.

use tonic::{Request, Response, Status};

use crate::{
    audit::{Action, Entry},
    grpc::auth,
    grpc::error::{ApiError, Reason},
    grpc::node::Node,
    grpc::token::{self, Listing},
    net::identity::Identity,
    wire::convert,
    wire::pb::bureau::v1::{self as pb, audit_service_server::AuditService},
};

/// Most entries scanned per ListAuditEntries call, so a selective filter cannot make one call
/// walk the whole log; the page token resumes where the scan stopped.
const MAX_SCAN: usize = 20_000;
/// The parent page tokens of the log listing are bound to.
const AUDIT_PARENT: &str = "audit";

/// The AuditService handlers.
pub(crate) struct AuditApi {
    node: Node,
}

impl AuditApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }

    /// Checks the regulator role and logs the read (before answering, so it is in what a
    /// checkpoint covers).
    async fn authorise<T>(&self, req: &Request<T>, what: &str) -> Result<Identity, Status> {
        let caller = auth::caller(req, &self.node.federation)?;
        if let Err(e) = auth::require_regulator(&caller) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        self.node.audit.log_read(&caller.id, what).await.map_err(ApiError::from)?;
        Ok(caller)
    }
}

/// The protobuf form of a stored entry.
pub(crate) fn entry_to_pb(index: u64, bytes: Vec<u8>, e: &Entry) -> pb::AuditEntry {
    pb::AuditEntry {
        index,
        entry_time: Some(convert::timestamp(e.time)),
        action: match e.action {
            Action::QueryOutbound => pb::AuditAction::QueryOutbound,
            Action::QueryInbound => pb::AuditAction::QueryInbound,
            Action::ScoreServed => pb::AuditAction::ScoreServed,
            Action::DecisionServed => pb::AuditAction::DecisionServed,
            Action::RecordFurnished => pb::AuditAction::RecordFurnished,
            Action::RecordCorrected => pb::AuditAction::RecordCorrected,
            Action::RecordDeleted => pb::AuditAction::RecordDeleted,
            Action::Refusal => pb::AuditAction::Refusal,
            Action::RegulatorRead => pb::AuditAction::RegulatorRead,
            Action::DisputeFiled => pb::AuditAction::DisputeFiled,
            Action::DisputeForwarded => pb::AuditAction::DisputeForwarded,
            Action::DisputeReceived => pb::AuditAction::DisputeReceived,
            Action::DisputeResolved => pb::AuditAction::DisputeResolved,
            Action::DisputeSuppressed => pb::AuditAction::DisputeSuppressed,
            Action::DisputeRejected => pb::AuditAction::DisputeRejected,
            Action::InquiryPurged => pb::AuditAction::InquiryPurged,
            Action::ProtectionChanged => pb::AuditAction::ProtectionChanged,
            Action::ProtectionForwarded => pb::AuditAction::ProtectionForwarded,
            Action::ProtectionReceived => pb::AuditAction::ProtectionReceived,
            Action::ReportServed => pb::AuditAction::ReportServed,
            Action::InquiriesListed => pb::AuditAction::InquiriesListed,
            Action::BackupTaken => pb::AuditAction::BackupTaken,
            Action::HoldingsRegistered => pb::AuditAction::HoldingsRegistered,
            Action::HoldingsDelivered => pb::AuditAction::HoldingsDelivered,
            Action::ConsentVerified => pb::AuditAction::ConsentVerified,
            Action::ConsentNoncesPurged => pb::AuditAction::ConsentNoncesPurged,
            Action::AttestationIssued => pb::AuditAction::AttestationIssued,
            Action::CheckpointCosigned => pb::AuditAction::CheckpointCosigned,
            Action::SplitViewAlarm => pb::AuditAction::SplitViewAlarm,
        } as i32,
        query_id: e.query_id.clone(),
        actor: e.actor.clone(),
        counterparty: e.counterparty.clone(),
        subject_id: e.subject_id.clone(),
        purpose: e.purpose.map_or(0, |p| convert::purpose_to_pb(p) as i32),
        consent_reference: e.consent_reference.clone(),
        outcome: e.outcome.clone(),
        record_count: e.record_count,
        model_version: e.model_version.clone(),
        detail: e.detail.clone(),
        leaf_data: bytes,
    }
}

/// An optional time filter; a timestamp out of range or with nanos outside 0..1e9 is refused.
fn time_filter(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match t {
        None => Ok(None),
        Some(t) => convert::from_timestamp(t)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, format!("{}s {}ns is not a valid timestamp", t.seconds, t.nanos))),
    }
}

fn size_arg(requested: u64, size: u64, field: &str) -> Result<u64, ApiError> {
    match requested {
        0 => Ok(size),
        n if n <= size => Ok(n),
        n => Err(ApiError::invalid(field, format!("{n} is beyond the log's size {size}"))),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_entries(
        &self,
        req: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        self.authorise(&req, "list_entries").await?;
        let r = req.into_inner();
        let limit = super::page_size(r.page_size, 100, 1000)?;
        let from = match token::decode(&r.page_token, Listing::Audit, AUDIT_PARENT)? {
            None => 0,
            Some(b) => <[u8; 8]>::try_from(b)
                .map(u64::from_be_bytes)
                .map_err(|_| ApiError::invalid("page_token", "is not a token from a previous page"))?,
        };
        // A filter that cannot be read is refused, never dropped: a regulator must not get
        // the whole log while believing it filtered.
        let start = time_filter(r.start_time.as_ref(), "start_time")?;
        let end = time_filter(r.end_time.as_ref(), "end_time")?;
        let purpose = match r.purpose {
            0 => None,
            n => Some(
                convert::purpose_from_pb(n)
                    .ok_or_else(|| ApiError::invalid("purpose", format!("{n} is not a bureau.v1.Purpose")))?,
            ),
        };
        if !r.subject_id.is_empty() && !crate::domain::subject::is_valid_subject_id(&r.subject_id) {
            return Err(ApiError::invalid("subject_id", "must be a 64-hex subject id").into());
        }
        let scanned = self.node.audit.entries(from, MAX_SCAN).await.map_err(ApiError::from)?;
        let mut entries = Vec::new();
        let mut next = None;
        for (index, bytes) in &scanned {
            if entries.len() == limit {
                next = Some(*index);
                break;
            }
            let e = Entry::from_bytes(bytes)
                .map_err(|err| ApiError::Internal(format!("audit entry {index} does not parse: {err}")))?;
            let keep = start.is_none_or(|s| e.time >= s)
                && end.is_none_or(|t| e.time < t)
                && (r.subject_id.is_empty() || e.subject_id == r.subject_id)
                && (r.counterparty.is_empty() || e.counterparty == r.counterparty)
                && (purpose.is_none() || e.purpose == purpose);
            if keep {
                entries.push(entry_to_pb(*index, bytes.clone(), &e));
            }
        }
        if next.is_none() && scanned.len() == MAX_SCAN {
            next = scanned.last().map(|(i, _)| i + 1);
        }
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries,
            next_page_token: next
                .map(|i| token::encode(Listing::Audit, AUDIT_PARENT, &i.to_be_bytes()))
                .unwrap_or_default(),
        }))
    }

    async fn get_checkpoint(&self, req: Request<pb::GetCheckpointRequest>) -> Result<Response<pb::Checkpoint>, Status> {
        self.authorise(&req, "checkpoint").await?;
        let cp = self.node.audit.checkpoint().await.map_err(ApiError::from)?.ok_or_else(|| {
            ApiError::FailedPrecondition {
                reason: Reason::NoLogKey,
                message: "this node has no checkpoint signing key configured (tls.log_key)".into(),
            }
        })?;
        Ok(Response::new(cp))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        self.authorise(&req, "inclusion_proof").await?;
        let r = req.into_inner();
        let size = size_arg(r.tree_size, self.node.audit.size().await.map_err(ApiError::from)?, "tree_size")?;
        if r.index >= size {
            return Err(ApiError::invalid("index", format!("must be below the tree size {size}")).into());
        }
        let hashes = self.node.audit.inclusion(r.index, size).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::InclusionProof {
            index: r.index,
            tree_size: size,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        self.authorise(&req, "consistency_proof").await?;
        let r = req.into_inner();
        let second = size_arg(r.second_size, self.node.audit.size().await.map_err(ApiError::from)?, "second_size")?;
        if r.first_size == 0 || r.first_size > second {
            return Err(ApiError::invalid("first_size", format!("must be from 1 to {second}")).into());
        }
        let hashes = self.node.audit.consistency(r.first_size, second).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ConsistencyProof {
            first_size: r.first_size,
            second_size: second,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }
}
