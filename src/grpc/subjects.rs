//! SubjectsService: what the person sees and controls, through an institution they deal with:
//! who looked (from this node's log), their report from the whole federation, and a freeze or
//! fraud alert carried to every node.

use tonic::{Request, Response, Status};

use crate::{
    app::report,
    audit::{Action, Entry},
    domain::{inquiry::Purpose, protection::Kind as ProtectionKind, subject::is_valid_subject_id},
    grpc::auth,
    grpc::error::ApiError,
    grpc::node::Node,
    grpc::token::{self, Listing},
    wire::convert::{self, parse_subject_name},
    wire::pb::bureau::v1::{self as pb, subjects_service_server::SubjectsService},
};

/// The SubjectsService handlers.
pub(crate) struct SubjectsApi {
    node: Node,
}

impl SubjectsApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

impl SubjectsApi {
    async fn authorise<T>(&self, req: &Request<T>, subject: &str) -> Result<crate::net::identity::Identity, Status> {
        let caller = auth::caller(req, &self.node.federation)?;
        if let Err(e) = auth::require_own_application(&caller, &self.node.institution) {
            return Err(super::log_refusal(&self.node, &caller, subject, e).await.into());
        }
        Ok(caller)
    }

    async fn protect(
        &self,
        req: Request<pb::ProtectionRequest>,
        active: bool,
    ) -> Result<Response<pb::SubjectProtection>, Status> {
        let caller = self.authorise(&req, &req.get_ref().subject_id).await?;
        let r = req.into_inner();
        let kind = match pb::ProtectionKind::try_from(r.kind) {
            Ok(pb::ProtectionKind::SecurityFreeze) => ProtectionKind::SecurityFreeze,
            Ok(pb::ProtectionKind::FraudAlert) => ProtectionKind::FraudAlert,
            _ => return Err(ApiError::invalid("kind", "must be SECURITY_FREEZE or FRAUD_ALERT").into()),
        };
        match self.node.protections.change(&r.subject_id, kind, active, &r.consent_reference).await {
            Ok(p) => Ok(Response::new(convert::protection_to_pb(&p, self.node.life.clock.now()))),
            Err(e) => Err(super::log_refusal(&self.node, &caller, &r.subject_id, e.into()).await.into()),
        }
    }
}

#[tonic::async_trait]
impl SubjectsService for SubjectsApi {
    async fn get_report(&self, req: Request<pb::GetReportRequest>) -> Result<Response<pb::SubjectReport>, Status> {
        let caller = self.authorise(&req, &req.get_ref().subject_id).await?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let score = match self
            .node
            .scorer
            .score(&r.subject_id, Some(Purpose::SubjectRequest), &r.consent_reference, trace)
            .await
        {
            Ok(s) => s,
            Err(e) => return Err(super::log_refusal(&self.node, &caller, &r.subject_id, e.into()).await.into()),
        };
        let node = &self.node;
        // Proofs for the inquiries this node recorded; peers sent theirs with their answers.
        let mut proven: Vec<pb::Inquiry> = Vec::new();
        let mut checkpoints = Vec::new();
        if let Some(key) = &node.log_key {
            let (cp, own) = report::prove(&*node.store, key, node.origin(), &node.institution, &score.recorded)
                .await
                .map_err(ApiError::from)?;
            checkpoints.push(cp);
            proven.extend(own);
        }
        for c in &score.coverage {
            checkpoints.extend(c.checkpoint.clone());
            proven.extend(c.proven.iter().cloned());
        }
        let disputes = node.disputes.about(&r.subject_id).await.map_err(ApiError::from)?;
        let (protection, _) = node.life.protection(&r.subject_id).await.map_err(ApiError::from)?;
        let now = node.life.clock.now();
        let mut shown = convert::protection_to_pb(&protection, now);
        shown.fraud_alert |= score.fraud_alert;
        let mut entry = Entry::new(Action::ReportServed, &node.institution, "served");
        entry.time = now;
        entry.query_id = score.query_id.clone();
        entry.subject_id = r.subject_id.clone();
        entry.purpose = Some(Purpose::SubjectRequest);
        entry.consent_reference = r.consent_reference.clone();
        entry.record_count = score.records.len() as u32;
        entry.model_version = score.model_version.clone();
        node.store.append_audit(vec![entry]).await.map_err(ApiError::from)?;
        node.store.sync().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::SubjectReport {
            subject_id: r.subject_id.clone(),
            score: Some(super::scoring::score_to_pb(&score)),
            records: score.records.iter().map(|rec| convert::record_to_pb(rec, now)).collect(),
            inquiries: report::inquiries_with_proofs(&score.recorded, proven),
            disputes: disputes.iter().map(|d| convert::dispute_to_pb(d, now)).collect(),
            protection: Some(shown),
            checkpoints,
            report_time: Some(convert::timestamp(now)),
        }))
    }

    async fn place_protection(
        &self,
        req: Request<pb::ProtectionRequest>,
    ) -> Result<Response<pb::SubjectProtection>, Status> {
        self.protect(req, true).await
    }

    async fn lift_protection(
        &self,
        req: Request<pb::ProtectionRequest>,
    ) -> Result<Response<pb::SubjectProtection>, Status> {
        self.protect(req, false).await
    }

    async fn list_subject_inquiries(
        &self,
        req: Request<pb::ListSubjectInquiriesRequest>,
    ) -> Result<Response<pb::ListSubjectInquiriesResponse>, Status> {
        self.authorise(&req, "").await?;
        let r = req.into_inner();
        let subject = parse_subject_name(&r.parent)
            .filter(|s| is_valid_subject_id(s))
            .ok_or_else(|| ApiError::invalid("parent", "must be subjects/{subject_id} with a 64-hex subject id"))?;
        let size = super::page_size(r.page_size, 100, 1000)?;
        let before = match token::decode(&r.page_token, Listing::Inquiries, &r.parent)? {
            Some(b) => Some(token::parse_inquiry_cursor(&b)?),
            None => None,
        };
        let page = self.node.store.subject_inquiries(subject, before, size).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSubjectInquiriesResponse {
            inquiries: self
                .node
                .life
                .live_inquiries(page.items, self.node.life.clock.now())
                .iter()
                .map(convert::inquiry_to_pb)
                .collect(),
            next_page_token: page
                .next
                .map(|c| token::encode(Listing::Inquiries, &r.parent, &token::inquiry_cursor(&c)))
                .unwrap_or_default(),
        }))
    }
}
