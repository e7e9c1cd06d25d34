//! The record locator's store at the anchor's scale (Baihang Credit, 2021: 2,084 member
//! institutions): registrations loaded as the locator stores them (`Space::Holding`, key
//! `subject/member`, JSON `{"v":..,"h":true}`, one logged entry per batch), on sled and on
//! PostgreSQL, then bytes per registration and lookup latency and throughput.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::{Context, Result};

use super::{latency, throughput, us, Row};
use bureau::{
    testkit::postgres::TestPostgres,
    testkit::process::proc_status,
    testkit::store::{open_postgres, open_sled, DynStorage, Space, StateChange},
    Action, Entry,
};

/// Member institutions, as at the anchor.
const MEMBERS: u64 = 2_084;
/// Registrations per logged change.
const BATCH: usize = 5_000;
/// Lookups timed one at a time.
const LOOKUPS: usize = 20_000;
/// Callers for the concurrent lookups.
const CALLERS: usize = 16;
/// The subject key the pseudonyms are derived with.
const KEY: &[u8] = b"bench-locator-key";
/// Below this much free disk the load stops (the machine is shared).
const MIN_FREE: u64 = 12 << 30;

/// Which store the locator part measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LocatorBackend {
    /// Embedded sled, in a directory of its own.
    Sled,
    /// PostgreSQL: a server of its own, started here as the tests do.
    Postgres,
}

/// splitmix64: a fixed, fast mix, so person `i`'s holders are the same in every run.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Person `i`'s pseudonym.
fn subject(i: u64) -> String {
    bureau::derive_subject_id(KEY, "RESIDENT_ID", &format!("{i:018}"))
}

/// The members holding records about person `i`: two or three (half each, mean 2.5), distinct,
/// drawn from all members; with the version each registered.
fn holders(i: u64) -> Vec<(String, u64)> {
    let mut h = mix(i ^ 0x5EED);
    let n = 2 + (h & 1) as usize;
    let mut out: Vec<(String, u64)> = Vec::with_capacity(n);
    while out.len() < n {
        h = mix(h);
        let m = format!("m{:04}", h % MEMBERS);
        if out.iter().all(|(o, _)| *o != m) {
            out.push((m, (h >> 20) % 100_000_000 + 1));
        }
    }
    out
}

/// One registration batch's log entry, as the locator writes it (`HOLDINGS_REGISTERED`).
fn batch_entry(member: &str, applied: usize, n: u64) -> Entry {
    let mut e = Entry::new(Action::HoldingsRegistered, member, "registered");
    e.counterparty = "locator".into();
    e.record_count = applied as u32;
    e.detail = format!("stale=0 sha256={:016x}{:016x}{:016x}{:016x}", mix(n), mix(n + 1), mix(n + 2), mix(n + 3));
    e
}

/// Free bytes on the file system holding `dir`, from `df` (no unsafe `statvfs` here).
fn free_bytes(dir: &Path) -> Result<u64> {
    let out = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse().ok()).context("df gave no free space")
}

/// This process's resident memory now and at its peak (sled's memory grows with the tree).
fn rss() -> String {
    let me = std::process::id();
    format!("RSS {} MiB, peak {} MiB", proc_status(me, "VmRSS") / 1024, proc_status(me, "VmHWM") / 1024)
}

/// Bytes allocated on disk under `dir`, every file counted (the store and its write-ahead log).
fn disk_usage(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() { disk_usage(&e.path())? } else { m.blocks() * 512 };
    }
    Ok(total)
}

