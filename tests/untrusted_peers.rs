//! Members who do not have to trust each other, against real nodes over real gRPC: a freeze
//! placed at one node stops a hard inquiry at another before any notice has reached it (the
//! scorer adopts the freeze from the refusal), and a peer's notices are checked, never taken on
//! its word: a back-dated dispute, a far-future protection change and a change that names
//! another institution are refused with their exact code and field or reason.

mod common;

use bureau::{
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, scoring_service_client::ScoringServiceClient,
        subjects_service_client::SubjectsServiceClient,
    },
    Action, Role,
};
use chrono::{Duration, Utc};
use common::{reason, record, subject, violations, Cluster};
use tonic::Code;
use tonic_types::StatusExt;

const PAYAPP: usize = 0;
const BANK: usize = 1;
const INSTITUTIONS: [&str; 2] = ["payapp", "bank"];

fn score_req(s: &str, purpose: pb::Purpose, consent: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest { subject_id: s.into(), purpose: purpose as i32, consent_reference: consent.into() }
}

async fn furnish(c: &Cluster, i: usize, s: &str) {
    let inst = INSTITUTIONS[i];
    c.f.records(Role::Application, inst, c.addrs[i])
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(s, &format!("{inst}-1"), 1)] })
        .await
        .unwrap();
}

fn frozen(e: &tonic::Status) -> bool {
    e.code() == Code::FailedPrecondition && reason(e).as_deref() == Some("SUBJECT_FROZEN")
}

/// Refusals payapp logged of queries from bank.
async fn refused_at_payapp(c: &Cluster) -> usize {
    c.entries(PAYAPP).await.iter().filter(|e| e.action == Action::Refusal && e.actor == "bank").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_placed_elsewhere_stops_a_hard_inquiry_at_once_and_the_scorer_adopts_it() {
    let mut c = Cluster::start(&INSTITUTIONS).await;
    // payapp's notices can never reach bank (its peer entry points at a closed port), so bank
    // can only learn of the freeze from payapp's answers: deterministic, whatever the timing.
    let closed = bureau::bind_loopback().await.unwrap().local_addr().unwrap();
    c.stop(PAYAPP).await;
    c.cfgs[PAYAPP].peers = vec![bureau::config::PeerConfig::new("bank", closed.to_string())];
    c.restart(PAYAPP).await;
    let s = subject(1);
    furnish(&c, PAYAPP, &s).await;
    furnish(&c, BANK, &s).await;
    SubjectsServiceClient::new(c.app(PAYAPP))
        .place_protection(pb::ProtectionRequest {
            subject_id: s.clone(),
            kind: pb::ProtectionKind::SecurityFreeze as i32,
            consent_reference: "id-check-1".into(),
        })
        .await
        .unwrap();

    // payapp refuses a hard query with the freeze it holds, for the asking node to adopt.
    let e = FederationServiceClient::new(c.f.channel(Role::Node, "bank", c.addrs[PAYAPP]))
        .query_records(pb::QueryRecordsRequest {
            subject_id: s.clone(),
            purpose: pb::Purpose::CreditApplication as i32,
            consent_reference: "c".into(),
            query_id: "direct-1".into(),
            records_only: false,
        })
        .await
        .unwrap_err();
    assert!(frozen(&e), "{e:?}");
    let info = e.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata.get("freezeChangedBy").map(String::as_str), Some("payapp"));
    assert_eq!(info.metadata.get("freezeActive").map(String::as_str), Some("true"));

    // bank has heard nothing, yet its deposit-waiver score is refused as a whole: no partial score.
    let mut bank = ScoringServiceClient::new(c.app(BANK));
    let e = bank.get_score(score_req(&s, pb::Purpose::DepositWaiver, "waiver-1")).await.unwrap_err();
    assert!(frozen(&e), "{e:?}");
    // bank logged its side: the query to payapp, refused, and the score refused with the adoption.
    let es = c.entries(BANK).await;
    let out = es.iter().find(|e| e.action == Action::QueryOutbound && e.counterparty == "payapp").unwrap();
    assert_eq!(out.outcome, "refused");
    let refusal = es.iter().find(|e| e.action == Action::Refusal && e.query_id == out.query_id).unwrap();
    assert!(refusal.outcome.starts_with("score not served: the subject's file is frozen"), "{}", refusal.outcome);
    assert!(refusal.detail.starts_with("freeze adopted from payapp: placed through payapp"), "{}", refusal.detail);

    // bank now holds the freeze itself: its next hard inquiry is refused before anyone is asked.
    let before = refused_at_payapp(&c).await;
    let e = bank.get_score(score_req(&s, pb::Purpose::CreditApplication, "loan-1")).await.unwrap_err();
    assert!(frozen(&e), "{e:?}");
    assert_eq!(refused_at_payapp(&c).await, before, "payapp was not asked again");
    let report = SubjectsServiceClient::new(c.app(BANK))
        .get_report(pb::GetReportRequest { subject_id: s.clone(), consent_reference: "report-1".into() })
        .await
        .unwrap()
        .into_inner();
    let held = report.protection.unwrap();
    assert!(held.frozen);
    assert_eq!(held.freeze_placed_by, "payapp");
    // Soft purposes keep working: bank furnishes a record about the person, so it may review.
    let review = bank.get_score(score_req(&s, pb::Purpose::AccountReview, "")).await.unwrap().into_inner();
    assert_eq!(review.records_used, 2);
    assert!(!review.partial);
    c.shutdown().await;
}

