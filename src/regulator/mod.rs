//! The regulator's tools over nodes' audit logs: verify a node's log against its signed
//! checkpoint and against the checkpoint seen last time (so a node that rewrites, drops or
//! truncates history is caught), and reconcile nodes against each other (every outbound query
//! logged by one must be logged inbound by the other, and the other way round).
//!
//! Bounded: entries are streamed page by page and hashed into a [`StreamingRoot`] (O(log n)
//! hashes); only what reconciliation needs (query ids and parties) is kept, so verifying a log
//! of ten million entries needs memory independent of its length. A node that stops making
//! progress while being paged is an error after [`VerifyOptions::stall_timeout`].

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use tonic::transport::Channel;

mod receipts;
mod witnessed;
pub use receipts::{receipts, verify_receipt, Receipt};
pub use witnessed::{report_witnesses, witnessed, Witnessing};

use crate::{
    audit::{
        checkpoint::{parse_verifier_key, Checkpoint, CheckpointError},
        merkle::{self, Hash, StreamingRoot},
        Action, Entry,
    },
    wire::pb::bureau::v1::{self as pb, audit_service_client::AuditServiceClient},
};

/// Why a log could not be checked at all (as opposed to the problems a check finds).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegulatorError {
    /// The node refused or failed a call.
    #[error("{what}: {status}")]
    Rpc {
        /// The call.
        what: &'static str,
        /// The node's answer.
        status: tonic::Status,
    },
    /// The node stopped making progress while its entries were paged.
    #[error("{0}")]
    Stalled(String),
    /// A checkpoint key or signature.
    #[error("{0}")]
    Checkpoint(String),
    /// Reading or writing the regulator's own files.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

mod consents;
mod holdings;
pub use consents::{consents_by_hash, relationship_flags, ConsentUse};

fn rpc(what: &'static str) -> impl FnOnce(tonic::Status) -> RegulatorError {
    move |status| RegulatorError::Rpc { what, status }
}

/// Where a regulator finds a node's checkpoint verifier key.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A PKI directory holding `institution-<id>.log.pub` files.
    PkiDir(PathBuf),
    /// One verifier key string.
    Key(String),
}

impl KeySource {
    fn for_origin(&self, origin: &str) -> Result<String, RegulatorError> {
        match self {
            Self::Key(k) => Ok(k.clone()),
            Self::PkiDir(dir) => {
                let id = origin.rsplit('/').next().unwrap_or_default();
                let path = dir.join(format!("institution-{id}.log.pub"));
                fs::read_to_string(&path).map_err(|source| RegulatorError::File { path, source })
            }
        }
    }
}

/// How a verification pages and what it keeps.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Entries asked for per page.
    pub page_size: i32,
    /// Longest wait for one page, and longest time without new entries, before giving up.
    pub stall_timeout: Duration,
    /// Keep the query facts [`reconcile`] needs.
    pub keep_queries: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self { page_size: 1000, stall_timeout: Duration::from_secs(30), keep_queries: true }
    }
}

/// What reconciliation needs of a query entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFact {
    /// Outbound or inbound.
    pub action: Action,
    /// The federated query id.
    pub query_id: String,
    /// Who asked.
    pub actor: String,
    /// Who was asked.
    pub counterparty: String,
    /// How it ended.
    pub outcome: String,
    /// The purpose named.
    pub purpose: Option<crate::domain::inquiry::Purpose>,
    /// The consent as logged (`sha256:…`, `relationship`, or a legacy reference).
    pub consent: String,
    /// Records answered (inbound) or returned (outbound).
    pub record_count: u32,
}

/// A node's log as fetched and checked.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The checkpoint's root.
    pub root: Hash,
    /// The size of the checkpoint seen last time, if any.
    pub previous: Option<u64>,
    /// The query entries the checkpoint covers (when [`VerifyOptions::keep_queries`]), and the
    /// dispute deliveries (forwarded at the sender, received at the receiver), which reconcile
    /// the same way.
    pub queries: Vec<QueryFact>,
    /// The dispute entries the checkpoint covers (when [`VerifyOptions::keep_queries`]): states
    /// and deadlines, never statements (the log never holds them).
    pub disputes: Vec<Entry>,
    /// The consent tokens the node verified (when [`VerifyOptions::keep_queries`]): one entry
    /// per token and node, with the evidence hash.
    pub consents: Vec<Entry>,
    /// The record locator's registrations (when [`VerifyOptions::keep_queries`]): batches
    /// delivered, at a member; batches registered, at a locator.
    pub holdings: Vec<Entry>,
    /// Everything found wrong; empty when the log verifies.
    pub problems: Vec<String>,
    /// Split views this node caught as a witness (its `SPLIT_VIEW_ALARM` entries): another
    /// node's log showed two histories. Not a problem of this log: evidence against the other.
    pub alarms: Vec<String>,
}

