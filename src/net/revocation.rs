//! The authority's revocation list as a running node holds it: one shared copy read by the
//! server's client-certificate check, the peer client's server-certificate check, and a
//! registry of open connections. When the CRL file changes, [`Revocation::update`] swaps the
//! list and closes every open connection, inbound or outbound, whose peer certificate it now
//! lists, so a revoked identity loses its connections at the next reload, not at its next
//! handshake.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock, Weak,
    },
    task::{Context, Poll},
};

use futures::task::AtomicWaker;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::{info, warn};

/// Parsed revocation lists.
pub(crate) type Crls = Arc<Vec<webpki::CertRevocationList<'static>>>;

/// The current revocation lists and the connections they may close. Cheap to share.
#[derive(Debug)]
pub struct Revocation {
    crls: RwLock<Crls>,
    open: Mutex<Vec<Open>>,
}

/// One open connection: its kill switch, its peer's certificate serial and who the peer is.
#[derive(Debug)]
struct Open {
    switch: Weak<Switch>,
    serial: Vec<u8>,
    peer: String,
}

fn parse(crls: &[CertificateRevocationListDer<'_>]) -> Result<Crls, rustls::Error> {
    // The oldest list's issue time, for `time() - bureau_crl_this_update_timestamp_seconds`
    // (how stale the revocations this node enforces are).
    let issued = crls
        .iter()
        .filter_map(|c| x509_parser::parse_x509_crl(c).ok().map(|(_, crl)| crl.last_update().timestamp()))
        .min();
    if let Some(t) = issued {
        metrics::gauge!("bureau_crl_this_update_timestamp_seconds").set(t as f64);
    }
    let parsed = crls
        .iter()
        .map(|c| webpki::OwnedCertRevocationList::from_der(c).map(webpki::CertRevocationList::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| rustls::Error::General(format!("crl: {e}")))?;
    Ok(Arc::new(parsed))
}

/// The DER serial number and subject of a certificate, if it parses.
fn serial_and_name(cert: &CertificateDer<'_>) -> Option<(Vec<u8>, String)> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let name = c
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
        })
        .unwrap_or_else(|| c.subject().to_string());
    Some((c.tbs_certificate.raw_serial().to_vec(), name))
}

fn is_revoked(crls: &[webpki::CertRevocationList<'_>], serial: &[u8]) -> bool {
    crls.iter().any(|crl| matches!(crl.find_serial(serial), Ok(Some(_))))
}

impl Revocation {
    /// Starts from the lists read at start-up.
    pub fn new(crls: &[CertificateRevocationListDer<'_>]) -> Result<Arc<Self>, rustls::Error> {
        Ok(Arc::new(Self { crls: RwLock::new(parse(crls)?), open: Mutex::new(Vec::new()) }))
    }

    /// The lists in force now.
    pub(crate) fn current(&self) -> Crls {
        self.crls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Revocation options for an end-entity check against `crls` (the lists in force, as
    /// references), or `None` when there are none: what the handshake and the consent token
    /// check both use.
    pub(crate) fn end_entity_options<'a>(
        crls: &'a [&'a webpki::CertRevocationList<'a>],
    ) -> Option<webpki::RevocationOptions<'a>> {
        // The builder refuses only an empty list, which means "no revocation check" here.
        webpki::RevocationOptionsBuilder::new(crls)
            .ok()
            .map(|b| b.with_depth(webpki::RevocationCheckDepth::EndEntity).build())
    }

    /// Replaces the lists and closes every open connection whose peer certificate they list;
    /// returns how many were closed.
    pub fn update(&self, crls: &[CertificateRevocationListDer<'_>]) -> Result<usize, rustls::Error> {
        let parsed = parse(crls)?;
        *self.crls.write().unwrap_or_else(|p| p.into_inner()) = parsed.clone();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|o| o.switch.strong_count() > 0);
        let mut closed = 0;
        open.retain(|o| {
            if !is_revoked(&parsed, &o.serial) {
                return true;
            }
            if let Some(s) = o.switch.upgrade() {
                s.kill();
                closed += 1;
                info!(peer = %o.peer, "closed an open connection of a revoked certificate");
            }
            false
        });
        Ok(closed)
    }

    /// Wraps an authenticated connection so that a later revocation of `peer_cert` closes it.
    pub(crate) fn track<S>(&self, io: S, peer_cert: Option<&CertificateDer<'_>>) -> Tracked<S> {
        let switch = Arc::new(Switch::default());
        match peer_cert.and_then(serial_and_name) {
            Some((serial, peer)) => {
                let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                // Forget finished connections now and then, so the registry stays the size of
                // what is open.
                if open.len() >= 64 && open.len().is_power_of_two() {
                    open.retain(|o| o.switch.strong_count() > 0);
                }
                open.push(Open { switch: Arc::downgrade(&switch), serial, peer });
            }
            None => warn!("an authenticated connection without a readable certificate is not tracked for revocation"),
        }
        Tracked { io, switch, counted: None }
    }
}

/// Closes one connection from another task: sets the flag and wakes the connection's task.
#[derive(Debug, Default)]
struct Switch {
    killed: AtomicBool,
    waker: AtomicWaker,
}

impl Switch {
    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the connection was closed; registers the polling task to hear of it.
    fn closed(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.killed.load(Ordering::Acquire)
    }
}

fn revoked() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "peer certificate revoked")
}

/// A connection that fails every read and write once its peer's certificate is revoked.
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    io: S,
    switch: Arc<Switch>,
    /// Bytes read and written, when counted (see [`Tracked::counted`]).
    counted: Option<Box<(metrics::Counter, metrics::Counter)>>,
}

impl<S> Tracked<S> {
    /// Counts the bytes this connection reads and writes (HTTP/2 frames inside TLS) into
    /// `bureau_grpc_bytes_total{direction="in"|"out"}`. Only served connections are counted,
    /// so each byte between two nodes is counted once, at the end that serves it.
    pub(crate) fn counted(mut self) -> Self {
        self.counted = Some(Box::new((
            metrics::counter!("bureau_grpc_bytes_total", "direction" => "in"),
            metrics::counter!("bureau_grpc_bytes_total", "direction" => "out"),
        )));
        self
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.switch.closed(cx) {
            return Poll::Ready(Err(revoked()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(c)) = (&r, &self.counted) {
            c.0.increment((buf.filled().len() - before) as u64);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.switch.closed(cx) {
            return Poll::Ready(Err(revoked()));
        }
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(c)) = (&r, &self.counted) {
            c.1.increment(*n as u64);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.closed(cx) {
            return Poll::Ready(Err(revoked()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Tracked<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
