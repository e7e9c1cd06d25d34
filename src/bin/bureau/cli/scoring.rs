//! `bureau score` and `bureau decide`: a subject's federated score, and a policy's decision.

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::conn::{print_status, Conn};
use super::output;
use crate::show::{print_score, score_json};
use bureau::pb::bureau::v1::{self as pb, scoring_service_client::ScoringServiceClient};

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
    /// The subject's consent reference, where the purpose needs one.
    #[arg(long, default_value = "")]
    consent: String,
}

/// `bureau decide`
#[derive(Args, Debug)]
pub struct DecideArgs {
    #[command(flatten)]
    conn: Conn,
    /// The subject id.
    #[arg(long)]
    subject: String,
    /// The policy's name in the node's configuration.
    #[arg(long)]
    policy: String,
    /// The subject's consent reference.
    #[arg(long, default_value = "")]
    consent: String,
}

/// Prints a subject's federated score.
pub async fn score(args: ScoreArgs) -> Result<()> {
    let mut c = ScoringServiceClient::new(args.conn.channel()?);
    let s = c
        .get_score(pb::GetScoreRequest {
            subject_id: args.subject,
            purpose: pb::Purpose::from(args.purpose) as i32,
            consent_reference: args.consent,
        })
        .await
        .map_err(|s| print_status(&s))?
        .into_inner();
    output::emit(score_json(&s), || print_score(&s));
    Ok(())
}

/// Prints a policy's decision and the score behind it.
pub async fn decide(args: DecideArgs) -> Result<()> {
    let mut c = ScoringServiceClient::new(args.conn.channel()?);
    let d = c
        .decide(pb::DecideRequest { subject_id: args.subject, policy: args.policy, consent_reference: args.consent })
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
    });
    output::emit(value, || {
        println!("{}: {} (threshold {})", d.policy, verdict.to_uppercase(), d.threshold);
        if let Some(s) = &d.score {
            print_score(s);
        }
    });
    Ok(())
}
