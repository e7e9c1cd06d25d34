//! Connecting to a node as a federation member: for the command line, peers and tests.

use std::{path::PathBuf, time::Duration};

use tonic::transport::Channel;

use crate::net::{
    pki::{MemberFiles, PkiDir},
    tls::{self, TlsError, TlsFiles, TlsMaterial},
};

/// How to reach a node and prove who we are.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the node.
    pub address: String,
    /// The federation's name.
    pub federation: String,
    /// Our certificate, key and the authority's certificate (and CRL, to refuse revoked nodes).
    pub tls: TlsFiles,
    /// The institution the node must prove to be; any institution of the federation if `None`.
    pub expect: Option<String>,
}

impl ClientConfig {
    /// A member's files in a PKI directory made by `bureau pki init`.
    pub fn from_pki(dir: &std::path::Path, files: &MemberFiles, federation: &str, address: &str) -> Self {
        let pki = PkiDir(PathBuf::from(dir));
        Self {
            address: address.to_owned(),
            federation: federation.to_owned(),
            tls: TlsFiles { ca: pki.ca_cert(), cert: files.cert.clone(), key: files.key.clone(), crl: Some(pki.crl()) },
            expect: None,
        }
    }

    /// Opens a channel (lazily: the first call connects).
    pub fn channel(&self) -> Result<Channel, ClientError> {
        let material = TlsMaterial::load(&self.tls)?;
        let cfg = material.client_config(&self.federation, self.expect.as_deref())?;
        Ok(tls::channel(&self.address, cfg, Duration::from_secs(5))?)
    }
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Certificates or keys.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The address.
    #[error("endpoint: {0}")]
    Transport(#[from] tonic::transport::Error),
}
