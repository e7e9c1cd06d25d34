//! Mutual TLS with revocation, terminated by rustls directly (tonic's own TLS has no CRL
//! support): TLS 1.3 only, client certificates required and checked against the authority and
//! its CRL at the handshake; on the client side the peer's SPIFFE identity is checked instead
//! of a DNS name, so an impostor on a right address is refused.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime},
    server::WebPkiClientVerifier,
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tokio_rustls::{server::TlsStream, TlsAcceptor, TlsConnector};
use tracing::{debug, error, info, warn};

use crate::net::identity::Identity;
pub(crate) use crate::net::revocation::{Revocation, Tracked};

/// Most TLS handshakes in progress at once. A new connection beyond it evicts the oldest
/// pending handshake instead of waiting for a slot, so connections that never finish their
/// handshake (a flood, a stalled client) cannot keep a new one waiting.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file without the PEM block it should hold.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// A revocation list refused (fail closed): the file, why, and the metric's reason.
    #[error("{path}: revocation list refused: {why}")]
    Crl {
        /// The CRL file.
        path: PathBuf,
        /// The `reason` label of `bureau_crl_rejected_total`.
        reason: crate::net::crl::CrlRejection,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the material.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The files one member needs for mTLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The federation authority's certificate.
    pub ca: PathBuf,
    /// This member's certificate chain.
    pub cert: PathBuf,
    /// This member's private key.
    pub key: PathBuf,
    /// The authority's CRL; `None` trusts every unexpired licence (an application client's
    /// choice; a node refuses to start without one).
    pub crl: Option<PathBuf>,
}

/// Loaded TLS material.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    crl_standing: crate::net::crl::CrlStanding,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path` (PEM decoding by `rustls-pki-types`).
fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Io { path: path.to_owned(), source })?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_owned(), what: e.to_string() })
}

/// The first private key (PKCS#8, SEC1 or PKCS#1) in the PEM file at `path`.
fn pem_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Io { path: path.to_owned(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Pem { path: path.to_owned(), what: "no private key".into() }
        }
        e => TlsError::Pem { path: path.to_owned(), what: e.to_string() },
    })
}

impl TlsMaterial {
    /// Reads every file in `files`.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let certs = pem_certs(path)?;
            if certs.is_empty() {
                return Err(TlsError::Pem { path: path.to_owned(), what: "no certificate".into() });
            }
            Ok(certs)
        };
        let key = pem_key(&files.key)?;
        let ca = certs(&files.ca)?;
        let (crls, crl_standing) = match &files.crl {
            Some(path) => {
                let checked = crate::net::crl::read_checked(path, &ca).map_err(|r| TlsError::Crl {
                    path: path.to_owned(),
                    reason: r.reason,
                    why: r.why,
                })?;
                (checked.ders, checked.standing)
            }
            None => (Vec::new(), Default::default()),
        };
        Ok(Self { ca, chain: certs(&files.cert)?, key: Arc::new(key), crls, crl_standing })
    }

    /// Where the revocation list read stands in the authority's sequence, and its expiry.
    pub(crate) fn crl_standing(&self) -> crate::net::crl::CrlStanding {
        self.crl_standing
    }

    /// The authority's certificates (trust anchors).
    pub(crate) fn ca(&self) -> &[CertificateDer<'static>] {
        &self.ca
    }

    /// The authority's revocation lists as read.
    pub fn crls(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.crls
    }

    /// This member's own identity, from its certificate.
    pub fn identity(&self) -> Result<Identity, crate::net::identity::IdentityError> {
        Identity::from_cert_der(&self.chain[0])
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(roots)
    }

    /// Server side: TLS 1.3, ALPN h2, client certificate required, chained to the authority and
    /// not on its CRL.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
            .with_crls(self.crls.clone())
            .only_check_end_entity_revocation()
            .build()?;
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// Client side: presents this member's certificate and accepts only a server whose
    /// certificate chains to the authority, is not revoked, and names an institution of
    /// `federation` — `expected` when given.
    pub fn client_config(&self, federation: &str, expected: Option<&str>) -> Result<Arc<ClientConfig>, TlsError> {
        self.client_config_with(federation, expected, Revocation::new(&self.crls)?)
    }

    /// [`TlsMaterial::client_config`] checking servers against `revocation`'s lists as they
    /// are when each connection is made (a node's peer client: its lists follow CRL reloads).
    pub fn client_config_with(
        &self,
        federation: &str,
        expected: Option<&str>,
        revocation: Arc<Revocation>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let anchors = self
            .ca
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(format!("trust anchor: {e}"))))?;
        let verifier = PeerVerifier {
            anchors,
            revocation,
            federation: federation.to_owned(),
            expected: expected.map(str::to_owned),
            provider: provider.clone(),
        };
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Checks a server's chain and revocation with webpki, then its SPIFFE identity (not its DNS
/// name: peers are known by institution id, wherever they run).
#[derive(Debug)]
struct PeerVerifier {
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    revocation: Arc<Revocation>,
    federation: String,
    expected: Option<String>,
    provider: Arc<CryptoProvider>,
}

