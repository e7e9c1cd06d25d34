//! The Prometheus endpoint: one process-wide recorder for the `metrics` facade the rest of the
//! crate records into, served as the Prometheus text format over plain HTTP at `metrics.listen`.
//! A node per process is how institutions run it; nodes sharing a process (the demo) share the
//! recorder, and their endpoints serve the same figures.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tracing::{info, warn};

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

/// Serves `GET /metrics` on `listener` until the task is dropped. Plain HTTP/1.1, one response
/// per connection; at most 16 connections at once, 5 s each.
pub(crate) async fn serve(listener: TcpListener) {
    let Some(handle) = handle() else { return };
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics listening");
    }
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else { continue };
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
