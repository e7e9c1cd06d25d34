//! Federated queries and scores across real nodes: coverage, deadlines, consent, roles, and
//! what a node may pass on.

mod common;

use bureau::{
    convert,
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, scoring_service_client::ScoringServiceClient,
    },
    Model, Role, RunningNode,
};
use common::{fed, reason, record, subject, violations, Fed};
use tonic::Code;

const INSTITUTIONS: [&str; 3] = ["bank", "payapp", "bikeshare"];

/// Furnishes `per_node` records about `subject` at each node, with distinct balances and some
/// delinquency, and returns them all as domain records.
async fn furnish_everywhere(f: &Fed, nodes: &[RunningNode], s: &str, per_node: u32) -> Vec<bureau::CreditRecord> {
    let mut all = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let inst = node.institution.clone();
        let records: Vec<_> = (0..per_node)
            .map(|i| {
                let mut r = record(s, &format!("{inst}-{i}"), 1);
                r.balance_minor = 100_000 * (n as i64 + 1) + i as i64 * 7_000;
                if i == 1 && n == 1 {
                    r.status = pb::AccountStatus::Delinquent as i32;
                    r.days_past_due = 45;
                    r.payment_history[0] = pb::PaymentStatus::Late30 as i32;
                }
                r
            })
            .collect();
        let mut c = f.records(Role::Application, &inst, node.addr);
        c.furnish_records(pb::FurnishRecordsRequest { records: records.clone() }).await.unwrap();
        all.extend(records.into_iter().map(|r| convert::record_from_pb(r, &inst, chrono::NaiveDate::MAX).unwrap()));
    }
    all
}

fn scoring(f: &Fed, node: &RunningNode) -> ScoringServiceClient<tonic::transport::Channel> {
    ScoringServiceClient::new(f.channel(Role::Application, &node.institution, node.addr))
}

fn get_score(s: &str, purpose: pb::Purpose, consent: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest { subject_id: s.into(), purpose: purpose as i32, consent_reference: consent.into() }
}

