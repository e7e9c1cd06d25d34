//! DecisionsService: what a person and a lender need around a decision — the exact what-if.

use tonic::{Request, Response, Status};

use crate::{
    grpc::{auth, error::ApiError, node::Node, scoring::score_to_pb},
    net::identity::Identity,
    net::trace::TraceContext,
    scoring::{MAX_SCORE, MIN_SCORE},
    wire::convert,
    wire::pb::bureau::v1::{self as pb, decisions_service_server::DecisionsService},
};

/// The DecisionsService handlers.
pub(crate) struct DecisionsApi {
    node: Node,
}

impl DecisionsApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl DecisionsService for DecisionsApi {
    async fn what_if(&self, req: Request<pb::WhatIfRequest>) -> Result<Response<pb::Score>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let subject = r.subject_id.clone();
        match self.what_if_score(&caller, r, trace).await {
            Ok(s) => Ok(Response::new(s)),
            Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
        }
    }
}

impl DecisionsApi {
    async fn what_if_score(
        &self,
        caller: &Identity,
        r: pb::WhatIfRequest,
        trace: TraceContext,
    ) -> Result<pb::Score, ApiError> {
        auth::require_scoring_application(caller, &self.node)?;
        if !(MIN_SCORE..=MAX_SCORE).contains(&r.target) {
            return Err(ApiError::invalid("target", format!("must be {MIN_SCORE} to {MAX_SCORE}")));
        }
        let purpose = convert::purpose_from_pb(r.purpose);
        let s = self.node.scorer.score_what_if(&r.subject_id, purpose, &r.consent_reference, trace, r.target).await?;
        Ok(score_to_pb(&s))
    }
}
