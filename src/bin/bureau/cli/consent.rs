//! `bureau consent …`: an institution's application signs a consent token for one person, one
//! purpose and the evidence it keeps; anyone checks an evidence file against the hash a token
//! carries and every answering node logged.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use bureau::{
    consent_token::{self, ConsentRequest},
    Purpose,
};

/// `bureau consent …`
#[derive(Subcommand, Debug)]
pub enum ConsentCommand {
    /// Sign a consent token (JWS, ES256, with the application's certificate in x5c) and print it.
    Issue {
        /// The application's private key (PKCS#8 PEM).
        #[arg(long, env = "BUREAU_KEY")]
        key: PathBuf,
        /// The application's certificate (PEM), issued by the federation's authority.
        #[arg(long, env = "BUREAU_CERT")]
        cert: PathBuf,
        /// The person's subject id (64 hex).
        #[arg(long)]
        subject: String,
        /// The purpose consented to: credit_application, deposit_waiver, subject_request, ...
        #[arg(long)]
        purpose: String,
        /// The consent evidence the institution keeps (a signed form, a recording): its SHA-256
        /// goes into the token and every answering node's log.
        #[arg(long)]
        evidence: PathBuf,
        /// The token's life in seconds (at most 86400).
        #[arg(long, default_value_t = 900)]
        ttl: i64,
    },
    /// Check an evidence file against a logged hash (`sha256:<hex>` or `<hex>`): exit 0 when it
    /// matches, 1 when not.
    CheckEvidence {
        /// The evidence file the institution produced.
        #[arg(long)]
        evidence: PathBuf,
        /// The hash as the audit log holds it.
        #[arg(long)]
        hash: String,
    },
}

/// Parses a purpose by its configuration name.
pub fn parse_purpose(s: &str) -> Result<Purpose> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).with_context(|| format!("unknown purpose {s:?}"))
}

/// Runs a `bureau consent` command.
pub fn run(cmd: ConsentCommand) -> Result<()> {
    match cmd {
        ConsentCommand::Issue { key, cert, subject, purpose, evidence, ttl } => {
            let bytes = std::fs::read(&evidence).with_context(|| format!("reading {}", evidence.display()))?;
            let hash = consent_token::evidence_hash(&bytes);
            let req = ConsentRequest {
                subject: &subject,
                purpose: parse_purpose(&purpose)?,
                evidence_sha256: &hash,
                ttl: chrono::Duration::seconds(ttl),
                now: chrono::Utc::now(),
            };
            println!("{}", consent_token::mint_with_files(&key, &cert, &req)?);
            Ok(())
        }
        ConsentCommand::CheckEvidence { evidence, hash } => {
            let bytes = std::fs::read(&evidence).with_context(|| format!("reading {}", evidence.display()))?;
            let found = consent_token::evidence_hash(&bytes);
            let wanted = hash.trim().trim_start_matches(consent_token::LOGGED_PREFIX);
            if found != wanted {
                bail!("evidence does not match: file hashes to sha256:{found}, log holds sha256:{wanted}");
            }
            println!("evidence matches sha256:{found}");
            Ok(())
        }
    }
}