/// Fetches every entry with index below `size` into memory: for small logs and tests; use
/// [`for_each_entry`] for anything large.
pub async fn fetch_entries(
    client: &mut AuditServiceClient<Channel>,
    size: u64,
) -> Result<Vec<pb::AuditEntry>, RegulatorError> {
    let mut out = Vec::new();
    for_each_entry(client, size, &VerifyOptions::default(), |e| out.push(e)).await?;
    Ok(out)
}

/// Streams every entry with index below `size` to `visit`, page by page, in the order served.
/// Fails when a page takes longer than the stall timeout or pages stop bringing new entries.
pub async fn for_each_entry(
    client: &mut AuditServiceClient<Channel>,
    size: u64,
    opts: &VerifyOptions,
    mut visit: impl FnMut(pb::AuditEntry),
) -> Result<(), RegulatorError> {
    let mut token = String::new();
    let mut seen = 0u64;
    let mut last_progress = tokio::time::Instant::now();
    while seen < size {
        let req = pb::ListAuditEntriesRequest { page_size: opts.page_size, page_token: token, ..Default::default() };
        let page = tokio::time::timeout(opts.stall_timeout, client.list_audit_entries(req))
            .await
            .map_err(|_| {
                RegulatorError::Stalled(format!(
                    "no page of entries within {:?} after {seen} entries",
                    opts.stall_timeout
                ))
            })?
            .map_err(rpc("list audit entries"))?
            .into_inner();
        let before = seen;
        for e in page.entries {
            if e.index >= size {
                break;
            }
            seen += 1;
            visit(e);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if seen > before {
            last_progress = tokio::time::Instant::now();
        } else if last_progress.elapsed() > opts.stall_timeout {
            return Err(RegulatorError::Stalled(format!(
                "node served no new entry for {:?} after {seen} of {size}",
                opts.stall_timeout
            )));
        }
        token = page.next_page_token;
    }
    Ok(())
}

fn state_file(state: &Path, origin: &str) -> PathBuf {
    state.join(format!("{}.checkpoint", origin.replace(['/', ':'], "_")))
}

/// Verifies one node's log with the default options: see [`verify_with`].
pub async fn verify(channel: Channel, keys: &KeySource, state: &Path) -> Result<VerifiedLog, RegulatorError> {
    verify_with(channel, keys, state, &VerifyOptions::default(), |_, _| {}).await
}

/// Verifies one node's log: the checkpoint's signature, that the entries served hash to its
/// root, and that it is consistent with the checkpoint kept from last time in `state` (which is
/// replaced by the new one when everything verifies). `visit` sees each parsed entry once.
pub async fn verify_with(
    channel: Channel,
    keys: &KeySource,
    state: &Path,
    opts: &VerifyOptions,
    mut visit: impl FnMut(u64, &Entry),
) -> Result<VerifiedLog, RegulatorError> {
    let mut client = AuditServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let cp = client.get_checkpoint(pb::GetCheckpointRequest {}).await.map_err(rpc("get checkpoint"))?.into_inner();
    let bad = |e: CheckpointError| RegulatorError::Checkpoint(format!("checkpoint of {}: {e}", cp.origin));
    let (name, vk) = parse_verifier_key(&keys.for_origin(&cp.origin)?).map_err(bad)?;
    let checkpoint = Checkpoint::open(&cp.signed_note, &name, &vk).map_err(bad)?;
    let mut problems = Vec::new();
    if checkpoint.size != cp.tree_size || checkpoint.root.as_slice() != cp.root_hash.as_slice() {
        problems.push("checkpoint fields disagree with its signed note".to_owned());
    }

    let mut stream = StreamingRoot::default();
    let mut queries = Vec::new();
    let mut disputes = Vec::new();
    let mut consents = Vec::new();
    let mut holdings = Vec::new();
    let mut alarms = Vec::new();
    let mut gap = false;
    for_each_entry(&mut client, checkpoint.size, opts, |e| {
        if gap {
            return;
        }
        if e.index != stream.size() {
            problems.push(format!("entry {} is missing (next served is {})", stream.size(), e.index));
            gap = true;
            return;
        }
        stream.push(&e.leaf_data);
        match Entry::from_bytes(&e.leaf_data) {
            Ok(parsed) => {
                if opts.keep_queries && parsed.action == Action::ConsentVerified {
                    consents.push(parsed.clone());
                }
                if opts.keep_queries && matches!(parsed.action, Action::HoldingsDelivered | Action::HoldingsRegistered)
                {
                    holdings.push(parsed.clone());
                }
                if parsed.action == Action::SplitViewAlarm {
                    alarms.push(format!(
                        "split view of {} caught by witness {} at {}: {}; {}",
                        parsed.counterparty, parsed.actor, parsed.time, parsed.outcome, parsed.detail
                    ));
                }
                if opts.keep_queries && is_dispute(parsed.action) {
                    disputes.push(parsed.clone());
                }
                if opts.keep_queries
                    && matches!(
                        parsed.action,
                        Action::QueryOutbound
                            | Action::QueryInbound
                            | Action::DisputeForwarded
                            | Action::DisputeReceived
                            | Action::ProtectionForwarded
                            | Action::ProtectionReceived
                    )
                {
                    queries.push(QueryFact {
                        action: parsed.action,
                        query_id: parsed.query_id.clone(),
                        actor: parsed.actor.clone(),
                        counterparty: parsed.counterparty.clone(),
                        outcome: parsed.outcome.clone(),
                        purpose: parsed.purpose,
                        consent: parsed.consent_reference.clone(),
                        record_count: parsed.record_count,
                    });
                }
                visit(e.index, &parsed);
            }
            Err(err) => problems.push(format!("entry {} does not parse: {err}", e.index)),
        }
    })
    .await?;
    if stream.size() != checkpoint.size {
        problems.push(format!("checkpoint covers {} entries, node served {}", checkpoint.size, stream.size()));
    } else if stream.root() != checkpoint.root {
        problems.push("entries do not hash to the checkpoint's root: an entry was altered".to_owned());
    }

    let file = |path: &Path| {
        let path = path.to_owned();
        move |source| RegulatorError::File { path, source }
    };
    fs::create_dir_all(state).map_err(file(state))?;
    let path = state_file(state, &checkpoint.origin);
    let mut previous = None;
    if let Ok(note) = fs::read_to_string(&path) {
        let old = Checkpoint::open(&note, &name, &vk)
            .map_err(|e| RegulatorError::Checkpoint(format!("saved checkpoint {}: {e}", path.display())))?;
        previous = Some(old.size);
        if old.size > checkpoint.size {
            problems.push(format!("log shrank from {} to {} entries since last verified", old.size, checkpoint.size));
        } else if old.size > 0 {
            let proof = client
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    first_size: old.size,
                    second_size: checkpoint.size,
                })
                .await
                .map_err(rpc("get consistency proof"))?
                .into_inner();
            let hashes: Vec<Hash> = proof.hashes.iter().filter_map(|h| h.as_slice().try_into().ok()).collect();
            if hashes.len() != proof.hashes.len()
                || !merkle::verify_consistency(old.size, checkpoint.size, &old.root, &checkpoint.root, &hashes)
            {
                problems.push(format!(
                    "history rewritten: the log at {} entries is not an extension of the one verified at {}",
                    checkpoint.size, old.size
                ));
            }
        }
    }
    if problems.is_empty() {
        fs::write(&path, &cp.signed_note).map_err(file(&path))?;
    }
    Ok(VerifiedLog {
        origin: checkpoint.origin,
        size: checkpoint.size,
        root: checkpoint.root,
        previous,
        queries,
        disputes,
        consents,
        holdings,
        problems,
        alarms,
    })
}