async fn stop(nodes: Vec<RunningNode>) {
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_federated_score_equals_the_score_of_the_union_of_all_records() {
    let f = fed(&INSTITUTIONS, &[]);
    let nodes = f.fed.start_all(&INSTITUTIONS, |_| {}).await.unwrap();
    let s = subject(1);
    let union = furnish_everywhere(&f, &nodes, &s, 3).await;
    furnish_everywhere(&f, &nodes, &subject(2), 2).await; // noise about someone else

    let score =
        scoring(&f, &nodes[0]).get_score(get_score(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    // First query ever about this subject: no earlier inquiries exist, and the current one
    // does not count against itself.
    let direct = Model::embedded_default().score(
        &bureau::merge_records(union.into_iter()),
        &[],
        chrono::Utc::now().date_naive(),
    );
    assert_eq!(score.score, direct.score);
    assert_eq!(score.records_used, 9);
    assert!(!score.partial);
    assert_eq!(score.model_version, Model::embedded_default().version());
    assert_eq!(score.coverage.len(), 2);
    for c in &score.coverage {
        assert_eq!(c.outcome, pb::PeerOutcome::Answered as i32, "{c:?}");
        assert_eq!(c.records_returned, 3);
    }
    assert!(!score.query_id.is_empty());
    stop(nodes).await;
}

#[tokio::test]
async fn a_peer_that_is_down_is_reported_unreachable_and_the_score_is_partial() {
    let f = fed(&INSTITUTIONS, &[]);
    let mut nodes = f.fed.start_all(&INSTITUTIONS, |c| c.scoring.peer_deadline_ms = 800).await.unwrap();
    let s = subject(3);
    furnish_everywhere(&f, &nodes, &s, 2).await;
    let down = nodes.pop().unwrap();
    down.shutdown().await.unwrap();

    let score =
        scoring(&f, &nodes[0]).get_score(get_score(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    assert!(score.partial);
    assert_eq!(score.records_used, 4, "own records and the live peer's");
    let by_peer = |p: &str| score.coverage.iter().find(|c| c.peer == p).unwrap().clone();
    assert_eq!(by_peer("payapp").outcome, pb::PeerOutcome::Answered as i32);
    let gone = by_peer("bikeshare");
    assert_eq!(gone.outcome, pb::PeerOutcome::Unreachable as i32, "{gone:?}");
    assert!(!gone.error.is_empty());
    // That the answer never waits past the deadline is checked in paused time, exactly, by the
    // fan-out's own tests (net::peers); here, what the caller is told.
    stop(nodes).await;
}

#[tokio::test]
async fn a_peer_slower_than_the_deadline_is_reported_timed_out_without_delaying_the_answer() {
    // A peer that accepts TCP connections and then never speaks: slower than any deadline.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole = blackhole.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = blackhole.accept().await {
            conns.push(c);
        }
    });
    let f = fed(&["bank", "payapp", "slow"], &[]);
    let nodes = f
        .fed
        .start_all(&["bank", "payapp"], |c| {
            c.scoring.peer_deadline_ms = 300;
            c.peers.push(bureau::config::PeerConfig::new("slow", hole.to_string()));
        })
        .await
        .unwrap();
    let s = subject(4);
    furnish_everywhere(&f, &nodes, &s, 1).await;
    let score =
        scoring(&f, &nodes[0]).get_score(get_score(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    let slow = score.coverage.iter().find(|c| c.peer == "slow").unwrap();
    assert_eq!(slow.outcome, pb::PeerOutcome::TimedOut as i32, "{slow:?}");
    assert!(score.partial);
    assert_eq!(score.records_used, 2);
    assert_eq!(slow.error, "no answer within 300 ms");
    assert!(slow.latency_ms >= 300, "reported late only once the deadline has passed: {slow:?}");
    held.abort();
    stop(nodes).await;
}

#[tokio::test]
async fn a_node_never_passes_on_records_it_learnt_from_peers() {
    let f = fed(&INSTITUTIONS, &[]);
    let nodes = f.fed.start_all(&INSTITUTIONS, |_| {}).await.unwrap();
    let s = subject(5);
    furnish_everywhere(&f, &nodes, &s, 2).await;
    // payapp scores the subject, so it has seen bank's and bikeshare's records...
    let score =
        scoring(&f, &nodes[1]).get_score(get_score(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    assert_eq!(score.records_used, 6);
    // ...yet when bikeshare asks payapp, it gets payapp's own records only.
    let mut as_bikeshare = FederationServiceClient::new(f.channel(Role::Node, "bikeshare", nodes[1].addr));
    let answer = as_bikeshare
        .query_records(pb::QueryRecordsRequest {
            subject_id: s.clone(),
            purpose: pb::Purpose::AccountReview as i32,
            consent_reference: String::new(),
            query_id: "q-test-1".into(),
            records_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.responder, "payapp");
    assert_eq!(answer.records.len(), 2);
    assert!(answer.records.iter().all(|r| r.furnisher == "payapp"));
    // It holds the inquiries made at it (payapp's own score, bikeshare's query), but a review
    // gets only what a score counts: no list of who asked, and both of these are soft.
    assert!(answer.inquiries.is_empty(), "{:?}", answer.inquiries);
    assert!(answer.hard_inquiries.is_empty(), "{:?}", answer.hard_inquiries);
    stop(nodes).await;
}

#[tokio::test]
async fn purpose_and_consent_are_checked_with_documented_codes() {
    let f = fed(&INSTITUTIONS, &[]);
    let nodes = f
        .fed
        .start_all(&INSTITUTIONS, |c| {
            if c.node.institution == "bikeshare" {
                c.federation.accepted_purposes = vec![bureau::Purpose::AccountReview];
            }
        })
        .await
        .unwrap();
    let s = subject(6);
    let mut peer = FederationServiceClient::new(f.channel(Role::Node, "payapp", nodes[0].addr));
    let q = |purpose: pb::Purpose, consent: &str| pb::QueryRecordsRequest {
        subject_id: s.clone(),
        purpose: purpose as i32,
        consent_reference: consent.into(),
        query_id: "q-1".into(),
        records_only: false,
    };
    for purpose in [pb::Purpose::CreditApplication, pb::Purpose::DepositWaiver, pb::Purpose::SubjectRequest] {
        let err = peer.query_records(q(purpose, "")).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{purpose:?}");
        assert_eq!(reason(&err).as_deref(), Some("CONSENT_REQUIRED"));
        peer.query_records(q(purpose, "consent-2026-001")).await.unwrap();
    }
    let err = peer.query_records(q(pb::Purpose::Unspecified, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "purpose");
    let mut bad_subject = q(pb::Purpose::AccountReview, "");
    bad_subject.subject_id = "11010119900307123X".into();
    let err = peer.query_records(bad_subject).await.unwrap_err();
    assert_eq!(violations(&err)[0].0, "subject_id");

    // Through GetScore: refused locally, before any peer is asked.
    let err = scoring(&f, &nodes[0]).get_score(get_score(&s, pb::Purpose::DepositWaiver, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err).as_deref(), Some("CONSENT_REQUIRED"));

    // A peer that does not accept the purpose refuses; the scoring node reports it as such.
    let mut to_bikeshare = FederationServiceClient::new(f.channel(Role::Node, "bank", nodes[2].addr));
    let err = to_bikeshare.query_records(q(pb::Purpose::CreditApplication, "c-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("PURPOSE_NOT_ACCEPTED"));
    let score = scoring(&f, &nodes[0])
        .get_score(get_score(&s, pb::Purpose::CreditApplication, "c-2"))
        .await
        .unwrap()
        .into_inner();
    let refused = score.coverage.iter().find(|c| c.peer == "bikeshare").unwrap();
    assert_eq!(refused.outcome, pb::PeerOutcome::Refused as i32);
    assert!(refused.error.contains("PermissionDenied"), "{refused:?}");
    assert!(score.partial);

    // The hard inquiry was recorded at the peer that answered.
    let mut subjects = bureau::pb::bureau::v1::subjects_service_client::SubjectsServiceClient::new(f.channel(
        Role::Application,
        &nodes[1].institution,
        nodes[1].addr,
    ));
    let inquiries = subjects
        .list_subject_inquiries(pb::ListSubjectInquiriesRequest {
            parent: format!("subjects/{s}"),
            page_size: 10,
            page_token: String::new(),
            ..common::own_listing()
        })
        .await
        .unwrap()
        .into_inner()
        .inquiries;
    let hard: Vec<_> = inquiries.iter().filter(|i| i.inquirer == "bank" && i.hard).collect();
    assert!(!hard.is_empty(), "{inquiries:?}");
    stop(nodes).await;
}

#[tokio::test]
async fn a_regulator_may_neither_query_peers_nor_score_and_an_impostor_peer_is_refused() {
    let f = fed(&INSTITUTIONS, &["pbc"]);
    // payapp's configuration names "bikeshare" at bank's address: an impostor on a right address.
    let nodes = f.fed.start_all(&["bank", "payapp"], |_| {}).await.unwrap();
    let mut cfg = f.fed.node_config("bikeshare", &[("bikeshare-typo", nodes[0].addr)]);
    cfg.peers[0].id = "bank".into();
    cfg.peers.push(bureau::config::PeerConfig::new("payapp", nodes[0].addr.to_string()));
    let tricked = bureau::start(cfg).await.unwrap();
    let s = subject(7);
    let score =
        scoring(&f, &tricked).get_score(get_score(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    let bank = score.coverage.iter().find(|c| c.peer == "bank").unwrap();
    assert_eq!(bank.outcome, pb::PeerOutcome::Answered as i32);
    let impostor = score.coverage.iter().find(|c| c.peer == "payapp").unwrap();
    assert_eq!(impostor.outcome, pb::PeerOutcome::Unreachable as i32, "{impostor:?}");
    assert!(impostor.error.contains("spiffe://fed.test/institution/bank"), "{impostor:?}");

    let mut as_regulator = FederationServiceClient::new(f.channel(Role::Regulator, "pbc", nodes[0].addr));
    let err = as_regulator
        .query_records(pb::QueryRecordsRequest {
            subject_id: s.clone(),
            purpose: 2,
            consent_reference: String::new(),
            query_id: "q".into(),
            records_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("WRONG_ROLE"));
    let err = ScoringServiceClient::new(f.channel(Role::Regulator, "pbc", nodes[0].addr))
        .get_score(get_score(&s, pb::Purpose::AccountReview, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("WRONG_ROLE"));
    // Another institution may not score on this node either.
    let err = ScoringServiceClient::new(f.channel(Role::Application, "payapp", nodes[0].addr))
        .get_score(get_score(&s, pb::Purpose::AccountReview, ""))
        .await
        .unwrap_err();
    assert_eq!(reason(&err).as_deref(), Some("NOT_OWN_INSTITUTION"));
    tricked.shutdown().await.unwrap();
    stop(nodes).await;
}

#[tokio::test]
async fn policies_decide_on_the_federated_score() {
    let f = fed(&["bank", "payapp"], &[]);
    let nodes = f
        .fed
        .start_all(&["bank", "payapp"], |c| {
            use bureau::{
                config::{OnUnscoreable, PolicyConfig},
                Purpose,
            };
            c.policies.insert(
                "always".into(),
                PolicyConfig { min_score: 350, purpose: Purpose::DepositWaiver, unscoreable: Default::default() },
            );
            c.policies.insert(
                "never".into(),
                PolicyConfig { min_score: 951, purpose: Purpose::DepositWaiver, unscoreable: Default::default() },
            );
            let deposit =
                PolicyConfig { min_score: 350, purpose: Purpose::DepositWaiver, unscoreable: OnUnscoreable::Deposit };
            c.policies.insert("deposit".into(), deposit);
        })
        .await
        .unwrap();
    let s = subject(8);
    furnish_everywhere(&f, &nodes, &s, 2).await;
    let mut c = scoring(&f, &nodes[0]);
    let decide = |policy: &str, consent: &str| pb::DecideRequest {
        subject_id: s.clone(),
        policy: policy.into(),
        consent_reference: consent.into(),
    };
    let yes = c.decide(decide("always", "c-1")).await.unwrap().into_inner();
    assert!(yes.approved);
    assert_eq!(yes.threshold, 350);
    let score = yes.score.unwrap();
    assert_eq!(score.records_used, 4);
    assert_eq!((score.range_min, score.range_max, score.exclusion), (350, 950, None));
    assert_eq!(score.scored_on, chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string());
    let no = c.decide(decide("never", "c-2")).await.unwrap().into_inner();
    assert!(!no.approved);
    // A file with no records is unscoreable: no number, an exclusion code, and each policy's
    // own rule (refer by default, or ask the deposit).
    let thin = |policy: &str| pb::DecideRequest {
        subject_id: subject(9),
        policy: policy.into(),
        consent_reference: "c-3".into(),
    };
    let referred = c.decide(thin("always")).await.unwrap().into_inner();
    assert_eq!((referred.approved, referred.outcome.as_str()), (false, "refer: unscoreable"));
    let score = referred.score.unwrap();
    assert_eq!((score.score, score.band, score.reasons.len()), (0, 0, 0));
    assert_eq!(score.exclusion.map(|x| x.code).as_deref(), Some("X01"));
    let deposit = c.decide(thin("deposit")).await.unwrap().into_inner();
    assert_eq!((deposit.approved, deposit.outcome.as_str()), (false, "decline: unscoreable"));
    let err = c.decide(decide("never", "")).await.unwrap_err();
    assert_eq!(reason(&err).as_deref(), Some("CONSENT_REQUIRED"), "the policy's purpose needs consent");
    let err = c.decide(decide("nonesuch", "c")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    stop(nodes).await;
}

/// One score can be followed across nodes: the application's W3C `traceparent` reaches the
/// peer, and both nodes' structured logs name the same trace id and query id.
#[tokio::test]
async fn a_score_is_followed_across_nodes_by_its_trace_id() {
    let f = fed(&["bank", "payapp"], &[]);
    let (bank, bank_addr) = common::spawn_serve(&f, &f.fed.node_config("bank", &[]));
    let (payapp, payapp_addr) = common::spawn_serve(&f, &f.fed.node_config("payapp", &[("bank", bank_addr)]));
    let s = subject(1);
    for (inst, addr) in [("bank", bank_addr), ("payapp", payapp_addr)] {
        f.records(Role::Application, inst, addr)
            .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, &format!("{inst}-1"), 1)] })
            .await
            .unwrap();
    }
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(get_score(&s, pb::Purpose::AccountReview, ""));
    req.metadata_mut().insert("traceparent", format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap());
    let mut scoring = ScoringServiceClient::new(f.channel(Role::Application, "payapp", payapp_addr));
    let score = scoring.get_score(req).await.unwrap().into_inner();
    let names = |node: &common::NodeProcess, message: &str| {
        node.log().iter().any(|l| {
            l["fields"]["message"] == message
                && l["fields"]["trace_id"] == trace
                && l["fields"]["query_id"] == score.query_id.as_str()
        })
    };
    let mut seen = false;
    for _ in 0..100 {
        seen = names(&payapp, "federated score served") && names(&bank, "peer query answered");
        if seen {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "both logs name trace {trace} and query {}", score.query_id);

    // Without a traceparent the node starts a trace of its own, and the peer still shares it.
    let score = scoring.get_score(get_score(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    let trace_of = |node: &common::NodeProcess| {
        node.log()
            .iter()
            .rev()
            .find(|l| l["fields"]["query_id"] == score.query_id.as_str())
            .map(|l| l["fields"]["trace_id"].clone())
    };
    let mut pair = (None, None);
    for _ in 0..100 {
        pair = (trace_of(&payapp), trace_of(&bank));
        if pair.0.is_some() && pair.1.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(pair.0.is_some() && pair.0 == pair.1, "{pair:?}");
    assert_ne!(pair.0.unwrap(), trace);
}
