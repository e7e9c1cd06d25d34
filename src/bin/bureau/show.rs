//! What the command line prints of a score, shared by `bureau score`, `bureau decide` and the
//! demo.

use bureau::pb::bureau::v1 as pb;

/// Prints a score with its reasons and coverage.
pub fn print_score(s: &pb::Score) {
    let band =
        pb::ScoreBand::try_from(s.band).map(|b| b.as_str_name().trim_start_matches("SCORE_BAND_")).unwrap_or("?");
    let head = match &s.exclusion {
        Some(x) => format!("UNSCOREABLE {}: {}", x.code, x.description),
        None => format!("score {} ({band})", s.score),
    };
    println!(
        "{head}  range {}-{}  as of {}{}  model {}  query {}",
        s.range_min,
        s.range_max,
        s.scored_on,
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
    let route = pb::ScoreRoute::try_from(s.route)
        .map(|r| r.as_str_name().trim_start_matches("SCORE_ROUTE_").to_lowercase())
        .unwrap_or_default();
    if s.members > 0 {
        println!("  asked {} of {} members ({})", s.members_asked, s.members, route.replace('_', " "));
    }
    if s.what_if_target > 0 {
        if s.what_if.is_empty() {
            println!("  what if {}: nothing within the person's control reaches it", s.what_if_target);
        }
        for w in &s.what_if {
            println!("  what if {}: {} -> exactly {}", s.what_if_target, w.text, w.predicted_score);
        }
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
