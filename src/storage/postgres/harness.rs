//! A real PostgreSQL server for tests and benchmarks (re-exported as `testkit::postgres`): `initdb` + `pg_ctl` from the distribution's
//! packages on a free loopback port in a temp dir, run as the `postgres` user when we are root
//! (initdb refuses root). A watcher process stops the server and removes its directory when the
//! process that started it exits, even by `kill -9`, so no test leaves a server behind.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No PostgreSQL binaries on this machine.
    #[error(
        "PostgreSQL server binaries not found (looked for BUREAU_PG_BIN, then /usr/lib/postgresql/*/bin): \
         install them with `apt-get install -y postgresql-15` (the tests need a real server)"
    )]
    Missing,
    /// A command failed.
    #[error("{command}: {detail}")]
    Command {
        /// What ran.
        command: String,
        /// Its exit status and output.
        detail: String,
    },
}

/// A running server of our own. Dropping it stops the server and removes its files.
pub struct TestPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> Result<PathBuf, PgError> {
    if let Some(b) = std::env::var_os("BUREAU_PG_BIN") {
        return Ok(PathBuf::from(b));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| PgError::Missing)?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().ok_or(PgError::Missing)
}

fn is_root() -> bool {
    // The effective uid, from /proc (no libc call: the crate forbids unsafe).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(55_432)
}

impl TestPostgres {
    /// Creates a cluster (superuser `bureau`, trust on loopback) and starts it.
    pub fn start() -> Result<Self, PgError> {
        let pg = Self::init("bureau-pg-")?;
        pg.start_server()?;
        pg.watch_parent();
        Ok(pg)
    }

    /// A new cluster (superuser `bureau`, trust on loopback) in a temporary directory named
    /// `prefix…`, not started.
    fn init(prefix: &str) -> Result<Self, PgError> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| PgError::Command { command: "tempdir".into(), detail: e.to_string() })?;
        let pg = Self { bin, dir, port: free_port(), as_postgres };
        if as_postgres {
            pg.run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(pg.dir.path()), false)?;
        }
        let data = pg.data().display().to_string();
        pg.run(pg.tool("initdb").args(["-D", &data, "-A", "trust", "-U", "bureau", "--no-sync", "-E", "UTF8"]), true)?;
        Ok(pg)
    }

    /// Like [`TestPostgres::start`], but the server accepts TLS connections only (`hostssl`),
    /// with a certificate for 127.0.0.1 and `localhost` from a throw-away authority whose PEM
    /// file is returned with it.
    pub fn start_tls() -> Result<(Self, PathBuf), PgError> {
        let pg = Self::init("bureau-pgtls-")?;
        let ca = pg.tls_files()?;
        pg.start_server()?;
        pg.watch_parent();
        Ok((pg, ca))
    }

    /// Writes the server's certificate and key into the data directory, turns TLS on and makes
    /// every TCP connection need it; returns the authority's certificate.
    fn tls_files(&self) -> Result<PathBuf, PgError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| PgError::Command { command: what.into(), detail: e.to_string() };
        let ca_key = rcgen::KeyPair::generate().map_err(|e| fail("ca key", &e))?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("ca params", &e))?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "bureau test database authority");
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail("ca cert", &e))?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().map_err(|e| fail("server key", &e))?;
        let server = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| fail("server params", &e))?;
        let cert = server.signed_by(&key, &issuer).map_err(|e| fail("server cert", &e))?;
        let data = self.data();
        let write = |name: &str, text: &str| std::fs::write(data.join(name), text).map_err(|e| fail(name, &e));
        write("server.crt", &cert.pem())?;
        write("server.key", &key.serialize_pem())?;
        let mut conf =
            std::fs::read_to_string(data.join("postgresql.conf")).map_err(|e| fail("postgresql.conf", &e))?;
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        write("postgresql.conf", &conf)?;
        let hba = std::fs::read_to_string(data.join("pg_hba.conf")).map_err(|e| fail("pg_hba.conf", &e))?;
        let hba: String = hba
            .lines()
            .map(|l| l.strip_prefix("host ").map_or(l.to_owned(), |rest| format!("hostssl {rest}")) + "\n")
            .collect();
        write("pg_hba.conf", &hba)?;
        let key_path = data.join("server.key").display().to_string();
        self.run(Command::new("chmod").args(["600", &key_path]), false)?;
        if self.as_postgres {
            self.run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data), false)?;
        }
        let ca_path = self.dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).map_err(|e| fail("ca.pem", &e))?;
        Ok(ca_path)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The port it listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://bureau@127.0.0.1:{}/{database}?connect_timeout=2", self.port)
    }

    /// Creates a fresh, empty database with a unique name; returns its URL.
    pub fn fresh_database(&self) -> Result<String, PgError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// The database named after `key` (a node's data directory), created on first use.
    pub fn database_for(&self, key: &std::path::Path) -> Result<String, PgError> {
        use sha2::{Digest, Sha256};
        let name = format!("n_{}", hex::encode(&Sha256::digest(key.as_os_str().as_encoded_bytes())[..10]));
        let exists = self.psql("postgres", &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"))?;
        if exists.is_empty() {
            self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        }
        Ok(self.url(&name))
    }

    /// Runs one SQL command through `psql` and returns what it printed (unaligned, no headers).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, PgError> {
        let port = self.port.to_string();
        let out = self.run(
            self.tool("psql")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "bureau", "-d", database, "-X", "-A", "-t"])
                .args(["-v", "ON_ERROR_STOP=1", "-c", sql]),
            false,
        )?;
        Ok(out.trim().to_owned())
    }

    fn start_server(&self) -> Result<(), PgError> {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on -c synchronous_commit=on",
            self.port,
            self.dir.path().display()
        );
        self.run(self.tool("pg_ctl").args(["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "30", "start"]), true)?;
        Ok(())
    }

    /// Stops the server (fast shutdown: clients are disconnected, committed work is kept).
    pub fn stop(&self) -> Result<(), PgError> {
        let data = self.data().display().to_string();
        self.run(self.tool("pg_ctl").args(["-D", &data, "-m", "fast", "-w", "stop"]), true).map(drop)
    }

    /// Starts it again after [`TestPostgres::stop`], on the same port.
    pub fn restart(&self) -> Result<(), PgError> {
        self.start_server()
    }

    /// Where the server writes its log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, cmd: &mut Command, quiet_stdin: bool) -> Result<String, PgError> {
        if quiet_stdin {
            cmd.stdin(Stdio::null());
        }
        let command = format!("{cmd:?}");
        let out = cmd.output().map_err(|e| PgError::Command { command: command.clone(), detail: e.to_string() })?;
        if !out.status.success() {
            return Err(PgError::Command {
                command,
                detail: format!(
                    "{}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A detached shell that waits for this process to end, then stops the server and removes
    /// its directory: statics are never dropped, and `kill -9` runs no destructor.
    fn watch_parent(&self) {
        let stop = format!(
            "{} {} -D {} -m immediate stop",
            if self.as_postgres { "runuser -u postgres --" } else { "" },
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.path().display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.run(self.tool("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]), true);
    }
}

/// The server shared by one test process, started on first use.
pub fn shared() -> &'static TestPostgres {
    static PG: std::sync::OnceLock<TestPostgres> = std::sync::OnceLock::new();
    PG.get_or_init(|| TestPostgres::start().unwrap_or_else(|e| panic!("{e}")))
}
