//! A local federation in one directory: a throw-away authority, member certificates and node
//! configurations on loopback. Used by `bureau demo`, the benchmarks and the tests, so all three
//! run the same real parts.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use crate::{
    config::{
        AdminSection, FederationSection, Limits, NodeConfig, NodeSection, PeerConfig, ScoringSection, StoreSection,
        TlsSection,
    },
    net::client::ClientConfig,
    net::identity::Role,
    net::pki::{self, PkiDir, PkiError, PkiSpec},
    server::{self, RunningNode, ServeError},
};

/// A federation's files under one root directory.
#[derive(Debug, Clone)]
pub struct LocalFederation {
    /// Root directory (PKI under `pki/`, stores under `data/`).
    pub root: PathBuf,
    /// The federation's name.
    pub federation: String,
    /// The PKI directory.
    pub pki: PkiDir,
}

impl LocalFederation {
    /// Makes a new authority with these members under `root`.
    pub fn create(root: &Path, federation: &str, institutions: &[&str], regulators: &[&str]) -> Result<Self, PkiError> {
        let spec = PkiSpec {
            federation: federation.to_owned(),
            institutions: institutions.iter().map(|s| s.to_string()).collect(),
            regulators: regulators.iter().map(|s| s.to_string()).collect(),
            apps: Vec::new(),
            hosts: Vec::new(),
        };
        let pki = pki::init(&spec, &root.join("pki"))?;
        Ok(Self { root: root.to_owned(), federation: federation.to_owned(), pki })
    }

    /// A configuration for `institution`'s node on a free loopback port, with its store under
    /// `data/<institution>` and the given peers.
    pub fn node_config(&self, institution: &str, peers: &[(&str, SocketAddr)]) -> NodeConfig {
        let files = self.pki.member(Role::Node, institution);
        NodeConfig {
            node: NodeSection {
                institution: institution.to_owned(),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                data_dir: self.root.join("data").join(institution),
            },
            tls: TlsSection {
                ca: self.pki.ca_cert(),
                cert: files.cert,
                key: files.key,
                crl: Some(self.pki.crl()),
                log_key: Some(files.log_key.clone()),
            },
            federation: FederationSection {
                name: self.federation.clone(),
                subject_key: Some(self.pki.subject_key()),
                accepted_purposes: FederationSection::default_purposes(),
                directory: None,
                directory_key: None,
                locator: false,
            },
            peers: peers.iter().map(|(id, addr)| PeerConfig::new(*id, addr.to_string())).collect(),
            limits: Limits::default(),
            store: test_store(&self.root.join("data").join(institution)),
            policies: BTreeMap::new(),
            scoring: ScoringSection::default(),
            metrics: Default::default(),
            admin: AdminSection {
                backup_recipients: Some(files.backup_key.with_extension("pub")),
                ..Default::default()
            },
            retention: Default::default(),
            // Test federations written before consent tokens pass reference strings such as
            // "consent-1": they opt out explicitly here. Production configurations (and `bureau
            // init`, the demo, tests/consent.rs) keep the default, `tokens = "required"`.
            consent: crate::config::ConsentSection::legacy(),
            telemetry: Default::default(),
            tlog: Default::default(),
            clock: Default::default(),
        }
    }

