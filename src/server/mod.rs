//! Wiring only: configuration → storage → node state → gRPC router on the TLS accept loop, with
//! health, reflection and the CRL watcher; and a shutdown that turns health NOT_SERVING for
//! every service, drains in-flight calls up to a deadline, and closes the store.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::{server::NamedService, transport::Server};
use tonic_health::ServingStatus;
use tracing::{info, warn};

mod health;
mod tlog_setup;

use health::{follow_locator, follow_reachability, not_serving, publish_metrics, set_health, storage_failed};
pub use health::{LOCATOR, READS, WRITES};

use crate::{
    app::{decide::Policy, Settings, UseCases},
    config::{Backend, NodeConfig, OnUnscoreable},
    grpc::node::Node,
    grpc::{
        admin::AdminApi, attest::AttestApi, audit::AuditApi, decisions::DecisionsApi, disputes::DisputesApi,
        federation::FederationApi, locator::LocatorApi, records::RecordsApi, scoring::ScoringApi,
        subjects::SubjectsApi,
    },
    net::directory_watch::DirectorySource,
    net::identity::Identity,
    net::peers::Peers,
    net::tls::{self, TlsMaterial},
    scoring::Model,
    storage::{
        open::{PostgresOptions, SledOptions},
        DynStorage,
    },
    wire::pb::bureau::v1::{
        admin_service_server::AdminServiceServer, attestation_service_server::AttestationServiceServer,
        audit_service_server::AuditServiceServer, decisions_service_server::DecisionsServiceServer,
        disputes_service_server::DisputesServiceServer, federation_service_server::FederationServiceServer,
        locator_service_server::LocatorServiceServer, records_service_server::RecordsServiceServer,
        scoring_service_server::ScoringServiceServer, subjects_service_server::SubjectsServiceServer,
    },
};

impl From<crate::storage::StoreError> for ServeError {
    fn from(e: crate::storage::StoreError) -> Self {
        Self::Store(e)
    }
}

