//! What an operator relies on: a shutdown that tells watchers first, bounded threads and memory
//! under a flood of writers, stable paging, and command-line input refused without a panic.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use bureau::{
    pb::bureau::v1::{
        self as pb, scoring_service_client::ScoringServiceClient, subjects_service_client::SubjectsServiceClient,
    },
    testkit::process::proc_status,
    Role,
};
use common::{fed, record, subject, violations};
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

/// The node's five API services, by their full gRPC names.
const SERVICES: [&str; 6] = [
    "bureau.v1.RecordsService",
    "bureau.v1.FederationService",
    "bureau.v1.ScoringService",
    "bureau.v1.AuditService",
    "bureau.v1.SubjectsService",
    "bureau.v1.AdminService",
];

/// Health watchers of every service (and of the server as a whole) hear NOT_SERVING when the
/// node begins to shut down, before it stops serving.
#[tokio::test]
async fn shutdown_turns_every_service_not_serving() {
    let f = fed(&["bank"], &[]);
    let node = bureau::start({
        let mut c = f.fed.node_config("bank", &[]);
        c.limits.drain_timeout_ms = 300; // the watch streams never end by themselves
        c
    })
    .await
    .unwrap();
    let ch = f.channel(Role::Application, "bank", node.addr);
    let mut streams = Vec::new();
    for service in SERVICES.iter().copied().chain([""]) {
        let mut s = HealthClient::new(ch.clone())
            .watch(HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner();
        let first = s.message().await.unwrap().unwrap().status;
        assert_eq!(first, ServingStatus::Serving as i32, "{service:?} serving before shutdown");
        streams.push((service, s));
    }
    let stopping = tokio::spawn(node.shutdown());
    for (service, mut s) in streams {
        let next = tokio::time::timeout(Duration::from_secs(10), s.message()).await.expect("an update in time");
        let status = next.expect("an update, not an error").expect("an update before the stream ends").status;
        assert_eq!(status, ServingStatus::NotServing as i32, "{service:?} turns NOT_SERVING");
    }
    stopping.await.unwrap().unwrap();
}

/// Sends `streams` one-record furnishing streams over `channels`, `concurrency` at a time;
/// returns how many records were accepted.
async fn one_record_streams(
    channels: &[tonic::transport::Channel],
    streams: usize,
    concurrency: usize,
    tag: &'static str,
) -> usize {
    use futures::StreamExt as _;
    let calls = futures::stream::iter(0..streams).map(|i| {
        let mut c = pb::records_service_client::RecordsServiceClient::new(channels[i % channels.len()].clone());
        tokio::spawn(async move {
            let req = pb::FurnishRecordsRequest { records: vec![record(&subject(i as u32), &format!("{tag}-{i}"), 1)] };
            c.stream_furnish_records(tokio_stream::iter(vec![req])).await.map(|r| r.into_inner().accepted_count)
        })
    });
    let results: Vec<_> = calls.buffer_unordered(concurrency).collect().await;
    results.into_iter().map(|r| r.unwrap().expect("every stream is answered") as usize).sum()
}

/// A node process with `connections` open client connections, each used once.
async fn node_with_connections(
    f: &common::Fed,
    cfg: &bureau::config::NodeConfig,
    connections: usize,
) -> (common::NodeProcess, Vec<tonic::transport::Channel>) {
    let (child, addr) = common::spawn_serve(f, cfg);
    let channels: Vec<_> = (0..connections).map(|_| f.channel(Role::Application, "bank", addr)).collect();
    for (i, ch) in channels.iter().enumerate() {
        let mut c = pb::records_service_client::RecordsServiceClient::new(ch.clone());
        let req = pb::FurnishRecordsRequest { records: vec![record(&subject(i as u32), &format!("warm-{i}"), 1)] };
        c.stream_furnish_records(tokio_stream::iter(vec![req])).await.unwrap();
    }
    (child, channels)
}

/// Waits up to `limit` for `pid`'s (threads, RSS KiB) to be at most `goal`; returns the last.
async fn settle(pid: u32, goal: (u64, u64), limit: Duration) -> (u64, u64) {
    let until = Instant::now() + limit;
    loop {
        let now = (proc_status(pid, "Threads"), proc_status(pid, "VmRSS"));
        if (now.0 <= goal.0 && now.1 <= goal.1) || Instant::now() > until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// 3,000 concurrent one-record furnishing streams: the node's threads stay under 64 and its
/// memory under the page cache plus 200 MiB. Afterwards its threads return to baseline and its
/// memory to what a node holds after the same records arrived one stream at a time (the
/// records and their log stay in sled's page cache either way). Writers wait in the storage's
/// bounded queue, never one parked OS thread each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_furnishing_streams_keeps_threads_and_memory_bounded() {
    const STREAMS: usize = 3_000;
    const CONNECTIONS: usize = 30;
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    let cache_kib = cfg.store.cache_capacity_bytes / 1024;

    // The control: the same records, one stream at a time, into a node of its own.
    cfg.node.data_dir = f.tmp.path().join("control");
    let (mut control, channels) = node_with_connections(&f, &cfg, CONNECTIONS).await;
    assert_eq!(one_record_streams(&channels, STREAMS, 1, "f").await, STREAMS);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let control_rss = proc_status(control.id(), "VmRSS");
    drop(channels);
    control.kill().unwrap();
    control.wait().unwrap();

    cfg.node.data_dir = f.tmp.path().join("flooded");
    let (mut child, channels) = node_with_connections(&f, &cfg, CONNECTIONS).await;
    let pid = child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (base_threads, base_rss) = (proc_status(pid, "Threads"), proc_status(pid, "VmRSS"));
    assert!(base_threads > 0 && base_rss > 0 && control_rss > 0, "cannot read /proc/PID/status");

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let done = done.clone();
        async move {
            let (mut threads, mut rss) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                threads = threads.max(proc_status(pid, "Threads"));
                rss = rss.max(proc_status(pid, "VmRSS"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (threads, rss)
        }
    });
    assert_eq!(one_record_streams(&channels, STREAMS, STREAMS, "f").await, STREAMS);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak_threads, peak_rss) = sampler.await.unwrap();
    let settled = settle(pid, (base_threads + 2, control_rss + 16 * 1024), Duration::from_secs(5)).await;
    // A second flood reuses what the first left allocated: nothing accumulates per flood.
    assert_eq!(one_record_streams(&channels, STREAMS, STREAMS, "g").await, STREAMS);
    let again = settle(pid, (base_threads + 2, settled.1 + 32 * 1024), Duration::from_secs(5)).await;
    eprintln!(
        "flood of {STREAMS} streams: threads {base_threads} -> peak {peak_threads} -> {}; RSS {} -> peak {} -> {} MiB, \
         {} MiB after a second flood (the same records one stream at a time: {} MiB)",
        settled.0,
        base_rss / 1024,
        peak_rss / 1024,
        settled.1 / 1024,
        again.1 / 1024,
        control_rss / 1024
    );
    assert!(peak_threads < 64, "{peak_threads} threads at the peak (baseline {base_threads})");
    assert!(peak_rss < cache_kib + 200 * 1024, "peak RSS {} MiB over page cache + 200 MiB", peak_rss / 1024);
    assert!(settled.0 <= base_threads + 2, "threads stayed at {} (baseline {base_threads})", settled.0);
    // The allocator keeps part of the peak's request buffers for reuse (measured: about 30 MiB
    // with glibc's malloc, 60 with mimalloc); more than that, or growth per flood, is a leak.
    assert!(
        settled.1 <= control_rss + 80 * 1024,
        "RSS stayed at {} MiB; the same records one at a time: {} MiB",
        settled.1 / 1024,
        control_rss / 1024
    );
    assert!(again.1 <= settled.1 + 32 * 1024, "RSS grew from {} to {} MiB", settled.1 / 1024, again.1 / 1024);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Inquiry pages resume by key: an inquiry arriving between two pages is never listed again on
/// the next one, and a token from another subject or altered in transit is INVALID_ARGUMENT.
#[tokio::test]
async fn inquiry_pages_never_repeat_and_foreign_or_tampered_tokens_are_refused() {
    let f = fed(&["bank", "payapp"], &[]);
    let nodes = f.fed.start_all(&["bank", "payapp"], |_| {}).await.unwrap();
    let (bank, payapp) = (&nodes[0], &nodes[1]);
    let s = subject(1);
    let mut scoring = ScoringServiceClient::new(f.channel(Role::Application, "bank", bank.addr));
    let ask = |n: usize| pb::GetScoreRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: format!("c-{n}"),
    };
    for n in 0..5 {
        scoring.get_score(ask(n)).await.unwrap();
    }
    let mut subjects = SubjectsServiceClient::new(f.channel(Role::Application, "payapp", payapp.addr));
    let parent = format!("subjects/{s}");
    let list = |token: String| pb::ListSubjectInquiriesRequest {
        parent: parent.clone(),
        page_size: 2,
        page_token: token,
        ..common::own_listing()
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = subjects.list_subject_inquiries(list(token)).await.unwrap().into_inner();
        seen.extend(page.inquiries.iter().map(|i| i.query_id.clone()));
        pages += 1;
        if pages == 1 {
            // A new inquiry arrives between pages: newest first, it sorts before the cursor.
            scoring.get_score(ask(99)).await.unwrap();
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an inquiry listed twice: {seen:?}");
    assert_eq!(seen.len(), 5, "the five inquiries before the listing began, each once");

    let first = subjects.list_subject_inquiries(list(String::new())).await.unwrap().into_inner();
    assert!(!first.next_page_token.is_empty());
    let other = pb::ListSubjectInquiriesRequest {
        parent: format!("subjects/{}", subject(2)),
        page_size: 2,
        page_token: first.next_page_token.clone(),
        ..common::own_listing()
    };
    let err = subjects.list_subject_inquiries(other).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0], ("page_token".into(), "belongs to a listing of another parent".into()));
    let mut tampered = first.next_page_token.into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let err = subjects.list_subject_inquiries(list(String::from_utf8(tampered).unwrap())).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "page_token");
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// `bureau demo --subjects 0` is refused with a message, not a panic.
#[test]
fn the_demo_refuses_zero_subjects_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_bureau")).args(["demo", "--subjects", "0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--subjects"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// SIGTERM with a client stream left open and idle: the node stops taking calls, waits at most
/// `limits.drain_timeout_ms` for it, cancels it unacknowledged, and exits cleanly.
#[tokio::test]
async fn sigterm_drains_for_at_most_the_deadline_then_exits() {
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.limits.drain_timeout_ms = 1_000;
    let (mut child, addr) = common::spawn_serve(&f, &cfg);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "open-1", 1)] }).await.unwrap();
    let mut c = f.records(Role::Application, "bank", addr);
    let open =
        tokio::spawn(async move { c.stream_furnish_records(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    tokio::time::sleep(Duration::from_millis(300)).await; // the stream is open and idle
    let started = Instant::now();
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    let drained = started.elapsed();
    eprintln!("SIGTERM with an idle stream open: exited after {drained:?} (drain deadline 1 s)");
    assert!(status.success(), "the node exits cleanly after the drain deadline: {status:?}");
    let answer = tokio::time::timeout(Duration::from_secs(30), open).await.expect("the stream ends").unwrap();
    assert!(answer.is_err(), "the open stream was not acknowledged: {answer:?}");
    drop(tx);
}

/// `GET /metrics` over plain HTTP: the scrape of a node that furnished, scored with a peer and
/// refused a call parses as the Prometheus text format, with the figures that happened.
#[tokio::test]
async fn a_node_serves_prometheus_metrics_that_a_real_parser_reads() {
    use std::io::{Read, Write};
    let f = fed(&["bank", "payapp"], &[]);
    let (_bank, bank_addr) = common::spawn_serve(&f, &f.fed.node_config("bank", &[]));
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = f.fed.node_config("payapp", &[("bank", bank_addr)]);
    cfg.metrics.listen = Some(metrics_addr);
    let (_payapp, addr) = common::spawn_serve(&f, &cfg);

    let s = subject(1);
    f.records(Role::Application, "payapp", addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "p-1", 1)] })
        .await
        .unwrap();
    let mut scoring = ScoringServiceClient::new(f.channel(Role::Application, "payapp", addr));
    let ask =
        pb::GetScoreRequest { subject_id: s.clone(), purpose: pb::Purpose::AccountReview as i32, ..Default::default() };
    scoring.get_score(ask.clone()).await.unwrap();
    let refused = scoring.get_score(pb::GetScoreRequest { subject_id: "nope".into(), ..ask }).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let scrape = || {
        let mut tcp = std::net::TcpStream::connect(metrics_addr).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        body.to_owned()
    };
    let body = scrape();
    let parsed =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 { common::samples(&body, name, labels).iter().sum() };
    // Service and method are separate labels; codes are gRPC's canonical names.
    let score = [("service", "bureau.v1.ScoringService"), ("method", "GetScore")];
    let with = |code: &'static str| [score[0], score[1], ("code", code)];
    assert_eq!(value("bureau_grpc_requests_total", &with("OK")), 1.0, "{body}");
    assert_eq!(value("bureau_grpc_requests_total", &with("INVALID_ARGUMENT")), 1.0);
    assert!(value("bureau_grpc_request_duration_seconds_count", &score) >= 2.0, "{body}");
    assert_eq!(value("bureau_peer_queries_total", &[("peer", "bank"), ("outcome", "answered")]), 1.0);
    assert!(value("bureau_peer_query_duration_seconds_count", &[("peer", "bank")]) >= 1.0);
    assert!(value("bureau_score_duration_seconds_count", &[]) >= 1.0);
    assert!(value("bureau_store_commit_duration_seconds_count", &[("backend", "sled")]) >= 1.0);
    assert!(value("bureau_store_commit_group_size_count", &[("backend", "sled")]) >= 1.0);
    assert!(value("bureau_crl_this_update_timestamp_seconds", &[]) > 1.7e9, "the CRL's issue time");
    // The log-size gauge is refreshed every 5 s: at least the furnish and the score by then.
    let mut entries = value("bureau_audit_log_entries", &[]);
    for _ in 0..60 {
        if entries >= 2.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let body = scrape();
        let again = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
        entries = again
            .samples
            .iter()
            .filter(|s| s.metric == "bureau_audit_log_entries")
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum();
    }
    assert!(entries >= 2.0, "audit log size gauge: {entries}");

    // Every metric the dashboard in the repo charts is one the node serves.
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let served: std::collections::BTreeSet<&str> = parsed.samples.iter().map(|s| s.metric.as_str()).collect();
    let mut charted = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("bureau_"))
            {
                charted += 1;
                let name = name.strip_suffix("_bucket").unwrap_or(name); // the parser folds buckets into the histogram
                                                                         // The peer-less TLS counter appears only after a failure: checked by its help line.
                let known = served.contains(name) || body.contains(&format!("# TYPE {name} "));
                assert!(known || name == "bureau_tls_handshake_failures_total", "dashboard charts {name}, not served");
            }
        }
    }
    assert!(charted >= 10);
}
