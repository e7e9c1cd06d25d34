//! Revocation fails closed: a CRL file that is not the authority's current list — empty, text,
//! random bytes, signed by another authority, or older than the list in force — never lets a
//! revoked member back in, and a node will not start on one. Tried the way the outside probe
//! did: by replacing `crl.pem` under a running node.

mod common;

use std::{path::Path, time::Duration};

use bureau::{pb::bureau::v1 as pb, pki, testkit::local::LocalFederation, Role};
use common::{fed, record, subject};
use tonic::Code;

async fn furnish_one(ch: tonic::transport::Channel) -> Result<(), tonic::Status> {
    let mut c = pb::records_service_client::RecordsServiceClient::new(ch);
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "r-1", 1)] }).await.map(|_| ())
}

/// Files that are not the authority's list, by name: (what, bytes).
fn not_the_authoritys_list(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let rogue = LocalFederation::create(&dir.join("rogue"), "fed.test", &["bank"], &[]).unwrap();
    let random: Vec<u8> = (0..512).map(|_| rand::random::<u8>()).collect();
    let truncated = {
        let real = std::fs::read_to_string(rogue.pki.crl()).unwrap();
        real.as_bytes()[..real.len() / 2].to_vec()
    };
    vec![
        ("an empty file", Vec::new()),
        ("text", b"this is not a revocation list\n".to_vec()),
        ("random bytes", random),
        ("a truncated PEM", truncated),
        ("another authority's list", std::fs::read(rogue.pki.crl()).unwrap()),
    ]
}

/// A client that does not read the CRL file itself (the test damages that file: the node's
/// judgement is what is tried).
fn channel(f: &common::Fed, role: Role, id: &str, addr: std::net::SocketAddr) -> tonic::transport::Channel {
    let mut client = f.fed.client(role, id, addr);
    client.tls.crl = None;
    client.channel().unwrap()
}

/// The handshake of a revoked client is refused (the alert names the revocation).
async fn assert_still_revoked(f: &common::Fed, addr: std::net::SocketAddr, after: &str) {
    let err = furnish_one(channel(f, Role::Regulator, "pbc", addr)).await.unwrap_err();
    assert!(matches!(err.code(), Code::Unavailable | Code::Unknown), "after {after}: {err:?}");
    assert!(format!("{err:?}").contains("CertificateRevoked"), "after {after}, the revoked member got in: {err:?}");
}

#[tokio::test]
async fn a_node_will_not_start_on_a_crl_that_is_not_the_authoritys() {
    let f = fed(&["bank"], &[]);
    for (what, bytes) in not_the_authoritys_list(f.tmp.path()) {
        let path = f.tmp.path().join("bad-crl.pem");
        std::fs::write(&path, &bytes).unwrap();
        let mut cfg = f.fed.node_config("bank", &[]);
        cfg.tls.crl = Some(path.clone());
        let err = match bureau::start(cfg).await {
            Ok(node) => {
                node.shutdown().await.unwrap();
                panic!("a node started on {what}")
            }
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&path.display().to_string()), "{what}: the refusal names the file: {err}");
        assert!(err.contains("revocation list refused"), "{what}: {err}");
    }
    // No CRL at all, or a watcher that would spin: refused by the configuration check.
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.tls.crl = None;
    let err = bureau::start(cfg).await.err().expect("a node without a CRL is refused").to_string();
    assert!(err.contains("tls.crl is required"), "{err}");
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.limits.crl_reload_ms = 0;
    let err = bureau::start(cfg).await.err().expect("a zero reload interval is refused").to_string();
    assert!(err.contains("limits.crl_reload_ms must be > 0"), "{err}");
}

#[tokio::test]
async fn a_damaged_foreign_or_older_crl_never_readmits_a_revoked_member() {
    let f = fed(&["bank"], &["pbc"]);
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.limits.crl_reload_ms = 50;
    let node = bureau::start(cfg).await.unwrap();
    let before = std::fs::read(f.fed.pki.crl()).unwrap();
    pki::revoke(&f.fed.pki, &f.fed.pki.member(Role::Regulator, "pbc").cert).unwrap();
    let mut revoked = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = furnish_one(f.channel(Role::Regulator, "pbc", node.addr)).await.unwrap_err();
        if format!("{err:?}").contains("CertificateRevoked") {
            revoked = true;
            break;
        }
    }
    assert!(revoked, "the revocation never took effect");

    let mut bad = not_the_authoritys_list(f.tmp.path());
    bad.push(("the list from before the revocation (a rollback)", before));
    for (what, bytes) in bad {
        std::fs::write(f.fed.pki.crl(), &bytes).unwrap();
        // Ten reload intervals: time for the node to read the file and (wrongly) install it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_still_revoked(&f, node.addr, what).await;
        furnish_one(channel(&f, Role::Application, "bank", node.addr)).await.unwrap();
    }

    // The authority's refreshed list (same revocations, a higher number) is taken, and keeps
    // the member out; a restart on it refuses the member from the first handshake.
    pki::revoke(&f.fed.pki, &f.fed.pki.member(Role::Regulator, "pbc").cert).unwrap(); // rewrite the real list
                                                                                      // The authority's tool, as an operator runs it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["pki", "crl", "refresh", "--dir"])
        .arg(&f.fed.pki.0)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("revocation list re-signed: number 3"), "a higher number: {said}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_still_revoked(&f, node.addr, "a refresh").await;
    node.shutdown().await.unwrap();
    let node = f.start("bank").await;
    assert_still_revoked(&f, node.addr, "a restart on the refreshed list").await;
    node.shutdown().await.unwrap();
}
