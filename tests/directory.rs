//! The signed member directory as the licensing authority runs it: real nodes following the
//! file, real editions published with the `bureau pki directory` command line, and the refusals
//! (start-up without a valid directory, unlisted and suspended members, editions a node must not
//! trust) checked by their documented codes, log lines and metrics.

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Output},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bureau::{
    config::NodeConfig,
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, records_service_client::RecordsServiceClient,
        scoring_service_client::ScoringServiceClient,
    },
    testkit::local::LocalFederation,
    Role, RunningNode,
};
use common::{fed, reason, record, subject, Fed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// Retries `$cond` every 100 ms for up to 10 s; fails with `$what` when it never holds.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let mut held = false;
        for _ in 0..100 {
            if $cond {
                held = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(held, "{} (not within 10 s)", $what);
    }};
}

/// Nodes re-read the directory every 100 ms, so an edition is in force within the test's patience.
fn quick(cfg: &mut NodeConfig) {
    cfg.limits.crl_reload_ms = 100;
    cfg.scoring.peer_deadline_ms = 1_500;
}

/// Runs the real `bureau pki directory SUB --dir PKI --federation fed.test ARGS`.
fn authority(f: &Fed, sub: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["pki", "directory", sub, "--dir"])
        .arg(&f.fed.pki.0)
        .args(["--federation", "fed.test"])
        .args(args)
        .output()
        .expect("bureau runs")
}

/// Publishes an edition with `bureau pki directory SUB ARGS`; returns the serial it printed.
fn publish(f: &Fed, sub: &str, args: &[&str]) -> u64 {
    let out = authority(f, sub, args);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bureau pki directory {sub}: {said}{}", String::from_utf8_lossy(&out.stderr));
    said.strip_prefix("directory serial ")
        .and_then(|rest| rest.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {said:?}"))
}

/// Runs `bureau pki directory SUB ARGS` expecting a refusal; returns its error message.
fn refused(f: &Fed, sub: &str, args: &[&str]) -> String {
    let out = authority(f, sub, args);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "bureau pki directory {sub} should fail: {}", String::from_utf8_lossy(&out.stdout));
    assert!(said.starts_with("error: "), "{said}");
    said
}

/// `asker`'s node asks the node at `addr` for a person's records (FederationService).
async fn query_as(f: &Fed, asker: &str, addr: SocketAddr) -> Result<pb::QueryRecordsResponse, tonic::Status> {
    static QUERIES: AtomicU64 = AtomicU64::new(0);
    let mut c = FederationServiceClient::new(f.channel(Role::Node, asker, addr));
    let q = pb::QueryRecordsRequest {
        subject_id: subject(1),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
        query_id: format!("q-{asker}-{}", QUERIES.fetch_add(1, Ordering::Relaxed)),
        records_only: false,
    };
    c.query_records(q).await.map(tonic::Response::into_inner)
}

/// True when `result` is PERMISSION_DENIED with ErrorInfo reason `why`.
fn denied<T>(result: &Result<T, tonic::Status>, why: &str) -> bool {
    matches!(result, Err(s) if s.code() == Code::PermissionDenied && reason(s).as_deref() == Some(why))
}

/// A review score of subject 1 at `node`.
async fn score(f: &Fed, node: &RunningNode) -> pb::Score {
    let mut c = ScoringServiceClient::new(f.channel(Role::Application, &node.institution, node.addr));
    let ask = pb::GetScoreRequest {
        subject_id: subject(1),
        purpose: pb::Purpose::AccountReview as i32,
        ..Default::default()
    };
    c.get_score(ask).await.unwrap().into_inner()
}

/// The members a score asked, in order.
fn asked(score: &pb::Score) -> Vec<String> {
    score.coverage.iter().map(|c| c.peer.clone()).collect()
}

