//! `bureau records …`: furnish records from JSON lines, read one, list a subject's, delete one.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::PathBuf,
};

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};

use super::conn::{own_institution, print_status, Conn};
use bureau::{
    convert,
    pb::bureau::v1::{self as pb, records_service_client::RecordsServiceClient},
    CreditRecord,
};

/// `bureau records …`
#[derive(Subcommand, Debug)]
pub enum RecordsCommand {
    /// Furnish records from a JSON-lines file (one record per line), streamed in batches.
    Put {
        #[command(flatten)]
        conn: Conn,
        /// The file; `-` for standard input.
        #[arg(long)]
        file: PathBuf,
        /// Records per streamed batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Show one record.
    Get {
        #[command(flatten)]
        conn: Conn,
        /// The record id.
        #[arg(long)]
        id: String,
    },
    /// List a subject's records.
    List {
        #[command(flatten)]
        conn: Conn,
        /// The subject id.
        #[arg(long)]
        subject: String,
    },
    /// Delete a record.
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// The record id.
        #[arg(long)]
        id: String,
        /// Reason: furnished_in_error, identity_theft, dispute_resolved, retention_expired.
        #[arg(long, value_enum, ignore_case = true, hide_possible_values = true)]
        reason: DeletionReason,
        /// A note for the audit trail.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Why a furnisher deletes a record (the API's `DeletionReason`).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DeletionReason {
    /// It should never have been furnished.
    FurnishedInError,
    /// It was opened by an impostor.
    IdentityTheft,
    /// A dispute about it was resolved by deleting it.
    DisputeResolved,
    /// Its retention period is over.
    RetentionExpired,
}

impl From<DeletionReason> for pb::DeletionReason {
    fn from(r: DeletionReason) -> Self {
        match r {
            DeletionReason::FurnishedInError => Self::FurnishedInError,
            DeletionReason::IdentityTheft => Self::IdentityTheft,
            DeletionReason::DisputeResolved => Self::DisputeResolved,
            DeletionReason::RetentionExpired => Self::RetentionExpired,
        }
    }
}

/// Runs a `bureau records` command.
pub async fn run(cmd: RecordsCommand) -> Result<()> {
    match cmd {
        RecordsCommand::Put { conn, file, batch } => put(conn, file, batch).await?,
        RecordsCommand::Get { conn, id } => {
            let c = conn.resolve()?;
            let owner = own_institution(&c)?;
            let mut client = RecordsServiceClient::new(c.channel()?);
            let r = client
                .get_record(pb::GetRecordRequest { name: convert::record_name(&owner, &id) })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            let r = convert::record_from_stored(r).map_err(|e| anyhow::anyhow!(e))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        RecordsCommand::List { conn, subject } => list(conn, subject).await?,
        RecordsCommand::Delete { conn, id, reason, note } => {
            let c = conn.resolve()?;
            let owner = own_institution(&c)?;
            let mut client = RecordsServiceClient::new(c.channel()?);
            let r = client
                .delete_record(pb::DeleteRecordRequest {
                    name: convert::record_name(&owner, &id),
                    reason: pb::DeletionReason::from(reason) as i32,
                    note,
                })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            println!("deleted {id} at version {}", r.deleted_version);
        }
    }
    Ok(())
}

/// Streams the records of a JSON-lines file to the node in batches of `batch`.
async fn put(conn: Conn, file: PathBuf, batch: usize) -> Result<()> {
    let mut client = RecordsServiceClient::new(conn.channel()?);
    let reader: Box<dyn BufRead + Send> = if file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(fs::File::open(&file).with_context(|| file.display().to_string())?))
    };
    let mut batches = Vec::new();
    let mut current = Vec::with_capacity(batch);
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: CreditRecord = serde_json::from_str(&line).with_context(|| format!("line {}", n + 1))?;
        current.push(convert::record_to_pb(&r, chrono::Utc::now()));
        if current.len() == batch.max(1) {
            batches.push(pb::FurnishRecordsRequest { records: std::mem::take(&mut current) });
        }
    }
    if !current.is_empty() {
        batches.push(pb::FurnishRecordsRequest { records: current });
    }
    let resp =
        client.stream_furnish_records(tokio_stream::iter(batches)).await.map_err(|s| print_status(&s))?.into_inner();
    println!("accepted {} ignored {} rejected {}", resp.accepted_count, resp.ignored_count, resp.rejected_count);
    for r in resp.results.iter().filter(|r| r.outcome == pb::FurnishOutcome::Rejected as i32) {
        for v in &r.violations {
            println!("  rejected {}: {}: {}", r.record_id, v.field, v.description);
        }
    }
    Ok(())
}

/// Prints a subject's records, one line each.
async fn list(conn: Conn, subject: String) -> Result<()> {
    let mut client = RecordsServiceClient::new(conn.channel()?);
    let mut token = String::new();
    let mut rows = Vec::new();
    loop {
        let page = client
            .list_records(pb::ListRecordsRequest {
                parent: format!("subjects/{subject}"),
                page_size: 100,
                page_token: token,
            })
            .await
            .map_err(|s| print_status(&s))?
            .into_inner();
        rows.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    println!("{:<28} {:<18} {:<14} {:>12} {:>12} {:>4} v", "record", "kind", "status", "limit", "balance", "dpd");
    for r in rows {
        println!(
            "{:<28} {:<18} {:<14} {:>12} {:>12} {:>4} {}",
            r.record_id,
            pb::RecordKind::try_from(r.kind).map(|k| k.as_str_name().trim_start_matches("RECORD_KIND_")).unwrap_or("?"),
            pb::AccountStatus::try_from(r.status)
                .map(|k| k.as_str_name().trim_start_matches("ACCOUNT_STATUS_"))
                .unwrap_or("?"),
            r.credit_limit_minor,
            r.balance_minor,
            r.days_past_due,
            r.version
        );
    }
    Ok(())
}
