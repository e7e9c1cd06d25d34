//! A full disk, for real: the node's store on a small tmpfs that the test mounts (CI runs as
//! root; elsewhere the test says it cannot mount and fails, it is never skipped silently).

mod common;

use std::time::Duration;

use bureau::{pb::bureau::v1 as pb, Role};
use common::{fed, record, subject};
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

/// Unmounts the test's filesystem when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `GET path` at `addr` over plain HTTP: the whole answer.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

/// `GET /readyz` at `addr`: the status line and the body, on one line.
async fn readyz(addr: std::net::SocketAddr) -> String {
    let out = get(addr, "/readyz").await;
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    format!("{} {}", head.lines().next().unwrap(), body.trim())
}

/// While the disk is full, writes fail with UNAVAILABLE naming the cause and every acknowledged
/// record is still read (the store stops writing while sled has room for what it holds, so
/// sled's handle never fails); health (gRPC, and `/readyz` over plain HTTP) says NOT_SERVING for the API and the store's writes and
/// SERVING for its reads. Once space is back the node stops by itself so its supervisor
/// restarts it. Restarted, it has every acknowledged record and takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_keeps_reads_and_never_serves_broken() {
    let f = fed(&["bank"], &[]);
    let mnt = f.tmp.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=40M", "tmpfs"]).arg(&mnt).status();
    assert!(mounted.is_ok_and(|s| s.success()), "this test mounts a 40 MiB tmpfs and needs root");
    let _mount = Mount(mnt.clone());
    // Room to free later, taken before the node starts.
    std::fs::write(mnt.join("filler"), vec![1u8; 8 << 20]).unwrap();
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.node.data_dir = mnt.join("store");
    cfg.store.cache_capacity_bytes = 8 << 20;
    // The plain-HTTP readiness a load balancer asks follows the gRPC health.
    let mgmt = std::net::SocketAddr::from(([127, 0, 0, 1], {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }));
    cfg.metrics.listen = Some(mgmt);
    let node = bureau::start(cfg.clone()).await.unwrap();
    assert_eq!(readyz(mgmt).await, "HTTP/1.1 200 OK SERVING");
    let mut c = f.records(Role::Application, "bank", node.addr);
    let mut acked = Vec::new();
    let full = loop {
        let b = acked.len();
        let records = (0..100).map(|i| record(&subject(i % 50), &format!("x-{b}-{i}"), 1)).collect();
        match c.furnish_records(pb::FurnishRecordsRequest { records }).await {
            Ok(_) => acked.push(b),
            Err(e) => break e,
        }
        assert!(acked.len() < 2_000, "the disk never filled");
    };
    assert_eq!(full.code(), Code::Unavailable, "{full:?}");
    assert!(full.message().contains("No space left on device"), "names the cause: {full:?}");

    let mut h = HealthClient::new(f.channel(Role::Application, "bank", node.addr));
    let check = HealthCheckRequest { service: "bureau.v1.RecordsService".into() };
    let mut status = h.check(check.clone()).await.unwrap().into_inner().status;
    for _ in 0..40 {
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = h.check(check.clone()).await.unwrap().into_inner().status;
    }
    assert_eq!(status, ServingStatus::NotServing as i32, "never SERVING while every write fails");
    let store = |service: &str| HealthCheckRequest { service: service.into() };
    let writes = h.check(store(bureau::health::WRITES)).await.unwrap().into_inner().status;
    assert_eq!(writes, ServingStatus::NotServing as i32, "the store's writes");
    assert_eq!(readyz(mgmt).await, "HTTP/1.1 503 Service Unavailable NOT_SERVING");
    // The figure the alert rules (ops/alerts.yml) watch.
    let scraped = get(mgmt, "/metrics").await;
    for line in
        ["bureau_health_serving{service=\"bureau.store.writes\"} 0", "bureau_health_serving{service=\"node\"} 0"]
    {
        assert!(scraped.contains(line), "{line}: {scraped}");
    }
    let reads = h.check(store(bureau::health::READS)).await.unwrap().into_inner().status;
    assert_eq!(reads, ServingStatus::Serving as i32, "the store's reads go on");
    // Every acknowledged record is read while writes are refused: listed, and fetched one by one.
    let want: std::collections::BTreeSet<String> =
        acked.iter().flat_map(|b| (0..100).map(move |i| format!("x-{b}-{i}"))).collect();
    let listed = common::all_record_ids(&f, node.addr, 50).await;
    let unread: Vec<_> = want.difference(&listed).collect();
    assert!(
        unread.is_empty(),
        "{} of {} acknowledged records not listed, e.g. {:?}",
        unread.len(),
        want.len(),
        unread.first()
    );
    for id in &want {
        let name = format!("institutions/bank/records/{id}");
        c.get_record(pb::GetRecordRequest { name }).await.unwrap_or_else(|e| panic!("{id} not read while full: {e:?}"));
    }
    eprintln!("{} acknowledged records read while the disk was full", want.len());
    let err = c
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "while-full", 1)] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    std::fs::remove_file(mnt.join("filler")).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(30), node.wait()).await.expect("stops once space is back");
    let err = stopped.expect_err("a node that stops on a store failure says so");
    assert!(err.to_string().contains("No space left on device"), "{err}");

    let node = bureau::start(cfg).await.expect("restarts once space is back");
    let mut c = f.records(Role::Application, "bank", node.addr);
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "after", 1)] })
        .await
        .expect("writes again after the restart");
    for b in [acked[0], acked[acked.len() - 1]] {
        let name = format!("institutions/bank/records/x-{b}-7");
        c.get_record(pb::GetRecordRequest { name }).await.expect("acknowledged records survive");
    }
    node.shutdown().await.unwrap();
}
