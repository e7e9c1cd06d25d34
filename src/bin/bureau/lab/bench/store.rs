//! The store-bound parts of the bench: furnishing against raw sled, audit appends against raw
//! sled and a preallocated file, a large log's verification, and the scorecard alone.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;
use prost::Message as _;

use super::{records, us, Row, Sizes};
use bureau::{
    convert,
    pb::bureau::v1::{self as pb, records_service_client::RecordsServiceClient},
    regulator::{self, KeySource},
    testkit::local::LocalFederation,
    testkit::store::{open_sled, PreallocatedLog, RawSled},
    Action, CreditRecord, Entry, Model, NodeConfig, Role,
};

/// Furnishing throughput of a node over gRPC, against raw sled writing the same records.
pub(super) async fn furnish_throughput(fed: &LocalFederation, n: usize, rows: &mut Vec<Row>) -> Result<()> {
    const BATCH: usize = 1000;
    // The same records, encoded once for both sides.
    let mut recs: Vec<pb::CreditRecord> = Vec::with_capacity(n);
    let mut subjects = 0;
    while recs.len() < n {
        subjects += 50_000;
        recs = records(subjects, &["loader"]).take(n).map(|r| convert::record_to_pb(&r, Utc::now())).collect();
    }

    // Baselines: raw sled, one batch of 1000 inserts made durable per batch; first the records
    // alone, then the same keys the node writes per record (the record and its subject-index
    // entry), so the second ratio shows bureau's own overhead above sled's.
    let raw = raw_sled_rate(&fed.root.join("raw-sled"), &recs, BATCH, false).await?;
    let raw_indexed = raw_sled_rate(&fed.root.join("raw-sled-indexed"), &recs, BATCH, true).await?;

    let ours = node_furnish_rate(fed, fed.node_config("loader", &[]), &recs, BATCH).await?;
    rows.push(Row {
        what: format!("furnish {n} records, durable (streamed, batches of {BATCH})"),
        ours: format!("{:.0} rec/s", ours),
        baseline: format!("{:.0} rec/s raw sled", raw),
        ratio: format!("{:.0} %", 100.0 * ours / raw),
    });
    rows.push(Row {
        what: "  the same, against raw sled writing the same keys (record + index)".into(),
        ours: format!("{:.0} rec/s", ours),
        baseline: format!("{:.0} rec/s raw sled", raw_indexed),
        ratio: format!("{:.0} %", 100.0 * ours / raw_indexed),
    });
    Ok(())
}

/// Records per second furnished through a node started with `cfg`, streamed in batches of
/// `batch` by the loader's application; every record must be accepted.
pub(super) async fn node_furnish_rate(
    fed: &LocalFederation,
    cfg: NodeConfig,
    recs: &[pb::CreditRecord],
    batch: usize,
) -> Result<f64> {
    let node = bureau::start(cfg).await?;
    let mut c = RecordsServiceClient::new(fed.client(Role::Application, "loader", node.addr).channel()?)
        .max_encoding_message_size(64 << 20);
    let batches: Vec<pb::FurnishRecordsRequest> =
        recs.chunks(batch).map(|c| pb::FurnishRecordsRequest { records: c.to_vec() }).collect();
    let t = Instant::now();
    let resp = c.stream_furnish_records(tokio_stream::iter(batches)).await?.into_inner();
    let rate = recs.len() as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(resp.accepted_count as usize == recs.len(), "accepted {} of {}", resp.accepted_count, recs.len());
    node.shutdown().await?;
    Ok(rate)
}

/// Records per second of raw sled `apply_batch` into a fresh database at `dir`, each batch made
/// durable; with `index`, each record also gets the subject-index key the node writes.
async fn raw_sled_rate(dir: &std::path::Path, recs: &[pb::CreditRecord], batch: usize, index: bool) -> Result<f64> {
    let raw = RawSled::open(dir, 128 << 20)?;
    let t = Instant::now();
    for chunk in recs.chunks(batch) {
        let mut pairs = Vec::with_capacity(chunk.len() * 2);
        for r in chunk {
            let mut k = r.furnisher.as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(r.record_id.as_bytes());
            if index {
                let mut s = r.subject_id.as_bytes().to_vec();
                s.extend_from_slice(&k);
                pairs.push((s, Vec::new()));
            }
            pairs.push((k, r.encode_to_vec()));
        }
        raw.apply(pairs)?;
        raw.durable().await?;
    }
    Ok(recs.len() as f64 / t.elapsed().as_secs_f64())
}

/// A realistic entry: an outbound query with a subject, purpose and consent.
pub(super) fn sample_entry(i: u64) -> Entry {
    let mut e = Entry::new(Action::QueryOutbound, "scorer", "answered");
    e.query_id = format!("{:032x}", u128::from(i) * 0x9E37_79B9_7F4A_7C15);
    e.counterparty = "peer-a".into();
    e.subject_id = bureau::derive_subject_id(b"k", "RESIDENT_ID", &i.to_string());
    e.purpose = Some(bureau::Purpose::DepositWaiver);
    e.consent_reference = format!("consent-{i}");
    e.record_count = 3;
    e
}

