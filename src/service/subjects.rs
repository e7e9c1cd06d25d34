//! SubjectsService: who looked at a subject, when and why — for the subject's own institution,
//! from what this node recorded.

use tonic::{Request, Response, Status};

use crate::{
    auth,
    convert::{self, parse_subject_name},
    error::ApiError,
    node::Node,
    pb::bureau::v1::{self as pb, subjects_service_server::SubjectsService},
    subject::is_valid_subject_id,
};

/// The SubjectsService handlers.
pub struct SubjectsApi {
    node: Node,
}

impl SubjectsApi {
    /// Handlers over `node`.
    pub fn new(node: Node) -> Self {
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
        if let Err(e) = auth::require_own_institution(&caller, &self.node.institution) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        let r = req.into_inner();
        let subject = parse_subject_name(&r.parent)
            .filter(|s| is_valid_subject_id(s))
            .ok_or_else(|| ApiError::invalid("parent", "must be subjects/{subject_id} with a 64-hex subject id"))?;
        let size = super::page_size(r.page_size, 100, 1000)?;
        let skip: usize = match r.page_token.as_str() {
            "" => 0,
            t => t.parse().map_err(|_| ApiError::invalid("page_token", "is not a token from a previous page"))?,
        };
        let mut inquiries = self.node.store.subject_inquiries(subject, skip, size + 1).map_err(ApiError::from)?;
        let more = inquiries.len() > size;
        inquiries.truncate(size);
        Ok(Response::new(pb::ListSubjectInquiriesResponse {
            inquiries: inquiries.iter().map(convert::inquiry_to_pb).collect(),
            next_page_token: if more { (skip + size).to_string() } else { String::new() },
        }))
    }
}
