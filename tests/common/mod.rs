//! Test harness: real nodes on loopback ports, real certificates made per test, real sled
//! stores in temporary directories, real gRPC.
#![allow(dead_code)]

pub mod tlog;

use std::{collections::BTreeSet, net::SocketAddr, path::Path, process::Command};

pub use bureau::testkit::process::NodeProcess;
use bureau::{
    pb::bureau::v1::{self as pb, records_service_client::RecordsServiceClient},
    pb::google::r#type::Date,
    testkit::local::LocalFederation,
    Role, RunningNode,
};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// A federation in a temporary directory, removed when dropped.
pub struct Fed {
    pub tmp: tempfile::TempDir,
    pub fed: LocalFederation,
}

pub fn fed(institutions: &[&str], regulators: &[&str]) -> Fed {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fed = LocalFederation::create(tmp.path(), "fed.test", institutions, regulators).expect("pki");
    Fed { tmp, fed }
}

impl Fed {
    /// Every entry of the log of the node at `addr`, read as the regulator `pbc`.
    pub async fn entries_at(&self, addr: SocketAddr) -> Vec<bureau::Entry> {
        let mut c = pb::audit_service_client::AuditServiceClient::new(self.channel(Role::Regulator, "pbc", addr));
        let size = c.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
        bureau::regulator::fetch_entries(&mut c, size)
            .await
            .unwrap()
            .iter()
            .map(|e| bureau::Entry::from_bytes(&e.leaf_data).unwrap())
            .collect()
    }

    pub async fn start(&self, institution: &str) -> RunningNode {
        bureau::start(self.fed.node_config(institution, &[])).await.expect("node starts")
    }

    pub fn channel(&self, role: Role, id: &str, addr: SocketAddr) -> Channel {
        self.fed.client(role, id, addr).channel().expect("channel")
    }

    pub fn records(&self, role: Role, id: &str, addr: SocketAddr) -> RecordsServiceClient<Channel> {
        RecordsServiceClient::new(self.channel(role, id, addr))
    }
}

/// Runs a node with `cfg` as a `bureau serve` child process (its own memory and threads, as in
/// production); returns it once it listens, with its address.
pub fn spawn_serve(f: &Fed, cfg: &bureau::NodeConfig) -> (NodeProcess, SocketAddr) {
    let cfg_path = f.tmp.path().join(format!("{}.toml", cfg.node.institution));
    std::fs::write(&cfg_path, toml::to_string(cfg).unwrap()).unwrap();
    let node = NodeProcess::spawn(Path::new(env!("CARGO_BIN_EXE_bureau")), &cfg_path, None).expect("node listens");
    let addr = node.addr;
    (node, addr)
}

/// A deterministic, well-formed subject id.
pub fn subject(n: u32) -> String {
    bureau::derive_subject_id(b"test-key", "RESIDENT_ID", &format!("{n:018}"))
}

fn date(y: i32, m: i32, d: i32) -> Option<Date> {
    Some(Date { year: y, month: m, day: d })
}

/// A valid credit-card record.
pub fn record(subject: &str, id: &str, version: u64) -> pb::CreditRecord {
    pb::CreditRecord {
        record_id: id.into(),
        subject_id: subject.into(),
        kind: pb::RecordKind::CreditCard as i32,
        opened_date: date(2021, 3, 1),
        reported_date: date(2026, 10, 31),
        credit_limit_minor: 2_000_000,
        balance_minor: 500_000 + version as i64,
        currency_code: "CNY".into(),
        status: pb::AccountStatus::Current as i32,
        payment_history: vec![pb::PaymentStatus::Current as i32; 12],
        version,
        ..Default::default()
    }
}

/// What a listing of a person's inquiries names besides its page: the person's own request and
/// a consent reference (`..own_listing()` in a request literal).
pub fn own_listing() -> bureau::pb::bureau::v1::ListSubjectInquiriesRequest {
    bureau::pb::bureau::v1::ListSubjectInquiriesRequest {
        purpose: bureau::pb::bureau::v1::Purpose::SubjectRequest as i32,
        consent_reference: "consent-own-listing".into(),
        ..Default::default()
    }
}

