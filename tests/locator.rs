//! The record locator and the signed directory, end to end: real nodes following a signed
//! directory, a real locator node, registrations through the log, scores that ask only the
//! holders.

mod common;

use std::time::Duration;

use bureau::{
    pb::bureau::v1::{
        self as pb, records_service_client::RecordsServiceClient, scoring_service_client::ScoringServiceClient,
    },
    Role, RunningNode,
};
use common::{fed, record, subject, Fed};

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
    let mut ids = MEMBERS.to_vec();
    ids.push("locator");
    let f = fed(&ids, &["pbc"]);
    let (nodes, locators) = f.fed.start_with_directory(&MEMBERS, &["locator"], |_| {}).await.unwrap();
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
    for n in nodes.into_iter().chain(locators) {
        n.shutdown().await.unwrap();
    }
}