/// The encoded descriptors of the bureau.v1 API, served by reflection.
pub(crate) const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("bureau_descriptor");

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Certificates or keys.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store. Not its `source`: the message already holds it, and an error chain printed
    /// with its sources would say it twice.
    #[error("store: {0}")]
    Store(crate::storage::StoreError),
    /// Binding the port.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration cannot work (checked again at start, however it was made).
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The configuration does not agree with the certificate.
    #[error("{0}")]
    Mismatch(String),
    /// The scorecard model could not be loaded.
    #[error("scorecard model: {0}")]
    Model(String),
    /// No valid signed directory at start: the file and why.
    #[error("federation directory {path}: {why}")]
    Directory {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        why: String,
    },
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
    /// The address of the C2SP tiles and witness endpoint (`tlog.listen`, its real port).
    pub tlog_addr: Option<SocketAddr>,
    /// The institution the node serves.
    pub institution: String,
    node: Node,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningNode {
    /// Turns health NOT_SERVING, stops accepting, lets in-flight requests finish (for at most
    /// `limits.drain_timeout_ms`, then cancels them unacknowledged), closes the store, and waits.
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

/// Adds each service to the router with the message limits, and returns the router and the
/// services' names.
macro_rules! register {
    ($router:expr, $max:expr; $($svc:expr),+ $(,)?) => {{
        let router = $router;
        let mut names: Vec<&'static str> = Vec::new();
        $(
            let svc = $svc.max_decoding_message_size($max);
            names.push(name_of(&svc));
            let router = router.add_service(svc.max_encoding_message_size($max));
        )+
        (router, names)
    }};
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
    cfg.check()?;
    if let Some(endpoint) = &cfg.telemetry.otlp_endpoint {
        crate::net::otlp::install(endpoint, &cfg.node.institution, &cfg.federation.name)
            .map_err(|e| ServeError::Config(crate::config::ConfigError::Invalid(e.to_string())))?;
    }
    // Metrics first, so the first figures (the CRL's, the store's) are recorded.
    let metrics_listener = match cfg.metrics.listen {
        Some(addr) => {
            crate::telemetry::handle();
            let listener = crate::telemetry::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
            Some((listener, cfg.metrics.allow.clone()))
        }
        None => None,
    };
    let material = TlsMaterial::load(&cfg.tls_files())?;
    let me = material.identity().map_err(|e| ServeError::Mismatch(format!("node certificate: {e}")))?;
    let expected = Identity::node(&cfg.federation.name, &cfg.node.institution);
    if me != expected {
        return Err(ServeError::Mismatch(format!(
            "node certificate names {}, configuration says {}",
            me.spiffe_uri(),
            expected.spiffe_uri()
        )));
    }
    let (cfg_tx, cfg_rx) = watch::channel(material.server_config()?);
    let revocation = tls::Revocation::new(material.crls()).map_err(tls::TlsError::from)?;
    tls::watch_crl(
        cfg.tls_files(),
        cfg_tx,
        revocation.clone(),
        Duration::from_millis(cfg.limits.crl_reload_ms),
        Duration::from_secs(cfg.limits.crl_grace_s),
        material.crl_standing(),
    );

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
    let (peers, directory) = peers_of(&cfg, &material, revocation.clone())?;
    let witness = tlog_setup::witness_of(&cfg, directory.as_ref())?;
    let peers = Arc::new(peers);
    let store = open_storage(&cfg).await?;
    let settings = Settings {
        institution: cfg.node.institution.clone(),
        origin: format!("{}/institution/{}", cfg.federation.name, cfg.node.institution),
        clock: cfg.clock.clone(),
        retention: cfg.retention.windows(),
        accepted_purposes: cfg.federation.accepted_purposes.clone(),
        policies: cfg
            .policies
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    Policy {
                        purpose: p.purpose,
                        min_score: p.min_score,
                        refer_unscoreable: p.unscoreable == OnUnscoreable::Refer,
                    },
                )
            })
            .collect(),
        model,
        peer_deadline: Duration::from_millis(cfg.scoring.peer_deadline_ms),
        outbox_retry_max: Duration::from_millis(cfg.limits.outbox_retry_max_ms),
        log_key,
        administrators: cfg.admin.applications.clone(),
        attest_only: cfg.admin.attest_only.clone(),
        locator: cfg.federation.locator,
        consent: consent_policy(&cfg, &material, revocation.clone())?,
        witness,
        witnessing: tlog_setup::witnessing_of(&cfg, &material)?,
    };
    if cfg.consent.tokens == crate::config::ConsentTokens::Legacy {
        warn!("consent.tokens = \"legacy\": consent references are taken on the caller's word, unverified");
    }
    let app = UseCases::new(settings, store.clone(), peers.clone());
    let node = Node {
        institution: cfg.node.institution.clone(),
        federation: cfg.federation.name.clone(),
        limits: cfg.limits.clone(),
        app,
    };

    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: cfg.node.listen, source })?;
    let tlog_serving = match cfg.tlog.listen {
        Some(at) => {
            let l = TcpListener::bind(at).await.map_err(|source| ServeError::Bind { addr: at, source })?;
            let tlog_addr = l.local_addr().map_err(|source| ServeError::Bind { addr: at, source })?;
            let api = crate::http::tlog::TlogApi {
                federation: cfg.federation.name.clone(),
                tlog: node.tlog.clone(),
                audit: node.audit.clone(),
            };
            let serving = crate::http::serve(l, cfg_rx.clone(), cfg.handshake_timeout(), revocation.clone(), api);
            Some((tlog_addr, serving))
        }
        None => None,
    };
    let tlog_addr = tlog_serving.as_ref().map(|(a, _)| *a);
    let tlog_serving = async move {
        match tlog_serving {
            Some((_, serving)) => serving.await,
            None => std::future::pending().await,
        }
    };
    let incoming = tls::incoming(listener, cfg_rx, cfg.handshake_timeout(), revocation);

    let max = cfg.limits.max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let router = Server::builder()
        .layer(crate::grpc::metrics::MetricsLayer)
        .layer(crate::grpc::error::FramingErrorsLayer)
        .max_concurrent_streams(cfg.limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    // The one list of API services: registered, reported healthy, and turned NOT_SERVING at
    // shutdown, all from here. Reflection serves every service in the descriptor set.
    let (router, services) = register!(router, max;
        RecordsServiceServer::new(RecordsApi::new(node.clone())),
        FederationServiceServer::new(FederationApi::new(node.clone())),
        ScoringServiceServer::new(ScoringApi::new(node.clone())),
        AuditServiceServer::new(AuditApi::new(node.clone())).max_encoding_message_size(max.max(64 << 20)),
        SubjectsServiceServer::new(SubjectsApi::new(node.clone())),
        AdminServiceServer::new(AdminApi::new(node.clone())),
        DisputesServiceServer::new(DisputesApi::new(node.clone())),
        LocatorServiceServer::new(LocatorApi::new(node.clone())),
        AttestationServiceServer::new(AttestApi::new(node.clone())),
        DecisionsServiceServer::new(DecisionsApi::new(node.clone())),
    );
    for name in services.iter().chain(&[READS, WRITES, ""]) {
        set_health(&health, name, ServingStatus::Serving).await;
    }

    let (stop, mut stop_rx) = watch::channel(false);
    let (drain_tx, drain_rx) = watch::channel(false);
    let shutdown = async move {
        let mut drain_rx = drain_rx;
        let _ = drain_rx.wait_for(|s| *s).await;
    };
    info!(institution = %cfg.node.institution, %addr, peers = cfg.peers.len(), backend = store.backend(), "node listening");
    let drain = Duration::from_millis(cfg.limits.drain_timeout_ms);
    let failed = storage_failed(store.clone(), health.clone(), services.clone(), cfg.node.data_dir.clone());
    let (probe_store, probe_health, probe_services) = (store.clone(), health.clone(), services.clone());
    let (locator_peers, locator_health) = (peers.clone(), health.clone());
    let (metrics_store, metrics_institution, metrics_health, metrics_dir) =
        (store.clone(), cfg.node.institution.clone(), health.clone(), cfg.node.data_dir.clone());
    // The outbox and dispute deadlines, and the retention purge: background work that stops
    // with the node (a notice in flight is retried after a restart).
    let tick = Duration::from_millis(cfg.limits.outbox_retry_max_ms.clamp(250, 1_000));
    let purge_every = cfg.retention.purge_every_s.unwrap_or(3_600);
    let (life, outbox, holdings) = (node.life.clone(), node.outbox.clone(), node.holdings.clone());
    // A locator holds no records of its own: nothing to register.
    let registering = !cfg.federation.locator;
    let following = {
        let (peers, every) = (peers.clone(), Duration::from_millis(cfg.limits.crl_reload_ms));
        async move {
            match directory {
                Some(source) => crate::net::directory_watch::follow(source, every, peers).await,
                None => std::future::pending().await,
            }
        }
    };
    let (disputes, protections) = (node.disputes.clone(), node.protections.clone());
    let (collector, witness_every) = (node.tlog.collector(), Duration::from_millis(cfg.tlog.witness_every_ms.max(50)));
    let lifecycle = async move {
        let purging = async {
            match purge_every {
                0 => std::future::pending().await,
                s => life.purge_every(Duration::from_secs(s)).await,
            }
        };
        let registrations = async {
            match registering {
                true => holdings.run(tick).await,
                false => std::future::pending().await,
            }
        };
        // Cosignatures are collected here, off every query's path.
        let witnessing = async {
            match collector {
                Some(c) => c.run(witness_every).await,
                None => std::future::pending().await,
            }
        };
        tokio::join!(outbox.run(tick, disputes, protections), purging, registrations, following, witnessing);
    };
    // Never finishes (both loops run until dropped).
    let task = tokio::spawn(async move {
        let mut serving = tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown));
        let mut failure = None;
        let stopping = async {
            tokio::select! {
                () = async { let _ = stop_rx.wait_for(|s| *s).await; } => {}
                why = failed => failure = Some(why),
                () = follow_reachability(probe_store, probe_health, probe_services) => {}
                () = follow_locator(locator_peers, locator_health) => {}
                () = publish_metrics(metrics_store, metrics_listener, metrics_institution, metrics_health, metrics_dir) => {}
                () = lifecycle => {}
                () = tlog_serving => {}
            }
        };
        let served = tokio::select! {
            r = &mut serving => r,
            () = stopping => {
                // Tell load balancers and watchers first, then stop accepting and drain.
                not_serving(&health, &services).await;
                let _ = drain_tx.send(true);
                match tokio::time::timeout(drain, &mut serving).await {
                    Ok(r) => r,
                    Err(_) => {
                        warn!(drain_ms = drain.as_millis() as u64, "calls still open at the drain deadline; cancelled unacknowledged");
                        serving.abort();
                        let _ = serving.await;
                        Ok(Ok(()))
                    }
                }
            }
        };
        // In-flight requests are done or cancelled; make what they wrote durable and release
        // the store's files (the same directory can be reopened at once). Calls cancelled at
        // the deadline may still hold handles: they get UNAVAILABLE, nothing waits for them.
        if let Err(e) = store.close().await {
            warn!(error = %e, "final flush failed");
        }
        // The last spans reach the collector before the node says it stopped.
        let _ = tokio::task::spawn_blocking(crate::net::otlp::flush).await;
        info!("node stopped");
        if let Some(why) = failure {
            return Err(ServeError::Store(crate::storage::StoreError::Unavailable(why)));
        }
        match served {
            Ok(r) => r.map_err(ServeError::from),
            Err(e) => Err(ServeError::Mismatch(format!("server task failed: {e}"))),
        }
    });
    Ok(RunningNode { addr, tlog_addr, institution: cfg.node.institution.clone(), node, stop, task })
}

