//! RecordsService: furnishing, reading, correcting and deleting the node institution's own
//! records. The furnisher is always the caller's certificate's institution.

use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::{
    app::{
        furnish::{Candidate, Outcome, RecordResult},
        records::Corrected,
        StoreError,
    },
    domain::record::is_valid_record_id,
    domain::subject::is_valid_subject_id,
    grpc::auth,
    grpc::error::{ApiError, FieldViolation, Reason},
    grpc::node::Node,
    grpc::token::{self, Listing},
    wire::convert::{self, parse_record_name, parse_subject_name},
    wire::pb::bureau::v1::{self as pb, records_service_server::RecordsService},
};

/// Most per-record results a streaming call reports (rejected and ignored ones); counts always
/// cover every record.
const MAX_STREAM_RESULTS: usize = 10_000;
/// Most characters in a deletion note.
const MAX_NOTE_CHARS: usize = 500;

/// The RecordsService handlers.
pub(crate) struct RecordsApi {
    node: Node,
}

impl RecordsApi {
    /// Handlers over `node`.
    pub(crate) fn new(node: Node) -> Self {
        Self { node }
    }

    async fn authorise<T>(&self, req: &Request<T>) -> Result<String, ApiError> {
        let id = auth::caller(req, &self.node.federation)?;
        match auth::require_own_application(&id, &self.node.institution) {
            Ok(()) => Ok(id.id),
            Err(e) => Err(super::log_refusal(&self.node, &id, "", e).await),
        }
    }

    /// Checks a batch's size and converts and validates each record.
    fn candidates(&self, furnisher: &str, records: Vec<pb::CreditRecord>) -> Result<Vec<Candidate>, ApiError> {
        if records.len() > self.node.limits.max_batch_records {
            return Err(ApiError::invalid(
                "records",
                format!("at most {} records per request, got {}", self.node.limits.max_batch_records, records.len()),
            ));
        }
        let today = self.node.records.today();
        Ok(records
            .into_iter()
            .map(|r| {
                let id = r.record_id.clone();
                convert::record_from_pb(r, furnisher, today).map_err(|v| (id, v))
            })
            .collect())
    }
}

/// Waits for a spawned flush; a failed or lost flush fails the stream (nothing acknowledged).
async fn await_flush(f: tokio::task::JoinHandle<Result<(), StoreError>>) -> Result<(), ApiError> {
    f.await.map_err(ApiError::task_failed)?.map_err(ApiError::from)
}

fn result_to_pb(r: RecordResult) -> pb::FurnishResult {
    let (outcome, violations) = match r.outcome {
        Outcome::Created => (pb::FurnishOutcome::Created, vec![]),
        Outcome::Replaced => (pb::FurnishOutcome::Replaced, vec![]),
        Outcome::IgnoredStale => (pb::FurnishOutcome::IgnoredStale, vec![]),
        Outcome::Rejected(v) => (pb::FurnishOutcome::Rejected, v),
    };
    pb::FurnishResult {
        record_id: r.record_id,
        outcome: outcome as i32,
        stored_version: r.stored_version,
        violations: violations
            .into_iter()
            .map(|v| pb::FieldViolation { field: v.field, description: v.description })
            .collect(),
    }
}

/// Running totals of a furnishing call.
#[derive(Default)]
struct Tally {
    accepted: u32,
    ignored: u32,
    rejected: u32,
}

impl Tally {
    fn add(&mut self, r: &RecordResult) {
        match r.outcome {
            Outcome::Created | Outcome::Replaced => self.accepted += 1,
            Outcome::IgnoredStale => self.ignored += 1,
            Outcome::Rejected(_) => self.rejected += 1,
        }
    }
}

