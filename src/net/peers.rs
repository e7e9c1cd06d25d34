//! The federation client: one lazily connected mTLS channel per configured peer (the peer's
//! certificate must name its configured id), and a fan-out that asks every peer concurrently
//! under one deadline. Late or failing peers are reported, never waited for.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tonic::{transport::Channel, Code};
use tonic_types::StatusExt;
use tracing::{debug, warn};

use crate::{
    domain::inquiry::{Inquiry, Purpose},
    domain::protection::{Change, FROZEN_REASON},
    domain::record::CreditRecord,
    net::tls::{self, Revocation, TlsError, TlsMaterial},
    wire::convert,
    wire::pb::bureau::v1::{self as pb, federation_service_client::FederationServiceClient},
};

/// How a peer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerOutcome {
    /// It answered in time.
    Answered,
    /// It did not answer before the deadline.
    TimedOut,
    /// It could not be reached or did not prove its identity.
    Unreachable,
    /// It refused the query.
    Refused,
}

impl PeerOutcome {
    /// The outcome's name in log entries and metric labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::TimedOut => "timed_out",
            Self::Unreachable => "unreachable",
            Self::Refused => "refused",
        }
    }
}

/// One peer's part in a fan-out.
#[derive(Debug, Clone)]
pub(crate) struct PeerResult {
    /// The peer's institution id.
    pub peer: String,
    /// How it answered.
    pub outcome: PeerOutcome,
    /// The records it returned (only those it furnished itself and that are well-formed).
    pub records: Vec<CreditRecord>,
    /// How many records it returned (kept when `records` is moved out for merging).
    pub records_returned: usize,
    /// The inquiries it returned.
    pub inquiries: Vec<Inquiry>,
    /// Time to the answer or failure.
    pub latency: Duration,
    /// The error, when it did not answer.
    pub error: Option<String>,
    /// The peer holds a fraud alert on the subject.
    pub fraud_alert: bool,
    /// For subject requests: the inquiries it returned with their inclusion proofs.
    pub proven: Vec<pb::Inquiry>,
    /// For subject requests: its signed checkpoint, which the proofs are against.
    pub checkpoint: Option<pb::Checkpoint>,
    /// It refused because a security freeze stands there (`SUBJECT_FROZEN`): a hard inquiry
    /// fails as a whole, and the scoring node adopts the freeze.
    pub frozen: Option<FrozenThere>,
}

/// A peer's refusal of a hard inquiry for a freeze, with the freeze as the peer sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrozenThere {
    /// The freeze's latest change at the peer, read from the refusal's `ErrorInfo.metadata`;
    /// `None` when the peer sent none or a malformed one (the refusal still stands). Nothing
    /// here is checked against a clock yet: the adopting node does that.
    pub change: Option<Change>,
}

impl FrozenThere {
    /// The freeze a status carries, when it is a `SUBJECT_FROZEN` refusal.
    fn of(status: &tonic::Status) -> Option<Self> {
        if status.code() != Code::FailedPrecondition {
            return None;
        }
        let info = status.get_details_error_info().filter(|i| i.reason == FROZEN_REASON)?;
        let change = Change::from_metadata(|k| info.metadata.get(k).cloned())
            .inspect_err(|(key, why)| warn!(key, why, "a peer's freeze refusal carries no readable freeze"))
            .ok();
        Some(Self { change })
    }
}

/// What to ask every peer.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// The subject's pseudonym.
    pub subject_id: String,
    /// The purpose.
    pub purpose: Purpose,
    /// The consent reference.
    pub consent_reference: String,
    /// The federation-wide query id.
    pub query_id: String,
    /// The trace this query belongs to; each peer gets a child span of it.
    pub trace: super::trace::TraceContext,
}

/// `[[peers]]` in a node's configuration: one other institution's node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's institution id; its certificate must name it.
    pub id: String,
    /// `host:port` of the peer's node.
    pub address: String,
    /// Further `host:port`s of the same institution's nodes (replicas on one database). Queries
    /// start at each address in turn, and move to the next when one cannot be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

impl PeerConfig {
    /// One node of institution `id` at `address`.
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Self {
        Self { id: id.into(), address: address.into(), addresses: Vec::new() }
    }

    /// Every address of the peer, `address` first.
    pub fn all_addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.address.as_str()).chain(self.addresses.iter().map(String::as_str))
    }
}

