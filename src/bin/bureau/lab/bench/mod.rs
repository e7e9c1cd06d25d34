//! `bureau bench`: measures bureau against baselines taken in the same run on the same machine,
//! and prints ratios. Baselines: a plain tonic unary call (the gRPC health `Check`, an echo in
//! all but name) over the same mTLS stack, and raw sled batch inserts of the same encoded
//! records with the same durability (one flush and `fdatasync` per batch).

mod asks;
mod charts;
mod federated;
mod growth;
mod growth_tables;
mod locator;
mod postgres;
mod probes;
mod store;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Result;
use chrono::Utc;
use tonic::transport::Channel;

use crate::lab::{percentiles, Percentiles};
use bureau::{
    config::PostgresSection,
    pb::bureau::v1::{
        self as pb, federation_service_client::FederationServiceClient, scoring_service_client::ScoringServiceClient,
    },
    testkit::gen::{self, GenConfig},
    testkit::local::LocalFederation,
    testkit::process::proc_status,
    CreditRecord, Role,
};

/// How big a run is and what it covers.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Smoke run: small sizes, a minute at most.
    pub quick: bool,
    /// Only these parts; all when empty.
    pub only: Vec<Part>,
    /// People registered with the locator part (each held by 2 or 3 members).
    pub people: u64,
    /// The stores the locator part measures; both when empty.
    pub locator_backends: Vec<LocatorBackend>,
    /// The federation sizes of the growth part; its default sizes when empty.
    pub members: Vec<usize>,
    /// The growth part's nodes skip `fdatasync` (a diagnosis, see the flag).
    pub no_fsync: bool,
    /// Where the SVG charts go.
    pub charts: std::path::PathBuf,
}

pub use locator::LocatorBackend;

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
    /// What one score costs as the federation grows from 3 to 48 member processes, with the
    /// record locator and without; run only when named (`--only federation`): it starts
    /// hundreds of processes.
    Federation,
    /// The record locator's store at the anchor's scale: load, bytes per registration, lookups.
    Locator,
}

/// How much each part does.
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

