//! Every refusal the node promises at the TLS and authorisation layers, tried for real.

mod common;

use std::{sync::Arc, time::Duration};

use bureau::{pb::bureau::v1 as pb, pki, testkit::local::LocalFederation, testkit::tls_channel, Role};
use common::{fed, reason, record, subject};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};
use tonic::Code;

/// Accepts any server: lets a test reach the server's refusal of the *client*.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

/// A handshake refusal. With TLS 1.3 the client finishes its side before the server's verdict,
/// so the refusal arrives as a fatal alert on the first call, which tonic reports as UNAVAILABLE
/// or UNKNOWN ("transport error") depending on timing; the alert names the exact cause.
fn assert_refused(err: &tonic::Status, alert: &str) {
    assert!(matches!(err.code(), Code::Unavailable | Code::Unknown), "{err:?}");
    let chain = format!("{err:?}");
    assert!(chain.contains(alert), "expected {alert} in {chain}");
}

async fn furnish_one(ch: tonic::transport::Channel) -> Result<(), tonic::Status> {
    let mut c = pb::records_service_client::RecordsServiceClient::new(ch);
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "r-1", 1)] }).await.map(|_| ())
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_the_handshake() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let ch = tls_channel(&node.addr.to_string(), Arc::new(cfg), Duration::from_secs(2)).unwrap();
    let err = furnish_one(ch).await.unwrap_err();
    assert_refused(&err, "CertificateRequired");
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_another_authority_is_refused() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    // A rogue authority with another name is unknown; one that copies the real authority's
    // name is caught by the signature check. Either way the handshake fails.
    for (federation, alert) in [("evil.test", "UnknownCA"), ("fed.test", "DecryptError")] {
        let dir = tempfile::tempdir().unwrap();
        let rogue = LocalFederation::create(dir.path(), federation, &["bank"], &[]).unwrap();
        let mut client = rogue.client(Role::Application, "bank", node.addr);
        client.tls.ca = f.fed.pki.ca_cert(); // it trusts the real node, so only its own cert is at fault
        client.tls.crl = None;
        client.federation = "fed.test".into();
        let err = furnish_one(client.channel().unwrap()).await.unwrap_err();
        assert_refused(&err, alert);
    }
    // The honest client still gets in: the refusal was the certificate, not the node.
    furnish_one(f.channel(Role::Application, "bank", node.addr)).await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_revoked_licence_is_refused_including_after_a_live_crl_reload() {
    let f = fed(&["bank"], &["pbc"]);
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.limits.crl_reload_ms = 50;
    let node = bureau::start(cfg).await.unwrap();
    // Before revocation the regulator completes the handshake (and is refused by role).
    let err = furnish_one(f.channel(Role::Regulator, "pbc", node.addr)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Revoked while the node runs: the next handshake is refused without a restart.
    pki::revoke(&f.fed.pki, &f.fed.pki.member(Role::Regulator, "pbc").cert).unwrap();
    let mut refused = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = furnish_one(f.channel(Role::Regulator, "pbc", node.addr)).await.unwrap_err();
        if err.code() != Code::PermissionDenied {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("revoked certificate still accepted after 5 s");
    assert_refused(&err, "CertificateRevoked");
    // Unrevoked members are unaffected.
    furnish_one(f.channel(Role::Application, "bank", node.addr)).await.unwrap();
    node.shutdown().await.unwrap();

    // A node started with the CRL already listing it refuses it from the first handshake.
    let node = f.start("bank").await;
    let err = furnish_one(f.channel(Role::Regulator, "pbc", node.addr)).await.unwrap_err();
    assert_refused(&err, "CertificateRevoked");
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_wrong_role_or_another_institution_may_not_furnish() {
    let f = fed(&["bank", "lender"], &["pbc"]);
    let node = f.start("bank").await;
    let err = furnish_one(f.channel(Role::Regulator, "pbc", node.addr)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("WRONG_ROLE"));
    let err = furnish_one(f.channel(Role::Application, "lender", node.addr)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("NOT_OWN_INSTITUTION"));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_refuses_a_node_that_is_not_the_institution_it_expects() {
    let f = fed(&["bank", "lender"], &[]);
    let node = f.start("bank").await;
    let mut client = f.fed.client(Role::Application, "bank", node.addr);
    client.expect = Some("lender".into());
    let err = furnish_one(client.channel().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "refused by our own client while connecting");
    assert_refused(&err, "WrongPeer");
    assert!(format!("{err:?}").contains("spiffe://fed.test/institution/lender"));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_cover_every_service() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let ch = f.channel(Role::Application, "bank", node.addr);
    let status = HealthClient::new(ch.clone())
        .check(HealthCheckRequest { service: "bureau.v1.RecordsService".into() })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    use tonic_reflection::pb::v1alpha::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse, ServerReflectionRequest,
    };
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for s in [
        "bureau.v1.RecordsService",
        "bureau.v1.FederationService",
        "bureau.v1.ScoringService",
        "bureau.v1.AuditService",
        "bureau.v1.SubjectsService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&s), "{s} missing from {names:?}");
    }

    for service in ["FederationService", "ScoringService", "AuditService", "SubjectsService"] {
        let status = HealthClient::new(ch.clone())
            .check(HealthCheckRequest { service: format!("bureau.v1.{service}") })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{service}");
    }
    let err = HealthClient::new(ch)
        .check(HealthCheckRequest { service: "bureau.v1.NoSuchService".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    node.shutdown().await.unwrap();
}

/// 1,000 connections that never finish a TLS handshake (half send nothing, half a partial
/// ClientHello) must not keep a new connection waiting: it is served within the 2 s connect
/// timeout peers use (the oldest pending handshakes are dropped to make room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stalled_handshakes_does_not_keep_a_new_connection_waiting() {
    use tokio::io::AsyncWriteExt as _;
    let f = fed(&["bank"], &[]);
    let cfg = f.fed.node_config("bank", &[]);
    let (mut child, addr) = common::spawn_serve(&f, &cfg);
    let mut stalled = Vec::new();
    for i in 0..1_000 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            // A TLS record header announcing a 512-byte handshake message, then silence.
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
        }
        stalled.push(s);
    }
    let started = std::time::Instant::now();
    let ch = f.channel(Role::Application, "bank", addr);
    let served = tokio::time::timeout(Duration::from_secs(2), furnish_one(ch)).await;
    let took = started.elapsed();
    eprintln!("with 1000 stalled handshakes open, a new connection was served in {took:?}");
    served.expect("served within a peer's 2 s connect timeout").expect("and answered");
    drop(stalled);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Revoked while connected: at the next CRL reload the node closes the open connection of a
/// revoked client, and its own open connection to a revoked peer, whose records it then stops
/// using (the reconnection is refused at the handshake).
#[tokio::test]
async fn a_revocation_closes_open_connections_in_both_directions() {
    use pb::{audit_service_client::AuditServiceClient, scoring_service_client::ScoringServiceClient};
    let f = fed(&["bank", "payapp"], &["pbc"]);
    let nodes = f.fed.start_all(&["bank", "payapp"], |c| c.limits.crl_reload_ms = 50).await.unwrap();
    let (bank, payapp) = (&nodes[0], &nodes[1]);
    let mut audit = AuditServiceClient::new(f.channel(Role::Regulator, "pbc", bank.addr));
    audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap();
    f.records(Role::Application, "payapp", payapp.addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "p-1", 1)] })
        .await
        .unwrap();
    let mut scoring = ScoringServiceClient::new(f.channel(Role::Application, "bank", bank.addr));
    let score = || pb::GetScoreRequest {
        subject_id: subject(1),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    };
    let payapp_outcome = |s: &pb::Score| s.coverage.iter().find(|c| c.peer == "payapp").map(|c| c.outcome);
    let before = scoring.get_score(score()).await.unwrap().into_inner();
    assert_eq!(payapp_outcome(&before), Some(pb::PeerOutcome::Answered as i32));

    pki::revoke(&f.fed.pki, &f.fed.pki.member(Role::Regulator, "pbc").cert).unwrap();
    pki::revoke(&f.fed.pki, &f.fed.pki.member(Role::Node, "payapp").cert).unwrap();
    // Inbound: the regulator's open connection stops working (it is not left to reconnect).
    let mut closed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Err(e) = audit.get_checkpoint(pb::GetCheckpointRequest {}).await {
            closed = Some(e);
            break;
        }
    }
    let err = closed.expect("the revoked regulator's open connection still works after 5 s");
    assert!(matches!(err.code(), Code::Unavailable | Code::Unknown | Code::Cancelled), "{err:?}");
    // Outbound: the scoring node stops using the revoked peer.
    let mut after = None;
    for _ in 0..100 {
        let s = scoring.get_score(score()).await.unwrap().into_inner();
        if payapp_outcome(&s) != Some(pb::PeerOutcome::Answered as i32) {
            after = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = after.expect("the revoked peer still answered after 5 s");
    let gone = after.coverage.iter().find(|c| c.peer == "payapp").unwrap();
    assert_eq!(gone.outcome, pb::PeerOutcome::Unreachable as i32, "{gone:?}");
    assert!(gone.error.contains("Revoked") || gone.error.contains("revoked"), "{gone:?}");
    assert_eq!(after.records_used, 0, "no record of the revoked peer is used");
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// Nodes and applications hold distinct identities: an application may not query a peer's
/// `FederationService` (only nodes do, so the asking node always logs the query too), and a
/// node identity may not use an institution's application services, not even its own node's.
#[tokio::test]
async fn applications_may_not_query_peers_and_nodes_may_not_use_application_services() {
    let f = fed(&["bank", "payapp"], &[]);
    let nodes = f.fed.start_all(&["bank", "payapp"], |_| {}).await.unwrap();
    let (bank, payapp) = (&nodes[0], &nodes[1]);
    let query = pb::QueryRecordsRequest {
        subject_id: subject(1),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
        query_id: "q-app".into(),
        records_only: false,
    };
    // bank's application asks payapp's node directly, bypassing its own node.
    let err =
        pb::federation_service_client::FederationServiceClient::new(f.channel(Role::Application, "bank", payapp.addr))
            .query_records(query.clone())
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("WRONG_ROLE"));
    assert!(err.message().contains("institution/bank/app/cli"), "{err:?}");
    // bank's node may (it is how federated scores work).
    pb::federation_service_client::FederationServiceClient::new(f.channel(Role::Node, "bank", payapp.addr))
        .query_records(query)
        .await
        .unwrap();
    // A node identity on application services: its own node's and a peer's.
    for (node, at) in [("bank", bank.addr), ("bank", payapp.addr)] {
        let err = furnish_one(f.channel(Role::Node, node, at)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(reason(&err).as_deref(), Some("WRONG_ROLE"), "{err:?}");
    }
    // A node certificate can no longer pose as a client of another node's application API, and
    // an application certificate cannot serve as a node.
    let mut cfg = f.fed.node_config("bank", &[]);
    let app = f.fed.pki.member(Role::Application, "bank");
    (cfg.tls.cert, cfg.tls.key) = (app.cert, app.key);
    let err = bureau::start(cfg).await.err().expect("an application certificate cannot start a node");
    assert!(err.to_string().contains("institution/bank/app/cli"), "{err}");
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
