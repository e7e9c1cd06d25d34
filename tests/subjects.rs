//! What the person sees and controls, across three real nodes: their report from the whole
//! federation with proofs of who looked (and with a peer down), a security freeze that every
//! node enforces, a lift that reaches a node that was down when it returns, a fraud alert that
//! travels with answers, and the refusals the API promises.

mod common;

use std::time::Duration;

use bureau::{
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, scoring_service_client::ScoringServiceClient,
        subjects_service_client::SubjectsServiceClient,
    },
    regulator::{check_report, KeySource},
    Action, Role,
};
use common::{reason, record, subject, Cluster};
use tonic::{transport::Channel, Code};

const ME: usize = 0;
const RENTAL: usize = 1;
const BANK: usize = 2;
const INSTITUTIONS: [&str; 3] = ["payapp", "bikeshare", "bank"];

fn subjects(c: &Cluster, i: usize) -> SubjectsServiceClient<Channel> {
    SubjectsServiceClient::new(c.app(i))
}

fn scoring(c: &Cluster, i: usize) -> ScoringServiceClient<Channel> {
    ScoringServiceClient::new(c.app(i))
}

/// payapp and bikeshare each furnish one record about `s`; bank furnishes none.
async fn furnish(c: &Cluster, s: &str) {
    for i in [ME, RENTAL] {
        let inst = INSTITUTIONS[i];
        let mut r = record(s, &format!("{inst}-1"), 1);
        if i == RENTAL {
            r.kind = pb::RecordKind::DepositFreeRental as i32;
            r.payment_history[2] = pb::PaymentStatus::Late30 as i32;
        }
        c.f.records(Role::Application, inst, c.addrs[i])
            .furnish_records(pb::FurnishRecordsRequest { records: vec![r] })
            .await
            .unwrap();
    }
}

fn score_req(s: &str, purpose: pb::Purpose, consent: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest { subject_id: s.into(), purpose: purpose as i32, consent_reference: consent.into() }
}

fn protect(s: &str, kind: pb::ProtectionKind, consent: &str) -> pb::ProtectionRequest {
    pb::ProtectionRequest { subject_id: s.into(), kind: kind as i32, consent_reference: consent.into() }
}

async fn report(c: &Cluster, s: &str) -> pb::SubjectReport {
    subjects(c, ME)
        .get_report(pb::GetReportRequest { subject_id: s.into(), consent_reference: "report-consent-1".into() })
        .await
        .unwrap()
        .into_inner()
}