/// Loads the registrations of people `0..people` into `store`, `BATCH` per logged change;
/// returns registrations per second and the number loaded. Stops early when free disk falls
/// below `MIN_FREE` (then the number loaded says how far it got).
async fn load(store: &DynStorage, people: u64, disk: &Path, tag: &str) -> Result<(f64, u64, u64)> {
    let started = Instant::now();
    let (mut regs, mut loaded_people, mut changes) = (0u64, 0u64, 0u64);
    let mut put = Vec::with_capacity(BATCH + 3);
    let report_every = (people / 20).max(1);
    let (mut mark_t, mut mark_regs) = (Instant::now(), 0u64);
    for i in 0..people {
        let s = subject(i);
        for (m, v) in holders(i) {
            let value = format!("{{\"v\":{v},\"h\":true}}").into_bytes();
            put.push((Space::Holding, format!("{s}/{m}"), Some(value)));
        }
        let last = i + 1 == people;
        if put.len() >= BATCH || last {
            let n = put.len();
            let member = put[0].1.rsplit('/').next().unwrap_or("m0000").to_owned();
            let change = StateChange {
                expect: vec![],
                put: std::mem::take(&mut put),
                entries: vec![batch_entry(&member, n, changes)],
            };
            anyhow::ensure!(store.state_write(change).await?, "a registration batch was refused");
            regs += n as u64;
            changes += 1;
            loaded_people = i + 1;
        }
        if (i + 1) % report_every == 0 || last {
            let rate = (regs - mark_regs) as f64 / mark_t.elapsed().as_secs_f64();
            let free = free_bytes(disk)?;
            eprintln!(
                "    {tag}: {} people, {regs} registrations, {:.0}/s lately, {:.0} s, {} GiB free, {}",
                i + 1,
                rate,
                started.elapsed().as_secs_f64(),
                free >> 30,
                rss()
            );
            (mark_t, mark_regs) = (Instant::now(), regs);
            if free < MIN_FREE {
                eprintln!("    {tag}: stopping the load: less than 12 GiB free");
                break;
            }
        }
    }
    Ok((regs as f64 / started.elapsed().as_secs_f64(), regs, loaded_people))
}

/// Checks that person `i`'s lookup finds exactly the members registered for them (two or three).
async fn look_up(store: &DynStorage, i: u64) -> Result<()> {
    let s = subject(i);
    let found = store.state_scan(Space::Holding, &format!("{s}/"), None, 64).await?;
    let want = holders(i);
    anyhow::ensure!(
        (2..=3).contains(&found.len()) && found.len() == want.len(),
        "person {i}: {} holders found, {} registered",
        found.len(),
        want.len()
    );
    Ok(())
}

/// Lookup percentiles (one caller) and lookups per second (`CALLERS` callers) over random
/// people among the first `people`.
async fn lookups(store: &DynStorage, people: u64, secs: u64) -> Result<(super::Percentiles, f64)> {
    let st = store.clone();
    let lat = latency(LOOKUPS, move |n| {
        let st = st.clone();
        async move { look_up(&st, mix(n as u64 ^ 0xABCD) % people).await }
    })
    .await?;
    let st = Arc::new(store.clone());
    let tp = throughput(CALLERS, secs, move |n| {
        let st = st.clone();
        async move { look_up(&st, mix(n as u64 ^ 0x1234) % people).await }
    })
    .await?;
    Ok((lat, tp))
}

/// Pushes the rows of one backend's run.
#[allow(clippy::too_many_arguments)]
fn report(
    rows: &mut Vec<Row>,
    tag: &str,
    people: u64,
    regs: u64,
    rate: f64,
    bytes: u64,
    detail: String,
    lat: super::Percentiles,
    tp: f64,
) {
    let line = |what: String, ours: String, baseline: String| Row { what, ours, baseline, ratio: "-".into() };
    rows.push(line(
        format!("locator/{tag}: load {regs} registrations ({people} people, {MEMBERS} members, {BATCH}/change)"),
        format!("{rate:.0} reg/s"),
        "-".into(),
    ));
    rows.push(line(
        format!("locator/{tag}: bytes on disk per registration ({})", detail),
        format!("{:.0} B", bytes as f64 / regs as f64),
        format!("{:.2} GiB total", bytes as f64 / f64::from(1u32 << 30)),
    ));
    rows.push(line(
        format!("locator/{tag}: lookup (prefix scan, 2-3 holders), 1 caller, p50 / p99"),
        us(lat.p50),
        format!("{} p99", us(lat.p99)),
    ));
    rows.push(line(format!("locator/{tag}: lookups/s, {CALLERS} callers"), format!("{tp:.0}/s"), "-".into()));
}

