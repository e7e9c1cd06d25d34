//! `bench --only federation`: what one score costs as the federation grows. For each size, that
//! many members and one record locator run as real `bureau serve` processes following a signed
//! directory; people's records sit at exactly two members each; scores made at one member are
//! measured for latency, throughput, and per score: CPU summed over every node process, bytes
//! on the wire (`bureau_grpc_bytes_total`, scraped from each node) and audit entries (every
//! node's log size, read as a regulator). The same processes are then switched to a directory
//! without a locator (every member asked, as before the locator) and measured again.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use tonic::transport::Channel;

use super::{
    asks::Asks,
    federated::wait_ready,
    growth_tables::{Extras, Figures, Size, EXTRAS_AT},
    latency,
    probes::{cpu_split, cpu_ticks, grpc_bytes, log_entries, print_threads, threads, Fleet, Node, USER_HZ},
    score_req, throughput,
};
use crate::lab::Percentiles;
use bureau::{
    config::NodeConfig,
    pb::bureau::v1::{
        self as pb, records_service_client::RecordsServiceClient, scoring_service_client::ScoringServiceClient,
    },
    pki,
    testkit::{local::LocalFederation, process::NodeProcess},
    Role,
};

/// The log filter of the nodes: warnings, and the line saying each listens.
const QUIET: &str = "warn,bureau::server=info";
/// The largest federation; institutions are `m00` … `m47`.
const MOST: usize = 48;
/// Concurrent callers of the throughput run.
const CALLERS: usize = 16;
/// More scores a second than any throughput run here makes (about 2,100 at most).
const MOST_PER_SEC: usize = 3_000;

/// How much the growth part does.
struct Scale {
    members: &'static [usize],
    people: usize,
    calls: usize,
    secs: u64,
    hung_calls: usize,
    /// Whether the nodes sync their stores (`--no-fsync` clears it).
    fsync: bool,
}

const FULL: Scale =
    Scale { members: &[3, 8, 16, 32, 48], people: 300, calls: 300, secs: 5, hung_calls: 20, fsync: true };
const QUICK: Scale =
    Scale { members: &[3, 8, 16, 32, 48], people: 100, calls: 100, secs: 2, hung_calls: 5, fsync: true };

/// Runs the growth part and prints its tables; returns the points of its charts.
pub(super) async fn growth(quick: bool, members: &[usize], fsync: bool) -> Result<Vec<super::charts::GrowthPoint>> {
    let scale = Scale { fsync, ..if quick { QUICK } else { FULL } };
    if !fsync {
        eprintln!("  --no-fsync: the nodes skip fdatasync; these figures are a diagnosis, not bureau as shipped");
    }
    let sizes_asked = if members.is_empty() { scale.members } else { members };
    let tmp = tempfile::tempdir()?;
    let mut ids: Vec<String> = (0..MOST).map(|i| format!("m{i:02}")).collect();
    ids.push("locator".into());
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let fed = LocalFederation::create(tmp.path(), "growth.test", &names, &["pbc"])?;
    let mut sizes = Vec::new();
    let mut extras = Extras::default();
    for &n in sizes_asked {
        let started = Instant::now();
        eprintln!("  federation of {n} members and a locator");
        sizes.push(one_size(&fed, n, &scale, &mut extras).await?);
        eprintln!("  … {n} members done in {:.0?}", started.elapsed());
        let _ = std::fs::remove_dir_all(tmp.path().join(format!("n{n}")));
    }
    super::growth_tables::print_tables(&sizes, &extras);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(sizes
        .iter()
        .map(|s| super::charts::GrowthPoint {
            n: s.n,
            cpu_ms: (s.located.cpu_ms, s.everyone.cpu_ms),
            bytes: (s.located.bytes, s.everyone.bytes),
            p50_ms: (ms(s.located.lat.p50), ms(s.everyone.lat.p50)),
        })
        .collect())
}

