//! `bureau config check`: what `bureau serve` would refuse at start, found before a deploy — the
//! file parses and its values hold together, and the files it names can be read (certificates,
//! key, CRL, subject key, model, backup recipients).

use std::{fs, path::PathBuf};

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;

use super::output;
use bureau::{config::Backend, Model, NodeConfig, TlsMaterial};

/// `bureau config …`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Parse and check a node configuration and read every file it names; exits non-zero on
    /// the first problem of each kind, listing them all.
    Check {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs a `bureau config` command.
pub fn run(cmd: ConfigCommand) -> Result<()> {
    let ConfigCommand::Check { config } = cmd;
    let cfg = NodeConfig::load(&config)?;
    let problems = problems(&cfg);
    let value = json!({
        "config": config,
        "ok": problems.is_empty(),
        "institution": cfg.node.institution,
        "listen": cfg.node.listen.to_string(),
        "federation": cfg.federation.name,
        "backend": if cfg.store.backend == Backend::Sled { "sled" } else { "postgres" },
        "peers": cfg.peers.len(),
        "directory": cfg.federation.directory.is_some(),
        "problems": problems,
    });
    output::emit(value, || {
        for p in &problems {
            println!("PROBLEM {p}");
        }
        if problems.is_empty() {
            println!(
                "{}: ok (institution {}, listening on {}, federation {})",
                config.display(),
                cfg.node.institution,
                cfg.node.listen,
                cfg.federation.name
            );
        }
    });
    if !problems.is_empty() {
        bail!("{}: {} problem(s)", config.display(), problems.len());
    }
    Ok(())
}

/// What would stop the node or one of its features, by reading the files the configuration names.
fn problems(cfg: &NodeConfig) -> Vec<String> {
    let mut out = Vec::new();
    match TlsMaterial::load(&cfg.tls_files()) {
        Err(e) => out.push(format!("tls: {e}")),
        Ok(m) => {
            if let Err(e) = m.identity() {
                out.push(format!("tls.cert: {e}"));
            }
        }
    }
    if let Some(k) = &cfg.federation.subject_key {
        if let Err(e) = bureau::read_hex_key(k) {
            out.push(format!("federation.subject_key: {e}"));
        }
    }
    if let Some(m) = &cfg.scoring.model {
        match fs::read_to_string(m) {
            Ok(text) => {
                if let Err(e) = Model::from_toml(&text) {
                    out.push(format!("scoring.model {}: {e}", m.display()));
                }
            }
            Err(e) => out.push(format!("scoring.model {}: {e}", m.display())),
        }
    }
    if let Some(r) = &cfg.admin.backup_recipients {
        if let Err(e) = bureau::read_recipients(r) {
            out.push(format!("admin.backup_recipients: {e}"));
        }
    }
    for (name, path) in [("federation.directory", &cfg.federation.directory), ("tls.log_key", &cfg.tls.log_key)] {
        if let Some(p) = path {
            if let Err(e) = fs::metadata(p) {
                out.push(format!("{name} {}: {e}", p.display()));
            }
        }
    }
    if cfg.store.backend == Backend::Sled {
        // The node creates the directory: its nearest existing ancestor must be writable.
        let dir = &cfg.node.data_dir;
        match dir.ancestors().find(|a| a.exists()).map(fs::metadata) {
            Some(Ok(m)) if m.permissions().readonly() => {
                out.push(format!("node.data_dir {}: not writable", dir.display()))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => out.push(format!("node.data_dir {}: {e}", dir.display())),
            None => out.push(format!("node.data_dir {}: no existing parent", dir.display())),
        }
    }
    out
}
