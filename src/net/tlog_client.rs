//! A client of the C2SP HTTP endpoints (tiles, `add-checkpoint`) over the federation's mTLS:
//! one HTTP/1.1 request per connection, the server checked like any peer (chain, revocation,
//! SPIFFE identity). Used by nodes submitting checkpoints to witnesses, the regulator's tools
//! and the tests.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::net::tls::{TlsError, TlsMaterial};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlogClientError {
    /// Connecting, the handshake or the exchange failed.
    #[error("{0}")]
    Io(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct TlogAnswer {
    /// The HTTP status.
    pub status: u16,
    /// Its `Content-Type`, if any.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// A client for one server address.
#[derive(Clone)]
pub struct TlogClient {
    tls: TlsConnector,
    addr: SocketAddr,
    timeout: Duration,
}

impl TlogClient {
    /// A client presenting `material`'s certificate to the endpoint at `addr`, which must be a
    /// node of `federation` (`expected` names the institution, when known).
    pub fn new(
        material: &TlsMaterial,
        federation: &str,
        expected: Option<&str>,
        addr: SocketAddr,
    ) -> Result<Self, TlsError> {
        let mut cfg = (*material.client_config(federation, expected)?).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: TlsConnector::from(Arc::new(cfg)), addr, timeout: Duration::from_secs(10) })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<TlogAnswer, TlogClientError> {
        self.send(Method::GET, path, Vec::new()).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Result<TlogAnswer, TlogClientError> {
        self.send(Method::POST, path, body.into()).await
    }

    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> Result<TlogAnswer, TlogClientError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| TlogClientError::Timeout(self.timeout))?
    }

    async fn exchange(&self, method: Method, path: &str, body: Vec<u8>) -> Result<TlogAnswer, TlogClientError> {
        let io = |e: &dyn std::fmt::Display| TlogClientError::Io(format!("{}: {e}", self.addr));
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| io(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await.map_err(|e| io(&e))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| io(&e))?;
        let driving = tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| io(&e))?;
        let resp = send.send_request(req).await.map_err(|e| io(&e))?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = resp.into_body().collect().await.map_err(|e| io(&e))?.to_bytes().to_vec();
        driving.abort();
        Ok(TlogAnswer { status, content_type, body })
    }
}