/// Starts `n` members and the locator, furnishes, measures with the locator and without.
async fn one_size(fed: &LocalFederation, n: usize, scale: &Scale, extras: &mut Extras) -> Result<Size> {
    let replica = n == EXTRAS_AT;
    let (fleet, members) = start(fed, n, replica, scale.fsync).await?;
    let people = spread_people(n, scale.people, b"growth-bench");
    let pair = pair_people(n, scale.people);
    // Spread like `people`, but others: their hard inquiries stay out of the rows before the
    // locator, where a peer's answer carries the inquiries it recorded.
    let applicants = spread_people(n, scale.people, b"growth-bench-waiver");
    furnish(fed, &fleet, n, &[&people[..], &pair[..], &applicants[..]].concat()).await?;
    let scorer =
        ScoringServiceClient::new(fed.client(Role::Application, "m00", fleet.nodes[0].process.addr).channel()?);
    let sample: Vec<String> = people.iter().map(|p| p.subject.clone()).collect();
    let pair: Vec<String> = pair.into_iter().map(|p| p.subject).collect();
    let applicants: Vec<String> = applicants.into_iter().map(|p| p.subject).collect();
    wait_located(&scorer, &sample).await?;
    wait_located(&scorer, &pair).await?;
    wait_located(&scorer, &applicants).await?;
    let located = measure(fed, &fleet, &scorer, &sample, scale, &Asks::Review).await?;
    let pair = measure(fed, &fleet, &scorer, &pair, scale, &Asks::Review).await?;
    let waivers = Asks::waivers(fed, &applicants, scale.calls * 2 + MOST_PER_SEC * scale.secs as usize)?;
    let hard = measure(fed, &fleet, &scorer, &applicants, scale, &waivers).await?;
    if replica {
        // (a) A member that holds nothing hangs: with the locator, nobody asks it.
        extras.unhung_p50 = located.lat.p50;
        fleet.signal(n - 1, "STOP")?;
        extras.idle_hung_p50 = latency_of(&scorer, &sample, scale.calls, true, &Asks::Review).await?.0.p50;
        fleet.signal(n - 1, "CONT")?;
        // (b) One of m01's two replicas hangs: the hedge to the other must keep the score whole.
        let held: Vec<String> = people.iter().filter(|p| p.holders.contains(&1)).map(|p| p.subject.clone()).collect();
        extras.holder_p99 = latency_of(&scorer, &held, scale.calls, true, &Asks::Review).await?.0.p99;
        fleet.signal(1, "STOP")?;
        let (hung, partial) = latency_of(&scorer, &held, scale.calls, false, &Asks::Review).await?;
        fleet.signal(1, "CONT")?;
        (extras.replica_hung_p99, extras.replica_hung_partial) = (hung.p99, partial);
        extras.calls_made = scale.calls + scale.calls / 10;
    }
    // Before the locator: the same processes, a directory that names none.
    publish(fed, &members, &[], replica.then(|| fleet.nodes[n + 1].process.addr))?;
    wait_route(&scorer, &sample[0], pb::ScoreRoute::Everyone).await?;
    let everyone = measure(fed, &fleet, &scorer, &sample, scale, &Asks::Review).await?;
    if replica {
        fleet.signal(n - 1, "STOP")?;
        let (hung, partial) = latency_of(&scorer, &sample, scale.hung_calls, false, &Asks::Review).await?;
        fleet.signal(n - 1, "CONT")?;
        (extras.everyone_idle_hung_p50, extras.everyone_idle_hung_partial) = (hung.p50, partial);
        extras.hung_calls_made = scale.hung_calls + scale.hung_calls / 10;
    }
    drop(fleet);
    Ok(Size { n, located, everyone, pair, hard })
}

