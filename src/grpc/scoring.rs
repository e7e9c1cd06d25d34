//! ScoringService: federated scores and policy decisions for the node's own institution.

use tonic::{Request, Response, Status};

use crate::{
    app::score::{FederatedScore, Route},
    grpc::auth,
    grpc::error::ApiError,
    grpc::node::Node,
    net::identity::Identity,
    net::peers::PeerOutcome,
    net::trace::TraceContext,
    scoring::Band,
    wire::convert,
    wire::pb::bureau::v1::{self as pb, scoring_service_server::ScoringService},
};

/// The ScoringService handlers.
pub(crate) struct ScoringApi {
    node: Node,
}

impl ScoringApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

fn band_to_pb(b: Band) -> pb::ScoreBand {
    match b {
        Band::Poor => pb::ScoreBand::Poor,
        Band::Fair => pb::ScoreBand::Fair,
        Band::Good => pb::ScoreBand::Good,
        Band::VeryGood => pb::ScoreBand::VeryGood,
        Band::Excellent => pb::ScoreBand::Excellent,
    }
}

/// The protobuf form of a federated score.
pub(crate) fn score_to_pb(s: &FederatedScore) -> pb::Score {
    pb::Score {
        subject_id: s.subject_id.clone(),
        score: s.result.score,
        band: band_to_pb(s.result.band) as i32,
        reasons: s
            .result
            .reasons
            .iter()
            .map(|r| pb::ReasonCode {
                code: r.code.clone(),
                description: r.description.clone(),
                points_lost: r.points_lost,
            })
            .collect(),
        model_version: s.model_version.clone(),
        disputed_records_excluded: s.disputed_excluded() as u32,
        fraud_alert: s.fraud_alert,
        coverage: s
            .coverage
            .iter()
            .map(|c| pb::PeerCoverage {
                peer: c.peer.clone(),
                outcome: match c.outcome {
                    PeerOutcome::Answered => pb::PeerOutcome::Answered,
                    PeerOutcome::TimedOut => pb::PeerOutcome::TimedOut,
                    PeerOutcome::Unreachable => pb::PeerOutcome::Unreachable,
                    PeerOutcome::Refused => pb::PeerOutcome::Refused,
                } as i32,
                records_returned: c.records_returned as u32,
                latency_ms: c.latency.as_millis().min(u32::MAX as u128) as u32,
                error: c.error.clone().unwrap_or_default(),
            })
            .collect(),
        partial: s.partial,
        query_id: s.query_id.clone(),
        records_used: s.records_used as u32,
        route: match s.route {
            Route::Everyone => pb::ScoreRoute::Everyone,
            Route::Located => pb::ScoreRoute::Located,
            Route::LocatorDown => pb::ScoreRoute::LocatorDown,
            Route::Report => pb::ScoreRoute::Report,
        } as i32,
        members_asked: s.asked as u32,
        members: s.members as u32,
    }
}

#[tonic::async_trait]
impl ScoringService for ScoringApi {
    async fn get_score(&self, req: Request<pb::GetScoreRequest>) -> Result<Response<pb::Score>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let subject = r.subject_id.clone();
        super::server_span("bureau.v1.ScoringService/GetScore", trace, &caller, async {
            match self.score(&caller, r, trace).await {
                Ok(s) => Ok(Response::new(s)),
                Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
            }
        })
        .await
    }

    async fn decide(&self, req: Request<pb::DecideRequest>) -> Result<Response<pb::Decision>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let subject = r.subject_id.clone();
        super::server_span("bureau.v1.ScoringService/Decide", trace, &caller, async {
            match self.decision(&caller, r, trace).await {
                Ok(d) => Ok(Response::new(d)),
                Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
            }
        })
        .await
    }
}

impl ScoringApi {
    async fn score(
        &self,
        caller: &Identity,
        r: pb::GetScoreRequest,
        trace: TraceContext,
    ) -> Result<pb::Score, ApiError> {
        auth::require_own_application(caller, &self.node.institution)?;
        let purpose = convert::purpose_from_pb(r.purpose);
        let score = self.node.scorer.score(&r.subject_id, purpose, &r.consent_reference, trace).await?;
        Ok(score_to_pb(&score))
    }

    async fn decision(
        &self,
        caller: &Identity,
        r: pb::DecideRequest,
        trace: TraceContext,
    ) -> Result<pb::Decision, ApiError> {
        auth::require_own_application(caller, &self.node.institution)?;
        let d = self.node.decisions.decide(&r.policy, &r.subject_id, &r.consent_reference, trace).await?;
        Ok(pb::Decision {
            policy: r.policy,
            approved: d.approved,
            threshold: d.threshold,
            score: Some(score_to_pb(&d.score)),
            outcome: d.outcome.into(),
        })
    }
}
