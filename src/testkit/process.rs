//! A node as its own `bureau serve` process, as each institution runs it: its own memory,
//! threads and allocator. The tests use it to watch a real process (signals, memory, its log);
//! the benchmarks to keep the nodes of a federation from sharing one runtime.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

/// Log lines a [`NodeProcess`] keeps: the most recent ones.
const KEPT_LINES: usize = 10_000;

/// Why a node process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The binary could not be started, or its log could not be read.
    #[error("cannot run {exe}: {source}")]
    Spawn {
        /// The binary.
        exe: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// It stopped before logging that it listens (a bad configuration, a taken port).
    #[error("the node exited before listening (configuration {0})")]
    Exited(String),
}

/// A `bureau serve` child process, killed when dropped so a failing test or an interrupted
/// benchmark leaves none behind. Derefs to its [`Child`] (`id`, `kill`, `wait`).
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    /// The address it logged as listening on.
    pub addr: SocketAddr,
    log: Arc<Mutex<VecDeque<serde_json::Value>>>,
}

impl NodeProcess {
    /// Runs `exe serve --config config` with JSON logs and returns once the node logs that it
    /// listens. `filter` replaces `RUST_LOG` (it must keep `bureau::server` at info, whose
    /// "node listening" line is awaited); `None` leaves the node's default. Its log is drained
    /// on a thread of its own so it never blocks on a full pipe.
    pub fn spawn(exe: &Path, config: &Path, filter: Option<&str>) -> Result<Self, ProcessError> {
        let spawn_error = |source| ProcessError::Spawn { exe: exe.display().to_string(), source };
        let mut cmd = Command::new(exe);
        cmd.args(["--log-format", "json", "serve", "--config"]).arg(config);
        if let Some(f) = filter {
            cmd.env("RUST_LOG", f);
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().map_err(spawn_error)?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            return Err(ProcessError::Exited(config.display().to_string()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let listening = loop {
            let Some(line) = lines.next() else { break None };
            let v: serde_json::Value = serde_json::from_str(&line.map_err(spawn_error)?).unwrap_or_default();
            if v["fields"]["message"] == "node listening" {
                break v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            }
        };
        let Some(addr) = listening else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProcessError::Exited(config.display().to_string()));
        };
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let Ok(mut kept) = keep.lock() else { return };
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(serde_json::from_str(&line).unwrap_or_default());
            }
        });
        Ok(Self { child, addr, log })
    }

    /// The JSON log lines it has written since it listened (the last 10,000).
    pub fn log(&self) -> Vec<serde_json::Value> {
        self.log.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    /// A numeric field of its `/proc/PID/status` (`VmRSS`, `VmHWM` in KiB; `Threads`).
    pub fn status(&self, field: &str) -> u64 {
        proc_status(self.child.id(), field)
    }

    /// Its peak resident set (`VmHWM`), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status("VmHWM")
    }
}

/// A numeric field of `/proc/PID/status` (`VmRSS`, `VmHWM` in KiB; `Threads`); 0 when it cannot
/// be read (no `/proc`, the process gone).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl std::ops::Deref for NodeProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for NodeProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
