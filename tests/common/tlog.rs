//! Helpers of the C2SP suites (tests/tlog.rs, tests/tlog_receipts.rs): the independent
//! verifier, nodes with their tlog endpoint on, and polling.

use std::{net::SocketAddr, path::PathBuf, process::Command};

use bureau::{pb::bureau::v1 as pb, Role, RunningNode};

use super::{record, subject, Fed};

/// The verifier's command, installed by scripts/deps.
pub fn aics_tlog() -> PathBuf {
    let venv = std::env::var("BUREAU_TLOG_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/bureau/tlog-venv"));
    let exe = venv.join("bin/aics-tlog");
    assert!(exe.exists(), "{} missing: run scripts/deps (it installs aics-tlog from PyPI)", exe.display());
    exe
}

/// Runs the verifier; its one JSON report.
pub fn verifier(args: &[&str]) -> serde_json::Value {
    let out = Command::new(aics_tlog()).args(args).output().expect("aics-tlog runs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("aics-tlog said {text} / {}", String::from_utf8_lossy(&out.stderr)))
}

pub async fn start(f: &Fed, names: &[&str]) -> Vec<RunningNode> {
    let all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    f.fed
        .start_all(names, |cfg| {
            let others: Vec<&str> = all.iter().map(String::as_str).filter(|n| *n != cfg.node.institution).collect();
            f.fed.with_tlog(cfg, &others);
        })
        .await
        .expect("nodes start")
}

pub async fn furnish(f: &Fed, node: &RunningNode, n: u32, from: u32) {
    let mut c = f.records(Role::Application, &node.institution, node.addr);
    for i in from..from + n {
        c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(i), &format!("r{i}"), 1)] })
            .await
            .unwrap();
    }
}

pub fn size_of(note: &str) -> u64 {
    note.lines().nth(1).and_then(|s| s.parse().ok()).expect("a checkpoint's size line")
}

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(t) = probe().await {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} within 15 s");
}
