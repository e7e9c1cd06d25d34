//! The `bureau` command line: PKI, serving a node, deriving subject ids, and a furnishing
//! client.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::PathBuf,
};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tokio_stream::StreamExt as _;

use crate::show::print_score;
use bureau::{
    config::{read_hex_key, NodeConfig},
    domain::record::CreditRecord,
    domain::subject,
    net::client::ClientConfig,
    net::pki::{self, PkiDir, PkiSpec},
    net::tls::TlsFiles,
    pb::bureau::v1::{
        self as pb, records_service_client::RecordsServiceClient, scoring_service_client::ScoringServiceClient,
    },
    server,
    wire::convert,
};

/// bureau: a federated credit bureau node and its tools.
#[derive(Parser, Debug)]
#[command(name = "bureau", version, about)]
pub struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, global = true, default_value = "text", env = "BUREAU_LOG_FORMAT")]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage the federation's licensing authority.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Run a node.
    Serve {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Derive a subject id (pseudonym) from an identity document.
    SubjectId {
        /// Document type, e.g. RESIDENT_ID or PASSPORT.
        #[arg(long = "type")]
        doc_type: String,
        /// Document number.
        #[arg(long)]
        number: String,
        /// File with the federation's subject key (hex); or give --config.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// A node configuration naming the subject key.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Furnish and read records on a node.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Write reproducible synthetic credit records as JSON lines.
    Gen {
        /// Number of subjects.
        #[arg(long, default_value_t = 1000)]
        subjects: usize,
        /// Seed: the same seed gives the same records.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Furnishing institutions (repeat); records are spread over them.
        #[arg(long = "institution", default_values_t = ["payapp".to_string(), "bikeshare".to_string(), "bank".to_string()])]
        institutions: Vec<String>,
        /// Only write the records of this institution (to feed its node).
        #[arg(long)]
        only: Option<String>,
        /// The federation's subject key file (hex); a fixed demo key if absent.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Output file; standard output if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the scorecard model (embedded default, a file, or a node's configured one).
    #[command(subcommand)]
    Model(ModelCommand),
    /// Back up a running node's embedded store into a file (a consistent snapshot; writes wait
    /// while it is read). As one of the institution's applications.
    Backup {
        #[command(flatten)]
        conn: Conn,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into the (empty) data directory of the node configured in `--config`,
    /// checking the file's checksum first and the restored log's size and root after.
    Restore {
        /// The node's configuration (its `node.data_dir` receives the store).
        #[arg(long)]
        config: PathBuf,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Ask a node for a subject's federated score.
    Score {
        #[command(flatten)]
        conn: Conn,
        /// The subject id.
        #[arg(long)]
        subject: String,
        /// Purpose: credit_application, account_review, deposit_waiver, collections, subject_request.
        #[arg(long, default_value = "account_review")]
        purpose: String,
        /// The subject's consent reference, where the purpose needs one.
        #[arg(long, default_value = "")]
        consent: String,
    },
    /// Ask a node for a policy decision (e.g. deposit_waiver).
    Decide {
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
    },
    /// Regulators: verify nodes' audit logs, reconcile them, read entries.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// File, read, list and resolve disputes at a node, as one of its applications.
    #[command(subcommand)]
    Disputes(DisputesCommand),
    /// A person's own report from the whole federation, as one self-contained HTML page (and,
    /// with --verify, every inquiry's inclusion proof checked against the signed checkpoint of
    /// the node that recorded it).
    Report {
        #[command(flatten)]
        conn: Conn,
        /// The subject id.
        #[arg(long)]
        subject: String,
        /// The person's consent reference.
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
    },
    /// Place or lift a person's security freeze or fraud alert (carried to every node).
    Protect {
        #[command(flatten)]
        conn: Conn,
        /// place or lift.
        action: String,
        /// freeze or alert.
        #[arg(long)]
        kind: String,
        /// The subject id.
        #[arg(long)]
        subject: String,
        /// The person's consent reference (their identity attested by the application).
        #[arg(long)]
        consent: String,
    },
    /// Retention: purge what has expired now (the node also does it in the background).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Run the benchmarks against same-run baselines and print a table (see BENCHMARKS.md).
    Bench {
        /// Small sizes: a smoke run in under a minute.
        #[arg(long)]
        quick: bool,
        /// Run only these parts (repeatable): furnish, scoring, audit, score, postgres.
        #[arg(long, value_enum)]
        only: Vec<crate::bench::Part>,
    },
    /// Run a local federation with sample data, from nothing (no setup by hand).
    Demo {
        /// Keep the federation's files here instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of subjects to generate (at least 1: the demo scores some of them).
        #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        subjects: u64,
        /// Keep the federation running on ports 7101-7103 until ctrl-c (for `bureau audit`).
        #[arg(long)]
        serve: bool,
    },
}

/// How a regulator reaches nodes: its certificate from a PKI directory, or explicit files.
#[derive(Args, Debug, Clone)]
pub struct RegulatorConn {
    /// The PKI directory (`bureau pki init --out`): certificates, and nodes' checkpoint keys.
    #[arg(long)]
    pub pki: PathBuf,
    /// The regulator's id in that directory.
    #[arg(long)]
    pub regulator: String,
    /// The federation's name.
    #[arg(long)]
    pub federation: String,
    /// Where the checkpoints seen last time are kept.
    #[arg(long, default_value = "regulator-state")]
    pub state: PathBuf,
}

impl RegulatorConn {
    fn channel(&self, node: &str) -> Result<tonic::transport::Channel> {
        let files = PkiDir(self.pki.clone()).member(bureau::net::identity::Role::Regulator, &self.regulator);
        Ok(ClientConfig::from_pki(&self.pki, &files, &self.federation, node).channel()?)
    }

    fn keys(&self) -> bureau::regulator::KeySource {
        bureau::regulator::KeySource::PkiDir(self.pki.clone())
    }
}

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
        #[arg(long, default_value = "other")]
        reason: String,
        /// The subject's statement (at most 500 characters).
        #[arg(long, default_value = "")]
        statement: String,
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
        #[arg(long)]
        resolution: String,
    },
}

/// `bureau retention …`
#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Delete expired negative records and inquiries at a node now; each deletion is logged.
    Purge {
        #[command(flatten)]
        conn: Conn,
    },
}

/// `bureau model …`
#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Print the model's version and its TOML.
    Show {
        /// A model file; the embedded default if absent.
        #[arg(long)]
        file: Option<PathBuf>,
        /// A node configuration whose `scoring.model` to show.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

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
}

/// How a client command reaches a node, as one of an institution's applications: the node's
/// configuration gives its address, authority and federation; the application's own
/// certificate and key (never the node's) say who is calling.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// A node configuration: its address, authority certificate, CRL and federation are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Node address `host:port` (overrides the configuration's).
    #[arg(long)]
    pub node: Option<String>,
    /// Federation authority certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The application's certificate (`pki/institution-<id>-app-<name>.pem`).
    #[arg(long, env = "BUREAU_CERT")]
    pub cert: Option<PathBuf>,
    /// The application's key.
    #[arg(long, env = "BUREAU_KEY")]
    pub key: Option<PathBuf>,
    /// Federation name.
    #[arg(long)]
    pub federation: Option<String>,
}

