//! `bureau bench`: measures bureau against baselines taken in the same run on the same machine,
//! and prints ratios. Baselines: a plain tonic unary call (the gRPC health `Check`, an echo in
//! all but name) over the same mTLS stack, and raw sled batch inserts of the same encoded
//! records with the same durability (one flush and `fdatasync` per batch).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use chrono::Utc;
use prost::Message as _;
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::show::{percentiles, Percentiles};
use bureau::{
    config::{Backend, PostgresSection},
    domain::record::CreditRecord,
    net::identity::Role,
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, records_service_client::RecordsServiceClient,
        scoring_service_client::ScoringServiceClient,
    },
    scoring::Model,
    testkit::gen::{self, GenConfig},
    testkit::local::LocalFederation,
    testkit::postgres::TestPostgres,
    testkit::store::{open_postgres, open_sled, PreallocatedLog, RawSled},
    wire::convert,
};

/// How big a run is and what it covers.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Smoke run: small sizes, a minute at most.
    pub quick: bool,
    /// Only these parts; all when empty.
    pub only: Vec<Part>,
}

/// One part of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Furnishing throughput against raw sled.
    Furnish,
    /// The scorecard alone, in memory.
    Scoring,
    /// Audit appends and verification.
    Audit,
    /// Federated score latency, throughput and growth, against an echo.
    Score,
    /// The PostgreSQL backend: furnishing, durable appends and scores, against raw PostgreSQL
    /// through the same client library and against the same federation on sled.
    Postgres,
}

struct Sizes {
    furnish_records: usize,
    score_subjects: usize,
    latency_calls: usize,
    throughput_secs: u64,
    growth: &'static [usize],
    scoring_records: usize,
    audit_appends: usize,
    audit_verify: u64,
    pg_records: usize,
    pg_subjects: usize,
}

const FULL: Sizes = Sizes {
    furnish_records: 1_000_000,
    score_subjects: 1_000_000,
    latency_calls: 3_000,
    throughput_secs: 5,
    growth: &[10_000, 100_000],
    scoring_records: 200_000,
    audit_appends: 20_000,
    audit_verify: 1_000_000,
    pg_records: 200_000,
    pg_subjects: 100_000,
};
const QUICK: Sizes = Sizes {
    furnish_records: 50_000,
    score_subjects: 20_000,
    latency_calls: 500,
    throughput_secs: 1,
    growth: &[2_000, 5_000],
    scoring_records: 20_000,
    audit_appends: 5_000,
    audit_verify: 100_000,
    pg_records: 20_000,
    pg_subjects: 10_000,
};

