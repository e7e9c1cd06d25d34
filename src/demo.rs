//! `bureau demo`: a local federation with sample data, from nothing. Makes a throw-away
//! authority, starts institutions' nodes in this process on loopback, furnishes records,
//! reads them back and shows what a refused request looks like.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use chrono::{Datelike, Months};
use tonic_types::StatusExt;

use crate::{
    convert,
    identity::Role,
    local::LocalFederation,
    pb::bureau::v1::{self as pb, records_service_client::RecordsServiceClient},
    record::{AccountStatus, CreditRecord, PaymentStatus, RecordKind},
    server::{self, RunningNode},
    subject::derive_subject_id,
};

/// The demo's institutions: a payment app, a bike-share operator and a bank.
pub const INSTITUTIONS: [&str; 3] = ["payapp", "bikeshare", "bank"];

/// Options of `bureau demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where to keep the federation; a temporary directory (removed afterwards) when `None`.
    pub dir: Option<PathBuf>,
    /// How many subjects to generate.
    pub subjects: usize,
}

/// Runs the demo, printing to stdout.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = opts.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let fed = LocalFederation::create(&root, "bureau.demo", &INSTITUTIONS, &["pbc"])?;
    println!("federation bureau.demo: authority, 3 institutions and regulator pbc in {}", root.display());

    let mut nodes: Vec<(&str, RunningNode)> = Vec::new();
    for inst in INSTITUTIONS {
        let node = server::start(fed.node_config(inst, &[])).await.with_context(|| format!("starting {inst}"))?;
        println!("  node {inst:<10} listening on {}", node.addr);
        nodes.push((inst, node));
    }

    let key = fed.subject_key();
    let started = Instant::now();
    let mut total = 0;
    for (inst, node) in &nodes {
        let mut client = RecordsServiceClient::new(fed.client(Role::Institution, inst, node.addr).channel()?);
        let records: Vec<pb::CreditRecord> = (0..opts.subjects)
            .flat_map(|i| sample_records(&key, inst, i))
            .map(|r| convert::record_to_pb(&r, chrono::Utc::now()))
            .collect();
        total += records.len();
        let batches: Vec<_> = records.chunks(500).map(|c| pb::FurnishRecordsRequest { records: c.to_vec() }).collect();
        let resp = client.stream_furnish_records(tokio_stream::iter(batches)).await?.into_inner();
        println!(
            "  {inst:<10} furnished {} records (accepted {}, rejected {})",
            resp.accepted_count + resp.ignored_count + resp.rejected_count,
            resp.accepted_count,
            resp.rejected_count
        );
    }
    println!("furnished {total} records for {} subjects in {:.2?}", opts.subjects, started.elapsed());

    let subject = derive_subject_id(&key, "RESIDENT_ID", &demo_identity(0));
    println!("\nsubject RESIDENT_ID {} -> {subject}", demo_identity(0));
    for (inst, node) in &nodes {
        let mut client = RecordsServiceClient::new(fed.client(Role::Institution, inst, node.addr).channel()?);
        let page = client
            .list_records(pb::ListRecordsRequest {
                parent: format!("subjects/{subject}"),
                page_size: 10,
                page_token: String::new(),
            })
            .await?
            .into_inner();
        for r in page.records {
            println!(
                "  {:<10} {:<22} {:<20} balance {:>10} / limit {:>10} {}",
                r.furnisher,
                r.record_id,
                pb::RecordKind::try_from(r.kind).map(|k| k.as_str_name()).unwrap_or("?"),
                r.balance_minor,
                r.credit_limit_minor,
                r.currency_code
            );
        }
    }

    println!("\nrefusals:");
    let (_, bank) = &nodes[2];
    let mut as_regulator = RecordsServiceClient::new(fed.client(Role::Regulator, "pbc", bank.addr).channel()?);
    let one = sample_records(&key, "bank", 0).into_iter().next().map(|r| convert::record_to_pb(&r, chrono::Utc::now()));
    let err = as_regulator.furnish_records(pb::FurnishRecordsRequest { records: one.into_iter().collect() }).await;
    print_refusal("regulator furnishes at bank", err.err());
    let mut as_payapp = RecordsServiceClient::new(fed.client(Role::Institution, "payapp", bank.addr).channel()?);
    let err = as_payapp.get_record(pb::GetRecordRequest { name: "institutions/bank/records/x".into() }).await;
    print_refusal("payapp reads bank's records", err.err());
    let mut bad =
        sample_records(&key, "bank", 1).into_iter().next().map(|r| convert::record_to_pb(&r, chrono::Utc::now()));
    if let Some(b) = bad.as_mut() {
        b.currency_code = "yuan".into();
    }
    let mut as_bank = RecordsServiceClient::new(fed.client(Role::Institution, "bank", bank.addr).channel()?);
    let err = as_bank.furnish_records(pb::FurnishRecordsRequest { records: bad.into_iter().collect() }).await;
    print_refusal("bank furnishes a record with currency \"yuan\"", err.err());

    for (_, node) in nodes {
        node.shutdown().await?;
    }
    println!("\nnodes stopped");
    Ok(())
}

fn print_refusal(what: &str, err: Option<tonic::Status>) {
    match err {
        None => println!("  {what}: unexpectedly allowed"),
        Some(s) => {
            let d = s.get_error_details();
            let reason = d.error_info().map(|i| i.reason.clone()).unwrap_or_default();
            println!("  {what}: {:?} {reason} — {}", s.code(), s.message());
            for v in d.bad_request().map(|b| b.field_violations.clone()).unwrap_or_default() {
                println!("      {}: {}", v.field, v.description);
            }
        }
    }
}

/// A synthetic (obviously fake) identity number for demo subject `i`.
pub fn demo_identity(i: usize) -> String {
    format!("99{i:016}")
}

/// A few plausible records that `institution` holds about demo subject `i`.
fn sample_records(key: &[u8], institution: &str, i: usize) -> Vec<CreditRecord> {
    let subject_id = derive_subject_id(key, "RESIDENT_ID", &demo_identity(i));
    let today = crate::record::today();
    let opened = today.checked_sub_months(Months::new(6 + (i % 60) as u32)).unwrap_or(today);
    let late = i % 7 == 3;
    let kind = match institution {
        "payapp" => RecordKind::Instalment,
        "bikeshare" => RecordKind::DepositFreeRental,
        _ => RecordKind::CreditCard,
    };
    let mut history = vec![PaymentStatus::Current; 12];
    if late {
        history[1] = PaymentStatus::Late30;
    }
    vec![CreditRecord {
        furnisher: institution.to_owned(),
        record_id: format!("{}-{i}", &institution[..3]),
        subject_id,
        kind,
        opened,
        closed: None,
        reported: today.with_day(1).unwrap_or(today).max(opened),
        credit_limit_minor: 100_000 * (1 + (i % 50) as i64),
        balance_minor: 37_000 * (i % 40) as i64,
        currency: "CNY".into(),
        status: if late { AccountStatus::Delinquent } else { AccountStatus::Current },
        days_past_due: if late { 35 } else { 0 },
        payment_history: history,
        version: 1,
    }]
}