impl Conn {
    /// Resolves to a client configuration.
    pub fn resolve(&self) -> Result<ClientConfig> {
        let need = "an application certificate and key are required (--cert/--key or BUREAU_CERT/BUREAU_KEY): \
                    a node's own key is for the node only";
        let cert = self.cert.clone().context(need)?;
        let key = self.key.clone().context(need)?;
        let mut c = match &self.config {
            Some(path) => {
                let mut c = NodeConfig::load(path)?.client_config();
                (c.tls.cert, c.tls.key) = (cert, key);
                c
            }
            None => ClientConfig {
                address: String::new(),
                federation: String::new(),
                tls: TlsFiles { ca: self.ca.clone().context("--ca or --config is required")?, cert, key, crl: None },
                expect: None,
            },
        };
        if let Some(n) = &self.node {
            // Another node than the configuration's own: accept any institution's node of the
            // federation (its certificate is still verified against the authority and CRL).
            c.address = n.clone();
            c.expect = None;
        }
        if let Some(f) = &self.federation {
            c.federation = f.clone();
        }
        if c.address.is_empty() || c.federation.is_empty() {
            bail!("--node and --federation are required without --config");
        }
        Ok(c)
    }
}

/// `bureau records …`
#[derive(Subcommand, Debug)]
pub enum RecordsCommand {
    /// Furnish records from a JSON-lines file (one record per line), streamed in batches.
    Put {
        #[command(flatten)]
        conn: Conn,
        /// The file; `-` for standard input.
        #[arg(long)]
        file: PathBuf,
        /// Records per streamed batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Show one record.
    Get {
        #[command(flatten)]
        conn: Conn,
        /// The record id.
        #[arg(long)]
        id: String,
    },
    /// List a subject's records.
    List {
        #[command(flatten)]
        conn: Conn,
        /// The subject id.
        #[arg(long)]
        subject: String,
    },
    /// Delete a record.
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// The record id.
        #[arg(long)]
        id: String,
        /// Reason: furnished_in_error, identity_theft, dispute_resolved, retention_expired.
        #[arg(long)]
        reason: String,
        /// A note for the audit trail.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pki(PkiCommand::Init { federation, out, institutions, regulators, apps, hosts }) => {
            let spec = PkiSpec { federation, institutions, regulators, apps, hosts };
            pki::init(&spec, &out)?;
            println!(
                "authority, {} institution(s) and {} regulator(s) written to {}",
                spec.institutions.len(),
                spec.regulators.len(),
                out.display()
            );
        }
        Command::Pki(PkiCommand::IssueApp { dir, federation, institution, app }) => {
            let files = pki::issue_app(&PkiDir(dir), &federation, &institution, &app)?;
            println!("application {app} of {institution}: {} and {}", files.cert.display(), files.key.display());
        }
        Command::Pki(PkiCommand::Revoke { dir, cert }) => {
            let serial = pki::revoke(&PkiDir(dir), &cert)?;
            println!("revoked serial {serial}");
        }
        Command::Serve { config } => serve(config).await?,
        Command::SubjectId { doc_type, number, key_file, config } => {
            let key_file = match (key_file, config) {
                (Some(k), _) => k,
                (None, Some(c)) => NodeConfig::load(&c)?
                    .federation
                    .subject_key
                    .context("configuration has no federation.subject_key")?,
                (None, None) => bail!("--key-file or --config is required"),
            };
            println!("{}", subject::derive_subject_id(&read_hex_key(&key_file)?, &doc_type, &number));
        }
        Command::Records(cmd) => records(cmd).await?,
        Command::Gen { subjects, seed, institutions, only, key_file, out } => {
            let federation_key = match key_file {
                Some(k) => read_hex_key(&k)?,
                None => {
                    eprintln!("note: no --key-file; subject ids use a fixed demo key");
                    b"bureau-demo-key".to_vec()
                }
            };
            let cfg = bureau::testkit::gen::GenConfig {
                subjects,
                seed,
                institutions,
                federation_key,
                as_of: bureau::domain::record::today(),
            };
            let mut w: Box<dyn std::io::Write> = match out {
                Some(p) => {
                    Box::new(std::io::BufWriter::new(fs::File::create(&p).with_context(|| p.display().to_string())?))
                }
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            for r in bureau::testkit::gen::generate(&cfg).filter(|r| only.as_ref().is_none_or(|o| &r.furnisher == o)) {
                serde_json::to_writer(&mut w, &r)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
        Command::Model(ModelCommand::Show { file, config }) => {
            let path = match (file, config) {
                (Some(f), _) => Some(f),
                (None, Some(c)) => NodeConfig::load(&c)?.scoring.model,
                (None, None) => None,
            };
            let model = match path {
                Some(p) => bureau::scoring::Model::from_toml(
                    &fs::read_to_string(&p).with_context(|| p.display().to_string())?,
                )?,
                None => bureau::scoring::Model::embedded_default(),
            };
            println!("# model version {}\n{}", model.version(), model.text());
        }
        Command::Backup { conn, out } => {
            let s = bureau::backup::backup_to_file(conn.resolve()?.channel()?, &out).await?;
            println!(
                "{}: {} pairs; audit log size {} root {}",
                out.display(),
                s.pairs,
                s.tree_size,
                hex::encode(s.root)
            );
        }
        Command::Restore { config, from } => {
            let cfg = NodeConfig::load(&config)?;
            if cfg.store.backend != bureau::config::Backend::Sled {
                bail!("the node's store is PostgreSQL: restore it with the database's own tools");
            }
            let s = bureau::backup::restore_from_file(&from, &cfg.node.data_dir).await?;
            println!(
                "{} restored: {} pairs; audit log size {} root {} (checked)",
                cfg.node.data_dir.display(),
                s.pairs,
                s.tree_size,
                hex::encode(s.root)
            );
        }
        Command::Score { conn, subject, purpose, consent } => {
            let purpose = parse_purpose(&purpose)?;
            let mut c = ScoringServiceClient::new(conn.resolve()?.channel()?);
            let s = c
                .get_score(pb::GetScoreRequest {
                    subject_id: subject,
                    purpose: purpose as i32,
                    consent_reference: consent,
                })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            print_score(&s);
        }
        Command::Decide { conn, subject, policy, consent } => {
            let mut c = ScoringServiceClient::new(conn.resolve()?.channel()?);
            let d = c
                .decide(pb::DecideRequest { subject_id: subject, policy, consent_reference: consent })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            let verdict = if d.outcome.is_empty() {
                if d.approved {
                    "approve"
                } else {
                    "decline"
                }
            } else {
                d.outcome.as_str()
            };
            println!("{}: {} (threshold {})", d.policy, verdict.to_uppercase(), d.threshold);
            if let Some(s) = d.score {
                print_score(&s);
            }
        }
        Command::Audit(cmd) => audit(cmd).await?,
        Command::Disputes(cmd) => disputes(cmd).await?,
        Command::Report { conn, subject, consent, out, verify, pki } => {
            let mut c =
                bureau::pb::bureau::v1::subjects_service_client::SubjectsServiceClient::new(conn.resolve()?.channel()?);
            let report = c
                .get_report(pb::GetReportRequest { subject_id: subject, consent_reference: consent })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            std::fs::write(&out, bureau::report::render(&report)).with_context(|| format!("{}", out.display()))?;
            let score = report.score.clone().unwrap_or_default();
            println!(
                "report written to {}: score {}, {} account(s), {} inquiry(ies), {} dispute(s){}{}",
                out.display(),
                score.score,
                report.records.len(),
                report.inquiries.len(),
                report.disputes.len(),
                if report.protection.as_ref().is_some_and(|p| p.frozen) { ", FROZEN" } else { "" },
                if report.protection.as_ref().is_some_and(|p| p.fraud_alert) { ", FRAUD ALERT" } else { "" }
            );
            if verify {
                let pki = pki.context("--verify needs --pki (the nodes' checkpoint keys)")?;
                let check = bureau::regulator::check_report(&report, &bureau::regulator::KeySource::PkiDir(pki))?;
                for p in &check.problems {
                    println!("PROBLEM {p}");
                }
                println!(
                    "{} inquiry(ies) proven in the signed logs of the nodes that recorded them, {} without proof",
                    check.proven, check.unproven
                );
                if !check.problems.is_empty() {
                    bail!("{} inquiry proof(s) do not hold", check.problems.len());
                }
            }
        }
        Command::Protect { conn, action, kind, subject, consent } => {
            let kind = match kind.as_str() {
                "freeze" => pb::ProtectionKind::SecurityFreeze,
                "alert" => pb::ProtectionKind::FraudAlert,
                other => bail!("unknown kind {other:?}: freeze or alert"),
            };
            let mut c =
                bureau::pb::bureau::v1::subjects_service_client::SubjectsServiceClient::new(conn.resolve()?.channel()?);
            let req = pb::ProtectionRequest { subject_id: subject, kind: kind as i32, consent_reference: consent };
            let p = match action.as_str() {
                "place" => c.place_protection(req).await,
                "lift" => c.lift_protection(req).await,
                other => bail!("unknown action {other:?}: place or lift"),
            }
            .map_err(|s| print_status(&s))?
            .into_inner();
            println!("frozen: {}  fraud alert: {}  (every peer is told through the outbox)", p.frozen, p.fraud_alert);
        }
        Command::Retention(RetentionCommand::Purge { conn }) => {
            let mut c =
                bureau::pb::bureau::v1::admin_service_client::AdminServiceClient::new(conn.resolve()?.channel()?);
            let r = c.purge_expired(pb::PurgeExpiredRequest {}).await.map_err(|s| print_status(&s))?.into_inner();
            println!(
                "purged: {} record(s), {} inquiry(ies); each deletion logged",
                r.records_deleted, r.inquiries_deleted
            );
        }
        Command::Bench { quick, only } => crate::bench::run(crate::bench::BenchOptions { quick, only }).await?,
        Command::Demo { dir, subjects, serve } => {
            crate::demo::run(crate::demo::DemoOptions { dir, subjects: subjects as usize, serve }).await?
        }
    }
    Ok(())
}

async fn serve(config: PathBuf) -> Result<()> {
    let cfg = NodeConfig::load(&config)?;
    let node = server::start(cfg).await?;
    let stop = node.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        let _ = stop.send(true);
    });
    node.wait().await?;
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

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

async fn disputes(cmd: DisputesCommand) -> Result<()> {
    use bureau::pb::bureau::v1::disputes_service_client::DisputesServiceClient;
    match cmd {
        DisputesCommand::File { conn, record, subject, reason, statement } => {
            let reason = match reason.as_str() {
                "not_mine" => pb::DisputeReason::NotMine,
                "inaccurate_balance" => pb::DisputeReason::InaccurateBalance,
                "inaccurate_status" => pb::DisputeReason::InaccurateStatus,
                "inaccurate_payment_history" => pb::DisputeReason::InaccuratePaymentHistory,
                "account_closed" => pb::DisputeReason::AccountClosed,
                "identity_theft" => pb::DisputeReason::IdentityTheft,
                "other" => pb::DisputeReason::Other,
                other => bail!("unknown reason {other:?}"),
            };
            let mut c = DisputesServiceClient::new(conn.resolve()?.channel()?);
            let d = c
                .file_dispute(pb::FileDisputeRequest { record, subject_id: subject, reason: reason as i32, statement })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            print_dispute(&d);
        }
        DisputesCommand::Get { conn, name } => {
            let mut c = DisputesServiceClient::new(conn.resolve()?.channel()?);
            let d = c.get_dispute(pb::GetDisputeRequest { name }).await.map_err(|s| print_status(&s))?.into_inner();
            print_dispute(&d);
        }
        DisputesCommand::List { conn, all } => {
            let mut c = DisputesServiceClient::new(conn.resolve()?.channel()?);
            let mut token = String::new();
            loop {
                let page = c
                    .list_disputes(pb::ListDisputesRequest { include_resolved: all, page_size: 0, page_token: token })
                    .await
                    .map_err(|s| print_status(&s))?
                    .into_inner();
                page.disputes.iter().for_each(print_dispute);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        DisputesCommand::Resolve { conn, name, resolution } => {
            let resolution = match resolution.as_str() {
                "verified" => pb::DisputeResolution::Verified,
                "deleted" => pb::DisputeResolution::Deleted,
                other => bail!("unknown resolution {other:?}: verified or deleted"),
            };
            let mut c = DisputesServiceClient::new(conn.resolve()?.channel()?);
            let d = c
                .resolve_dispute(pb::ResolveDisputeRequest {
                    name,
                    resolution: resolution as i32,
                    corrected_record: None,
                })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            print_dispute(&d);
        }
    }
    Ok(())
}

async fn audit(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Disputes { conn, nodes } => {
            let mut logs = Vec::new();
            for node in &nodes {
                let log = bureau::regulator::verify(conn.channel(node)?, &conn.keys(), &conn.state).await?;
                report_verified(&log);
                logs.push(log);
            }
            let views = bureau::regulator::dispute_states(&logs, chrono::Utc::now());
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
        AuditCommand::Verify { conn, node } => {
            let log = bureau::regulator::verify(conn.channel(&node)?, &conn.keys(), &conn.state).await?;
            report_verified(&log);
            if !log.problems.is_empty() {
                bail!("{} problem(s) in {}'s log", log.problems.len(), log.origin);
            }
        }
        AuditCommand::Reconcile { conn, nodes } => {
            let mut logs = Vec::new();
            for node in &nodes {
                let log = bureau::regulator::verify(conn.channel(node)?, &conn.keys(), &conn.state).await?;
                report_verified(&log);
                logs.push(log);
            }
            let mismatches = bureau::regulator::reconcile(&logs);
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
            let mut client =
                bureau::pb::bureau::v1::audit_service_client::AuditServiceClient::new(conn.channel(&node)?);
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
                    let entry = bureau::audit::Entry::from_bytes(&e.leaf_data)?;
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

fn report_verified(log: &bureau::regulator::VerifiedLog) {
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
}

fn parse_purpose(p: &str) -> Result<pb::Purpose> {
    pb::Purpose::from_str_name(&format!("PURPOSE_{}", p.to_ascii_uppercase()))
        .filter(|p| *p != pb::Purpose::Unspecified)
        .with_context(|| format!("unknown purpose {p:?}"))
}

/// The institution our client certificate names (records are named after their furnisher).
fn own_institution(c: &ClientConfig) -> Result<String> {
    Ok(bureau::net::tls::TlsMaterial::load(&c.tls)?.identity()?.id)
}

fn print_status(s: &tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut msg = format!("{:?}: {}", s.code(), s.message());
    let d = s.get_error_details();
    if let Some(info) = d.error_info() {
        msg.push_str(&format!(" [{}]", info.reason));
    }
    if let Some(br) = d.bad_request() {
        for v in &br.field_violations {
            msg.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow::anyhow!(msg)
}

async fn records(cmd: RecordsCommand) -> Result<()> {
    match cmd {
        RecordsCommand::Put { conn, file, batch } => {
            let mut client = RecordsServiceClient::new(conn.resolve()?.channel()?);
            let reader: Box<dyn BufRead + Send> = if file.as_os_str() == "-" {
                Box::new(BufReader::new(std::io::stdin()))
            } else {
                Box::new(BufReader::new(fs::File::open(&file).with_context(|| file.display().to_string())?))
            };
            let mut batches = Vec::new();
            let mut current = Vec::with_capacity(batch);
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let r: CreditRecord = serde_json::from_str(&line).with_context(|| format!("line {}", n + 1))?;
                current.push(convert::record_to_pb(&r, chrono::Utc::now()));
                if current.len() == batch.max(1) {
                    batches.push(pb::FurnishRecordsRequest { records: std::mem::take(&mut current) });
                }
            }
            if !current.is_empty() {
                batches.push(pb::FurnishRecordsRequest { records: current });
            }
            let resp = client
                .stream_furnish_records(tokio_stream::iter(batches))
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            println!(
                "accepted {} ignored {} rejected {}",
                resp.accepted_count, resp.ignored_count, resp.rejected_count
            );
            for r in resp.results.iter().filter(|r| r.outcome == pb::FurnishOutcome::Rejected as i32) {
                for v in &r.violations {
                    println!("  rejected {}: {}: {}", r.record_id, v.field, v.description);
                }
            }
        }
        RecordsCommand::Get { conn, id } => {
            let c = conn.resolve()?;
            let owner = own_institution(&c)?;
            let mut client = RecordsServiceClient::new(c.channel()?);
            let r = client
                .get_record(pb::GetRecordRequest { name: convert::record_name(&owner, &id) })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            let r = convert::record_from_stored(r).map_err(|e| anyhow::anyhow!(e))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        RecordsCommand::List { conn, subject } => {
            let mut client = RecordsServiceClient::new(conn.resolve()?.channel()?);
            let mut token = String::new();
            let mut stream_rows = Vec::new();
            loop {
                let page = client
                    .list_records(pb::ListRecordsRequest {
                        parent: format!("subjects/{subject}"),
                        page_size: 100,
                        page_token: token,
                    })
                    .await
                    .map_err(|s| print_status(&s))?
                    .into_inner();
                stream_rows.extend(page.records);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            println!(
                "{:<28} {:<18} {:<14} {:>12} {:>12} {:>4} v",
                "record", "kind", "status", "limit", "balance", "dpd"
            );
            let mut rows = tokio_stream::iter(stream_rows);
            while let Some(r) = rows.next().await {
                println!(
                    "{:<28} {:<18} {:<14} {:>12} {:>12} {:>4} {}",
                    r.record_id,
                    pb::RecordKind::try_from(r.kind)
                        .map(|k| k.as_str_name().trim_start_matches("RECORD_KIND_"))
                        .unwrap_or("?"),
                    pb::AccountStatus::try_from(r.status)
                        .map(|k| k.as_str_name().trim_start_matches("ACCOUNT_STATUS_"))
                        .unwrap_or("?"),
                    r.credit_limit_minor,
                    r.balance_minor,
                    r.days_past_due,
                    r.version
                );
            }
        }
        RecordsCommand::Delete { conn, id, reason, note } => {
            let c = conn.resolve()?;
            let owner = own_institution(&c)?;
            let reason = pb::DeletionReason::from_str_name(&format!("DELETION_REASON_{}", reason.to_ascii_uppercase()))
                .context("unknown --reason")?;
            let mut client = RecordsServiceClient::new(c.channel()?);
            let r = client
                .delete_record(pb::DeleteRecordRequest {
                    name: convert::record_name(&owner, &id),
                    reason: reason as i32,
                    note,
                })
                .await
                .map_err(|s| print_status(&s))?
                .into_inner();
            println!("deleted {id} at version {}", r.deleted_version);
        }
    }
    Ok(())
}
