//! `bureau audit …`: a regulator verifies nodes' audit logs, reconciles them, lists the
//! disputes they hold and reads a subject's entries.

use anyhow::{bail, Result};
use clap::Subcommand;

use super::conn::{print_status, RegulatorConn};
use bureau::{
    pb::bureau::v1::{self as pb, audit_service_client::AuditServiceClient},
    regulator::{self, VerifiedLog},
    Entry,
};

/// `bureau audit …`
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Fetch a node's checkpoint and entries, recompute the root, check the signature and the
    /// consistency with the checkpoint seen last time. Exits non-zero on any mismatch.
    Verify {
        #[command(flatten)]
        conn: RegulatorConn,
        /// The node's address.
        #[arg(long)]
        node: String,
        /// The node's C2SP endpoint (`tlog.listen`): also check its witnessed checkpoint.
        #[arg(long, requires = "policy")]
        tlog: Option<std::net::SocketAddr>,
        /// The C2SP tlog-policy file naming the witnesses and the quorum.
        #[arg(long, requires = "tlog")]
        policy: Option<std::path::PathBuf>,
    },
    /// Verify several nodes and check that every query logged by one end is logged by the
    /// other. Exits non-zero on any mismatch.
    Reconcile {
        #[command(flatten)]
        conn: RegulatorConn,
        /// Node addresses (repeat).
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
    },
    /// Verify several nodes and list the disputes their logs hold with states and deadlines
    /// (open, overdue, or how they were resolved); statements are never in the log.
    Disputes {
        #[command(flatten)]
        conn: RegulatorConn,
        /// Node addresses (repeat).
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
    },
    /// Print a node's log entries about one subject.
    Entries {
        #[command(flatten)]
        conn: RegulatorConn,
        /// The node's address.
        #[arg(long)]
        node: String,
        /// The subject id.
        #[arg(long)]
        subject: String,
    },
}

/// Runs a `bureau audit` command.
pub async fn run(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Disputes { conn, nodes } => {
            let logs = verify_each(&conn, &nodes).await?;
            let views = regulator::dispute_states(&logs, chrono::Utc::now());
            println!("{:<12} {:<12} {:<26} {:<10} {:<27} record", "furnisher", "filer", "dispute", "state", "deadline");
            for v in &views {
                println!(
                    "{:<12} {:<12} {:<26} {:<10} {:<27} {}",
                    v.furnisher, v.filer, v.dispute_id, v.state, v.deadline, v.record
                );
            }
            let overdue = views.iter().filter(|v| v.state == "overdue").count();
            let open = views.iter().filter(|v| v.state == "open").count();
            println!("{} dispute(s): {open} open, {overdue} overdue", views.len());
        }
        AuditCommand::Verify { conn, node, tlog, policy } => {
            let log = verify_each(&conn, std::slice::from_ref(&node)).await?.remove(0);
            if let (Some(at), Some(policy)) = (tlog, policy) {
                let text = std::fs::read_to_string(&policy)?;
                let w = regulator::witnessed(&conn.tlog_client(at)?, &conn.keys(), &text).await?;
                let by = if w.cosigners.is_empty() { "nobody".to_owned() } else { w.cosigners.join(", ") };
                println!("{}: witnessed checkpoint of {} entries cosigned by {by}", w.origin, w.size);
                if !w.quorum {
                    bail!("{}'s checkpoint is BELOW the policy's quorum", w.origin);
                }
            }
            if !log.problems.is_empty() {
                bail!("{} problem(s) in {}'s log", log.problems.len(), log.origin);
            }
        }
        AuditCommand::Reconcile { conn, nodes } => {
            let logs = verify_each(&conn, &nodes).await?;
            let mismatches = regulator::reconcile(&logs);
            let bad_logs = logs.iter().filter(|l| !l.problems.is_empty()).count();
            for m in &mismatches {
                println!("MISMATCH {m}");
            }
            if mismatches.is_empty() && bad_logs == 0 {
                println!("reconciled {} nodes: every query and dispute is logged at both ends", logs.len());
            } else {
                bail!("{} mismatch(es), {bad_logs} log(s) failing verification", mismatches.len());
            }
        }
        AuditCommand::Entries { conn, node, subject } => {
            let mut client = AuditServiceClient::new(conn.channel(&node)?);
            let mut token = String::new();
            println!(
                "{:>6} {:<27} {:<16} {:<10} {:<10} {:<18} {:<14} {:<22} {:>4}",
                "index", "time", "action", "actor", "asked", "purpose", "consent", "outcome", "recs"
            );
            loop {
                let page = client
                    .list_audit_entries(pb::ListAuditEntriesRequest {
                        subject_id: subject.clone(),
                        page_size: 500,
                        page_token: token,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| print_status(&s))?
                    .into_inner();
                for e in &page.entries {
                    let entry = Entry::from_bytes(&e.leaf_data)?;
                    println!(
                        "{:>6} {:<27} {:<16} {:<10} {:<10} {:<18} {:<14} {:<22} {:>4}",
                        e.index,
                        entry.time.format("%Y-%m-%d %H:%M:%S%.3f"),
                        serde_json::to_value(entry.action)?.as_str().unwrap_or(""),
                        entry.actor,
                        entry.counterparty,
                        entry.purpose.map(|p| p.as_str()).unwrap_or("-"),
                        if entry.consent_reference.is_empty() { "-" } else { &entry.consent_reference },
                        entry.outcome,
                        entry.record_count
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
    }
    Ok(())
}

/// Verifies each node's log, printing what it found.
async fn verify_each(conn: &RegulatorConn, nodes: &[String]) -> Result<Vec<VerifiedLog>> {
    let mut logs = Vec::new();
    for node in nodes {
        let log = regulator::verify(conn.channel(node)?, &conn.keys(), &conn.state).await?;
        report_verified(&log);
        logs.push(log);
    }
    Ok(logs)
}

/// Prints what verifying one node's log found.
fn report_verified(log: &VerifiedLog) {
    let since = log.previous.map(|p| format!(", consistent with the {p} seen before")).unwrap_or_default();
    if log.problems.is_empty() {
        println!(
            "{}: {} entries, root {}, signature ok, entries match{since}",
            log.origin,
            log.size,
            hex::encode(log.root)
        );
    } else {
        println!("{}: {} entries, root {}: FAILED", log.origin, log.size, hex::encode(log.root));
        for p in &log.problems {
            println!("  {p}");
        }
    }
    for a in &log.alarms {
        println!("  ALARM {a}");
    }
}
