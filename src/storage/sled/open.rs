//! Opening a sled store: sled itself, recovery from the write-ahead log, the engine's threads;
//! and the two ways the trait's methods reach sled (through the writer, or a reader thread).

use super::*;

impl SledStorage {
    /// Opens (or creates) the store: replays the write-ahead log into sled, checks the audit
    /// log against its high-water mark, and starts the writer, flusher and checkpointer threads.
    pub(crate) fn open(opts: &SledOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&opts.path).map_err(|e| unavailable(format!("{}: {e}", opts.path.display())))?;
        // sled's own periodic flusher stays on: it is also what cleans sled's segments (its GC
        // runs nowhere else). Nothing waits on it; the checkpointer's flush is what counts.
        let db = open_db(&sled::Config::new().path(&opts.path).cache_capacity(opts.cache_capacity))?;
        let ledger = db.open_tree(keys::LEDGER)?;
        let store = opts.path.display().to_string();
        let damaged = |why: String| StoreError::Corrupt { key: store.clone(), why };
        // sled 0.34 keeps its log and pages in this one file.
        let data_file =
            std::fs::File::open(opts.path.join("db")).map_err(|e| unavailable(format!("sled data file: {e}")))?;
        let found = replay::recover(&opts.path, &ledger).map_err(|e| damaged(format!("write-ahead log: {e}")))?;
        if found.replayed > 0 {
            tracing::info!(records = found.replayed, "replayed the write-ahead log into sled");
        }
        // Before the log's segments are retired, what sled holds must be on the disk: after a
        // process crash sled's file may still be only in the page cache.
        db.flush()?;
        if opts.fsync {
            data_file.sync_data().map_err(|e| unavailable(format!("fdatasync: {e}")))?;
        }
        let size = keys::decode_size(ledger.get(keys::SIZE)?.as_deref());
        if let Some((marked, marked_root)) = mark::read(&opts.path).map_err(damaged)? {
            if size < marked {
                return Err(damaged(format!(
                    "the audit log has {size} entries but {marked} were durable before: the store lost \
                     acknowledged data (restore it from a backup)"
                )));
            }
            if merkle::Tree::new(node_reader(&ledger)).root(marked)? != marked_root {
                return Err(damaged(format!(
                    "the audit log's first {marked} entries differ from what was durable: the store is damaged"
                )));
            }
        }
        let mark_file = mark::open(&opts.path).map_err(|e| unavailable(format!("{}: {e}", mark::FILE)))?;
        let commits = Arc::new(Commits::new(Point { seq: found.last_seq, size }));
        let (log, wal) = wal::start(&opts.path, found, wal::SEGMENT_BYTES, opts.fsync)
            .map_err(|e| unavailable(format!("write-ahead log: {e}")))?;
        let failure = Arc::new(space::Failure::new(&opts.path));
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE);
        let (checkpoints, checkpoint_rx) = std::sync::mpsc::channel();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| unavailable(format!("{name}: {e}")))
        };
        let syncer = Arc::new(Syncer {
            wal: wal.clone(),
            fsync: opts.fsync,
            marker: Mutex::new(Marker { ledger: ledger.clone(), file: mark_file, marked: size }),
            commits: commits.clone(),
            failure: failure.clone(),
            sync_duration: metrics::histogram!("bureau_store_commit_duration_seconds", "backend" => "sled"),
        });
        let writer = {
            let (ledger, syncer) = (ledger.clone(), syncer.clone());
            spawn("bureau-sled-writer", Box::new(move || writer(ledger, log, syncer, write_rx, size)))?
        };
        let flusher = spawn("bureau-sled-flush", Box::new(move || flusher(syncer)))?;
        let checkpointer = {
            let (failure, wal, commits) = (failure.clone(), wal.clone(), commits.clone());
            let data_file = opts.fsync.then_some(data_file);
            spawn(
                "bureau-sled-checkpoint",
                Box::new(move || checkpointer(db, data_file, wal, commits, checkpoint_rx, failure)),
            )?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                ledger: std::sync::RwLock::new(Some(ledger)),
                writes,
                commits,
                checkpoints,
                readers: Semaphore::new(READERS),
                failure,
                closed: AtomicBool::new(false),
                threads: Mutex::new(vec![writer, flusher, checkpointer]),
            }),
        })
    }

    /// Queues `f` for the writer thread and waits for its group to commit.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteSet<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_job(f, false).await
    }

    /// [`Self::write`], then waits until the change is durable: one hand-off to the writer and
    /// back on a quiet store (the writer syncs a lone durable group itself).
    pub(super) async fn write_durable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteSet<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let out = self.write_job(f, true).await?;
        crate::storage::Storage::sync(self).await?;
        Ok(out)
    }

    async fn write_job<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteSet<'_>) -> Result<T, StoreError> + Send + 'static,
        durable: bool,
    ) -> Result<T, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ws| {
            let out = f(ws);
            let failed = out.is_err();
            let finish: Finish = Box::new(move |commit| {
                let _ = tx.send(out.and_then(|v| commit.map(|()| v)));
            });
            (failed, finish)
        });
        self.inner.writes.send(WriteMsg::Job(job, durable)).await.map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(r) => r,
            // The writer dropped the reply: the change panicked (and was rolled back) or the
            // store closed before running it.
            Err(_) if self.inner.closed.load(Ordering::Acquire) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Panicked("a storage change panicked; it was rolled back".into())),
        }
    }

    /// Runs `f` over the ledger on the blocking pool, at most [`READERS`] at once.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tree) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self.inner.readers.acquire().await.map_err(|_| StoreError::Closed)?;
        let ledger = self.inner.ledger.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(StoreError::Closed)?;
        tokio::task::spawn_blocking(move || f(&ledger)).await.map_err(|e| StoreError::Panicked(e.to_string()))?
    }
}

/// Opens sled. A handle closed a moment ago in this process may still be letting go of the
/// file lock (sled's periodic flusher thread ends on its own time): retry for up to 10 s.
pub(super) fn open_db(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let mut tries = 0;
    loop {
        match config.open() {
            // sled reports a held lock as an `Other` I/O error with this text.
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