/// Polls `node`'s deposit-waiver score until it is refused (or answered) as `frozen` says.
async fn until_frozen_at(c: &Cluster, node: usize, s: &str, frozen: bool) {
    for _ in 0..100 {
        let r = scoring(c, node).get_score(score_req(s, pb::Purpose::DepositWaiver, "waiver-1")).await;
        match (&r, frozen) {
            (Err(e), true)
                if e.code() == Code::FailedPrecondition && reason(e).as_deref() == Some("SUBJECT_FROZEN") =>
            {
                return
            }
            (Ok(_), false) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{} never became {}", INSTITUTIONS[node], if frozen { "frozen" } else { "unfrozen" });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_gathers_every_node_and_proves_who_looked() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(1);
    furnish(&c, &s).await;
    // bank looks (a hard inquiry at each node), payapp reviews (soft).
    scoring(&c, BANK).get_score(score_req(&s, pb::Purpose::CreditApplication, "loan-app-7")).await.unwrap();
    scoring(&c, ME).get_score(score_req(&s, pb::Purpose::AccountReview, "")).await.unwrap();

    let r = report(&c, &s).await;
    let score = r.score.clone().unwrap();
    assert!(!score.partial);
    assert_eq!(score.coverage.len(), 2);
    let mut ids: Vec<_> = r.records.iter().map(|x| (x.furnisher.as_str(), x.record_id.as_str())).collect();
    ids.sort();
    assert_eq!(ids, [("bikeshare", "bikeshare-1"), ("payapp", "payapp-1")]);
    // bank's application asked all three nodes, payapp's asked all three: each node's log
    // holds the inquiries it answered.
    let by_bank: Vec<_> = r.inquiries.iter().filter(|i| i.inquirer == "bank").collect();
    assert_eq!(by_bank.len(), 3, "{:?}", r.inquiries);
    assert!(by_bank.iter().all(|i| i.hard && i.purpose == pb::Purpose::CreditApplication as i32));
    assert!(r.inquiries.iter().filter(|i| i.inquirer == "payapp").all(|i| !i.hard));
    assert!(!r
        .inquiries
        .iter()
        .any(|i| i.purpose == pb::Purpose::SubjectRequest as i32 && i.query_id == score.query_id));
    assert_eq!(r.checkpoints.len(), 3, "one signed checkpoint per node");
    assert!(r.inquiries.iter().all(|i| !i.log_entry.is_empty()), "every inquiry comes with its proof");

    let keys = KeySource::PkiDir(c.f.fed.pki.0.clone());
    let check = check_report(&r, &keys).unwrap();
    assert_eq!((check.proven, check.unproven, check.problems.clone()), (r.inquiries.len(), 0, vec![]));
    // A report that shows an inquiry differently from the log is caught.
    let mut forged = r.clone();
    forged.inquiries[0].inquirer = "someone-else".into();
    assert_eq!(check_report(&forged, &keys).unwrap().problems.len(), 1);
    let mut moved = r.clone();
    moved.inquiries[0].log_index = moved.inquiries[0].log_index.map(|x| x + 1);
    assert_eq!(check_report(&moved, &keys).unwrap().problems.len(), 1);

    // The report is a soft inquiry: it never counts against the score.
    let before = scoring(&c, ME).get_score(score_req(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    report(&c, &s).await;
    let after = scoring(&c, ME).get_score(score_req(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    assert_eq!(before.score, after.score);
    assert!(c.entries(ME).await.iter().any(|e| e.action == Action::ReportServed));
    c.shutdown().await;
}

/// A score's peer answer carries only what the scorecard counts: hard inquiries by query id and
/// time (no inquirer, no purpose, no soft ones), and the score still counts each federated
/// hard inquiry once, however many nodes recorded it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoring_answer_carries_only_hard_inquiries_and_each_counts_once() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(9);
    furnish(&c, &s).await;
    // bank applies twice (hard, recorded at all three nodes), payapp reviews (soft).
    let mut applied = Vec::new();
    for n in 0..2 {
        let req = score_req(&s, pb::Purpose::CreditApplication, &format!("loan-{n}"));
        applied.push(scoring(&c, BANK).get_score(req).await.unwrap().into_inner().query_id);
    }
    scoring(&c, ME).get_score(score_req(&s, pb::Purpose::AccountReview, "")).await.unwrap();

    let ask = |purpose: pb::Purpose, query_id: &str| pb::QueryRecordsRequest {
        subject_id: s.clone(),
        purpose: purpose as i32,
        consent_reference: "loan-9".into(),
        query_id: query_id.into(),
        records_only: false,
    };
    let mut as_bank = FederationServiceClient::new(c.f.channel(Role::Node, "bank", c.addrs[RENTAL]));
    for (purpose, query_id) in
        [(pb::Purpose::CreditApplication, "q-direct-1"), (pb::Purpose::AccountReview, "q-direct-2")]
    {
        let answer = as_bank.query_records(ask(purpose, query_id)).await.unwrap().into_inner();
        assert!(answer.inquiries.is_empty(), "{purpose:?}: no inquirer, no purpose: {:?}", answer.inquiries);
        assert!(answer.checkpoint.is_none());
        let ids: Vec<_> = answer.hard_inquiries.iter().map(|h| h.query_id.as_str()).collect();
        // Newest first; payapp's review and the soft q-direct-2 are not there.
        assert_eq!(ids, ["q-direct-1", applied[1].as_str(), applied[0].as_str()], "{purpose:?}");
        assert!(answer.hard_inquiries.iter().all(|h| h.inquiry_time.is_some()));
        assert_eq!(answer.records.len(), 1);
    }

    // payapp's credit-application score counts bank's two applications and q-direct-1 once
    // each (3), not once per node that recorded them (7).
    let score = scoring(&c, ME).get_score(score_req(&s, pb::Purpose::CreditApplication, "loan-10")).await.unwrap();
    let score = score.into_inner();
    assert!(!score.partial);
    let mut records = Vec::new();
    for (i, inst) in [(ME, "payapp"), (RENTAL, "bikeshare")] {
        let mut r = record(&s, &format!("{inst}-1"), 1);
        if i == RENTAL {
            r.kind = pb::RecordKind::DepositFreeRental as i32;
            r.payment_history[2] = pb::PaymentStatus::Late30 as i32;
        }
        records.push(bureau::convert::record_from_pb(r, inst, chrono::NaiveDate::MAX).unwrap());
    }
    let now = chrono::Utc::now();
    let hard = |n: usize| -> Vec<bureau::Inquiry> {
        (0..n)
            .map(|k| bureau::Inquiry {
                inquirer: String::new(),
                responder: String::new(),
                subject_id: s.clone(),
                purpose: bureau::Purpose::CreditApplication,
                hard: true,
                time: now,
                query_id: format!("q-{k}"),
                log_index: None,
            })
            .collect()
    };
    let model = bureau::Model::embedded_default();
    let (once, per_node) =
        (model.score(&records, &hard(3), now.date_naive()), model.score(&records, &hard(7), now.date_naive()));
    assert_ne!(once.score, per_node.score, "the model tells the two counts apart");
    assert_eq!(score.score, once.score);
    c.shutdown().await;
}

/// Listing who looked is the person's own request: it needs that purpose and their consent,
/// refused with a score's codes otherwise, and every listing is an audit entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_inquiries_needs_the_persons_request_and_consent_and_is_logged() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(10);
    furnish(&c, &s).await;
    scoring(&c, BANK).get_score(score_req(&s, pb::Purpose::CreditApplication, "loan-1")).await.unwrap();
    let list = |purpose: pb::Purpose, consent: &str| pb::ListSubjectInquiriesRequest {
        parent: format!("subjects/{s}"),
        purpose: purpose as i32,
        consent_reference: consent.into(),
        ..Default::default()
    };
    let mut at_me = subjects(&c, ME);
    let e = at_me.list_subject_inquiries(list(pb::Purpose::Unspecified, "c-1")).await.unwrap_err();
    assert_eq!((e.code(), common::violations(&e)[0].0.as_str()), (Code::InvalidArgument, "purpose"));
    let e = at_me.list_subject_inquiries(list(pb::Purpose::Collections, "c-1")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("PURPOSE_NOT_ACCEPTED")));
    let e = at_me.list_subject_inquiries(list(pb::Purpose::SubjectRequest, "")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("CONSENT_REQUIRED")));
    assert_eq!(e.message(), "purpose subject_request requires a consent reference");
    let before = c.entries(ME).await.iter().filter(|e| e.action == Action::InquiriesListed).count();
    assert_eq!(before, 0, "a refused listing is not a listing");

    let page = at_me.list_subject_inquiries(list(pb::Purpose::SubjectRequest, "c-list-1")).await.unwrap();
    let page = page.into_inner();
    assert_eq!(page.inquiries.len(), 1);
    assert_eq!(page.inquiries[0].inquirer, "bank");
    // The regulator sees the listing: who (the application), about whom, why, with what consent.
    let entries = c.entries(ME).await;
    let listed: Vec<_> = entries.iter().filter(|e| e.action == Action::InquiriesListed).collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let e = listed[0];
    assert_eq!((e.actor.as_str(), e.counterparty.as_str()), ("payapp", "payapp"));
    assert_eq!((e.subject_id.as_str(), e.consent_reference.as_str()), (s.as_str(), "c-list-1"));
    assert_eq!((e.purpose, e.record_count), (Some(bureau::Purpose::SubjectRequest), 1));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_a_peer_down_says_which_nodes_answered() {
    let mut c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(2);
    furnish(&c, &s).await;
    c.stop(RENTAL).await;
    let r = report(&c, &s).await;
    let score = r.score.unwrap();
    assert!(score.partial);
    let gone = score.coverage.iter().find(|p| p.peer == "bikeshare").unwrap();
    assert_eq!(gone.outcome, pb::PeerOutcome::Unreachable as i32);
    assert_eq!(r.records.iter().map(|x| x.record_id.as_str()).collect::<Vec<_>>(), ["payapp-1"]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_refuses_hard_inquiries_at_every_node_and_lets_existing_creditors_review() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(3);
    furnish(&c, &s).await;
    let placed = subjects(&c, ME)
        .place_protection(protect(&s, pb::ProtectionKind::SecurityFreeze, "id-check-55"))
        .await
        .unwrap()
        .into_inner();
    assert!(placed.frozen);
    for node in [ME, RENTAL, BANK] {
        until_frozen_at(&c, node, &s, true).await;
    }
    // A peer refuses a hard query itself, with the same reason.
    let direct = pb::QueryRecordsRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::CreditApplication as i32,
        consent_reference: "x".into(),
        query_id: "direct-1".into(),
        records_only: false,
    };
    let e = FederationServiceClient::new(c.f.channel(Role::Node, "bank", c.addrs[RENTAL]))
        .query_records(direct)
        .await
        .unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("SUBJECT_FROZEN")));
    // bikeshare furnishes a record about the person: its account review passes.
    let review =
        scoring(&c, RENTAL).get_score(score_req(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    assert_eq!(review.records_used, 2);
    // bank furnishes nothing about them: not an existing creditor.
    let e = scoring(&c, BANK).get_score(score_req(&s, pb::Purpose::Collections, "")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("SUBJECT_FROZEN")));
    // The person's own report still works, and shows the freeze.
    assert!(report(&c, &s).await.protection.unwrap().frozen);
    // Logged at every node.
    for node in [ME, RENTAL, BANK] {
        let es = c.entries(node).await;
        let logged = es
            .iter()
            .any(|e| matches!(e.action, Action::ProtectionChanged | Action::ProtectionReceived) && e.subject_id == s);
        assert!(logged, "{}", INSTITUTIONS[node]);
    }
    // The sender's and the receivers' logs reconcile.
    for _ in 0..50 {
        let acks = c.entries(ME).await.iter().filter(|e| e.action == Action::ProtectionForwarded).count();
        if acks == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for node in [ME, RENTAL, BANK] {
        let ch = c.f.channel(Role::Regulator, "pbc", c.addrs[node]);
        logs.push(
            bureau::regulator::verify(ch, &KeySource::PkiDir(c.f.fed.pki.0.clone()), state.path()).await.unwrap(),
        );
    }
    assert_eq!(bureau::regulator::reconcile(&logs), Vec::<String>::new());
    assert_eq!(logs[0].queries.iter().filter(|q| q.action == Action::ProtectionForwarded).count(), 2);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lift_reaches_a_node_that_was_down_when_it_returns() {
    let mut c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(4);
    furnish(&c, &s).await;
    subjects(&c, ME).place_protection(protect(&s, pb::ProtectionKind::SecurityFreeze, "id-1")).await.unwrap();
    for node in [ME, RENTAL, BANK] {
        until_frozen_at(&c, node, &s, true).await;
    }
    c.stop(BANK).await;
    // Lifted through another institution than the one that placed it: allowed with the
    // person's consent, and logged as such.
    let lifted = subjects(&c, RENTAL)
        .lift_protection(protect(&s, pb::ProtectionKind::SecurityFreeze, "id-2"))
        .await
        .unwrap()
        .into_inner();
    assert!(!lifted.frozen);
    let noted = c.entries(RENTAL).await.into_iter().find(|e| e.action == Action::ProtectionChanged).unwrap();
    assert!(noted.detail.contains("placed by payapp; lifted through bikeshare"), "{}", noted.detail);
    until_frozen_at(&c, RENTAL, &s, false).await;
    until_frozen_at(&c, ME, &s, false).await;
    // bank was down during the lift: still frozen there until it hears of it.
    c.restart(BANK).await;
    until_frozen_at(&c, BANK, &s, false).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fraud_alert_travels_with_answers_and_turns_approval_into_a_referral() {
    let mut c = Cluster::start(&INSTITUTIONS).await;
    for cfg in &mut c.cfgs {
        cfg.policies.insert(
            "deposit_waiver".into(),
            bureau::config::PolicyConfig {
                min_score: 350,
                purpose: bureau::Purpose::DepositWaiver,
                unscoreable: Default::default(),
            },
        );
    }
    c.stop(ME).await;
    c.restart(ME).await; // with the policy
    let s = subject(5);
    furnish(&c, &s).await;
    let decide = || pb::DecideRequest {
        subject_id: s.clone(),
        policy: "deposit_waiver".into(),
        consent_reference: "w-1".into(),
    };
    let plain = scoring(&c, ME).decide(decide()).await.unwrap().into_inner();
    assert_eq!((plain.approved, plain.outcome.as_str()), (true, "approve"));
    // Placed at bank only; payapp's answer comes from bank's answers before any notice lands.
    let placed = subjects(&c, BANK)
        .place_protection(protect(&s, pb::ProtectionKind::FraudAlert, "id-9"))
        .await
        .unwrap()
        .into_inner();
    assert!(placed.fraud_alert && placed.alert_expire_time.is_some());
    let referred = scoring(&c, ME).decide(decide()).await.unwrap().into_inner();
    assert_eq!((referred.approved, referred.outcome.as_str()), (false, "refer: verify identity"));
    assert!(referred.score.unwrap().fraud_alert);
    // A year on, the alert has lapsed.
    c.clock.advance(chrono::Duration::days(366));
    let later = scoring(&c, ME).decide(decide()).await.unwrap().into_inner();
    assert_eq!(later.outcome, "approve");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_and_subject_ids_are_checked() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let mut me = subjects(&c, ME);
    let s = subject(6);
    let e = me
        .get_report(pb::GetReportRequest { subject_id: s.clone(), consent_reference: String::new() })
        .await
        .unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("CONSENT_REQUIRED")));
    for kind in [pb::ProtectionKind::SecurityFreeze, pb::ProtectionKind::FraudAlert] {
        let e = me.place_protection(protect(&s, kind, "")).await.unwrap_err();
        assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("CONSENT_REQUIRED")));
        let e = me.lift_protection(protect(&s, kind, " ")).await.unwrap_err();
        assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("CONSENT_REQUIRED")));
    }
    let e = me.place_protection(protect("not-a-subject", pb::ProtectionKind::SecurityFreeze, "c")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = me
        .get_report(pb::GetReportRequest { subject_id: "ABC".into(), consent_reference: "c".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = me.place_protection(protect(&s, pb::ProtectionKind::Unspecified, "c")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // A person no node knows yet may freeze their file.
    let frozen = me.place_protection(protect(&s, pb::ProtectionKind::SecurityFreeze, "c")).await.unwrap().into_inner();
    assert!(frozen.frozen);
    // Another institution's application may not act at this node.
    let e = SubjectsServiceClient::new(c.f.channel(Role::Application, "bank", c.addrs[ME]))
        .lift_protection(protect(&s, pb::ProtectionKind::SecurityFreeze, "c"))
        .await
        .unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("NOT_OWN_INSTITUTION")));
    c.shutdown().await;
}
