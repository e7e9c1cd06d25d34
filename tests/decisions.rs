//! Around a decision, through the real API: the exact what-if (applied through the API and
//! re-scored by the node, it gives exactly the predicted score) and the command line's
//! `bureau score --what-if`.

mod common;

use bureau::{
    pb::bureau::v1::{
        self as pb, decisions_service_client::DecisionsServiceClient, scoring_service_client::ScoringServiceClient,
    },
    Role,
};
use common::{record, subject, violations, Cluster};
use tonic::Code;

const ME: usize = 0;
const BANK: usize = 1;
const INSTITUTIONS: [&str; 2] = ["payapp", "bank"];

fn review(s: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest {
        subject_id: s.into(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_what_if_applied_through_the_api_rescores_to_exactly_its_prediction() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(3);
    // One card at bank, nearly maxed out and 45 days late; one at payapp.
    let mut hot = record(&s, "bank-1", 1);
    hot.balance_minor = 1_950_000;
    hot.days_past_due = 45;
    hot.status = pb::AccountStatus::Delinquent as i32;
    let mut bank = c.f.records(Role::Application, INSTITUTIONS[BANK], c.addrs[BANK]);
    bank.furnish_records(pb::FurnishRecordsRequest { records: vec![hot.clone()] }).await.unwrap();
    let mut scoring = ScoringServiceClient::new(c.app(ME));
    let before = scoring.get_score(review(&s)).await.unwrap().into_inner();
    let target = before.score + 25;
    let mut decisions = DecisionsServiceClient::new(c.app(ME));
    let ask = |target| pb::WhatIfRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
        target,
    };
    let w = decisions.what_if(ask(target)).await.unwrap().into_inner();
    assert_eq!((w.score, w.what_if_target), (before.score, target));
    let levers: Vec<&str> = w.what_if.iter().map(|x| x.lever.as_str()).collect();
    assert!(levers.contains(&"pay_down") && levers.contains(&"bring_current"), "{levers:?}");
    assert!(w.what_if.iter().all(|x| x.predicted_score >= target));

    // Pay the card down exactly as suggested, through the furnishing API, and score again.
    let pay = w.what_if.iter().find(|x| x.lever == "pay_down").unwrap();
    assert_eq!(pay.accounts.len(), 1);
    let mut paid = hot.clone();
    paid.version = 2;
    paid.balance_minor = pay.accounts[0].balance_to_minor.unwrap();
    bank.furnish_records(pb::FurnishRecordsRequest { records: vec![paid.clone()] }).await.unwrap();
    let after = scoring.get_score(review(&s)).await.unwrap().into_inner();
    assert_eq!(after.score, pay.predicted_score, "{}", pay.text);
    // A cent less paid does not reach the target.
    let mut short = paid.clone();
    short.version = 3;
    short.balance_minor += 1;
    bank.furnish_records(pb::FurnishRecordsRequest { records: vec![short] }).await.unwrap();
    let shy = scoring.get_score(review(&s)).await.unwrap().into_inner();
    assert!(shy.score < target, "{} >= {target}", shy.score);

    // Out of range is refused; the command line shows the same suggestions.
    let err = decisions.what_if(ask(951)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), [("target".to_owned(), "must be 350 to 950".to_owned())]);
    let out = c
        .cli(INSTITUTIONS[ME], c.addrs[ME], &["score", "--subject", &s, "--what-if", &target.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("what if {target}: Pay card balances down by")), "{stdout}");
    assert!(stdout.contains("range 350-950  as of "), "{stdout}");
    c.shutdown().await;
}
