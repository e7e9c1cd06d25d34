//! The `bureau` command line: PKI, serving a node, deriving subject ids, a furnishing client,
//! and the regulator's tools; one file per command group. The lab commands (`demo`, `bench`,
//! `gen`) exist only with feature `lab` (see `crate::lab`).

mod attest;
mod audit;
mod config;
mod conn;
mod consent;
mod directory;
mod disputes;
mod node;
pub mod output;
mod pki;
mod records;
mod scoring;
mod subjects;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

/// bureau: a federated credit bureau node and its tools.
#[derive(Parser, Debug)]
#[command(name = "bureau", version, about)]
pub struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BUREAU_LOG_FORMAT", hide_possible_values = true)]
    pub log_format: LogFormat,
    /// Result format: `text` for people, `json` for scripts (one JSON document on standard
    /// output).
    #[arg(long, global = true, value_enum, default_value_t = output::Output::Text, env = "BUREAU_OUTPUT")]
    pub output: output::Output,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one readable line per event.
    Text,
    /// For machines: one JSON object per line.
    Json,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage the federation's licensing authority.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Run a node.
    Serve(node::ServeArgs),
    /// Derive a subject id (pseudonym) from an identity document.
    SubjectId(node::SubjectIdArgs),
    /// Furnish and read records on a node.
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Write reproducible synthetic credit records as JSON lines.
    #[cfg(feature = "lab")]
    Gen(crate::lab::GenArgs),
    /// Show the scorecard model (embedded default, a file, or a node's configured one).
    #[command(subcommand)]
    Model(node::ModelCommand),
    /// Back up a running node's embedded store into a file (a consistent snapshot; writes wait
    /// while it is read), age-encrypted to the institution's recipients and written 0600. As an
    /// application the node's `admin.applications` names; the node logs each backup.
    Backup(node::BackupArgs),
    /// Restore a backup into the (empty) data directory of the node configured in `--config`,
    /// decrypting it with `--identity` and checking its authenticated checksum first and the
    /// restored log's size and root after.
    Restore(node::RestoreArgs),
    /// Ask a node for a subject's federated score.
    Score(scoring::ScoreArgs),
    /// Ask a node for a policy decision (e.g. deposit_waiver).
    Decide(scoring::DecideArgs),
    /// Consent tokens: sign one as an institution's application; check evidence against a hash.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// Threshold attestations: issue one as an application, verify one offline as a verifier.
    #[command(subcommand)]
    Attest(attest::AttestCommand),
    /// Regulators: verify nodes' audit logs, reconcile them, read entries.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// File, read, list and resolve disputes at a node, as one of its applications.
    #[command(subcommand)]
    Disputes(disputes::DisputesCommand),
    /// A person's own report from the whole federation, as one self-contained HTML page (and,
    /// with --verify, every inquiry's inclusion proof checked against the signed checkpoint of
    /// the node that recorded it).
    Report(subjects::ReportArgs),
    /// Place or lift a person's security freeze or fraud alert (carried to every node).
    Protect(subjects::ProtectArgs),
    /// C2SP tlog-proof receipts (from `report --receipts`).
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Retention: purge what has expired now (the node also does it in the background).
    #[command(subcommand)]
    Retention(node::RetentionCommand),
    /// Run the benchmarks against same-run baselines and print a table (see BENCHMARKS.md).
    #[cfg(feature = "lab")]
    Bench(crate::lab::BenchArgs),
    /// Run a local federation with sample data, from nothing (no setup by hand).
    #[cfg(feature = "lab")]
    Demo(crate::lab::DemoArgs),
    /// Check a node configuration without starting the node.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script (e.g. `bureau completions bash > /etc/bash_completion.d/bureau`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `bureau proof …`
#[derive(Subcommand, Debug)]
pub enum ProofCommand {
    /// Check a receipt offline: the recording node's signed checkpoint, the entry's inclusion
    /// proof, and with --policy the witnesses' cosignatures and quorum.
    Verify(subjects::ProofVerifyArgs),
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    output::set(cli.output);
    match cli.command {
        Command::Pki(cmd) => pki::run(cmd),
        Command::Serve(args) => node::serve(args).await,
        Command::SubjectId(args) => node::subject_id(args),
        Command::Records(cmd) => records::run(cmd).await,
        Command::Model(cmd) => node::model(cmd),
        Command::Backup(args) => node::backup(args).await,
        Command::Restore(args) => node::restore(args).await,
        Command::Score(args) => scoring::score(args).await,
        Command::Decide(args) => scoring::decide(args).await,
        Command::Consent(cmd) => consent::run(cmd),
        Command::Attest(cmd) => attest::run(cmd).await,
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Disputes(cmd) => disputes::run(cmd).await,
        Command::Report(args) => subjects::report(args).await,
        Command::Protect(args) => subjects::protect(args).await,
        Command::Proof(ProofCommand::Verify(args)) => subjects::proof_verify(args),
        Command::Retention(cmd) => node::retention(cmd).await,
        #[cfg(feature = "lab")]
        Command::Gen(args) => crate::lab::gen(args),
        #[cfg(feature = "lab")]
        Command::Bench(args) => crate::lab::bench(args).await,
        #[cfg(feature = "lab")]
        Command::Demo(args) => crate::lab::demo(args).await,
        Command::Config(cmd) => config::run(cmd),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "bureau", &mut std::io::stdout());
            Ok(())
        }
    }
}
