//! Personal data at rest and on the wire, tried from outside: a backup file is age-encrypted to
//! the institution's recipient, 0600, restores only with its identity, is taken only by an
//! application the node's configuration names administrator and is logged; a cut-off backup
//! leaves nothing behind; the report page is 0600; `/metrics` beyond loopback needs an
//! allow-list and answers nobody else.

mod common;

use std::{net::SocketAddr, os::unix::fs::PermissionsExt, path::Path};

use bureau::{
    backup_to_file, pb::bureau::v1 as pb, pki, restore_from_file, BackupError, ClientConfig, Role, RunningNode,
};
use common::{fed, reason, record, subject, Cluster, Fed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The institution's backup recipients and identities, as `bureau pki init` wrote them.
fn keys(f: &Fed, institution: &str) -> (Vec<age::x25519::Recipient>, Vec<age::x25519::Identity>) {
    let key = f.fed.pki.member(Role::Node, institution).backup_key;
    (bureau::read_recipients(&key.with_extension("pub")).unwrap(), bureau::read_identities(&key).unwrap())
}

/// A channel to `addr` as application `app` of `institution`.
fn app_channel(f: &Fed, institution: &str, app: &str, addr: SocketAddr) -> tonic::transport::Channel {
    let files = f.fed.pki.app(institution, app);
    ClientConfig::from_pki(&f.fed.pki.0, &files, "fed.test", &addr.to_string()).channel().unwrap()
}

async fn furnish(f: &Fed, node: &RunningNode, n: usize, prefix: &str) {
    let mut c = f.records(Role::Application, "bank", node.addr);
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in ids.chunks(500) {
        let records = chunk.iter().enumerate().map(|(i, id)| record(&subject(i as u32 % 16), id, 1)).collect();
        c.furnish_records(pb::FurnishRecordsRequest { records }).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_encrypted_0600_logged_and_restores_only_with_its_identity() {
    let c = Cluster::start(&["bank"]).await;
    let s = subject(7);
    c.f.records(Role::Application, "bank", c.addrs[0])
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "secret-card-7", 1)] })
        .await
        .unwrap();

    // The real command line, encrypting to the recipient `bureau pki init` wrote.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bank.backup");
    let recipients_file = c.f.fed.pki.member(Role::Node, "bank").backup_key.with_extension("pub");
    let run = c
        .cli("bank", c.addrs[0], &["backup"])
        .arg("--out")
        .arg(&file)
        .arg("--recipients-file")
        .arg(&recipients_file)
        .output()
        .unwrap();
    assert!(run.status.success(), "bureau backup: {}", String::from_utf8_lossy(&run.stderr));
    assert!(!dir.path().join("bank.partial").exists());

    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "an age file");
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!find(s.as_bytes()), "the subject id is not in the file's bytes");
    assert!(!find(b"secret-card-7"), "the record id is not in the file's bytes");
    assert!(!find(b"bureau-backup"), "nothing of the plaintext format shows");
    assert_eq!(mode(&file), 0o600, "readable by its owner only");

    // The wrong identity, and none, are refused with a clear error; nothing is written.
    let (_, identities) = keys(&c.f, "bank");
    let target = dir.path().join("restored");
    match restore_from_file(&file, &target, &[age::x25519::Identity::generate()]).await {
        Err(BackupError::WrongKey(why)) => assert!(why.contains("encrypted to other recipients"), "{why}"),
        other => panic!("a wrong identity must be refused: {other:?}"),
    }
    assert!(matches!(restore_from_file(&file, &target, &[]).await, Err(BackupError::Key(_))));
    // A truncated file is refused by age's authentication, not read short.
    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    match restore_from_file(&cut, &target, &identities).await {
        Err(BackupError::Damaged(why)) => assert!(why.contains("cut.backup"), "{why}"),
        other => panic!("a truncated backup must be refused: {other:?}"),
    }
    assert!(!target.join("db").exists(), "nothing written without the identity");
    let restored = restore_from_file(&file, &target, &identities).await.unwrap();
    assert!(restored.pairs > 0 && restored.tree_size >= 1, "{restored:?}");

    // The backup is in the log as the regulator reads it.
    let entries = c.entries(0).await;
    let taken: Vec<_> = entries.iter().filter(|e| e.action == bureau::Action::BackupTaken).collect();
    assert_eq!(taken.len(), 1, "one entry per backup: {entries:?}");
    assert_eq!(taken[0].actor, "bank");
    assert_eq!(taken[0].detail, "institution/bank/app/cli", "the caller");
    assert_eq!(taken[0].outcome, format!("tree_size={} pairs={}", restored.tree_size, restored.pairs));
    let mut audit = pb::audit_service_client::AuditServiceClient::new(c.f.channel(Role::Regulator, "pbc", c.addrs[0]));
    let size = audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
    let wire = bureau::regulator::fetch_entries(&mut audit, size).await.unwrap();
    assert_eq!(wire.iter().filter(|e| e.action == pb::AuditAction::BackupTaken as i32).count(), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn only_an_application_named_administrator_may_take_a_backup() {
    let f = fed(&["bank"], &["pbc"]);
    pki::issue_app(&f.fed.pki, "fed.test", "bank", "ops").unwrap();
    pki::issue_app(&f.fed.pki, "fed.test", "bank", "mobile").unwrap();
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.admin.applications = vec!["ops".into()];
    let node = bureau::start(cfg).await.unwrap();
    let (recipients, _) = keys(&f, "bank");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bank.backup");

    for app in ["cli", "mobile"] {
        match backup_to_file(app_channel(&f, "bank", app, node.addr), &file, &recipients).await {
            Err(BackupError::Node(s)) => {
                assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
                assert_eq!(reason(&s).as_deref(), Some("NOT_ADMINISTRATOR"));
                assert!(s.message().contains("admin.applications names (ops)"), "{}", s.message());
            }
            other => panic!("{app} is not an administrator: {other:?}"),
        }
        assert!(!file.exists() && !dir.path().join("bank.partial").exists(), "nothing left by a refusal");
    }
    backup_to_file(app_channel(&f, "bank", "ops", node.addr), &file, &recipients).await.unwrap();
    assert_eq!(mode(&file), 0o600);

    // The regulator sees both refusals and the one backup.
    let mut audit = pb::audit_service_client::AuditServiceClient::new(f.channel(Role::Regulator, "pbc", node.addr));
    let size = audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
    let entries: Vec<bureau::Entry> = bureau::regulator::fetch_entries(&mut audit, size)
        .await
        .unwrap()
        .iter()
        .map(|e| bureau::Entry::from_bytes(&e.leaf_data).unwrap())
        .collect();
    let refused: Vec<&str> = entries
        .iter()
        .filter(|e| e.action == bureau::Action::Refusal && e.outcome == "refused:NOT_ADMINISTRATOR")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(refused, ["institution/bank/app/cli", "institution/bank/app/mobile"]);
    let taken: Vec<&str> =
        entries.iter().filter(|e| e.action == bureau::Action::BackupTaken).map(|e| e.detail.as_str()).collect();
    assert_eq!(taken, ["institution/bank/app/ops"]);
    node.shutdown().await.unwrap();
}

/// A backup whose connection is cut mid-way (a proxy forwards the node's first 64 KiB, then
/// drops both ends) fails, and neither the file nor its `.partial` is left.
#[tokio::test]
async fn a_backup_cut_off_mid_way_leaves_no_partial_file() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    furnish(&f, &node, 3_000, "bulk").await;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let target = node.addr;
    tokio::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
        let mut forwarded = 0usize;
        let mut buf = vec![0u8; 4096];
        while forwarded < 64 << 10 {
            match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    cw.write_all(&buf[..n]).await.unwrap();
                    forwarded += n;
                }
            }
        }
        up.abort();
    });
    let (recipients, _) = keys(&f, "bank");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bank.backup");
    let channel = f.fed.client(Role::Application, "bank", proxy_addr).channel().unwrap();
    let err = backup_to_file(channel, &file, &recipients).await.unwrap_err();
    assert!(matches!(err, BackupError::Node(_)), "the stream broke: {err:?}");
    assert!(!file.exists(), "no backup file");
    assert!(!dir.path().join("bank.partial").exists(), "no partial file");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_is_written_0600() {
    let c = Cluster::start(&["bank"]).await;
    let s = subject(3);
    c.f.records(Role::Application, "bank", c.addrs[0])
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "card-3", 1)] })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, "an older, world-readable page").unwrap();
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = c
        .cli("bank", c.addrs[0], &["report", "--subject", &s, "--consent", "report-2026-02"])
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    assert!(run.status.success(), "bureau report: {}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(mode(&page), 0o600, "the page replaced, readable by its owner only");
    assert!(std::fs::read_to_string(&page).unwrap().contains("card-3"));
    c.shutdown().await;
}