/// INVALID_ARGUMENT naming every violation of a batch whose every record was rejected.
fn all_rejected(results: &[RecordResult]) -> ApiError {
    let violations = results
        .iter()
        .enumerate()
        .flat_map(|(i, r)| match &r.outcome {
            Outcome::Rejected(v) => v
                .iter()
                .map(|v| FieldViolation {
                    field: format!("records[{i}].{}", v.field),
                    description: format!("record {:?}: {}", r.record_id, v.description),
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    ApiError::InvalidArgument { message: format!("all {} records were rejected", results.len()), violations }
}

fn parse_name(name: &str, furnisher: &str) -> Result<String, ApiError> {
    let (owner, record_id) = parse_record_name(name)
        .ok_or_else(|| ApiError::invalid("name", "must be institutions/{institution}/records/{record}"))?;
    if !is_valid_record_id(record_id) {
        return Err(ApiError::invalid("name", "record id must be 1 to 64 of [A-Za-z0-9._:-]"));
    }
    if owner != furnisher {
        return Err(ApiError::PermissionDenied {
            reason: Reason::NotOwnRecord,
            message: format!("{furnisher} may only read its own records, not {owner}'s"),
        });
    }
    Ok(record_id.to_owned())
}

#[tonic::async_trait]
impl RecordsService for RecordsApi {
    async fn furnish_records(
        &self,
        req: Request<pb::FurnishRecordsRequest>,
    ) -> Result<Response<pb::FurnishRecordsResponse>, Status> {
        let furnisher = self.authorise(&req).await?;
        let records = req.into_inner().records;
        if records.is_empty() {
            return Err(ApiError::invalid("records", "at least one record is required").into());
        }
        let candidates = self.candidates(&furnisher, records)?;
        let results = self.node.records.furnish(candidates).await.map_err(ApiError::from)?;
        let mut tally = Tally::default();
        results.iter().for_each(|r| tally.add(r));
        if tally.rejected as usize == results.len() {
            return Err(all_rejected(&results).into());
        }
        debug!(
            furnisher,
            accepted = tally.accepted,
            ignored = tally.ignored,
            rejected = tally.rejected,
            "records furnished"
        );
        Ok(Response::new(pb::FurnishRecordsResponse {
            results: results.into_iter().map(result_to_pb).collect(),
            accepted_count: tally.accepted,
            ignored_count: tally.ignored,
            rejected_count: tally.rejected,
        }))
    }

    async fn stream_furnish_records(
        &self,
        req: Request<Streaming<pb::FurnishRecordsRequest>>,
    ) -> Result<Response<pb::FurnishRecordsResponse>, Status> {
        let furnisher = self.authorise(&req).await?;
        let mut stream = req.into_inner();
        let mut tally = Tally::default();
        let mut reported = Vec::new();
        // A pipeline of three: batch N+2 is received and validated while batch N+1 is applied
        // and batch N flushed (a database backend applies durably: its flush is free). Batches
        // are applied one after another, in order. Nothing is acknowledged until the last
        // flush, after the last batch, is done.
        let mut applying: Option<tokio::task::JoinHandle<Result<Vec<RecordResult>, ApiError>>> = None;
        let mut flushing: Option<tokio::task::JoinHandle<Result<(), StoreError>>> = None;
        let mut applied = |results: Vec<RecordResult>| {
            for r in results {
                tally.add(&r);
                if !matches!(r.outcome, Outcome::Created | Outcome::Replaced) && reported.len() < MAX_STREAM_RESULTS {
                    reported.push(result_to_pb(r));
                }
            }
        };
        loop {
            let batch = match stream.message().await {
                Ok(Some(batch)) => Some(batch),
                Ok(None) => None,
                Err(s) => return Err(ApiError::inbound(s)),
            };
            let candidates = batch.map(|b| self.candidates(&furnisher, b.records)).transpose()?;
            if let Some(a) = applying.take() {
                applied(a.await.map_err(ApiError::task_failed)??);
                if let Some(f) = flushing.take() {
                    await_flush(f).await?;
                }
                let records = self.node.records.clone();
                flushing = Some(tokio::spawn(async move { records.sync().await }));
            }
            let Some(candidates) = candidates else { break };
            let records = self.node.records.clone();
            applying = Some(tokio::spawn(async move { Ok(records.furnish_unsynced(candidates).await?) }));
        }
        if let Some(f) = flushing.take() {
            await_flush(f).await?;
        }
        info!(
            furnisher,
            accepted = tally.accepted,
            ignored = tally.ignored,
            rejected = tally.rejected,
            "record stream furnished"
        );
        Ok(Response::new(pb::FurnishRecordsResponse {
            results: reported,
            accepted_count: tally.accepted,
            ignored_count: tally.ignored,
            rejected_count: tally.rejected,
        }))
    }

    async fn get_record(&self, req: Request<pb::GetRecordRequest>) -> Result<Response<pb::CreditRecord>, Status> {
        let furnisher = self.authorise(&req).await?;
        let name = req.into_inner().name;
        let record_id = parse_name(&name, &furnisher)?;
        match self.node.records.get(&furnisher, &record_id).await.map_err(ApiError::from)? {
            Some(s) => Ok(Response::new(convert::record_to_pb(&s.record, s.updated))),
            None => Err(ApiError::NotFound(format!("{name} not found")).into()),
        }
    }

    async fn list_records(
        &self,
        req: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        self.authorise(&req).await?;
        let req = req.into_inner();
        let subject = parse_subject_name(&req.parent)
            .filter(|s| is_valid_subject_id(s))
            .ok_or_else(|| ApiError::invalid("parent", "must be subjects/{subject_id} with a 64-hex subject id"))?;
        let size = super::page_size(req.page_size, 100, 1000)?;
        let after = match token::decode(&req.page_token, Listing::Records, &req.parent)? {
            Some(b) => Some(token::parse_record_cursor(&b)?),
            None => None,
        };
        let page = self.node.records.list(subject, after, size).await.map_err(ApiError::from)?;
        let records = page.items.iter().map(|s| convert::record_to_pb(&s.record, s.updated)).collect();
        Ok(Response::new(pb::ListRecordsResponse {
            records,
            next_page_token: page
                .next
                .map(|c| token::encode(Listing::Records, &req.parent, &token::record_cursor(&c)))
                .unwrap_or_default(),
        }))
    }

    async fn correct_record(
        &self,
        req: Request<pb::CorrectRecordRequest>,
    ) -> Result<Response<pb::CorrectRecordResponse>, Status> {
        let furnisher = self.authorise(&req).await?;
        let pb_record = req.into_inner().record.ok_or_else(|| ApiError::invalid("record", "is required"))?;
        let record_id = pb_record.record_id.clone();
        let record = convert::record_from_pb(pb_record, &furnisher, self.node.records.today()).map_err(|v| {
            ApiError::InvalidArgument {
                message: format!("record {record_id:?} is invalid"),
                violations: v
                    .into_iter()
                    .map(|v| FieldViolation {
                        field: format!("record.{}", v.field),
                        description: format!("record {record_id:?}: {}", v.description),
                    })
                    .collect(),
            }
        })?;
        let (outcome, version, stored) = match self.node.records.correct(record).await.map_err(ApiError::from)? {
            Corrected::NotFound => {
                return Err(
                    ApiError::NotFound(format!("{} not found", convert::record_name(&furnisher, &record_id))).into()
                )
            }
            Corrected::SubjectMismatch(v) => {
                return Err(ApiError::invalid(format!("record.{}", v.field), v.description).into())
            }
            Corrected::Stored { replaced: false, version, stored } => {
                (pb::FurnishOutcome::IgnoredStale, version, stored)
            }
            Corrected::Stored { replaced: true, version, stored } => (pb::FurnishOutcome::Replaced, version, stored),
        };
        info!(furnisher, record_id, version, outcome = ?outcome, "record corrected");
        Ok(Response::new(pb::CorrectRecordResponse {
            outcome: outcome as i32,
            record: stored.map(|s| convert::record_to_pb(&s.record, s.updated)),
        }))
    }

    async fn delete_record(
        &self,
        req: Request<pb::DeleteRecordRequest>,
    ) -> Result<Response<pb::DeleteRecordResponse>, Status> {
        let furnisher = self.authorise(&req).await?;
        let req = req.into_inner();
        let record_id = parse_name(&req.name, &furnisher)?;
        let reason = match pb::DeletionReason::try_from(req.reason) {
            Ok(pb::DeletionReason::Unspecified) | Err(_) => {
                return Err(ApiError::invalid("reason", "a known DeletionReason is required").into())
            }
            Ok(r) => r.as_str_name(),
        };
        if req.note.chars().count() > MAX_NOTE_CHARS || req.note.chars().any(char::is_control) {
            return Err(ApiError::invalid("note", format!("at most {MAX_NOTE_CHARS} printable characters")).into());
        }
        match self.node.records.delete(&furnisher, &record_id, reason, &req.note).await.map_err(ApiError::from)? {
            None => Err(ApiError::NotFound(format!("{} not found", req.name)).into()),
            Some(version) => {
                info!(furnisher, record_id, version, reason, "record deleted");
                Ok(Response::new(pb::DeleteRecordResponse { deleted_version: version }))
            }
        }
    }
}
