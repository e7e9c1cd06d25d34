//! SubjectsService: what the person sees and controls, through an institution they deal with:
//! who looked (from this node's log), their report from the whole federation, and a freeze or
//! fraud alert carried to every node.

use tonic::{Request, Response, Status};

use crate::{
    app::report::InquiryListing,
    domain::{protection::Kind as ProtectionKind, subject::is_valid_subject_id},
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
        if let Err(e) = auth::require_scoring_application(&caller, &self.node) {
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
        let report = match self.node.reports.report(&r.subject_id, &r.consent_reference, trace).await {
            Ok(report) => report,
            Err(e) => return Err(super::log_refusal(&self.node, &caller, &r.subject_id, e.into()).await.into()),
        };
        let now = report.time;
        let mut shown = convert::protection_to_pb(&report.protection, now);
        shown.fraud_alert |= report.score.fraud_alert;
        Ok(Response::new(pb::SubjectReport {
            subject_id: r.subject_id.clone(),
            score: Some(super::scoring::score_to_pb(&report.score)),
            records: report.score.records.iter().map(|rec| convert::record_to_pb(rec, now)).collect(),
            inquiries: report.inquiries,
            disputes: report.disputes.iter().map(|d| convert::dispute_to_pb(d, now)).collect(),
            protection: Some(shown),
            checkpoints: report.checkpoints,
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
        let caller = self.authorise(&req, "").await?;
        let r = req.into_inner();
        let subject = parse_subject_name(&r.parent)
            .filter(|s| is_valid_subject_id(s))
            .ok_or_else(|| ApiError::invalid("parent", "must be subjects/{subject_id} with a 64-hex subject id"))?;
        let size = super::page_size(r.page_size, 100, 1000)?;
        let before = match token::decode(&r.page_token, Listing::Inquiries, &r.parent)? {
            Some(b) => Some(token::parse_inquiry_cursor(&b)?),
            None => None,
        };
        let ask = InquiryListing {
            caller: &caller.id,
            subject,
            purpose: convert::purpose_from_pb(r.purpose),
            consent: &r.consent_reference,
            before,
            size,
        };
        let page = match self.node.reports.inquiries(&ask).await {
            Ok(page) => page,
            Err(e) => return Err(super::log_refusal(&self.node, &caller, subject, e.into()).await.into()),
        };
        Ok(Response::new(pb::ListSubjectInquiriesResponse {
            inquiries: page.items.iter().map(convert::inquiry_to_pb).collect(),
            next_page_token: page
                .next
                .map(|c| token::encode(Listing::Inquiries, &r.parent, &token::inquiry_cursor(&c)))
                .unwrap_or_default(),
        }))
    }
}