fn is_dispute(a: Action) -> bool {
    matches!(
        a,
        Action::DisputeFiled
            | Action::DisputeForwarded
            | Action::DisputeReceived
            | Action::DisputeResolved
            | Action::DisputeSuppressed
            | Action::DisputeRejected
    )
}

/// A dispute as a regulator sees it from the furnisher's log: its state and deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeView {
    /// The furnishing institution (whose log this comes from).
    pub furnisher: String,
    /// The filing institution.
    pub filer: String,
    /// The dispute id.
    pub dispute_id: String,
    /// The disputed record's name.
    pub record: String,
    /// `open`, `overdue` (open past its deadline: the record is suppressed) or the resolution.
    pub state: String,
    /// The deadline, RFC 3339.
    pub deadline: String,
}

/// The disputes the furnishers' logs hold, with their states at `now`: received and not
/// resolved is `open`, or `overdue` once the deadline has passed.
pub fn dispute_states(logs: &[VerifiedLog], now: chrono::DateTime<chrono::Utc>) -> Vec<DisputeView> {
    let mut out: std::collections::BTreeMap<(String, String, String), DisputeView> = Default::default();
    for log in logs {
        let me = institution_of(&log.origin);
        for e in &log.disputes {
            let key = (me.to_owned(), e.actor.clone(), e.query_id.clone());
            let (record, deadline) = match e.detail.split_once(" reason=") {
                Some((record, rest)) => {
                    (record.to_owned(), rest.split_once("deadline=").map(|(_, d)| d.to_owned()).unwrap_or_default())
                }
                None => (String::new(), String::new()),
            };
            match e.action {
                Action::DisputeReceived if e.counterparty == me && e.outcome == "record_marked_disputed" => {
                    out.insert(
                        key,
                        DisputeView {
                            furnisher: me.to_owned(),
                            filer: e.actor.clone(),
                            dispute_id: e.query_id.clone(),
                            record,
                            state: "open".into(),
                            deadline,
                        },
                    );
                }
                Action::DisputeResolved if e.actor == me => {
                    let key = (me.to_owned(), e.counterparty.clone(), e.query_id.clone());
                    if let Some(v) = out.get_mut(&key) {
                        v.state = e.outcome.trim_start_matches("resolved:").to_owned();
                    }
                }
                _ => {}
            }
        }
    }
    let mut views: Vec<DisputeView> = out.into_values().collect();
    for v in &mut views {
        let due = chrono::DateTime::parse_from_rfc3339(&v.deadline).ok();
        if v.state == "open" && due.is_some_and(|d| d <= now) {
            v.state = "overdue".into();
        }
    }
    views
}

