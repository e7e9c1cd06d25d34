//! The management endpoint: one process-wide recorder for the `metrics` facade the rest of the
//! crate records into, served as the Prometheus text format (`/metrics`, with the process's own
//! figures and `bureau_build_info`) beside plain-HTTP `/healthz` (the process answers) and
//! `/readyz` (the node's gRPC health is SERVING) by a small hyper service at `metrics.listen`,
//! to loopback and the sources `metrics.allow` names; any other connection is closed unanswered
//! and counted (`bureau_metrics_refused_total`).
//! A node per process is how institutions run it; nodes sharing a process (the demo) share the
//! recorder, and their endpoints serve the same figures.

use std::{
    net::{IpAddr, SocketAddr},
    sync::OnceLock,
    time::Duration,
};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tonic_health::{
    pb::{health_check_response::ServingStatus, health_server::Health, HealthCheckRequest},
    server::{HealthReporter, HealthService},
};
use tracing::{info, warn};

use crate::config::IpNet;

/// Latency buckets, seconds: 250 µs to 10 s.
const SECONDS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Commit group sizes.
const GROUP_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide recorder, installed on first use.
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("bureau_store_commit_group_size".into()), GROUP_SIZES)
                })
                .map_err(|e| e.to_string())
                .and_then(|b| b.install_recorder().map_err(|e| e.to_string()));
            match built {
                Ok(h) => {
                    build_info();
                    process().describe();
                    Some(h)
                }
                Err(e) => {
                    // Another recorder is installed (a library user's own): leave it in charge.
                    warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// True when a scrape from `ip` is answered: loopback, or inside one of `allow`.
fn allowed(ip: IpAddr, allow: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || allow.iter().any(|n| n.contains(ip))
}

/// `bureau_build_info{version, commit}` = 1: which build answers (`commit` when the build set
/// `BUREAU_COMMIT`, as `scripts/package-check` does).
fn build_info() {
    let version = env!("CARGO_PKG_VERSION");
    match option_env!("BUREAU_COMMIT").filter(|c| !c.is_empty()) {
        Some(commit) => metrics::gauge!("bureau_build_info", "version" => version, "commit" => commit).set(1.0),
        None => metrics::gauge!("bureau_build_info", "version" => version).set(1.0),
    }
}

/// The collector of the standard `process_*` figures (CPU seconds, resident memory, open and
/// maximum file descriptors, threads, start time), refreshed at every scrape.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The text Prometheus reads: the process figures refreshed, then everything recorded.
pub(crate) fn render() -> Option<String> {
    let handle = handle()?;
    process().collect();
    Some(handle.render())
}

/// Seconds a connection may take to send its request and receive its answer.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Connections answered at once; more are closed unanswered until one ends.
const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped, to
/// loopback and `allow` only. HTTP/1.1, one request per connection (closed after the answer), at
/// most [`MAX_CONNECTIONS`] at once, [`CONNECTION_DEADLINE`] each.
pub(crate) async fn serve(listener: TcpListener, allow: Vec<IpNet>, health: HealthReporter) {
    if handle().is_none() {
        return;
    }
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics and health listening");
    }
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning on the error.
                warn!(error = %e, "metrics listener cannot accept; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !allowed(peer.ip(), &allow) {
            metrics::counter!("bureau_metrics_refused_total").increment(1);
            warn!(peer = %peer, "metrics scrape from an address not in metrics.allow; closed unanswered");
            drop(tcp);
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
        let health = health.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let health = health.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, health).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

/// One answer: `GET` (or `HEAD`) of the three paths; anything else is 404 or 405.
async fn answer<B>(req: Request<B>, health: HealthReporter) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics, /healthz or /readyz\n".into());
    }
    match req.uri().path() {
        "/metrics" => match render() {
            Some(body) => text(StatusCode::OK, body),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no metrics recorder\n".into()),
        },
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match serving(health).await {
            true => text(StatusCode::OK, "SERVING\n".into()),
            false => text(StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n".into()),
        },
        _ => text(StatusCode::NOT_FOUND, "GET /metrics, /healthz or /readyz\n".into()),
    }
}

/// True while the node's overall gRPC health (service `""`) is SERVING: the answer a client
/// with a certificate gets from `grpc.health.v1.Health/Check`.
async fn serving(health: HealthReporter) -> bool {
    let checked = HealthService::from_health_reporter(health)
        .check(tonic::Request::new(HealthCheckRequest { service: String::new() }))
        .await;
    matches!(checked, Ok(r) if r.get_ref().status == ServingStatus::Serving as i32)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

/// Binds `addr` for [`serve`].
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_the_allow_list_are_answered_and_nothing_else() {
        let allow: Vec<IpNet> = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
            .iter()
            .map(|s| IpNet::try_from(s.to_string()).unwrap())
            .collect();
        let ok = |s: &str| allowed(s.parse().unwrap(), &allow);
        for yes in ["127.0.0.1", "::1", "10.200.3.4", "::ffff:10.1.1.1", "2001:db8::5", "192.0.2.7", "::ffff:127.0.0.1"]
        {
            assert!(ok(yes), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "::ffff:11.0.0.1", "0.0.0.0"] {
            assert!(!ok(no), "{no}");
        }
        assert!(allowed("8.8.8.8".parse().unwrap(), &[IpNet::try_from("0.0.0.0/0".to_string()).unwrap()]));
        for bad in ["10.0.0.0/33", "10.0.0/8", "host", "::/129"] {
            assert!(IpNet::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
