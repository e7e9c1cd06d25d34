//! AdminService: a consistent backup of the node's store, streamed while the node serves to the
//! institution's applications its configuration names administrator; the purge on demand.

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    app::{BackupPart, StoreError},
    grpc::{
        auth,
        error::{ApiError, Reason},
        node::Node,
    },
    wire::pb::bureau::v1::{self as pb, admin_service_server::AdminService},
};

/// The AdminService handlers.
pub(crate) struct AdminApi {
    node: Node,
}

impl AdminApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    type BackupStream = ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn backup(&self, req: Request<pb::BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        if let Err(e) = auth::require_own_application(&caller, &self.node.institution) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        if !self.node.admin.is_administrator(&caller.app) {
            let e = ApiError::PermissionDenied {
                reason: Reason::NotAdministrator,
                message: format!(
                    "only the applications admin.applications names ({}) may take a backup; caller is {caller}",
                    self.node.admin.administrators().join(", ")
                ),
            };
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        let (mut parts, reading) = self.node.admin.backup(caller.to_string());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // The first part decides the answer: a backend that cannot back up fails the call.
        let first = match parts.recv().await {
            Some(p) => p,
            None => {
                let e = reading.await.map_err(ApiError::task_failed)?.err();
                return Err(ApiError::from(e.unwrap_or(StoreError::Closed)).into());
            }
        };
        tracing::info!(caller = %caller, "backup started");
        tokio::spawn(async move {
            let mut part = Some(first);
            loop {
                let p = match part.take() {
                    Some(p) => p,
                    None => match parts.recv().await {
                        Some(p) => p,
                        None => break,
                    },
                };
                let chunk = match p {
                    BackupPart::Head(h) => {
                        pb::BackupChunk { tree_size: h.size, root_hash: h.root.to_vec(), ..Default::default() }
                    }
                    BackupPart::Pairs(pairs) => pb::BackupChunk {
                        pairs: pairs.into_iter().map(|(key, value)| pb::BackupPair { key, value }).collect(),
                        ..Default::default()
                    },
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the caller went away; the store's export stops at its next send
                }
            }
            let outcome = match reading.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => ApiError::from(e),
                Err(e) => ApiError::task_failed(e),
            };
            let _ = tx.send(Err(outcome.into())).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn purge_expired(
        &self,
        req: Request<pb::PurgeExpiredRequest>,
    ) -> Result<Response<pb::PurgeExpiredResponse>, Status> {
        let caller = auth::caller(&req, &self.node.federation)?;
        if let Err(e) = auth::require_own_application(&caller, &self.node.institution) {
            return Err(super::log_refusal(&self.node, &caller, "", e).await.into());
        }
        let (records, inquiries) = self.node.admin.purge().await.map_err(ApiError::from)?;
        tracing::info!(caller = %caller, records, inquiries, "purge on demand");
        Ok(Response::new(pb::PurgeExpiredResponse {
            records_deleted: records as u32,
            inquiries_deleted: inquiries as u32,
        }))
    }
}