/// The institution id of a log's origin `<federation>/institution/<id>`.
pub fn institution_of(origin: &str) -> &str {
    origin.rsplit('/').next().unwrap_or_default()
}

/// Cross-checks nodes' logs: each answered outbound query at A to B must be logged inbound at B
/// (same query id, asker and asked), and each inbound query at B from A must be logged outbound
/// at A; likewise each dispute (or resolution) forwarded by A and acknowledged by B must be
/// logged received at B, and each received at B logged forwarded at A. Only pairs of nodes both
/// given are checked. Returns the mismatches. (The relationship purposes asked without a
/// relationship are [`relationship_flags`], which `bureau audit reconcile` prints too.)
pub fn reconcile(logs: &[VerifiedLog]) -> Vec<String> {
    let ids: HashSet<&str> = logs.iter().map(|l| institution_of(&l.origin)).collect();
    let key = |e: &QueryFact| (e.query_id.clone(), e.actor.clone(), e.counterparty.clone());
    let mut problems = Vec::new();
    for (out_action, in_action, what) in [
        (Action::QueryOutbound, Action::QueryInbound, "query"),
        (Action::DisputeForwarded, Action::DisputeReceived, "dispute"),
        (Action::ProtectionForwarded, Action::ProtectionReceived, "protection change"),
    ] {
        let mut outbound: HashMap<(String, String, String), &QueryFact> = HashMap::new();
        let mut inbound: HashMap<(String, String, String), &QueryFact> = HashMap::new();
        for log in logs {
            let me = institution_of(&log.origin);
            for e in &log.queries {
                if e.action == out_action && e.actor == me {
                    outbound.insert(key(e), e);
                } else if e.action == in_action && e.counterparty == me && e.actor != me {
                    inbound.insert(key(e), e);
                }
            }
        }
        // An outbound query counts only when answered; a dispute is logged forwarded only once
        // acknowledged.
        let delivered = |e: &QueryFact| what != "query" || e.outcome == "answered";
        for (k, e) in &outbound {
            if delivered(e) && ids.contains(e.counterparty.as_str()) && !inbound.contains_key(k) {
                problems.push(format!(
                    "{} logged {what} {} to {} as delivered, but {} has no entry receiving it",
                    e.actor, e.query_id, e.counterparty, e.counterparty
                ));
            }
        }
        for (k, e) in &inbound {
            if ids.contains(e.actor.as_str()) && !outbound.contains_key(k) {
                problems.push(format!(
                    "{} logged a received {what} {} from {}, but {} has no entry sending it",
                    e.counterparty, e.query_id, e.actor, e.actor
                ));
            }
        }
    }
    problems.extend(holdings::reconcile(logs, &ids));
    problems.sort();
    problems
}

