//! The node's HTTP/1.1 endpoints behind the federation's mTLS: the C2SP transparency-log API
//! ([`tlog`]). Same TLS and revocation as the gRPC port (the CRL watcher's configuration, ALPN
//! `http/1.1`); the caller is the SPIFFE identity of its verified certificate.

pub(crate) mod tlog;

use std::{sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;
use tracing::{debug, info};

use crate::net::{identity::Identity, tls};

/// Longest a connection may stay open (requests are small and answered from the store).
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);
/// Most connections served at once; more wait in the accept queue (counted in
/// `bureau_tlog_connections_waited_total`), so a flood of readers cannot take every task.
const MAX_CONNECTIONS: usize = 256;

/// `config` with ALPN `http/1.1` instead of `h2`.
fn http1(config: &Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut c = (**config).clone();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// Serves `api` on `listener` until dropped, following the TLS configuration in `config`
/// (reloaded CRLs included).
pub(crate) async fn serve(
    listener: TcpListener,
    mut config: watch::Receiver<Arc<ServerConfig>>,
    handshake_timeout: Duration,
    revocation: Arc<tls::Revocation>,
    api: tlog::TlogApi,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "tlog listening");
    }
    let (tx, rx) = watch::channel(http1(&config.borrow()));
    let following = async move {
        while config.changed().await.is_ok() {
            let next = http1(&config.borrow_and_update());
            if tx.send(next).is_err() {
                return;
            }
        }
        std::future::pending::<()>().await
    };
    let mut incoming = tls::incoming(listener, rx, handshake_timeout, revocation);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let accepting = async {
        while let Some(conn) = incoming.next().await {
            let Ok(conn) = conn else { continue };
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    metrics::counter!("bureau_tlog_connections_waited_total").increment(1);
                    let Ok(p) = slots.clone().acquire_owned().await else { return };
                    p
                }
            };
            let caller = conn
                .connect_info()
                .peer_certs()
                .and_then(|c| c.first().map(|c| Identity::from_cert_der(c).ok()))
                .flatten();
            let api = api.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = service_fn(move |req| {
                    let (api, caller) = (api.clone(), caller.clone());
                    async move { Ok::<_, std::convert::Infallible>(api.handle(caller.as_ref(), req).await) }
                });
                let served = http1::Builder::new().serve_connection(TokioIo::new(conn), service);
                match tokio::time::timeout(CONNECTION_LIMIT, served).await {
                    Ok(Err(e)) => debug!(error = %e, "tlog connection ended with an error"),
                    Err(_) => debug!("tlog connection closed at its time limit"),
                    Ok(Ok(())) => {}
                }
            });
        }
    };
    tokio::join!(following, accepting);
}
