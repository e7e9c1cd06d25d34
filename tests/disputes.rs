//! Disputes across three real nodes: filed at payapp (the filer), furnished by bikeshare, scored
//! by bank. The flag and the exclusion at the scorer, the resolution back at the filer, the
//! deadline (day 19, 20, 21 on a clock the test moves), a furnisher down at filing and a filer
//! restarted before delivery, every refusal with its code, and the audit trail at both ends.

mod common;

use std::time::Duration;

use bureau::{
    pb::bureau::v1::{
        self as pb, disputes_service_client::DisputesServiceClient, scoring_service_client::ScoringServiceClient,
    },
    regulator::{self, KeySource},
    Action, Entry, Role,
};
use common::{reason, record, subject, violations, Cluster};
use tonic::{transport::Channel, Code};

const FILER: usize = 0;
const FURNISHER: usize = 1;
const SCORER: usize = 2;
const INSTITUTIONS: [&str; 3] = ["payapp", "bikeshare", "bank"];

/// The three nodes of these tests.
type Trio = Cluster;

async fn trio() -> Trio {
    Cluster::start(&INSTITUTIONS).await
}

async fn score(t: &Trio, s: &str) -> pb::Score {
    ScoringServiceClient::new(t.app(SCORER))
        .get_score(pb::GetScoreRequest {
            subject_id: s.into(),
            purpose: pb::Purpose::AccountReview as i32,
            consent_reference: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn disputes(t: &Trio, i: usize) -> DisputesServiceClient<Channel> {
    DisputesServiceClient::new(t.app(i))
}

/// The furnisher's two records about `s`: `b-bad` charged off after months of late payments,
/// `b-good` paid as agreed.
async fn furnish(t: &Trio, s: &str) {
    let mut bad = record(s, "b-bad", 1);
    bad.status = pb::AccountStatus::ChargedOff as i32;
    bad.days_past_due = 150;
    bad.payment_history = vec![pb::PaymentStatus::Late120Plus as i32; 6];
    let good = record(s, "b-good", 1);
    let mut c = t.f.records(Role::Application, INSTITUTIONS[FURNISHER], t.addrs[FURNISHER]);
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![bad, good] }).await.unwrap();
}

fn filing(s: &str, record_id: &str, statement: &str) -> pb::FileDisputeRequest {
    pb::FileDisputeRequest {
        record: format!("institutions/bikeshare/records/{record_id}"),
        subject_id: s.into(),
        reason: pb::DisputeReason::NotMine as i32,
        statement: statement.into(),
        consent_reference: "consent-dispute".into(),
    }
}

/// Polls the filer's copy of a dispute until `until` holds (deliveries are asynchronous).
async fn wait_for(t: &Trio, name: &str, until: impl Fn(&pb::Dispute) -> bool) -> pb::Dispute {
    let mut last = None;
    for _ in 0..200 {
        let d = disputes(t, FILER).get_dispute(pb::GetDisputeRequest { name: name.into() }).await.unwrap().into_inner();
        if until(&d) {
            return d;
        }
        last = Some(d);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dispute never reached the expected state: {last:?}");
}

fn status(d: &pb::Dispute) -> pb::DisputeStatus {
    pb::DisputeStatus::try_from(d.status).unwrap()
}

async fn listed(t: &Trio, s: &str) -> Vec<pb::CreditRecord> {
    t.f.records(Role::Application, INSTITUTIONS[FURNISHER], t.addrs[FURNISHER])
        .list_records(pb::ListRecordsRequest {
            parent: format!("subjects/{s}"),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_reaches_the_furnisher_flags_the_record_everywhere_and_its_resolution_returns() {
    let t = trio().await;
    let s = subject(1);
    furnish(&t, &s).await;
    let before = score(&t, &s).await;
    assert_eq!((before.records_used, before.disputed_records_excluded), (2, 0));

    let filed =
        disputes(&t, FILER).file_dispute(filing(&s, "b-bad", "I never rented a bike")).await.unwrap().into_inner();
    assert_eq!(status(&filed), pb::DisputeStatus::Open, "delivered at once: the furnisher is up");
    assert!(filed.name.starts_with("institutions/payapp/disputes/"), "{}", filed.name);
    let deadline = filed.deadline.expect("the furnisher's deadline");
    let file_time = filed.file_time.unwrap();
    assert_eq!(deadline.seconds - file_time.seconds, 20 * 86_400, "pbc: 20 days");
    let again =
        disputes(&t, FILER).file_dispute(filing(&s, "b-bad", "I never rented a bike")).await.unwrap().into_inner();
    assert_eq!(again.name, filed.name, "filing the same dispute twice returns the same dispute");

    // The furnisher flags the record at once; its applications see the open dispute.
    let flagged = listed(&t, &s).await.into_iter().find(|r| r.record_id == "b-bad").unwrap();
    assert_eq!(flagged.dispute_state, pb::RecordDisputeState::Disputed as i32);
    assert_eq!(flagged.subject_statement, "I never rented a bike");
    let open = disputes(&t, FURNISHER).list_disputes(pb::ListDisputesRequest::default()).await.unwrap().into_inner();
    assert_eq!(open.disputes.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), [filed.name.as_str()]);

    // The scorer receives the flag with the peer answer and leaves the derogatory lines out.
    let during = score(&t, &s).await;
    assert_eq!((during.records_used, during.disputed_records_excluded), (2, 1));
    assert!(during.score > before.score, "{} vs {}", during.score, before.score);
    assert!(!during.reasons.iter().any(|r| r.code == "R01"), "{:?}", during.reasons);

    // The furnisher verifies; the statement stays (XC), the filer learns it through the outbox.
    let resolved = disputes(&t, FURNISHER)
        .resolve_dispute(pb::ResolveDisputeRequest {
            name: filed.name.clone(),
            resolution: pb::DisputeResolution::Verified as i32,
            corrected_record: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&resolved), pb::DisputeStatus::Verified);
    let at_filer = wait_for(&t, &filed.name, |d| status(d) == pb::DisputeStatus::Verified).await;
    assert!(at_filer.resolve_time.is_some());
    let after = listed(&t, &s).await.into_iter().find(|r| r.record_id == "b-bad").unwrap();
    assert_eq!(after.dispute_state, pb::RecordDisputeState::CompletedSubjectDisagrees as i32);
    assert_eq!(after.subject_statement, "I never rented a bike");
    let scored = score(&t, &s).await;
    assert_eq!((scored.disputed_records_excluded, scored.score), (0, before.score), "counted again once verified");

    // Every step is in the log of each node involved, and the two ends reconcile.
    let actions = |es: Vec<Entry>| {
        es.into_iter()
            .filter(|e| e.query_id == filed.name.rsplit('/').next().unwrap())
            .map(|e| (e.action, e.outcome))
            .collect::<Vec<_>>()
    };
    let filer_log = actions(t.entries(FILER).await);
    assert_eq!(
        filer_log,
        [
            (Action::DisputeFiled, "filed".to_string()),
            (Action::DisputeForwarded, "acknowledged".into()),
            (Action::DisputeReceived, "resolved:verified".into())
        ]
    );
    let furnisher_log = actions(t.entries(FURNISHER).await);
    assert_eq!(furnisher_log[0], (Action::DisputeReceived, "record_marked_disputed".to_string()));
    assert_eq!(furnisher_log[1], (Action::DisputeResolved, "resolved:verified".to_string()));
    for _ in 0..50 {
        if t.entries(FURNISHER).await.iter().any(|e| e.outcome == "resolution_acknowledged") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for i in [FILER, FURNISHER] {
        let ch = t.f.channel(Role::Regulator, "pbc", t.addrs[i]);
        let log = regulator::verify(ch, &KeySource::PkiDir(t.f.fed.pki.0.clone()), state.path()).await.unwrap();
        assert_eq!(log.problems, Vec::<String>::new());
        logs.push(log);
    }
    assert_eq!(regulator::reconcile(&logs), Vec::<String>::new());
    let views = regulator::dispute_states(&logs, t.clock.now());
    assert_eq!(views.len(), 1);
    assert_eq!(
        (views[0].furnisher.as_str(), views[0].filer.as_str(), views[0].state.as_str()),
        ("bikeshare", "payapp", "verified")
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_dispute_suppresses_the_record_everywhere_from_its_deadline() {
    let t = trio().await;
    let s = subject(2);
    furnish(&t, &s).await;
    let filed = disputes(&t, FILER).file_dispute(filing(&s, "b-bad", "")).await.unwrap().into_inner();
    assert_eq!(status(&filed), pb::DisputeStatus::Open);

    // Day 19: still flagged and scored without its derogatory lines.
    t.clock.advance(chrono::Duration::days(19));
    let day19 = score(&t, &s).await;
    assert_eq!((day19.records_used, day19.disputed_records_excluded), (2, 1));
    assert_eq!(listed(&t, &s).await.len(), 2);
    assert!(!wait_for(&t, &filed.name, |_| true).await.overdue);

    // Day 20: the deadline. Never returned to a peer, never listed, never scored.
    t.clock.advance(chrono::Duration::days(1));
    let day20 = score(&t, &s).await;
    assert_eq!((day20.records_used, day20.disputed_records_excluded), (1, 0));
    let shown: Vec<_> = listed(&t, &s).await.into_iter().map(|r| r.record_id).collect();
    assert_eq!(shown, ["b-good"]);
    assert!(wait_for(&t, &filed.name, |_| true).await.overdue, "the filer sees it overdue");
    // The furnisher itself still reads it by name, to resolve it.
    let by_name =
        t.f.records(Role::Application, "bikeshare", t.addrs[FURNISHER])
            .get_record(pb::GetRecordRequest { name: "institutions/bikeshare/records/b-bad".into() })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(by_name.dispute_state, pb::RecordDisputeState::Disputed as i32);
    // The sweep logs the suppression once.
    let mut suppressed = 0;
    for _ in 0..50 {
        suppressed = t.entries(FURNISHER).await.iter().filter(|e| e.action == Action::DisputeSuppressed).count();
        if suppressed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(suppressed, 1);

    // Day 21: still suppressed; then the furnisher deletes it and the filer learns it.
    t.clock.advance(chrono::Duration::days(1));
    assert_eq!(score(&t, &s).await.records_used, 1);
    disputes(&t, FURNISHER)
        .resolve_dispute(pb::ResolveDisputeRequest {
            name: filed.name.clone(),
            resolution: pb::DisputeResolution::Deleted as i32,
            corrected_record: None,
        })
        .await
        .unwrap();
    let gone = wait_for(&t, &filed.name, |d| status(d) == pb::DisputeStatus::Deleted).await;
    assert!(!gone.overdue);
    assert_eq!(score(&t, &s).await.records_used, 1, "deleted for good");
    assert_eq!(
        t.entries(FURNISHER).await.iter().filter(|e| e.action == Action::DisputeSuppressed).count(),
        1,
        "logged once"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_filed_while_the_furnisher_is_down_survives_a_filer_restart_and_is_delivered_once() {
    let mut t = trio().await;
    let s = subject(3);
    furnish(&t, &s).await;
    t.stop(FURNISHER).await;
    let filed = disputes(&t, FILER).file_dispute(filing(&s, "b-bad", "paid in 2024")).await.unwrap().into_inner();
    assert_eq!(status(&filed), pb::DisputeStatus::PendingDelivery, "accepted and queued");
    assert!(filed.deadline.is_none());

    // The filer restarts before delivery; the outbox is durable.
    t.stop(FILER).await;
    t.restart(FILER).await;
    let still = wait_for(&t, &filed.name, |_| true).await;
    assert_eq!(status(&still), pb::DisputeStatus::PendingDelivery);

    // The furnisher comes back: the filer's outbox delivers it.
    t.restart(FURNISHER).await;
    let open = wait_for(&t, &filed.name, |d| status(d) == pb::DisputeStatus::Open).await;
    assert!(open.deadline.is_some());
    let received = t.entries(FURNISHER).await.into_iter().filter(|e| e.action == Action::DisputeReceived).count();
    assert_eq!(received, 1, "delivered once, however many attempts");
    assert_eq!(score(&t, &s).await.disputed_records_excluded, 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_disputes_are_refused_with_precise_codes() {
    let t = trio().await;
    let s = subject(4);
    furnish(&t, &s).await;
    let mut filer = disputes(&t, FILER);

    // Without the person's consent: refused as a score is, before anything is looked up.
    let mut no_consent = filing(&s, "b-bad", "");
    no_consent.consent_reference = " ".into();
    let e = filer.file_dispute(no_consent).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::FailedPrecondition, Some("CONSENT_REQUIRED")));
    assert_eq!(e.message(), "filing a dispute requires a consent reference");

    // Every miss is one answer: no such record, another person's record, no such furnisher —
    // the same NOT_FOUND, byte for byte, so the caller learns nothing about who holds what.
    let missing = filer.file_dispute(filing(&s, "no-such", "")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let other = subject(5);
    let e = filer.file_dispute(filing(&other, "b-bad", "")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(!e.message().contains(&s) && !e.message().contains("charged"), "reveals nothing: {}", e.message());
    assert_eq!(e.message().as_bytes(), missing.message().as_bytes(), "another person's record answers as a miss");
    assert_eq!(e.details(), missing.details());

    let e = filer.file_dispute(filing(&s, "b-bad", &"x".repeat(501))).await.unwrap_err();
    assert_eq!((e.code(), violations(&e)[0].0.as_str()), (Code::InvalidArgument, "statement"));
    let e = filer.file_dispute(filing(&s, "b-bad", "bell\u{7}")).await.unwrap_err();
    assert_eq!((e.code(), violations(&e)[0].0.as_str()), (Code::InvalidArgument, "statement"));
    let mut unspecified = filing(&s, "b-bad", "");
    unspecified.reason = 0;
    let e = filer.file_dispute(unspecified).await.unwrap_err();
    assert_eq!((e.code(), violations(&e)[0].0.as_str()), (Code::InvalidArgument, "reason"));
    let mut elsewhere = filing(&s, "b-bad", "");
    elsewhere.record = "institutions/nobody/records/b-bad".into();
    let e = filer.file_dispute(elsewhere).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message().as_bytes(), missing.message().as_bytes(), "an unknown furnisher answers as a miss");

    let filed = filer.file_dispute(filing(&s, "b-bad", "")).await.unwrap().into_inner();
    let resolve = |name: &str| pb::ResolveDisputeRequest {
        name: name.into(),
        resolution: pb::DisputeResolution::Deleted as i32,
        corrected_record: None,
    };
    // The filer's own application may not resolve it: only the furnisher's.
    let e = filer.resolve_dispute(resolve(&filed.name)).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("NOT_DISPUTE_PARTY")));
    // Another institution's application at the furnisher's node is refused outright.
    let mut intruder = DisputesServiceClient::new(t.f.channel(Role::Application, "bank", t.addrs[FURNISHER]));
    let e = intruder.resolve_dispute(resolve(&filed.name)).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("NOT_OWN_INSTITUTION")));
    // A correction must carry a higher version of the same record.
    let mut stale = record(&s, "b-bad", 1);
    stale.status = pb::AccountStatus::Closed as i32;
    stale.closed_date = stale.reported_date;
    stale.days_past_due = 0;
    let e = disputes(&t, FURNISHER)
        .resolve_dispute(pb::ResolveDisputeRequest {
            name: filed.name.clone(),
            resolution: pb::DisputeResolution::Corrected as i32,
            corrected_record: Some(stale.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), violations(&e)[0].0.as_str()), (Code::InvalidArgument, "corrected_record.version"));
    stale.version = 2;
    let corrected = disputes(&t, FURNISHER)
        .resolve_dispute(pb::ResolveDisputeRequest {
            name: filed.name.clone(),
            resolution: pb::DisputeResolution::Corrected as i32,
            corrected_record: Some(stale),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status(&corrected), corrected.corrected_version), (pb::DisputeStatus::Corrected, 2));
    let e =
        filer.get_dispute(pb::GetDisputeRequest { name: "institutions/payapp/disputes/zz".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = filer
        .get_dispute(pb::GetDisputeRequest { name: format!("institutions/payapp/disputes/{}", "0".repeat(24)) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    t.shutdown().await;
}

/// Expired data never reaches an answer, a listing or a score, before any purge; the purge then
/// deletes it and logs each deletion (keys only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_and_inquiries_are_never_served_and_the_purge_logs_each_deletion() {
    let t = trio().await;
    let s = subject(6);
    let today = chrono::Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        Some(bureau::pb::google::r#type::Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 })
    };
    let old = |id: &str, closed_years_ago: i64| {
        let closed = today - chrono::Duration::days(365 * closed_years_ago + 10);
        let mut r = record(&s, id, 1);
        r.opened_date = day(closed - chrono::Duration::days(900));
        r.status = pb::AccountStatus::ChargedOff as i32;
        r.days_past_due = 180;
        r.closed_date = day(closed);
        r.reported_date = day(closed);
        r
    };
    let mut c = t.f.records(Role::Application, "bikeshare", t.addrs[FURNISHER]);
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![old("six-years", 6), old("four-years", 4)] })
        .await
        .unwrap();
    let shown: Vec<_> = listed(&t, &s).await.into_iter().map(|r| r.record_id).collect();
    assert_eq!(shown, ["four-years"], "pbc: 5 years from the end of the adverse event");
    assert_eq!(score(&t, &s).await.records_used, 1);

    let mut admin = bureau::pb::bureau::v1::admin_service_client::AdminServiceClient::new(t.app(FURNISHER));
    let purged = admin.purge_expired(pb::PurgeExpiredRequest {}).await.unwrap().into_inner();
    assert_eq!(purged.records_deleted, 1);
    let deleted: Vec<_> = t
        .entries(FURNISHER)
        .await
        .into_iter()
        .filter(|e| e.action == Action::RecordDeleted && e.outcome == "retention_expired")
        .map(|e| e.detail)
        .collect();
    assert_eq!(deleted, ["six-years v1"], "keys only");

    // Two years on (731 days), the inquiries made above have expired: not shown, then purged.
    t.clock.advance(chrono::Duration::days(731));
    let mut subjects = bureau::pb::bureau::v1::subjects_service_client::SubjectsServiceClient::new(t.app(FURNISHER));
    let seen = subjects
        .list_subject_inquiries(pb::ListSubjectInquiriesRequest {
            parent: format!("subjects/{s}"),
            page_size: 0,
            page_token: String::new(),
            ..common::own_listing()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(seen.inquiries.is_empty(), "{:?}", seen.inquiries);
    let purged = admin.purge_expired(pb::PurgeExpiredRequest {}).await.unwrap().into_inner();
    assert!(purged.inquiries_deleted >= 1, "{purged:?}");
    assert_eq!(purged.records_deleted, 1, "the four-year-old record expired too");
    let logged = t.entries(FURNISHER).await.into_iter().filter(|e| e.action == Action::InquiryPurged).count();
    assert_eq!(logged as u32, purged.inquiries_deleted);
    t.shutdown().await;
}
