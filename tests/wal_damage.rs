//! Damage to a stopped node's write-ahead log, made the way an outside fault probe made it
//! (32 bytes flipped in a record, nodes killed with `kill -9` under writers): the node starts
//! whole or is refused naming what is damaged, never short.

mod common;

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use bureau::{pb::bureau::v1 as pb, testkit::tamper, Role};
use common::{fed, record, subject};

/// A `bureau serve` child and everything it wrote to stderr up to listening (or exiting).
struct Run {
    child: Child,
    lines: Vec<String>,
    addr: Option<SocketAddr>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bank`'s node as a child process; returns once it listens or has exited.
fn run(f: &common::Fed, cfg: &bureau::config::NodeConfig) -> Run {
    let cfg_path = f.tmp.path().join(format!("{}.toml", cfg.node.institution));
    std::fs::write(&cfg_path, toml::to_string(cfg).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&cfg_path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut lines = Vec::new();
    let mut addr = None;
    for line in stderr.by_ref().map_while(Result::ok) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        lines.push(line);
        if v["fields"]["message"] == "node listening" {
            addr = Some(v["fields"]["addr"].as_str().unwrap().parse().unwrap());
            break;
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || stderr.map_while(Result::ok).for_each(drop));
    Run { child, lines, addr }
}

/// Four writers furnish one record per call until `kill -9`; returns the acknowledged ids.
async fn killed_under_writers(f: &common::Fed, cfg: &bureau::config::NodeConfig, run_ms: u64) -> BTreeSet<String> {
    crashed(f, cfg, run_ms, None).await
}

/// Like [`killed_under_writers`], and with `Some(before)`, the power-loss model: sled's files
/// and the audit log's mark put back as they were `before` ms before the kill (the write-ahead
/// log as the kill left it: the node syncs it before acknowledging). sled's durable state may
/// be that old after a power loss: the store syncs sled's file once a second.
async fn crashed(
    f: &common::Fed,
    cfg: &bureau::config::NodeConfig,
    run_ms: u64,
    before: Option<u64>,
) -> BTreeSet<String> {
    let dir = cfg.node.data_dir.clone();
    let snapshot = dir.with_extension("snapshot");
    let mut node = run(f, cfg);
    let addr = node.addr.expect("the node listens");
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let (mut c, acked) = (f.records(Role::Application, "bank", addr), acked.clone());
            tokio::spawn(async move {
                for n in 0u32.. {
                    let id = format!("w{w}-{n}");
                    let r = record(&subject(n % 16), &id, 1);
                    if c.furnish_records(pb::FurnishRecordsRequest { records: vec![r] }).await.is_err() {
                        return; // the node is gone
                    }
                    acked.lock().unwrap().insert(id);
                }
            })
        })
        .collect();
    let before = before.map(|b| b.min(run_ms));
    tokio::time::sleep(Duration::from_millis(run_ms - before.unwrap_or(0))).await;
    if let Some(before) = before {
        std::fs::create_dir_all(&snapshot).unwrap();
        copy_except_wal(&dir, &snapshot);
        tokio::time::sleep(Duration::from_millis(before)).await;
    }
    node.child.kill().unwrap(); // SIGKILL: no shutdown path runs
    node.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    if before.is_some() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "wal" {
                if e.file_type().unwrap().is_dir() {
                    std::fs::remove_dir_all(e.path()).unwrap();
                } else {
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
        }
        copy_except_wal(&snapshot, &dir);
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "writes were acknowledged: {}", acked.len());
    acked
}

/// Flips 32 bytes of `file` from `at`, as the probe did.
fn flip(file: &Path, at: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at as usize..at as usize + 32].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(file, bytes).unwrap();
}

/// Flips 32 bytes in the middle of `r`'s body.
fn damage(r: &tamper::WalRecord) {
    assert!(r.len >= 64, "a record long enough to damage inside: {r:?}");
    flip(&r.segment, r.offset + r.len / 2);
}

/// Starts the node in-process: refused (its message), or started with every acknowledged record.
async fn starts_whole_or_refused(
    f: &common::Fed,
    cfg: &bureau::config::NodeConfig,
    acked: &BTreeSet<String>,
) -> Result<(), String> {
    let started = tokio::time::timeout(Duration::from_secs(60), bureau::start(cfg.clone()))
        .await
        .expect("opening a damaged store does not hang");
    let node = started.map_err(|e| e.to_string())?;
    let stored = common::all_record_ids(f, node.addr, 16).await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    node.shutdown().await.unwrap();
    assert!(
        lost.is_empty(),
        "started SHORT: {} of {} acknowledged records lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
    Ok(())
}

/// 32 bytes flipped in a record sled does not hold yet, with intact records after it: the node is
/// refused, naming the segment file, the byte offset and the record, saying which records after
/// it are intact and what to do, and saying it once. (After a plain `kill -9` sled has nearly
/// every record, so sled is put back 400 ms, as after a power loss.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_mid_log_with_intact_records_after_it_is_refused_by_name() {
    let f = fed(&["bank"], &[]);
    let cfg = f.fed.node_config("bank", &[]);
    let dir = cfg.node.data_dir.clone();
    let acked = crashed(&f, &cfg, 900, Some(400)).await;
    let applied = tamper::applied_seq(&dir);
    let above: Vec<_> = tamper::wal_records(&dir).into_iter().filter(|r| r.seq > applied).collect();
    assert!(above.len() >= 3, "records only the log holds: {} (sled holds up to {applied})", above.len());
    let victim = &above[above.len() / 2];
    damage(victim);

    let msg = starts_whole_or_refused(&f, &cfg, &acked).await.expect_err("mid-log damage is refused");
    let segment = victim.segment.display().to_string();
    assert!(msg.contains(&format!("write-ahead record {} is missing", victim.seq)), "{msg}");
    assert!(msg.contains(&format!("{segment} is damaged at byte {}", victim.offset)), "{msg}");
    assert!(msg.contains(&format!("{}..=", victim.seq + 1)), "names the intact records after it: {msg}");
    assert!(msg.contains("restore the store from a backup"), "says what to do: {msg}");

    // The binary says it once.
    let mut node = run(&f, &cfg);
    assert!(node.addr.is_none(), "refused");
    node.child.wait().unwrap();
    let said =
        node.lines.iter().filter(|l| l.contains(&format!("write-ahead record {} is missing", victim.seq))).count();
    assert_eq!(said, 1, "the refusal is printed once: {:#?}", node.lines);
}

/// A torn record after the last one (a write the kill cut short, never acknowledged): the node
/// starts with every acknowledged record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_starts_whole() {
    let f = fed(&["bank"], &[]);
    let cfg = f.fed.node_config("bank", &[]);
    let dir = cfg.node.data_dir.clone();
    let acked = killed_under_writers(&f, &cfg, 500).await;
    let last = tamper::wal_records(&dir).pop().expect("records in the log");
    // A record header numbering the next record, and half a body that does not check out.
    let mut torn = vec![0u8; 16 + 200];
    torn[..4].copy_from_slice(&400u32.to_le_bytes());
    torn[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    torn[8..16].copy_from_slice(&(last.seq + 1).to_le_bytes());
    torn[16..].fill(0x77);
    let mut bytes = std::fs::read(&last.segment).unwrap();
    let at = (last.offset + last.len) as usize;
    bytes[at..at + torn.len()].copy_from_slice(&torn);
    std::fs::write(&last.segment, bytes).unwrap();
    starts_whole_or_refused(&f, &cfg, &acked).await.expect("a torn tail starts whole");
}

/// A damaged record sled already holds (its number is at most sled's): nothing is lost, so the
/// node starts whole, with a WARN naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_sled_already_holds_starts_whole_with_a_warn() {
    let f = fed(&["bank"], &[]);
    let cfg = f.fed.node_config("bank", &[]);
    let dir = cfg.node.data_dir.clone();
    let node = bureau::start(cfg.clone()).await.unwrap();
    let mut c = f.records(Role::Application, "bank", node.addr);
    let mut acked = BTreeSet::new();
    for n in 0..40u32 {
        let id = format!("h-{n}");
        c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(n % 16), &id, 1)] }).await.unwrap();
        acked.insert(id);
    }
    node.shutdown().await.unwrap(); // sled flushed: it holds every record
    let applied = tamper::applied_seq(&dir);
    let below: Vec<_> = tamper::wal_records(&dir).into_iter().filter(|r| r.seq <= applied).collect();
    assert!(below.len() >= 3, "records sled holds, still in the log: {}", below.len());
    let victim = &below[below.len() / 2];
    damage(victim);

    let node = run(&f, &cfg);
    let addr = node.addr.unwrap_or_else(|| panic!("starts: {:#?}", node.lines));
    let warned = node.lines.iter().any(|l| {
        l.contains("a damaged write-ahead record is skipped") && l.contains(&victim.segment.display().to_string())
    });
    assert!(warned, "a WARN names the damaged record: {:#?}", node.lines);
    let stored = common::all_record_ids(&f, addr, 16).await;
    assert!(acked.is_subset(&stored), "every record is there");
}

/// The power-loss model: sled's files and the audit log's mark as they were a moment before the
/// kill (copied from the running node: 50, 200 and 350 ms before), the log as the kill left it,
/// plus one damaged record in the middle of the newest segment. Three trials; each is refused by
/// name or starts whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_and_a_damaged_record_is_refused_or_whole_never_short() {
    let f = fed(&["bank"], &[]);
    let mut outcomes = Vec::new();
    for trial in 0..3 {
        let mut cfg = f.fed.node_config("bank", &[]);
        cfg.node.data_dir = f.tmp.path().join(format!("trial-{trial}"));
        let dir = cfg.node.data_dir.clone();
        let acked = crashed(&f, &cfg, 700, Some(50 + 150 * trial)).await;
        let records = tamper::wal_records(&dir);
        let newest = records.last().expect("records in the log").segment.clone();
        let in_newest: Vec<_> = records.iter().filter(|r| r.segment == newest).collect();
        let victim = in_newest[in_newest.len() / 2];
        damage(victim);
        match starts_whole_or_refused(&f, &cfg, &acked).await {
            Ok(()) => outcomes.push(format!("trial {trial}: record {} damaged: started whole", victim.seq)),
            Err(msg) => {
                assert!(msg.contains(&dir.display().to_string()), "names the store: {msg}");
                outcomes.push(format!("trial {trial}: record {} damaged: refused ({msg})", victim.seq));
            }
        }
    }
    eprintln!("{}", outcomes.join("\n"));
}

fn copy_except_wal(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_name() == "wal" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_except_wal(&e.path(), &target);
        } else {
            // sled may delete a file while it is copied; what was there is what a power loss keeps.
            let _ = std::fs::copy(e.path(), &target);
        }
    }
}
