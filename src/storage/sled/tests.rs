//! The sled store's own tests: what the conformance suite cannot see from the trait.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{SledOptions, SledStorage};
use crate::storage::{conformance::Backend, DynStorage};

/// A sled store in a temporary directory of its own, reopened in place.
struct Sled(tempfile::TempDir);

impl Backend for Sled {
    fn open(&self) -> BoxFuture<'_, DynStorage> {
        let opts = SledOptions { path: self.0.path().join("store"), cache_capacity: 16 << 20, fsync: true };
        Box::pin(async move {
            let store = tokio::task::spawn_blocking(move || SledStorage::open(&opts)).await.unwrap().unwrap();
            Arc::new(store) as DynStorage
        })
    }
}

crate::storage_conformance!(Sled(tempfile::tempdir().unwrap()));

/// Writing far more than a segment leaves the write-ahead log at its current segment and
/// its spares once the checkpointer has caught up, and nothing is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_a_few_segments_however_much_is_written() {
    use crate::{
        audit::{Action, Entry},
        storage::Storage,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = SledOptions { path: dir.path().join("store"), cache_capacity: 16 << 20, fsync: true };
    let open = |opts: SledOptions| async move {
        tokio::task::spawn_blocking(move || SledStorage::open(&opts)).await.unwrap().unwrap()
    };
    let store = open(opts.clone()).await;
    let outcome = "x".repeat(4096);
    for _ in 0..50 {
        let entries = (0..100).map(|_| Entry::new(Action::QueryInbound, "bank", outcome.clone())).collect();
        store.append_audit(entries).await.unwrap();
        store.sync().await.unwrap();
    }
    // About 20 MiB: five segments' worth.
    let segments = || std::fs::read_dir(dir.path().join("store").join(super::wal::DIR)).unwrap().count();
    let mut n = segments();
    for _ in 0..100 {
        if n <= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        n = segments();
    }
    assert!(n <= 3, "{n} segment files: the current one and at most two spares");
    store.close().await.unwrap();
    let store = open(opts).await;
    assert_eq!(store.audit_size().await.unwrap(), 5000);
    store.close().await.unwrap();
}
