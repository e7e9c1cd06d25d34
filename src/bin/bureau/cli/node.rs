//! Running and keeping a node: `serve`, `subject-id`, `model show`, `backup`, `restore` and
//! `retention purge`.

use std::{
    fs,
    io::{BufRead, IsTerminal},
    path::PathBuf,
};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::{
    conn::{print_status, Conn},
    output,
};
use bureau::{
    config::Backend,
    derive_subject_id,
    pb::bureau::v1::{self as pb, admin_service_client::AdminServiceClient},
    read_hex_key, Model, NodeConfig,
};

/// `bureau serve`
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The node's configuration file.
    #[arg(long)]
    config: PathBuf,
}

/// `bureau subject-id`: the document number is read from standard input (one line) or, on a
/// terminal, from a prompt without echo; never from the command line, where it would land in
/// the shell's history and in every process listing.
#[derive(Args, Debug)]
pub struct SubjectIdArgs {
    /// Document type: resident_id or passport.
    #[arg(long = "type", value_enum, ignore_case = true)]
    doc_type: DocType,
    /// File with the federation's subject key (hex); or give --config.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// A node configuration naming the subject key.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The identity documents a subject id is derived from (the type is part of the MAC input).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DocType {
    /// A national resident identity card.
    ResidentId,
    /// A passport.
    Passport,
}

impl DocType {
    /// The spelling hashed into the subject id.
    fn as_str(self) -> &'static str {
        match self {
            Self::ResidentId => "RESIDENT_ID",
            Self::Passport => "PASSPORT",
        }
    }
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

/// `bureau backup`
#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    conn: Conn,
    /// The backup file to write (0600, encrypted with age).
    #[arg(long)]
    out: PathBuf,
    /// An age X25519 recipient (`age1…`) to encrypt to; repeatable. Without one, the
    /// recipients file `admin.backup_recipients` of the `--config` node configuration.
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// An age recipients file (`age1…`, one a line), instead of the configuration's.
    #[arg(long)]
    recipients_file: Option<PathBuf>,
}

/// `bureau restore`
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The node's configuration (its `node.data_dir` receives the store).
    #[arg(long)]
    config: PathBuf,
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    /// The age identity file (`AGE-SECRET-KEY-1…`) of one of the backup's recipients, e.g.
    /// `pki/institution-<id>.backup.key` from `bureau pki init`.
    #[arg(long)]
    identity: PathBuf,
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

/// Runs a node until ctrl-c or SIGTERM, then drains it.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let cfg = NodeConfig::load(&args.config)?;
    let node = bureau::start(cfg).await?;
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
pub async fn shutdown_signal() {
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

/// Prints the subject id of an identity document.
pub fn subject_id(args: SubjectIdArgs) -> Result<()> {
    let key_file = match (args.key_file, args.config) {
        (Some(k), _) => k,
        (None, Some(c)) => {
            NodeConfig::load(&c)?.federation.subject_key.context("configuration has no federation.subject_key")?
        }
        (None, None) => bail!("--key-file or --config is required"),
    };
    let key = read_hex_key(&key_file)?;
    let number = read_number()?;
    let id = derive_subject_id(&key, args.doc_type.as_str(), &number);
    output::emit(json!({ "subject_id": id }), || println!("{id}"));
    Ok(())
}

/// The document number: a prompt without echo on a terminal, else the first line of standard
/// input.
fn read_number() -> Result<String> {
    let number = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("document number: ").context("reading the document number")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the document number from standard input")?;
        line
    };
    let number = number.trim().to_owned();
    if number.is_empty() {
        bail!("no document number: give it on standard input or at the prompt");
    }
    Ok(number)
}

/// Prints a scorecard model.
pub fn model(cmd: ModelCommand) -> Result<()> {
    let ModelCommand::Show { file, config } = cmd;
    let path = match (file, config) {
        (Some(f), _) => Some(f),
        (None, Some(c)) => NodeConfig::load(&c)?.scoring.model,
        (None, None) => None,
    };
    let model = match path {
        Some(p) => Model::from_toml(&fs::read_to_string(&p).with_context(|| p.display().to_string())?)?,
        None => Model::embedded_default(),
    };
    output::emit(json!({ "version": model.version(), "toml": model.text() }), || {
        println!("# model version {}\n{}", model.version(), model.text())
    });
    Ok(())
}

/// Backs a running node's store up into a file.
pub async fn backup(args: BackupArgs) -> Result<()> {
    let recipients = if !args.recipients.is_empty() {
        args.recipients
            .iter()
            .map(|r| r.parse().map_err(|e| anyhow::anyhow!("--recipient {r:?}: not an age X25519 recipient: {e}")))
            .collect::<Result<Vec<_>>>()?
    } else {
        let file = match (&args.recipients_file, &args.conn.config) {
            (Some(f), _) => f.clone(),
            (None, Some(c)) => NodeConfig::load(c)?.admin.backup_recipients.with_context(|| {
                format!("{} has no admin.backup_recipients: a backup is encrypted; give --recipient age1…", c.display())
            })?,
            (None, None) => bail!("a backup is encrypted: give --recipient age1…, --recipients-file or --config"),
        };
        bureau::read_recipients(&file)?
    };
    let spinner = output::spinner("backing up");
    let s = bureau::backup_to_file(args.conn.channel()?, &args.out, &recipients).await.map_err(|e| match e {
        bureau::BackupError::Node(s) => print_status(&s),
        e => e.into(),
    });
    spinner.finish_and_clear();
    let s = s?;
    let value = json!({ "file": args.out, "pairs": s.pairs, "tree_size": s.tree_size, "root": hex::encode(s.root) });
    output::emit(value, || {
        println!(
            "{}: {} pairs; audit log size {} root {}",
            args.out.display(),
            s.pairs,
            s.tree_size,
            hex::encode(s.root)
        )
    });
    Ok(())
}

/// Restores a backup into a node's empty data directory.
pub async fn restore(args: RestoreArgs) -> Result<()> {
    let cfg = NodeConfig::load(&args.config)?;
    if cfg.store.backend != Backend::Sled {
        bail!("the node's store is PostgreSQL: restore it with the database's own tools");
    }
    let identities = bureau::read_identities(&args.identity)?;
    let spinner = output::spinner("restoring and checking");
    let s = bureau::restore_from_file(&args.from, &cfg.node.data_dir, &identities).await;
    spinner.finish_and_clear();
    let s = s?;
    let value = json!({
        "data_dir": cfg.node.data_dir, "pairs": s.pairs, "tree_size": s.tree_size, "root": hex::encode(s.root), "checked": true,
    });
    output::emit(value, || {
        println!(
            "{} restored: {} pairs; audit log size {} root {} (checked)",
            cfg.node.data_dir.display(),
            s.pairs,
            s.tree_size,
            hex::encode(s.root)
        )
    });
    Ok(())
}

/// Purges what has expired at a node now.
pub async fn retention(cmd: RetentionCommand) -> Result<()> {
    let RetentionCommand::Purge { conn } = cmd;
    let mut c = AdminServiceClient::new(conn.channel()?);
    let r = c.purge_expired(pb::PurgeExpiredRequest {}).await.map_err(|s| print_status(&s))?.into_inner();
    output::emit(json!({ "records_deleted": r.records_deleted, "inquiries_deleted": r.inquiries_deleted }), || {
        println!("purged: {} record(s), {} inquiry(ies); each deletion logged", r.records_deleted, r.inquiries_deleted)
    });
    Ok(())
}
