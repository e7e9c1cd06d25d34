//! What the node promises about acknowledged writes: they survive a restart and a `kill -9`.

mod common;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bureau::{pb::bureau::v1 as pb, Role};
use common::{fed, record, subject};

#[tokio::test]
async fn a_restart_keeps_every_record() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let records: Vec<_> = (0..300).map(|i| record(&subject(i % 10), &format!("r-{i}"), 1 + u64::from(i % 3))).collect();
    c.furnish_records(pb::FurnishRecordsRequest { records }).await.unwrap();
    node.shutdown().await.unwrap();

    let node = f.start("bank").await;
    let ids = common::all_record_ids(&f, node.addr, 10).await;
    assert_eq!(ids.len(), 300);
    let mut c = f.records(Role::Application, "bank", node.addr);
    let r =
        c.get_record(pb::GetRecordRequest { name: "institutions/bank/records/r-5".into() }).await.unwrap().into_inner();
    assert_eq!(r.version, 3);
    node.shutdown().await.unwrap();
}

/// Runs `bureau serve` as a child process, concurrent writers furnish until enough
/// acknowledgements have arrived, then the child gets SIGKILL with writes still in flight.
/// Every acknowledged record must be there after a restart.
#[tokio::test]
async fn kill_dash_nine_loses_no_acknowledged_record() {
    let f = fed(&["bank"], &[]);
    let (mut child, addr, cfg) = spawn_node(&f);

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for w in 0..8u32 {
        let mut c = f.records(Role::Application, "bank", addr);
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for b in 0u32.. {
                let ids: Vec<String> = (0..20).map(|i| format!("w{w}-b{b}-{i}")).collect();
                let records = ids.iter().enumerate().map(|(i, id)| record(&subject(i as u32 % 16), id, 1)).collect();
                match c.furnish_records(pb::FurnishRecordsRequest { records }).await {
                    Ok(_) => acked.lock().unwrap().extend(ids),
                    Err(_) => return, // the node is gone
                }
            }
        }));
    }
    let enough = async {
        while acked.lock().unwrap().len() < 3_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), enough).await.expect("3000 acknowledgements within 60 s");
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let node = bureau::start(cfg).await.unwrap();
    let stored = common::all_record_ids(&f, node.addr, 16).await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged records lost, e.g. {:?}", lost.len(), acked.len(), lost.first());
    node.shutdown().await.unwrap();
}

/// Runs `bank`'s node as a `bureau serve` child process; returns it, its address and config.
fn spawn_node(f: &common::Fed) -> (common::NodeProcess, SocketAddr, bureau::config::NodeConfig) {
    let cfg = f.fed.node_config("bank", &[]);
    let (child, addr) = common::spawn_serve(f, &cfg);
    (child, addr, cfg)
}

/// A stream of three batches is answered only after its last batch is durable (the node
/// flushes batch N while it applies batch N+1): SIGKILL the moment the answer arrives, and
/// every record is there after a restart.
#[tokio::test]
async fn kill_dash_nine_right_after_a_streamed_acknowledgement() {
    let f = fed(&["bank"], &[]);
    let (mut child, addr, cfg) = spawn_node(&f);
    let mut c = f.records(Role::Application, "bank", addr);
    let ids: Vec<String> = (0..300).map(|i| format!("s-{i}")).collect();
    let records: Vec<pb::CreditRecord> =
        ids.iter().enumerate().map(|(i, id)| record(&subject(i as u32 % 16), id, 1)).collect();
    let batches: Vec<_> = records.chunks(100).map(|c| pb::FurnishRecordsRequest { records: c.to_vec() }).collect();
    let resp = c.stream_furnish_records(tokio_stream::iter(batches)).await.unwrap().into_inner();
    child.kill().unwrap(); // at once: no time for a late flush to land
    child.wait().unwrap();
    assert_eq!(resp.accepted_count, 300);

    let node = bureau::start(cfg).await.unwrap();
    let stored = common::all_record_ids(&f, node.addr, 16).await;
    let lost: Vec<_> = ids.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of 300 acknowledged streamed records lost, e.g. {:?}", lost.len(), lost.first());
    node.shutdown().await.unwrap();
}

