//! SubjectsService: who looked at a subject, when and why — for the subject's own institution,
//! from what this node recorded.

use tonic::{Request, Response, Status};

use crate::{
    domain::subject::is_valid_subject_id,
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

#[tonic::async_trait]
impl SubjectsService for SubjectsApi {
    async fn list_subject_inquiries(
        &self,
        req: Request<pb::ListSubjectInquiriesRequest>,
    ) -> Result<Response<pb::ListSubjectInquiriesResponse>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        if let Err(e) = auth::require_own_application(&caller, &self.node.institution) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        let r = req.into_inner();
        let subject = parse_subject_name(&r.parent)
            .filter(|s| is_valid_subject_id(s))
            .ok_or_else(|| ApiError::invalid("parent", "must be subjects/{subject_id} with a 64-hex subject id"))?;
        let size = super::page_size(r.page_size, 100, 1000)?;
        let before = match token::decode(&r.page_token, Listing::Inquiries, &r.parent)? {
            Some(b) => Some(token::parse_inquiry_cursor(&b)?),
            None => None,
        };
        let page = self.node.store.subject_inquiries(subject, before, size).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSubjectInquiriesResponse {
            inquiries: self
                .node
                .life
                .live_inquiries(page.items, self.node.life.clock.now())
                .iter()
                .map(convert::inquiry_to_pb)
                .collect(),
            next_page_token: page
                .next
                .map(|c| token::encode(Listing::Inquiries, &r.parent, &token::inquiry_cursor(&c)))
                .unwrap_or_default(),
        }))
    }
}