/// A duration in whole microseconds.
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
    let mut charts = charts::Charts::default();

    let runs = |p: Part| (opts.only.is_empty() && p != Part::Federation) || opts.only.contains(&p);
    let parts =
        [Part::Furnish, Part::Scoring, Part::Audit, Part::Score, Part::Postgres, Part::Federation, Part::Locator];
    let progress = crate::cli::output::bar(Some(parts.iter().filter(|p| runs(**p)).count() as u64), "parts");
    // On a terminal a bar says which part runs; in a log, one line per part.
    let step = |what: String| {
        if progress.is_hidden() {
            eprintln!("{what}");
        } else {
            progress.set_message(what);
        }
    };

    if runs(Part::Furnish) {
        step(format!("furnishing throughput ({} records)", sizes.furnish_records));
        store::furnish_throughput(&fed, sizes.furnish_records, &mut rows).await?;
        progress.inc(1);
    }
    if runs(Part::Scoring) {
        step(format!("scoring alone ({} records)", sizes.scoring_records));
        store::scoring_alone(sizes.scoring_records, &mut rows);
        progress.inc(1);
    }
    if runs(Part::Audit) {
        step("audit appends and verification".into());
        store::audit(&fed, &sizes, &mut rows).await?;
        progress.inc(1);
    }
    if runs(Part::Score) {
        step("federated score latency and throughput".into());
        federated::federated(&fed, &sizes, &mut rows, &mut charts).await?;
        progress.inc(1);
    }
    if runs(Part::Postgres) {
        step(format!("PostgreSQL backend ({} records, {} subjects)", sizes.pg_records, sizes.pg_subjects));
        postgres::postgres(&fed, &sizes, &mut rows).await?;
        progress.inc(1);
    }
    if runs(Part::Federation) {
        step("a federation that grows (member processes, a locator)".into());
        charts.growth = growth::growth(opts.quick, &opts.members, !opts.no_fsync).await?;
        progress.inc(1);
    }
    if runs(Part::Locator) {
        let people = if opts.quick { opts.people.min(20_000) } else { opts.people };
        let backends = if opts.locator_backends.is_empty() {
            vec![LocatorBackend::Sled, LocatorBackend::Postgres]
        } else {
            opts.locator_backends.clone()
        };
        step(format!("record locator store ({people} people, {backends:?})"));
        locator::locator(&fed.root, people, &backends, sizes.throughput_secs * 2, &mut rows).await?;
        progress.inc(1);
    }
    rows.push(Row {
        what: "peak RSS of the bench process itself (loaders, clients, in-process parts)".into(),
        ours: format!("{} MiB", proc_status(std::process::id(), "VmHWM") / 1024),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    progress.finish_and_clear();
    eprintln!("done in {:.1?}", started.elapsed());
    let pictures = charts::write(&opts.charts, &charts)?;
    for p in &pictures {
        eprintln!("chart written: {}", p.display());
    }

    let value = serde_json::json!({
        "quick": opts.quick,
        "charts": pictures,
        "rows": rows.iter().map(|r| serde_json::json!({
            "benchmark": r.what, "bureau": r.ours, "baseline": r.baseline, "ratio": r.ratio,
        })).collect::<Vec<_>>(),
    });
    crate::cli::output::emit(value, || {
        println!("\n{:<58} {:>22} {:>22} {:>10}", "benchmark", "bureau", "baseline", "ratio");
        for r in &rows {
            println!("{:<58} {:>22} {:>22} {:>10}", r.what, r.ours, r.baseline, r.ratio);
        }
    });
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

/// A score request for subject `s`, as an account review.
fn score_req(s: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest {
        subject_id: s.to_owned(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    }
}

/// Percentiles of `calls` sequential calls of `f` (after a tenth as many to warm up).
async fn latency<F, Fut>(calls: usize, f: F) -> Result<Percentiles>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    Ok(percentiles(&mut latency_samples(calls, f).await?))
}

/// The latencies, sorted, of `calls` sequential calls of `f` (after a tenth as many to warm up).
async fn latency_samples<F, Fut>(calls: usize, mut f: F) -> Result<Vec<Duration>>
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
    samples.sort_unstable();
    Ok(samples)
}

/// Calls per second of `f` run by `concurrency` tasks for `secs` seconds.
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

/// Federated score latency through `scoring`, cycling over `sample`; with `whole`, a partial
/// score (a peer that did not answer) fails the run.
async fn score_latency(
    scoring: &ScoringServiceClient<Channel>,
    sample: &[String],
    calls: usize,
    whole: bool,
) -> Result<Percentiles> {
    Ok(percentiles(&mut score_samples(scoring, sample, calls, whole).await?))
}

/// The sorted latencies of [`score_latency`].
async fn score_samples(
    scoring: &ScoringServiceClient<Channel>,
    sample: &[String],
    calls: usize,
    whole: bool,
) -> Result<Vec<Duration>> {
    let (s, sample) = (scoring.clone(), sample.to_vec());
    latency_samples(calls, move |i| {
        let mut s = s.clone();
        let subject = sample[i % sample.len()].clone();
        async move {
            let score = s.get_score(score_req(&subject)).await?.into_inner();
            anyhow::ensure!(!whole || !score.partial, "partial score in benchmark: {:?}", score.coverage);
            Ok(())
        }
    })
    .await
}

/// Federated scores per second through `scoring` at concurrency 64, cycling over `sample`.
async fn score_throughput(scoring: &ScoringServiceClient<Channel>, sample: &[String], secs: u64) -> Result<f64> {
    let (s, sample) = (scoring.clone(), Arc::new(sample.to_vec()));
    throughput(64, secs, move |i| {
        let mut s = s.clone();
        let subject = sample[i % sample.len()].clone();
        async move {
            s.get_score(score_req(&subject)).await?;
            Ok(())
        }
    })
    .await
}

/// One peer leg alone: the scorer's node certificate asking the peer at `peer` directly, to
/// split a score's latency into the peer round trip and the scoring node's own work.
async fn peer_query_latency(
    fed: &LocalFederation,
    peer: std::net::SocketAddr,
    sample: &[String],
    calls: usize,
) -> Result<Percentiles> {
    let fc = FederationServiceClient::new(fed.client(Role::Node, "scorer", peer).channel()?);
    let sample = sample.to_vec();
    latency(calls, move |i| {
        let mut fc = fc.clone();
        let req = pb::QueryRecordsRequest {
            subject_id: sample[i % sample.len()].clone(),
            purpose: pb::Purpose::AccountReview as i32,
            consent_reference: String::new(),
            query_id: uuid::Uuid::new_v4().to_string(),
            records_only: false,
        };
        async move {
            fc.query_records(req).await?;
            Ok(())
        }
    })
    .await
}

/// A node's PostgreSQL store at `url`, as the benchmarks run it: a pool of 16, a 5 s statement
/// timeout.
fn pg_section(url: String) -> PostgresSection {
    PostgresSection { url, pool_size: 16, statement_timeout_ms: 5_000, connect_timeout_ms: 2_000, tls_ca: None }
}
