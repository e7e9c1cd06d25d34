//! `bureau score` and `bureau decide`: a subject's federated score, and a policy's decision.

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::conn::{print_status, Conn};
use super::output;
use crate::show::{print_score, score_json};
use bureau::pb::bureau::v1::{
    self as pb, decisions_service_client::DecisionsServiceClient, scoring_service_client::ScoringServiceClient,
};

/// Why a score is asked for: the command line's spelling of the API's `Purpose` (a client speaks
/// the wire, so it maps to `pb`, and the library's domain types stay free of clap).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Purpose {
    /// A new application for credit.
    CreditApplication,
    /// Reviewing an existing account.
    AccountReview,
    /// Waiving a deposit (rental, bike share).
    DepositWaiver,
    /// Collecting a debt.
    Collections,
    /// The person asking about themselves.
    SubjectRequest,
}

impl From<Purpose> for pb::Purpose {
    fn from(p: Purpose) -> Self {
        match p {
            Purpose::CreditApplication => Self::CreditApplication,
            Purpose::AccountReview => Self::AccountReview,
            Purpose::DepositWaiver => Self::DepositWaiver,
            Purpose::Collections => Self::Collections,
            Purpose::SubjectRequest => Self::SubjectRequest,
        }
    }
}

/// `bureau score`
#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    conn: Conn,
    /// The subject id.
    #[arg(long)]
    subject: String,
    /// Purpose: credit_application, account_review, deposit_waiver, collections, subject_request.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Purpose::AccountReview, hide_possible_values = true)]
    purpose: Purpose,
    /// The consent token the application signed for this subject and purpose (`bureau consent
    /// issue`), where the purpose needs one.
    #[arg(long, default_value = "")]
    consent: String,
    /// Also show the smallest changes within the person's control that reach this score.
    #[arg(long, value_name = "TARGET")]
    what_if: Option<i32>,
}

/// What deciding a policy for a person needs, shared by `bureau decide` and `bureau attest
/// issue`.
#[derive(Args, Debug)]
pub struct PolicyAsk {
    #[command(flatten)]
    pub conn: Conn,
    /// The subject id.
    #[arg(long)]
    pub subject: String,
    /// The policy's name in the node's configuration.
    #[arg(long)]
    pub policy: String,
    /// The consent token the application signed for this subject and the policy's purpose
    /// (`bureau consent issue`).
    #[arg(long, default_value = "")]
    pub consent: String,
}

/// `bureau decide`
#[derive(Args, Debug)]
pub struct DecideArgs {
    #[command(flatten)]
    ask: PolicyAsk,
    /// For a decline, write the adverse-action notice here as an HTML page (0600).
    #[arg(long)]
    notice: Option<std::path::PathBuf>,
}

/// Prints a subject's federated score.
pub async fn score(args: ScoreArgs) -> Result<()> {
    let channel = args.conn.channel()?;
    let purpose = pb::Purpose::from(args.purpose) as i32;
    let s = match args.what_if {
        Some(target) => DecisionsServiceClient::new(channel)
            .what_if(pb::WhatIfRequest { subject_id: args.subject, purpose, consent_reference: args.consent, target })
            .await
            .map_err(|s| print_status(&s))?
            .into_inner(),
        None => ScoringServiceClient::new(channel)
            .get_score(pb::GetScoreRequest { subject_id: args.subject, purpose, consent_reference: args.consent })
            .await
            .map_err(|s| print_status(&s))?
            .into_inner(),
    };
    output::emit(score_json(&s), || print_score(&s));
    Ok(())
}

/// Prints a policy's decision and the score behind it.
pub async fn decide(args: DecideArgs) -> Result<()> {
    let PolicyAsk { conn, subject, policy, consent } = args.ask;
    let mut c = ScoringServiceClient::new(conn.channel()?);
    let d = c
        .decide(pb::DecideRequest { subject_id: subject, policy, consent_reference: consent })
        .await
        .map_err(|s| print_status(&s))?
        .into_inner();
    let verdict = match (d.outcome.as_str(), d.approved) {
        ("", true) => "approve",
        ("", false) => "decline",
        (outcome, _) => outcome,
    };
    let value = serde_json::json!({
        "policy": d.policy,
        "verdict": verdict,
        "approved": d.approved,
        "threshold": d.threshold,
        "score": d.score.as_ref().map(score_json),
        "notice": d.notice.as_ref().map(|n| serde_json::json!({
            "key_factors": n.key_factors, "inquiries_factor": n.inquiries_factor, "sources": n.sources,
        })),
    });
    output::emit(value, || {
        println!("{}: {} (threshold {})", d.policy, verdict.to_uppercase(), d.threshold);
        if let Some(s) = &d.score {
            print_score(s);
        }
        if let Some(n) = &d.notice {
            for f in n.key_factors.iter().chain(Some(&n.inquiries_factor).filter(|f| !f.is_empty())) {
                println!("  key factor: {f}");
            }
            println!("  sources: {}", n.sources.join(", "));
        }
    });
    if let Some((path, n)) = args.notice.as_ref().zip(d.notice.as_ref()) {
        bureau::write_notice(path, n)?;
        eprintln!("adverse-action notice written to {}", path.display());
    }
    Ok(())
}
