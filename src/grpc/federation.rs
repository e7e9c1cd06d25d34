//! FederationService: a licensed peer asks this node about one subject.

use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    app::answer::{Given, PeerQuery},
    grpc::auth,
    grpc::error::ApiError,
    grpc::node::Node,
    net::identity::Identity,
    wire::convert,
    wire::pb::bureau::v1::{self as pb, federation_service_server::FederationService},
};

/// The FederationService handlers.
pub(crate) struct FederationApi {
    node: Node,
}

impl FederationApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl FederationService for FederationApi {
    async fn query_records(
        &self,
        req: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<pb::QueryRecordsResponse>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let subject = r.subject_id.clone();
        super::server_span("bureau.v1.FederationService/QueryRecords", trace, &caller, async {
            match answer_query(&self.node, &caller, r, trace).await {
                Ok(resp) => Ok(Response::new(resp)),
                Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
            }
        })
        .await
    }

    async fn deliver_notice(&self, req: Request<pb::Notice>) -> Result<Response<pb::NoticeReceipt>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        if let Err(e) = auth::require_member(&caller, &self.node.scorer.peers) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        let body = req.into_inner().body.ok_or_else(|| ApiError::invalid("body", "a notice needs a body"))?;
        let (filed, p) = match body {
            pb::notice::Body::DisputeFiled(p) => (true, p),
            pb::notice::Body::DisputeResolved(p) => (false, p),
            pb::notice::Body::Protection(n) => {
                let subject = n.subject_id.clone();
                return match self.node.protections.arrived(&caller.id, &n).await {
                    Ok(_) => Ok(Response::new(pb::NoticeReceipt { dispute: None })),
                    Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e.into()).await.into()),
                };
            }
        };
        let d = convert::dispute_from_pb(&p).map_err(|(field, why)| ApiError::invalid(field, why))?;
        let subject = d.subject_id.clone();
        let done = if filed {
            self.node.disputes.receive(&caller.id, d).await
        } else {
            self.node.disputes.resolution_arrived(&caller.id, d).await
        };
        match done {
            Ok(d) => Ok(Response::new(pb::NoticeReceipt {
                dispute: Some(convert::dispute_to_pb(&d, self.node.life.clock.now())),
            })),
            Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e.into()).await.into()),
        }
    }
}

/// Answers a member's query: records this institution furnished and what the purpose needs of
/// the inquiries held here.
pub(super) async fn answer_query(
    node: &Node,
    caller: &Identity,
    r: pb::QueryRecordsRequest,
    trace: crate::net::trace::TraceContext,
) -> Result<pb::QueryRecordsResponse, ApiError> {
    auth::require_member(caller, &node.scorer.peers)?;
    let records_only = r.records_only;
    let q = peer_query(caller, r);
    let given = node.answers.answer(&q).await?;
    Ok(answer_to_pb(node, &q, given, records_only, &trace))
}

/// A member's query as the use cases take it, its inquirer the one the certificate proves.
pub(super) fn peer_query(caller: &Identity, r: pb::QueryRecordsRequest) -> PeerQuery {
    PeerQuery {
        inquirer: caller.id.clone(),
        subject_id: r.subject_id,
        purpose: convert::purpose_from_pb(r.purpose),
        consent_reference: r.consent_reference,
        query_id: r.query_id,
    }
}

/// An answer to `q` on the wire (logged): the records, and the inquiries the purpose needs —
/// every one with its proof for the person's own report, else the hard ones (none with
/// `records_only`, when the caller counts them at the record locator).
pub(super) fn answer_to_pb(
    node: &Node,
    q: &PeerQuery,
    given: Given,
    records_only: bool,
    trace: &crate::net::trace::TraceContext,
) -> pb::QueryRecordsResponse {
    let Given { answer, time: now, proofs } = given;
    let (checkpoint, proven) = match proofs {
        Some(p) => (Some(p.checkpoint), p.proven),
        None => (None, Vec::new()),
    };
    info!(
        trace_id = %trace.trace_id(),
        inquirer = %q.inquirer,
        subject = %q.subject_id,
        query_id = %q.query_id,
        purpose = q.purpose.map_or("", |p| p.as_str()),
        records = answer.records.len(),
        "peer query answered"
    );
    let records = answer.records.iter().map(|r| convert::record_to_pb(r, now)).collect();
    let (inquiries, hard_inquiries) = match q.purpose {
        Some(crate::domain::inquiry::Purpose::SubjectRequest) => {
            (crate::app::report::inquiries_with_proofs(&answer.inquiries, proven), Vec::new())
        }
        _ if records_only => (Vec::new(), Vec::new()),
        _ => (Vec::new(), answer.inquiries.iter().filter(|i| i.hard).map(convert::hard_inquiry_to_pb).collect()),
    };
    pb::QueryRecordsResponse {
        records,
        inquiries,
        hard_inquiries,
        responder: node.institution.clone(),
        answer_time: Some(convert::timestamp(now)),
        fraud_alert: answer.protection.alert_active(now),
        checkpoint,
    }
}
