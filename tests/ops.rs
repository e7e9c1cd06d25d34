//! What an operator's platform wires up: the plain-HTTP management listener (`/metrics`,
//! `/healthz`, `/readyz`) a load balancer or supervisor asks without a client certificate, the
//! labels the dashboard and alert rules rely on, and the alert rules themselves, checked and
//! unit-tested by Prometheus's own `promtool`.

mod common;

use std::{net::SocketAddr, time::Duration};

use bureau::Role;
use common::fed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// `METHOD PATH` over plain HTTP/1.1 at `addr`: the status line and the body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // The listener closes each connection after its answer: reading to the end terminates.
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("closed after the answer")
        .unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The samples of `name` whose labels include `labels`, parsed by a Prometheus parser we did
/// not write: (labels, value) each.
fn samples(body: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    parsed
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => 1.0,
        })
        .collect()
}

/// `/healthz` and `/readyz` answer beside `/metrics` on the management listener, without TLS;
/// readiness is the gRPC health of the node; other paths and methods are refused; the scrape
/// carries the build and the process's own figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_over_plain_http_beside_metrics() {
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    let mgmt = SocketAddr::from(([127, 0, 0, 1], free_port()));
    cfg.metrics.listen = Some(mgmt);
    let node = bureau::start(cfg).await.unwrap();

    assert_eq!(http(mgmt, "GET", "/healthz").await, ("HTTP/1.1 200 OK".into(), "ok\n".into()));
    assert_eq!(http(mgmt, "GET", "/readyz").await, ("HTTP/1.1 200 OK".into(), "SERVING\n".into()));
    // The same answer the gRPC health service gives a client with a certificate.
    let grpc = HealthClient::new(f.channel(Role::Application, "bank", node.addr))
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(grpc, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    assert_eq!(http(mgmt, "GET", "/admin").await.0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(mgmt, "POST", "/readyz").await.0, "HTTP/1.1 405 Method Not Allowed");

    let (status, body) = http(mgmt, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(samples(&body, "bureau_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), vec![1.0], "{body}");
    for process in
        ["process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds", "process_cpu_seconds_total"]
    {
        let v = samples(&body, process, &[]);
        assert!(v.len() == 1 && v[0] > 0.0, "{process}: {v:?}");
    }
    node.shutdown().await.unwrap();
}

/// A streaming call is counted with its final status and timed to its end, not to its first
/// message: a health watch held 600 ms and abandoned by the client is a CANCELLED call of at
/// least 600 ms, under service `grpc.health.v1.Health` and method `Watch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_timed_to_its_end_with_separate_service_and_method_labels() {
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    let mgmt = SocketAddr::from(([127, 0, 0, 1], free_port()));
    cfg.metrics.listen = Some(mgmt);
    let node = bureau::start(cfg).await.unwrap();
    let watch = [("service", "grpc.health.v1.Health"), ("method", "Watch")];
    let before = samples(&http(mgmt, "GET", "/metrics").await.1, "bureau_grpc_request_duration_seconds_sum", &watch);
    let before: f64 = before.iter().sum();

    let ch = f.channel(Role::Application, "bank", node.addr);
    let mut stream =
        HealthClient::new(ch).watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop(stream);

    let mut last = String::new();
    for _ in 0..50 {
        last = http(mgmt, "GET", "/metrics").await.1;
        let cancelled: f64 =
            samples(&last, "bureau_grpc_requests_total", &[watch[0], watch[1], ("code", "CANCELLED")]).iter().sum();
        if cancelled >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled: f64 =
        samples(&last, "bureau_grpc_requests_total", &[watch[0], watch[1], ("code", "CANCELLED")]).iter().sum();
    assert!(cancelled >= 1.0, "the abandoned watch is counted CANCELLED: {last}");
    let sum: f64 = samples(&last, "bureau_grpc_request_duration_seconds_sum", &watch).iter().sum();
    assert!(sum - before >= 0.6, "timed to the end of the stream: {} s", sum - before);
    // No Debug-style code names, no full paths in `method`.
    assert!(!last.contains("code=\"Ok\"") && !last.contains("method=\"/"), "{last}");
    node.shutdown().await.unwrap();
}
