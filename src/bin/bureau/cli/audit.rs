//! `bureau audit …`: a regulator verifies nodes' audit logs, reconciles them, lists the
//! disputes they hold and reads a subject's entries.

use anyhow::{bail, Result};
use clap::Subcommand;

use serde_json::{json, Value};

use super::{
    conn::{print_status, RegulatorConn},
    output,
};
use bureau::{
    pb::bureau::v1::{self as pb, audit_service_client::AuditServiceClient},
    regulator::{self, VerifiedLog},
    Action, Entry,
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
    /// Verify several nodes and list the consent tokens they verified, by the evidence hash each
    /// carried (demand the evidence from the asker; check it with `bureau consent
    /// check-evidence`).
    Consents {
        #[command(flatten)]
        conn: RegulatorConn,
        /// Node addresses (repeat).
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Only this evidence hash (`sha256:<hex>` or `<hex>`).
        #[arg(long)]
        hash: Option<String>,
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
    /// List every threshold attestation a node issued: subject, verifier, outcome and the
    /// query the decision was logged under (the score is in that decision's entry, not here).
    Attestations {
        #[command(flatten)]
        conn: RegulatorConn,
        /// The node's address.
        #[arg(long)]
        node: String,
    },
}

/// Runs a `bureau audit` command.
pub async fn run(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Disputes { conn, nodes } => {
            let logs = verify_each(&conn, &nodes).await?;
            let views = regulator::dispute_states(&logs, chrono::Utc::now());
            let overdue = views.iter().filter(|v| v.state == "overdue").count();
            let open = views.iter().filter(|v| v.state == "open").count();
            let value = json!({
                "logs": logs.iter().map(log_json).collect::<Vec<_>>(),
                "disputes": views.iter().map(|v| json!({
                    "furnisher": v.furnisher, "filer": v.filer, "dispute_id": v.dispute_id,
                    "state": v.state, "deadline": v.deadline, "record": v.record,
                })).collect::<Vec<_>>(),
                "open": open,
                "overdue": overdue,
            });
            output::emit(value, || {
                println!(
                    "{:<12} {:<12} {:<26} {:<10} {:<27} record",
                    "furnisher", "filer", "dispute", "state", "deadline"
                );
                for v in &views {
                    println!(
                        "{:<12} {:<12} {:<26} {:<10} {:<27} {}",
                        v.furnisher, v.filer, v.dispute_id, v.state, v.deadline, v.record
                    );
                }
                println!("{} dispute(s): {open} open, {overdue} overdue", views.len());
            });
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
            output::emit(log_json(&log), || {});
            if !log.problems.is_empty() {
                bail!("{} problem(s) in {}'s log", log.problems.len(), log.origin);
            }
        }
        AuditCommand::Consents { conn, nodes, hash } => {
            let logs = verify_each(&conn, &nodes).await?;
            let uses = regulator::consents_by_hash(&logs, hash.as_deref());
            let rows: Vec<Value> = uses
                .iter()
                .map(|c| {
                    json!({"evidence": c.evidence, "node": c.node, "asker": c.asker, "purpose": c.purpose,
                           "query_id": c.query_id, "detail": c.detail})
                })
                .collect();
            output::emit(json!({ "consents": rows }), || {
                println!("{:<72} {:<12} {:<12} {:<18} {:<37} detail", "evidence", "node", "asker", "purpose", "query");
                for c in &uses {
                    println!(
                        "{:<72} {:<12} {:<12} {:<18} {:<37} {}",
                        c.evidence, c.node, c.asker, c.purpose, c.query_id, c.detail
                    );
                }
                println!("{} consent verification(s)", uses.len());
            });
        }
        AuditCommand::Reconcile { conn, nodes } => {
            let logs = verify_each(&conn, &nodes).await?;
            let mismatches = regulator::reconcile(&logs);
            let flags = regulator::relationship_flags(&logs);
            let bad_logs = logs.iter().filter(|l| !l.problems.is_empty()).count();
            let value = json!({
                "logs": logs.iter().map(log_json).collect::<Vec<_>>(),
                "mismatches": mismatches.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                "flags": flags.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                "reconciled": mismatches.is_empty() && flags.is_empty() && bad_logs == 0,
            });
            output::emit(value, || {
                for m in &mismatches {
                    println!("MISMATCH {m}");
                }
                for f in &flags {
                    println!("FLAG {f}");
                }
                if mismatches.is_empty() && flags.is_empty() && bad_logs == 0 {
                    println!("reconciled {} nodes: every query and dispute is logged at both ends", logs.len());
                }
            });
            if !(mismatches.is_empty() && flags.is_empty() && bad_logs == 0) {
                bail!(
                    "{} mismatch(es), {} relationship purpose(s) without a relationship, {bad_logs} log(s) failing verification",
                    mismatches.len(),
                    flags.len()
                );
            }
        }
        AuditCommand::Entries { conn, node, subject } => {
            let mut rows: Vec<Value> = Vec::new();
            if !output::json() {
                println!(
                    "{:>6} {:<27} {:<16} {:<10} {:<10} {:<18} {:<14} {:<22} {:>4}",
                    "index", "time", "action", "actor", "asked", "purpose", "consent", "outcome", "recs"
                );
            }
            each_entry(&conn, &node, subject.clone(), |index, entry| {
                if output::json() {
                    rows.push(json!({ "index": index, "entry": entry }));
                    return Ok(());
                }
                println!(
                    "{:>6} {:<27} {:<16} {:<10} {:<10} {:<18} {:<14} {:<22} {:>4}",
                    index,
                    entry.time.format("%Y-%m-%d %H:%M:%S%.3f"),
                    serde_json::to_value(entry.action)?.as_str().unwrap_or(""),
                    entry.actor,
                    entry.counterparty,
                    entry.purpose.map(|p| p.as_str()).unwrap_or("-"),
                    if entry.consent_reference.is_empty() { "-" } else { &entry.consent_reference },
                    entry.outcome,
                    entry.record_count
                );
                Ok(())
            })
            .await?;
            output::emit(json!({ "node": node, "subject": subject, "entries": rows }), || {});
        }
        AuditCommand::Attestations { conn, node } => {
            let mut rows: Vec<Value> = Vec::new();
            if !output::json() {
                println!("{:>6} {:<27} {:<24} {:<16} {:<14} jti", "index", "time", "subject", "verifier", "outcome");
            }
            each_entry(&conn, &node, String::new(), |index, e| {
                if e.action == Action::AttestationIssued {
                    let time = e.time.format("%Y-%m-%d %H:%M:%S");
                    rows.push(json!({
                        "index": index, "time": e.time, "subject": e.subject_id,
                        "verifier": e.counterparty, "outcome": e.outcome, "jti": e.query_id,
                    }));
                    if !output::json() {
                        println!(
                            "{index:>6} {time:<27} {:<24} {:<16} {:<14} {}",
                            e.subject_id, e.counterparty, e.outcome, e.query_id
                        );
                    }
                }
                Ok(())
            })
            .await?;
            let n = rows.len();
            output::emit(json!({ "node": node, "attestations": rows }), || println!("{n} attestation(s) issued"));
        }
    }
    Ok(())
}

/// What verifying one node's log found, as `--output json` prints it.
fn log_json(log: &VerifiedLog) -> Value {
    json!({
        "origin": log.origin,
        "size": log.size,
        "root": hex::encode(log.root),
        "previous": log.previous,
        "ok": log.problems.is_empty(),
        "problems": log.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    })
}

/// Calls `f` on each of a node's log entries (about `subject`, or all when empty), in order.
async fn each_entry(
    conn: &RegulatorConn,
    node: &str,
    subject: String,
    mut f: impl FnMut(u64, Entry) -> Result<()>,
) -> Result<()> {
    let mut client = AuditServiceClient::new(conn.channel(node)?);
    let mut token = String::new();
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
            f(e.index, Entry::from_bytes(&e.leaf_data)?)?;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

/// Verifies each node's log, printing what it found.
async fn verify_each(conn: &RegulatorConn, nodes: &[String]) -> Result<Vec<VerifiedLog>> {
    let mut logs = Vec::new();
    for node in nodes {
        let log = regulator::verify(conn.channel(node)?, &conn.keys(), &conn.state).await?;
        if !output::json() {
            report_verified(&log);
        }
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
