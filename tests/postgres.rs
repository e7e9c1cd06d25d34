//! The PostgreSQL backend as an institution runs it: several stateless node processes on one
//! database, a replica killed mid-write, the database restarted under a running node, and a
//! schema newer than the binary. Each test starts its own PostgreSQL (testkit::postgres); the
//! black-box suites also run on PostgreSQL with `BUREAU_TEST_STORE=postgres` (see .ci/run).

mod common;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bureau::{
    config::{Backend, NodeConfig, PostgresSection, StoreSection},
    pb::bureau::v1 as pb,
    regulator::{self, KeySource},
    testkit::postgres::{self, TestPostgres},
    Role,
};
use common::{all_record_ids, fed, record, subject, Fed};
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

/// `bank`'s node configuration on the PostgreSQL database at `url`.
fn on_postgres(f: &Fed, url: &str) -> NodeConfig {
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.store = StoreSection {
        backend: Backend::Postgres,
        postgres: Some(PostgresSection {
            url: url.to_owned(),
            pool_size: 8,
            statement_timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
            tls_ca: None,
        }),
        ..StoreSection::default()
    };
    cfg
}

type Acked = Arc<Mutex<BTreeSet<String>>>;

/// Starts `writers` concurrent writers through the node at `addr`, each furnishing `batches`
/// batches of 10 records (or until the node is gone); returns the acknowledged ids so far and
/// the writers.
fn start_writers(
    f: &Fed,
    addr: SocketAddr,
    tag: &str,
    writers: u32,
    batches: u32,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Acked::default();
    let tasks = (0..writers)
        .map(|w| {
            let mut c = f.records(Role::Application, "bank", addr);
            let (acked, tag) = (acked.clone(), tag.to_owned());
            tokio::spawn(async move {
                for b in 0..batches {
                    let ids: Vec<String> = (0..10).map(|i| format!("{tag}-w{w}-b{b}-{i}")).collect();
                    let records = ids.iter().enumerate().map(|(i, id)| record(&subject(i as u32 % 8), id, 1)).collect();
                    match c.furnish_records(pb::FurnishRecordsRequest { records }).await {
                        Ok(_) => acked.lock().unwrap().extend(ids),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    (acked, tasks)
}

/// [`start_writers`], waiting for all of them.
async fn furnish_through(f: &Fed, addr: SocketAddr, tag: &str, writers: u32, batches: u32) -> Acked {
    let (acked, tasks) = start_writers(f, addr, tag, writers, batches);
    for t in tasks {
        t.await.unwrap();
    }
    acked
}

async fn verify(f: &Fed, addr: SocketAddr, state: &std::path::Path) -> regulator::VerifiedLog {
    regulator::verify(f.channel(Role::Regulator, "pbc", addr), &KeySource::PkiDir(f.fed.pki.0.clone()), state)
        .await
        .unwrap()
}

/// Two node processes of one institution on one database, 8 writers through each: every
/// acknowledged record is there, read through either; the log has no gap, duplicate or fork,
/// verifies through either replica, and a regulator moving between them sees one history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_make_one_log() {
    let f = fed(&["bank"], &["pbc"]);
    let url = postgres::shared().fresh_database().unwrap();
    let a = bureau::start(on_postgres(&f, &url)).await.unwrap();
    let b = bureau::start(on_postgres(&f, &url)).await.unwrap();

    let (ra, rb) = tokio::join!(furnish_through(&f, a.addr, "a", 8, 15), furnish_through(&f, b.addr, "b", 8, 15));
    let acked: BTreeSet<String> = ra.lock().unwrap().union(&rb.lock().unwrap()).cloned().collect();
    assert_eq!(acked.len(), 2 * 8 * 15 * 10, "every write was acknowledged");
    for addr in [a.addr, b.addr] {
        assert_eq!(all_record_ids(&f, addr, 8).await, acked, "every acknowledged record, through either replica");
    }

    let state = tempfile::tempdir().unwrap();
    let through_a = verify(&f, a.addr, state.path()).await;
    assert_eq!(through_a.problems, Vec::<String>::new());
    // The same regulator state, now through the other replica: consistency must hold.
    let through_b = verify(&f, b.addr, state.path()).await;
    assert_eq!(through_b.problems, Vec::<String>::new());
    // It grew by the regulator's own logged reads, and was proven to extend what A showed.
    assert_eq!(through_b.previous, Some(through_a.size), "checked for consistency with A's checkpoint");
    assert!(through_b.size > through_a.size);
    let entries = regulator::fetch_entries(
        &mut pb::audit_service_client::AuditServiceClient::new(f.channel(Role::Regulator, "pbc", b.addr)),
        through_b.size,
    )
    .await
    .unwrap();
    let indices: Vec<u64> = entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, (0..through_b.size).collect::<Vec<_>>(), "no gap, no duplicate");
    let furnished = entries.iter().filter(|e| e.action == pb::AuditAction::RecordFurnished as i32).count();
    assert_eq!(furnished, 240, "one entry per acknowledged batch, none twice, none lost");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// `kill -9` of one replica while 8 writers furnish through it: nothing it acknowledged is
/// lost (read through the other replica), the shared log still verifies, and the killed
/// replica, restarted, serves the same records and a log consistent with what was seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_a_replica_loses_nothing_acknowledged() {
    let f = fed(&["bank"], &["pbc"]);
    let url = postgres::shared().fresh_database().unwrap();
    let (mut child, addr) = common::spawn_serve(&f, &on_postgres(&f, &url));
    let other = bureau::start(on_postgres(&f, &url)).await.unwrap();

    let (acked, tasks) = start_writers(&f, addr, "k", 8, u32::MAX);
    let enough = async {
        while acked.lock().unwrap().len() < 1_500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), enough).await.expect("1,500 acknowledgements within 60 s");
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let stored = all_record_ids(&f, other.addr, 8).await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged records lost, e.g. {:?}", lost.len(), acked.len(), lost.first());
    let state = tempfile::tempdir().unwrap();
    let log = verify(&f, other.addr, state.path()).await;
    assert_eq!(log.problems, Vec::<String>::new());
    // The killed replica restarts and serves the same records and the same log.
    // A statement the killed process had already sent may still commit after the read above
    // (the server finishes what it received), so the restarted replica serves at least that.
    let restarted = bureau::start(on_postgres(&f, &url)).await.unwrap();
    let served = all_record_ids(&f, restarted.addr, 8).await;
    assert!(
        stored.is_subset(&served),
        "{} records seen before the restart are gone",
        stored.difference(&served).count()
    );
    let again = verify(&f, restarted.addr, state.path()).await;
    assert_eq!((again.problems.len(), again.previous), (0, Some(log.size)), "{:?}", again.problems);
    restarted.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

async fn status(f: &Fed, addr: SocketAddr) -> i32 {
    let mut h = HealthClient::new(f.channel(Role::Application, "bank", addr));
    h.check(HealthCheckRequest { service: "bureau.v1.RecordsService".into() }).await.unwrap().into_inner().status
}

async fn wait_for_status(f: &Fed, addr: SocketAddr, want: ServingStatus) -> Duration {
    let start = std::time::Instant::now();
    while status(f, addr).await != want as i32 {
        assert!(start.elapsed() < Duration::from_secs(20), "health never became {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// The database stops under a running node: writes fail UNAVAILABLE (never INTERNAL, never a
/// hang), health says NOT_SERVING; once the database is back the node serves again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_a_running_node() {
    let f = fed(&["bank"], &["pbc"]);
    let pg = TestPostgres::start().unwrap();
    let url = pg.fresh_database().unwrap();
    let node = bureau::start(on_postgres(&f, &url)).await.unwrap();
    let mut c = f.records(Role::Application, "bank", node.addr);
    let furnish = |id: &str| pb::FurnishRecordsRequest { records: vec![record(&subject(1), id, 1)] };
    c.furnish_records(furnish("before")).await.unwrap();

    pg.stop().unwrap();
    let started = std::time::Instant::now();
    let refused = c.furnish_records(furnish("during")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("postgres"), "names the store: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "no hang past the timeouts");
    let down = wait_for_status(&f, node.addr, ServingStatus::NotServing).await;

    pg.restart().unwrap();
    let back = wait_for_status(&f, node.addr, ServingStatus::Serving).await;
    eprintln!(
        "NOT_SERVING {} ms after the database stopped; SERVING {} ms after it was back",
        down.as_millis(),
        back.as_millis()
    );
    c.furnish_records(furnish("after")).await.unwrap();
    let ids = all_record_ids(&f, node.addr, 2).await;
    assert!(ids.contains("before") && ids.contains("after") && !ids.contains("during"), "{ids:?}");
    let log = verify(&f, node.addr, tempfile::tempdir().unwrap().path()).await;
    assert_eq!(log.problems, Vec::<String>::new());
    node.shutdown().await.unwrap();
}

/// A database migrated by a newer bureau: the node refuses to start, naming both versions.
#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let f = fed(&["bank"], &[]);
    let pg = postgres::shared();
    let url = pg.fresh_database().unwrap();
    let store = bureau::testkit::store::open_postgres(&url).await.unwrap();
    store.close().await.unwrap();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    pg.psql(db, "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', now()::text, '0')")
        .unwrap();
    let err = bureau::start(on_postgres(&f, &url)).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("version 99") && msg.contains("binary's 2"), "{msg}");
}

/// A peer entry listing both replicas of an institution: queries alternate between them, and
/// with one replica down every query is still answered by the other, within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_listed_by_both_replicas_is_answered_while_one_is_down() {
    use pb::scoring_service_client::ScoringServiceClient;
    let f = fed(&["bank", "payapp"], &[]);
    let url = postgres::shared().fresh_database().unwrap();
    let a = bureau::start(on_postgres(&f, &url)).await.unwrap();
    let b = bureau::start(on_postgres(&f, &url)).await.unwrap();
    let s = subject(1);
    f.records(Role::Application, "bank", a.addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "bank-1", 1), record(&s, "bank-2", 1)] })
        .await
        .unwrap();
    let mut cfg = f.fed.node_config("payapp", &[("bank", a.addr)]);
    cfg.peers[0].addresses = vec![b.addr.to_string()];
    let payapp = bureau::start(cfg).await.unwrap();
    f.records(Role::Application, "payapp", payapp.addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "pay-1", 1)] })
        .await
        .unwrap();
    let mut scoring = ScoringServiceClient::new(f.channel(Role::Application, "payapp", payapp.addr));
    let ask = pb::GetScoreRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    };
    let bank_answer = |score: &pb::Score| {
        let c = score.coverage.iter().find(|c| c.peer == "bank").unwrap();
        (c.outcome, c.records_returned)
    };
    for _ in 0..4 {
        let score = scoring.get_score(ask.clone()).await.unwrap().into_inner();
        assert_eq!(bank_answer(&score), (pb::PeerOutcome::Answered as i32, 2));
    }
    a.shutdown().await.unwrap();
    for _ in 0..4 {
        let score = scoring.get_score(ask.clone()).await.unwrap().into_inner();
        assert_eq!(bank_answer(&score), (pb::PeerOutcome::Answered as i32, 2), "the other replica answers");
        assert!(!score.partial);
    }
    payapp.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// The store reaches PostgreSQL over TLS with the server verified: against a server that takes