/// One row of the report.
struct Row {
    what: String,
    ours: String,
    baseline: String,
    ratio: String,
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Runs every benchmark and prints the table.
pub async fn run(opts: BenchOptions) -> Result<()> {
    let sizes = if opts.quick { QUICK } else { FULL };
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let fed = LocalFederation::create(
        tmp.path(),
        "bench.test",
        &["scorer", "peer-a", "peer-b", "peer-c", "loader"],
        &["pbc"],
    )?;
    let mut rows = Vec::new();

    let runs = |p: Part| opts.only.is_empty() || opts.only.contains(&p);

    if runs(Part::Furnish) {
        eprintln!("[1/6] furnishing throughput ({} records)", sizes.furnish_records);
        furnish_throughput(&fed, sizes.furnish_records, &mut rows).await?;
    }
    if runs(Part::Scoring) {
        eprintln!("[2/6] scoring alone ({} records)", sizes.scoring_records);
        scoring_alone(sizes.scoring_records, &mut rows);
    }
    if runs(Part::Audit) {
        eprintln!("[3/6] audit appends and verification");
        audit(&fed, &sizes, &mut rows).await?;
    }
    if runs(Part::Score) {
        eprintln!("[4/6] federated score latency and throughput");
        federated(&fed, &sizes, &mut rows).await?;
    }
    if runs(Part::Postgres) {
        eprintln!("[5/6] PostgreSQL backend ({} records, {} subjects)", sizes.pg_records, sizes.pg_subjects);
        postgres(&fed, &sizes, &mut rows).await?;
    }
    rows.push(Row {
        what: "peak RSS of the bench process itself (loaders, clients, in-process parts)".into(),
        ours: format!("{} MiB", peak_rss_kib() / 1024),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    eprintln!("[6/6] done in {:.1?}", started.elapsed());

    println!("\n{:<58} {:>22} {:>22} {:>10}", "benchmark", "bureau", "baseline", "ratio");
    for r in rows {
        println!("{:<58} {:>22} {:>22} {:>10}", r.what, r.ours, r.baseline, r.ratio);
    }
    Ok(())
}

/// Generated records for `subjects` subjects, furnished by `institutions`.
fn records(subjects: usize, institutions: &[&str]) -> impl Iterator<Item = CreditRecord> {
    let cfg = GenConfig {
        subjects,
        seed: 7,
        institutions: institutions.iter().map(|s| s.to_string()).collect(),
        federation_key: b"bench-key".to_vec(),
        as_of: Utc::now().date_naive(),
    };
    let v: Vec<CreditRecord> = gen::generate(&cfg).collect();
    v.into_iter()
}

async fn furnish_throughput(fed: &LocalFederation, n: usize, rows: &mut Vec<Row>) -> Result<()> {
    const BATCH: usize = 1000;
    // The same records, encoded once for both sides.
    let mut recs: Vec<pb::CreditRecord> = Vec::with_capacity(n);
    let mut subjects = 0;
    while recs.len() < n {
        subjects += 50_000;
        recs = records(subjects, &["loader"]).take(n).map(|r| convert::record_to_pb(&r, Utc::now())).collect();
    }

    // Baselines: raw sled, one batch of 1000 inserts made durable per batch; first the records
    // alone, then the same keys the node writes per record (the record and its subject-index
    // entry), so the second ratio shows bureau's own overhead above sled's.
    let raw = raw_sled_rate(&fed.root.join("raw-sled"), &recs, BATCH, false).await?;
    let raw_indexed = raw_sled_rate(&fed.root.join("raw-sled-indexed"), &recs, BATCH, true).await?;

    let node = bureau::server::start(fed.node_config("loader", &[])).await?;
    let mut c = RecordsServiceClient::new(fed.client(Role::Application, "loader", node.addr).channel()?)
        .max_encoding_message_size(64 << 20);
    let batches: Vec<pb::FurnishRecordsRequest> =
        recs.chunks(BATCH).map(|c| pb::FurnishRecordsRequest { records: c.to_vec() }).collect();
    let t = Instant::now();
    let resp = c.stream_furnish_records(tokio_stream::iter(batches)).await?.into_inner();
    let ours = n as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(resp.accepted_count as usize == n, "accepted {} of {n}", resp.accepted_count);
    node.shutdown().await?;
    rows.push(Row {
        what: format!("furnish {n} records, durable (streamed, batches of {BATCH})"),
        ours: format!("{:.0} rec/s", ours),
        baseline: format!("{:.0} rec/s raw sled", raw),
        ratio: format!("{:.0} %", 100.0 * ours / raw),
    });
    rows.push(Row {
        what: "  the same, against raw sled writing the same keys (record + index)".into(),
        ours: format!("{:.0} rec/s", ours),
        baseline: format!("{:.0} rec/s raw sled", raw_indexed),
        ratio: format!("{:.0} %", 100.0 * ours / raw_indexed),
    });
    Ok(())
}

/// Records per second of raw sled `apply_batch` into a fresh database at `dir`, each batch made
/// durable; with `index`, each record also gets the subject-index key the node writes.
async fn raw_sled_rate(dir: &std::path::Path, recs: &[pb::CreditRecord], batch: usize, index: bool) -> Result<f64> {
    let raw = RawSled::open(dir, 128 << 20)?;
    let t = Instant::now();
    for chunk in recs.chunks(batch) {
        let mut pairs = Vec::with_capacity(chunk.len() * 2);
        for r in chunk {
            let mut k = r.furnisher.as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(r.record_id.as_bytes());
            if index {
                let mut s = r.subject_id.as_bytes().to_vec();
                s.extend_from_slice(&k);
                pairs.push((s, Vec::new()));
            }
            pairs.push((k, r.encode_to_vec()));
        }
        raw.apply(pairs)?;
        raw.durable().await?;
    }
    Ok(recs.len() as f64 / t.elapsed().as_secs_f64())
}

/// The process's peak resident set (VmHWM), KiB; 0 where /proc is missing.
fn peak_rss_kib() -> u64 {
    vm_hwm_kib("/proc/self/status")
}

/// VmHWM from a `/proc/<pid>/status` file, KiB; 0 where it cannot be read.
fn vm_hwm_kib(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A realistic entry: an outbound query with a subject, purpose and consent.
fn sample_entry(i: u64) -> bureau::audit::Entry {
    use bureau::audit::{Action, Entry};
    let mut e = Entry::new(Action::QueryOutbound, "scorer", "answered");
    e.query_id = format!("{:032x}", u128::from(i) * 0x9E37_79B9_7F4A_7C15);
    e.counterparty = "peer-a".into();
    e.subject_id = bureau::domain::subject::derive_subject_id(b"k", "RESIDENT_ID", &i.to_string());
    e.purpose = Some(bureau::domain::inquiry::Purpose::DepositWaiver);
    e.consent_reference = format!("consent-{i}");
    e.record_count = 3;
    e
}

async fn audit(fed: &LocalFederation, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    use bureau::regulator::{self, KeySource};
    // Appends: one entry per transaction, as a peer query or refusal writes them.
    let store = open_sled(&fed.root.join("audit-append"), 128 << 20).await?;
    let raw_db = RawSled::open(&fed.root.join("audit-append-raw"), 128 << 20)?;
    let entries: Vec<_> = (0..sizes.audit_appends as u64).map(sample_entry).collect();
    let t = Instant::now();
    for e in &entries {
        store.append_audit(vec![e.clone()]).await?;
    }
    let unflushed = entries.len() as f64 / t.elapsed().as_secs_f64();
    // Flush that backlog before timing durable appends: a node never holds thousands of
    // unflushed entries, and one flush of them slows the next few hundred (sled's cleanup).
    // With the write-ahead log a sync no longer flushes sled; closing does (a last checkpoint).
    store.sync().await?;
    store.close().await?;
    let store = open_sled(&fed.root.join("audit-append"), 128 << 20).await?;
    // Durable appends against raw sled insert+flush of the same bytes (a database of its own),
    // interleaved in blocks so both meet the same background writeback.
    let n_sync = (sizes.audit_appends / 10).max(100);
    let mut floor = PreallocatedLog::create(&fed.root.join("audit-append.log"), 64 << 20)?;
    let (mut ours, mut raw, mut file) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (block, chunk) in entries[..n_sync].chunks(50).enumerate() {
        let t = Instant::now();
        for e in chunk {
            store.append_audit(vec![e.clone()]).await?;
            store.sync().await?;
        }
        ours += t.elapsed();
        let t = Instant::now();
        for (i, e) in chunk.iter().enumerate() {
            raw_db.apply([(((block * 50 + i) as u64).to_be_bytes().to_vec(), e.to_bytes())])?;
            raw_db.durable().await?;
        }
        raw += t.elapsed();
        let t = Instant::now();
        for e in chunk {
            floor.append(&e.to_bytes())?;
        }
        file += t.elapsed();
    }
    let per_durable = ours / n_sync as u32;
    let raw_durable = raw / n_sync as u32;
    let file_durable = file / n_sync as u32;
    store.close().await?;
    drop(raw_db);
    rows.push(Row {
        what: "audit append, one entry per transaction, not flushed".into(),
        ours: format!("{unflushed:.0} appends/s"),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    rows.push(Row {
        what: "audit append made durable (flush each), concurrency 1".into(),
        ours: us(per_durable),
        baseline: format!("{} raw sled+flush", us(raw_durable)),
        ratio: format!("{:.2}x", per_durable.as_secs_f64() / raw_durable.as_secs_f64()),
    });
    rows.push(Row {
        what: "audit append made durable, vs the floor: pwrite + fdatasync, preallocated file".into(),
        ours: us(per_durable),
        baseline: format!("{} pwrite+fdatasync", us(file_durable)),
        ratio: format!("{:.2}x", per_durable.as_secs_f64() / file_durable.as_secs_f64()),
    });

    // Verification of a large log over gRPC, against hashing the same entries in memory.
    let dir = fed.root.join("data").join("loader");
    let _ = std::fs::remove_dir_all(&dir);
    let store = open_sled(&dir, 256 << 20).await?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..sizes.audit_verify {
        batch.push(sample_entry(i));
        if batch.len() == 10_000 {
            store.append_audit(std::mem::take(&mut batch)).await?;
        }
    }
    store.append_audit(batch).await?;
    store.close().await?;
    let t = Instant::now();
    let mut root = bureau::audit::merkle::StreamingRoot::default();
    for i in 0..sizes.audit_verify {
        root.push(&sample_entry(i).to_bytes());
    }
    let hashing = t.elapsed();
    let node = bureau::server::start(fed.node_config("loader", &[])).await?;
    let mut reg = fed.client(Role::Regulator, "pbc", node.addr);
    reg.expect = None;
    let state = fed.root.join("regulator-state");
    let t = Instant::now();
    let log = regulator::verify(reg.channel()?, &KeySource::PkiDir(fed.pki.0.clone()), &state).await?;
    let verify = t.elapsed();
    anyhow::ensure!(log.problems.is_empty(), "bench log does not verify: {:?}", log.problems);
    node.shutdown().await?;
    rows.push(Row {
        what: format!("audit verify of a {}-entry log over gRPC (fetch, parse, hash)", sizes.audit_verify),
        ours: format!("{:.2} s", verify.as_secs_f64()),
        baseline: format!("{:.2} s hash only", hashing.as_secs_f64()),
        ratio: format!("{:.1}x", verify.as_secs_f64() / hashing.as_secs_f64()),
    });
    Ok(())
}

fn scoring_alone(n: usize, rows: &mut Vec<Row>) {
    let model = Model::embedded_default();
    let mut by_subject: std::collections::BTreeMap<String, Vec<CreditRecord>> = Default::default();
    for r in records(n / 3, &["a", "b", "c"]) {
        by_subject.entry(r.subject_id.clone()).or_default().push(r);
    }
    let subjects: Vec<Vec<CreditRecord>> = by_subject.into_values().collect();
    let today = Utc::now().date_naive();
    let t = Instant::now();
    let mut checksum = 0i64;
    let mut scored = 0usize;
    while t.elapsed() < Duration::from_secs(2) {
        for s in &subjects {
            checksum += model.score(s, &[], today).score as i64;
        }
        scored += subjects.len();
    }
    let rate = scored as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("scorecard alone, in memory ({} subjects, checksum {})", subjects.len(), checksum % 1000),
        ours: format!("{:.0} scores/s", rate),
        baseline: "-".into(),
        ratio: "-".into(),
    });
}

/// A node running as its own `bureau serve` process, as each institution runs it: separate
/// processes share no allocator, runtime or sled-internal locks, only the machine.
struct NodeProcess {
    addr: std::net::SocketAddr,
    child: std::process::Child,
}

impl NodeProcess {
    /// The process's peak resident set (VmHWM), KiB.
    fn peak_rss_kib(&self) -> u64 {
        vm_hwm_kib(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the scoring node and three peers as child processes, each holding a share of
/// `subjects` subjects' records (loaded straight into their stores before start, to keep setup
/// fast). Returns the nodes (scorer first) and sample subject ids.
async fn federation(
    fed: &LocalFederation,
    subjects: usize,
    tag: &str,
    pg: Option<&TestPostgres>,
) -> Result<(Vec<NodeProcess>, Vec<String>)> {
    let insts = ["scorer", "peer-a", "peer-b", "peer-c"];
    let root = fed.root.join(format!("fed-{tag}"));
    std::fs::create_dir_all(&root)?;
    let mut sample = Vec::new();
    // On PostgreSQL, a database per institution on the one server.
    let mut urls = Vec::new();
    if let Some(pg) = pg {
        for _ in insts {
            urls.push(pg.fresh_database()?);
        }
    }
    {
        let mut stores = Vec::new();
        for (i, inst) in insts.iter().enumerate() {
            stores.push(match urls.get(i) {
                Some(url) => open_postgres(url).await?,
                None => open_sled(&root.join(inst), 256 << 20).await?,
            });
        }
        let mut batch: Vec<Vec<CreditRecord>> = vec![Vec::new(); insts.len()];
        for r in records(subjects, &insts) {
            if sample.len() < 10_000 && sample.last() != Some(&r.subject_id) {
                sample.push(r.subject_id.clone());
            }
            let i = insts.iter().position(|x| *x == r.furnisher).context("furnisher")?;
            batch[i].push(r);
            if batch[i].len() == 5_000 {
                stores[i].furnish(std::mem::take(&mut batch[i]), Utc::now()).await?;
            }
        }
        for (i, b) in batch.into_iter().enumerate() {
            stores[i].furnish(b, Utc::now()).await?;
        }
        for s in stores {
            s.close().await?;
        }
    }
    // Free ports: bound, noted, released just before the nodes take them.
    let mut addrs = Vec::new();
    for _ in insts {
        addrs.push(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?);
    }
    let exe = std::env::current_exe()?;
    let mut nodes = Vec::new();
    for (i, inst) in insts.iter().enumerate() {
        let peers: Vec<(&str, std::net::SocketAddr)> =
            insts.iter().copied().zip(addrs.iter().copied()).filter(|(p, _)| p != inst).collect();
        let mut cfg = fed.node_config(inst, &peers);
        cfg.node.listen = addrs[i];
        cfg.node.data_dir = root.join(inst);
        cfg.store.cache_capacity_bytes = 256 << 20;
        if let Some(url) = urls.get(i) {
            cfg.store.backend = Backend::Postgres;
            cfg.store.postgres = Some(PostgresSection {
                url: url.clone(),
                pool_size: 16,
                statement_timeout_ms: 5_000,
                connect_timeout_ms: 2_000,
            });
        }
        let path = root.join(format!("{inst}.toml"));
        std::fs::write(&path, toml::to_string(&cfg)?)?;
        let log = std::fs::File::create(root.join(format!("{inst}.log")))?;
        let child = std::process::Command::new(&exe)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {inst}'s node"))?;
        nodes.push(NodeProcess { addr: addrs[i], child });
    }
    for n in &nodes {
        wait_ready(fed, n.addr).await?;
    }
    Ok((nodes, sample))
}

/// Waits until the node at `addr` answers a health check (20 s at most).
async fn wait_ready(fed: &LocalFederation, addr: std::net::SocketAddr) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mut h = HealthClient::new(fed.client(Role::Application, "scorer", addr).channel()?);
        if h.check(HealthCheckRequest { service: String::new() }).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < until, "node at {addr} did not come up within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn score_req(s: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest {
        subject_id: s.to_owned(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    }
}

async fn latency<F, Fut>(calls: usize, mut f: F) -> Result<Percentiles>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for i in 0..calls / 10 {
        f(i).await?; // warm-up: connections, caches
    }
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let t = Instant::now();
        f(i).await?;
        samples.push(t.elapsed());
    }
    Ok(percentiles(&mut samples))
}

async fn throughput<F, Fut>(concurrency: usize, secs: u64, f: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let f = Arc::new(f);
    let until = Instant::now() + Duration::from_secs(secs);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < until {
                f(w * 1_000_003 + n).await?;
                n += 1;
            }
            Ok::<usize, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

async fn federated(fed: &LocalFederation, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let (nodes, sample) = federation(fed, sizes.score_subjects, "main", None).await?;
    let scorer = &nodes[0];
    let ch: Channel = fed.client(Role::Application, "scorer", scorer.addr).channel()?;
    let health = HealthClient::new(ch.clone());
    let scoring = ScoringServiceClient::new(ch);

    let echo = {
        let h = health.clone();
        latency(sizes.latency_calls, move |_| {
            let mut h = h.clone();
            async move {
                h.check(HealthCheckRequest { service: String::new() }).await?;
                Ok(())
            }
        })
        .await?
    };
    let ours = {
        let (s, sample) = (scoring.clone(), sample.clone());
        latency(sizes.latency_calls, move |i| {
            let mut s = s.clone();
            let subject = sample[i % sample.len()].clone();
            async move {
                let score = s.get_score(score_req(&subject)).await?.into_inner();
                anyhow::ensure!(!score.partial, "partial score in benchmark: {:?}", score.coverage);
                Ok(())
            }
        })
        .await?
    };
    // Diagnostic: one peer leg alone (the scorer's certificate asking peer-a directly), to split
    // a score's latency into the peer round trip and the scoring node's own work.
    let peer_leg = {
        let fc = FederationServiceClient::new(fed.client(Role::Node, "scorer", nodes[1].addr).channel()?);
        let sample = sample.clone();
        latency(sizes.latency_calls, move |i| {
            let mut fc = fc.clone();
            let req = pb::QueryRecordsRequest {
                subject_id: sample[i % sample.len()].clone(),
                purpose: pb::Purpose::AccountReview as i32,
                consent_reference: String::new(),
                query_id: uuid::Uuid::new_v4().to_string(),
            };
            async move {
                fc.query_records(req).await?;
                Ok(())
            }
        })
        .await?
    };
    rows.push(Row {
        what: "one peer query alone (inquiry logged durably), p50, concurrency 1".into(),
        ours: us(peer_leg.p50),
        baseline: format!("{} echo", us(echo.p50)),
        ratio: format!("{:.2}x", peer_leg.p50.as_secs_f64() / echo.p50.as_secs_f64()),
    });
    for (name, o, e) in [("p50", ours.p50, echo.p50), ("p99", ours.p99, echo.p99), ("p99.9", ours.p999, echo.p999)] {
        rows.push(Row {
            what: format!("federated score latency {name}, concurrency 1, 3 peers"),
            ours: us(o),
            baseline: format!("{} echo", us(e)),
            ratio: format!("{:.2}x", o.as_secs_f64() / e.as_secs_f64()),
        });
    }

    let echo_tp = {
        let h = health.clone();
        throughput(64, sizes.throughput_secs, move |_| {
            let mut h = h.clone();
            async move {
                h.check(HealthCheckRequest { service: String::new() }).await?;
                Ok(())
            }
        })
        .await?
    };
    let ours_tp = {
        let (s, sample) = (scoring.clone(), Arc::new(sample.clone()));
        throughput(64, sizes.throughput_secs, move |i| {
            let mut s = s.clone();
            let subject = sample[i % sample.len()].clone();
            async move {
                s.get_score(score_req(&subject)).await?;
                Ok(())
            }
        })
        .await?
    };
    rows.push(Row {
        what: "federated score throughput, concurrency 64".into(),
        ours: format!("{:.0} scores/s", ours_tp),
        baseline: format!("{:.0} echo/s", echo_tp),
        ratio: format!("{:.0} %", 100.0 * ours_tp / echo_tp),
    });
    rows.push(Row {
        what: format!("peak RSS of the scoring node ({} subjects, after the score load)", sizes.score_subjects),
        ours: format!("{} MiB", scorer.peak_rss_kib() / 1024),
        baseline: format!(
            "{} MiB largest peer",
            nodes[1..].iter().map(NodeProcess::peak_rss_kib).max().unwrap_or(0) / 1024
        ),
        ratio: "-".into(),
    });
    drop(nodes);

    // The largest size is the main federation measured above; smaller ones get their own.
    let mut growth = vec![(sizes.score_subjects, ours)];
    for &n in sizes.growth {
        let (nodes, sample) = federation(fed, n, &format!("g{n}"), None).await?;
        let s = ScoringServiceClient::new(fed.client(Role::Application, "scorer", nodes[0].addr).channel()?);
        let p = latency(sizes.latency_calls.min(1000), move |i| {
            let mut s = s.clone();
            let subject = sample[i % sample.len()].clone();
            async move {
                s.get_score(score_req(&subject)).await?;
                Ok(())
            }
        })
        .await?;
        growth.push((n, p));
        drop(nodes);
    }
    growth.sort_by_key(|(n, _)| *n);
    let (_, smallest) = growth[0];
    for (n, p) in growth {
        rows.push(Row {
            what: format!("growth: score latency p50 / p99 at {n} subjects"),
            ours: format!("{} / {}", us(p.p50), us(p.p99)),
            baseline: format!("{} p50 at smallest", us(smallest.p50)),
            ratio: format!("{:.2}x", p.p50.as_secs_f64() / smallest.p50.as_secs_f64()),
        });
    }
    Ok(())
}

/// The PostgreSQL backend on a server of its own (started here, as the tests do): furnishing
/// against raw batched INSERTs of the same rows, durable appends against a single INSERT +
/// COMMIT, both through tokio-postgres; then score latency and throughput with every node on
/// PostgreSQL against the same federation on sled, same size, same run.
async fn postgres(fed: &LocalFederation, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    const BATCH: usize = 1000;
    let pg = TestPostgres::start()?;
    let recs: Vec<pb::CreditRecord> = records(sizes.pg_records, &["loader"])
        .take(sizes.pg_records)
        .map(|r| convert::record_to_pb(&r, Utc::now()))
        .collect();

    // Baseline: the same rows, 1000 per transaction, one INSERT ... SELECT unnest each.
    let raw_url = pg.fresh_database()?;
    let (mut raw, conn) = tokio_postgres::connect(&raw_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    raw.batch_execute(
        "CREATE TABLE raw_records (furnisher text COLLATE \"C\", record_id text COLLATE \"C\", \
         subject_id text COLLATE \"C\", version bigint, live boolean, body bytea, updated_micros bigint, \
         PRIMARY KEY (furnisher, record_id)); \
         CREATE INDEX ON raw_records (subject_id, furnisher, record_id) WHERE live; \
         CREATE TABLE raw_log (idx bigint PRIMARY KEY, leaf bytea)",
    )
    .await?;
    let t = Instant::now();
    for chunk in recs.chunks(BATCH) {
        let fu: Vec<&str> = chunk.iter().map(|_| "loader").collect();
        let id: Vec<&str> = chunk.iter().map(|r| r.record_id.as_str()).collect();
        let su: Vec<&str> = chunk.iter().map(|r| r.subject_id.as_str()).collect();
        let ve: Vec<i64> = chunk.iter().map(|r| r.version as i64).collect();
        let li: Vec<bool> = chunk.iter().map(|_| true).collect();
        let bo: Vec<Vec<u8>> = chunk.iter().map(|r| r.encode_to_vec()).collect();
        let up: Vec<i64> = chunk.iter().map(|_| Utc::now().timestamp_micros()).collect();
        let tx = raw.transaction().await?;
        tx.execute(
            "INSERT INTO raw_records SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], \
             $5::bool[], $6::bytea[], $7::bigint[])",
            &[&fu, &id, &su, &ve, &li, &bo, &up],
        )
        .await?;
        tx.commit().await?;
    }
    let raw_rate = recs.len() as f64 / t.elapsed().as_secs_f64();

    let mut cfg = fed.node_config("loader", &[]);
    cfg.store.backend = Backend::Postgres;
    cfg.store.postgres = Some(PostgresSection {
        url: pg.fresh_database()?,
        pool_size: 16,
        statement_timeout_ms: 5_000,
        connect_timeout_ms: 2_000,
    });
    let node = bureau::server::start(cfg).await?;
    let mut c = RecordsServiceClient::new(fed.client(Role::Application, "loader", node.addr).channel()?)
        .max_encoding_message_size(64 << 20);
    let batches: Vec<pb::FurnishRecordsRequest> =
        recs.chunks(BATCH).map(|c| pb::FurnishRecordsRequest { records: c.to_vec() }).collect();
    let t = Instant::now();
    let resp = c.stream_furnish_records(tokio_stream::iter(batches)).await?.into_inner();
    let ours = recs.len() as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(resp.accepted_count as usize == recs.len(), "accepted {} of {}", resp.accepted_count, recs.len());
    node.shutdown().await?;
    rows.push(Row {
        what: format!("postgres: furnish {} records, committed (streamed, batches of {BATCH})", recs.len()),
        ours: format!("{ours:.0} rec/s"),
        baseline: format!("{raw_rate:.0} rec/s raw INSERT"),
        ratio: format!("{:.0} %", 100.0 * ours / raw_rate),
    });

    // Durable appends, one entry per transaction, interleaved in blocks with the baseline.
    let store = open_postgres(&pg.fresh_database()?).await?;
    let n = (sizes.audit_appends / 10).max(200);
    let entries: Vec<_> = (0..n as u64).map(sample_entry).collect();
    let (mut ours, mut raw_t) = (Duration::ZERO, Duration::ZERO);
    let insert = raw.prepare("INSERT INTO raw_log (idx, leaf) VALUES ($1, $2)").await?;
    for (block, chunk) in entries.chunks(50).enumerate() {
        let t = Instant::now();
        for e in chunk {
            store.append_audit(vec![e.clone()]).await?;
        }
        ours += t.elapsed();
        let t = Instant::now();
        for (i, e) in chunk.iter().enumerate() {
            raw.execute(&insert, &[&((block * 50 + i) as i64), &e.to_bytes()]).await?;
        }
        raw_t += t.elapsed();
    }
    store.close().await?;
    let (per, per_raw) = (ours / n as u32, raw_t / n as u32);
    rows.push(Row {
        what: "postgres: audit append, committed, concurrency 1".into(),
        ours: us(per),
        baseline: format!("{} INSERT+COMMIT", us(per_raw)),
        ratio: format!("{:.2}x", per.as_secs_f64() / per_raw.as_secs_f64()),
    });

    // Scores: the same federation size on sled and on PostgreSQL.
    let mut p50 = Vec::new();
    for (tag, on) in [("sled", None), ("postgres", Some(&pg))] {
        let (nodes, sample) = federation(fed, sizes.pg_subjects, &format!("pg-cmp-{tag}"), on).await?;
        let s = ScoringServiceClient::new(fed.client(Role::Application, "scorer", nodes[0].addr).channel()?);
        let lat = {
            let (s, sample) = (s.clone(), sample.clone());
            latency(sizes.latency_calls.min(1000), move |i| {
                let mut s = s.clone();
                let subject = sample[i % sample.len()].clone();
                async move {
                    let score = s.get_score(score_req(&subject)).await?.into_inner();
                    anyhow::ensure!(!score.partial, "partial score in benchmark: {:?}", score.coverage);
                    Ok(())
                }
            })
            .await?
        };
        let sample_peer = sample.clone();
        let tp = {
            let sample = Arc::new(sample);
            throughput(64, sizes.throughput_secs, move |i| {
                let mut s = s.clone();
                let subject = sample[i % sample.len()].clone();
                async move {
                    s.get_score(score_req(&subject)).await?;
                    Ok(())
                }
            })
            .await?
        };
        let peer = {
            let fc = FederationServiceClient::new(fed.client(Role::Node, "scorer", nodes[1].addr).channel()?);
            let sample = sample_peer;
            latency(sizes.latency_calls.min(1000), move |i| {
                let mut fc = fc.clone();
                let req = pb::QueryRecordsRequest {
                    subject_id: sample[i % sample.len()].clone(),
                    purpose: pb::Purpose::AccountReview as i32,
                    consent_reference: String::new(),
                    query_id: uuid::Uuid::new_v4().to_string(),
                };
                async move {
                    fc.query_records(req).await?;
                    Ok(())
                }
            })
            .await?
        };
        p50.push((tag, lat, tp, peer));
        drop(nodes);
    }
    let (_, sled, sled_tp, sled_peer) = p50[0];
    let (_, on_pg, pg_tp, pg_peer) = p50[1];
    rows.push(Row {
        what: "postgres: one peer query alone (inquiry committed), p50".into(),
        ours: us(pg_peer.p50),
        baseline: format!("{} on sled", us(sled_peer.p50)),
        ratio: format!("{:.2}x", pg_peer.p50.as_secs_f64() / sled_peer.p50.as_secs_f64()),
    });
    for (name, o, b) in [("p50", on_pg.p50, sled.p50), ("p99", on_pg.p99, sled.p99)] {
        rows.push(Row {
            what: format!("postgres: federated score {name}, {} subjects, all 4 nodes on it", sizes.pg_subjects),
            ours: us(o),
            baseline: format!("{} on sled", us(b)),
            ratio: format!("{:.2}x", o.as_secs_f64() / b.as_secs_f64()),
        });
    }
    rows.push(Row {
        what: "postgres: federated score throughput, concurrency 64".into(),
        ours: format!("{pg_tp:.0} scores/s"),
        baseline: format!("{sled_tp:.0}/s on sled"),
        ratio: format!("{:.0} %", 100.0 * pg_tp / sled_tp),
    });
    Ok(())
}