async fn stop(nodes: impl IntoIterator<Item = RunningNode>) {
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// Replaces `path` as the authority's tool does (a new file renamed over it), so the node never
/// reads half of what the test writes.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("test-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The refusal of starting `cfg`'s node, as its message.
async fn start_refused(cfg: NodeConfig) -> String {
    match bureau::start(cfg).await {
        Ok(node) => {
            node.shutdown().await.unwrap();
            panic!("the node started");
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_node_does_not_start_without_a_valid_signed_directory() {
    let f = fed(&["bank", "payapp"], &[]);
    let listed =
        [("bank", SocketAddr::from(([127, 0, 0, 1], 7001))), ("payapp", SocketAddr::from(([127, 0, 0, 1], 7002)))];
    f.fed.publish_directory(&listed, &[]).unwrap();
    let with_file = |path: &Path| {
        let mut cfg = f.fed.directory_config("bank", false);
        cfg.federation.directory = Some(path.to_owned());
        cfg
    };

    let missing = f.tmp.path().join("no-such-directory.note");
    let why = start_refused(with_file(&missing)).await;
    assert!(why.contains(&format!("federation directory {}", missing.display())), "{why}");

    // A directory signed by another authority's key (same federation name).
    let other = LocalFederation::create(&f.tmp.path().join("other"), "fed.test", &["bank", "payapp"], &[]).unwrap();
    other.publish_directory(&listed, &[]).unwrap();
    let why = start_refused(with_file(&other.pki.directory())).await;
    assert!(why.contains(&other.pki.directory().display().to_string()), "{why}");
    assert!(why.contains("not signed by the authority's directory key"), "{why}");

    // The authority's own edition, edited by hand.
    let genuine = std::fs::read_to_string(f.fed.pki.directory()).unwrap();
    let edited = f.tmp.path().join("edited.note");
    std::fs::write(&edited, genuine.replacen("\"status\":\"active\"", "\"status\":\"suspended\"", 1)).unwrap();
    assert_ne!(std::fs::read_to_string(&edited).unwrap(), genuine, "the edit changed the file");
    let why = start_refused(with_file(&edited)).await;
    assert!(why.contains(&edited.display().to_string()), "{why}");
    assert!(why.contains("not signed by the authority's directory key"), "{why}");

    let garbage = f.tmp.path().join("garbage.note");
    std::fs::write(&garbage, "members: bank, payapp\n").unwrap();
    let why = start_refused(with_file(&garbage)).await;
    assert!(why.contains(&garbage.display().to_string()) && why.contains("malformed directory"), "{why}");

    // The genuine file is accepted: the refusals were about the files.
    let node = bureau::start(with_file(&f.fed.pki.directory())).await.unwrap();
    node.shutdown().await.unwrap();
}

/// A member the authority adds with `bureau pki directory add` is asked by the others' next
/// scores and may ask them, without any node restarting.
#[tokio::test]
async fn a_member_added_by_a_new_edition_is_asked_without_a_restart() {
    let f = fed(&["bank", "payapp", "lender"], &[]);
    let (nodes, _) = f.fed.start_with_directory(&["bank", "payapp"], &[], quick).await.unwrap();
    let before = score(&f, &nodes[0]).await;
    assert_eq!((before.members, asked(&before)), (1, vec!["payapp".to_owned()]));

    let listener = bureau::bind_loopback().await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log_key = f.fed.pki.member(Role::Node, "lender").log_key.with_extension("pub");
    let serial =
        publish(&f, "add", &["--id", "lender", "--address", &addr, "--log-key", &format!("@{}", log_key.display())]);
    assert_eq!(serial, 3, "init made serial 1, the test kit's edition 2");
    let mut cfg = f.fed.directory_config("lender", false);
    quick(&mut cfg);
    let lender = bureau::start_on(cfg, listener).await.unwrap();
    let mut r = record(&subject(1), "l-1", 1);
    r.furnisher = "lender".into();
    RecordsServiceClient::new(f.channel(Role::Application, "lender", lender.addr))
        .furnish_records(pb::FurnishRecordsRequest { records: vec![r] })
        .await
        .unwrap();

    eventually!("bank's score asks lender", score(&f, &nodes[0]).await.members == 2);
    let after = score(&f, &nodes[0]).await;
    assert_eq!(asked(&after), ["payapp", "lender"]);
    assert_eq!(after.coverage[1].outcome, pb::PeerOutcome::Answered as i32, "{:?}", after.coverage[1]);
    assert_eq!(after.records_used, 1, "lender's record is in the score");
    eventually!("payapp's score asks lender", score(&f, &nodes[1]).await.members == 2);
    let answer = query_as(&f, "lender", nodes[0].addr).await.expect("lender may ask bank");
    assert_eq!(answer.responder, "bank");

    let shown = authority(&f, "show", &[]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("serial 3"), "{shown}");
    assert!(shown.lines().any(|l| l.contains("lender") && l.contains("active") && l.contains(&addr)), "{shown}");
    let key = std::fs::read_to_string(&log_key).unwrap();
    assert!(shown.contains(key.trim()), "the log key is listed: {shown}");

    // The same id again, a bad address or a bad log key: refused, nothing published.
    let why = refused(&f, "add", &["--id", "lender", "--address", &addr]);
    assert!(why.contains("member lender is already in the directory"), "{why}");
    let why = refused(&f, "add", &["--id", "other", "--address", "no-port"]);
    assert!(why.contains("\"no-port\" is not host:port"), "{why}");
    let why = refused(&f, "add", &["--id", "other", "--address", "h:1", "--log-key", "not-a-key"]);
    assert!(why.contains("log key"), "{why}");
    assert_eq!(bureau::pki::read_directory(&f.fed.pki, "fed.test").unwrap().serial, 3);
    stop(nodes.into_iter().chain([lender])).await;
}

/// A suspended member is refused by the others (MEMBER_SUSPENDED) and no longer asked; made
/// active again, it is accepted and asked.
#[tokio::test]
async fn a_suspended_member_is_refused_and_not_asked_until_made_active() {
    let f = fed(&["bank", "payapp", "lender"], &[]);
    let (nodes, _) = f.fed.start_with_directory(&["bank", "payapp", "lender"], &[], quick).await.unwrap();
    query_as(&f, "lender", nodes[0].addr).await.expect("an active member may ask");

    assert_eq!(publish(&f, "suspend", &["--id", "lender"]), 3);
    eventually!("bank refuses lender", denied(&query_as(&f, "lender", nodes[0].addr).await, "MEMBER_SUSPENDED"));
    let err = query_as(&f, "lender", nodes[0].addr).await.unwrap_err();
    assert!(err.message().contains("suspended"), "{err:?}");
    eventually!("bank stops asking lender", asked(&score(&f, &nodes[0]).await) == ["payapp"]);
    eventually!("payapp stops asking lender", asked(&score(&f, &nodes[1]).await) == ["bank"]);
    let during = score(&f, &nodes[0]).await;
    assert_eq!(during.members, 1);
    let why = refused(&f, "suspend", &["--id", "lender"]);
    assert!(why.contains("member lender is already suspended"), "{why}");
    let why = refused(&f, "suspend", &["--id", "nobody"]);
    assert!(why.contains("no member nobody"), "{why}");

    assert_eq!(publish(&f, "activate", &["--id", "lender"]), 4);
    eventually!("bank accepts lender again", query_as(&f, "lender", nodes[0].addr).await.is_ok());
    eventually!("bank asks lender again", asked(&score(&f, &nodes[0]).await) == ["payapp", "lender"]);
    stop(nodes).await;
}

/// An institution the authority licensed (its certificate is valid) but the directory does not
/// list is refused with NOT_A_MEMBER; so is a member once removed.
#[tokio::test]
async fn an_institution_the_directory_does_not_list_is_not_a_member() {
    let f = fed(&["bank", "payapp", "stranger"], &[]);
    let (nodes, _) = f.fed.start_with_directory(&["bank", "payapp"], &[], quick).await.unwrap();
    let err = query_as(&f, "stranger", nodes[0].addr).await;
    assert!(denied(&err, "NOT_A_MEMBER"), "{err:?}");
    query_as(&f, "payapp", nodes[0].addr).await.expect("a listed member may ask");

    assert_eq!(publish(&f, "remove", &["--id", "payapp"]), 3);
    eventually!("bank refuses payapp", denied(&query_as(&f, "payapp", nodes[0].addr).await, "NOT_A_MEMBER"));
    eventually!("bank asks nobody", score(&f, &nodes[0]).await.members == 0);
    let why = refused(&f, "remove", &["--id", "payapp"]);
    assert!(why.contains("no member payapp"), "{why}");
    stop(nodes).await;
}

/// `GET /metrics` at `addr`: the body.
async fn scrape(addr: SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// The value of sample `name` with `labels` in a scrape; 0 when absent.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    common::samples(body, name, labels).iter().sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An older edition copied back, an edition edited by hand or signed by another key, and a
/// garbage file: the node (its own process, so its metrics are its own) keeps the edition in
/// force, logs a WARN and counts each by reason; the next genuine edition is still taken.
#[tokio::test]
async fn editions_a_node_cannot_trust_are_refused_logged_and_counted() {
    let f = fed(&["bank", "payapp", "lender"], &[]);
    let bank_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (payapp_l, lender_l) = (bureau::bind_loopback().await.unwrap(), bureau::bind_loopback().await.unwrap());
    let listed =
        [("bank", bank_addr), ("payapp", payapp_l.local_addr().unwrap()), ("lender", lender_l.local_addr().unwrap())];
    f.fed.publish_directory(&listed, &[]).unwrap();
    let mut nodes = Vec::new();
    for (id, l) in [("payapp", payapp_l), ("lender", lender_l)] {
        let mut cfg = f.fed.directory_config(id, false);
        quick(&mut cfg);
        nodes.push(bureau::start_on(cfg, l).await.unwrap());
    }
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cfg = f.fed.directory_config("bank", false);
    quick(&mut cfg);
    cfg.node.listen = bank_addr;
    cfg.metrics.listen = Some(metrics_addr);
    let (bank, bank_addr) = common::spawn_serve(&f, &cfg);
    let rejected = |body: &str, why: &str| sample(body, "bureau_directory_rejected_total", &[("reason", why)]);

    let file = f.fed.pki.directory();
    let edition_2 = std::fs::read_to_string(&file).unwrap();
    assert_eq!(publish(&f, "suspend", &["--id", "lender"]), 3);
    let edition_3 = std::fs::read_to_string(&file).unwrap();
    eventually!("bank refuses lender", denied(&query_as(&f, "lender", bank_addr).await, "MEMBER_SUSPENDED"));
    let body = scrape(metrics_addr).await;
    assert_eq!(sample(&body, "bureau_directory_serial", &[]), 3.0);
    assert_eq!(sample(&body, "bureau_directory_members", &[("status", "suspended")]), 1.0);

    let other = LocalFederation::create(&f.tmp.path().join("other"), "fed.test", &["bank"], &[]).unwrap();
    other.publish_directory(&listed, &[]).unwrap();
    let foreign = std::fs::read_to_string(other.pki.directory()).unwrap();
    let tampered = edition_3.replacen("\"status\":\"suspended\"", "\"status\":\"active\"", 1);
    assert_ne!(tampered, edition_3);
    let offers = [
        ("rollback", edition_2, 1.0),
        ("bad_signature", tampered, 1.0),
        ("bad_signature", foreign, 2.0),
        ("malformed", "not a directory at all\n".to_owned(), 1.0),
    ];
    for (why, text, count) in offers {
        replace(&file, &text);
        eventually!(format!("bank counts a {why} refusal"), rejected(&scrape(metrics_addr).await, why) == count);
        let still = query_as(&f, "lender", bank_addr).await;
        assert!(denied(&still, "MEMBER_SUSPENDED"), "after a {why} offer, lender is still suspended: {still:?}");
        assert_eq!(sample(&scrape(metrics_addr).await, "bureau_directory_serial", &[]), 3.0, "after {why}");
    }
    let body = scrape(metrics_addr).await;
    let counts: Vec<f64> = ["rollback", "bad_signature", "malformed", "unreadable", "unusable"]
        .iter()
        .map(|why| rejected(&body, why))
        .collect();
    assert_eq!(counts, [1.0, 2.0, 1.0, 0.0, 0.0], "exactly the refusals offered, by reason");
    let warned = |why: &str| {
        bank.log()
            .iter()
            .filter(|l| l["level"] == "WARN" && l["fields"]["reason"] == why)
            .map(|l| l["fields"]["file"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    for (why, n) in [("rollback", 1), ("bad_signature", 2), ("malformed", 1)] {
        let lines = warned(why);
        assert_eq!(lines.len(), n, "WARN lines for {why}: {:?}", bank.log());
        assert!(lines.iter().all(|l| l == &file.display().to_string()), "{lines:?}");
    }

    // The genuine edition back (no change: not counted), then a new one: still followed.
    replace(&file, &edition_3);
    assert_eq!(publish(&f, "activate", &["--id", "lender"]), 4);
    eventually!("bank accepts lender again", query_as(&f, "lender", bank_addr).await.is_ok());
    let body = scrape(metrics_addr).await;
    assert_eq!(sample(&body, "bureau_directory_serial", &[]), 4.0);
    assert_eq!(rejected(&body, "rollback") + rejected(&body, "bad_signature") + rejected(&body, "malformed"), 4.0);
    drop(bank);
    stop(nodes).await;
}