struct Peer {
    id: String,
    /// One client per address of the peer.
    clients: Vec<FederationServiceClient<Channel>>,
    /// Where the next query starts (round robin over the addresses).
    next: std::sync::atomic::AtomicUsize,
}

/// The configured peers, each with its own reused channel.
pub(crate) struct Peers {
    peers: Vec<Peer>,
}

impl Peers {
    /// One lazy channel per peer; nothing connects until the first query.
    pub(crate) fn new(
        configs: &[PeerConfig],
        material: &TlsMaterial,
        federation: &str,
        max_message: usize,
        revocation: Arc<Revocation>,
    ) -> Result<Self, TlsError> {
        let mut peers = Vec::with_capacity(configs.len());
        for p in configs {
            let cfg = material.client_config_with(federation, Some(&p.id), revocation.clone())?;
            let mut clients = Vec::new();
            for address in p.all_addresses() {
                let channel =
                    tls::channel_tracked(address, cfg.clone(), Duration::from_secs(2), Some(revocation.clone()))
                        .map_err(|e| {
                            TlsError::Rustls(rustls::Error::General(format!("peer {} address {address}: {e}", p.id)))
                        })?;
                clients.push(FederationServiceClient::new(channel).max_decoding_message_size(max_message));
            }
            peers.push(Peer { id: p.id.clone(), clients, next: Default::default() });
        }
        Ok(Self { peers })
    }

    /// Asks every peer concurrently; returns when all have answered or `deadline` has passed,
    /// with one result per peer in configuration order.
    pub(crate) async fn query_all(&self, q: &Query, deadline: Duration) -> Vec<PeerResult> {
        let started = Instant::now();
        let calls = self.peers.iter().map(|p| ask(p, q, deadline));
        let answers = under_deadline(calls, deadline).await;
        self.peers.iter().zip(answers).map(|(p, a)| judge(p, q, a, started.elapsed(), deadline)).collect()
    }
}

impl Peers {
    /// Every configured peer's institution id.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.id.clone()).collect()
    }

    /// True when `id` is a configured peer.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.peers.iter().any(|p| p.id == id)
    }

    /// Delivers a notice to peer `id` (its addresses in turn, moving on from an unreachable
    /// one) within `timeout`. [`PeerError::Unavailable`] for a peer that is not configured.
    pub(crate) async fn deliver(
        &self,
        id: &str,
        notice: pb::Notice,
        timeout: Duration,
    ) -> Result<pb::NoticeReceipt, PeerError> {
        let Some(peer) = self.peers.iter().find(|p| p.id == id) else {
            return Err(PeerError::from(tonic::Status::unavailable(format!("{id} is not a configured peer"))));
        };
        let started = Instant::now();
        let delivery = peer.each_address(|mut client| {
            let mut req = tonic::Request::new(notice.clone());
            req.set_timeout(timeout.saturating_sub(started.elapsed()));
            async move { client.deliver_notice(req).await }
        });
        match tokio::time::timeout(timeout, delivery).await {
            Ok(r) => r.map(tonic::Response::into_inner).map_err(PeerError::from),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("{id} did not answer in time")).into()),
        }
    }
}

/// Why a peer did not take a call, as the use cases see it: a refusal it would give again, or
/// a failure worth retrying. Read from the gRPC status and its `google.rpc` details, so
/// callers match on a type, never on a message's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerError {
    /// The peer answered and refused: the same call would be refused again.
    #[error("{0}")]
    Refused(Refusal),
    /// Not now: unreachable, timed out, overloaded or failing (`code: message`).
    #[error("{0}")]
    Unavailable(String),
}

/// A peer's refusal: why (from the status code and its details) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Why, typed.
    pub reason: RefusalReason,
    /// The peer's message, for logs and for the caller.
    pub message: String,
}

/// Why a peer refused, after the gRPC code it answered with and its `google.rpc` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefusalReason {
    /// NOT_FOUND: it holds no such thing.
    NotFound,
    /// INVALID_ARGUMENT: the request's fields it named (`google.rpc.BadRequest`), maybe none.
    InvalidArgument {
        /// The request paths of the fields at fault.
        fields: Vec<String>,
    },
    /// PERMISSION_DENIED, with its `google.rpc.ErrorInfo` reason (e.g. `NOT_DISPUTE_PARTY`).
    PermissionDenied {
        /// The `ErrorInfo.reason`, empty when the peer sent none.
        reason: String,
    },
    /// FAILED_PRECONDITION, with its `google.rpc.ErrorInfo` reason (e.g. `SUBJECT_FROZEN`).
    FailedPrecondition {
        /// The `ErrorInfo.reason`, empty when the peer sent none.
        reason: String,
    },
}

