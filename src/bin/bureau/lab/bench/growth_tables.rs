//! The growth bench's tables: per federation size, with the locator (people spread over the
//! members, or all at the same two), and before it; ratios to the smallest size; the targets.

use std::time::Duration;

use crate::lab::Percentiles;

/// The size with the extra rows (a hung member, a hung replica).
pub(super) const EXTRAS_AT: usize = 16;

/// What one configuration measured.
#[derive(Clone, Copy)]
pub(super) struct Figures {
    pub(super) lat: Percentiles,
    pub(super) per_sec: f64,
    pub(super) cpu_ms: f64,
    /// The same less what the idle fleet burns in as long (timers, directory and CRL reloads).
    pub(super) net_cpu_ms: f64,
    pub(super) bytes: f64,
    pub(super) entries: f64,
    /// Net CPU per score of the one-caller latency run: no node ever has two requests to
    /// batch, so this is a score's own work at any size.
    pub(super) one_caller_cpu_ms: f64,
    /// Context switches of every node thread per score in the throughput run.
    pub(super) switches: f64,
}

/// Everything measured at one size.
pub(super) struct Size {
    pub(super) n: usize,
    pub(super) located: Figures,
    pub(super) everyone: Figures,
    /// With the locator, people all held by the same two members (`m01`, `m02`) at every size:
    /// the holders' load does not thin out as the federation grows.
    pub(super) pair: Figures,
    /// With the locator, people spread, each score a deposit waiver (a hard inquiry) with its
    /// own consent token: verified and its nonce spent at `m00`, the locator and both holders.
    pub(super) hard: Figures,
}

/// The extra rows at [`EXTRAS_AT`] members.
#[derive(Default)]
pub(super) struct Extras {
    pub(super) unhung_p50: Duration,
    pub(super) idle_hung_p50: Duration,
    pub(super) holder_p99: Duration,
    pub(super) replica_hung_p99: Duration,
    pub(super) replica_hung_partial: usize,
    pub(super) everyone_idle_hung_p50: Duration,
    pub(super) everyone_idle_hung_partial: usize,
    /// Calls made in (b) and in the hung run before the locator, warm-up included.
    pub(super) calls_made: usize,
    pub(super) hung_calls_made: usize,
}

/// Milliseconds with two decimals.
fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `a / b` as a ratio.
fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

/// Prints the table of each route, the ratios to the smallest size, the targets and the extras.
pub(super) fn print_tables(sizes: &[Size], x: &Extras) {
    let Some(first) = sizes.first() else { return };
    for (title, pick) in [
        ("with the locator (route LOCATED: the two holders and the locator asked)", 0),
        ("with the locator, every person held by m01 and m02 at every size (the holders' load does not thin out)", 2),
        ("with the locator, each a deposit waiver (hard inquiry) with its own consent token", 3),
        ("before the locator (route EVERYONE: every member asked), same processes", 1),
    ] {
        let fig = |s: &Size| match pick {
            0 => s.located,
            1 => s.everyone,
            2 => s.pair,
            _ => s.hard,
        };
        let base = fig(first);
        println!("\nscores at m00, {title}");
        println!(
            "{:>3} {:>10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>7} {:>5} {:>8} | ratios to N={}: {:>6} {:>6} {:>7} {:>8} {:>6} {:>7}",
            "N",
            "p50",
            "p99",
            "scores/s",
            "CPU/score",
            "net CPU",
            "1 caller",
            "bytes",
            "log",
            "switches",
            first.n,
            "p50",
            "CPU",
            "net CPU",
            "1 caller",
            "bytes",
            "entries"
        );
        for s in sizes {
            let f = fig(s);
            println!(
                "{:>3} {:>10} {:>10} {:>9.0} {:>7.3} ms {:>7.3} ms {:>7.3} ms {:>7.0} {:>5.2} {:>8.1} | {:>15} {:>6} {:>6} {:>7} {:>8} {:>6} {:>7}",
                s.n,
                ms(f.lat.p50),
                ms(f.lat.p99),
                f.per_sec,
                f.cpu_ms,
                f.net_cpu_ms,
                f.one_caller_cpu_ms,
                f.bytes,
                f.entries,
                f.switches,
                "",
                ratio(f.lat.p50.as_secs_f64(), base.lat.p50.as_secs_f64()),
                ratio(f.cpu_ms, base.cpu_ms),
                ratio(f.net_cpu_ms, base.net_cpu_ms),
                ratio(f.one_caller_cpu_ms, base.one_caller_cpu_ms),
                ratio(f.bytes, base.bytes),
                ratio(f.entries, base.entries),
            );
        }
    }
    if let Some(last) = sizes.last() {
        let (a, b) = (first.located, last.located);
        let verdict = |r: f64, target: f64| {
            format!("{r:.2}x (target <= {target}x: {})", if r <= target { "met" } else { "MISSED" })
        };
        println!("\ntargets, with the locator, N={} against N={}:", last.n, first.n);
        println!("  CPU per score      {}", verdict(b.cpu_ms / a.cpu_ms, 1.25));
        println!("  ... less idle CPU  {}", verdict(b.net_cpu_ms / a.net_cpu_ms, 1.25));
        println!("  ... one caller     {}", verdict(b.one_caller_cpu_ms / a.one_caller_cpu_ms, 1.25));
        let (pa, pb) = (first.pair, last.pair);
        println!("  ... same holders   {}", verdict(pb.cpu_ms / pa.cpu_ms, 1.25));
        let (ha, hb) = (first.hard, last.hard);
        println!("  ... hard, consent  {}", verdict(hb.cpu_ms / ha.cpu_ms, 1.25));
        println!("  bytes per score    {}", verdict(b.bytes / a.bytes, 1.25));
        println!("  entries per score  {}", verdict(b.entries / a.entries, 1.25));
        println!("  p50                {}", verdict(b.lat.p50.as_secs_f64() / a.lat.p50.as_secs_f64(), 1.5));
    }
    if x.unhung_p50 > Duration::ZERO {
        println!("\nat N={EXTRAS_AT}, with the locator:");
        println!(
            "  (a) a member holding nothing SIGSTOPped: p50 {} against {} unhung ({})",
            ms(x.idle_hung_p50),
            ms(x.unhung_p50),
            ratio(x.idle_hung_p50.as_secs_f64(), x.unhung_p50.as_secs_f64())
        );
        println!(
            "  (b) a holder's first replica SIGSTOPped: p99 {} against {} unhung ({}; target <= 3x), {} of {} partial",
            ms(x.replica_hung_p99),
            ms(x.holder_p99),
            ratio(x.replica_hung_p99.as_secs_f64(), x.holder_p99.as_secs_f64()),
            x.replica_hung_partial,
            x.calls_made
        );
        println!(
            "  before the locator, (a) again: p50 {}, {} of {} scores partial",
            ms(x.everyone_idle_hung_p50),
            x.everyone_idle_hung_partial,
            x.hung_calls_made
        );
    }
}
