//! FederationService: a licensed peer asks this node about one subject.

use chrono::Utc;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    app::answer::{self as peer_query, PeerQuery},
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
        match self.answer(&caller, r, trace).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
        }
    }
}

impl FederationApi {
    async fn answer(
        &self,
        caller: &Identity,
        r: pb::QueryRecordsRequest,
        trace: crate::net::trace::TraceContext,
    ) -> Result<pb::QueryRecordsResponse, ApiError> {
        auth::require_node(caller)?;
        let caller = caller.clone();
        let q = PeerQuery {
            inquirer: caller.id,
            subject_id: r.subject_id,
            purpose: convert::purpose_from_pb(r.purpose),
            consent_reference: r.consent_reference,
            query_id: r.query_id,
        };
        let purpose = peer_query::check(&q, &self.node.accepted_purposes)?;
        let now = Utc::now();
        let answer = peer_query::answer(&*self.node.store, &self.node.institution, &q, purpose, now).await?;
        info!(
            trace_id = %trace.trace_id(),
            inquirer = %q.inquirer,
            subject = %q.subject_id,
            query_id = %q.query_id,
            purpose = purpose.as_str(),
            records = answer.records.len(),
            "peer query answered"
        );
        let records = answer.records.iter().map(|r| convert::record_to_pb(r, now)).collect();
        Ok(pb::QueryRecordsResponse {
            records,
            inquiries: answer.inquiries.iter().map(convert::inquiry_to_pb).collect(),
            responder: self.node.institution.clone(),
            answer_time: Some(convert::timestamp(now)),
        })
    }
}