/// Audit appends (unflushed, durable, against raw sled and the pwrite+fdatasync floor) and a
/// regulator's verification of a large log over gRPC.
pub(super) async fn audit(fed: &LocalFederation, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    // Appends: one entry per transaction, as a peer query or refusal writes them.
    let store = open_sled(&fed.root.join("audit-append"), 128 << 20).await?;
    let raw_db = RawSled::open(&fed.root.join("audit-append-raw"), 128 << 20)?;
    let entries: Vec<_> = (0..sizes.audit_appends as u64).map(sample_entry).collect();
    let t = Instant::now();
    for e in &entries {
        store.append_audit(vec![e.clone()]).await?;
    }
    let unflushed = entries.len() as f64 / t.elapsed().as_secs_f64();
    // Flush that backlog before timing durable appends: a node never holds thousands of
    // unflushed entries, and one flush of them slows the next few hundred (sled's cleanup).
    // With the write-ahead log a sync no longer flushes sled; closing does (a last checkpoint).
    store.sync().await?;
    store.close().await?;
    let store = open_sled(&fed.root.join("audit-append"), 128 << 20).await?;
    // Durable appends against raw sled insert+flush of the same bytes (a database of its own),
    // interleaved in blocks so both meet the same background writeback.
    let n_sync = (sizes.audit_appends / 10).max(100);
    let mut floor = PreallocatedLog::create(&fed.root.join("audit-append.log"), 64 << 20)?;
    let (mut ours, mut raw, mut file) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (block, chunk) in entries[..n_sync].chunks(50).enumerate() {
        let t = Instant::now();
        for e in chunk {
            store.append_audit(vec![e.clone()]).await?;
            store.sync().await?;
        }
        ours += t.elapsed();
        let t = Instant::now();
        for (i, e) in chunk.iter().enumerate() {
            raw_db.apply([(((block * 50 + i) as u64).to_be_bytes().to_vec(), e.to_bytes())])?;
            raw_db.durable().await?;
        }
        raw += t.elapsed();
        let t = Instant::now();
        for e in chunk {
            floor.append(&e.to_bytes())?;
        }
        file += t.elapsed();
    }
    let per_durable = ours / n_sync as u32;
    let raw_durable = raw / n_sync as u32;
    let file_durable = file / n_sync as u32;
    store.close().await?;
    drop(raw_db);
    rows.push(Row {
        what: "audit append, one entry per transaction, not flushed".into(),
        ours: format!("{unflushed:.0} appends/s"),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    rows.push(Row {
        what: "audit append made durable (flush each), concurrency 1".into(),
        ours: us(per_durable),
        baseline: format!("{} raw sled+flush", us(raw_durable)),
        ratio: format!("{:.2}x", per_durable.as_secs_f64() / raw_durable.as_secs_f64()),
    });
    rows.push(Row {
        what: "audit append made durable, vs the floor: pwrite + fdatasync, preallocated file".into(),
        ours: us(per_durable),
        baseline: format!("{} pwrite+fdatasync", us(file_durable)),
        ratio: format!("{:.2}x", per_durable.as_secs_f64() / file_durable.as_secs_f64()),
    });

    // Verification of a large log over gRPC, against hashing the same entries in memory.
    let dir = fed.root.join("data").join("loader");
    let _ = std::fs::remove_dir_all(&dir);
    let store = open_sled(&dir, 256 << 20).await?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..sizes.audit_verify {
        batch.push(sample_entry(i));
        if batch.len() == 10_000 {
            store.append_audit(std::mem::take(&mut batch)).await?;
        }
    }
    store.append_audit(batch).await?;
    store.close().await?;
    let t = Instant::now();
    let mut root = bureau::merkle::StreamingRoot::default();
    for i in 0..sizes.audit_verify {
        root.push(&sample_entry(i).to_bytes());
    }
    let hashing = t.elapsed();
    let node = bureau::start(fed.node_config("loader", &[])).await?;
    let mut reg = fed.client(Role::Regulator, "pbc", node.addr);
    reg.expect = None;
    let state = fed.root.join("regulator-state");
    let t = Instant::now();
    let log = regulator::verify(reg.channel()?, &KeySource::PkiDir(fed.pki.0.clone()), &state).await?;
    let verify = t.elapsed();
    anyhow::ensure!(log.problems.is_empty(), "bench log does not verify: {:?}", log.problems);
    node.shutdown().await?;
    rows.push(Row {
        what: format!("audit verify of a {}-entry log over gRPC (fetch, parse, hash)", sizes.audit_verify),
        ours: format!("{:.2} s", verify.as_secs_f64()),
        baseline: format!("{:.2} s hash only", hashing.as_secs_f64()),
        ratio: format!("{:.1}x", verify.as_secs_f64() / hashing.as_secs_f64()),
    });
    Ok(())
}

/// The scorecard alone, in memory: scores per second over generated subjects.
pub(super) fn scoring_alone(n: usize, rows: &mut Vec<Row>) {
    let model = Model::embedded_default();
    let mut by_subject: std::collections::BTreeMap<String, Vec<CreditRecord>> = Default::default();
    for r in records(n / 3, &["a", "b", "c"]) {
        by_subject.entry(r.subject_id.clone()).or_default().push(r);
    }
    let subjects: Vec<Vec<CreditRecord>> = by_subject.into_values().collect();
    let today = Utc::now().date_naive();
    let t = Instant::now();
    let mut checksum = 0i64;
    let mut scored = 0usize;
    while t.elapsed() < Duration::from_secs(2) {
        for s in &subjects {
            checksum += model.score(s, &[], today).score as i64;
        }
        scored += subjects.len();
    }
    let rate = scored as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("scorecard alone, in memory ({} subjects, checksum {})", subjects.len(), checksum % 1000),
        ours: format!("{:.0} scores/s", rate),
        baseline: "-".into(),
        ratio: "-".into(),
    });
}