/// `GET /metrics` on `addr`: the response, or empty when the connection was closed unanswered.
async fn scrape(addr: SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// This machine's address on its default route, if it has one that is not loopback.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn metrics_beyond_loopback_need_an_allow_list_and_answer_nobody_else() {
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.metrics.listen = Some(SocketAddr::from(([0, 0, 0, 0], free_port())));
    let refused = cfg.check().unwrap_err().to_string();
    assert!(refused.contains("is not loopback") && refused.contains("metrics.allow"), "{refused}");
    assert!(bureau::start(cfg.clone()).await.is_err(), "the node does not start");
    let section = |allow: &str| {
        toml::from_str::<bureau::config::MetricsSection>(&format!("listen = \"0.0.0.0:9101\"\nallow = [{allow}]"))
    };
    assert!(section("\"10.0.0.0/33\"").is_err(), "a bad network is refused");
    assert!(section("\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.7\"").is_ok());

    // Loopback by itself needs no list; a scrape from loopback is answered.
    let port = free_port();
    cfg.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    let node = bureau::start(cfg.clone()).await.unwrap();
    let answer = scrape(SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.contains("bureau_"), "{answer}");
    node.shutdown().await.unwrap();

    // On every address with a list that does not hold this machine's own address: loopback is
    // answered, a scrape from the machine's network address is closed unanswered.
    let port = free_port();
    cfg.metrics.listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
    cfg.metrics.allow = vec![bureau::config::IpNet::try_from("198.51.100.0/24".to_string()).unwrap()];
    let cfg_allow = cfg.metrics.allow.clone();
    let node = bureau::start(cfg).await.unwrap();
    assert!(scrape(SocketAddr::from(([127, 0, 0, 1], port))).await.starts_with("HTTP/1.1 200 OK"));
    if let Some(ip) = non_loopback_ip().filter(|ip| !cfg_allow.iter().any(|n| n.contains(*ip))) {
        assert_eq!(scrape(SocketAddr::new(ip, port)).await, "", "closed without an answer");
        let counted = scrape(SocketAddr::from(([127, 0, 0, 1], port))).await;
        assert!(counted.contains("bureau_metrics_refused_total"), "the refusal is counted");
    }
    node.shutdown().await.unwrap();
}
