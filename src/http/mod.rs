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

/// This node as a witness, when `tlog.witness_key` is set: its key, its name
/// `<federation>/witness/<id>`, and the logs it witnesses (the keys in `tlog.logs`, and every
/// other member's log key in the signed directory).
pub(crate) fn witness_of(
    cfg: &crate::config::NodeConfig,
    directory: Option<&crate::net::directory_watch::DirectorySource>,
) -> Result<Option<crate::app::tlog::WitnessSettings>, crate::ServeError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let Some(path) = &cfg.tlog.witness_key else { return Ok(None) };
    let bad = |what: &std::path::Path, e: String| crate::ServeError::Mismatch(format!("{}: {e}", what.display()));
    let pem = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| bad(path, format!("not an Ed25519 PKCS#8 key: {e}")))?;
    let mut keys: Vec<String> = Vec::new();
    if let Some(logs) = &cfg.tlog.logs {
        let text = std::fs::read_to_string(logs).map_err(|e| bad(logs, e.to_string()))?;
        keys.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    if let Some(source) = directory {
        let d = source.load().map_err(|e| bad(&source.path, e.to_string()))?;
        let me = &cfg.node.institution;
        keys.extend(d.members.iter().filter(|m| &m.id != me && !m.log_key.is_empty()).map(|m| m.log_key.clone()));
    }
    let mut logs = std::collections::HashMap::new();
    for k in keys {
        let (origin, vk) = crate::audit::checkpoint::parse_verifier_key(&k)
            .map_err(|e| crate::ServeError::Mismatch(format!("tlog.logs: {k:?}: {e}")))?;
        logs.insert(origin, vk);
    }
    let name = format!("{}/witness/{}", cfg.federation.name, cfg.node.institution);
    info!(name = %name, logs = logs.len(), "witnessing peers' logs");
    Ok(Some(crate::app::tlog::WitnessSettings { key: Arc::new(key), name, logs }))
}

/// What collecting this node's cosignatures needs, when `tlog.policy` is set: the policy, and a
/// client for each witness it gives a `https://host:port` submission prefix (a witness named
/// `<federation>/witness/<id>` must present institution `id`'s certificate).
pub(crate) fn witnessing_of(
    cfg: &crate::config::NodeConfig,
    material: &tls::TlsMaterial,
) -> Result<Option<crate::app::tlog::Witnessing>, crate::ServeError> {
    let Some(path) = &cfg.tlog.policy else { return Ok(None) };
    let bad = |e: String| crate::ServeError::Mismatch(format!("tlog.policy {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let policy = crate::audit::policy::Policy::parse(&text).map_err(|e| bad(e.to_string()))?;
    let prefix = format!("{}/witness/", cfg.federation.name);
    let mut clients = Vec::new();
    for w in &policy.witnesses {
        let Some(url) = &w.url else { continue };
        let addr: std::net::SocketAddr = url
            .strip_prefix("https://")
            .map(|a| a.trim_end_matches('/'))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad(format!("witness {} url {url:?} is not https://<ip:port>", w.label)))?;
        let expected = w.witness.name.strip_prefix(&prefix);
        let client = crate::net::tlog_client::TlogClient::new(material, &cfg.federation.name, expected, addr)
            .map_err(|e| bad(e.to_string()))?;
        clients.push((w.clone(), client));
    }
    info!(witnesses = clients.len(), "collecting cosignatures under the tlog policy");
    Ok(Some((policy, clients)))
}
