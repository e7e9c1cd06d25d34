//! `bureau pki …`: the federation's licensing authority — create it, issue an application's
//! certificate, revoke a member, keep the signed member directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use serde_json::json;

use super::output::emit;
use bureau::pki::{self, PkiDir, PkiSpec};

/// `bureau pki …`
#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create an authority, member certificates and keys, and an empty CRL.
    Init {
        /// Federation name (SPIFFE trust domain).
        #[arg(long)]
        federation: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Institution ids (repeat).
        #[arg(long = "institution")]
        institutions: Vec<String>,
        /// Regulator ids (repeat).
        #[arg(long = "regulator")]
        regulators: Vec<String>,
        /// Application names issued for every institution (repeat; default `cli`).
        #[arg(long = "app")]
        apps: Vec<String>,
        /// Extra DNS names for node certificates (repeat).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Issue a certificate for one more application of an institution.
    IssueApp {
        /// The PKI directory (holds the authority's key).
        #[arg(long)]
        dir: PathBuf,
        /// Federation name (SPIFFE trust domain).
        #[arg(long)]
        federation: String,
        /// The institution the application belongs to.
        #[arg(long)]
        institution: String,
        /// The application's name, e.g. `mobile`.
        #[arg(long)]
        app: String,
    },
    /// Revoke a member's certificate (adds it to the CRL; nodes reload it within seconds).
    Revoke {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate to revoke.
        #[arg(long)]
        cert: PathBuf,
    },
    /// The authority's revocation list.
    #[command(subcommand)]
    Crl(CrlCommand),
    /// The signed member directory the nodes follow (who is a member, where, active or not).
    #[command(subcommand)]
    Directory(super::directory::DirectoryCommand),
}

/// `bureau pki crl …`
#[derive(Debug, clap::Subcommand)]
pub enum CrlCommand {
    /// Re-sign the CRL with the same revocations, a higher number and a fresh 30-day
    /// nextUpdate (run it weekly: nodes report a list past nextUpdate as expired).
    Refresh {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Runs a `bureau pki` command.
pub fn run(cmd: PkiCommand) -> Result<()> {
    match cmd {
        PkiCommand::Init { federation, out, institutions, regulators, apps, hosts } => {
            let spec = PkiSpec { federation, institutions, regulators, apps, hosts };
            pki::init(&spec, &out)?;
            let value = json!({
                "federation": &spec.federation, "out": &out, "institutions": &spec.institutions, "regulators": &spec.regulators,
            });
            emit(value, || {
                println!(
                    "authority, {} institution(s) and {} regulator(s) written to {}",
                    spec.institutions.len(),
                    spec.regulators.len(),
                    out.display()
                )
            });
        }
        PkiCommand::IssueApp { dir, federation, institution, app } => {
            let files = pki::issue_app(&PkiDir(dir), &federation, &institution, &app)?;
            let value = json!({ "institution": &institution, "app": &app, "cert": &files.cert, "key": &files.key });
            emit(value, || {
                println!("application {app} of {institution}: {} and {}", files.cert.display(), files.key.display())
            });
        }
        PkiCommand::Revoke { dir, cert } => {
            let serial = pki::revoke(&PkiDir(dir), &cert)?;
            emit(json!({ "revoked_serial": serial.to_string() }), || println!("revoked serial {serial}"));
        }
        PkiCommand::Crl(CrlCommand::Refresh { dir }) => {
            let number = pki::refresh_crl(&PkiDir(dir))?;
            emit(json!({ "crl_number": number.to_string(), "valid_days": 30 }), || {
                println!("revocation list re-signed: number {number}, valid 30 days")
            });
        }
        PkiCommand::Directory(cmd) => super::directory::run(cmd)?,
    }
    Ok(())
}