/// `count` distinct free loopback ports: all held until all are chosen (a port released early
/// may be handed out again), then released for the nodes to take.
fn free_ports(count: usize) -> Result<Vec<SocketAddr>> {
    let held: Vec<std::net::TcpListener> =
        (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    Ok(held.iter().map(|l| l.local_addr()).collect::<Result<_, _>>()?)
}

/// Publishes a directory of `members` (and `m01`'s second replica at `replica`) and `locators`.
fn publish(
    fed: &LocalFederation,
    members: &[(String, SocketAddr)],
    locators: &[(&str, SocketAddr)],
    replica: Option<SocketAddr>,
) -> Result<()> {
    let named: Vec<(&str, SocketAddr)> = members.iter().map(|(id, a)| (id.as_str(), *a)).collect();
    fed.publish_directory(&named, locators)?;
    if let Some(second) = replica {
        pki::edit_directory(&fed.pki, &fed.federation, |d| {
            let m = d.members.iter_mut().find(|m| m.id == "m01").ok_or("no m01")?;
            m.addresses.push(second.to_string());
            Ok(())
        })?;
    }
    Ok(())
}

/// Starts `n` members, the locator and (with `replica`) a second `m01`, each its own process
/// with its own sled store; returns the fleet (members, locator, replica) and the members'
/// addresses.
async fn start(
    fed: &LocalFederation,
    n: usize,
    replica: bool,
    fsync: bool,
) -> Result<(Fleet, Vec<(String, SocketAddr)>)> {
    let mut plan: Vec<(String, bool, String)> =
        (0..n).map(|i| (format!("m{i:02}"), false, format!("m{i:02}"))).collect();
    plan.push(("locator".into(), true, "locator".into()));
    if replica {
        plan.push(("m01".into(), false, "m01-b".into()));
    }
    let free = free_ports(2 * plan.len())?;
    let ports: Vec<(SocketAddr, SocketAddr)> = free.chunks(2).map(|p| (p[0], p[1])).collect();
    let members: Vec<(String, SocketAddr)> = plan[..n].iter().zip(&ports).map(|(p, a)| (p.0.clone(), a.0)).collect();
    publish(fed, &members, &[("locator", ports[n].0)], replica.then(|| ports[n + 1].0))?;
    let root = fed.root.join(format!("n{n}"));
    std::fs::create_dir_all(&root)?;
    let exe = std::env::current_exe()?;
    let mut starting = Vec::new();
    for ((id, is_locator, dir), (addr, metrics)) in plan.iter().zip(&ports) {
        let mut cfg = config(fed, id, *is_locator, &root.join(dir), *addr, *metrics);
        cfg.store.fsync = fsync;
        let path = root.join(format!("{dir}.toml"));
        std::fs::write(&path, toml::to_string(&cfg)?)?;
        let exe = exe.clone();
        starting.push(tokio::task::spawn_blocking(move || NodeProcess::spawn(&exe, &path, Some(QUIET))));
    }
    let mut nodes = Vec::new();
    // Collected even past a failure, so every started child is in the fleet and is killed.
    let mut failed = None;
    for (start, ((id, _, dir), (_, metrics))) in starting.into_iter().zip(plan.iter().zip(&ports)) {
        match start.await? {
            Ok(process) => nodes.push(Node { id: id.clone(), metrics: *metrics, process }),
            Err(e) => failed = Some(anyhow::Error::from(e).context(format!("starting {dir}"))),
        }
    }
    let fleet = Fleet { nodes };
    if let Some(e) = failed {
        return Err(e);
    }
    for node in &fleet.nodes {
        wait_ready(fed, "m00", node.process.addr).await?;
    }
    Ok((fleet, members))
}

/// A node's configuration: following the directory (re-read at the default interval, as a
/// production node would: idle nodes' CPU counts in every figure), small caches, `/metrics` on
/// `metrics`.
fn config(
    fed: &LocalFederation,
    id: &str,
    locator: bool,
    data: &Path,
    addr: SocketAddr,
    metrics: SocketAddr,
) -> NodeConfig {
    let mut cfg = fed.directory_config(id, locator);
    cfg.node.listen = addr;
    cfg.node.data_dir = data.to_owned();
    cfg.store.cache_capacity_bytes = 4 << 20;
    // Consent tokens required, as shipped (the test kit's default is the legacy strings): an
    // account review needs none; the waiver rows carry one.
    cfg.consent = bureau::config::ConsentSection::default();
    cfg.metrics.listen = Some(metrics);
    cfg
}

/// One generated person: their pseudonym and the two members (by number) holding a record.
#[derive(Clone)]
struct Person {
    subject: String,
    holders: [usize; 2],
}

/// `count` people (pseudonyms salted with `salt`), each with records at exactly two members other than the scoring node
/// `m00`; above three members the last one holds nothing (the one hung in extra row (a)).
fn spread_people(n: usize, count: usize, salt: &[u8]) -> Vec<Person> {
    let h = if n > 3 { n - 2 } else { n - 1 }; // holders are m01 … m(h)
    (0..count)
        .map(|k| {
            let first = k % h;
            let second = (first + 1 + (k / h) % (h - 1)) % h;
            Person {
                subject: bureau::derive_subject_id(salt, "RESIDENT_ID", &format!("{n:04}{k:014}")),
                holders: [1 + first, 1 + second],
            }
        })
        .collect()
}

/// `count` people held by `m01` and `m02` alone, whatever the size.
fn pair_people(n: usize, count: usize) -> Vec<Person> {
    (0..count)
        .map(|k| Person {
            subject: bureau::derive_subject_id(b"growth-bench-pair", "RESIDENT_ID", &format!("{n:04}{k:014}")),
            holders: [1, 2],
        })
        .collect()
}

/// A credit-card record of `subject`, numbered `id`, furnished by `furnisher`.
fn record(subject: &str, id: String, furnisher: &str) -> pb::CreditRecord {
    let date = |year, month, day| Some(bureau::pb::google::r#type::Date { year, month, day });
    pb::CreditRecord {
        record_id: id,
        subject_id: subject.to_owned(),
        furnisher: furnisher.to_owned(),
        kind: pb::RecordKind::CreditCard as i32,
        opened_date: date(2021, 3, 1),
        reported_date: date(2026, 10, 31),
        credit_limit_minor: 2_000_000,
        balance_minor: 500_000,
        currency_code: "CNY".into(),
        status: pb::AccountStatus::Current as i32,
        payment_history: vec![pb::PaymentStatus::Current as i32; 12],
        version: 1,
        ..Default::default()
    }
}

/// Each holder furnishes its people's records through its own RecordsService, as its own
/// application (both replicas of `m01` get the same records).
async fn furnish(fed: &LocalFederation, fleet: &Fleet, n: usize, people: &[Person]) -> Result<()> {
    for (i, node) in fleet.nodes.iter().enumerate() {
        let member = if i < n {
            i
        } else if node.id == "m01" {
            1
        } else {
            continue;
        };
        let records: Vec<pb::CreditRecord> = people
            .iter()
            .enumerate()
            .filter(|(_, p)| p.holders.contains(&member))
            .map(|(k, p)| record(&p.subject, format!("{}-{k}", node.id), &node.id))
            .collect();
        if records.is_empty() {
            continue;
        }
        let mut c = RecordsServiceClient::new(fed.client(Role::Application, &node.id, node.process.addr).channel()?);
        for batch in records.chunks(500) {
            let r = c.furnish_records(pb::FurnishRecordsRequest { records: batch.to_vec() }).await?.into_inner();
            anyhow::ensure!(r.accepted_count as usize == batch.len(), "{} refused records: {r:?}", node.id);
        }
    }
    Ok(())
}

/// Scores every person until the locator names their two holders (registrations go out in the
/// background): 60 s at most.
async fn wait_located(scorer: &ScoringServiceClient<Channel>, sample: &[String]) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    let mut c = scorer.clone();
    for s in sample {
        loop {
            let score = c.get_score(score_req(s)).await?.into_inner();
            if score.route == pb::ScoreRoute::Located as i32 && score.members_asked == 2 {
                break;
            }
            anyhow::ensure!(Instant::now() < until, "the locator never named 2 holders of {s}: {score:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Scores `subject` until its route is `route` (a new directory is picked up): 20 s at most.
async fn wait_route(scorer: &ScoringServiceClient<Channel>, subject: &str, route: pb::ScoreRoute) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    let mut c = scorer.clone();
    loop {
        let score = c.get_score(score_req(subject)).await?.into_inner();
        if score.route == route as i32 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < until, "scores never took route {route:?}: {score:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Latency of `calls` scores over `sample`, and how many of all the calls made (a tenth more,
/// to warm up) were partial; with `whole`, a partial score fails the run.
async fn latency_of(
    scorer: &ScoringServiceClient<Channel>,
    sample: &[String],
    calls: usize,
    whole: bool,
    asks: &Asks,
) -> Result<(Percentiles, usize)> {
    let partial = Arc::new(AtomicUsize::new(0));
    let (s, count) = (scorer.clone(), partial.clone());
    let p = latency(calls, move |i| {
        let mut s = s.clone();
        let req = asks.request(i, sample);
        let count = count.clone();
        async move {
            let score = s.get_score(req?).await?.into_inner();
            anyhow::ensure!(!whole || !score.partial, "partial score in benchmark: {:?}", score.coverage);
            if score.partial {
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await?;
    Ok((p, partial.load(Ordering::Relaxed)))
}

/// Latency, then throughput with [`CALLERS`] callers, with CPU, bytes and log entries per score
/// over the throughput run.
async fn measure(
    fed: &LocalFederation,
    fleet: &Fleet,
    scorer: &ScoringServiceClient<Channel>,
    sample: &[String],
    scale: &Scale,
    asks: &Asks,
) -> Result<Figures> {
    // The idle fleet's own CPU, measured over as long as the throughput run lasts.
    let idle0 = (cpu_ticks(fleet), Instant::now());
    tokio::time::sleep(Duration::from_secs(scale.secs)).await;
    let idle_per_sec = (cpu_ticks(fleet) - idle0.0) as f64 / idle0.1.elapsed().as_secs_f64();
    let one0 = (cpu_ticks(fleet), Instant::now());
    let (lat, _) = latency_of(scorer, sample, scale.calls, true, asks).await?;
    let one_caller = (cpu_ticks(fleet) - one0.0) as f64 - idle_per_sec * one0.1.elapsed().as_secs_f64();
    let done = Arc::new(AtomicUsize::new(0));
    let entries0 = log_entries(fed, fleet).await?;
    let bytes0 = grpc_bytes(fleet).await?;
    let (cpu0, split0) = ((cpu_ticks(fleet), Instant::now()), cpu_split(fleet));
    let threads0 = threads(fleet);
    // Made before the run (a waiver's token is spent by its score): more than it can use.
    let requests: Vec<_> =
        (0..MOST_PER_SEC * scale.secs as usize).map(|i| asks.request(i, sample)).collect::<Result<_>>()?;
    let (s, count, next, requests) = (scorer.clone(), done.clone(), Arc::new(AtomicUsize::new(0)), Arc::new(requests));
    let per_sec = throughput(CALLERS, scale.secs, move |_| {
        let mut s = s.clone();
        let req = requests.get(next.fetch_add(1, Ordering::Relaxed)).cloned();
        let count = count.clone();
        async move {
            let req = req.ok_or_else(|| anyhow::anyhow!("the throughput run outran the requests made for it"))?;
            s.get_score(req).await?;
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    let (cpu1, split1) = (cpu_ticks(fleet), cpu_split(fleet));
    let idle = idle_per_sec * cpu0.1.elapsed().as_secs_f64();
    let bytes1 = grpc_bytes(fleet).await?;
    // Each read of a checkpoint logs the regulator's read: one entry per node to take off.
    let entries1 = log_entries(fed, fleet).await?.saturating_sub(fleet.nodes.len() as u64);
    let scores = done.load(Ordering::Relaxed).max(1) as f64;
    let part = |k: usize| (split1[k] - split0[k]) as f64 * 1000.0 / USER_HZ / scores;
    eprintln!("    CPU per score: m00 {:.3} ms, locator {:.3} ms, other members {:.3} ms", part(0), part(1), part(2));
    let threads1 = threads(fleet);
    print_threads(&threads0, &threads1, scores);
    let calls_made = (scale.calls + scale.calls / 10) as f64;
    Ok(Figures {
        lat,
        per_sec,
        cpu_ms: (cpu1 - cpu0.0) as f64 * 1000.0 / USER_HZ / scores,
        net_cpu_ms: ((cpu1 - cpu0.0) as f64 - idle).max(0.0) * 1000.0 / USER_HZ / scores,
        bytes: (bytes1 - bytes0) / scores,
        entries: entries1.saturating_sub(entries0) as f64 / scores,
        one_caller_cpu_ms: one_caller.max(0.0) * 1000.0 / USER_HZ / calls_made,
        switches: threads1
            .values()
            .map(|t| t.switches)
            .sum::<u64>()
            .saturating_sub(threads0.values().map(|t| t.switches).sum::<u64>()) as f64
            / scores,
    })
}