/// TLS connections only, a node given the database's authority (`store.postgres.tls_ca`) starts,
/// stores and reads, and the server reports its sessions encrypted; without it the server turns
/// it away (nothing falls back to plain TCP); with another authority's certificate the node
/// refuses the server.
#[tokio::test]
async fn the_database_is_reached_over_tls_with_the_server_verified() {
    let (pg, ca) = TestPostgres::start_tls().unwrap();
    let url = pg.fresh_database().unwrap();
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let f = fed(&["bank"], &["pbc"]);
    let with_ca = |ca: Option<std::path::PathBuf>| {
        let mut cfg = on_postgres(&f, &url);
        if let Some(pg) = cfg.store.postgres.as_mut() {
            pg.tls_ca = ca;
        }
        cfg
    };
    let plain = bureau::start(with_ca(None)).await.err().expect("a plain connection is refused by the server");
    assert!(plain.to_string().contains("store"), "{plain}");
    let stranger = f.tmp.path().join("other-ca.pem");
    std::fs::copy(f.fed.pki.ca_cert(), &stranger).unwrap();
    let wrong = bureau::start(with_ca(Some(stranger))).await.err().expect("an unknown server is refused");
    assert!(wrong.to_string().to_lowercase().contains("certificate"), "{wrong}");

    let node = bureau::start(with_ca(Some(ca))).await.unwrap();
    let mut c = f.records(Role::Application, "bank", node.addr);
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "tls-1", 1)] }).await.unwrap();
    let got = c.get_record(pb::GetRecordRequest { name: "institutions/bank/records/tls-1".into() }).await.unwrap();
    assert_eq!(got.into_inner().record_id, "tls-1");
    let sessions = pg
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{database}'"
            ),
        )
        .unwrap();
    let (tls, plain) = sessions.split_once('|').unwrap();
    assert!(tls.parse::<u32>().unwrap() >= 1, "the node's sessions: {sessions}");
    assert_eq!(plain, "0", "no plain session: {sessions}");
    node.shutdown().await.unwrap();
}
