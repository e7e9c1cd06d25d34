//! The `bureau` binary: see `bureau --help`. The production build is the server and the
//! operator's and regulator's tools; with feature `lab` it also has `demo`, `bench` and `gen`.

// First, so its `say!` is in scope for the demo below.
#[macro_use]
mod show;
mod cli;
#[cfg(feature = "lab")]
mod lab;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// sled allocates and frees a node copy per update; mimalloc serves that pattern far better than
/// glibc's malloc (measured: see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    // One process-wide crypto provider, chosen before anything touches rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = crate::cli::Cli::parse();
    // One line per score and per peer query (trace and query ids) at info: an operator's access
    // log. The demo and the benchmarks make thousands, so they start quieter (the benchmarks
    // time the node, not its request logging).
    let default = match cli.command {
        #[cfg(feature = "lab")]
        crate::cli::Command::Bench(_) => "warn",
        #[cfg(feature = "lab")]
        crate::cli::Command::Demo(_) => "info,bureau::app::score=warn,bureau::grpc::federation=warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: a log file or a journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cli.log_format {
        crate::cli::LogFormat::Json => builder.json().init(),
        crate::cli::LogFormat::Text => builder.init(),
    }
    match crate::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas, and
/// on a lightly loaded node (most members of a large federation) a fresh page is often a 2 MiB
/// page the kernel must zero: measured at about an eighth of the CPU per federated score
/// (BENCHMARKS.md). A node's memory is small enough that the TLB gains nothing from them.
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes an integer argument and touches no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}
