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
    scoring::{whatif::Suggestion, Band, MAX_SCORE, MIN_SCORE},
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
/// An unscoreable file's score carries no number, band or reasons: only its exclusion.
pub(crate) fn score_to_pb(s: &FederatedScore) -> pb::Score {
    let excluded = s.result.exclusion;
    let shown = if excluded.is_some() { &[][..] } else { &s.result.reasons[..] };
    pb::Score {
        subject_id: s.subject_id.clone(),
        score: if excluded.is_some() { 0 } else { s.result.score },
        band: if excluded.is_some() { pb::ScoreBand::Unspecified } else { band_to_pb(s.result.band) } as i32,
        scored_on: s.result.as_of.format("%Y-%m-%d").to_string(),
        range_min: MIN_SCORE,
        range_max: MAX_SCORE,
        exclusion: excluded.map(|e| pb::ScoreExclusion { code: e.code().into(), description: e.description().into() }),
        reasons: shown
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
        what_if: s.what_if.iter().map(what_if_to_pb).collect(),
        what_if_target: s.what_if_target,
    }
}

/// The protobuf form of a what-if suggestion.
fn what_if_to_pb(w: &Suggestion) -> pb::WhatIf {
    pb::WhatIf {
        lever: w.lever.as_str().into(),
        text: w.text.clone(),
        accounts: w
            .accounts
            .iter()
            .map(|a| pb::WhatIfAccount {
                furnisher: a.furnisher.clone(),
                record_id: a.record_id.clone(),
                balance_to_minor: a.balance_to_minor,
                bring_current: a.bring_current,
            })
            .collect(),
        pay_minor: w.pay_minor,
        wait_days: w.wait_days,
        predicted_score: w.predicted,
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
        auth::require_scoring_application(caller, &self.node)?;
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
        auth::require_scoring_application(caller, &self.node)?;
        let d = self.node.decisions.decide(&r.policy, &r.subject_id, &r.consent_reference, trace).await?;
        Ok(pb::Decision {
            policy: r.policy,
            approved: d.approved,
            threshold: d.threshold,
            score: Some(score_to_pb(&d.score)),
            outcome: d.outcome.into(),
            notice: d.notice,
        })
    }
}
