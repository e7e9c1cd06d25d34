//! `bureau pki directory …`: the licensing authority's signed member directory — show it, add,
//! suspend, reactivate or remove a member, place a locator shard, re-sign it. Every change is a
//! new edition under the next serial (`pki::edit_directory`), which the nodes pick up within
//! `limits.crl_reload_ms`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use bureau::{
    directory::{self, Directory, LocatorShard, Member, Status},
    pki::{self, PkiDir},
};

/// Where the authority keeps the directory, and which federation's it is.
#[derive(Args, Debug)]
pub struct Authority {
    /// The PKI directory (holds `directory.note`, `directory.key` and `directory.pub`).
    #[arg(long)]
    dir: PathBuf,
    /// Federation name (SPIFFE trust domain).
    #[arg(long)]
    federation: String,
}

/// `bureau pki directory …`
#[derive(Subcommand, Debug)]
pub enum DirectoryCommand {
    /// Print the edition in force: serial, members with status and addresses, locator shards.
    Show {
        #[command(flatten)]
        at: Authority,
    },
    /// Add an active member (refused when the id is already listed).
    Add {
        #[command(flatten)]
        at: Authority,
        /// The institution id its certificate names.
        #[arg(long)]
        id: String,
        /// `host:port` of one of its nodes (repeat; the first is preferred).
        #[arg(long = "address", required = true)]
        addresses: Vec<String>,
        /// Its log's checkpoint verifier key (`name+id+key`), or `@FILE` to read it from a file.
        #[arg(long)]
        log_key: Option<String>,
    },
    /// Suspend a member's licence: the others refuse it and stop asking it.
    Suspend {
        #[command(flatten)]
        at: Authority,
        /// The member.
        #[arg(long)]
        id: String,
    },
    /// Make a suspended member active again.
    Activate {
        #[command(flatten)]
        at: Authority,
        /// The member.
        #[arg(long)]
        id: String,
    },
    /// Remove a member from the directory.
    Remove {
        #[command(flatten)]
        at: Authority,
        /// The member.
        #[arg(long)]
        id: String,
    },
    /// Add a locator shard, or replace the one with the same prefix.
    Locator {
        #[command(flatten)]
        at: Authority,
        /// The locator node's institution id.
        #[arg(long)]
        id: String,
        /// Lowercase hex prefix of the pseudonyms it serves (`""` for all of them).
        #[arg(long, default_value = "")]
        prefix: String,
        /// `host:port` of one of its nodes (repeat).
        #[arg(long = "address", required = true)]
        addresses: Vec<String>,
        /// Its log's checkpoint verifier key, or `@FILE`.
        #[arg(long)]
        log_key: Option<String>,
    },
    /// Publish the same content again under the next serial.
    Resign {
        #[command(flatten)]
        at: Authority,
    },
}

/// Runs a `bureau pki directory` command.
pub fn run(cmd: DirectoryCommand) -> Result<()> {
    match cmd {
        DirectoryCommand::Show { at } => {
            let d = pki::read_directory(&PkiDir(at.dir.clone()), &at.federation)
                .with_context(|| format!("reading the directory in {}", at.dir.display()))?;
            let value = serde_json::json!({
                "federation": d.federation, "serial": d.serial, "members": d.members, "locators": d.locators,
            });
            super::output::emit(value, || print!("{}", render(&d)));
        }
        DirectoryCommand::Add { at, id, addresses, log_key } => {
            check_addresses(&addresses)?;
            let log_key = read_log_key(log_key)?;
            let member = Member { id: id.clone(), addresses, log_key, status: Status::Active };
            publish(&at, &format!("added member {id}"), |d| {
                if d.member(&id).is_some() {
                    return Err(format!("member {id} is already in the directory"));
                }
                d.members.push(member);
                Ok(())
            })?;
        }
        DirectoryCommand::Suspend { at, id } => set_status(&at, &id, Status::Suspended)?,
        DirectoryCommand::Activate { at, id } => set_status(&at, &id, Status::Active)?,
        DirectoryCommand::Remove { at, id } => {
            publish(&at, &format!("removed member {id}"), |d| {
                let before = d.members.len();
                d.members.retain(|m| m.id != id);
                if d.members.len() == before {
                    return Err(format!("no member {id} in the directory"));
                }
                Ok(())
            })?;
        }
        DirectoryCommand::Locator { at, id, prefix, addresses, log_key } => {
            check_addresses(&addresses)?;
            let log_key = read_log_key(log_key)?;
            let shard = LocatorShard { id: id.clone(), prefix: prefix.clone(), addresses, log_key };
            publish(&at, &format!("locator shard {prefix:?} served by {id}"), |d| {
                match d.locators.iter_mut().find(|l| l.prefix == prefix) {
                    Some(l) => *l = shard,
                    None => d.locators.push(shard),
                }
                Ok(())
            })?;
        }
        DirectoryCommand::Resign { at } => publish(&at, "re-signed", |_| Ok(()))?,
    }
    Ok(())
}

