//! The federation client: the members a node asks (from the signed directory, replaced as it
//! changes, or from `[[peers]]`), each with lazily connected mTLS channels whose certificate
//! must name the member, and a fan-out that asks them concurrently under one deadline. Late or
//! failing members are reported, never waited for.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tonic::Code;
use tonic_types::StatusExt;
use tracing::{debug, warn};

use crate::{
    domain::inquiry::{Inquiry, Purpose},
    domain::protection::{Change, FROZEN_REASON},
    domain::record::CreditRecord,
    net::directory::{Directory, Status},
    net::tls::{Revocation, TlsError, TlsMaterial},
    wire::convert,
    wire::pb::bureau::v1 as pb,
};

use crate::net::peer::Connector;
pub(super) use crate::net::peer::Peer;
pub(crate) use crate::net::peer_error::{PeerError, Refusal, RefusalReason};

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
    /// The person's hard inquiries are counted at the locator: peers return records only.
    pub records_only: bool,
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

/// Who the node asks, as one snapshot: replaced whole when the directory changes.
#[derive(Default)]
pub(super) struct PeerSet {
    /// The members it asks: every active one but itself (or the configured `[[peers]]`).
    pub(super) members: Vec<Arc<Peer>>,
    /// The directory in force; `None` for a static `[[peers]]` federation.
    pub(super) directory: Option<Arc<Directory>>,
    /// The locator's nodes, by shard id.
    pub(super) locators: Vec<Arc<Peer>>,
    /// Where each member is in `members`, so a score's holders and a caller's standing are
    /// found without walking a federation of thousands.
    position: HashMap<String, usize>,
    /// What the directory says of each institution it names.
    listed: HashMap<String, Standing>,
}

impl PeerSet {
    /// The set of `members` (and `locators`) under `directory`, indexed.
    fn new(members: Vec<Arc<Peer>>, directory: Option<Arc<Directory>>, locators: Vec<Arc<Peer>>) -> Self {
        let position = members.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
        let mut listed = HashMap::new();
        if let Some(dir) = &directory {
            for l in &dir.locators {
                listed.insert(l.id.clone(), Standing::Locator);
            }
            for m in &dir.members {
                let standing = if m.status == Status::Active { Standing::Member } else { Standing::Suspended };
                listed.insert(m.id.clone(), standing);
            }
        }
        Self { members, directory, locators, position, listed }
    }
}

/// What the directory says of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// No directory: any node the authority licensed (a static `[[peers]]` federation).
    Licensed,
    /// An active member.
    Member,
    /// One of the locator's nodes.
    Locator,
    /// Not in the directory.
    NotListed,
    /// Listed, suspended.
    Suspended,
}

/// The node's peers, each with its own reused channels: from `[[peers]]`, or from the signed
/// directory and replaced as it changes.
pub(crate) struct Peers {
    me: String,
    connector: Connector,
    set: RwLock<Arc<PeerSet>>,
}

impl Peers {
    /// The configured `[[peers]]`; nothing connects until the first query.
    pub(crate) fn new(
        configs: &[PeerConfig],
        material: &TlsMaterial,
        federation: &str,
        max_message: usize,
        revocation: Arc<Revocation>,
    ) -> Result<Self, TlsError> {
        let peers = Self::none("", material, federation, max_message, revocation);
        let mut members = Vec::with_capacity(configs.len());
        for p in configs {
            let addresses: Vec<String> = p.all_addresses().map(str::to_owned).collect();
            members.push(Arc::new(peers.connector.peer(&p.id, &addresses)?));
        }
        *peers.set.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(PeerSet::new(members, None, Vec::new()));
        Ok(peers)
    }

    /// The members `directory` lists for node `me`; [`Peers::adopt`] follows later editions.
    pub(crate) fn from_directory(
        directory: Arc<Directory>,
        me: &str,
        material: &TlsMaterial,
        federation: &str,
        max_message: usize,
        revocation: Arc<Revocation>,
    ) -> Result<Self, TlsError> {
        let peers = Self::none(me, material, federation, max_message, revocation);
        peers.adopt(directory)?;
        Ok(peers)
    }

    /// Node `me`'s client with nobody to ask yet.
    fn none(
        me: &str,
        material: &TlsMaterial,
        federation: &str,
        max_message: usize,
        revocation: Arc<Revocation>,
    ) -> Self {
        let connector =
            Connector { material: material.clone(), federation: federation.to_owned(), max_message, revocation };
        Self { me: me.to_owned(), connector, set: RwLock::new(Arc::default()) }
    }

    /// Puts `directory` in force: active members but this node are asked from now on, a member
    /// whose addresses did not change keeps its channels, calls in flight finish as they were.
    pub(crate) fn adopt(&self, directory: Arc<Directory>) -> Result<(), TlsError> {
        let old = self.snapshot();
        let reuse = |id: &str, addresses: &[String], from: &[Arc<Peer>]| -> Result<Arc<Peer>, TlsError> {
            match from.iter().find(|p| p.id == id && p.addresses == addresses) {
                Some(p) => Ok(p.clone()),
                None => Ok(Arc::new(self.connector.peer(id, addresses)?)),
            }
        };
        let mut members = Vec::new();
        for m in directory.members.iter().filter(|m| m.status == Status::Active && m.id != self.me) {
            members.push(reuse(&m.id, &m.addresses, &old.members)?);
        }
        let mut locators = Vec::new();
        for l in &directory.locators {
            // One node set per locator, however many prefixes it serves.
            if !locators.iter().any(|p: &Arc<Peer>| p.id == l.id) {
                locators.push(reuse(&l.id, &l.addresses, &old.locators)?);
            }
        }
        let set = PeerSet::new(members, Some(directory), locators);
        *self.set.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        Ok(())
    }