/// The node's peers: from the signed directory when it follows one (refusing to start without
/// a valid one, naming the file), else the configured `[[peers]]`.
fn peers_of(
    cfg: &NodeConfig,
    material: &TlsMaterial,
    revocation: Arc<tls::Revocation>,
) -> Result<(Peers, Option<DirectorySource>), ServeError> {
    let (federation, max) = (&cfg.federation.name, cfg.limits.max_message_bytes);
    let (Some(path), Some(key)) = (&cfg.federation.directory, &cfg.federation.directory_key) else {
        return Ok((Peers::new(&cfg.peers, material, federation, max, revocation)?, None));
    };
    let refused = |why: String| ServeError::Directory { path: path.clone(), why };
    let verifier =
        std::fs::read_to_string(key).map_err(|e| refused(format!("directory key {}: {e}", key.display())))?;
    let source =
        DirectorySource { path: path.clone(), federation: federation.clone(), verifier: verifier.trim().to_owned() };
    let directory = source.load().map_err(|e| refused(e.to_string()))?;
    if cfg.federation.locator && !directory.is_locator(&cfg.node.institution) {
        return Err(refused(format!(
            "federation.locator is on but the directory names no locator shard {}",
            cfg.node.institution
        )));
    }
    crate::net::directory_watch::publish(&directory);
    info!(file = %path.display(), serial = directory.serial, members = directory.members.len(), locators = directory.locators.len(), "directory in force");
    let me = &cfg.node.institution;
    let peers = Peers::from_directory(Arc::new(directory), me, material, federation, max, revocation)?;
    Ok((peers, Some(source)))
}

