//! AttestationService: a policy's outcome as a signed, logged statement for a verifier, with no
//! score in it.

use tonic::{Request, Response, Status};

use crate::{
    app::attest::AttestRequest,
    grpc::{auth, error::ApiError, node::Node},
    net::identity::Identity,
    net::trace::TraceContext,
    wire::attestation::bundle_to_pb,
    wire::pb::bureau::v1::{self as pb, attestation_service_server::AttestationService},
};

/// The AttestationService handlers.
pub(crate) struct AttestApi {
    node: Node,
}

impl AttestApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl AttestationService for AttestApi {
    async fn attest(&self, req: Request<pb::AttestRequest>) -> Result<Response<pb::Attestation>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        let trace = super::trace_of(&req);
        let r = req.into_inner();
        let subject = r.subject_id.clone();
        match self.issue(&caller, r, trace).await {
            Ok(a) => Ok(Response::new(a)),
            Err(e) => Err(super::log_refusal(&self.node, &caller, &subject, e).await.into()),
        }
    }
}

impl AttestApi {
    async fn issue(
        &self,
        caller: &Identity,
        r: pb::AttestRequest,
        trace: TraceContext,
    ) -> Result<pb::Attestation, ApiError> {
        auth::require_own_application(caller, &self.node.institution)?;
        let req = AttestRequest {
            policy: &r.policy,
            subject: &r.subject_id,
            consent: &r.consent_reference,
            verifier: &r.verifier,
            nonce: &r.nonce,
        };
        Ok(bundle_to_pb(self.node.attestations.attest(req, trace).await?))
    }
}