impl RefusalReason {
    /// The gRPC code's name as logs and stored rejections have always spelled it
    /// (`NotFound`, `InvalidArgument`, …).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::InvalidArgument { .. } => "InvalidArgument",
            Self::PermissionDenied { .. } => "PermissionDenied",
            Self::FailedPrecondition { .. } => "FailedPrecondition",
        }
    }
}

impl Refusal {
    /// True when the peer named `field` as at fault.
    pub(crate) fn names_field(&self, field: &str) -> bool {
        matches!(&self.reason, RefusalReason::InvalidArgument { fields } if fields.iter().any(|f| f == field))
    }
}

impl std::fmt::Display for Refusal {
    /// `Code: message`, as a stored rejection reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.code(), self.message)
    }
}

impl From<tonic::Status> for PeerError {
    fn from(s: tonic::Status) -> Self {
        let info = || s.get_details_error_info().map(|i| i.reason).unwrap_or_default();
        let reason = match s.code() {
            Code::NotFound => RefusalReason::NotFound,
            Code::InvalidArgument => RefusalReason::InvalidArgument {
                fields: s
                    .get_details_bad_request()
                    .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                    .unwrap_or_default(),
            },
            Code::PermissionDenied => RefusalReason::PermissionDenied { reason: info() },
            Code::FailedPrecondition => RefusalReason::FailedPrecondition { reason: info() },
            code => return Self::Unavailable(format!("{code:?}: {}", s.message())),
        };
        Self::Refused(Refusal { reason, message: s.message().to_owned() })
    }
}

/// Runs `calls` concurrently under one deadline. Returns as soon as every call has finished
/// or the deadline has passed, whichever is first: each call's output, or `None` for a call
/// still running at the deadline (it is dropped, so nothing waits for it).
pub(crate) async fn under_deadline<T>(
    calls: impl IntoIterator<Item = impl std::future::Future<Output = T>>,
    deadline: Duration,
) -> Vec<Option<T>> {
    let until = tokio::time::Instant::now() + deadline;
    futures::future::join_all(calls.into_iter().map(|c| async move { tokio::time::timeout_at(until, c).await.ok() }))
        .await
}

/// One peer's answer, with its own latency.
type Answer = (Duration, Result<tonic::Response<pb::QueryRecordsResponse>, tonic::Status>);

impl Peer {
    /// Calls the peer at one of its addresses, starting at the next in turn; an address that
    /// cannot be reached (UNAVAILABLE) passes the call to the next. The caller bounds the time.
    async fn each_address<T, F, Fut>(&self, mut call: F) -> Result<T, tonic::Status>
    where
        F: FnMut(FederationServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let n = self.clients.len();
        let first = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut k = 0;
        loop {
            let result = call(self.clients[(first + k) % n].clone()).await;
            k += 1;
            match result {
                Err(s) if s.code() == Code::Unavailable && k < n => {
                    debug!(peer = %self.id, error = %s.message(), "peer address unreachable; trying the next");
                }
                result => return result,
            }
        }
    }
}

/// Asks the peer (one of its addresses, moving on from an unreachable one), under the one
/// deadline.
async fn ask(peer: &Peer, q: &Query, deadline: Duration) -> Answer {
    let started = Instant::now();
    let result = peer
        .each_address(|mut client| {
            let mut req = tonic::Request::new(pb::QueryRecordsRequest {
                subject_id: q.subject_id.clone(),
                purpose: convert::purpose_to_pb(q.purpose) as i32,
                consent_reference: q.consent_reference.clone(),
                query_id: q.query_id.clone(),
            });
            // The peer learns the deadline too, so it can drop work nobody will wait for.
            req.set_timeout(deadline.saturating_sub(started.elapsed()));
            if let Ok(v) = q.trace.child().header().parse() {
                req.metadata_mut().insert(super::trace::HEADER, v);
            }
            async move { client.query_records(req).await }
        })
        .await;
    (started.elapsed(), result)
}

