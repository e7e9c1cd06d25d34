//! `bureau attest …`: an application asks its node for a threshold attestation (a signed
//! "meets 550" with no score in it) and writes the bundle a verifier keeps; a verifier checks
//! one offline with the node's public key alone.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::conn::print_status;
use bureau::{
    attestation::{self, Bundle},
    convert::bundle_from_pb,
    pb::bureau::v1::{self as pb, attestation_service_client::AttestationServiceClient},
};

/// `bureau attest …`
#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// As the node's application: decide a policy for a verifier and write the signed,
    /// logged statement (with its inclusion proof and checkpoint) as a JSON bundle.
    Issue {
        #[command(flatten)]
        ask: super::scoring::PolicyAsk,
        /// The verifier the statement is for.
        #[arg(long)]
        verifier: String,
        /// The verifier's nonce.
        #[arg(long)]
        nonce: String,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle offline: the node's signature, verifier, nonce, expiry, and that the
    /// statement is in the node's log under a checkpoint the node signed. Exits non-zero if not.
    Verify {
        /// The bundle (JSON).
        file: PathBuf,
        /// The node's public key: its checkpoint verifier key file (`pki/…-log.pub`).
        #[arg(long)]
        key: PathBuf,
        /// The verifier the statement must be for.
        #[arg(long)]
        verifier: String,
        /// The nonce the statement must carry.
        #[arg(long)]
        nonce: String,
        /// Check as of this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// Runs a `bureau attest` command.
pub async fn run(cmd: AttestCommand) -> Result<()> {
    match cmd {
        AttestCommand::Issue { ask, verifier, nonce, out } => {
            let super::scoring::PolicyAsk { conn, subject, policy, consent } = ask;
            let mut c = AttestationServiceClient::new(conn.channel()?);
            let a = c
                .attest(pb::AttestRequest { subject_id: subject, policy, consent_reference: consent, verifier, nonce })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            std::fs::write(&out, serde_json::to_string_pretty(&bundle_from_pb(&a))?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("attestation logged at index {} of {}: {}", a.log_index, a.tree_size, out.display());
        }
        AttestCommand::Verify { file, key, verifier, nonce, at } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let bundle: Bundle = serde_json::from_str(&text).context("not an attestation bundle")?;
            let key = std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            let now = at.unwrap_or_else(chrono::Utc::now);
            match attestation::verify(&bundle, key.trim(), &verifier, &nonce, now) {
                Ok(c) => println!(
                    "verified: {} {} {} (threshold {}) for {}, issued by {} at {}, expires {}, log index {} of {}",
                    c.sub,
                    c.outcome.to_uppercase(),
                    c.policy,
                    c.threshold,
                    c.aud,
                    c.iss,
                    chrono::DateTime::from_timestamp(c.iat, 0).unwrap_or_default().to_rfc3339(),
                    chrono::DateTime::from_timestamp(c.exp, 0).unwrap_or_default().to_rfc3339(),
                    bundle.log_index,
                    bundle.tree_size
                ),
                Err(e) => bail!("attestation refused: {e}"),
            }
        }
    }
    Ok(())
}
