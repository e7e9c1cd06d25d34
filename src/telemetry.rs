//! The Prometheus endpoint: one process-wide recorder for the `metrics` facade the rest of the
//! crate records into, served as the Prometheus text format over plain HTTP at `metrics.listen`
//! to loopback and the sources `metrics.allow` names; any other connection is closed unanswered
//! and counted (`bureau_metrics_refused_total`).
//! A node per process is how institutions run it; nodes sharing a process (the demo) share the
//! recorder, and their endpoints serve the same figures.

use std::{
    net::{IpAddr, SocketAddr},
    sync::OnceLock,
    time::Duration,
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
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
                Ok(h) => Some(h),
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

/// Serves `GET /metrics` on `listener` until the task is dropped, to loopback and `allow` only.
/// Plain HTTP/1.1, one response per connection; at most 16 connections at once, 5 s each.
pub(crate) async fn serve(listener: TcpListener, allow: Vec<IpNet>) {
    let Some(handle) = handle() else { return };
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics listening");
    }
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else { continue };
        if !allowed(peer.ip(), &allow) {
            metrics::counter!("bureau_metrics_refused_total").increment(1);
            warn!(peer = %peer, "metrics scrape from an address not in metrics.allow; closed unanswered");
            drop(tcp);
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = match request.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                    ["GET", "/metrics"] => ("200 OK", handle.render()),
                    _ => ("404 Not Found", "try GET /metrics\n".to_owned()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(body.as_bytes()).await;
                let _ = tcp.shutdown().await;
            })
            .await;
        });
    }
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
