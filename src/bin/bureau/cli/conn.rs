//! How client commands reach a node: as one of an institution's applications ([`Conn`]) or as a
//! regulator ([`RegulatorConn`]); and how a refused call is shown.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tonic_types::StatusExt;

use bureau::{pki::PkiDir, regulator::KeySource, ClientConfig, NodeConfig, Role, TlsFiles, TlsMaterial};

/// How a regulator reaches nodes: its certificate from a PKI directory, or explicit files.
#[derive(Args, Debug, Clone)]
pub struct RegulatorConn {
    /// The PKI directory (`bureau pki init --out`): certificates, and nodes' checkpoint keys.
    #[arg(long)]
    pub pki: PathBuf,
    /// The regulator's id in that directory.
    #[arg(long)]
    pub regulator: String,
    /// The federation's name.
    #[arg(long)]
    pub federation: String,
    /// Where the checkpoints seen last time are kept.
    #[arg(long, default_value = "regulator-state")]
    pub state: PathBuf,
}

impl RegulatorConn {
    /// A channel to the node at `node`, as this regulator.
    pub fn channel(&self, node: &str) -> Result<tonic::transport::Channel> {
        let files = PkiDir(self.pki.clone()).member(Role::Regulator, &self.regulator);
        Ok(ClientConfig::from_pki(&self.pki, &files, &self.federation, node).channel()?)
    }

    /// A client of the C2SP endpoint at `at`, as this regulator.
    pub fn tlog_client(&self, at: std::net::SocketAddr) -> Result<bureau::TlogClient> {
        let files = PkiDir(self.pki.clone()).member(Role::Regulator, &self.regulator);
        let tls = ClientConfig::from_pki(&self.pki, &files, &self.federation, &at.to_string()).tls;
        Ok(bureau::TlogClient::new(&TlsMaterial::load(&tls)?, &self.federation, None, at)?)
    }

    /// Where the nodes' checkpoint keys are.
    pub fn keys(&self) -> KeySource {
        KeySource::PkiDir(self.pki.clone())
    }
}

/// How a client command reaches a node, as one of an institution's applications: the node's
/// configuration gives its address, authority and federation; the application's own
/// certificate and key (never the node's) say who is calling.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// A node configuration: its address, authority certificate, CRL and federation are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Node address `host:port` (overrides the configuration's).
    #[arg(long)]
    pub node: Option<String>,
    /// Federation authority certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The application's certificate (`pki/institution-<id>-app-<name>.pem`).
    #[arg(long, env = "BUREAU_CERT")]
    pub cert: Option<PathBuf>,
    /// The application's key.
    #[arg(long, env = "BUREAU_KEY")]
    pub key: Option<PathBuf>,
    /// Federation name.
    #[arg(long)]
    pub federation: Option<String>,
}

impl Conn {
    /// Resolves to a client configuration.
    pub fn resolve(&self) -> Result<ClientConfig> {
        let need = "an application certificate and key are required (--cert/--key or BUREAU_CERT/BUREAU_KEY): \
                    a node's own key is for the node only";
        let cert = self.cert.clone().context(need)?;
        let key = self.key.clone().context(need)?;
        let mut c = match &self.config {
            Some(path) => {
                let mut c = NodeConfig::load(path)?.client_config();
                (c.tls.cert, c.tls.key) = (cert, key);
                c
            }
            None => ClientConfig {
                address: String::new(),
                federation: String::new(),
                tls: TlsFiles { ca: self.ca.clone().context("--ca or --config is required")?, cert, key, crl: None },
                expect: None,
            },
        };
        if let Some(n) = &self.node {
            // Another node than the configuration's own: accept any institution's node of the
            // federation (its certificate is still verified against the authority and CRL).
            c.address = n.clone();
            c.expect = None;
        }
        if let Some(f) = &self.federation {
            c.federation = f.clone();
        }
        if c.address.is_empty() || c.federation.is_empty() {
            bail!("--node and --federation are required without --config");
        }
        Ok(c)
    }

    /// A channel to the node, as this application.
    pub fn channel(&self) -> Result<tonic::transport::Channel> {
        Ok(self.resolve()?.channel()?)
    }
}

/// The institution a client certificate names (records are named after their furnisher).
pub fn own_institution(c: &ClientConfig) -> Result<String> {
    Ok(TlsMaterial::load(&c.tls)?.identity()?.id)
}

/// A refused call as an error to print: code, message, reason and field violations.
pub fn print_status(s: &tonic::Status) -> anyhow::Error {
    let mut msg = format!("{:?}: {}", s.code(), s.message());
    let d = s.get_error_details();
    if let Some(info) = d.error_info() {
        msg.push_str(&format!(" [{}]", info.reason));
    }
    if let Some(br) = d.bad_request() {
        for v in &br.field_violations {
            msg.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow::anyhow!(msg)
}