/// Every checkpoint a node hands out is a promise: after any number of `kill -9`s the log it
/// restarts with must extend every checkpoint it signed before (C2SP tlog-checkpoint). Each
/// cycle: writers furnish, a regulator fetches checkpoints as fast as it can, the node gets
/// SIGKILL, restarts, and every checkpoint handed out so far must be consistent with its log.
/// `BUREAU_KILL_CYCLES=N` runs more cycles (default 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkpoint_handed_out_is_contradicted_after_kill_dash_nine() {
    use bureau::merkle;
    use pb::audit_service_client::AuditServiceClient;
    let cycles: usize = std::env::var("BUREAU_KILL_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let f = fed(&["bank"], &["pbc"]);
    let cfg = f.fed.node_config("bank", &[]);
    let mut handed_out: Vec<(u64, merkle::Hash)> = Vec::new();
    for cycle in 0..=cycles {
        let (mut child, addr) = common::spawn_serve(&f, &cfg);
        let mut audit = AuditServiceClient::new(f.channel(Role::Regulator, "pbc", addr));
        // The restarted log extends every checkpoint signed before the kill.
        let head = audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner();
        let root: merkle::Hash = head.root_hash.as_slice().try_into().unwrap();
        for (size, old_root) in &handed_out {
            assert!(
                head.tree_size >= *size,
                "cycle {cycle}: log of {} after restart, {size} was signed",
                head.tree_size
            );
            let proof = audit
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    first_size: *size,
                    second_size: head.tree_size,
                })
                .await
                .unwrap()
                .into_inner();
            let hashes: Vec<merkle::Hash> = proof.hashes.iter().map(|h| h.as_slice().try_into().unwrap()).collect();
            assert!(
                merkle::verify_consistency(*size, head.tree_size, old_root, &root, &hashes),
                "cycle {cycle}: the log forked: not an extension of the checkpoint at {size}"
            );
        }
        if cycle == cycles {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        let writers: Vec<_> = (0..4u32)
            .map(|w| {
                let mut c = f.records(Role::Application, "bank", addr);
                tokio::spawn(async move {
                    for n in 0u32.. {
                        let r = record(&subject(n % 16), &format!("c{cycle}-w{w}-{n}"), 1);
                        if c.furnish_records(pb::FurnishRecordsRequest { records: vec![r] }).await.is_err() {
                            return; // the node is gone
                        }
                    }
                })
            })
            .collect();
        let until = tokio::time::Instant::now() + Duration::from_millis(300 + 40 * (cycle as u64 % 7));
        while tokio::time::Instant::now() < until {
            let cp = audit.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner();
            handed_out.push((cp.tree_size, cp.root_hash.as_slice().try_into().unwrap()));
        }
        child.kill().unwrap(); // SIGKILL, right after the last checkpoint was handed out
        child.wait().unwrap();
        for w in writers {
            w.await.unwrap();
        }
        handed_out.sort();
        handed_out.dedup();
    }
    assert!(handed_out.len() > cycles, "checkpoints were fetched: {}", handed_out.len());
}

/// The node's durable log size, as its signed checkpoint says.
async fn log_size(f: &common::Fed, addr: SocketAddr) -> u64 {
    let mut a = pb::audit_service_client::AuditServiceClient::new(f.channel(Role::Regulator, "pbc", addr));
    a.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A store that lost its tail (what sled does when it takes damage for a torn write) is refused
/// at start with both sizes named, not served short; byte flips in sled's data file either
/// refuse to start naming the store, or start with every acknowledged record and the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_at_start_never_served_short() {
    use bureau::testkit::tamper;
    let f = fed(&["bank"], &["pbc"]);
    let cfg = f.fed.node_config("bank", &[]);
    let dir = cfg.node.data_dir.clone();
    let node = bureau::start(cfg.clone()).await.unwrap();
    let mut c = f.records(Role::Application, "bank", node.addr);
    for b in 0..4 {
        let records = (0..50).map(|i| record(&subject(i % 8), &format!("d-{b}-{i}"), 1)).collect();
        c.furnish_records(pb::FurnishRecordsRequest { records }).await.unwrap();
    }
    let size = log_size(&f, node.addr).await;
    node.shutdown().await.unwrap();
    let pristine = f.tmp.path().join("pristine");
    copy_dir(&dir, &pristine);

    tamper::lose_tail(&dir, size - 2);
    let err = bureau::start(cfg.clone()).await.err().expect("a store that lost its tail is refused");
    let msg = err.to_string();
    assert!(msg.contains(&format!("has {} entries but {} were durable", size - 2, size)), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");

    let db_len = std::fs::metadata(pristine.join("db")).unwrap().len();
    let mut outcomes = Vec::new();
    for k in 1..=5u64 {
        copy_dir(&pristine, &dir);
        let at = db_len * k / 6;
        let mut bytes = std::fs::read(dir.join("db")).unwrap();
        bytes[at as usize] ^= 0x5a;
        std::fs::write(dir.join("db"), bytes).unwrap();
        let started = tokio::time::timeout(Duration::from_secs(60), bureau::start(cfg.clone()))
            .await
            .expect("opening a damaged store does not hang");
        match started {
            Err(e) => {
                assert!(e.to_string().contains(&dir.display().to_string()), "names the store: {e}");
                outcomes.push(format!("flip at {at}/{db_len}: refused ({e})"));
            }
            Ok(node) => {
                let ids = common::all_record_ids(&f, node.addr, 8).await;
                assert_eq!(ids.len(), 200, "flip at {at}: started, so it must hold every acknowledged record");
                assert!(log_size(&f, node.addr).await >= size, "flip at {at}: started, so its log must be whole");
                node.shutdown().await.unwrap();
                outcomes.push(format!("flip at {at}/{db_len}: started whole"));
            }
        }
    }
    eprintln!("{}", outcomes.join("\n"));
}
