//! The record locator and the signed directory, end to end: real nodes following a signed
//! directory, a real locator node, registrations through the log, scores that ask only the
//! holders.

mod common;

use std::{net::SocketAddr, time::Duration};

use bureau::{
    pb::bureau::v1::{
        self as pb, locator_service_client::LocatorServiceClient, records_service_client::RecordsServiceClient,
        scoring_service_client::ScoringServiceClient, subjects_service_client::SubjectsServiceClient,
    },
    regulator::{self, check_report, KeySource},
    Action, Role, RunningNode,
};
use common::{fed, reason, record, subject, Fed};
use tonic::Code;

const MEMBERS: [&str; 5] = ["bank", "payapp", "bikeshare", "lender", "charger"];

async fn furnish(f: &Fed, node: &RunningNode, s: &str, id: &str) {
    let mut c = RecordsServiceClient::new(f.channel(Role::Application, &node.institution, node.addr));
    let mut r = record(s, id, 1);
    r.furnisher = node.institution.clone();
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![r] }).await.unwrap();
}

fn scoring(f: &Fed, node: &RunningNode) -> ScoringServiceClient<tonic::transport::Channel> {
    ScoringServiceClient::new(f.channel(Role::Application, &node.institution, node.addr))
}

fn review(s: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest { subject_id: s.into(), purpose: pb::Purpose::AccountReview as i32, ..Default::default() }
}

/// The five [`MEMBERS`] and one locator, following a directory that names them all.
async fn members_and_a_locator() -> (Fed, Vec<RunningNode>, Vec<RunningNode>) {
    let mut ids = MEMBERS.to_vec();
    ids.push("locator");
    let f = fed(&ids, &["pbc"]);
    let (nodes, locators) = f.fed.start_with_directory(&MEMBERS, &["locator"], |_| {}).await.unwrap();
    (f, nodes, locators)
}

/// Shuts every node down.
async fn stop(nodes: Vec<RunningNode>, locators: Vec<RunningNode>) {
    for n in nodes.into_iter().chain(locators) {
        n.shutdown().await.unwrap();
    }
}

/// Three credit applications about `s` at charger (`nodes[4]`), which holds nothing: their scores.
async fn three_applications_at_charger(f: &Fed, nodes: &[RunningNode], s: &str) -> Vec<pb::Score> {
    let mut scores = Vec::new();
    for n in 0..3 {
        let req = pb::GetScoreRequest {
            subject_id: s.into(),
            purpose: pb::Purpose::CreditApplication as i32,
            consent_reference: format!("loan-app-{n}"),
        };
        scores.push(scoring(f, &nodes[4]).get_score(req).await.unwrap().into_inner());
    }
    scores
}