/// A peer whose certificate is valid but names someone else.
#[derive(Debug, thiserror::Error)]
#[error("peer certificate names {found}, expected {expected}")]
struct WrongPeer {
    found: String,
    expected: String,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(other)?;
        let crls = self.revocation.current();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
        let revocation = Revocation::end_entity_options(&crl_refs);
        ee.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            revocation,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertRevoked => rustls::Error::InvalidCertificate(CertificateError::Revoked),
            webpki::Error::UnknownIssuer => rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            webpki::Error::CertExpired { .. } => rustls::Error::InvalidCertificate(CertificateError::Expired),
            e => other(e),
        })?;
        let id = Identity::from_cert_der(end_entity).map_err(other)?;
        let wanted = Identity::node(&self.federation, self.expected.as_deref().unwrap_or(&id.id));
        if id != wanted {
            return Err(other(WrongPeer { found: id.spiffe_uri(), expected: wanted.spiffe_uri() }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Accepts TCP connections, sets TCP_NODELAY and completes the TLS handshake of each in its own
/// task under `handshake_timeout`, yielding only authenticated streams. The server config is
/// read from `config` per connection, so a reloaded CRL applies to the next handshake.
pub(crate) fn incoming(
    listener: TcpListener,
    config: watch::Receiver<Arc<ServerConfig>>,
    handshake_timeout: Duration,
    revocation: Arc<Revocation>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Tracked<TlsStream<TcpStream>>>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        // Pending handshakes, oldest first: each task's abort handle and a token that is gone
        // once the task has finished.
        let mut pending: std::collections::VecDeque<(tokio::task::AbortHandle, std::sync::Weak<()>)> =
            std::collections::VecDeque::new();
        loop {
            // Stop listening as soon as the server stops reading: a stopped node must refuse
            // connections, not accept and drop them.
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, addr) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            while pending.front().is_some_and(|(_, alive)| alive.strong_count() == 0) {
                pending.pop_front();
            }
            if pending.len() >= MAX_PENDING_HANDSHAKES {
                pending.retain(|(_, alive)| alive.strong_count() > 0);
                while pending.len() >= MAX_PENDING_HANDSHAKES {
                    if let Some((oldest, _)) = pending.pop_front() {
                        oldest.abort();
                    }
                }
                metrics::counter!("bureau_tls_handshake_failures_total", "reason" => "evicted").increment(1);
                debug!(peer = %addr, "handshake table full; the oldest pending handshake was dropped");
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.borrow().clone());
            let tx = tx.clone();
            let revocation = revocation.clone();
            let token = Arc::new(());
            let alive = Arc::downgrade(&token);
            let task = tokio::spawn(async move {
                let _token = token;
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let peer = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
                        let _ = tx.send(Ok(revocation.track(tls, peer.as_ref()).counted())).await;
                    }
                    Ok(Err(e)) => {
                        metrics::counter!("bureau_tls_handshake_failures_total", "reason" => handshake_reason(&e))
                            .increment(1);
                        info!(peer = %addr, error = %e, "tls handshake refused")
                    }
                    Err(_) => {
                        metrics::counter!("bureau_tls_handshake_failures_total", "reason" => "timeout").increment(1);
                        info!(peer = %addr, timeout_ms = handshake_timeout.as_millis() as u64, "tls handshake timed out")
                    }
                }
            });
            pending.push_back((task.abort_handle(), alive));
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A handshake failure's reason, as a metric label: a small fixed set.
fn handshake_reason(e: &std::io::Error) -> &'static str {
    let text = e.to_string();
    if text.contains("Revoked") {
        "revoked"
    } else if text.contains("certificate") || text.contains("Certificate") {
        "bad_certificate"
    } else if text.contains("version") || text.contains("Version") {
        "protocol_version"
    } else {
        "other"
    }
}

/// Rebuilds the server config whenever the CRL file changes (checked every `every`), so a
/// revocation takes effect on a running node without a restart. A file that fails any check of
/// [`crate::net::crl::read_checked`], or holds a list older than the one in force, is refused:
/// the last good list stays, with a WARN and `bureau_crl_rejected_total{reason}`. At every
/// check the list in force is held against its `nextUpdate` plus `grace`. Stops when `tx` has
/// no readers.
pub(crate) fn watch_crl(
    files: TlsFiles,
    tx: watch::Sender<Arc<ServerConfig>>,
    revocation: Arc<Revocation>,
    every: Duration,
    grace: Duration,
    mut standing: crate::net::crl::CrlStanding,
) {
    let Some(crl) = files.crl.clone() else { return };
    let mtime = move || fs::metadata(&crl).and_then(|m| m.modified()).ok();
    tokio::spawn(async move {
        let mut seen: Option<SystemTime> = mtime();
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
        let mut expired = report_expiry(&standing, grace, false);
        loop {
            tick.tick().await;
            if tx.is_closed() {
                return;
            }
            expired = report_expiry(&standing, grace, expired);
            let now = mtime();
            if now == seen {
                continue;
            }
            seen = now;
            let reloaded = TlsMaterial::load(&files).and_then(|m| {
                if m.crl_standing().is_older_than(&standing) {
                    return Err(TlsError::Crl {
                        path: files.crl.clone().unwrap_or_default(),
                        reason: crate::net::crl::CrlRejection::Older,
                        why: format!(
                            "CRL number {} issued at {} is older than the list in force (number {}, issued at {})",
                            m.crl_standing().number,
                            m.crl_standing().this_update,
                            standing.number,
                            standing.this_update
                        ),
                    });
                }
                Ok((m.server_config()?, m))
            });
            match reloaded {
                Ok((cfg, material)) => {
                    let _ = tx.send(cfg);
                    standing = material.crl_standing();
                    expired = report_expiry(&standing, grace, expired);
                    match revocation.update(material.crls()) {
                        Ok(closed) => {
                            info!(crl = ?files.crl, number = standing.number, closed, "revocation list reloaded")
                        }
                        Err(e) => warn!(error = %e, "revocation list reloaded for new handshakes only"),
                    }
                }
                Err(e) => {
                    let reason = match &e {
                        TlsError::Crl { reason, .. } => reason.as_str(),
                        _ => "other_file",
                    };
                    metrics::counter!("bureau_crl_rejected_total", "reason" => reason).increment(1);
                    warn!(error = %e, reason, "revocation list reload refused, keeping the list in force")
                }
            }
        }
    });
}

/// Publishes the list's expiry and says, once when it happens, that the list in force is past
/// its `nextUpdate` plus `grace` (still enforced; `bureau_crl_expired` stays 1 for the alert).
/// Returns whether it is.
fn report_expiry(standing: &crate::net::crl::CrlStanding, grace: Duration, was_expired: bool) -> bool {
    let Some(next) = standing.next_update else {
        metrics::gauge!("bureau_crl_expired").set(0.0);
        return false;
    };
    metrics::gauge!("bureau_crl_next_update_timestamp_seconds").set(next as f64);
    let now = chrono::Utc::now().timestamp();
    let expired = now > next.saturating_add(grace.as_secs() as i64);
    metrics::gauge!("bureau_crl_expired").set(if expired { 1.0 } else { 0.0 });
    if expired && !was_expired {
        error!(
            next_update = next,
            number = standing.number,
            "the revocation list in force is past its nextUpdate and grace: still enforced; publish a fresh one (bureau pki crl refresh)"
        );
    } else if was_expired {
        info!(next_update = next, "the revocation list in force is current again");
    }
    expired
}

/// A client connection, tracked for revocation or not.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Opens a lazily connected channel to `addr` over mTLS with `config`: one HTTP/2 connection,
/// reused by every call, reconnected on failure.
pub(crate) fn channel(
    addr: &str,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    channel_tracked(addr, config, connect_timeout, None)
}

/// [`channel`] whose connections `revocation` closes once it lists the server's certificate
/// (a node's peer channels).
pub(crate) fn channel_tracked(
    addr: &str,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
    revocation: Option<Arc<Revocation>>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let connector = tower::service_fn(move |uri: http::Uri| {
        let config = config.clone();
        let revocation = revocation.clone();
        async move {
            let host = uri.host().unwrap_or("localhost").trim_matches(|c| c == '[' || c == ']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            debug!(%uri, "peer connection established");
            let tracked = match &revocation {
                Some(r) => {
                    let peer = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
                    Box::new(r.track(tls, peer.as_ref())) as Box<dyn Io>
                }
                None => Box::new(tls) as Box<dyn Io>,
            };
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tracked))
        }
    });
    Ok(tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_with_connector_lazy(connector))
}
