//! The `bureau` binary: see `bureau --help`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A command-line tool piped into `head` should end quietly, not panic on a closed stdout.
    #[cfg(unix)]
    // SAFETY: `signal` only sets SIGPIPE's process-wide disposition back to the default; no
    // handler function is installed, so no code of ours runs in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // One process-wide crypto provider, chosen before anything touches rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = bureau::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    match bureau::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
