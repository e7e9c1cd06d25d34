//! A person's own business: `bureau report` (their whole file as one HTML page, with the proofs
//! checked on request) and `bureau protect` (a security freeze or fraud alert).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use super::{
    conn::{print_status, Conn},
    output,
};
use bureau::{
    pb::bureau::v1::{self as pb, subjects_service_client::SubjectsServiceClient},
    regulator::{self, KeySource},
};

/// `bureau report`
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    conn: Conn,
    /// The subject id.
    #[arg(long)]
    subject: String,
    /// The person's consent token, purpose subject_request (`bureau consent issue`).
    #[arg(long)]
    consent: String,
    /// Where to write the HTML page.
    #[arg(long)]
    out: PathBuf,
    /// Check every inquiry's proof; needs the nodes' checkpoint keys (`--pki`).
    #[arg(long)]
    verify: bool,
    /// The PKI directory holding `institution-<id>.log.pub` (for --verify).
    #[arg(long)]
    pki: Option<PathBuf>,
}

/// Whether a protection is placed or lifted.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Action {
    /// Place it.
    Place,
    /// Lift it.
    Lift,
}

/// Which protection (the API's `ProtectionKind`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// A security freeze: hard inquiries are refused everywhere.
    Freeze,
    /// A fraud alert: lenders verify identity first, for one year.
    Alert,
}

/// `bureau protect`
#[derive(Args, Debug)]
pub struct ProtectArgs {
    #[command(flatten)]
    conn: Conn,
    /// place or lift.
    #[arg(value_enum, hide_possible_values = true)]
    action: Action,
    /// freeze or alert.
    #[arg(long, value_enum, hide_possible_values = true)]
    kind: Kind,
    /// The subject id.
    #[arg(long)]
    subject: String,
    /// The person's consent token, purpose subject_request (`bureau consent issue`).
    #[arg(long)]
    consent: String,
}

/// Writes a person's report page, checking its inquiries' proofs with `--verify`.
pub async fn report(args: ReportArgs) -> Result<()> {
    let ReportArgs { conn, subject, consent, out, verify, pki } = args;
    let mut c = SubjectsServiceClient::new(conn.channel()?);
    let report = c
        .get_report(pb::GetReportRequest { subject_id: subject, consent_reference: consent })
        .await
        .map_err(|s| print_status(&s))?
        .into_inner();
    bureau::write_report(&out, &report).with_context(|| format!("{}", out.display()))?;
    let score = report.score.clone().unwrap_or_default();
    let frozen = report.protection.as_ref().is_some_and(|p| p.frozen);
    let fraud_alert = report.protection.as_ref().is_some_and(|p| p.fraud_alert);
    let check = match (verify, pki) {
        (false, _) => None,
        (true, None) => bail!("--verify needs --pki (the nodes' checkpoint keys)"),
        (true, Some(pki)) => Some(regulator::check_report(&report, &KeySource::PkiDir(pki))?),
    };
    let value = serde_json::json!({
        "out": &out,
        "score": score.score,
        "accounts": report.records.len(),
        "inquiries": report.inquiries.len(),
        "disputes": report.disputes.len(),
        "frozen": frozen,
        "fraud_alert": fraud_alert,
        "verified": check.as_ref().map(|c| serde_json::json!({
            "proven": c.proven, "unproven": c.unproven, "problems": &c.problems,
        })),
    });
    output::emit(value, || {
        println!(
            "report written to {}: score {}, {} account(s), {} inquiry(ies), {} dispute(s){}{}",
            out.display(),
            score.score,
            report.records.len(),
            report.inquiries.len(),
            report.disputes.len(),
            if frozen { ", FROZEN" } else { "" },
            if fraud_alert { ", FRAUD ALERT" } else { "" }
        );
        if let Some(check) = &check {
            for p in &check.problems {
                println!("PROBLEM {p}");
            }
            println!(
                "{} inquiry(ies) proven in the signed logs of the nodes that recorded them, {} without proof",
                check.proven, check.unproven
            );
        }
    });
    if let Some(check) = check {
        if !check.problems.is_empty() {
            bail!("{} inquiry proof(s) do not hold", check.problems.len());
        }
    }
    Ok(())
}

/// Places or lifts a freeze or an alert.
pub async fn protect(args: ProtectArgs) -> Result<()> {
    let kind = match args.kind {
        Kind::Freeze => pb::ProtectionKind::SecurityFreeze,
        Kind::Alert => pb::ProtectionKind::FraudAlert,
    };
    let mut c = SubjectsServiceClient::new(args.conn.channel()?);
    let req = pb::ProtectionRequest { subject_id: args.subject, kind: kind as i32, consent_reference: args.consent };
    let p = match args.action {
        Action::Place => c.place_protection(req).await,
        Action::Lift => c.lift_protection(req).await,
    }
    .map_err(|s| print_status(&s))?
    .into_inner();
    output::emit(serde_json::json!({ "frozen": p.frozen, "fraud_alert": p.fraud_alert }), || {
        println!("frozen: {}  fraud alert: {}  (every peer is told through the outbox)", p.frozen, p.fraud_alert)
    });
    Ok(())
}
