//! High availability, shown: a node on a Patroni-managed PostgreSQL pair (synchronous
//! replication, `scripts/ha-cluster`) keeps furnishing while the primary is killed. Slow (the
//! cluster takes ~10 s to start and the failover ~10 s), so ignored by default; `.ci/run` runs it:
//!
//! ```sh
//! cargo test --test failover -- --ignored --nocapture
//! ```

mod common;

use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bureau::{
    config::{Backend, PostgresSection, StoreSection},
    pb::bureau::v1 as pb,
    regulator::{self, KeySource},
    Role,
};
use common::{all_record_ids, fed, record, subject};

fn ha(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ha-cluster");
    let out = Command::new(script).args(args).output().expect("scripts/ha-cluster runs");
    assert!(
        out.status.success(),
        "ha-cluster {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Stops the cluster however the test ends.
struct Cluster(String);

impl Drop for Cluster {
    fn drop(&mut self) {
        ha(&["stop", &self.0]);
    }
}

#[derive(Default)]
struct Progress {
    acked: BTreeSet<String>,
    /// When the first write after the kill was acknowledged.
    first_ack_after_kill: Option<Instant>,
    failed: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts etcd and two Patroni-managed PostgreSQL instances (~40 s); run by .ci/run"]
async fn the_node_follows_the_new_primary_and_loses_nothing_acknowledged() {
    let dir = tempfile::Builder::new().prefix("bureau-ha-").tempdir().unwrap();
    let dir_s = dir.path().display().to_string();
    let base = 25_400 + (std::process::id() % 100) as u16 * 30;
    let url = ha(&["start", &dir_s, &base.to_string()]);
    let _cluster = Cluster(dir_s.clone());
    let first_leader = ha(&["leader", &dir_s]);

    let f = fed(&["bank"], &["pbc"]);
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.store = StoreSection {
        backend: Backend::Postgres,
        postgres: Some(PostgresSection {
            url,
            pool_size: 8,
            statement_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            tls_ca: None,
        }),
        ..StoreSection::default()
    };
    let node = bureau::start(cfg).await.unwrap();

    let progress = Arc::new(Mutex::new(Progress::default()));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8u32)
        .map(|w| {
            let mut c = f.records(Role::Application, "bank", node.addr);
            let (progress, killed_at, stop) = (progress.clone(), killed_at.clone(), stop.clone());
            tokio::spawn(async move {
                for b in 0u32.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let ids: Vec<String> = (0..10).map(|i| format!("w{w}-b{b}-{i}")).collect();
                    let records = ids.iter().enumerate().map(|(i, id)| record(&subject(i as u32 % 8), id, 1)).collect();
                    let sent = Instant::now();
                    match c.furnish_records(pb::FurnishRecordsRequest { records }).await {
                        Ok(_) => {
                            let mut p = progress.lock().unwrap();
                            p.acked.extend(ids);
                            let after_kill = killed_at.lock().unwrap().is_some_and(|k| sent > k);
                            if after_kill && p.first_ack_after_kill.is_none() {
                                p.first_ack_after_kill = Some(Instant::now());
                            }
                        }
                        Err(s) => {
                            assert_eq!(s.code(), tonic::Code::Unavailable, "a failover is UNAVAILABLE: {s:?}");
                            progress.lock().unwrap().failed += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();

    let wait_for = |n: usize| {
        let progress = progress.clone();
        async move {
            while progress.lock().unwrap().acked.len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait_for(2_000)).await.expect("2,000 acknowledgements");
    // What a regulator saw before the failover.
    let state = tempfile::tempdir().unwrap();
    let keys = KeySource::PkiDir(f.fed.pki.0.clone());
    let before = regulator::verify(f.channel(Role::Regulator, "pbc", node.addr), &keys, state.path()).await.unwrap();
    assert_eq!(before.problems, Vec::<String>::new());

    let acked_before_kill = progress.lock().unwrap().acked.len();
    let killed = ha(&["kill-leader", &dir_s]);
    *killed_at.lock().unwrap() = Some(Instant::now());
    assert_eq!(killed, first_leader);
    let recovered = async {
        loop {
            if let Some(t) = progress.lock().unwrap().first_ack_after_kill {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let recovered_at =
        tokio::time::timeout(Duration::from_secs(60), recovered).await.expect("writes resume within 60 s");
    let recovery = recovered_at - killed_at.lock().unwrap().unwrap();
    // Keep writing on the new primary for a while, then stop.
    let target = progress.lock().unwrap().acked.len() + 1_000;
    tokio::time::timeout(Duration::from_secs(60), wait_for(target)).await.expect("1,000 more on the new primary");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let new_leader = ha(&["leader", &dir_s]);
    assert_ne!(new_leader, first_leader, "the standby was promoted");

    let p = std::mem::take(&mut *progress.lock().unwrap());
    let stored = all_record_ids(&f, node.addr, 8).await;
    let lost: Vec<_> = p.acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged records lost, e.g. {:?}", lost.len(), p.acked.len(), lost.first());
    let after = regulator::verify(f.channel(Role::Regulator, "pbc", node.addr), &keys, state.path()).await.unwrap();
    assert_eq!(after.problems, Vec::<String>::new(), "the log after the failover extends what the regulator saw");
    assert_eq!(after.previous, Some(before.size));
    eprintln!(
        "failover: {first_leader} killed after {acked_before_kill} acknowledged records; writes resumed on {new_leader} \
         {} ms later ({} writes refused UNAVAILABLE meanwhile); {} acknowledged in all, 0 lost; log {} -> {} verified",
        recovery.as_millis(),
        p.failed,
        p.acked.len(),
        before.size,
        after.size
    );
    node.shutdown().await.unwrap();

    // The database's own backup, as the README tells PostgreSQL users: pg_basebackup of the new
    // leader, served alone, holds every acknowledged record and a log consistent with the
    // checkpoints seen.
    let copy = tempfile::Builder::new().prefix("bureau-basebackup-").tempdir().unwrap();
    let copy_s = copy.path().display().to_string();
    ha(&["basebackup", &dir_s, &copy_s]);
    let copy_url = ha(&["serve-copy", &copy_s, &(base + 50).to_string()]);
    struct Copy(String);
    impl Drop for Copy {
        fn drop(&mut self) {
            ha(&["stop-copy", &self.0]);
        }
    }
    let _copy = Copy(copy_s.clone());
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.store = StoreSection {
        backend: Backend::Postgres,
        postgres: Some(PostgresSection {
            url: copy_url,
            pool_size: 4,
            statement_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            tls_ca: None,
        }),
        ..StoreSection::default()
    };
    let restored = bureau::start(cfg).await.unwrap();
    let stored = all_record_ids(&f, restored.addr, 8).await;
    assert!(p.acked.is_subset(&stored), "the base backup holds every acknowledged record");
    let from_copy =
        regulator::verify(f.channel(Role::Regulator, "pbc", restored.addr), &keys, state.path()).await.unwrap();
    assert_eq!(from_copy.problems, Vec::<String>::new());
    assert_eq!(from_copy.previous, Some(after.size), "consistent with what the regulator saw last");
    eprintln!("pg_basebackup of the new leader: {} records, log {} entries, verified", stored.len(), from_copy.size);
    restored.shutdown().await.unwrap();
}
