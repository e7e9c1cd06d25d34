//! DisputesService: an institution's applications file disputes for their customers, read
//! them, and resolve those against the institution's own records.

use tonic::{Request, Response, Status};

use crate::{
    app::disputes::Filing,
    grpc::{
        auth,
        error::ApiError,
        node::Node,
        token::{self, Listing},
    },
    wire::convert,
    wire::pb::bureau::v1::{self as pb, disputes_service_server::DisputesService},
};

/// The DisputesService handlers.
pub(crate) struct DisputesApi {
    node: Node,
}

impl DisputesApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }

    /// Only the node's own institution's applications.
    async fn authorise<T>(&self, req: &Request<T>, subject: &str) -> Result<(), Status> {
        let caller = auth::caller(req, &self.node.federation)?;
        if let Err(e) = auth::require_own_application(&caller, &self.node.institution) {
            return Err(super::log_refusal(&self.node, &caller, subject, e).await.into());
        }
        Ok(())
    }

    fn to_pb(&self, d: &crate::domain::dispute::Dispute) -> pb::Dispute {
        convert::dispute_to_pb(d, self.node.life.clock.now())
    }
}

fn parse_name(name: &str) -> Result<(&str, &str), ApiError> {
    convert::parse_dispute_name(name)
        .filter(|(_, id)| crate::domain::dispute::is_valid_dispute_id(id))
        .ok_or_else(|| ApiError::invalid("name", "must be institutions/{filer}/disputes/{24-hex id}"))
}

#[tonic::async_trait]
impl DisputesService for DisputesApi {
    async fn file_dispute(&self, req: Request<pb::FileDisputeRequest>) -> Result<Response<pb::Dispute>, Status> {
        self.authorise(&req, &req.get_ref().subject_id).await?;
        let r = req.into_inner();
        let (furnisher, record_id) = convert::parse_record_name(&r.record)
            .ok_or_else(|| ApiError::invalid("record", "must be institutions/{furnisher}/records/{record_id}"))?;
        let filing = Filing {
            furnisher: furnisher.to_owned(),
            record_id: record_id.to_owned(),
            subject_id: r.subject_id.clone(),
            reason: convert::dispute_reason_from_pb(r.reason),
            statement: r.statement,
            consent_reference: r.consent_reference,
        };
        let d = self.node.disputes.file(filing).await.map_err(ApiError::from)?;
        Ok(Response::new(self.to_pb(&d)))
    }

    async fn get_dispute(&self, req: Request<pb::GetDisputeRequest>) -> Result<Response<pb::Dispute>, Status> {
        self.authorise(&req, "").await?;
        let name = req.into_inner().name;
        let (filer, id) = parse_name(&name)?;
        let d = self.node.disputes.get(filer, id).await.map_err(ApiError::from)?;
        Ok(Response::new(self.to_pb(&d)))
    }

    async fn list_disputes(
        &self,
        req: Request<pb::ListDisputesRequest>,
    ) -> Result<Response<pb::ListDisputesResponse>, Status> {
        self.authorise(&req, "").await?;
        let r = req.into_inner();
        let size = super::page_size(r.page_size, 100, 1000)?;
        let parent = if r.include_resolved { "all" } else { "open" };
        let after = match token::decode(&r.page_token, Listing::Disputes, parent)? {
            Some(b) => {
                Some(String::from_utf8(b).map_err(|_| ApiError::invalid("page_token", "is not one this node made"))?)
            }
            None => None,
        };
        let (disputes, next) =
            self.node.disputes.list_against_us(r.include_resolved, after, size).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListDisputesResponse {
            disputes: disputes.iter().map(|d| self.to_pb(d)).collect(),
            next_page_token: next.map(|c| token::encode(Listing::Disputes, parent, c.as_bytes())).unwrap_or_default(),
        }))
    }

    async fn resolve_dispute(&self, req: Request<pb::ResolveDisputeRequest>) -> Result<Response<pb::Dispute>, Status> {
        self.authorise(&req, "").await?;
        let r = req.into_inner();
        let (filer, id) = parse_name(&r.name)?;
        let resolution = convert::resolution_from_pb(r.resolution)
            .ok_or_else(|| ApiError::invalid("resolution", "must be VERIFIED, CORRECTED or DELETED"))?;
        let corrected = match r.corrected_record {
            Some(rec) => {
                Some(convert::record_from_pb(rec, &self.node.institution, self.node.records.today()).map_err(|v| {
                    ApiError::InvalidArgument {
                        message: "invalid corrected_record".into(),
                        violations: v
                            .into_iter()
                            .map(|v| crate::grpc::error::FieldViolation {
                                field: format!("corrected_record.{}", v.field),
                                description: v.description,
                            })
                            .collect(),
                    }
                })?)
            }
            None => None,
        };
        let d = self.node.disputes.resolve(filer, id, resolution, corrected).await.map_err(ApiError::from)?;
        Ok(Response::new(self.to_pb(&d)))
    }
}
