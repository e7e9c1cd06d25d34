//! Backups of a running node: taken during a furnishing load, restored into an empty directory,
//! and the restored node's log is the one backed up. Damaged files and refusals are tried too;
//! the file is encrypted to the institution's age recipient, 0600, taken only by an application
//! the configuration names administrator, and logged.

mod common;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use bureau::{
    backup_to_file,
    pb::bureau::v1::{self as pb, admin_service_client::AdminServiceClient},
    regulator::{self, KeySource},
    restore_from_file, BackupError, Role,
};
use common::{all_record_ids, fed, record, subject, Fed};
use tonic::Code;

/// The age recipients `bureau pki init` wrote for `institution`'s backups (what its node
/// configuration's `admin.backup_recipients` names), and the identities that decrypt them.
fn keys(f: &Fed, institution: &str) -> (Vec<age::x25519::Recipient>, Vec<age::x25519::Identity>) {
    let key = f.fed.pki.member(Role::Node, institution).backup_key;
    (bureau::read_recipients(&key.with_extension("pub")).unwrap(), bureau::read_identities(&key).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_the_log_and_every_record_acknowledged_before_it() {
    let f = fed(&["bank"], &["pbc"]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let before: Vec<String> = (0..500).map(|i| format!("before-{i}")).collect();
    for chunk in before.chunks(100) {
        let records = chunk.iter().enumerate().map(|(i, id)| record(&subject(i as u32 % 8), id, 1)).collect();
        c.furnish_records(pb::FurnishRecordsRequest { records }).await.unwrap();
    }

    // A furnishing load runs while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(Mutex::new(0usize));
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let mut c = f.records(Role::Application, "bank", node.addr);
            let (stop, during) = (stop.clone(), during.clone());
            tokio::spawn(async move {
                for b in 0u32.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let records = (0..10).map(|i| record(&subject(i % 8), &format!("load-{w}-{b}-{i}"), 1)).collect();
                    c.furnish_records(pb::FurnishRecordsRequest { records }).await.unwrap();
                    *during.lock().unwrap() += 10;
                }
            })
        })
        .collect();
    while *during.lock().unwrap() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bank.backup");
    let (recipients, identities) = keys(&f, "bank");
    let summary = backup_to_file(f.channel(Role::Application, "bank", node.addr), &file, &recipients).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(summary.tree_size >= 5 && summary.pairs > 1_000, "{summary:?}");
    assert!(!dir.path().join("bank.partial").exists(), "no partial file left");

    // Only the institution's own applications may take it.
    let refused = AdminServiceClient::new(f.channel(Role::Regulator, "pbc", node.addr))
        .backup(pb::BackupRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    node.shutdown().await.unwrap();

    // A damaged file is refused before anything is written.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let damaged = dir.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    let target = dir.path().join("restored-damaged");
    match restore_from_file(&damaged, &target, &identities).await {
        Err(BackupError::Damaged(why)) => assert!(why.contains("checksum") || why.contains("damaged"), "{why}"),
        other => panic!("a damaged backup must be refused: {other:?}"),
    }
    assert!(!target.join("db").exists(), "nothing written from a damaged file");

    // Restore into an empty directory; the restored log is the one backed up.
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.node.data_dir = dir.path().join("restored");
    let restored = restore_from_file(&file, &cfg.node.data_dir, &identities).await.unwrap();
    assert_eq!(restored, summary);
    {
        let store = bureau::testkit::store::open_sled(&cfg.node.data_dir, 16 << 20).await.unwrap();
        assert_eq!(store.audit_root(summary.tree_size).await.unwrap(), summary.root, "root at backup time");
        assert_eq!(store.audit_size().await.unwrap(), summary.tree_size);
        store.close().await.unwrap();
    }
    // A second restore into the same directory is refused.
    assert!(restore_from_file(&file, &cfg.node.data_dir, &identities).await.is_err());

    let node = bureau::start(cfg).await.unwrap();
    let stored = all_record_ids(&f, node.addr, 8).await;
    let missing: Vec<_> = before.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged before the backup, missing after restore: {missing:?}");
    assert!(stored.len() >= 700, "the load's records up to the snapshot are there too: {}", stored.len());
    let keys = KeySource::PkiDir(f.fed.pki.0.clone());
    let log = regulator::verify(f.channel(Role::Regulator, "pbc", node.addr), &keys, dir.path().join("reg").as_path())
        .await
        .unwrap();
    assert_eq!(log.problems, Vec::<String>::new(), "the restored node's signed checkpoint verifies");
    assert!(log.size >= summary.tree_size);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_postgresql_node_points_at_the_database_tools() {
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    let url = bureau::testkit::postgres::shared().fresh_database().unwrap();
    cfg.store = bureau::testkit::local::test_store(std::path::Path::new("/unused"));
    cfg.store.backend = bureau::config::Backend::Postgres;
    cfg.store.postgres = Some(bureau::config::PostgresSection {
        url,
        pool_size: 4,
        statement_timeout_ms: 5_000,
        connect_timeout_ms: 2_000,
        tls_ca: None,
    });
    let node = bureau::start(cfg).await.unwrap();
    let err = AdminServiceClient::new(f.channel(Role::Application, "bank", node.addr))
        .backup(pb::BackupRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(common::reason(&err).as_deref(), Some("NOT_SUPPORTED_BY_STORE"));
    assert!(err.message().contains("pg_basebackup"), "{err:?}");
    node.shutdown().await.unwrap();
}

/// A backup reader that stops reading cannot stall the node's writes for more than the stall
/// limit (10 s): the backup is abandoned and writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backup_reader_does_not_stall_writes_for_long() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    // Enough data that the backup cannot fit in the buffers between the store and the socket.
    for b in 0..20 {
        let records = (0..1000).map(|i| record(&subject(i % 64), &format!("r-{b}-{i}"), 1)).collect();
        c.furnish_records(pb::FurnishRecordsRequest { records }).await.unwrap();
    }
    let mut stream = AdminServiceClient::new(f.channel(Role::Application, "bank", node.addr))
        .backup(pb::BackupRequest {})
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("the head");
    // Stop reading. A write now waits for the backup, at most the stall limit.
    let started = std::time::Instant::now();
    let write = c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "late", 1)] });
    tokio::time::timeout(std::time::Duration::from_secs(30), write).await.expect("writes resume").unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    drop(stream);
    node.shutdown().await.unwrap();
}
