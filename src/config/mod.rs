//! Node configuration: one TOML file (`bureau serve --config node.toml`). Paths are relative to
//! the file's directory, so a configuration and its PKI can move together.

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{domain::inquiry::Purpose, net::identity::is_valid_member_id, net::tls::TlsFiles};

pub use crate::net::otlp::TelemetrySection;

mod access;
pub use access::{AdminSection, ConsentSection, ConsentTokens, IpNet, MetricsSection};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown / missing key.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
    /// A value that parses but cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// A node's configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's institution and network settings.
    pub node: NodeSection,
    /// Certificates and keys.
    pub tls: TlsSection,
    /// The federation this node belongs to.
    pub federation: FederationSection,
    /// Other institutions' nodes this node queries.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Storage settings.
    #[serde(default)]
    pub store: StoreSection,
    /// Named decision policies (e.g. `deposit_waiver`).
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Scoring settings.
    #[serde(default)]
    pub scoring: ScoringSection,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Who administers the node: backups.
    #[serde(default)]
    pub admin: AdminSection,
    /// Retention and dispute deadlines by jurisdiction.
    #[serde(default)]
    pub retention: RetentionSection,
    /// How consent is proven: signed tokens (the default) or legacy reference strings.
    #[serde(default)]
    pub consent: ConsentSection,
    /// Span export (OTLP); off by default.
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// The C2SP transparency-log endpoints: tiles and the witness.
    #[serde(default)]
    pub tlog: TlogSection,
    /// The clock deadlines and retention windows read: the system clock. Not configurable;
    /// tests that start nodes in process share one they can move forward.
    #[serde(skip)]
    pub clock: crate::domain::clock::Clock,
}

/// `[retention]`: a jurisdiction profile (`pbc`: negative information 5 years, inquiries 2,
/// disputes answered in 20 days; `fcra`: 7 years, 2 years, 30 days) and any number overridden.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// `pbc` (the default) or `fcra`.
    pub profile: crate::domain::retention::Profile,
    /// Years negative information is kept after the adverse event ended.
    pub negative_years: Option<u32>,
    /// Days inquiries are kept and shown.
    pub inquiry_days: Option<u32>,
    /// Days a furnisher has to resolve a dispute before the record is suppressed.
    pub dispute_days: Option<u32>,
    /// How often the node purges expired data in the background, seconds (0: never).
    pub purge_every_s: Option<u64>,
}

impl RetentionSection {
    /// The windows this section sets.
    pub fn windows(&self) -> crate::domain::retention::Retention {
        let mut r = crate::domain::retention::Retention::of(self.profile);
        r.negative_years = self.negative_years.unwrap_or(r.negative_years);
        r.inquiry_days = self.inquiry_days.unwrap_or(r.inquiry_days);
        r.dispute_days = self.dispute_days.unwrap_or(r.dispute_days);
        r
    }
}

/// `[tlog]`: the C2SP tlog-tiles read API and tlog-witness, served over HTTPS with the
/// federation's mTLS (HTTP/1.1): the checkpoint and hash tiles to every member and regulator,
/// entry bundles to regulators only, `add-checkpoint` to member nodes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlogSection {
    /// Where to serve; off when unset.
    pub listen: Option<SocketAddr>,
    /// This node's witness key (Ed25519, PKCS#8 PEM): with it the node witnesses its peers'
    /// logs (C2SP tlog-witness, cosignature/v1 under the name `<federation>/witness/<id>`).
    pub witness_key: Option<PathBuf>,
    /// A file of the log verifier keys (`<origin>+<id>+<key>`, one a line) this witness
    /// accepts checkpoints from, besides the members' keys in the signed directory.
    pub logs: Option<PathBuf>,
    /// A C2SP tlog-policy file naming the witnesses this node collects cosignatures from
    /// (`witness <name> <vkey> https://<host:port>`) and the quorum its checkpoint needs.
    pub policy: Option<PathBuf>,
    /// How often the node submits a grown checkpoint to its witnesses, milliseconds.
    #[serde(default = "TlogSection::default_every")]
    pub witness_every_ms: u64,
}