    /// The peers as they stand now.
    pub(super) fn snapshot(&self) -> Arc<PeerSet> {
        self.set.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The directory in force, if the node follows one.
    pub(crate) fn directory(&self) -> Option<Arc<Directory>> {
        self.snapshot().directory.clone()
    }

    /// What the directory says of institution `id`.
    pub(crate) fn standing(&self, id: &str) -> Standing {
        let set = self.snapshot();
        if set.directory.is_none() {
            return Standing::Licensed;
        }
        set.listed.get(id).copied().unwrap_or(Standing::NotListed)
    }

    /// Asks every member concurrently; returns when all have answered or `deadline` has passed,
    /// with one result per member in the directory's (or configuration's) order.
    pub(crate) async fn query_all(&self, q: &Query, deadline: Duration) -> Vec<PeerResult> {
        let set = self.snapshot();
        ask_each(&set.members, q, deadline).await
    }

    /// Asks the members among `ids` (any other id is skipped: not an active member), as
    /// [`Peers::query_all`] does.
    pub(crate) async fn query_some(&self, ids: &[String], q: &Query, deadline: Duration) -> Vec<PeerResult> {
        let set = self.snapshot();
        // In the directory's order, whatever order `ids` came in.
        let mut at: Vec<usize> = ids.iter().filter_map(|id| set.position.get(id).copied()).collect();
        at.sort_unstable();
        at.dedup();
        let chosen: Vec<Arc<Peer>> = at.into_iter().map(|i| set.members[i].clone()).collect();
        ask_each(&chosen, q, deadline).await
    }

    /// How many members the node could ask.
    pub(crate) fn member_count(&self) -> usize {
        self.snapshot().members.len()
    }

    /// Every member's institution id.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.snapshot().members.iter().map(|p| p.id.clone()).collect()
    }

    /// True when `id` is a member the node asks.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.snapshot().position.contains_key(id)
    }

    /// Delivers a notice to member `id` (its addresses in turn, moving on from an unreachable
    /// one) within `timeout`. [`PeerError::Unavailable`] for an id that is not a member.
    pub(crate) async fn deliver(
        &self,
        id: &str,
        notice: pb::Notice,
        timeout: Duration,
    ) -> Result<pb::NoticeReceipt, PeerError> {
        let set = self.snapshot();
        let Some(peer) = set.position.get(id).map(|&i| &set.members[i]) else {
            return Err(PeerError::from(tonic::Status::unavailable(format!("{id} is not a member this node asks"))));
        };
        let started = Instant::now();
        let delivery = peer.each_address(|channel| {
            let mut req = tonic::Request::new(notice.clone());
            req.set_timeout(timeout.saturating_sub(started.elapsed()));
            let mut client = peer.federation(channel);
            async move { client.deliver_notice(req).await }
        });
        match tokio::time::timeout(timeout, delivery).await {
            Ok(r) => r.map(tonic::Response::into_inner).map_err(PeerError::from),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("{id} did not answer in time")).into()),
        }
    }
}

/// Asks each of `peers` under one deadline; one result each, in order.
async fn ask_each(peers: &[Arc<Peer>], q: &Query, deadline: Duration) -> Vec<PeerResult> {
    let started = Instant::now();
    let answers = under_deadline(peers.iter().map(|p| ask(p, q, deadline)), deadline).await;
    peers.iter().zip(answers).map(|(p, a)| judge(p, q, a, started.elapsed(), deadline)).collect()
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
pub(super) type Answer = (Duration, Result<tonic::Response<pb::QueryRecordsResponse>, tonic::Status>);

/// Asks the peer under the one deadline: hedged over its replicas, moving on from an
/// unreachable address.
async fn ask(peer: &Peer, q: &Query, deadline: Duration) -> Answer {
    let started = Instant::now();
    let (hop, wall) = (q.trace.child(), std::time::SystemTime::now());
    let result = peer
        .hedged(|channel| {
            let mut req = tonic::Request::new(request(q));
            // The peer learns the deadline too, so it can drop work nobody will wait for.
            req.set_timeout(deadline.saturating_sub(started.elapsed()));
            if let Ok(v) = hop.header().parse() {
                req.metadata_mut().insert(super::trace::HEADER, v);
            }
            let mut client = peer.federation(channel);
            async move { client.query_records(req).await }
        })
        .await;
    super::otlp::record(
        "bureau.v1.FederationService/QueryRecords",
        super::otlp::Side::Client,
        &hop,
        wall,
        vec![
            opentelemetry::KeyValue::new("bureau.peer", peer.id.clone()),
            opentelemetry::KeyValue::new("bureau.query_id", q.query_id.clone()),
        ],
        result.as_ref().err().map(|s| format!("{:?}: {}", s.code(), s.message())),
    );
    (started.elapsed(), result)
}

/// The wire form of `q`.
pub(super) fn request(q: &Query) -> pb::QueryRecordsRequest {
    pb::QueryRecordsRequest {
        subject_id: q.subject_id.clone(),
        purpose: convert::purpose_to_pb(q.purpose) as i32,
        consent_reference: q.consent_reference.clone(),
        query_id: q.query_id.clone(),
        records_only: q.records_only,
    }
}

/// What a peer's answer (or its absence at the deadline) means for the score.
pub(super) fn judge(
    peer: &Peer,
    q: &Query,
    answer: Option<Answer>,
    waited: Duration,
    deadline: Duration,
) -> PeerResult {
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

    use super::{under_deadline, FrozenThere};
    use crate::net::peer_error::tests::status;

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
