//! Reading the C2SP configuration at start: this node's witness (its key, name and the logs it
//! witnesses) and the tlog policy it collects cosignatures under. Refused at start, naming the
//! file, when any of it is unreadable.

use std::sync::Arc;

use tracing::info;

use super::ServeError;
use crate::net::tls;

/// This node as a witness, when `tlog.witness_key` is set: its key, its name
/// `<federation>/witness/<id>`, and the logs it witnesses (the keys in `tlog.logs`, and every
/// other member's log key in the signed directory).
pub(crate) fn witness_of(
    cfg: &crate::config::NodeConfig,
    directory: Option<&crate::net::directory_watch::DirectorySource>,
) -> Result<Option<crate::app::tlog::WitnessSettings>, ServeError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let Some(path) = &cfg.tlog.witness_key else { return Ok(None) };
    let bad = |what: &std::path::Path, e: String| ServeError::Mismatch(format!("{}: {e}", what.display()));
    let pem = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| bad(path, format!("not an Ed25519 PKCS#8 key: {e}")))?;
    let mut keys: Vec<String> = Vec::new();
    if let Some(logs) = &cfg.tlog.logs {
        let text = std::fs::read_to_string(logs).map_err(|e| bad(logs, e.to_string()))?;
        keys.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    if let Some(source) = directory {
        let d = source.load().map_err(|e| bad(&source.path, e.to_string()))?;
        let me = &cfg.node.institution;
        keys.extend(d.members.iter().filter(|m| &m.id != me && !m.log_key.is_empty()).map(|m| m.log_key.clone()));
    }
    let mut logs = std::collections::HashMap::new();
    for k in keys {
        let (origin, vk) = crate::audit::checkpoint::parse_verifier_key(&k)
            .map_err(|e| ServeError::Mismatch(format!("tlog.logs: {k:?}: {e}")))?;
        logs.insert(origin, vk);
    }
    let name = format!("{}/witness/{}", cfg.federation.name, cfg.node.institution);
    info!(name = %name, logs = logs.len(), "witnessing peers' logs");
    Ok(Some(crate::app::tlog::WitnessSettings { key: Arc::new(key), name, logs }))
}

/// What collecting this node's cosignatures needs, when `tlog.policy` is set: the policy, and a
/// client for each witness it gives a `https://host:port` submission prefix (a witness named
/// `<federation>/witness/<id>` must present institution `id`'s certificate).
pub(crate) fn witnessing_of(
    cfg: &crate::config::NodeConfig,
    material: &tls::TlsMaterial,
) -> Result<Option<crate::app::tlog::Witnessing>, ServeError> {
    let Some(path) = &cfg.tlog.policy else { return Ok(None) };
    let bad = |e: String| ServeError::Mismatch(format!("tlog.policy {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let policy = crate::audit::policy::Policy::parse(&text).map_err(|e| bad(e.to_string()))?;
    let prefix = format!("{}/witness/", cfg.federation.name);
    let mut clients = Vec::new();
    for w in &policy.witnesses {
        let Some(url) = &w.url else { continue };
        let addr: std::net::SocketAddr = url
            .strip_prefix("https://")
            .map(|a| a.trim_end_matches('/'))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad(format!("witness {} url {url:?} is not https://<ip:port>", w.label)))?;
        let expected = w.witness.name.strip_prefix(&prefix);
        let client = crate::net::tlog_client::TlogClient::new(material, &cfg.federation.name, expected, addr)
            .map_err(|e| bad(e.to_string()))?;
        clients.push((w.clone(), client));
    }
    info!(witnesses = clients.len(), "collecting cosignatures under the tlog policy");
    Ok(Some((policy, clients)))
}
