//! The record locator's client side: which members hold records about a person (a lookup,
//! itself an inquiry), and the registrations that keep it true. The shard for a subject is the
//! directory's longest matching pseudonym prefix.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::{
    net::peers::{judge, request, Answer, Peer, PeerError, PeerResult, Peers, Query},
    wire::pb::bureau::v1 as pb,
};

/// What a lookup found.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    /// The institutions that hold records about the person.
    pub holders: Vec<String>,
    /// The locator's own answer, as any node's: its inquiries, its checkpoint.
    pub answer: PeerResult,
}

/// Why a lookup found nothing to go on.
#[derive(Debug, Clone)]
pub(crate) enum LocateError {
    /// The node follows no directory, or the directory names no locator.
    NoLocator,
    /// The shard's locator did not answer (timed out, unreachable, refused): its result says how.
    Failed(Box<PeerResult>),
}

impl Peers {
    /// True when the directory names a locator.
    pub(crate) fn has_locator(&self) -> bool {
        !self.snapshot().locators.is_empty()
    }

    /// The locator shard serving `subject_id` and its node set.
    fn shard(&self, subject_id: &str) -> Option<Arc<Peer>> {
        let set = self.snapshot();
        let shard = set.directory.as_ref()?.locator_for(subject_id)?;
        set.locators.iter().find(|p| p.id == shard.id).cloned()
    }

    /// The id of the locator serving `subject_id`.
    pub(crate) fn locator_id(&self, subject_id: &str) -> Option<String> {
        self.shard(subject_id).map(|p| p.id.clone())
    }

    /// Asks the subject's locator which members hold records about them, under `deadline`.
    pub(crate) async fn locate(&self, q: &Query, deadline: Duration) -> Result<Located, LocateError> {
        let peer = self.shard(&q.subject_id).ok_or(LocateError::NoLocator)?;
        let started = Instant::now();
        let (hop, wall) = (q.trace.child(), std::time::SystemTime::now());
        let call = peer.hedged(|channel| {
            let mut req = tonic::Request::new(request(q));
            req.set_timeout(deadline.saturating_sub(started.elapsed()));
            if let Ok(v) = hop.header().parse() {
                req.metadata_mut().insert(super::trace::HEADER, v);
            }
            let mut client = peer.locator(channel);
            async move { client.locate(req).await }
        });
        let (holders, answer): (Vec<String>, Option<Answer>) = match tokio::time::timeout(deadline, call).await {
            Ok(Ok(resp)) => {
                let resp = resp.into_inner();
                let own = tonic::Response::new(resp.answer.unwrap_or_default());
                (resp.holders, Some((started.elapsed(), Ok(own))))
            }
            Ok(Err(status)) => (Vec::new(), Some((started.elapsed(), Err(status)))),
            Err(_) => (Vec::new(), None),
        };
        let failed = match &answer {
            Some((_, Ok(_))) => None,
            Some((_, Err(s))) => Some(format!("{:?}: {}", s.code(), s.message())),
            None => Some("deadline exceeded".to_owned()),
        };
        let attributes = vec![opentelemetry::KeyValue::new("bureau.peer", peer.id.clone())];
        super::otlp::record(
            "bureau.v1.LocatorService/Locate",
            super::otlp::Side::Client,
            &hop,
            wall,
            attributes,
            failed,
        );
        let answer = judge(&peer, q, answer, started.elapsed(), deadline);
        match answer.outcome {
            crate::net::peers::PeerOutcome::Answered => Ok(Located { holders, answer }),
            _ => Err(LocateError::Failed(Box::new(answer))),
        }
    }

    /// Tells locator `shard` where this institution holds records, within `timeout`.
    pub(crate) async fn register(
        &self,
        shard: &str,
        holdings: Vec<pb::Holding>,
        timeout: Duration,
    ) -> Result<pb::RegisterResponse, PeerError> {
        let set = self.snapshot();
        let Some(peer) = set.locators.iter().find(|p| p.id == shard) else {
            return Err(tonic::Status::unavailable(format!("{shard} is not a locator in the directory")).into());
        };
        let started = Instant::now();
        let call = peer.each_address(|channel| {
            let mut req = tonic::Request::new(pb::RegisterRequest { holdings: holdings.clone() });
            req.set_timeout(timeout.saturating_sub(started.elapsed()));
            let mut client = peer.locator(channel);
            async move { client.register(req).await }
        });
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r.map(tonic::Response::into_inner).map_err(PeerError::from),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("{shard} did not answer in time")).into()),
        }
    }
}

impl Peers {
    /// Asks every locator node set whether its LocatorService is serving (the standard gRPC
    /// health check, which logs nothing): `None` without a locator, else whether all answered
    /// SERVING within `timeout`.
    pub(crate) async fn locators_serving(&self, timeout: Duration) -> Option<bool> {
        use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
        let set = self.snapshot();
        if set.locators.is_empty() {
            return None;
        }
        let checks = set.locators.iter().map(|peer| async move {
            peer.each_address(|channel| async move {
                let service = "bureau.v1.LocatorService".to_owned();
                let mut req = tonic::Request::new(HealthCheckRequest { service });
                req.set_timeout(timeout);
                let status = HealthClient::new(channel).check(req).await?.into_inner().status;
                Ok(status == ServingStatus::Serving as i32)
            })
            .await
            .unwrap_or(false)
        });
        let all = tokio::time::timeout(timeout, futures::future::join_all(checks)).await;
        Some(all.is_ok_and(|r| r.iter().all(|ok| *ok)))
    }
}