impl TlogSection {
    fn default_every() -> u64 {
        1_000
    }
}

impl Default for TlogSection {
    fn default() -> Self {
        Self { listen: None, witness_key: None, logs: None, policy: None, witness_every_ms: Self::default_every() }
    }
}

/// `[node]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The institution this node serves; must match the id in its certificate.
    pub institution: String,
    /// Address to listen on, e.g. `127.0.0.1:7001` (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory of the sled store (created if missing).
    pub data_dir: PathBuf,
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Federation authority certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// The authority's CRL (PEM); reloaded when the file changes. Required: a node enforces the
    /// authority's revocations (an `Option` only so a missing key is refused by name).
    pub crl: Option<PathBuf>,
    /// Ed25519 key that signs audit-log checkpoints (PKCS#8 PEM).
    pub log_key: Option<PathBuf>,
}

/// `[federation]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    /// The federation's name (SPIFFE trust domain).
    pub name: String,
    /// File with the federation-wide subject-id HMAC key in hex (used by client commands that
    /// derive subject ids; the node itself never sees identity numbers).
    pub subject_key: Option<PathBuf>,
    /// Purposes this node answers peer queries for; all of them when unset.
    #[serde(default = "all_purposes")]
    pub accepted_purposes: Vec<Purpose>,
    /// The licensing authority's signed member directory (`pki/directory.note`): the members
    /// and the locator's shards, reloaded while the node runs. With it, `[[peers]]` stays empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// File with the authority's directory verifier key (`pki/directory.pub`); required with
    /// `directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_key: Option<PathBuf>,
    /// This node runs the record locator for the shards the directory names it in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locator: bool,
}

impl FederationSection {
    /// Every purpose (the default of `accepted_purposes`).
    pub fn default_purposes() -> Vec<Purpose> {
        all_purposes()
    }
}

fn all_purposes() -> Vec<Purpose> {
    vec![
        Purpose::CreditApplication,
        Purpose::AccountReview,
        Purpose::DepositWaiver,
        Purpose::Collections,
        Purpose::SubjectRequest,
    ]
}

/// `[[peers]]`: defined with the peer client that uses it.: one institution's node.
pub use crate::net::peers::PeerConfig;

/// `[limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest gRPC message accepted, bytes; larger ones get RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Most records in one furnishing request.
    pub max_batch_records: usize,
    /// TLS handshake deadline, milliseconds.
    pub handshake_timeout_ms: u64,
    /// How often the CRL file is checked for changes, milliseconds.
    pub crl_reload_ms: u64,
    /// How long past its `nextUpdate` the CRL in force may run before `bureau_crl_expired`
    /// turns 1 (the list is still enforced; the authority is late), seconds.
    pub crl_grace_s: u64,
    /// Most concurrent requests per connection.
    pub max_concurrent_streams: u32,
    /// At shutdown, how long in-flight calls may run before they are cancelled (their writes
    /// unacknowledged), milliseconds.
    pub drain_timeout_ms: u64,
    /// Longest wait between two attempts to deliver a queued notice (a dispute) to a peer that
    /// does not answer, milliseconds; attempts start at 250 ms and double up to this.
    pub outbox_retry_max_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_batch_records: 1000,
            handshake_timeout_ms: 5_000,
            crl_reload_ms: 2_000,
            crl_grace_s: 86_400,
            max_concurrent_streams: 256,
            drain_timeout_ms: 5_000,
            outbox_retry_max_ms: 30_000,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Where the ledger lives: `sled` (embedded, in `node.data_dir`; the default) or `postgres`
    /// (`[store.postgres]`, shared by every node process of the institution).
    pub backend: Backend,
    /// sled page cache, bytes. RSS runs several times this (sled #1309): set it deliberately.
    pub cache_capacity_bytes: u64,
    /// `fdatasync` the write-ahead log before acknowledging a write, and sled's data file at
    /// each checkpoint. Without it writes survive a process crash but a power loss can take
    /// acknowledged ones. Turn off only on storage with power-loss protection.
    pub fsync: bool,
    /// The database, when `backend = "postgres"`.
    pub postgres: Option<PostgresSection>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self { backend: Backend::Sled, cache_capacity_bytes: 128 * 1024 * 1024, fsync: true, postgres: None }
    }
}

