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
    /// With --verify: a C2SP tlog-policy file; show which witnesses cosigned each node's
    /// checkpoint and flag those below its quorum.
    #[arg(long, requires = "verify")]
    policy: Option<PathBuf>,
    /// Also write each proven inquiry as a C2SP tlog-proof receipt in this directory (checked
    /// offline with `bureau proof verify`).
    #[arg(long)]
    receipts: Option<PathBuf>,
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
    let ReportArgs { conn, subject, consent, out, verify, pki, policy, receipts } = args;
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
    let mut receipts_written = None;
    if let Some(dir) = receipts {
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let files = regulator::receipts(&report);
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
        }
        receipts_written = Some((files.len(), dir));
    }
    let check = match (verify, pki) {
        (false, _) => None,
        (true, None) => bail!("--verify needs --pki (the nodes' checkpoint keys)"),
        (true, Some(pki)) => Some(regulator::check_report(&report, &KeySource::PkiDir(pki))?),
    };
    let witnesses = match (verify, policy) {
        (true, Some(policy)) => {
            let text = std::fs::read_to_string(&policy).with_context(|| format!("{}", policy.display()))?;
            regulator::report_witnesses(&report, &text)?
        }
        _ => Vec::new(),
    };
    let below = witnesses.iter().filter(|w| !w.quorum).count();
    let value = serde_json::json!({
        "out": &out,
        "score": score.score,
        "accounts": report.records.len(),
        "inquiries": report.inquiries.len(),
        "disputes": report.disputes.len(),
        "frozen": frozen,
        "fraud_alert": fraud_alert,
        "receipts": receipts_written.as_ref().map(|(n, _)| n),
        "verified": check.as_ref().map(|c| serde_json::json!({
            "proven": c.proven, "unproven": c.unproven, "problems": &c.problems,
        })),
        "witnesses": witnesses.iter().map(|w| serde_json::json!({
            "origin": w.origin, "size": w.size, "cosigners": w.cosigners, "quorum": w.quorum,
        })).collect::<Vec<_>>(),
    });
    output::emit(value, || {
        if let Some((n, dir)) = &receipts_written {
            println!("{n} receipt(s) written to {}", dir.display());
        }
        for w in &witnesses {
            let by = if w.cosigners.is_empty() { "nobody".to_owned() } else { w.cosigners.join(", ") };
            let flag = if w.quorum { "" } else { " -- BELOW QUORUM" };
            println!("{} checkpoint of {} entries cosigned by {by}{flag}", w.origin, w.size);
        }
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
        if below > 0 {
            bail!("{below} checkpoint(s) below the tlog policy's quorum");
        }
    }
    Ok(())
}

/// `bureau proof verify`
#[derive(Args, Debug)]
pub struct ProofVerifyArgs {
    /// The receipt (`.tlog-proof`).
    #[arg(long)]
    proof: PathBuf,
    /// The PKI directory holding the nodes' `institution-<id>.log.pub` keys.
    #[arg(long)]
    pki: PathBuf,
    /// A C2SP tlog-policy file: also check the witnesses' cosignatures and the quorum.
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// Checks a receipt offline: the node's signature on its checkpoint, the entry's inclusion,
/// and with `--policy` the witnesses and quorum. Exits non-zero when any of it fails.
pub fn proof_verify(args: ProofVerifyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.proof).with_context(|| format!("{}", args.proof.display()))?;
    let policy = match &args.policy {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?),
        None => None,
    };
    let r = regulator::verify_receipt(&text, &KeySource::PkiDir(args.pki), policy.as_deref())?;
    let e = &r.entry;
    println!(
        "{} entry {}: {:?} by {} at {} ({}), in the signed log",
        r.origin, r.index, e.action, e.actor, e.time, e.outcome
    );
    match r.quorum {
        Some(q) => {
            let by = if r.cosigners.is_empty() { "nobody".to_owned() } else { r.cosigners.join(", ") };
            println!("cosigned by {by}: quorum {}", if q { "met" } else { "NOT met" });
            if !q {
                bail!("the checkpoint is below the policy's quorum");
            }
        }
        None => println!("witnesses not checked (no --policy)"),
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
