//! Consent that binds: nodes configured as the README says (`[consent] tokens = "required"`,
//! the default) take only consent tokens signed by the asking institution's application, bound
//! to the person, the purpose and the asking institution, unexpired and spent on one query, at
//! the node the application calls and at every peer; each refusal has its exact code, reason
//! and log entry; the regulator lists consents by evidence hash; the person's own report is
//! limited per person and institution; reconcile flags relationship purposes without one.

mod common;

use std::{net::SocketAddr, time::Duration};

use base64::Engine;
use bureau::{
    consent_token::{self, ConsentRequest},
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, scoring_service_client::ScoringServiceClient,
        subjects_service_client::SubjectsServiceClient,
    },
    Action, Entry, Purpose, Role, RunningNode,
};
use common::{fed, reason, record, subject, Fed};
use tonic::{transport::Channel, Code};

const EVIDENCE: &[u8] = b"signed application form no. 2026-001, page 3: consent to a credit check";

struct Fixture {
    f: Fed,
    clock: bureau::Clock,
    nodes: Vec<RunningNode>,
}

impl Fixture {
    /// bank and payapp as the README configures a node: consent tokens required (the
    /// default), with a fast CRL reload for the revocation case.
    async fn start(report_window_days: u32) -> Self {
        let f = fed(&["bank", "payapp"], &["pbc"]);
        let clock = bureau::Clock::system();
        let nodes = f
            .fed
            .start_all(&["bank", "payapp"], |c| {
                c.consent = Default::default();
                c.consent.report_window_days = report_window_days;
                c.limits.crl_reload_ms = 200;
                c.clock = clock.clone();
            })
            .await
            .unwrap();
        Self { f, clock, nodes }
    }

    fn token(&self, signer: &str, subject: &str, purpose: Purpose) -> String {
        self.f
            .fed
            .consent_token(signer, subject, purpose, EVIDENCE, chrono::Duration::minutes(15), self.clock.now())
            .unwrap()
    }

    fn app(&self, i: usize) -> Channel {
        self.f.channel(Role::Application, &self.nodes[i].institution, self.nodes[i].addr)
    }

    async fn score(&self, s: &str, purpose: pb::Purpose, consent: &str) -> Result<pb::Score, tonic::Status> {
        let req =
            pb::GetScoreRequest { subject_id: s.into(), purpose: purpose as i32, consent_reference: consent.into() };
        ScoringServiceClient::new(self.app(0)).get_score(req).await.map(|r| r.into_inner())
    }

    async fn entries(&self, i: usize) -> Vec<Entry> {
        let mut c = pb::audit_service_client::AuditServiceClient::new(self.f.channel(
            Role::Regulator,
            "pbc",
            self.nodes[i].addr,
        ));
        let size = c.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
        bureau::regulator::fetch_entries(&mut c, size)
            .await
            .unwrap()
            .iter()
            .map(|e| Entry::from_bytes(&e.leaf_data).unwrap())
            .collect()
    }

    async fn verified_logs(&self) -> Vec<bureau::regulator::VerifiedLog> {
        let state = self.f.tmp.path().join("regulator-state");
        let mut logs = Vec::new();
        for n in &self.nodes {
            let ch = self.f.channel(Role::Regulator, "pbc", n.addr);
            let keys = bureau::regulator::KeySource::PkiDir(self.f.fed.pki.0.clone());
            let log = bureau::regulator::verify(ch, &keys, &state).await.unwrap();
            assert!(log.problems.is_empty(), "{:?}", log.problems);
            logs.push(log);
        }
        logs
    }

    async fn stop(self) {
        for n in self.nodes {
            n.shutdown().await.unwrap();
        }
    }
}

fn refused(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, why: &str) {
    let err = r.expect_err("refused");
    assert_eq!((err.code(), reason(&err).as_deref()), (code, Some(why)), "{err:?}");
}

fn logged_refusals(entries: &[Entry], why: &str) -> usize {
    entries.iter().filter(|e| e.action == Action::Refusal && e.outcome == format!("refused:{why}")).count()
}

fn peer_query(s: &str, purpose: pb::Purpose, consent: &str, query_id: &str) -> pb::QueryRecordsRequest {
    pb::QueryRecordsRequest {
        subject_id: s.into(),
        purpose: purpose as i32,
        consent_reference: consent.into(),
        query_id: query_id.into(),
        records_only: false,
    }
}

