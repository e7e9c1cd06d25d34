//! What the growth bench reads from a running fleet of node processes: CPU from `/proc`, bytes
//! from each node's `/metrics`, audit log sizes from each node's checkpoint.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bureau::{
    pb::bureau::v1::{self as pb, audit_service_client::AuditServiceClient},
    testkit::{local::LocalFederation, process::NodeProcess},
    Role,
};

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on every Linux ABI).
pub(super) const USER_HZ: f64 = 100.0;

/// User plus system CPU of every node process so far, in clock ticks.
pub(super) fn cpu_ticks(fleet: &Fleet) -> u64 {
    cpu_split(fleet).iter().sum()
}

/// [`cpu_ticks`] split: the scoring node `m00`, the locator, the other members.
pub(super) fn cpu_split(fleet: &Fleet) -> [u64; 3] {
    let mut split = [0; 3];
    for i in 0..fleet.nodes.len() {
        let who = if i == 0 {
            0
        } else if fleet.nodes[i].id == "locator" {
            1
        } else {
            2
        };
        split[who] += {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", fleet.pid(i))).unwrap_or_default();
            // Fields after the command name (which may hold spaces) start at field 3.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
            f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0) // utime, stime
        };
    }
    split
}

/// Bytes every node has read and written on the connections it serves
/// (`bureau_grpc_bytes_total`, both directions), scraped from each node's `/metrics`.
pub(super) async fn grpc_bytes(fleet: &Fleet) -> Result<f64> {
    let mut total = 0.0;
    for node in &fleet.nodes {
        let mut tcp = tokio::net::TcpStream::connect(node.metrics).await?;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).await?;
        total += text
            .lines()
            .filter(|l| l.starts_with("bureau_grpc_bytes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(total)
}

/// The sum of every node's audit log size, read as the regulator.
pub(super) async fn log_entries(fed: &LocalFederation, fleet: &Fleet) -> Result<u64> {
    let mut total = 0;
    for node in &fleet.nodes {
        let mut c = AuditServiceClient::new(fed.client(Role::Regulator, "pbc", node.process.addr).channel()?);
        let cp =
            c.get_checkpoint(pb::GetCheckpointRequest {}).await.with_context(|| format!("{}'s checkpoint", node.id))?;
        total += cp.into_inner().tree_size;
    }
    Ok(total)
}

/// CPU ticks and context switches so far, summed by the kind of thread.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ThreadUse {
    pub(super) ticks: u64,
    pub(super) switches: u64,
}

/// [`ThreadUse`] of every node process so far, by node kind (`m00`, `locator`, `others`) and
/// thread name without its number (`tokio-rt-worker`, `bureau-sled-wri`, `sled-io-`, …).
pub(super) fn threads(fleet: &Fleet) -> std::collections::BTreeMap<(&'static str, String), ThreadUse> {
    let mut out = std::collections::BTreeMap::<(&'static str, String), ThreadUse>::new();
    for i in 0..fleet.nodes.len() {
        let kind = match (i, fleet.nodes[i].id.as_str()) {
            (0, _) => "m00",
            (_, "locator") => "locator",
            _ => "others",
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", fleet.pid(i))) else { continue };
        for t in tasks.flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let name = status.lines().find_map(|l| l.strip_prefix("Name:")).unwrap_or("").trim();
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned();
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
            let e = out.entry((kind, name)).or_default();
            e.ticks += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            e.switches += status
                .lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    out
}

/// Prints, per node kind, CPU ms and context switches per score by thread kind between two
/// [`threads`] readings (threads that came and went between them are missed).
pub(super) fn print_threads(
    before: &std::collections::BTreeMap<(&'static str, String), ThreadUse>,
    after: &std::collections::BTreeMap<(&'static str, String), ThreadUse>,
    scores: f64,
) {
    for kind in ["m00", "locator", "others"] {
        let parts: Vec<String> = after
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .filter_map(|((k, name), a)| {
                let b = before.get(&(*k, name.clone())).copied().unwrap_or_default();
                let (t, s) = (a.ticks.saturating_sub(b.ticks), a.switches.saturating_sub(b.switches));
                (t > 0 || s > 0)
                    .then(|| format!("{name} {:.3} ms/{:.1}", t as f64 * 1000.0 / USER_HZ / scores, s as f64 / scores))
            })
            .collect();
        eprintln!("      {kind:>7} by thread (CPU per score/switches per score): {}", parts.join(", "));
    }
}

/// One process of the fleet: its institution, its `/metrics` address, the process.
pub(super) struct Node {
    pub(super) id: String,
    pub(super) metrics: SocketAddr,
    pub(super) process: NodeProcess,
}

/// The processes of one federation size: members (`m00` first), the locator, and at
/// [`EXTRAS_AT`] a second replica of `m01`. Dropping it resumes stopped ones and kills all.
pub(super) struct Fleet {
    pub(super) nodes: Vec<Node>,
}

impl Fleet {
    /// The process id of node `i`.
    pub(super) fn pid(&self, i: usize) -> u32 {
        self.nodes[i].process.id()
    }
    /// Sends `signal` (`STOP`, `CONT`) to node `i`.
    pub(super) fn signal(&self, i: usize, signal: &str) -> Result<()> {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid(i).to_string())
            .status()?
            .success();
        anyhow::ensure!(ok, "kill -{signal} {} failed", self.pid(i));
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.signal(i, "CONT");
        }
        // Each NodeProcess kills and reaps its child as it drops.
    }
}
