//! The regulator's guarantees over real nodes: who may read, what is logged at both ends, and
//! that altering, deleting, truncating or rewriting a node's history is caught.

mod common;

use std::path::{Path, PathBuf};

use bureau::{
    merkle,
    pb::bureau::v1::{
        self as pb, audit_service_client::AuditServiceClient, scoring_service_client::ScoringServiceClient,
        subjects_service_client::SubjectsServiceClient,
    },
    regulator::{self, KeySource, VerifiedLog},
    testkit::tamper,
    Action, Entry, Role, RunningNode,
};
use common::{fed, reason, record, subject, Fed};
use tonic::Code;

const INSTITUTIONS: [&str; 3] = ["bank", "payapp", "bikeshare"];

async fn verify(f: &Fed, node: &RunningNode, state: &Path) -> VerifiedLog {
    regulator::verify(f.channel(Role::Regulator, "pbc", node.addr), &KeySource::PkiDir(f.fed.pki.0.clone()), state)
        .await
        .unwrap()
}

/// Furnishes a record at every node and scores subject 1 at bank for a credit application.
async fn activity(f: &Fed, nodes: &[RunningNode]) -> pb::Score {
    for n in nodes {
        let inst = n.institution.clone();
        f.records(Role::Application, &inst, n.addr)
            .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), &format!("{inst}-1"), 1)] })
            .await
            .unwrap();
    }
    ScoringServiceClient::new(f.channel(Role::Application, "bank", nodes[0].addr))
        .get_score(pb::GetScoreRequest {
            subject_id: subject(1),
            purpose: pb::Purpose::CreditApplication as i32,
            consent_reference: "app-0001".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn data_dir(f: &Fed, inst: &str) -> PathBuf {
    f.fed.root.join("data").join(inst)
}

/// Restarts `node` after `damage` has had its way with the stopped node's store.
async fn damaged(f: &Fed, node: RunningNode, damage: impl FnOnce(&Path)) -> RunningNode {
    let inst = node.institution.clone();
    node.shutdown().await.unwrap();
    damage(&data_dir(f, &inst));
    bureau::start(f.fed.node_config(&inst, &[])).await.unwrap()
}

/// Rebuilds the stopped node's log from `edit(old entries)`: a self-consistent new history.
async fn rewrite(f: &Fed, node: RunningNode, edit: impl FnOnce(Vec<Entry>) -> Vec<Entry>) -> RunningNode {
    let inst = node.institution.clone();
    node.shutdown().await.unwrap();
    tamper::rewrite_log(&data_dir(f, &inst), edit).await.unwrap();
    bureau::start(f.fed.node_config(&inst, &[])).await.unwrap()
}

/// Every entry under the node's current checkpoint, read as the regulator.
async fn entries(f: &Fed, node: &RunningNode) -> Vec<Entry> {
    let mut audit = AuditServiceClient::new(f.channel(Role::Regulator, "pbc", node.addr));
    let cp = audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner();
    let all = regulator::fetch_entries(&mut audit, cp.tree_size).await.unwrap();
    all.iter().map(|e| Entry::from_bytes(&e.leaf_data).unwrap()).collect()
}

#[tokio::test]
async fn only_a_regulator_may_read_and_refusals_are_logged() {
    let f = fed(&["bank"], &["pbc"]);
    let node = f.start("bank").await;
    let mut as_bank = AuditServiceClient::new(f.channel(Role::Application, "bank", node.addr));
    let errs = [
        as_bank.list_audit_entries(pb::ListAuditEntriesRequest::default()).await.unwrap_err(),
        as_bank.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap_err(),
        as_bank.get_inclusion_proof(pb::GetInclusionProofRequest { index: 0, tree_size: 0 }).await.unwrap_err(),
        as_bank
            .get_consistency_proof(pb::GetConsistencyProofRequest { first_size: 1, second_size: 0 })
            .await
            .unwrap_err(),
    ];
    for e in &errs {
        assert_eq!(e.code(), Code::PermissionDenied);
        assert_eq!(reason(e).as_deref(), Some("WRONG_ROLE"));
    }
    let state = tempfile::tempdir().unwrap();
    let log = verify(&f, &node, state.path()).await;
    assert_eq!(log.problems, Vec::<String>::new());
    let all = entries(&f, &node).await;
    let refusals: Vec<_> = all.iter().filter(|e| e.action == Action::Refusal && e.actor == "bank").collect();
    assert_eq!(refusals.len(), 4, "{all:?}");
    assert!(refusals.iter().all(|e| e.outcome == "refused:WRONG_ROLE"));
    assert!(all.iter().any(|e| e.action == Action::RegulatorRead && e.actor == "pbc"));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_federated_score_is_logged_at_both_ends_proven_and_reconciled() {
    let f = fed(&INSTITUTIONS, &["pbc"]);
    let nodes = f.fed.start_all(&INSTITUTIONS, |_| {}).await.unwrap();
    let score = activity(&f, &nodes).await;
    let state = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for n in &nodes {
        let log = verify(&f, n, state.path()).await;
        assert_eq!(log.problems, Vec::<String>::new(), "{}", log.origin);
        logs.push(log);
    }
    let bank = &entries(&f, &nodes[0]).await;
    for peer in ["payapp", "bikeshare"] {
        let out = bank
            .iter()
            .find(|e| e.action == Action::QueryOutbound && e.counterparty == peer)
            .unwrap_or_else(|| panic!("no outbound entry to {peer}"));
        assert_eq!((out.query_id.as_str(), out.outcome.as_str()), (score.query_id.as_str(), "answered"));
        assert_eq!(out.consent_reference, "app-0001");
        assert_eq!(out.subject_id, subject(1));
    }
    let served = bank.iter().find(|e| e.action == Action::ScoreServed).unwrap();
    assert_eq!(served.model_version, score.model_version);
    assert_eq!(served.outcome, format!("score={}", score.score));
    let furnished = bank.iter().find(|e| e.action == Action::RecordFurnished).unwrap();
    assert_eq!((furnished.detail.as_str(), furnished.record_count), ("bank-1", 1));
    let payapp = entries(&f, &nodes[1]).await;
    let inbound = payapp.iter().find(|e| e.action == Action::QueryInbound).unwrap();
    assert_eq!((inbound.actor.as_str(), inbound.counterparty.as_str()), ("bank", "payapp"));
    assert_eq!(inbound.query_id, score.query_id);
    assert_eq!(regulator::reconcile(&logs), Vec::<String>::new());

    // Inclusion proofs served by the node verify against its signed checkpoint.
    let mut audit = AuditServiceClient::new(f.channel(Role::Regulator, "pbc", nodes[0].addr));
    let cp = audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner();
    let root: merkle::Hash = cp.root_hash.as_slice().try_into().unwrap();
    let all = regulator::fetch_entries(&mut audit, cp.tree_size).await.unwrap();
    for e in &all {
        let p = audit
            .get_inclusion_proof(pb::GetInclusionProofRequest { index: e.index, tree_size: cp.tree_size })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<merkle::Hash> = p.hashes.iter().map(|h| h.as_slice().try_into().unwrap()).collect();
        assert!(merkle::verify_inclusion(&merkle::leaf_hash(&e.leaf_data), e.index, cp.tree_size, &hashes, &root));
    }

    // Subject transparency: the subject's own institution sees who looked, from its node.
    let mut subjects = SubjectsServiceClient::new(f.channel(Role::Application, "payapp", nodes[1].addr));
    let seen = subjects
        .list_subject_inquiries(pb::ListSubjectInquiriesRequest {
            parent: format!("subjects/{}", subject(1)),
            page_size: 0,
            page_token: String::new(),
            ..common::own_listing()
        })
        .await
        .unwrap()
        .into_inner();
    let who: Vec<_> = seen.inquiries.iter().map(|i| (i.inquirer.as_str(), i.purpose, i.hard)).collect();
    assert_eq!(who, [("bank", pb::Purpose::CreditApplication as i32, true)]);
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_score_with_a_peer_down_still_logs_the_attempt() {
    let f = fed(&INSTITUTIONS, &["pbc"]);
    let mut nodes = f.fed.start_all(&INSTITUTIONS, |_| {}).await.unwrap();
    nodes.pop().unwrap().shutdown().await.unwrap();
    let score = activity(&f, &nodes).await;
    assert!(score.partial);
    let log = verify(&f, &nodes[0], tempfile::tempdir().unwrap().path()).await;
    assert_eq!(log.problems, Vec::<String>::new());
    let attempt = entries(&f, &nodes[0])
        .await
        .into_iter()
        .find(|e| e.action == Action::QueryOutbound && e.counterparty == "bikeshare")
        .expect("the attempt to the down peer is logged");
    assert_eq!((attempt.outcome.as_str(), attempt.query_id.as_str()), ("unreachable", score.query_id.as_str()));
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn altering_deleting_or_truncating_entries_is_detected() {
    let f = fed(&["bank"], &["pbc"]);
    let state = tempfile::tempdir().unwrap();
    let mut node = f.start("bank").await;
    activity(&f, std::slice::from_ref(&node)).await;
    assert_eq!(verify(&f, &node, state.path()).await.problems, Vec::<String>::new());

    // One entry altered in place.
    node = damaged(&f, node, |dir| tamper::alter_entry(dir, 1, |e| e.consent_reference = "forged".into())).await;
    let log = verify(&f, &node, state.path()).await;
    assert!(log.problems.iter().any(|p| p.contains("altered")), "{:?}", log.problems);

    // One entry deleted.
    node = damaged(&f, node, |dir| tamper::remove_entry(dir, 2)).await;
    let log = verify(&f, &node, state.path()).await;
    assert!(log.problems.iter().any(|p| p.contains("entry 2 is missing")), "{:?}", log.problems);

    // Truncated to its first two entries: consistent in itself, but shorter than last seen.
    node = damaged(&f, node, |dir| tamper::set_log_size(dir, 2)).await;
    let log = verify(&f, &node, state.path()).await;
    assert!(log.problems.iter().any(|p| p.contains("shrank")), "{:?}", log.problems);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn history_rewritten_after_a_regulator_saw_a_checkpoint_fails_consistency() {
    let f = fed(&["bank"], &["pbc"]);
    let state = tempfile::tempdir().unwrap();
    let node = f.start("bank").await;
    activity(&f, std::slice::from_ref(&node)).await;
    let before = verify(&f, &node, state.path()).await;
    assert_eq!(before.problems, Vec::<String>::new());
    // The node rebuilds a self-consistent log without the score it served, and keeps growing.
    let node = rewrite(&f, node, |old| old.into_iter().filter(|e| e.action != Action::ScoreServed).collect()).await;
    activity(&f, std::slice::from_ref(&node)).await;
    let after = verify(&f, &node, state.path()).await;
    assert!(after.size > before.size);
    assert!(after.problems.iter().any(|p| p.contains("history rewritten")), "{:?}", after.problems);
    // A regulator who never saw it would find the new log consistent in itself...
    let fresh = verify(&f, &node, tempfile::tempdir().unwrap().path()).await;
    assert_eq!(fresh.problems, Vec::<String>::new());
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn reconciliation_reports_an_inbound_entry_removed_from_one_node() {
    let f = fed(&INSTITUTIONS, &["pbc"]);
    let mut nodes = f.fed.start_all(&INSTITUTIONS, |_| {}).await.unwrap();
    let score = activity(&f, &nodes).await;
    // payapp hides that bank asked it, with a log consistent in itself.
    let payapp = nodes.remove(1);
    let payapp =
        rewrite(&f, payapp, |old| old.into_iter().filter(|e| e.action != Action::QueryInbound).collect()).await;
    let state = tempfile::tempdir().unwrap();
    let bank = verify(&f, &nodes[0], state.path()).await;
    let hidden = verify(&f, &payapp, state.path()).await;
    assert_eq!(hidden.problems, Vec::<String>::new(), "the rewritten log verifies on its own");
    let mismatches = regulator::reconcile(&[bank, hidden]);
    assert_eq!(
        mismatches,
        [format!("bank logged query {} to payapp as delivered, but payapp has no entry receiving it", score.query_id)]
    );
    payapp.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// Forwards loopback TCP to `target` until `budget` bytes have come back from it, then holds
/// every connection open and silent: a node that stops answering in the middle of a listing.
async fn stalling_proxy(target: std::net::SocketAddr, budget: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(budget));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
            let left = left.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let allowed = left
                        .fetch_sub(
                            n.min(left.load(std::sync::atomic::Ordering::SeqCst)),
                            std::sync::atomic::Ordering::SeqCst,
                        )
                        .min(n);
                    if cw.write_all(&buf[..allowed]).await.is_err() || allowed < n {
                        break;
                    }
                }
                // Stalled: keep the connection open, say nothing more.
                std::future::pending::<()>().await;
                drop(cw);
            });
        }
    });
    addr
}

/// A node that stops making progress while its entries are paged is an error after the stall
/// timeout, not an endless wait; the verifier keeps only the tree frontier and query facts.
#[tokio::test]
async fn a_node_that_stalls_while_paging_is_an_error_after_the_deadline() {
    let f = fed(&["bank"], &["pbc"]);
    {
        let store = bureau::testkit::store::open_for(&data_dir(&f, "bank")).await.unwrap();
        let batch: Vec<Entry> =
            (0..5_000).map(|i| Entry::new(Action::ScoreServed, "bank", format!("score={}", 350 + i % 600))).collect();
        store.append_audit(batch).await.unwrap();
        store.sync().await.unwrap();
        store.close().await.unwrap();
    }
    let node = f.start("bank").await;
    let opts = regulator::VerifyOptions {
        page_size: 100,
        stall_timeout: std::time::Duration::from_millis(500),
        keep_queries: true,
    };
    let state = tempfile::tempdir().unwrap();
    let keys = KeySource::PkiDir(f.fed.pki.0.clone());
    // Through a healthy path the log verifies, paged, keeping no query facts (there are none).
    let ok =
        regulator::verify_with(f.channel(Role::Regulator, "pbc", node.addr), &keys, state.path(), &opts, |_, _| {})
            .await
            .unwrap();
    assert_eq!((ok.problems.len(), ok.queries.len()), (0, 0), "{:?}", ok.problems);
    assert!(ok.size >= 5_000);

    // Through a path that goes silent after ~100 KiB: well into the listing, short of its end.
    let proxy = stalling_proxy(node.addr, 100 * 1024).await;
    let mut cfg = f.fed.client(Role::Regulator, "pbc", proxy);
    cfg.address = proxy.to_string();
    let verifying = regulator::verify_with(cfg.channel().unwrap(), &keys, state.path(), &opts, |_, _| {});
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), verifying)
        .await
        .expect("the verifier gives up by itself")
        .unwrap_err();
    assert!(matches!(err, regulator::RegulatorError::Stalled(_)), "{err}");
    assert!(err.to_string().contains("no page of entries within 500ms after"), "{err}");
    node.shutdown().await.unwrap();
}

