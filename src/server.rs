//! Starting and stopping a node: TLS accept loop, gRPC services, health, reflection, CRL
//! reload and graceful shutdown that lets in-flight writes finish and flushes the store.

use std::{
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderValue, Response};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::transport::Server;
use tower::{Layer, Service};
use tracing::{info, warn};

use crate::{
    config::NodeConfig,
    federated::Scorer,
    federation::Peers,
    identity::{Identity, Role},
    node::Node,
    pb::bureau::v1::{
        audit_service_server::AuditServiceServer, federation_service_server::FederationServiceServer,
        records_service_server::RecordsServiceServer, scoring_service_server::ScoringServiceServer,
        subjects_service_server::SubjectsServiceServer,
    },
    scoring::Model,
    service::{
        audit::AuditApi, federation::FederationApi, records::RecordsApi, scoring::ScoringApi, subjects::SubjectsApi,
    },
    store::Store,
    tls::{self, TlsMaterial},
};

/// The encoded descriptors of the bureau.v1 API, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("bureau_descriptor");

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Certificates or keys.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Binding the port.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration does not agree with the certificate.
    #[error("{0}")]
    Mismatch(String),
    /// The scorecard model could not be loaded.
    #[error("scorecard model: {0}")]
    Model(String),
    /// Reflection could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A node started by [`start`]. Dropping it does not stop it: call [`RunningNode::shutdown`].
pub struct RunningNode {
    /// The address the node listens on (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// The node's shared state.
    pub node: Node,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningNode {
    /// Stops accepting, lets in-flight requests finish, flushes the store, and waits.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits for the node to stop (after a shutdown request or a fatal error).
    pub async fn wait(self) -> Result<(), ServeError> {
        drop(self.node);
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Mismatch(format!("server task failed: {e}"))),
        }
    }

    /// A handle that asks the node to stop (for signal handlers).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Starts a node from its configuration and returns once it is listening.
pub async fn start(cfg: NodeConfig) -> Result<RunningNode, ServeError> {
    let listener = TcpListener::bind(cfg.node.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: cfg.node.listen, source })?;
    start_on(cfg, listener).await
}

/// Binds a loopback port for a node to be started later with [`start_on`], so that nodes
/// which name each other as peers can learn each other's addresses first.
pub async fn bind_loopback() -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts a node on an already bound listener (its configured `listen` is ignored).
pub async fn start_on(cfg: NodeConfig, listener: TcpListener) -> Result<RunningNode, ServeError> {
    let material = TlsMaterial::load(&cfg.tls_files())?;
    let me = material.identity().map_err(|e| ServeError::Mismatch(format!("node certificate: {e}")))?;
    let expected = Identity::institution(&cfg.federation.name, &cfg.node.institution);
    if me != expected || me.role != Role::Institution {
        return Err(ServeError::Mismatch(format!(
            "node certificate names {}, configuration says {}",
            me.spiffe_uri(),
            expected.spiffe_uri()
        )));
    }
    let (cfg_tx, cfg_rx) = watch::channel(material.server_config()?);
    tls::watch_crl(cfg.tls_files(), cfg_tx, Duration::from_millis(cfg.limits.crl_reload_ms));

    std::fs::create_dir_all(&cfg.node.data_dir)
        .map_err(|e| ServeError::Mismatch(format!("data_dir {}: {e}", cfg.node.data_dir.display())))?;
    let model = match &cfg.scoring.model {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ServeError::Model(format!("{}: {e}", path.display())))?;
            Model::from_toml(&text).map_err(|e| ServeError::Model(format!("{}: {e}", path.display())))?
        }
        None => Model::embedded_default(),
    };
    let log_key = match &cfg.tls.log_key {
        None => None,
        Some(path) => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let pem =
                std::fs::read_to_string(path).map_err(|e| ServeError::Mismatch(format!("{}: {e}", path.display())))?;
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| ServeError::Mismatch(format!("{}: not an Ed25519 PKCS#8 key: {e}", path.display())))?;
            Some(Arc::new(key))
        }
    };
    let peers = Peers::new(&cfg.peers, &material, &cfg.federation.name, cfg.limits.max_message_bytes)?;
    let store = Store::open_with(&cfg.node.data_dir, cfg.store.cache_capacity_bytes, cfg.store.fsync)?;
    let node = Node {
        institution: cfg.node.institution.clone(),
        federation: cfg.federation.name.clone(),
        store: store.clone(),
        limits: cfg.limits.clone(),
        accepted_purposes: cfg.federation.accepted_purposes.clone(),
        scorer: Scorer {
            institution: cfg.node.institution.clone(),
            store: store.clone(),
            peers: Arc::new(peers),
            model: Arc::new(model),
            deadline: Duration::from_millis(cfg.scoring.peer_deadline_ms),
        },
        policies: Arc::new(cfg.policies.clone()),
        log_key,
    };

    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: cfg.node.listen, source })?;
    let incoming = tls::incoming(listener, cfg_rx, cfg.handshake_timeout());

    let max = cfg.limits.max_message_bytes;
    let records = RecordsServiceServer::new(RecordsApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let federation = FederationServiceServer::new(FederationApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let scoring = ScoringServiceServer::new(ScoringApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let audit = AuditServiceServer::new(AuditApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max.max(64 << 20));
    let subjects = SubjectsServiceServer::new(SubjectsApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuditServiceServer<AuditApi>>().await;
    health.set_serving::<SubjectsServiceServer<SubjectsApi>>().await;
    health.set_serving::<RecordsServiceServer<RecordsApi>>().await;
    health.set_serving::<FederationServiceServer<FederationApi>>().await;
    health.set_serving::<ScoringServiceServer<ScoringApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let router = Server::builder()
        .layer(OversizeLayer)
        .max_concurrent_streams(cfg.limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(records)
        .add_service(federation)
        .add_service(scoring)
        .add_service(audit)
        .add_service(subjects);

    let (stop, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    info!(institution = %cfg.node.institution, %addr, peers = cfg.peers.len(), "node listening");
    let task = tokio::spawn(async move {
        let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
        health.set_not_serving::<RecordsServiceServer<RecordsApi>>().await;
        health.set_not_serving::<FederationServiceServer<FederationApi>>().await;
        health.set_not_serving::<ScoringServiceServer<ScoringApi>>().await;
        // In-flight requests have finished; make everything they wrote durable and let go of
        // the database so the same directory can be reopened.
        if let Err(e) = store.close(Duration::from_secs(5)).await {
            warn!(error = %e, "final flush failed");
        }
        info!("node stopped");
        served.map_err(ServeError::from)
    });
    Ok(RunningNode { addr, node, stop, task })
}

/// Turns tonic's OUT_OF_RANGE for an oversized request message into RESOURCE_EXHAUSTED, the
/// code gRPC specifies for a message over the receive limit.
#[derive(Clone, Copy)]
struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = Oversize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Oversize(inner)
    }
}

/// See [`OversizeLayer`].
#[derive(Clone)]
struct Oversize<S>(S);

impl<S, Req, B> Service<Req> for Oversize<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let h = res.headers();
            let oversize = h.get("grpc-status").is_some_and(|v| v == "11")
                && h.get("grpc-message").and_then(|m| m.to_str().ok()).is_some_and(|m| {
                    m.contains("message length too large") || m.contains("message%20length%20too%20large")
                });
            if oversize {
                res.headers_mut().insert("grpc-status", HeaderValue::from_static("8"));
            }
            Ok(res)
        })
    }
}