/// Scores `s` at `node` until the locator names `holders` members (registrations are
/// delivered in the background), returning that score.
async fn score_once_located(f: &Fed, node: &RunningNode, s: &str, holders: u32) -> pb::Score {
    let mut c = scoring(f, node);
    for _ in 0..100 {
        let score = c.get_score(review(s)).await.unwrap().into_inner();
        if score.route == pb::ScoreRoute::Located as i32 && score.members_asked == holders {
            return score;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the locator never named {holders} holders of {s}");
}

/// A score asks the locator, then only the members that hold records about the person: two of
/// the four others, and the records of both are in the score.
#[tokio::test]
async fn a_score_asks_only_the_members_that_hold_records() {
    let (f, nodes, locators) = members_and_a_locator().await;
    let s = subject(1);
    furnish(&f, &nodes[1], &s, "p-1").await;
    furnish(&f, &nodes[2], &s, "b-1").await;
    furnish(&f, &nodes[3], &subject(2), "noise").await;
    let score = score_once_located(&f, &nodes[0], &s, 2).await;
    assert_eq!(score.members, 4, "every active member but the scoring node");
    assert_eq!(score.records_used, 2);
    let asked: Vec<&str> = score.coverage.iter().map(|c| c.peer.as_str()).collect();
    assert_eq!(asked, ["payapp", "bikeshare", "locator"], "holders in directory order, then the locator");
    assert!(!score.partial);
    stop(nodes, locators).await;
}

/// Starts `id`'s node again on `addr` (the directory names it there), over its own store.
async fn restart(f: &Fed, id: &str, addr: SocketAddr, locator: bool) -> RunningNode {
    let mut cfg = f.fed.directory_config(id, locator);
    cfg.limits.outbox_retry_max_ms = 300;
    for _ in 0..50 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return bureau::start_on(cfg, l).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot bind {addr} again");
}

/// The holders of `s` as the locator at `locator` names them to member `asker`'s node.
async fn holders(f: &Fed, asker: &str, locator: SocketAddr, s: &str) -> Vec<String> {
    let mut c = LocatorServiceClient::new(f.channel(Role::Node, asker, locator));
    let req = pb::QueryRecordsRequest {
        subject_id: s.into(),
        purpose: pb::Purpose::AccountReview as i32,
        query_id: uuid::Uuid::new_v4().to_string(),
        records_only: true,
        ..Default::default()
    };
    c.locate(req).await.unwrap().into_inner().holders
}

/// Waits until the locator names exactly `want` as holders of `s`.
async fn until_holders(f: &Fed, locator: SocketAddr, s: &str, want: &[&str]) {
    let mut last = Vec::new();
    for _ in 0..100 {
        last = holders(f, "bank", locator, s).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the locator names {last:?} as holders of {s}, expected {want:?}");
}

/// Registrations follow the records: the first record registers its furnisher, deleting the
/// last one unregisters it, across restarts of both the member and the locator (the change is
/// read from the member's log, so one made while the locator is down arrives when it is back).
#[tokio::test]
async fn registrations_follow_records_across_restarts_of_either_side() {
    let f = fed(&["bank", "payapp", "locator"], &["pbc"]);
    let tweak = |c: &mut bureau::NodeConfig| c.limits.outbox_retry_max_ms = 300;
    let (mut nodes, mut locators) = f.fed.start_with_directory(&["bank", "payapp"], &["locator"], tweak).await.unwrap();
    let s = subject(7);
    furnish(&f, &nodes[1], &s, "p-1").await;
    furnish(&f, &nodes[1], &s, "p-2").await;
    let loc = locators[0].addr;
    until_holders(&f, loc, &s, &["payapp"]).await;

    // The locator goes down; payapp deletes both records and restarts meanwhile.
    locators.pop().unwrap().shutdown().await.unwrap();
    let mut records = RecordsServiceClient::new(f.channel(Role::Application, "payapp", nodes[1].addr));
    for id in ["p-1", "p-2"] {
        let name = format!("institutions/payapp/records/{id}");
        let reason = pb::DeletionReason::FurnishedInError as i32;
        records.delete_record(pb::DeleteRecordRequest { name, reason, note: String::new() }).await.unwrap();
    }
    let payapp_addr = nodes[1].addr;
    nodes.pop().unwrap().shutdown().await.unwrap();
    nodes.push(restart(&f, "payapp", payapp_addr, false).await);
    locators.push(restart(&f, "locator", loc, true).await);
    until_holders(&f, loc, &s, &[]).await;

    // A new record registers payapp again; restarting the locator loses nothing.
    furnish(&f, &nodes[1], &s, "p-3").await;
    until_holders(&f, loc, &s, &["payapp"]).await;
    locators.pop().unwrap().shutdown().await.unwrap();
    locators.push(restart(&f, "locator", loc, true).await);
    assert_eq!(holders(&f, "bank", loc, &s).await, ["payapp"]);

    // What payapp delivered and what the locator registered are both logged.
    let log = entries(&f, &locators[0]).await;
    assert!(log.iter().any(|e| e.action == Action::HoldingsRegistered && e.actor == "payapp" && e.record_count >= 1));
    let log = entries(&f, &nodes[1]).await;
    assert!(log.iter().any(|e| e.action == Action::HoldingsDelivered && e.counterparty == "locator"));
    stop(nodes, locators).await;
}

/// Every entry of `node`'s log, read as the regulator.
async fn entries(f: &Fed, node: &RunningNode) -> Vec<bureau::Entry> {
    let mut c = pb::audit_service_client::AuditServiceClient::new(f.channel(Role::Regulator, "pbc", node.addr));
    let size = c.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
    regulator::fetch_entries(&mut c, size)
        .await
        .unwrap()
        .iter()
        .map(|e| bureau::Entry::from_bytes(&e.leaf_data).unwrap())
        .collect()
}

/// A lookup is an inquiry: refused without the consent its purpose needs, refused to a caller
/// that is not a member's node, and logged at the locator so the regulator reconciles it with
/// the asker's log like any peer query.
#[tokio::test]
async fn a_lookup_needs_purpose_and_consent_and_every_lookup_is_reconciled() {
    let (f, nodes, locators) = members_and_a_locator().await;
    let loc = locators[0].addr;
    let s = subject(3);
    furnish(&f, &nodes[1], &s, "p-1").await;
    score_once_located(&f, &nodes[3], &s, 1).await;

    let mut c = LocatorServiceClient::new(f.channel(Role::Node, "bank", loc));
    let ask = |purpose: pb::Purpose, consent: &str| pb::QueryRecordsRequest {
        subject_id: s.clone(),
        purpose: purpose as i32,
        consent_reference: consent.into(),
        query_id: uuid::Uuid::new_v4().to_string(),
        records_only: true,
    };
    let e = c.locate(ask(pb::Purpose::CreditApplication, "")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("CONSENT_REQUIRED")));
    let e = c.locate(ask(pb::Purpose::Unspecified, "x")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut app = LocatorServiceClient::new(f.channel(Role::Application, "bank", loc));
    let e = app.locate(ask(pb::Purpose::AccountReview, "")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("WRONG_ROLE")));
    // A registration for someone else's shard or a malformed pseudonym is refused.
    let bad = pb::Holding { subject_id: "not-a-pseudonym".into(), holds: true, version: 1 };
    let e = c.register(pb::RegisterRequest { holdings: vec![bad] }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Scores at two members, each a lookup at the locator: every lookup reconciles.
    let mut score = scoring(&f, &nodes[0]);
    let consent = pb::GetScoreRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::CreditApplication as i32,
        consent_reference: "loan-app-1".into(),
    };
    let made = score.get_score(consent).await.unwrap().into_inner();
    assert_eq!((made.route, made.members_asked), (pb::ScoreRoute::Located as i32, 1));
    scoring(&f, &nodes[2]).get_score(review(&s)).await.unwrap();
    let looked = entries(&f, &locators[0]).await;
    let inbound = looked
        .iter()
        .find(|e| e.action == Action::QueryInbound && e.query_id == made.query_id)
        .expect("the lookup is logged at the locator");
    assert_eq!((inbound.actor.as_str(), inbound.consent_reference.as_str()), ("bank", "loan-app-1"));
    let state = tempfile::tempdir().unwrap();
    let keys = KeySource::PkiDir(f.fed.pki.0.clone());
    let mut logs = Vec::new();
    for n in nodes.iter().chain(&locators) {
        let log = regulator::verify(f.channel(Role::Regulator, "pbc", n.addr), &keys, state.path()).await.unwrap();
        assert_eq!(log.problems, Vec::<String>::new(), "{}", log.origin);
        logs.push(log);
    }
    assert_eq!(regulator::reconcile(&logs), Vec::<String>::new());
    // A member that looks someone up without logging it (here: bank's node key used by hand)
    // is caught: the locator logged the lookup, bank's log has no entry sending it.
    let quiet = uuid::Uuid::new_v4().to_string();
    let sneak = pb::QueryRecordsRequest { query_id: quiet.clone(), ..ask(pb::Purpose::AccountReview, "") };
    assert_eq!(c.locate(sneak).await.unwrap().into_inner().holders, ["payapp"]);
    let locator_log = regulator::verify(f.channel(Role::Regulator, "pbc", loc), &keys, state.path()).await.unwrap();
    let last = logs.len() - 1;
    logs[last] = locator_log;
    let caught = regulator::reconcile(&logs);
    assert_eq!(caught.len(), 1, "{caught:?}");
    assert!(caught[0].contains(&quiet) && caught[0].contains("bank has no entry sending it"), "{caught:?}");
    // Registrations reconcile batch by batch (payapp's above did): one written into the
    // locator with bank's node key by hand, which bank's log never delivered, is caught too.
    let forged = pb::Holding { subject_id: subject(99), holds: true, version: 1 };
    c.register(pb::RegisterRequest { holdings: vec![forged] }).await.unwrap();
    logs[last] = regulator::verify(f.channel(Role::Regulator, "pbc", loc), &keys, state.path()).await.unwrap();
    let caught = regulator::reconcile(&logs);
    assert_eq!(caught.len(), 2, "{caught:?}");
    assert!(
        caught.iter().any(|p| p.contains("locator registered holdings batch")
            && p.contains("from bank, but bank has no entry delivering it")),
        "{caught:?}"
    );
    // The asker's outbound entry to the locator is what the regulator matched.
    let bank = entries(&f, &nodes[0]).await;
    assert!(bank.iter().any(|e| e.action == Action::QueryOutbound
        && e.counterparty == "locator"
        && e.query_id == made.query_id
        && e.outcome == "answered"));
    stop(nodes, locators).await;
}

/// While the locator cannot be reached, scores ask every member and are complete (route
/// LOCATOR_DOWN), and each member's health says so; once it is back, scores ask only the
/// holders again.
#[tokio::test]
async fn while_the_locator_is_down_scores_ask_everyone_and_health_says_so() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    let (f, nodes, mut locators) = members_and_a_locator().await;
    let loc = locators[0].addr;
    let s = subject(4);
    furnish(&f, &nodes[1], &s, "p-1").await;
    furnish(&f, &nodes[2], &s, "b-1").await;
    let located = score_once_located(&f, &nodes[0], &s, 2).await;
    let health = |status: ServingStatus| {
        let f = &f;
        let addr = nodes[0].addr;
        async move {
            let mut h = HealthClient::new(f.channel(Role::Application, "bank", addr));
            for _ in 0..100 {
                let req = HealthCheckRequest { service: bureau::health::LOCATOR.into() };
                if h.check(req).await.is_ok_and(|r| r.into_inner().status == status as i32) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{} never became {status:?}", bureau::health::LOCATOR);
        }
    };
    health(ServingStatus::Serving).await;

    locators.pop().unwrap().shutdown().await.unwrap();
    let down = scoring(&f, &nodes[0]).get_score(review(&s)).await.unwrap().into_inner();
    assert_eq!(down.route, pb::ScoreRoute::LocatorDown as i32);
    assert_eq!((down.members_asked, down.members), (4, 4));
    assert!(!down.partial, "every member answered");
    assert_eq!((down.records_used, down.score), (located.records_used, located.score));
    health(ServingStatus::NotServing).await;

    locators.push(restart(&f, "locator", loc, true).await);
    health(ServingStatus::Serving).await;
    let back = scoring(&f, &nodes[0]).get_score(review(&s)).await.unwrap().into_inner();
    assert_eq!((back.route, back.members_asked), (pb::ScoreRoute::Located as i32, 2));
    stop(nodes, locators).await;
}

/// Hard inquiries stay visible federation-wide: a member that holds nothing asks three times
/// for credit; a later score elsewhere asks only the holders, yet counts those inquiries (the
/// locator saw every lookup), and a person's report lists every inquiry with its proof.
#[tokio::test]
async fn hard_inquiries_count_everywhere_and_the_report_proves_every_one() {
    let (f, nodes, locators) = members_and_a_locator().await;
    let s = subject(5);
    furnish(&f, &nodes[1], &s, "p-1").await;
    furnish(&f, &nodes[2], &s, "b-1").await;
    let before = score_once_located(&f, &nodes[1], &s, 1).await;
    for asked in three_applications_at_charger(&f, &nodes, &s).await {
        assert_eq!((asked.route, asked.members_asked), (pb::ScoreRoute::Located as i32, 2));
    }
    let after = scoring(&f, &nodes[1]).get_score(review(&s)).await.unwrap().into_inner();
    assert_eq!(after.members_asked, 1, "charger, who asked, holds nothing and is not asked");
    assert!(after.score < before.score, "three hard inquiries cost points: {} -> {}", before.score, after.score);

    let report = SubjectsServiceClient::new(f.channel(Role::Application, "payapp", nodes[1].addr))
        .get_report(pb::GetReportRequest { subject_id: s.clone(), consent_reference: "report-1".into() })
        .await
        .unwrap()
        .into_inner();
    let score = report.score.clone().unwrap();
    assert_eq!(score.route, pb::ScoreRoute::Report as i32);
    let by_charger: Vec<_> = report.inquiries.iter().filter(|i| i.inquirer == "charger").collect();
    // Each application: one lookup at the locator, one query at each of the two holders, and
    // the inquiry charger's own node recorded.
    let at = |who: &str| by_charger.iter().filter(|i| i.responder == who).count();
    assert_eq!([at("locator"), at("payapp"), at("bikeshare"), at("charger"), by_charger.len()], [3, 3, 3, 3, 12]);
    let check = check_report(&report, &KeySource::PkiDir(f.fed.pki.0.clone())).unwrap();
    assert_eq!((check.proven, check.unproven, check.problems), (report.inquiries.len(), 0, vec![]));
    stop(nodes, locators).await;
}

/// A shard split moves every holding to its new shard, records unchanged: each member sweeps
/// its own records when the directory's shard map changes and registers the people whose shard
/// changed at the new one, so lookups there name the holders from the first score.
#[tokio::test]
async fn a_shard_split_moves_every_holding_to_its_new_shard() {
    let f = fed(&["bank", "payapp", "lender", "locator", "locator2"], &["pbc"]);
    let tweak = |c: &mut bureau::NodeConfig| {
        c.limits.outbox_retry_max_ms = 300;
        c.limits.crl_reload_ms = 200;
    };
    let (nodes, locators) =
        f.fed.start_with_directory(&["bank", "payapp", "lender"], &["locator", "locator2"], tweak).await.unwrap();
    let members: Vec<(&str, SocketAddr)> = nodes.iter().map(|n| (n.institution.as_str(), n.addr)).collect();
    let (one, two) = (locators[0].addr, locators[1].addr);
    // First one shard serves every pseudonym.
    f.fed.publish_directory(&members, &[("locator", one)]).unwrap();
    // Two people whose first hex digit is odd (served by locator2 after the split: the test
    // kit deals the 16 digits out in turn), one whose digit is even.
    let digit = |s: &String| u8::from_str_radix(&s[..1], 16).unwrap() % 2;
    let odd: Vec<String> = (1..200).map(subject).filter(|s| digit(s) == 1).take(2).collect();
    let even = (1..200).map(subject).find(|s| digit(s) == 0).unwrap();
    for (k, s) in odd.iter().chain([&even]).enumerate() {
        furnish(&f, &nodes[1], s, &format!("p-{k}")).await;
        furnish(&f, &nodes[2], s, &format!("l-{k}")).await;
    }
    for s in odd.iter().chain([&even]) {
        until_holders(&f, one, s, &["lender", "payapp"]).await;
        score_once_located(&f, &nodes[0], s, 2).await;
    }

    // The split: odd digits go to locator2. No record changes.
    f.fed.publish_directory(&members, &[("locator", one), ("locator2", two)]).unwrap();
    for s in &odd {
        until_holders(&f, two, s, &["lender", "payapp"]).await;
    }
    until_holders(&f, one, &even, &["lender", "payapp"]).await;
    for s in odd.iter().chain([&even]) {
        let score = score_once_located(&f, &nodes[0], s, 2).await;
        assert_eq!(score.records_used, 2, "both holders' records in the score");
    }
    // The sweep is logged where it was made.
    for member in &nodes[1..] {
        let log = entries(&f, member).await;
        assert!(
            log.iter().any(|e| e.action == Action::HoldingsDelivered && e.counterparty.contains("locator2")),
            "{} logged what it moved",
            member.institution
        );
    }
    // A second look finds nothing to move: the locator2 registrations are not sent again.
    let registered = |log: &[bureau::Entry]| log.iter().filter(|e| e.action == Action::HoldingsRegistered).count();
    let before = registered(&entries(&f, &locators[1]).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(registered(&entries(&f, &locators[1]).await), before, "the sweep ran once");
    stop(nodes, locators).await;
}

/// A scorer that holds nothing about the person, and so recorded none of the hard inquiries
/// made elsewhere, still counts them: the locator saw every lookup and returns the hard
/// inquiries it recorded, though the scorer asks for records only (found missing: the locator
/// answered the scorer's `records_only` with no inquiries, and such a score ignored them).
#[tokio::test]
async fn a_scorer_holding_nothing_counts_the_hard_inquiries_made_elsewhere() {
    let (f, nodes, locators) = members_and_a_locator().await;
    let s = subject(6);
    furnish(&f, &nodes[1], &s, "p-1").await;
    furnish(&f, &nodes[2], &s, "b-1").await;
    let before = score_once_located(&f, &nodes[3], &s, 2).await;
    three_applications_at_charger(&f, &nodes, &s).await;
    let after = scoring(&f, &nodes[3]).get_score(review(&s)).await.unwrap().into_inner();
    assert_eq!((after.route, after.members_asked), (pb::ScoreRoute::Located as i32, 2), "lender holds nothing");
    assert!(after.score < before.score, "three hard inquiries cost points: {} -> {}", before.score, after.score);
    assert!(after.reasons.iter().any(|r| r.code == "I01"), "the inquiries named: {:?}", after.reasons);
    stop(nodes, locators).await;
}
