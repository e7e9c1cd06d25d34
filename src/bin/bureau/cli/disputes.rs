//! `bureau disputes …`: file, read, list and resolve disputes at a node, as one of its
//! applications.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};

use super::{
    conn::{print_status, Conn},
    output,
};
use bureau::pb::bureau::v1::{self as pb, disputes_service_client::DisputesServiceClient};

/// `bureau disputes …`
#[derive(Subcommand, Debug)]
pub enum DisputesCommand {
    /// File a dispute for a subject against a record (any institution's).
    File {
        #[command(flatten)]
        conn: Conn,
        /// The record, `institutions/{furnisher}/records/{record_id}`.
        #[arg(long)]
        record: String,
        /// The subject id.
        #[arg(long)]
        subject: String,
        /// not_mine, inaccurate_balance, inaccurate_status, inaccurate_payment_history,
        /// account_closed, identity_theft or other.
        #[arg(long, value_enum, default_value_t = Reason::Other, hide_possible_values = true)]
        reason: Reason,
        /// The subject's statement (at most 500 characters).
        #[arg(long, default_value = "")]
        statement: String,
        /// The person's consent token, purpose subject_request (`bureau consent issue`).
        #[arg(long)]
        consent: String,
    },
    /// Read a dispute by name.
    Get {
        #[command(flatten)]
        conn: Conn,
        /// `institutions/{filer}/disputes/{id}`.
        #[arg(long)]
        name: String,
    },
    /// List the disputes against this institution's records.
    List {
        #[command(flatten)]
        conn: Conn,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
    /// Resolve a dispute against one of this institution's records: verified or deleted (a
    /// correction is made with the API, carrying the corrected record).
    Resolve {
        #[command(flatten)]
        conn: Conn,
        /// `institutions/{filer}/disputes/{id}`.
        #[arg(long)]
        name: String,
        /// verified or deleted.
        #[arg(long, value_enum, hide_possible_values = true)]
        resolution: Resolution,
    },
}

/// Why a subject disputes a record: the command line's spelling of the API's `DisputeReason`
/// (mapped to `pb`, like every client choice here).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Reason {
    /// The account is not theirs.
    NotMine,
    /// The balance is wrong.
    InaccurateBalance,
    /// The account's status is wrong.
    InaccurateStatus,
    /// The payment history is wrong.
    InaccuratePaymentHistory,
    /// The account was closed.
    AccountClosed,
    /// The account was opened by an impostor.
    IdentityTheft,
    /// Anything else (say what in the statement).
    Other,
}

impl From<Reason> for pb::DisputeReason {
    fn from(r: Reason) -> Self {
        match r {
            Reason::NotMine => Self::NotMine,
            Reason::InaccurateBalance => Self::InaccurateBalance,
            Reason::InaccurateStatus => Self::InaccurateStatus,
            Reason::InaccuratePaymentHistory => Self::InaccuratePaymentHistory,
            Reason::AccountClosed => Self::AccountClosed,
            Reason::IdentityTheft => Self::IdentityTheft,
            Reason::Other => Self::Other,
        }
    }
}

/// How a furnisher resolves a dispute from the command line (a correction needs the corrected
/// record, so it is made with the API).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resolution {
    /// The record stands as furnished.
    Verified,
    /// The record is deleted.
    Deleted,
}

/// Prints a dispute: its record, status, deadline, statement and any rejection.
fn print_dispute(d: &pb::Dispute) {
    let status = pb::DisputeStatus::try_from(d.status).map(|s| s.as_str_name()).unwrap_or("?");
    let deadline = d
        .deadline
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "(not yet acknowledged)".into());
    println!("{}", d.name);
    println!("  record    {}", d.record);
    println!(
        "  status    {}{}",
        status.trim_start_matches("DISPUTE_STATUS_"),
        if d.overdue { " (OVERDUE: record suppressed)" } else { "" }
    );
    println!("  deadline  {deadline}");
    if !d.statement.is_empty() {
        println!("  statement {}", d.statement);
    }
    if !d.rejection.is_empty() {
        println!("  rejection {}", d.rejection);
    }
}

/// A dispute as `--output json` prints it.
fn dispute_json(d: &pb::Dispute) -> serde_json::Value {
    serde_json::json!({
        "name": d.name,
        "record": d.record,
        "status": pb::DisputeStatus::try_from(d.status)
            .map(|s| s.as_str_name().trim_start_matches("DISPUTE_STATUS_").to_lowercase())
            .unwrap_or_default(),
        "overdue": d.overdue,
        "deadline": d.deadline.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)).map(|t| t.to_rfc3339()),
        "statement": d.statement,
        "rejection": d.rejection,
    })
}

/// Prints one dispute as text or JSON.
fn show(d: &pb::Dispute) {
    output::emit(dispute_json(d), || print_dispute(d));
}

/// Runs a `bureau disputes` command.
pub async fn run(cmd: DisputesCommand) -> Result<()> {
    match cmd {
        DisputesCommand::File { conn, record, subject, reason, statement, consent } => {
            let reason = pb::DisputeReason::from(reason);
            let mut c = DisputesServiceClient::new(conn.channel()?);
            let req = pb::FileDisputeRequest {
                record,
                subject_id: subject,
                reason: reason as i32,
                statement,
                consent_reference: consent,
            };
            let d = c.file_dispute(req).await.map_err(|s| print_status(&s))?.into_inner();
            show(&d);
        }
        DisputesCommand::Get { conn, name } => {
            let mut c = DisputesServiceClient::new(conn.channel()?);
            let d = c.get_dispute(pb::GetDisputeRequest { name }).await.map_err(|s| print_status(&s))?.into_inner();
            show(&d);
        }
        DisputesCommand::List { conn, all } => {
            let mut c = DisputesServiceClient::new(conn.channel()?);
            let mut token = String::new();
            let mut all_pages = Vec::new();
            loop {
                let page = c
                    .list_disputes(pb::ListDisputesRequest { include_resolved: all, page_size: 0, page_token: token })
                    .await
                    .map_err(|s| print_status(&s))?
                    .into_inner();
                all_pages.extend(page.disputes);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            let value = serde_json::json!({ "disputes": all_pages.iter().map(dispute_json).collect::<Vec<_>>() });
            output::emit(value, || all_pages.iter().for_each(print_dispute));
        }
        DisputesCommand::Resolve { conn, name, resolution } => {
            let resolution = match resolution {
                Resolution::Verified => pb::DisputeResolution::Verified,
                Resolution::Deleted => pb::DisputeResolution::Deleted,
            };
            let mut c = DisputesServiceClient::new(conn.channel()?);
            let d = c
                .resolve_dispute(pb::ResolveDisputeRequest {
                    name,
                    resolution: resolution as i32,
                    corrected_record: None,
                })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            show(&d);
        }
    }
    Ok(())
}