/// The `ErrorInfo.reason` of a status, if any.
pub fn reason(s: &tonic::Status) -> Option<String> {
    s.get_error_details().error_info().map(|i| i.reason.clone())
}

/// The `BadRequest` field violations of a status, as (field, description).
pub fn violations(s: &tonic::Status) -> Vec<(String, String)> {
    s.get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| (v.field.clone(), v.description.clone())).collect())
        .unwrap_or_default()
}

/// Every record id of subjects `0..subjects`, listed through the node at `addr`.
pub async fn all_record_ids(f: &Fed, addr: SocketAddr, subjects: u32) -> BTreeSet<String> {
    let mut c = f.records(Role::Application, "bank", addr);
    let mut ids = BTreeSet::new();
    for s in 0..subjects {
        let mut token = String::new();
        loop {
            let page = c
                .list_records(pb::ListRecordsRequest {
                    parent: format!("subjects/{}", subject(s)),
                    page_size: 1000,
                    page_token: token,
                })
                .await
                .unwrap()
                .into_inner();
            ids.extend(page.records.into_iter().map(|r| r.record_id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    ids
}

/// Nodes on fixed loopback ports sharing one clock (that tests move), each restartable in place,
/// with a regulator `pbc`.
pub struct Cluster {
    pub f: Fed,
    pub clock: bureau::Clock,
    pub institutions: Vec<String>,
    pub cfgs: Vec<bureau::config::NodeConfig>,
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Option<RunningNode>>,
}

impl Cluster {
    /// The real `bureau ARGS` command as `inst`'s application talking to the node at `addr`
    /// (node, federation and mTLS flags set; add more before running it).
    pub fn cli(&self, inst: &str, addr: SocketAddr, args: &[&str]) -> Command {
        let app = self.f.fed.pki.member(Role::Application, inst);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bureau"));
        cmd.args(args)
            .args(["--node", &addr.to_string(), "--federation", "fed.test"])
            .arg("--ca")
            .arg(self.f.fed.pki.ca_cert())
            .arg("--cert")
            .arg(&app.cert)
            .arg("--key")
            .arg(&app.key);
        cmd
    }

    pub async fn start(institutions: &[&str]) -> Self {
        let f = fed(institutions, &["pbc"]);
        let clock = bureau::Clock::system();
        let mut listeners = Vec::new();
        for _ in institutions {
            listeners.push(bureau::bind_loopback().await.unwrap());
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut cfgs = Vec::new();
        for (i, inst) in institutions.iter().enumerate() {
            let peers: Vec<(&str, SocketAddr)> =
                institutions.iter().copied().zip(addrs.iter().copied()).filter(|(_, a)| *a != addrs[i]).collect();
            let mut cfg = f.fed.node_config(inst, &peers);
            cfg.clock = clock.clone();
            cfg.limits.outbox_retry_max_ms = 300;
            cfg.scoring.peer_deadline_ms = 1_500;
            cfgs.push(cfg);
        }
        let mut nodes = Vec::new();
        for (cfg, l) in cfgs.iter().zip(listeners) {
            nodes.push(Some(bureau::start_on(cfg.clone(), l).await.unwrap()));
        }
        Self { f, clock, institutions: institutions.iter().map(|s| s.to_string()).collect(), cfgs, addrs, nodes }
    }

    pub async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().shutdown().await.unwrap();
    }

    /// Starts node `i` again on its own port, over its own store.
    pub async fn restart(&mut self, i: usize) {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addrs[i]).await {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot bind {} again: {e}", self.addrs[i]),
            }
        };
        self.nodes[i] = Some(bureau::start_on(self.cfgs[i].clone(), listener).await.unwrap());
    }

    pub fn app(&self, i: usize) -> Channel {
        self.f.channel(Role::Application, &self.institutions[i], self.addrs[i])
    }

    /// Every entry of node `i`'s log.
    pub async fn entries(&self, i: usize) -> Vec<bureau::Entry> {
        self.f.entries_at(self.addrs[i]).await
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

/// The samples of `name` whose labels include `labels`, parsed by a Prometheus parser we did
/// not write: the value of each (a histogram: its largest bucket count).
pub fn samples(body: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    parsed
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => 1.0,
        })
        .collect()
}
