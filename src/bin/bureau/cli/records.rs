//! `bureau records …`: furnish records from JSON lines, read one, list a subject's, delete one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};

use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{
    conn::{own_institution, print_status, Conn},
    output,
};
use bureau::{
    convert,
    pb::bureau::v1::{self as pb, records_service_client::RecordsServiceClient},
    CreditRecord,
};

/// `bureau records …`
#[derive(Subcommand, Debug)]
pub enum RecordsCommand {
    /// Furnish records from a JSON-lines file (one record per line), streamed in batches while the
    /// file is read (memory stays bounded whatever its size), with a progress bar on a terminal.
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
            output::emit(json!({ "record_id": id, "deleted_version": r.deleted_version }), || {
                println!("deleted {id} at version {}", r.deleted_version)
            });
        }
    }
    Ok(())
}

/// Streams the records of a JSON-lines file to the node in batches of `batch`. The file is read
/// and parsed inside the request stream, a batch at a time as the call takes them: memory stays
/// bounded whatever the file's size, and each batch is built and freed on the same task (with
/// a reader thread handing batches over, the allocator held freed pages back and memory grew
/// with the file). A progress bar in bytes shows on a terminal.
async fn put(conn: Conn, file: PathBuf, batch: usize) -> Result<()> {
    let mut client = RecordsServiceClient::new(conn.channel()?);
    let (reader, len): (Box<dyn AsyncBufRead + Send + Unpin>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(tokio::io::BufReader::new(tokio::io::stdin())), None)
    } else {
        let f = tokio::fs::File::open(&file).await.with_context(|| file.display().to_string())?;
        let len = f.metadata().await.ok().map(|m| m.len());
        (Box::new(tokio::io::BufReader::with_capacity(256 * 1024, f)), len)
    };
    let bar = output::bar(len, "bytes");
    bar.set_message("furnishing");
    let (failed, mut failure) = tokio::sync::oneshot::channel();
    let source =
        Source { reader, batch: batch.max(1), line: String::new(), lines: 0, bar: bar.clone(), failed: Some(failed) };
    let batches = futures::stream::unfold(source, |mut src| async move {
        match src.next_batch().await {
            Ok(Some(b)) => Some((b, src)),
            Ok(None) => None,
            Err(e) => {
                if let Some(tx) = src.failed.take() {
                    let _ = tx.send(e);
                }
                // Never end: the call is dropped (cancelled at the node) rather than completed.
                std::future::pending().await
            }
        }
    });
    // A bad line cancels the call, so the node does not take the stream as complete (the
    // batches before it are stored: each is durable before the next is read).
    let resp = tokio::select! {
        resp = client.stream_furnish_records(batches) => resp,
        Ok(e) = &mut failure => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    bar.finish_and_clear();
    let resp = resp.map_err(|s| print_status(&s))?.into_inner();
    let rejections: Vec<_> = resp
        .results
        .iter()
        .filter(|r| r.outcome == pb::FurnishOutcome::Rejected as i32)
        .flat_map(|r| r.violations.iter().map(move |v| (r.record_id.clone(), v.field.clone(), v.description.clone())))
        .collect();
    let value = json!({
        "accepted": resp.accepted_count,
        "ignored": resp.ignored_count,
        "rejected": resp.rejected_count,
        "rejections": rejections
            .iter()
            .map(|(id, field, why)| json!({ "record_id": id, "field": field, "description": why }))
            .collect::<Vec<_>>(),
    });
    output::emit(value, || {
        println!("accepted {} ignored {} rejected {}", resp.accepted_count, resp.ignored_count, resp.rejected_count);
        for (id, field, why) in &rejections {
            println!("  rejected {id}: {field}: {why}");
        }
    });
    Ok(())
}

/// A JSON-lines file being cut into batches.
struct Source {
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    batch: usize,
    line: String,
    lines: u64,
    bar: indicatif::ProgressBar,
    failed: Option<tokio::sync::oneshot::Sender<anyhow::Error>>,
}

impl Source {
    /// The next batch; `None` at the end of the file. Fails at the first line that is not a
    /// record, naming it.
    async fn next_batch(&mut self) -> Result<Option<pb::FurnishRecordsRequest>> {
        let mut records = Vec::with_capacity(self.batch);
        while records.len() < self.batch {
            self.line.clear();
            let read = self.reader.read_line(&mut self.line).await?;
            if read == 0 {
                break;
            }
            self.lines += 1;
            self.bar.inc(read as u64);
            if self.line.trim().is_empty() {
                continue;
            }
            let r: CreditRecord = serde_json::from_str(&self.line).with_context(|| format!("line {}", self.lines))?;
            records.push(convert::record_to_pb(&r, chrono::Utc::now()));
        }
        Ok((!records.is_empty()).then_some(pb::FurnishRecordsRequest { records }))
    }
}

/// Prints a subject's records, one line each.
async fn list(conn: Conn, subject: String) -> Result<()> {
    let mut client = RecordsServiceClient::new(conn.channel()?);
    let mut token = String::new();
    let mut rows = Vec::new();
    loop {
        let page = client
            .list_records(pb::ListRecordsRequest {
                parent: format!("subjects/{}", subject),
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
    if output::json() {
        let records = rows
            .into_iter()
            .map(|r| convert::record_from_stored(r).map_err(|e| anyhow::anyhow!(e)))
            .collect::<Result<Vec<_>>>()?;
        output::emit(json!({ "subject": subject, "records": records }), || {});
        return Ok(());
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
