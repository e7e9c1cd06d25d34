//! Following the signed directory while the node runs, like the CRL: the file is re-read when
//! it changes; a newer, validly signed edition is put in force at once, and anything else (a
//! bad signature, an older serial, an unparsable or unreadable file) is refused with a WARN and
//! `bureau_directory_rejected_total{reason}`, keeping the edition in force.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::net::{
    directory::{Directory, DirectoryError, Status},
    peers::Peers,
};

/// Where a node's directory comes from.
#[derive(Debug, Clone)]
pub(crate) struct DirectorySource {
    /// The file (`federation.directory`).
    pub path: PathBuf,
    /// The federation it must list.
    pub federation: String,
    /// The authority's verifier key string.
    pub verifier: String,
}

impl DirectorySource {
    /// Reads and checks the file as it is now.
    pub(crate) fn load(&self) -> Result<Directory, DirectoryError> {
        Directory::load(&self.path, &self.federation, &self.verifier)
    }
}

/// Publishes the edition's figures.
pub(crate) fn publish(d: &Directory) {
    metrics::gauge!("bureau_directory_serial").set(d.serial as f64);
    for (status, label) in [(Status::Active, "active"), (Status::Suspended, "suspended")] {
        let n = d.members.iter().filter(|m| m.status == status).count();
        metrics::gauge!("bureau_directory_members", "status" => label).set(n as f64);
    }
    metrics::gauge!("bureau_directory_locator_shards").set(d.locators.len() as f64);
}

/// Re-reads `source` every `every` until dropped, putting newer editions in force in `peers`.
pub(crate) async fn follow(source: DirectorySource, every: Duration, peers: Arc<Peers>) {
    // Not the file as it is now: an edition published between the node's start (which put the
    // file's then edition in force) and this line would look unchanged and never be adopted
    // (found by the shard-split test). The first look re-reads it; an equal serial is a no-op.
    let mut last: Option<Vec<u8>> = None;
    loop {
        tokio::time::sleep(every).await;
        let now = std::fs::read(&source.path).ok();
        if now == last {
            continue;
        }
        last = now;
        let Some(current) = peers.directory() else { return };
        let offered = source.load().and_then(|d| current.accepts(&d).map(|newer| (d, newer)));
        match offered {
            Ok((d, true)) => {
                let (serial, members) = (d.serial, d.members.len());
                let d = Arc::new(d);
                match peers.adopt(d.clone()) {
                    Ok(()) => {
                        publish(&d);
                        info!(file = %source.path.display(), serial, members, "directory reloaded");
                    }
                    Err(e) => {
                        metrics::counter!("bureau_directory_rejected_total", "reason" => "unusable").increment(1);
                        warn!(file = %source.path.display(), serial, error = %e, "directory refused: its addresses cannot be used; keeping serial {}", current.serial);
                    }
                }
            }
            Ok((_, false)) => {}
            Err(e) => {
                metrics::counter!("bureau_directory_rejected_total", "reason" => e.reason()).increment(1);
                warn!(file = %source.path.display(), reason = e.reason(), error = %e, "directory refused; keeping serial {}", current.serial);
            }
        }
    }
}