/// Publishes the edition with `change` applied and prints its serial.
fn publish(at: &Authority, what: &str, change: impl FnOnce(&mut Directory) -> Result<(), String>) -> Result<()> {
    let d = pki::edit_directory(&PkiDir(at.dir.clone()), &at.federation, change)
        .with_context(|| format!("directory in {} not changed", at.dir.display()))?;
    super::output::emit(serde_json::json!({ "serial": d.serial, "change": what }), || {
        println!("directory serial {}: {what}", d.serial)
    });
    Ok(())
}

/// Suspends or reactivates member `id`; refused when it is not listed or already so.
fn set_status(at: &Authority, id: &str, status: Status) -> Result<()> {
    let word = status_word(status);
    publish(at, &format!("member {id} {word}"), |d| {
        let m = d.members.iter_mut().find(|m| m.id == id).ok_or_else(|| format!("no member {id} in the directory"))?;
        if m.status == status {
            return Err(format!("member {id} is already {word}"));
        }
        m.status = status;
        Ok(())
    })
}

/// `active` or `suspended`.
fn status_word(status: Status) -> &'static str {
    match status {
        Status::Active => "active",
        Status::Suspended => "suspended",
    }
}

/// Each address must be `host:port` with a port number, as the nodes will dial it.
fn check_addresses(addresses: &[String]) -> Result<()> {
    for a in addresses {
        match a.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => bail!("address {a:?} is not host:port"),
        }
    }
    Ok(())
}

/// The log key given inline or as `@FILE`, checked to be a verifier key string.
fn read_log_key(arg: Option<String>) -> Result<String> {
    let Some(arg) = arg else { return Ok(String::new()) };
    let key = match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading the log key {file}"))?,
        None => arg,
    };
    let key = key.trim().to_owned();
    directory::check_log_key(&key).map_err(|e| anyhow::anyhow!("log key {key:?}: {e}"))?;
    Ok(key)
}

/// The edition as an operator reads it.
fn render(d: &Directory) -> String {
    use std::fmt::Write;
    let mut out = format!("directory of {}, serial {}\n", d.federation, d.serial);
    let _ = writeln!(out, "members ({}):", d.members.len());
    for m in &d.members {
        let _ = writeln!(out, "  {:<20} {:<9} {}", m.id, status_word(m.status), m.addresses.join(", "));
        if !m.log_key.is_empty() {
            let _ = writeln!(out, "  {:<20} log key {}", "", m.log_key);
        }
    }
    let _ = writeln!(out, "locator shards ({}):", d.locators.len());
    for l in &d.locators {
        let prefix = if l.prefix.is_empty() { "(all)".to_owned() } else { l.prefix.clone() };
        let _ = writeln!(out, "  prefix {:<6} {:<20} {}", prefix, l.id, l.addresses.join(", "));
    }
    out
}
