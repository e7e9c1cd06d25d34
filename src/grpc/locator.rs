//! LocatorService: members register where they hold records, and look up who holds records
//! about a person. A lookup is a peer query like any other (purpose, consent, an inquiry
//! recorded and logged); its answer adds the holders.

use tonic::{Request, Response, Status};

use crate::{
    app::locator::{Lookup, Registration},
    grpc::{
        auth,
        error::ApiError,
        federation::{answer_to_pb, peer_query},
        node::Node,
    },
    wire::pb::bureau::v1::{self as pb, locator_service_server::LocatorService},
};

/// The LocatorService handlers.
pub(crate) struct LocatorApi {
    node: Node,
}

impl LocatorApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl LocatorService for LocatorApi {
    async fn register(&self, req: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        if let Err(e) = auth::require_member(&caller, &self.node.scorer.peers) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        let holdings = req.into_inner().holdings;
        // Only the subjects of this node's shards: a holding sent to the wrong shard would
        // never be found by a lookup.
        if let Some(dir) = self.node.scorer.peers.directory() {
            let me = self.node.institution.as_str();
            if let Some(h) = holdings.iter().find(|h| dir.locator_for(&h.subject_id).is_none_or(|l| l.id != me)) {
                let why = format!("{:?} is not in a shard this locator serves", h.subject_id);
                return Err(ApiError::invalid("holdings.subject_id", why).into());
            }
        }
        let batch = holdings
            .into_iter()
            .map(|h| Registration { subject_id: h.subject_id, holds: h.holds, version: h.version })
            .collect();
        match self.node.locator.register(&caller.id, batch).await {
            Ok(done) => Ok(Response::new(pb::RegisterResponse { applied: done.applied, stale: done.stale })),
            Err(e) => Err(super::log_refusal(&self.node, &caller, "", e.into()).await.into()),
        }
    }

    async fn locate(&self, req: Request<pb::QueryRecordsRequest>) -> Result<Response<pb::LocateResponse>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let subject = r.subject_id.clone();
        let located = async {
            auth::require_member(&caller, &self.node.scorer.peers)?;
            let q = peer_query(&caller, r);
            let Lookup { given, holders } = self.node.locator.lookup(&self.node.answers, &q).await?;
            // The hard inquiries recorded here go back whatever the caller asked for: every
            // federated query passed through the locator, so its list is the one a located score
            // counts (the members it names are asked for records only).
            let answer = answer_to_pb(&self.node, &q, given, false, &trace);
            Ok::<_, ApiError>(pb::LocateResponse { holders, answer: Some(answer) })
        };
        match located.await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
        }
    }
}