/// Replaces a token's payload (keeping header and signature): what a forger would send.
fn with_payload(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    format!("{}.{}.{}", parts[0], b64.encode(serde_json::to_vec(&claims).unwrap()), parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_a_valid_bound_token_is_refused_with_its_reason_and_logged() {
    let x = Fixture::start(365).await;
    let s = subject(1);
    let credit = pb::Purpose::CreditApplication;
    // Any string, as the README's configuration meets it from outside.
    for junk in ["consent-1", "x", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        refused(x.score(&s, credit, junk).await, Code::PermissionDenied, "CONSENT_INVALID");
    }
    refused(x.score(&s, credit, "").await, Code::FailedPrecondition, "CONSENT_REQUIRED");
    // Forged: claims changed under the application's signature; a signature altered.
    let good = x.token("bank", &s, Purpose::CreditApplication);
    let forged = with_payload(&good, |c| c["sub"] = subject(2).into());
    refused(x.score(&subject(2), credit, &forged).await, Code::PermissionDenied, "CONSENT_INVALID");
    let mut sig_flipped = good.clone();
    let last = sig_flipped.pop().unwrap();
    sig_flipped.push(if last == 'A' { 'B' } else { 'A' });
    refused(x.score(&s, credit, &sig_flipped).await, Code::PermissionDenied, "CONSENT_INVALID");
    // Valid tokens bound to something else: another institution's application, another
    // person, another purpose.
    let payapps = x.token("payapp", &s, Purpose::CreditApplication);
    refused(x.score(&s, credit, &payapps).await, Code::PermissionDenied, "CONSENT_MISMATCH");
    refused(x.score(&subject(3), credit, &good).await, Code::PermissionDenied, "CONSENT_MISMATCH");
    refused(x.score(&s, pb::Purpose::DepositWaiver, &good).await, Code::PermissionDenied, "CONSENT_MISMATCH");
    // Expired.
    let past = x.clock.now() - chrono::Duration::hours(2);
    let expired =
        x.f.fed.consent_token("bank", &s, Purpose::CreditApplication, EVIDENCE, chrono::Duration::hours(1), past);
    refused(x.score(&s, credit, &expired.unwrap()).await, Code::FailedPrecondition, "CONSENT_EXPIRED");
    // A certificate of another authority (same federation and institution names).
    let other = tempfile::tempdir().unwrap();
    let foreign = bureau::testkit::local::LocalFederation::create(other.path(), "fed.test", &["bank"], &[]).unwrap();
    let foreign_token = foreign.consent_token(
        "bank",
        &s,
        Purpose::CreditApplication,
        EVIDENCE,
        chrono::Duration::minutes(5),
        x.clock.now(),
    );
    refused(x.score(&s, credit, &foreign_token.unwrap()).await, Code::PermissionDenied, "CONSENT_INVALID");
    // The bound token is still unspent after all that, and passes.
    let score = x.score(&s, credit, &good).await.unwrap();
    assert!(!score.partial, "{score:?}");
    let log = x.entries(0).await;
    assert_eq!(logged_refusals(&log, "CONSENT_INVALID"), 7);
    assert_eq!(logged_refusals(&log, "CONSENT_MISMATCH"), 3);
    assert_eq!(logged_refusals(&log, "CONSENT_EXPIRED"), 1);
    x.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_verifies_the_token_logs_its_evidence_hash_and_spends_it_once() {
    let x = Fixture::start(365).await;
    let s = subject(4);
    let hash = format!("sha256:{}", consent_token::evidence_hash(EVIDENCE));
    let token = x.token("bank", &s, Purpose::CreditApplication);
    let score = x.score(&s, pb::Purpose::CreditApplication, &token).await.unwrap();
    assert!(!score.partial, "{score:?}");
    // Spent: the same token for another query is a replay, at the scoring node...
    refused(x.score(&s, pb::Purpose::CreditApplication, &token).await, Code::PermissionDenied, "CONSENT_REPLAYED");
    // ...and at the peer, which saw it once for the score's query id and accepts it again only
    // for that query (a hedge or a retry of the same query).
    let mut as_bank = FederationServiceClient::new(x.f.channel(Role::Node, "bank", x.nodes[1].addr));
    let credit = pb::Purpose::CreditApplication;
    as_bank.query_records(peer_query(&s, credit, &token, &score.query_id)).await.unwrap();
    refused(
        as_bank.query_records(peer_query(&s, credit, &token, "other-query")).await,
        Code::PermissionDenied,
        "CONSENT_REPLAYED",
    );
    // A peer checks the binding itself: bank's application's token sent by payapp's node.
    let fresh = x.token("bank", &s, Purpose::CreditApplication);
    let mut as_payapp = FederationServiceClient::new(x.f.channel(Role::Node, "payapp", x.nodes[0].addr));
    refused(
        as_payapp.query_records(peer_query(&s, credit, &fresh, "q-2")).await,
        Code::PermissionDenied,
        "CONSENT_MISMATCH",
    );
    refused(
        as_payapp.query_records(peer_query(&s, credit, "consent-1", "q-3")).await,
        Code::PermissionDenied,
        "CONSENT_INVALID",
    );

    // Each refusal is logged where it was made: the replay at the scoring node and at the peer,
    // the peer-side mismatch and junk at the node that was asked.
    let (at_bank, at_payapp) = (x.entries(0).await, x.entries(1).await);
    assert_eq!(logged_refusals(&at_bank, "CONSENT_REPLAYED"), 1);
    assert_eq!(logged_refusals(&at_payapp, "CONSENT_REPLAYED"), 1);
    assert_eq!((logged_refusals(&at_bank, "CONSENT_MISMATCH"), logged_refusals(&at_bank, "CONSENT_INVALID")), (1, 1));

    // Both nodes logged the token's verification with its evidence hash, and the query's
    // entries carry the hash, never the token.
    for i in 0..2 {
        let log = x.entries(i).await;
        let verified: Vec<&Entry> =
            log.iter().filter(|e| e.action == Action::ConsentVerified && e.query_id == score.query_id).collect();
        assert_eq!(verified.len(), 1, "node {i}: {verified:?}");
        assert_eq!(verified[0].consent_reference, hash);
        assert!(verified[0].detail.contains("signer=institution/bank/app/cli"), "{}", verified[0].detail);
        let query = log.iter().find(|e| e.action == Action::QueryInbound && e.query_id == score.query_id).unwrap();
        assert_eq!(query.consent_reference, hash);
        assert!(log.iter().all(|e| !e.consent_reference.contains(&token)));
    }

    // The regulator lists the consent by its hash, at both nodes, and checks the evidence the
    // institution hands over.
    let logs = x.verified_logs().await;
    let uses = bureau::regulator::consents_by_hash(&logs, Some(&hash));
    let nodes: Vec<&str> = uses.iter().map(|u| u.node.as_str()).collect();
    assert_eq!(nodes, ["bank", "payapp"], "{uses:?}");
    assert!(uses
        .iter()
        .all(|u| u.query_id == score.query_id && u.asker == "bank" && u.purpose == "credit_application"));
    assert!(bureau::regulator::consents_by_hash(&logs, Some(&"0".repeat(64))).is_empty());
    // The same from the regulator's command line.
    let state = x.f.tmp.path().join("cli-regulator-state");
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_bureau"));
    cli.args(["audit", "consents", "--regulator", "pbc", "--federation", "fed.test", "--hash", &hash, "--pki"])
        .arg(&x.f.fed.pki.0)
        .arg("--state")
        .arg(&state);
    for n in &x.nodes {
        cli.args(["--node", &n.addr.to_string()]);
    }
    let out = cli.output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed.lines().filter(|l| l.starts_with(&hash)).count(), 2, "{listed}");
    assert!(listed.contains("2 consent verification(s)"), "{listed}");
    let evidence = x.f.tmp.path().join("evidence.txt");
    std::fs::write(&evidence, EVIDENCE).unwrap();
    let check = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bureau"))
            .args(["consent", "check-evidence", "--hash", &hash, "--evidence"])
            .arg(file)
            .output()
            .unwrap()
    };
    assert!(check(&evidence).status.success());
    let altered = x.f.tmp.path().join("altered.txt");
    std::fs::write(&altered, b"another form").unwrap();
    let out = check(&altered);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"), "{out:?}");
    x.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_mints_a_token_nodes_accept_and_a_revoked_application_cannot_sign() {
    let x = Fixture::start(365).await;
    let s = subject(5);
    let app = x.f.fed.pki.app("bank", bureau::pki::DEFAULT_APP);
    let evidence = x.f.tmp.path().join("form.pdf");
    std::fs::write(&evidence, EVIDENCE).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["consent", "issue", "--subject", &s, "--purpose", "deposit_waiver", "--ttl", "600", "--key"])
        .arg(&app.key)
        .arg("--cert")
        .arg(&app.cert)
        .arg("--evidence")
        .arg(&evidence)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    x.score(&s, pb::Purpose::DepositWaiver, &token).await.unwrap();

    // A second application of bank signs fine until the authority revokes it.
    let mobile = bureau::pki::issue_app(&x.f.fed.pki, "fed.test", "bank", "mobile").unwrap();
    let hash = consent_token::evidence_hash(EVIDENCE);
    let mint = || {
        let req = ConsentRequest {
            subject: &s,
            purpose: Purpose::CreditApplication,
            evidence_sha256: &hash,
            ttl: chrono::Duration::minutes(5),
            now: x.clock.now(),
        };
        consent_token::mint_with_files(&mobile.key, &mobile.cert, &req).unwrap()
    };
    x.score(&s, pb::Purpose::CreditApplication, &mint()).await.unwrap();
    bureau::pki::revoke(&x.f.fed.pki, &mobile.cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match x.score(&s, pb::Purpose::CreditApplication, &mint()).await {
            Err(e) if reason(&e).as_deref() == Some("CONSENT_INVALID") => {
                assert_eq!(e.code(), Code::PermissionDenied);
                assert!(e.message().contains("revoked"), "{e:?}");
                break;
            }
            other => assert!(std::time::Instant::now() < deadline, "still accepted after revocation: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    x.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persons_own_report_needs_their_request_and_is_limited_per_person_and_institution() {
    let x = Fixture::start(1).await;
    let s = subject(6);
    let mut subjects = SubjectsServiceClient::new(x.app(0));
    let report = |consent: String, s: &str| pb::GetReportRequest { subject_id: s.into(), consent_reference: consent };
    let credit = x.token("bank", &s, Purpose::CreditApplication);
    refused(subjects.get_report(report(credit, &s)).await, Code::PermissionDenied, "CONSENT_MISMATCH");
    refused(
        subjects.get_report(report("report-consent-1".into(), &s)).await,
        Code::PermissionDenied,
        "CONSENT_INVALID",
    );
    for _ in 0..2 {
        subjects.get_report(report(x.token("bank", &s, Purpose::SubjectRequest), &s)).await.unwrap();
    }
    let third = subjects.get_report(report(x.token("bank", &s, Purpose::SubjectRequest), &s)).await;
    refused(third, Code::ResourceExhausted, "REPORT_LIMIT_EXCEEDED");
    assert_eq!(logged_refusals(&x.entries(0).await, "REPORT_LIMIT_EXCEEDED"), 1);
    // Another person is not affected; the allowance comes back when the window has passed.
    let other = subject(7);
    subjects.get_report(report(x.token("bank", &other, Purpose::SubjectRequest), &other)).await.unwrap();
    x.clock.advance(chrono::Duration::days(2));
    subjects.get_report(report(x.token("bank", &s, Purpose::SubjectRequest), &s)).await.unwrap();
    // The spent nonces of the tokens now expired are forgotten by the retention purge.
    let mut admin = pb::admin_service_client::AdminServiceClient::new(x.app(0));
    admin.purge_expired(pb::PurgeExpiredRequest {}).await.unwrap();
    let purged: u32 =
        x.entries(0).await.iter().filter(|e| e.action == Action::ConsentNoncesPurged).map(|e| e.record_count).sum();
    assert_eq!(purged, 3, "the three tokens spent here before the clock moved; the fresh one stays");
    x.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_flags_a_relationship_purpose_asked_without_a_relationship() {
    let x = Fixture::start(365).await;
    let (customer, stranger) = (subject(8), subject(9));
    let mut records = x.f.records(Role::Application, "bank", x.nodes[0].addr);
    records.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&customer, "card-1", 1)] }).await.unwrap();
    let review = x.score(&customer, pb::Purpose::AccountReview, "").await.unwrap();
    let snoop = x.score(&stranger, pb::Purpose::Collections, "").await.unwrap();
    let log = x.entries(0).await;
    let own = log.iter().find(|e| e.action == Action::QueryInbound && e.query_id == snoop.query_id).unwrap();
    assert_eq!(own.consent_reference, "relationship", "{own:?}");
    let logs = x.verified_logs().await;
    assert_eq!(bureau::regulator::reconcile(&logs), Vec::<String>::new());
    let flags = bureau::regulator::relationship_flags(&logs);
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert!(flags[0].contains(&snoop.query_id) && flags[0].contains("collections"), "{flags:?}");
    assert!(!flags[0].contains(&review.query_id));
    x.stop().await;
}

#[test]
fn a_node_configured_without_a_consent_section_requires_tokens() {
    let f = fed(&["bank"], &[]);
    let cfg = f.fed.node_config("bank", &[] as &[(&str, SocketAddr)]);
    let mut table: toml::Table = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert!(table.remove("consent").is_some());
    let parsed: bureau::NodeConfig = toml::from_str(&toml::to_string(&table).unwrap()).unwrap();
    assert_eq!(parsed.consent.tokens, bureau::config::ConsentTokens::Required);
    assert_eq!(parsed.consent.reports_per_window, 2);
}

/// PyJWT (Debian's `python3-jwt`, installed by scripts/deps) verifies the tokens we sign and
/// refuses a tampered one; a token PyJWT signs with the application's key is accepted by a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_our_tokens_and_signs_tokens_our_nodes_accept() {
    let python = "/usr/bin/python3";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pyjwt_consent.py");
    let probe = std::process::Command::new(python).args(["-c", "import jwt, cryptography"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "PyJWT missing: install Debian's python3-jwt (scripts/deps does): {probe:?}"
    );
    let x = Fixture::start(365).await;
    let s = subject(10);
    let token = x.token("bank", &s, Purpose::CreditApplication);
    let out = std::process::Command::new(python).args([script, "verify", &token]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("bank"), Some(s.as_str())));
    assert_eq!(claims["purpose"], "credit_application");
    assert_eq!(claims["evidence_sha256"].as_str(), Some(consent_token::evidence_hash(EVIDENCE).as_str()));
    let tampered = with_payload(&token, |c| c["purpose"] = "deposit_waiver".into());
    let out = std::process::Command::new(python).args([script, "verify", &tampered]).output().unwrap();
    assert!(!out.status.success(), "PyJWT accepted a tampered token");

    let app = x.f.fed.pki.app("bank", bureau::pki::DEFAULT_APP);
    let now = x.clock.now().timestamp();
    let claims = serde_json::json!({
        "iss": "bank", "sub": s, "purpose": "credit_application", "iat": now, "exp": now + 600,
        "jti": "0123456789abcdef0123456789abcdef", "evidence_sha256": consent_token::evidence_hash(EVIDENCE),
    });
    let out = std::process::Command::new(python)
        .args([script, "sign"])
        .arg(&app.key)
        .arg(&app.cert)
        .arg(claims.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let score = x.score(&s, pb::Purpose::CreditApplication, &theirs).await.unwrap();
    assert!(!score.partial, "{score:?}");
    x.stop().await;
}

/// What the person asks for through an institution — a freeze, a listing of who looked, a
/// dispute — needs their token as a report does; a string is refused, and a dispute filed again
/// with its token is the same dispute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freezes_listings_and_disputes_need_the_persons_token() {
    let x = Fixture::start(365).await;
    let s = subject(11);
    let own = |s: &str| x.token("bank", s, Purpose::SubjectRequest);
    let mut subjects = SubjectsServiceClient::new(x.app(0));
    let freeze = |consent: String| pb::ProtectionRequest {
        subject_id: s.clone(),
        kind: pb::ProtectionKind::SecurityFreeze as i32,
        consent_reference: consent,
    };
    refused(subjects.place_protection(freeze("id-check-1".into())).await, Code::PermissionDenied, "CONSENT_INVALID");
    let waiver = x.token("bank", &s, Purpose::DepositWaiver);
    refused(subjects.place_protection(freeze(waiver)).await, Code::PermissionDenied, "CONSENT_MISMATCH");
    subjects.place_protection(freeze(own(&s))).await.unwrap();
    subjects.lift_protection(freeze(own(&s))).await.unwrap();

    let listing = |consent: String| pb::ListSubjectInquiriesRequest {
        parent: format!("subjects/{s}"),
        page_size: 10,
        page_token: String::new(),
        purpose: pb::Purpose::SubjectRequest as i32,
        consent_reference: consent,
    };
    refused(subjects.list_subject_inquiries(listing("c".into())).await, Code::PermissionDenied, "CONSENT_INVALID");
    let spent = own(&s);
    subjects.list_subject_inquiries(listing(spent.clone())).await.unwrap();
    refused(subjects.list_subject_inquiries(listing(spent)).await, Code::PermissionDenied, "CONSENT_REPLAYED");

    let mut at_payapp = x.f.records(Role::Application, "payapp", x.nodes[1].addr);
    at_payapp.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "loan-1", 1)] }).await.unwrap();
    let mut disputes = pb::disputes_service_client::DisputesServiceClient::new(x.app(0));
    let file = |consent: String| pb::FileDisputeRequest {
        record: "institutions/payapp/records/loan-1".into(),
        subject_id: s.clone(),
        reason: pb::DisputeReason::NotMine as i32,
        statement: "not mine".into(),
        consent_reference: consent,
    };
    refused(disputes.file_dispute(file("dispute-consent-7".into())).await, Code::PermissionDenied, "CONSENT_INVALID");
    let token = own(&s);
    let first = disputes.file_dispute(file(token.clone())).await.unwrap().into_inner();
    let again = disputes.file_dispute(file(token)).await.unwrap().into_inner();
    assert_eq!(first.name, again.name);
    x.stop().await;
}

