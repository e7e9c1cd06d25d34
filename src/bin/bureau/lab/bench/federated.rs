//! The federated parts of the bench: a scoring node and three peers, each its own `bureau serve`
//! process (as each institution runs it: no shared allocator, runtime or store locks, only the
//! machine), loaded straight into their stores before they start.

use std::time::{Duration, Instant};

use crate::lab::percentiles;
use anyhow::{Context, Result};
use chrono::Utc;
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use super::{
    latency_samples, peer_query_latency, pg_section, records, score_latency, score_samples, score_throughput,
    throughput, us, Row, Sizes,
};
use bureau::{
    config::Backend,
    pb::bureau::v1::scoring_service_client::ScoringServiceClient,
    testkit::local::LocalFederation,
    testkit::postgres::TestPostgres,
    testkit::process::NodeProcess,
    testkit::store::{open_postgres, open_sled},
    CreditRecord, Role,
};

/// The log filter of the nodes: quiet (no line per score or peer query), but for the line
/// saying each listens.
const QUIET: &str = "warn,bureau::server=info";

/// Starts the scoring node and three peers as child processes, each holding a share of
/// `subjects` subjects' records (loaded straight into their stores before start, to keep setup
/// fast). Returns the nodes (scorer first) and sample subject ids.
pub(super) async fn federation(
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
    let mut starting = Vec::new();
    for (i, inst) in insts.iter().enumerate() {
        let peers: Vec<(&str, std::net::SocketAddr)> =
            insts.iter().copied().zip(addrs.iter().copied()).filter(|(p, _)| p != inst).collect();
        let mut cfg = fed.node_config(inst, &peers);
        cfg.node.listen = addrs[i];
        cfg.node.data_dir = root.join(inst);
        cfg.store.cache_capacity_bytes = 256 << 20;
        if let Some(url) = urls.get(i) {
            cfg.store.backend = Backend::Postgres;
            cfg.store.postgres = Some(pg_section(url.clone()));
        }
        let path = root.join(format!("{inst}.toml"));
        std::fs::write(&path, toml::to_string(&cfg)?)?;
        let exe = exe.clone();
        // Started together, each awaited until it listens.
        starting.push(tokio::task::spawn_blocking(move || NodeProcess::spawn(&exe, &path, Some(QUIET))));
    }
    let mut nodes = Vec::new();
    for (start, inst) in starting.into_iter().zip(insts) {
        nodes.push(start.await?.with_context(|| format!("starting {inst}'s node"))?);
    }
    for n in &nodes {
        wait_ready(fed, "scorer", n.addr).await?;
    }
    Ok((nodes, sample))
}

/// Waits until the node at `addr` answers a health check asked as `app`'s application (20 s at
/// most).
pub(super) async fn wait_ready(fed: &LocalFederation, app: &str, addr: std::net::SocketAddr) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mut h = HealthClient::new(fed.client(Role::Application, app, addr).channel()?);
        if h.check(HealthCheckRequest { service: String::new() }).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < until, "node at {addr} did not come up within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Federated score latency (against an echo), throughput, the nodes' memory, and latency as
/// the federation grows.
pub(super) async fn federated(
    fed: &LocalFederation,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
    charts: &mut super::charts::Charts,
) -> Result<()> {
    let (nodes, sample) = federation(fed, sizes.score_subjects, "main", None).await?;
    let scorer = &nodes[0];
    let ch: Channel = fed.client(Role::Application, "scorer", scorer.addr).channel()?;
    let health = HealthClient::new(ch.clone());
    let scoring = ScoringServiceClient::new(ch);

    charts.echo = {
        let h = health.clone();
        latency_samples(sizes.latency_calls, move |_| {
            let mut h = h.clone();
            async move {
                h.check(HealthCheckRequest { service: String::new() }).await?;
                Ok(())
            }
        })
        .await?
    };
    charts.score = score_samples(&scoring, &sample, sizes.latency_calls, true).await?;
    let (echo, ours) = (percentiles(&mut charts.echo), percentiles(&mut charts.score));
    // Diagnostic: one peer leg alone, to split a score's latency into the peer round trip and
    // the scoring node's own work.
    let peer_leg = peer_query_latency(fed, nodes[1].addr, &sample, sizes.latency_calls).await?;
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
    let ours_tp = score_throughput(&scoring, &sample, sizes.throughput_secs).await?;
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
        let p = score_latency(&s, &sample, sizes.latency_calls.min(1000), false).await?;
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
