//! The node's health as it changes: the store reachable or not, writes refused on a full disk,
//! the record locator up or down; each mirrored into `bureau_health_serving`, beside the
//! metrics endpoint and the figures it keeps current.

use std::{sync::Arc, time::Duration};

use tonic_health::ServingStatus;
use tracing::info;

use crate::{net::peers::Peers, storage::DynStorage};

/// Serves the metrics and health endpoint, if configured, and keeps the audit log's size and
/// the free space of the data directory's filesystem current in it (every 5 s). Never
/// returns; dropped when the node stops.
pub(super) async fn publish_metrics(
    store: DynStorage,
    listener: Option<(tokio::net::TcpListener, Vec<crate::config::IpNet>)>,
    institution: String,
    health: tonic_health::server::HealthReporter,
    dir: std::path::PathBuf,
) {
    let Some((listener, allow)) = listener else { return std::future::pending().await };
    let serving = crate::telemetry::serve(listener, allow, health);
    let sizes = async {
        loop {
            if let Ok(head) = store.durable_head().await {
                metrics::gauge!("bureau_audit_log_entries", "institution" => institution.clone()).set(head.size as f64);
            }
            let d = dir.clone();
            let space = tokio::task::spawn_blocking(move || (fs2::available_space(&d), fs2::total_space(&d))).await;
            if let Ok((Ok(free), Ok(size))) = space {
                metrics::gauge!("bureau_data_dir_available_bytes").set(free as f64);
                metrics::gauge!("bureau_data_dir_size_bytes").set(size as f64);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    tokio::join!(serving, sizes);
}

/// Keeps health in step with whether the store can be reached (a database may go away and
/// come back; an embedded store always answers): NOT_SERVING while it cannot, SERVING again
/// once it can. Never returns; dropped when the node stops.
pub(super) async fn follow_reachability(
    store: DynStorage,
    health: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
) {
    const EVERY: Duration = Duration::from_millis(500);
    let mut reachable = true;
    loop {
        tokio::time::sleep(EVERY).await;
        match (store.probe().await, reachable) {
            (Err(e), true) => {
                tracing::error!(backend = store.backend(), error = %e, "the store cannot be reached: NOT_SERVING until it can");
                not_serving(&health, &services).await;
                reachable = false;
            }
            (Ok(()), false) => {
                info!(backend = store.backend(), "the store is reachable again: SERVING");
                set_health(&health, "", ServingStatus::Serving).await;
                for name in services.iter().chain(&[READS, WRITES]) {
                    set_health(&health, name, ServingStatus::Serving).await;
                }
                reachable = true;
            }
            _ => {}
        }
    }
}

/// Health entries for the store's two paths: SERVING while reads of stored data (records,
/// inquiries, the audit log) are answered, and while writes are taken. With the disk full the
/// API services and the server report NOT_SERVING (most calls write, if only to the audit log)
/// while [`READS`] stays SERVING: exactly what still works.
pub const READS: &str = "bureau.store.reads";
/// See [`READS`].
pub const WRITES: &str = "bureau.store.writes";
/// The health entry of the record locator as this node sees it: SERVING while every locator
/// node set answers its health check, NOT_SERVING while one does not (scores then ask every
/// member). Absent when the federation runs no locator.
pub const LOCATOR: &str = "bureau.locator";

/// Follows the locator's reachability into [`LOCATOR`] until dropped.
pub(super) async fn follow_locator(peers: Arc<Peers>, health: tonic_health::server::HealthReporter) {
    const EVERY: Duration = Duration::from_millis(500);
    let mut was = None;
    loop {
        let now = peers.locators_serving(Duration::from_secs(1)).await;
        if now != was {
            match now {
                Some(true) => info!("the record locator is reachable: scores ask only the members it names"),
                Some(false) => {
                    tracing::warn!("the record locator cannot be reached: scores ask every member until it can")
                }
                None => {}
            }
            let status = if now == Some(false) { ServingStatus::NotServing } else { ServingStatus::Serving };
            if now.is_some() {
                set_health(&health, LOCATOR, status).await;
            }
            metrics::gauge!("bureau_locator_up").set(if now == Some(false) { 0.0 } else { 1.0 });
            was = now;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Sets the health of `name` (`""`: the node as a whole) and mirrors it into
/// `bureau_health_serving{service}` (1 SERVING, 0 NOT_SERVING; the node as a whole is
/// `service="node"`), the figure the alert rules watch.
pub(super) async fn set_health(
    health: &tonic_health::server::HealthReporter,
    name: &'static str,
    status: ServingStatus,
) {
    let up = if status == ServingStatus::Serving { 1.0 } else { 0.0 };
    metrics::gauge!("bureau_health_serving", "service" => if name.is_empty() { "node" } else { name }).set(up);
    health.set_service_status(name, status).await;
}

/// Reports NOT_SERVING for the server as a whole, for each of `services` and for the store.
pub(super) async fn not_serving(health: &tonic_health::server::HealthReporter, services: &[&'static str]) {
    set_health(health, "", ServingStatus::NotServing).await;
    for name in services.iter().chain(&[READS, WRITES]) {
        set_health(health, name, ServingStatus::NotServing).await;
    }
}

/// Resolves once the store can no longer write and there is room on its disk again. From the
/// first failed write the node reports NOT_SERVING (every service, and [`WRITES`]) but keeps
/// answering reads ([`READS`] stays SERVING); when space is freed it stops, so that its
/// supervisor restarts it with a fresh store handle (sled does not write again after an I/O
/// error). Returns why the store failed.
pub(super) async fn storage_failed(
    store: DynStorage,
    health: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
    dir: std::path::PathBuf,
) -> String {
    const CHECK: Duration = Duration::from_millis(250);
    /// Free space that counts as "room again".
    const ROOM: u64 = 1 << 20;
    let why = loop {
        tokio::time::sleep(CHECK).await;
        if let Some(why) = store.write_failure() {
            break why;
        }
    };
    tracing::error!(error = %why, "the store cannot write: NOT_SERVING; reads still answered until space is back");
    not_serving(&health, &services).await;
    set_health(&health, READS, ServingStatus::Serving).await;
    // A store may stop writing with some space left (kept for its own last writes, so reads go
    // on): room is back when free space grew by ROOM over the least seen since.
    let mut least = u64::MAX;
    loop {
        let dir = dir.clone();
        let free = tokio::task::spawn_blocking(move || fs2::available_space(&dir).unwrap_or(0)).await.unwrap_or(0);
        least = least.min(free);
        if free >= least.saturating_add(ROOM) {
            tracing::error!(free_bytes = free, "space is back; stopping so the node restarts with a fresh store");
            return why;
        }
        tokio::time::sleep(CHECK * 4).await;
    }
}