/// A filter the node cannot read is refused with the field named, never silently dropped
/// (which would hand a regulator the whole log while it believes it filtered).
#[tokio::test]
async fn unreadable_audit_filters_are_refused_not_dropped() {
    let f = fed(&["bank"], &["pbc"]);
    let node = f.start("bank").await;
    let mut audit = AuditServiceClient::new(f.channel(Role::Regulator, "pbc", node.addr));
    let ts = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
    let cases = [
        (pb::ListAuditEntriesRequest { purpose: 42, ..Default::default() }, "purpose"),
        (pb::ListAuditEntriesRequest { start_time: ts(1_700_000_000, -1), ..Default::default() }, "start_time"),
        (pb::ListAuditEntriesRequest { end_time: ts(i64::MAX, 0), ..Default::default() }, "end_time"),
        (pb::ListAuditEntriesRequest { start_time: ts(0, 1_000_000_000), ..Default::default() }, "start_time"),
        (pb::ListAuditEntriesRequest { subject_id: "alice".into(), ..Default::default() }, "subject_id"),
    ];
    for (req, field) in cases {
        let err = audit.list_audit_entries(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}");
        assert_eq!(common::violations(&err)[0].0, field, "{req:?}");
    }
    let ok = audit
        .list_audit_entries(pb::ListAuditEntriesRequest {
            purpose: pb::Purpose::DepositWaiver as i32,
            start_time: ts(0, 0),
            ..Default::default()
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    node.shutdown().await.unwrap();
}
