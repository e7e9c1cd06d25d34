//! The federation client: one lazily connected mTLS channel per configured peer (the peer's
//! certificate must name its configured id), and a fan-out that asks every peer concurrently
//! under one deadline. Late or failing peers are reported, never waited for.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tonic::{transport::Channel, Code};
use tracing::{debug, warn};

use crate::{
    domain::inquiry::{Inquiry, Purpose},
    domain::record::CreditRecord,
    net::tls::{self, TlsError, TlsMaterial},
    pb::bureau::v1::{self as pb, federation_service_client::FederationServiceClient},
    wire::convert,
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
}

/// `[[peers]]` in a node's configuration: one other institution's node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's institution id; its certificate must name it.
    pub id: String,
    /// `host:port` of the peer's node.
    pub address: String,
}

struct Peer {
    id: String,
    client: FederationServiceClient<Channel>,
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
    ) -> Result<Self, TlsError> {
        let mut peers = Vec::with_capacity(configs.len());
        for p in configs {
            let cfg = material.client_config(federation, Some(&p.id))?;
            let channel = tls::channel(&p.address, cfg, Duration::from_secs(2)).map_err(|e| {
                TlsError::Rustls(rustls::Error::General(format!("peer {} address {}: {e}", p.id, p.address)))
            })?;
            let client = FederationServiceClient::new(channel).max_decoding_message_size(max_message);
            peers.push(Peer { id: p.id.clone(), client });
        }
        Ok(Self { peers })
    }

    /// Asks every peer concurrently; returns when all have answered or `deadline` has passed,
    /// with one result per peer in configuration order.
    pub(crate) async fn query_all(&self, q: &Query, deadline: Duration) -> Vec<PeerResult> {
        let until = tokio::time::Instant::now() + deadline;
        let calls = self.peers.iter().map(|p| ask(p, q, until, deadline));
        futures::future::join_all(calls).await
    }
}

async fn ask(peer: &Peer, q: &Query, until: tokio::time::Instant, deadline: Duration) -> PeerResult {
    let started = Instant::now();
    let mut req = tonic::Request::new(pb::QueryRecordsRequest {
        subject_id: q.subject_id.clone(),
        purpose: convert::purpose_to_pb(q.purpose) as i32,
        consent_reference: q.consent_reference.clone(),
        query_id: q.query_id.clone(),
    });
    // The peer learns the deadline too, so it can drop work nobody will wait for.
    req.set_timeout(deadline);
    let mut client = peer.client.clone();
    let result = tokio::time::timeout_at(until, client.query_records(req)).await;
    let latency = started.elapsed();
    let mut out = PeerResult {
        peer: peer.id.clone(),
        outcome: PeerOutcome::Answered,
        records: Vec::new(),
        records_returned: 0,
        inquiries: Vec::new(),
        latency,
        error: None,
    };
    match result {
        Err(_) => {
            out.outcome = PeerOutcome::TimedOut;
            out.error = Some(format!("no answer within {} ms", deadline.as_millis()));
        }
        Ok(Err(status)) => {
            out.outcome = match status.code() {
                Code::DeadlineExceeded | Code::Cancelled => PeerOutcome::TimedOut,
                Code::Unavailable | Code::Unknown => PeerOutcome::Unreachable,
                _ => PeerOutcome::Refused,
            };
            out.error = Some(format!("{:?}: {}", status.code(), status.message()));
        }
        Ok(Ok(resp)) => {
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
        }
    }
    debug!(peer = %out.peer, outcome = ?out.outcome, records = out.records.len(), latency_us = latency.as_micros() as u64, "peer query");
    out
}