/// What checking a person's report found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportCheck {
    /// Inquiries whose log entry is proven included under the recording node's signed
    /// checkpoint and says the same as the inquiry shown.
    pub proven: usize,
    /// Inquiries that came without a proof (the node that recorded them did not answer).
    pub unproven: usize,
    /// Everything found wrong; empty when every proof holds.
    pub problems: Vec<String>,
}

/// Checks every inquiry of a person's report that carries a proof: the recording node's
/// checkpoint is signed by that node's key (from `keys`), the proof is for that checkpoint's
/// tree, the log entry hashes into its root at the index given, and the entry records the same
/// inquiry (inbound query, same query id, asker, node, subject and purpose) as the report shows.
pub fn check_report(report: &pb::SubjectReport, keys: &KeySource) -> Result<ReportCheck, RegulatorError> {
    let mut out = ReportCheck::default();
    let mut opened: HashMap<String, Checkpoint> = HashMap::new();
    for cp in &report.checkpoints {
        let (name, vk) = parse_verifier_key(&keys.for_origin(&cp.origin)?)
            .map_err(|e| RegulatorError::Checkpoint(format!("key for {}: {e}", cp.origin)))?;
        match Checkpoint::open(&cp.signed_note, &name, &vk) {
            Ok(c) => {
                opened.insert(institution_of(&c.origin).to_owned(), c);
            }
            Err(e) => out.problems.push(format!("checkpoint of {}: {e}", cp.origin)),
        }
    }
    for i in &report.inquiries {
        if i.log_entry.is_empty() {
            out.unproven += 1;
            continue;
        }
        let what = format!("inquiry {} by {} at {}", i.query_id, i.inquirer, i.responder);
        let Some(cp) = opened.get(&i.responder) else {
            out.problems.push(format!("{what}: no valid checkpoint of {}", i.responder));
            continue;
        };
        let Some(index) = i.log_index else {
            out.problems.push(format!("{what}: no log index"));
            continue;
        };
        if i.proof_tree_size != cp.size {
            out.problems
                .push(format!("{what}: proof is for {} entries, the checkpoint for {}", i.proof_tree_size, cp.size));
            continue;
        }
        let hashes: Vec<Hash> = i.inclusion_proof.iter().filter_map(|h| h.as_slice().try_into().ok()).collect();
        if hashes.len() != i.inclusion_proof.len()
            || !merkle::verify_inclusion(&merkle::leaf_hash(&i.log_entry), index, cp.size, &hashes, &cp.root)
        {
            out.problems.push(format!("{what}: the log entry is not in {}'s signed log at index {index}", i.responder));
            continue;
        }
        let same = Entry::from_bytes(&i.log_entry).is_ok_and(|e| {
            e.action == Action::QueryInbound
                && e.query_id == i.query_id
                && e.actor == i.inquirer
                && e.counterparty == i.responder
                && e.subject_id == i.subject_id
                && e.purpose.map(|p| crate::wire::convert::purpose_to_pb(p) as i32) == Some(i.purpose)
        });
        if !same {
            out.problems.push(format!("{what}: the proven log entry records something else"));
            continue;
        }
        out.proven += 1;
    }
    Ok(out)
}