/// A peer spends a token in the same write that answers: refused for a freeze, it records
/// nothing of the token, which is still good for that query once the freeze is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_refused_for_a_freeze_leaves_the_token_unspent() {
    let x = Fixture::start(365).await;
    let s = subject(12);
    let mut at_payapp = x.f.records(Role::Application, "payapp", x.nodes[1].addr);
    at_payapp.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "loan-1", 1)] }).await.unwrap();
    let mut subjects = SubjectsServiceClient::new(x.app(1));
    let freeze = |consent: String| pb::ProtectionRequest {
        subject_id: s.clone(),
        kind: pb::ProtectionKind::SecurityFreeze as i32,
        consent_reference: consent,
    };
    subjects.place_protection(freeze(x.token("payapp", &s, Purpose::SubjectRequest))).await.unwrap();

    let waiver = x.token("bank", &s, Purpose::DepositWaiver);
    let mut as_bank = FederationServiceClient::new(x.f.channel(Role::Node, "bank", x.nodes[1].addr));
    let ask = || peer_query(&s, pb::Purpose::DepositWaiver, &waiver, "waiver-1");
    refused(as_bank.query_records(ask()).await, Code::FailedPrecondition, "SUBJECT_FROZEN");
    let of_query =
        |es: &[Entry], action: Action| es.iter().filter(|e| e.action == action && e.query_id == "waiver-1").count();
    let es = x.entries(1).await;
    assert_eq!(of_query(&es, Action::ConsentVerified), 0, "the token was not spent");
    assert_eq!(of_query(&es, Action::QueryInbound), 0, "nothing answered");
    assert_eq!(logged_refusals(&es, "SUBJECT_FROZEN"), 1);

    subjects.lift_protection(freeze(x.token("payapp", &s, Purpose::SubjectRequest))).await.unwrap();
    let answer = as_bank.query_records(ask()).await.unwrap().into_inner();
    assert_eq!(answer.records.len(), 1, "the same token and query, answered once the freeze is lifted");
    let es = x.entries(1).await;
    assert_eq!((of_query(&es, Action::ConsentVerified), of_query(&es, Action::QueryInbound)), (1, 1));
    refused(
        as_bank.query_records(peer_query(&s, pb::Purpose::DepositWaiver, &waiver, "waiver-2")).await,
        Code::PermissionDenied,
        "CONSENT_REPLAYED",
    );
    x.stop().await;
}
