//! The `bureau` binary: see `bureau --help`.

mod bench;
mod cli;
mod demo;
mod show;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// sled allocates and frees a node copy per update; mimalloc serves that pattern far better than
/// glibc's malloc (measured: see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One process-wide crypto provider, chosen before anything touches rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = crate::cli::Cli::parse();
    // Benchmarks time the node, not its request logging: quieter by default there.
    // One line per score and per peer query (trace and query ids) at info: an operator's access
    // log. The demo and the benchmarks make thousands, so they start quieter.
    let default = match cli.command {
        crate::cli::Command::Bench { .. } => "warn",
        crate::cli::Command::Demo { .. } => "info,bureau::app::score=warn,bureau::grpc::federation=warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    match crate::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
