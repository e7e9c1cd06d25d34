//! Threshold attestations through the real API: the operator's application gets a signed,
//! logged "meets 550" with no score in it, which the node's own verifier and an independent one
//! (PyJWT and `cryptography`, from PyPI, run by scripts/deps into target/py-venv) both accept
//! from the node's public key and the bundle alone, and both refuse once changed, expired, for
//! another verifier or nonce, or not in the log.

mod common;

use std::{path::PathBuf, process::Command};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bureau::{
    attestation::{self, AttestationError, Bundle},
    convert::bundle_from_pb,
    pb::bureau::v1::{self as pb, attestation_service_client::AttestationServiceClient},
    Action, Role,
};
use common::{reason, record, subject, violations, Cluster};
use ed25519_dalek::{pkcs8::DecodePrivateKey, Signer, SigningKey};
use tonic::Code;

const ME: usize = 0;
const BANK: usize = 1;
const INSTITUTIONS: [&str; 2] = ["payapp", "bank"];

fn ask(s: &str, verifier: &str, nonce: &str) -> pb::AttestRequest {
    pb::AttestRequest {
        subject_id: s.into(),
        policy: "deposit_waiver".into(),
        consent_reference: "w-1".into(),
        verifier: verifier.into(),
        nonce: nonce.into(),
    }
}