/// What a peer's answer (or its absence at the deadline) means for the score.
fn judge(peer: &Peer, q: &Query, answer: Option<Answer>, waited: Duration, deadline: Duration) -> PeerResult {
    let (latency, result) = match answer {
        Some((latency, r)) => (latency, Some(r)),
        None => (waited, None),
    };
    let mut out = PeerResult {
        peer: peer.id.clone(),
        outcome: PeerOutcome::Answered,
        records: Vec::new(),
        records_returned: 0,
        inquiries: Vec::new(),
        latency,
        error: None,
        fraud_alert: false,
        proven: Vec::new(),
        checkpoint: None,
        frozen: None,
    };
    match result {
        None => {
            out.outcome = PeerOutcome::TimedOut;
            out.error = Some(format!("no answer within {} ms", deadline.as_millis()));
        }
        Some(Err(status)) => {
            out.outcome = match status.code() {
                Code::DeadlineExceeded | Code::Cancelled => PeerOutcome::TimedOut,
                Code::Unavailable | Code::Unknown => PeerOutcome::Unreachable,
                _ => PeerOutcome::Refused,
            };
            out.error = Some(format!("{:?}: {}", status.code(), status.message()));
            out.frozen = FrozenThere::of(&status);
        }
        Some(Ok(resp)) => {
            let resp = resp.into_inner();
            for r in resp.records {
                match convert::record_from_stored(r) {
                    // A peer may only vouch for its own records.
                    Ok(r) if r.furnisher == peer.id && r.subject_id == q.subject_id => out.records.push(r),
                    Ok(r) => {
                        warn!(peer = %peer.id, furnisher = %r.furnisher, "peer returned a record it did not furnish; dropped")
                    }
                    Err(e) => warn!(peer = %peer.id, error = %e, "peer returned a malformed record; dropped"),
                }
            }
            out.records_returned = out.records.len();
            out.inquiries = resp.inquiries.iter().filter_map(convert::inquiry_from_pb).collect();
            // A scoring answer's hard inquiries: query id and time, counted and de-duplicated.
            out.inquiries.extend(
                resp.hard_inquiries.iter().filter_map(|h| convert::hard_inquiry_from_pb(h, &peer.id, &q.subject_id)),
            );
            out.fraud_alert = resp.fraud_alert;
            if resp.checkpoint.is_some() {
                // Only what the peer itself recorded can be proven by its log.
                out.proven =
                    resp.inquiries.into_iter().filter(|i| i.responder == peer.id && !i.log_entry.is_empty()).collect();
                out.checkpoint = resp.checkpoint;
            }
        }
    }
    let outcome = out.outcome.as_str();
    metrics::counter!("bureau_peer_queries_total", "peer" => out.peer.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("bureau_peer_query_duration_seconds", "peer" => out.peer.clone()).record(latency.as_secs_f64());
    debug!(peer = %out.peer, outcome = ?out.outcome, records = out.records.len(), latency_us = latency.as_micros() as u64, "peer query");
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{sleep, Instant};
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};

    use super::{under_deadline, FrozenThere, PeerError, Refusal, RefusalReason};

    fn status(code: Code, message: &str, details: impl FnOnce(&mut ErrorDetails)) -> Status {
        let mut d = ErrorDetails::new();
        details(&mut d);
        Status::with_error_details(code, message, d)
    }

    /// A peer's refusal reads from its code and `google.rpc` details, not its message: the
    /// field it names, the `ErrorInfo` reason it gives; the code's name stays as logs and
    /// stored rejections have always spelt it.
    #[test]
    fn a_refusal_is_typed_from_the_code_and_its_details() {
        let mismatch = PeerError::from(status(Code::InvalidArgument, "no word of the field here", |d| {
            d.set_error_info("INVALID_ARGUMENT", "bureau.v1", std::collections::HashMap::new());
            d.add_bad_request_violation("subject_id", "does not match the disputed record's subject");
        }));
        let PeerError::Refused(r) = mismatch else { panic!("a refusal: {mismatch:?}") };
        assert!(r.names_field("subject_id"));
        assert!(!r.names_field("record"));
        assert_eq!(r.to_string(), "InvalidArgument: no word of the field here");

        let denied = PeerError::from(status(Code::PermissionDenied, "only b resolves it", |d| {
            d.set_error_info("NOT_DISPUTE_PARTY", "bureau.v1", std::collections::HashMap::new());
        }));
        let reason = RefusalReason::PermissionDenied { reason: "NOT_DISPUTE_PARTY".into() };
        assert_eq!(denied, PeerError::Refused(Refusal { reason, message: "only b resolves it".into() }));

        // A message that names a field is not a field violation.
        let bare = PeerError::from(Status::invalid_argument("invalid subject_id: whatever"));
        let PeerError::Refused(r) = bare else { panic!("a refusal") };
        assert!(!r.names_field("subject_id"), "read from the details, never from the text");
        assert_eq!(PeerError::from(Status::not_found("gone")).to_string(), "NotFound: gone");
        let frozen = PeerError::from(Status::failed_precondition("frozen"));
        assert!(matches!(frozen, PeerError::Refused(Refusal { reason: RefusalReason::FailedPrecondition { .. }, .. })));
    }

    /// A `SUBJECT_FROZEN` refusal is read as a freeze there, with the change it carries (none
    /// when it carries none); any other precondition is not.
    #[test]
    fn a_freeze_refusal_carries_its_change() {
        let mut p = crate::domain::protection::Protection::default();
        p.set(crate::domain::protection::Kind::SecurityFreeze, true, chrono::Utc::now(), "payapp");
        let change = p.freeze.unwrap();
        let with = status(Code::FailedPrecondition, "frozen", |d| {
            d.set_error_info(
                "SUBJECT_FROZEN",
                "bureau.v1",
                change.to_metadata().into_iter().collect::<std::collections::HashMap<_, _>>(),
            );
        });
        assert_eq!(FrozenThere::of(&with), Some(FrozenThere { change: Some(change) }));
        let bare = status(Code::FailedPrecondition, "frozen", |d| {
            d.set_error_info("SUBJECT_FROZEN", "bureau.v1", std::collections::HashMap::new());
        });
        assert_eq!(FrozenThere::of(&bare), Some(FrozenThere { change: None }));
        let consent = status(Code::FailedPrecondition, "consent", |d| {
            d.set_error_info("CONSENT_REQUIRED", "bureau.v1", std::collections::HashMap::new());
        });
        assert_eq!(FrozenThere::of(&consent), None);
        assert_eq!(FrozenThere::of(&Status::failed_precondition("SUBJECT_FROZEN")), None, "never from the text");
    }

    /// Anything but a refusal is worth trying again, and says which code it was.
    #[test]
    fn failures_are_unavailable_with_their_code() {
        for (code, name) in [
            (Code::Unavailable, "Unavailable"),
            (Code::DeadlineExceeded, "DeadlineExceeded"),
            (Code::Internal, "Internal"),
            (Code::ResourceExhausted, "ResourceExhausted"),
        ] {
            assert_eq!(PeerError::from(Status::new(code, "x")), PeerError::Unavailable(format!("{name}: x")));
        }
    }

    /// Late calls are cut off at the deadline and reported as such; the fan-out returns at the
    /// deadline, not when the slowest call would have finished. Paused time: exact, not timed.
    #[tokio::test(start_paused = true)]
    async fn a_late_call_is_cut_off_at_the_deadline_and_never_delays_the_rest() {
        let started = Instant::now();
        let calls = [100u64, 10_000, 0, 299].map(|ms| async move {
            sleep(Duration::from_millis(ms)).await;
            ms
        });
        let out = under_deadline(calls, Duration::from_millis(300)).await;
        assert_eq!(out, [Some(100), None, Some(0), Some(299)]);
        assert_eq!(started.elapsed(), Duration::from_millis(300), "returns exactly at the deadline");
    }

    /// When every call finishes in time, the fan-out returns with the slowest of them, without
    /// waiting for the deadline.
    #[tokio::test(start_paused = true)]
    async fn when_all_answer_in_time_the_deadline_is_not_waited_for() {
        let started = Instant::now();
        let calls = [20u64, 80, 5].map(|ms| async move {
            sleep(Duration::from_millis(ms)).await;
            ms
        });
        let out = under_deadline(calls, Duration::from_secs(1)).await;
        assert_eq!(out, [Some(20), Some(80), Some(5)]);
        assert_eq!(started.elapsed(), Duration::from_millis(80));
    }
}