fn ts(t: chrono::DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 })
}

/// A dispute about payapp's record `payapp-1` as bank's node would deliver it, filed at `filed`.
fn dispute(s: &str, filed: chrono::DateTime<Utc>) -> pb::Dispute {
    pb::Dispute {
        name: "institutions/bank/disputes/0123456789abcdef01234567".into(),
        filer: "bank".into(),
        record: "institutions/payapp/records/payapp-1".into(),
        subject_id: s.into(),
        reason: pb::DisputeReason::NotMine as i32,
        status: pb::DisputeStatus::PendingDelivery as i32,
        file_time: ts(filed),
        ..Default::default()
    }
}

/// A freeze placed through `by` at `at`, as bank's node would tell it.
fn freeze_notice(s: &str, at: chrono::DateTime<Utc>, by: &str, placed_by: &str) -> pb::ProtectionNotice {
    pb::ProtectionNotice {
        change_id: "change-1".into(),
        subject_id: s.into(),
        protection: Some(pb::SubjectProtection {
            frozen: true,
            freeze_placed_by: placed_by.into(),
            freeze_time: ts(at),
            ..Default::default()
        }),
        freeze_changed: ts(at),
        freeze_changed_by: by.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_forged_times_and_identities_are_refused() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(2);
    furnish(&c, PAYAPP, &s).await;
    let mut as_bank = FederationServiceClient::new(c.f.channel(Role::Node, "bank", c.addrs[PAYAPP]));
    let deliver = |body: pb::notice::Body| pb::Notice { body: Some(body) };
    let now = Utc::now();

    // A back-dated filing would start a deadline already past: refused, the record untouched.
    for filed in [now - Duration::days(30), now + Duration::hours(1)] {
        let e = as_bank.deliver_notice(deliver(pb::notice::Body::DisputeFiled(dispute(&s, filed)))).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violations(&e).first().map(|v| v.0.as_str()), Some("file_time"), "{e:?}");
    }
    let held =
        c.f.records(Role::Application, "payapp", c.addrs[PAYAPP])
            .get_record(pb::GetRecordRequest { name: "institutions/payapp/records/payapp-1".into() })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(held.dispute_state, pb::RecordDisputeState::Unspecified as i32, "not flagged");
    // Filed now, the same notice is taken, with the furnisher's own deadline ahead.
    let taken = as_bank
        .deliver_notice(deliver(pb::notice::Body::DisputeFiled(dispute(&s, now))))
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!(taken.deadline.unwrap().seconds - now.timestamp(), 20 * 86_400, "pbc: 20 days from filing");

    // A far-future freeze would win every merge for ever: refused, naming the field.
    let far = freeze_notice(&s, now + Duration::days(3650), "bank", "bank");
    let e = as_bank.deliver_notice(deliver(pb::notice::Body::Protection(far))).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violations(&e).first().map(|v| v.0.as_str()), Some("freeze_changed"), "{e:?}");

    // A change through another institution is that institution's to tell.
    let forged = freeze_notice(&s, now, "payapp", "payapp");
    let e = as_bank.deliver_notice(deliver(pb::notice::Body::Protection(forged))).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("NOT_NOTICE_SENDER")), "{e:?}");
    assert!(e.message().starts_with("freeze_changed_by names \"payapp\""), "{}", e.message());
    let placed_elsewhere = freeze_notice(&s, now, "bank", "payapp");
    let e = as_bank.deliver_notice(deliver(pb::notice::Body::Protection(placed_elsewhere))).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("NOT_NOTICE_SENDER")), "{e:?}");
    assert!(e.message().starts_with("protection.freeze_placed_by"), "{}", e.message());
    assert!(
        c.entries(PAYAPP).await.iter().any(|e| e.action == Action::Refusal && e.outcome == "refused:NOT_NOTICE_SENDER"),
        "the refusal is logged"
    );
    // None of it froze the file at payapp.
    let report = SubjectsServiceClient::new(c.app(PAYAPP))
        .get_report(pb::GetReportRequest { subject_id: s.clone(), consent_reference: "report-2".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!report.protection.unwrap().frozen);
    // bank's own freeze, told now, is taken.
    let own = freeze_notice(&s, now, "bank", "bank");
    as_bank.deliver_notice(deliver(pb::notice::Body::Protection(own))).await.unwrap();
    c.shutdown().await;
}