/// A storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// sled, embedded in the node's data directory.
    Sled,
    /// A PostgreSQL database.
    Postgres,
}

/// `[store.postgres]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// A libpq connection URL, e.g. `postgresql://bureau@db1,db2/bureau?target_session_attrs=read-write`
    /// (several hosts: the first that accepts writes is used, and another after a failover).
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Longest one statement may run, milliseconds; a write that takes longer fails UNAVAILABLE.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// Longest to wait for a connection, milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The certificate (PEM) of the authority that signed the database server's certificate.
    /// With it every connection is TLS, the server's certificate and host name are verified, and
    /// nothing falls back to plain TCP; without it, plain TCP (a WARN when the host is remote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
}

fn default_pool_size() -> usize {
    16
}
fn default_statement_timeout_ms() -> u64 {
    5_000
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}

/// `[scoring]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringSection {
    /// One deadline for all peer queries of a federated score, milliseconds.
    pub peer_deadline_ms: u64,
    /// A scorecard model file (TOML); the embedded default when unset.
    pub model: Option<PathBuf>,
}

impl Default for ScoringSection {
    fn default() -> Self {
        Self { peer_deadline_ms: 1_000, model: None }
    }
}

/// `[policies.NAME]`: approve when the federated score is at least `min_score`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Lowest approving score.
    pub min_score: i32,
    /// The purpose sent with the queries this policy makes.
    pub purpose: Purpose,
    /// What an unscoreable file (too thin to score) means under this policy: `refer` (a person
    /// decides; the default) or `deposit` (no waiver: the deposit is asked).
    #[serde(default)]
    pub unscoreable: OnUnscoreable,
}

/// What a policy does with an unscoreable file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnscoreable {
    /// Refer to a person.
    #[default]
    Refer,
    /// Decline the waiver: the deposit is asked.
    Deposit,
}

impl NodeConfig {
    /// A client of this node: its address, authority, CRL and federation, and (as placeholders)
    /// the node's own certificate and key, which a caller of application services must replace
    /// with an application's: the node's identity may not use them.
    pub fn client_config(&self) -> crate::net::client::ClientConfig {
        crate::net::client::ClientConfig {
            address: self.node.listen.to_string(),
            federation: self.federation.name.clone(),
            tls: self.tls_files(),
            expect: Some(self.node.institution.clone()),
        }
    }

