//! The lab commands, built only with feature `lab` (on top of the library's test kit): `demo`,
//! a local federation with sample data; `bench`, the benchmarks against same-run baselines;
//! `gen`, synthetic records as JSON lines. None of this is in the production binary.

mod bench;
mod demo;

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use clap::Args;

use bureau::{
    read_hex_key,
    testkit::gen::{self, GenConfig},
};

/// `bureau gen`
#[derive(Args, Debug)]
pub struct GenArgs {
    /// Number of subjects.
    #[arg(long, default_value_t = 1000)]
    subjects: usize,
    /// Seed: the same seed gives the same records.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Furnishing institutions (repeat); records are spread over them.
    #[arg(long = "institution", default_values_t = ["payapp".to_string(), "bikeshare".to_string(), "bank".to_string()])]
    institutions: Vec<String>,
    /// Only write the records of this institution (to feed its node).
    #[arg(long)]
    only: Option<String>,
    /// The federation's subject key file (hex); a fixed demo key if absent.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Output file; standard output if absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `bureau bench`
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Small sizes: a smoke run in under a minute.
    #[arg(long)]
    quick: bool,
    /// Run only these parts (repeatable): furnish, scoring, audit, score, postgres, locator;
    /// `federation` (a federation that grows to 48 member processes) runs only when named.
    #[arg(long, value_enum)]
    only: Vec<bench::Part>,
    /// People registered in the locator part (each held by 2 or 3 of 2,084 members).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    people: u64,
    /// The stores the locator part measures (repeatable): sled, postgres; both if absent.
    #[arg(long = "locator-backend", value_enum)]
    locator_backends: Vec<bench::LocatorBackend>,
    /// The federation sizes of `--only federation` (comma-separated, each 3–48, first is the
    /// baseline of the ratios); 3, 8, 16, 32, 48 if absent.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(3..=48))]
    members: Vec<u16>,
    /// Diagnosis only: the growth part's nodes run without `fdatasync`, to show how much of a
    /// score's cost the durable writes are. Not a figure of bureau as shipped.
    #[arg(long)]
    no_fsync: bool,
    /// Where to write the SVG charts (score latency against the echo; cost per score as the
    /// federation grows, with `--only federation`).
    #[arg(long, default_value = "bench-charts")]
    charts: PathBuf,
}

/// `bureau demo`
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the federation's files here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of subjects to generate (at least 1: the demo scores some of them).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    subjects: u64,
    /// Keep the federation running on ports 7101-7103 until ctrl-c (for `bureau audit`).
    #[arg(long)]
    serve: bool,
}

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
}

/// Percentiles of `samples` (sorted in place); all zero when there are none.
pub fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| {
        let last = samples.len().saturating_sub(1);
        samples.get(((samples.len() as f64 * q) as usize).min(last)).copied().unwrap_or_default()
    };
    Percentiles { p50: at(0.50), p99: at(0.99), p999: at(0.999) }
}

/// Writes generated records as JSON lines.
pub fn gen(args: GenArgs) -> Result<()> {
    let federation_key = match &args.key_file {
        Some(k) => read_hex_key(k)?,
        None => {
            eprintln!("note: no --key-file; subject ids use a fixed demo key");
            b"bureau-demo-key".to_vec()
        }
    };
    let cfg = GenConfig {
        subjects: args.subjects,
        seed: args.seed,
        institutions: args.institutions,
        federation_key,
        as_of: bureau::today(),
    };
    let mut w: Box<dyn std::io::Write> = match &args.out {
        Some(p) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| p.display().to_string())?))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    for r in gen::generate(&cfg).filter(|r| args.only.as_ref().is_none_or(|o| &r.furnisher == o)) {
        serde_json::to_writer(&mut w, &r)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// Runs the benchmarks.
pub async fn bench(args: BenchArgs) -> Result<()> {
    bench::run(bench::BenchOptions {
        quick: args.quick,
        only: args.only,
        people: args.people,
        locator_backends: args.locator_backends,
        members: args.members.into_iter().map(usize::from).collect(),
        no_fsync: args.no_fsync,
        charts: args.charts,
    })
    .await
}

/// Runs the demo.
pub async fn demo(args: DemoArgs) -> Result<()> {
    demo::run(demo::DemoOptions { dir: args.dir, subjects: args.subjects as usize, serve: args.serve }).await
}
