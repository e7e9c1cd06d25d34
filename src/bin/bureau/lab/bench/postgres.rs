//! The PostgreSQL part of the bench: the backend beside raw PostgreSQL through the same client
//! library, and the same federation on PostgreSQL beside sled.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;
use prost::Message as _;

use super::{
    federated::federation,
    peer_query_latency, pg_section, records, score_latency, score_throughput,
    store::{node_furnish_rate, sample_entry},
    us, Row, Sizes,
};
use bureau::{
    config::Backend,
    convert,
    pb::bureau::v1::{self as pb, scoring_service_client::ScoringServiceClient},
    testkit::local::LocalFederation,
    testkit::postgres::TestPostgres,
    testkit::store::open_postgres,
    Role,
};

/// The PostgreSQL backend on a server of its own (started here, as the tests do): furnishing
/// against raw batched INSERTs of the same rows, durable appends against a single INSERT +
/// COMMIT, both through tokio-postgres; then score latency and throughput with every node on
/// PostgreSQL against the same federation on sled, same size, same run.
pub(super) async fn postgres(fed: &LocalFederation, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    const BATCH: usize = 1000;
    let pg = TestPostgres::start()?;
    let recs: Vec<pb::CreditRecord> = records(sizes.pg_records, &["loader"])
        .take(sizes.pg_records)
        .map(|r| convert::record_to_pb(&r, Utc::now()))
        .collect();

    // Baseline: the same rows, 1000 per transaction, one INSERT ... SELECT unnest each.
    let raw_url = pg.fresh_database()?;
    let (mut raw, conn) = tokio_postgres::connect(&raw_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    raw.batch_execute(
        "CREATE TABLE raw_records (furnisher text COLLATE \"C\", record_id text COLLATE \"C\", \
         subject_id text COLLATE \"C\", version bigint, live boolean, body bytea, updated_micros bigint, \
         PRIMARY KEY (furnisher, record_id)); \
         CREATE INDEX ON raw_records (subject_id, furnisher, record_id) WHERE live; \
         CREATE TABLE raw_log (idx bigint PRIMARY KEY, leaf bytea)",
    )
    .await?;
    let t = Instant::now();
    for chunk in recs.chunks(BATCH) {
        let fu: Vec<&str> = chunk.iter().map(|_| "loader").collect();
        let id: Vec<&str> = chunk.iter().map(|r| r.record_id.as_str()).collect();
        let su: Vec<&str> = chunk.iter().map(|r| r.subject_id.as_str()).collect();
        let ve: Vec<i64> = chunk.iter().map(|r| r.version as i64).collect();
        let li: Vec<bool> = chunk.iter().map(|_| true).collect();
        let bo: Vec<Vec<u8>> = chunk.iter().map(|r| r.encode_to_vec()).collect();
        let up: Vec<i64> = chunk.iter().map(|_| Utc::now().timestamp_micros()).collect();
        let tx = raw.transaction().await?;
        tx.execute(
            "INSERT INTO raw_records SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], \
             $5::bool[], $6::bytea[], $7::bigint[])",
            &[&fu, &id, &su, &ve, &li, &bo, &up],
        )
        .await?;
        tx.commit().await?;
    }
    let raw_rate = recs.len() as f64 / t.elapsed().as_secs_f64();

    let mut cfg = fed.node_config("loader", &[]);
    cfg.store.backend = Backend::Postgres;
    cfg.store.postgres = Some(pg_section(pg.fresh_database()?));
    let ours = node_furnish_rate(fed, cfg, &recs, BATCH).await?;
    rows.push(Row {
        what: format!("postgres: furnish {} records, committed (streamed, batches of {BATCH})", recs.len()),
        ours: format!("{ours:.0} rec/s"),
        baseline: format!("{raw_rate:.0} rec/s raw INSERT"),
        ratio: format!("{:.0} %", 100.0 * ours / raw_rate),
    });

    // Durable appends, one entry per transaction, interleaved in blocks with the baseline.
    let store = open_postgres(&pg.fresh_database()?).await?;
    let n = (sizes.audit_appends / 10).max(200);
    let entries: Vec<_> = (0..n as u64).map(sample_entry).collect();
    let (mut ours, mut raw_t) = (Duration::ZERO, Duration::ZERO);
    let insert = raw.prepare("INSERT INTO raw_log (idx, leaf) VALUES ($1, $2)").await?;
    for (block, chunk) in entries.chunks(50).enumerate() {
        let t = Instant::now();
        for e in chunk {
            store.append_audit(vec![e.clone()]).await?;
        }
        ours += t.elapsed();
        let t = Instant::now();
        for (i, e) in chunk.iter().enumerate() {
            raw.execute(&insert, &[&((block * 50 + i) as i64), &e.to_bytes()]).await?;
        }
        raw_t += t.elapsed();
    }
    store.close().await?;
    let (per, per_raw) = (ours / n as u32, raw_t / n as u32);
    rows.push(Row {
        what: "postgres: audit append, committed, concurrency 1".into(),
        ours: us(per),
        baseline: format!("{} INSERT+COMMIT", us(per_raw)),
        ratio: format!("{:.2}x", per.as_secs_f64() / per_raw.as_secs_f64()),
    });

    // Scores: the same federation size on sled and on PostgreSQL.
    let mut p50 = Vec::new();
    for (tag, on) in [("sled", None), ("postgres", Some(&pg))] {
        let (nodes, sample) = federation(fed, sizes.pg_subjects, &format!("pg-cmp-{tag}"), on).await?;
        let s = ScoringServiceClient::new(fed.client(Role::Application, "scorer", nodes[0].addr).channel()?);
        let lat = score_latency(&s, &sample, sizes.latency_calls.min(1000), true).await?;
        let tp = score_throughput(&s, &sample, sizes.throughput_secs).await?;
        let peer = peer_query_latency(fed, nodes[1].addr, &sample, sizes.latency_calls.min(1000)).await?;
        p50.push((tag, lat, tp, peer));
        drop(nodes);
    }
    let (_, sled, sled_tp, sled_peer) = p50[0];
    let (_, on_pg, pg_tp, pg_peer) = p50[1];
    rows.push(Row {
        what: "postgres: one peer query alone (inquiry committed), p50".into(),
        ours: us(pg_peer.p50),
        baseline: format!("{} on sled", us(sled_peer.p50)),
        ratio: format!("{:.2}x", pg_peer.p50.as_secs_f64() / sled_peer.p50.as_secs_f64()),
    });
    for (name, o, b) in [("p50", on_pg.p50, sled.p50), ("p99", on_pg.p99, sled.p99)] {
        rows.push(Row {
            what: format!("postgres: federated score {name}, {} subjects, all 4 nodes on it", sizes.pg_subjects),
            ours: us(o),
            baseline: format!("{} on sled", us(b)),
            ratio: format!("{:.2}x", o.as_secs_f64() / b.as_secs_f64()),
        });
    }
    rows.push(Row {
        what: "postgres: federated score throughput, concurrency 64".into(),
        ours: format!("{pg_tp:.0} scores/s"),
        baseline: format!("{sled_tp:.0}/s on sled"),
        ratio: format!("{:.0} %", 100.0 * pg_tp / sled_tp),
    });
    Ok(())
}