    /// Reads and checks `path`, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text`, the contents of `path`, resolving relative paths against its
    /// directory. Touches no file.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Self =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve(base);
        cfg.check()?;
        Ok(cfg)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.node.data_dir);
        fix(&mut self.tls.ca);
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        self.tls.crl.as_mut().map(fix);
        self.tls.log_key.as_mut().map(fix);
        self.federation.subject_key.as_mut().map(fix);
        self.federation.directory.as_mut().map(fix);
        self.federation.directory_key.as_mut().map(fix);
        self.scoring.model.as_mut().map(fix);
        self.admin.backup_recipients.as_mut().map(fix);
        if let Some(pg) = self.store.postgres.as_mut() {
            pg.tls_ca.as_mut().map(fix);
        }
    }

    /// Rejects values that parse but cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !is_valid_member_id(&self.node.institution) {
            return bad(format!("node.institution {:?} is not a valid id", self.node.institution));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.peers {
            if !is_valid_member_id(&p.id) || p.id == self.node.institution || !seen.insert(&p.id) {
                return bad(format!("peer id {:?} is invalid, duplicated or this node's own", p.id));
            }
        }
        match (&self.federation.directory, &self.federation.directory_key) {
            (Some(_), None) => return bad("federation.directory needs federation.directory_key".into()),
            (None, Some(_)) => return bad("federation.directory_key is set without federation.directory".into()),
            (Some(_), Some(_)) if !self.peers.is_empty() => {
                return bad("[[peers]] must be empty with federation.directory: members come from the directory".into())
            }
            (None, _) if self.federation.locator => {
                return bad("federation.locator needs federation.directory, which names the locator's shards".into())
            }
            _ => {}
        }
        if self.tls.crl.is_none() {
            return bad("tls.crl is required: a node enforces the licensing authority's revocation list".into());
        }
        if self.tlog.listen.is_none() && (self.tlog.witness_key.is_some() || self.tlog.policy.is_some()) {
            return bad(
                "tlog.witness_key and tlog.policy need tlog.listen: witnesses and checkpoints are served there".into(),
            );
        }
        if self.tlog.policy.is_some() && self.tls.log_key.is_none() {
            return bad("tlog.policy needs tls.log_key: only a signed checkpoint can be witnessed".into());
        }
        let l = &self.limits;
        for (name, v) in [
            ("handshake_timeout_ms", l.handshake_timeout_ms),
            ("crl_reload_ms", l.crl_reload_ms),
            ("outbox_retry_max_ms", l.outbox_retry_max_ms),
            ("max_concurrent_streams", u64::from(l.max_concurrent_streams)),
        ] {
            if v == 0 {
                return bad(format!("limits.{name} must be > 0"));
            }
        }
        if self.limits.max_message_bytes < 1024 || self.limits.max_batch_records == 0 {
            return bad("limits.max_message_bytes must be >= 1024 and max_batch_records >= 1".into());
        }
        match (&self.store.backend, &self.store.postgres) {
            (Backend::Postgres, None) => {
                return bad("store.backend = \"postgres\" needs [store.postgres] with a url".into())
            }
            (Backend::Postgres, Some(pg)) if !crate::storage::open::is_postgres_url(&pg.url) => {
                return bad("store.postgres.url is not a valid PostgreSQL connection URL".into())
            }
            (Backend::Postgres, Some(pg))
                if pg.pool_size < 2 || pg.statement_timeout_ms == 0 || pg.connect_timeout_ms == 0 =>
            {
                return bad("store.postgres needs pool_size >= 2 and timeouts > 0".into())
            }
            _ => {}
        }
        if self.consent.reports_per_window == 0 || self.consent.report_window_days == 0 {
            return bad("consent.reports_per_window and consent.report_window_days must be > 0".into());
        }
        self.telemetry.check().map_err(ConfigError::Invalid)?;
        if self.scoring.peer_deadline_ms == 0 {
            return bad("scoring.peer_deadline_ms must be > 0".into());
        }
        if let Some(listen) = self.metrics.listen {
            if !listen.ip().is_loopback() && self.metrics.allow.is_empty() {
                return bad(format!(
                    "metrics.listen = \"{listen}\" is not loopback: name who may scrape it with \
                     metrics.allow = [\"10.0.0.0/8\", …] (the metrics name peers, outcomes and revoked members)"
                ));
            }
        }
        Ok(())
    }

    /// A client acting as this node's institution, talking to this node.
    pub fn client(&self) -> crate::net::client::ClientConfig {
        crate::net::client::ClientConfig {
            address: self.node.listen.to_string(),
            federation: self.federation.name.clone(),
            tls: self.tls_files(),
            expect: Some(self.node.institution.clone()),
        }
    }

    /// The TLS files of this node.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
            crl: self.tls.crl.clone(),
        }
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.handshake_timeout_ms)
    }
}

/// Reads a hex key file (the federation's subject key).
pub fn read_hex_key(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
    hex::decode(text.trim()).map_err(|e| ConfigError::Invalid(format!("{}: not hex: {e}", path.display())))
}