/// The part: loads `people` people's registrations on each of `backends` and measures.
pub(super) async fn locator(
    root: &Path,
    people: u64,
    backends: &[LocatorBackend],
    secs: u64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    for b in backends {
        match b {
            LocatorBackend::Sled => on_sled(root, people, secs, rows).await?,
            LocatorBackend::Postgres => on_postgres(people, secs, rows).await?,
        }
    }
    Ok(())
}

/// sled: load, make durable and close, size the directory, reopen, look up.
async fn on_sled(root: &Path, people: u64, secs: u64, rows: &mut Vec<Row>) -> Result<()> {
    let dir = root.join("locator-sled");
    let _ = std::fs::remove_dir_all(&dir);
    let cache = 128 << 20; // a node's default page cache
    let store = open_sled(&dir, cache).await?;
    let (rate, regs, loaded) = load(&store, people, root, "sled").await?;
    let t = Instant::now();
    store.sync().await?;
    store.close().await?;
    drop(store);
    eprintln!("    sled: sync and close {:.1?}, {}", t.elapsed(), rss());
    let bytes = disk_usage(&dir)?;
    let t = Instant::now();
    let store = open_sled(&dir, cache).await?;
    let reopen = t.elapsed();
    eprintln!("    sled: reopened in {reopen:.1?}, {}", rss());
    let (lat, tp) = lookups(&store, loaded, secs).await?;
    eprintln!("    sled: after the lookups, {}", rss());
    store.close().await?;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    report(rows, "sled", loaded, regs, rate, bytes, format!("data dir after close, reopen {reopen:.1?}"), lat, tp);
    Ok(())
}

/// PostgreSQL: load, size the database and the state table with its index, look up.
async fn on_postgres(people: u64, secs: u64, rows: &mut Vec<Row>) -> Result<()> {
    let pg = TestPostgres::start()?;
    let url = pg.fresh_database()?;
    let store = open_postgres(&url).await?;
    let (rate, regs, loaded) = load(&store, people, &std::env::temp_dir(), "postgres").await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute("CHECKPOINT").await?;
    client.batch_execute("VACUUM ANALYZE node_state").await?;
    let size = |sql: &'static str| {
        let client = &client;
        async move { Ok::<i64, anyhow::Error>(client.query_one(sql, &[]).await?.get(0)) }
    };
    let table = size("SELECT pg_total_relation_size('node_state')").await?;
    let heap = size("SELECT pg_relation_size('node_state')").await?;
    let index = size("SELECT pg_indexes_size('node_state')").await?;
    let database = size("SELECT pg_database_size(current_database())").await?;
    eprintln!("    postgres: node_state {table} B (heap {heap} B, index {index} B), database {database} B");
    let (lat, tp) = lookups(&store, loaded, secs).await?;
    store.close().await?;
    let mib = |b: i64| b as f64 / f64::from(1u32 << 20);
    let detail = format!(
        "node_state+index; heap {:.0} B, index {:.0} B, whole db {:.0} MiB",
        heap as f64 / regs as f64,
        index as f64 / regs as f64,
        mib(database)
    );
    report(rows, "postgres", loaded, regs, rate, table as u64, detail, lat, tp);
    drop(pg);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two or three distinct holders per person, a mean near 2.5.
    #[test]
    fn holders_are_two_or_three_distinct() {
        let mut total = 0;
        for i in 0..10_000 {
            let h = holders(i);
            assert!((2..=3).contains(&h.len()));
            let mut names: Vec<_> = h.iter().map(|(m, _)| m.clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), h.len());
            total += h.len();
        }
        let mean = total as f64 / 10_000.0;
        assert!((2.45..2.55).contains(&mean), "{mean}");
    }
}