    /// A consent token signed by `institution`'s default application for `subject` and
    /// `purpose`, over `evidence`, living `ttl` from `now`: what an institution's application
    /// sends, so tests exercise the real format and checks.
    pub fn consent_token(
        &self,
        institution: &str,
        subject: &str,
        purpose: crate::domain::inquiry::Purpose,
        evidence: &[u8],
        ttl: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, crate::net::consent_token::MintError> {
        let files = self.pki.app(institution, pki::DEFAULT_APP);
        let hash = crate::net::consent_token::evidence_hash(evidence);
        let req = crate::net::consent_token::ConsentRequest { subject, purpose, evidence_sha256: &hash, ttl, now };
        crate::net::consent_token::mint_with_files(&files.key, &files.cert, &req)
    }

    /// Turns on `cfg`'s C2SP endpoint on a free loopback port, with its node's witness key,
    /// witnessing the logs of `witnessed` (their `*.log.pub` keys in a file beside the PKI).
    pub fn with_tlog(&self, cfg: &mut NodeConfig, witnessed: &[&str]) {
        let me = cfg.node.institution.clone();
        let mut keys = String::new();
        for id in witnessed {
            let log = self.pki.member(Role::Node, id).log_key.with_extension("pub");
            keys.push_str(&std::fs::read_to_string(&log).unwrap_or_default());
        }
        let logs = self.root.join(format!("{me}.witnessed-logs"));
        // A test harness: a failed write shows as a witness that knows no log.
        let _ = std::fs::write(&logs, keys);
        cfg.tlog = crate::config::TlogSection {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            witness_key: Some(self.pki.member(Role::Node, &me).witness_key),
            logs: Some(logs),
            ..Default::default()
        };
    }

    /// A client of the C2SP endpoint at `address` acting as member `id` of `role`.
    pub fn tlog_client(&self, role: Role, id: &str, address: SocketAddr) -> crate::net::tlog_client::TlogClient {
        let files = self.client(role, id, address).tls;
        let material = crate::net::tls::TlsMaterial::load(&files).expect("the member's TLS files load");
        crate::net::tlog_client::TlogClient::new(&material, &self.federation, None, address).expect("a TLS client")
    }

    /// The cosignature/v1 verifier key of institution `id`'s witness.
    pub fn witness_vkey(&self, id: &str) -> String {
        let path = self.pki.member(Role::Node, id).witness_key.with_extension("pub");
        std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
    }

    /// A client acting as member `id` of `role`, talking to the node at `address`.
    pub fn client(&self, role: Role, id: &str, address: SocketAddr) -> ClientConfig {
        let files = self.pki.member(role, id);
        ClientConfig::from_pki(&self.pki.0, &files, &self.federation, &address.to_string())
    }

    /// Starts a node for each institution, every one listing all the others as peers. Ports
    /// are bound first so each configuration can name the others' addresses; `tweak` may adjust
    /// each configuration before its node starts.
    pub async fn start_all(
        &self,
        institutions: &[&str],
        tweak: impl Fn(&mut NodeConfig),
    ) -> Result<Vec<RunningNode>, ServeError> {
        let mut listeners = Vec::new();
        for _ in institutions {
            listeners.push(
                server::bind_loopback()
                    .await
                    .map_err(|source| ServeError::Bind { addr: SocketAddr::from(([127, 0, 0, 1], 0)), source })?,
            );
        }
        self.start_all_on(institutions, listeners, tweak).await
    }

    /// Like [`LocalFederation::start_all`], on listeners the caller bound (one per institution).
    pub async fn start_all_on(
        &self,
        institutions: &[&str],
        listeners: Vec<tokio::net::TcpListener>,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Result<Vec<RunningNode>, ServeError> {
        let mut addrs = Vec::new();
        for l in &listeners {
            addrs.push(
                l.local_addr()
                    .map_err(|source| ServeError::Bind { addr: SocketAddr::from(([127, 0, 0, 1], 0)), source })?,
            );
        }
        let named: Vec<(&str, SocketAddr)> = institutions.iter().copied().zip(addrs).collect();
        let mut nodes = Vec::new();
        for (inst, listener) in institutions.iter().zip(listeners) {
            let peers: Vec<(&str, SocketAddr)> = named.iter().filter(|(i, _)| i != inst).copied().collect();
            let mut cfg = self.node_config(inst, &peers);
            tweak(&mut cfg);
            nodes.push(server::start_on(cfg, listener).await?);
        }
        Ok(nodes)
    }

    /// Publishes a new edition of the federation's signed directory: `members` active at their
    /// addresses (with their log verifier keys), and `locators` splitting the pseudonyms
    /// between them by first hex digit (one locator serves them all).
    pub fn publish_directory(
        &self,
        members: &[(&str, SocketAddr)],
        locators: &[(&str, SocketAddr)],
    ) -> Result<crate::net::directory::Directory, PkiError> {
        use crate::net::directory::{LocatorShard, Member, Status};
        let log_key = |id: &str| {
            std::fs::read_to_string(self.pki.member(Role::Node, id).log_key.with_extension("pub"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let members: Vec<Member> = members
            .iter()
            .map(|(id, addr)| Member {
                id: (*id).to_owned(),
                addresses: vec![addr.to_string()],
                log_key: log_key(id),
                status: Status::Active,
            })
            .collect();
        let shards: Vec<LocatorShard> = match locators {
            [] => Vec::new(),
            [(id, addr)] => vec![LocatorShard {
                id: (*id).to_owned(),
                prefix: String::new(),
                addresses: vec![addr.to_string()],
                log_key: log_key(id),
            }],
            many => "0123456789abcdef"
                .chars()
                .enumerate()
                .map(|(i, digit)| {
                    let (id, addr) = many[i % many.len()];
                    LocatorShard {
                        id: id.to_owned(),
                        prefix: digit.to_string(),
                        addresses: vec![addr.to_string()],
                        log_key: log_key(id),
                    }
                })
                .collect(),
        };
        pki::edit_directory(&self.pki, &self.federation, move |d| {
            d.members = members;
            d.locators = shards;
            Ok(())
        })
    }

    /// A configuration for `institution`'s node that follows the federation's directory (no
    /// `[[peers]]`); `locator` turns on the record locator.
    pub fn directory_config(&self, institution: &str, locator: bool) -> NodeConfig {
        let mut cfg = self.node_config(institution, &[]);
        cfg.federation.directory = Some(self.pki.directory());
        cfg.federation.directory_key = Some(self.pki.directory_verifier());
        cfg.federation.locator = locator;
        cfg
    }

    /// Starts `locators` and `institutions` on loopback, all following a directory published
    /// first that lists them (institutions as active members); `tweak` may adjust each
    /// configuration. Returns the members' nodes, then the locators'.
    pub async fn start_with_directory(
        &self,
        institutions: &[&str],
        locators: &[&str],
        tweak: impl Fn(&mut NodeConfig),
    ) -> Result<(Vec<RunningNode>, Vec<RunningNode>), ServeError> {
        let mut bound = Vec::new();
        for id in institutions.iter().chain(locators) {
            let l = server::bind_loopback()
                .await
                .map_err(|source| ServeError::Bind { addr: SocketAddr::from(([127, 0, 0, 1], 0)), source })?;
            bound.push((*id, l));
        }
        let shards = bound.split_off(institutions.len());
        self.start_with_directory_on(bound, shards, tweak).await
    }

    /// Like [`LocalFederation::start_with_directory`], on listeners the caller bound.
    pub async fn start_with_directory_on(
        &self,
        members: Vec<(&str, tokio::net::TcpListener)>,
        locators: Vec<(&str, tokio::net::TcpListener)>,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Result<(Vec<RunningNode>, Vec<RunningNode>), ServeError> {
        let addr = |(id, l): &(&str, tokio::net::TcpListener)| -> Result<(String, SocketAddr), ServeError> {
            let a = l
                .local_addr()
                .map_err(|source| ServeError::Bind { addr: SocketAddr::from(([127, 0, 0, 1], 0)), source })?;
            Ok((id.to_string(), a))
        };
        let listed: Vec<(String, SocketAddr)> = members.iter().map(addr).collect::<Result<_, _>>()?;
        let shards: Vec<(String, SocketAddr)> = locators.iter().map(addr).collect::<Result<_, _>>()?;
        fn refs(v: &[(String, SocketAddr)]) -> Vec<(&str, SocketAddr)> {
            v.iter().map(|(i, a)| (i.as_str(), *a)).collect()
        }
        self.publish_directory(&refs(&listed), &refs(&shards))
            .map_err(|e| ServeError::Mismatch(format!("publishing the directory: {e}")))?;
        let mut started = Vec::new();
        for (id, listener) in locators {
            let mut cfg = self.directory_config(id, true);
            tweak(&mut cfg);
            started.push(server::start_on(cfg, listener).await?);
        }
        let mut nodes = Vec::new();
        for (id, listener) in members {
            let mut cfg = self.directory_config(id, false);
            tweak(&mut cfg);
            nodes.push(server::start_on(cfg, listener).await?);
        }
        Ok((nodes, started))
    }

    /// The federation's subject key.
    pub fn subject_key(&self) -> Vec<u8> {
        crate::config::read_hex_key(&self.pki.subject_key()).unwrap_or_default()
    }
}

/// The store a local node gets: sled in its data directory, or, with `BUREAU_TEST_STORE=postgres`,
/// a database of its own (named after the data directory, so a restarted node finds its data)
/// on the PostgreSQL server this process started ([`crate::testkit::postgres::shared`]).
pub fn test_store(data_dir: &Path) -> StoreSection {
    match std::env::var("BUREAU_TEST_STORE").as_deref() {
        Ok("postgres") => {
            let pg = crate::testkit::postgres::shared();
            let url = pg.database_for(data_dir).unwrap_or_else(|e| panic!("{e}"));
            StoreSection {
                backend: crate::config::Backend::Postgres,
                postgres: Some(crate::config::PostgresSection {
                    url,
                    pool_size: 8,
                    statement_timeout_ms: 5_000,
                    connect_timeout_ms: 2_000,
                    tls_ca: None,
                }),
                ..StoreSection::default()
            }
        }
        Ok("sled") | Err(_) => StoreSection::default(),
        Ok(other) => panic!("BUREAU_TEST_STORE={other:?}: expected sled or postgres"),
    }
}