fn name_of<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// Opens the configured storage backend, off the async workers.
async fn open_storage(cfg: &NodeConfig) -> Result<DynStorage, ServeError> {
    match (cfg.store.backend, &cfg.store.postgres) {
        (Backend::Postgres, Some(pg)) => {
            let tls_ca = match &pg.tls_ca {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| ServeError::Mismatch(format!("store.postgres.tls_ca {}: {e}", path.display())))?,
                ),
                None => None,
            };
            Ok(crate::storage::open::open_postgres(PostgresOptions {
                url: pg.url.clone(),
                pool_size: pg.pool_size,
                statement_timeout: Duration::from_millis(pg.statement_timeout_ms),
                connect_timeout: Duration::from_millis(pg.connect_timeout_ms),
                tls_ca,
            })
            .await?)
        }
        _ => {
            let opts = SledOptions {
                path: cfg.node.data_dir.clone(),
                cache_capacity: cfg.store.cache_capacity_bytes,
                fsync: cfg.store.fsync,
            };
            Ok(crate::storage::open::open_sled(opts).await?)
        }
    }
}

/// How this node checks consent: tokens verified against the authority and the revocation
/// list in force (which follows CRL reloads), unless the configuration opts out.
fn consent_policy(
    cfg: &NodeConfig,
    material: &TlsMaterial,
    revocation: Arc<tls::Revocation>,
) -> Result<crate::app::consent::ConsentPolicy, ServeError> {
    let verifier = crate::net::consent_token::TokenVerifier::new(material.ca(), revocation, &cfg.federation.name)
        .map_err(|e| ServeError::Mismatch(format!("consent token verifier: {e}")))?;
    Ok(crate::app::consent::ConsentPolicy {
        tokens: cfg.consent.tokens,
        verifier: Some(verifier),
        reports_per_window: cfg.consent.reports_per_window,
        report_window: chrono::Duration::days(i64::from(cfg.consent.report_window_days)),
    })
}
