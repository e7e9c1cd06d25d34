//! What the command line prints: scores and latency percentiles, shared by the commands, the
//! demo and the benchmarks.

use std::time::Duration;

use bureau::pb::bureau::v1 as pb;

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

/// Prints a score with its reasons and coverage.
pub fn print_score(s: &pb::Score) {
    let band =
        pb::ScoreBand::try_from(s.band).map(|b| b.as_str_name().trim_start_matches("SCORE_BAND_")).unwrap_or("?");
    println!(
        "score {} ({band}){}  model {}  query {}",
        s.score,
        if s.partial { "  PARTIAL" } else { "" },
        s.model_version,
        s.query_id
    );
    for r in &s.reasons {
        println!("  {} -{:>3}  {}", r.code, r.points_lost, r.description);
    }
    if s.disputed_records_excluded > 0 {
        println!(
            "  {} disputed record(s): delinquency and charge-offs left out while under dispute",
            s.disputed_records_excluded
        );
    }
    for c in &s.coverage {
        let outcome = pb::PeerOutcome::try_from(c.outcome)
            .map(|o| o.as_str_name().trim_start_matches("PEER_OUTCOME_"))
            .unwrap_or("?");
        println!(
            "  peer {:<12} {:<12} {:>3} records {:>5} ms {}",
            c.peer, outcome, c.records_returned, c.latency_ms, c.error
        );
    }
}