/// The Python verifier's answer: exit status and first line.
fn python(dir: &std::path::Path, b: &Bundle, key: &std::path::Path, verifier: &str, nonce: &str) -> (bool, String) {
    let venv = std::env::var("BUREAU_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv"));
    let py = venv.join("bin/python");
    assert!(py.exists(), "{} missing: run scripts/deps (installs PyJWT and cryptography)", py.display());
    let file = dir.join(format!("py-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_string(b).unwrap()).unwrap();
    let out = Command::new(py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/verify_attestation.py"))
        .arg(&file)
        .arg(key)
        .args([verifier, nonce])
        .output()
        .unwrap();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_owned())
}

/// A JWS over `claims` signed with `key` exactly as a node signs one.
fn forge(claims: &serde_json::Value, key: &SigningKey, header_of: &str) -> String {
    let h = header_of.split('.').next().unwrap();
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let sig = key.sign(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// Gives the scoring node the deposit-waiver policy at 550 (applied at its next restart).
fn waiver_at_550(c: &mut Cluster) {
    c.cfgs[ME].policies.insert(
        "deposit_waiver".into(),
        bureau::config::PolicyConfig {
            min_score: 550,
            purpose: bureau::Purpose::DepositWaiver,
            unscoreable: Default::default(),
        },
    );
}

fn claims_of(jws: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jws.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_says_meets_without_the_score_and_verifies_offline_here_and_in_python() {
    let mut c = Cluster::start(&INSTITUTIONS).await;
    waiver_at_550(&mut c);
    c.stop(ME).await;
    c.restart(ME).await;
    let s = subject(1);
    c.f.records(Role::Application, INSTITUTIONS[BANK], c.addrs[BANK])
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "bank-1", 1)] })
        .await
        .unwrap();
    let mut app = AttestationServiceClient::new(c.app(ME));
    let a = app.attest(ask(&s, "rental-co", "n-1")).await.unwrap().into_inner();

    // What the operator's application received: a statement and its proof, no score.
    let claims = claims_of(&a.jws);
    let mut keys: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "model", "nonce", "outcome", "policy", "sub", "threshold"]);
    assert_eq!((claims["outcome"].as_str(), claims["threshold"].as_i64()), (Some("meets"), Some(550)));
    let entry = bureau::Entry::from_bytes(&a.log_entry).unwrap();
    assert_eq!(
        (entry.action, entry.outcome.as_str(), entry.counterparty.as_str()),
        (Action::AttestationIssued, "meets", "rental-co")
    );
    let wire = prost::Message::encode_to_vec(&a);
    assert!(!String::from_utf8_lossy(&wire).contains("score"), "the answer names no score");

    // The node's key as a verifier holds it; its private half only to forge an unlogged one.
    let node = c.f.fed.pki.member(Role::Node, INSTITUTIONS[ME]);
    let pub_key = node.log_key.with_extension("pub");
    let vkey = std::fs::read_to_string(&pub_key).unwrap();
    let signing = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&node.log_key).unwrap()).unwrap();
    let b = bundle_from_pb(&a);
    let now = chrono::Utc::now();
    let ok = attestation::verify(&b, &vkey, "rental-co", "n-1", now).unwrap();
    assert_eq!((ok.sub.as_str(), ok.outcome.as_str()), (s.as_str(), "meets"));

    // Refused: a changed byte (statement, entry, proof, checkpoint), expired, for another
    // verifier or nonce, and a statement the node signed but did not log.
    let mut changed = b.clone();
    let mut p: Vec<char> = changed.jws.chars().collect();
    let at = changed.jws.find('.').unwrap() + 5;
    p[at] = if p[at] == 'A' { 'B' } else { 'A' };
    changed.jws = p.into_iter().collect();
    let mut entry_changed = b.clone();
    let mut leaf = bureau::Entry::from_bytes(&a.log_entry).unwrap();
    leaf.outcome = "does_not_meet".into();
    entry_changed.log_entry = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&leaf).unwrap());
    let mut cp_changed = b.clone();
    cp_changed.checkpoint =
        cp_changed.checkpoint.replacen(&format!("\n{}\n", b.tree_size), &format!("\n{}\n", b.tree_size + 1), 1);
    let mut other = claims.clone();
    other["nonce"] = "n-2".into();
    let mut unlogged = b.clone();
    unlogged.jws = forge(&other, &signing, &a.jws);
    let later = now + chrono::Duration::hours(25);
    let cases: [(&str, &Bundle, &str, &str, chrono::DateTime<chrono::Utc>); 7] = [
        ("changed statement", &changed, "rental-co", "n-1", now),
        ("changed entry", &entry_changed, "rental-co", "n-1", now),
        ("changed checkpoint", &cp_changed, "rental-co", "n-1", now),
        ("expired", &b, "rental-co", "n-1", later),
        ("other verifier", &b, "bike-co", "n-1", now),
        ("other nonce", &b, "rental-co", "n-2", now),
        ("not in the log", &unlogged, "rental-co", "n-2", now),
    ];
    for (what, bundle, verifier, nonce, at) in cases {
        let err = attestation::verify(bundle, &vkey, verifier, nonce, at).unwrap_err();
        let expected = match what {
            "changed statement" => matches!(err, AttestationError::BadSignature | AttestationError::Malformed(_)),
            "changed entry" | "not in the log" => matches!(err, AttestationError::NotInLog(_)),
            "changed checkpoint" => matches!(err, AttestationError::BadCheckpoint(_)),
            "expired" => matches!(err, AttestationError::Expired(_)),
            "other verifier" => matches!(err, AttestationError::WrongVerifier(_)),
            _ => err == AttestationError::WrongNonce,
        };
        assert!(expected, "{what}: {err}");
    }

    // The independent verifier agrees on every case it can check at the present time.
    let dir = c.f.tmp.path();
    let (good, line) = python(dir, &b, &pub_key, "rental-co", "n-1");
    assert!(good && line.contains("\"outcome\": \"meets\""), "{line}");
    for (what, bundle, verifier, nonce, at) in cases {
        if at != now {
            continue;
        }
        let (accepted, line) = python(dir, bundle, &pub_key, verifier, nonce);
        assert!(!accepted && line.starts_with("refused"), "{what}: python said {line}");
    }
    // Expired, for Python, whose clock is the real one: issued by a node whose clock ran 25 hours behind.
    c.clock.advance(chrono::Duration::hours(-25));
    let old = bundle_from_pb(&app.attest(ask(&s, "rental-co", "n-3")).await.unwrap().into_inner());
    c.clock.advance(chrono::Duration::hours(25));
    let (accepted, line) = python(dir, &old, &pub_key, "rental-co", "n-3");
    assert_eq!((accepted, line.as_str()), (false, "refused: expired"));

    // `bureau attest verify` from the file and the key alone.
    let file = dir.join("att.json");
    std::fs::write(&file, serde_json::to_string_pretty(&b).unwrap()).unwrap();
    let run = |nonce: &str| {
        Command::new(env!("CARGO_BIN_EXE_bureau"))
            .args(["attest", "verify"])
            .arg(&file)
            .arg("--key")
            .arg(&pub_key)
            .args(["--verifier", "rental-co", "--nonce", nonce])
            .output()
            .unwrap()
    };
    let out = run("n-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MEETS deposit_waiver (threshold 550) for rental-co"));
    let out = run("n-9");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("attestation refused: issued for another nonce"));
    // `bureau attest issue` as the operator's application writes a bundle that verifies.
    let issued = dir.join("issued.json");
    let out = c
        .cli(INSTITUTIONS[ME], c.addrs[ME], &["attest", "issue", "--subject", &s, "--policy", "deposit_waiver"])
        .args(["--consent", "w-2", "--verifier", "rental-co", "--nonce", "n-4", "--out"])
        .arg(&issued)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_cli: Bundle = serde_json::from_str(&std::fs::read_to_string(&issued).unwrap()).unwrap();
    assert_eq!(attestation::verify(&from_cli, &vkey, "rental-co", "n-4", now).unwrap().outcome, "meets");

    // A file too thin to score does not meet, and the statement says nothing more.
    let thin = app.attest(ask(&subject(2), "rental-co", "n-5")).await.unwrap().into_inner();
    assert_eq!(claims_of(&thin.jws)["outcome"], "does_not_meet");

    // Refusals through the API: no verifier; another institution's application (logged).
    let err = app.attest(ask(&s, "", "n-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), [("verifier".to_owned(), "required".to_owned())]);
    let other_app = c.f.channel(Role::Application, INSTITUTIONS[BANK], c.addrs[ME]);
    let err = AttestationServiceClient::new(other_app).attest(ask(&s, "rental-co", "n-1")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_deref()), (Code::PermissionDenied, Some("NOT_OWN_INSTITUTION")));

    // The regulator sees every attestation issued, and the decision (with its score) under its jti.
    let entries = c.entries(ME).await;
    let issued: Vec<_> = entries.iter().filter(|e| e.action == Action::AttestationIssued).collect();
    assert_eq!(issued.len(), 4);
    assert!(issued.iter().all(|e| !e.detail.is_empty()));
    let decision = entries.iter().find(|e| e.action == Action::DecisionServed && e.query_id == ok.jti).unwrap();
    assert!(decision.outcome.starts_with("deposit_waiver:approved"), "{}", decision.outcome);
    assert!(entries.iter().any(|e| e.action == Action::Refusal && e.outcome == "refused:NOT_OWN_INSTITUTION"));
    let out = Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["audit", "attestations", "--node", &c.addrs[ME].to_string(), "--regulator", "pbc"])
        .args(["--federation", "fed.test", "--pki"])
        .arg(&c.f.fed.pki.0)
        .arg("--state")
        .arg(dir.join("regulator-state"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(listed.contains("4 attestation(s) issued") && listed.contains(&ok.jti), "{listed}");
    c.shutdown().await;
}

/// A kiosk application named in `admin.attest_only` gets its attestation, and nothing that
/// carries a score: GetScore, Decide, WhatIf and the person's report are refused, each with
/// PERMISSION_DENIED `ATTEST_ONLY` and the refusal logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attest_only_application_never_gets_a_score() {
    use bureau::pb::bureau::v1::{
        decisions_service_client::DecisionsServiceClient, scoring_service_client::ScoringServiceClient,
        subjects_service_client::SubjectsServiceClient,
    };
    let mut c = Cluster::start(&INSTITUTIONS).await;
    waiver_at_550(&mut c);
    c.cfgs[ME].admin.attest_only = vec!["kiosk".into()];
    c.stop(ME).await;
    c.restart(ME).await;
    let s = subject(2);
    c.f.records(Role::Application, INSTITUTIONS[BANK], c.addrs[BANK])
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "bank-2", 1)] })
        .await
        .unwrap();
    let fed = &c.f.fed;
    let kiosk = bureau::pki::issue_app(&fed.pki, &fed.federation, INSTITUTIONS[ME], "kiosk").unwrap();
    let channel = bureau::ClientConfig::from_pki(&fed.pki.0, &kiosk, &fed.federation, &c.addrs[ME].to_string())
        .channel()
        .unwrap();

    let a = AttestationServiceClient::new(channel.clone()).attest(ask(&s, "kiosk-1", "n-k")).await.unwrap();
    assert!(!a.into_inner().jws.is_empty());

    let refused = |r: Result<tonic::Response<_>, tonic::Status>, what: &str| {
        let e = r.err().unwrap_or_else(|| panic!("{what}: an attest-only application was answered"));
        assert_eq!((e.code(), reason(&e).as_deref()), (Code::PermissionDenied, Some("ATTEST_ONLY")), "{what}: {e:?}");
    };
    let score_req = pb::GetScoreRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::DepositWaiver as i32,
        consent_reference: "w-2".into(),
    };
    refused(
        ScoringServiceClient::new(channel.clone()).get_score(score_req).await.map(|_| tonic::Response::new(())),
        "GetScore",
    );
    let decide =
        pb::DecideRequest { subject_id: s.clone(), policy: "deposit_waiver".into(), consent_reference: "w-3".into() };
    refused(
        ScoringServiceClient::new(channel.clone()).decide(decide).await.map(|_| tonic::Response::new(())),
        "Decide",
    );
    let what_if = pb::WhatIfRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::DepositWaiver as i32,
        consent_reference: "w-4".into(),
        target: 600,
    };
    refused(
        DecisionsServiceClient::new(channel.clone()).what_if(what_if).await.map(|_| tonic::Response::new(())),
        "WhatIf",
    );
    let report = pb::GetReportRequest { subject_id: s.clone(), consent_reference: "w-5".into() };
    refused(
        SubjectsServiceClient::new(channel).get_report(report).await.map(|_| tonic::Response::new(())),
        "GetReport",
    );

    // The institution's other applications still score.
    let ok = ScoringServiceClient::new(c.app(ME))
        .get_score(pb::GetScoreRequest {
            subject_id: s.clone(),
            purpose: pb::Purpose::DepositWaiver as i32,
            consent_reference: "w-6".into(),
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let logged = c.entries(ME).await.into_iter().filter(|e| e.outcome.contains("ATTEST_ONLY")).count();
    assert_eq!(logged, 4, "each refusal is logged");
}
