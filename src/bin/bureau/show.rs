//! What the command line prints of a score, shared by `bureau score`, `bureau decide` and the
//! demo.

use bureau::pb::bureau::v1 as pb;

/// One line of text: standard output, or standard error when standard output carries JSON
/// (the demo's story beside its summary, a score beside a command's JSON).
macro_rules! say {
    ($($t:tt)*) => {
        if crate::cli::output::json() {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}

/// Prints a score with its reasons and coverage.
pub fn print_score(s: &pb::Score) {
    let band =
        pb::ScoreBand::try_from(s.band).map(|b| b.as_str_name().trim_start_matches("SCORE_BAND_")).unwrap_or("?");
    let head = match &s.exclusion {
        Some(x) => format!("UNSCOREABLE {}: {}", x.code, x.description),
        None => format!("score {} ({band})", s.score),
    };
    say!(
        "{head}  range {}-{}  as of {}{}  model {}  query {}",
        s.range_min,
        s.range_max,
        s.scored_on,
        if s.partial { "  PARTIAL" } else { "" },
        s.model_version,
        s.query_id
    );
    for r in &s.reasons {
        say!("  {} -{:>3}  {}", r.code, r.points_lost, r.description);
    }
    if s.disputed_records_excluded > 0 {
        say!(
            "  {} disputed record(s): delinquency and charge-offs left out while under dispute",
            s.disputed_records_excluded
        );
    }
    let route = pb::ScoreRoute::try_from(s.route)
        .map(|r| r.as_str_name().trim_start_matches("SCORE_ROUTE_").to_lowercase())
        .unwrap_or_default();
    if s.members > 0 {
        say!("  asked {} of {} members ({})", s.members_asked, s.members, route.replace('_', " "));
    }
    if s.what_if_target > 0 {
        if s.what_if.is_empty() {
            say!("  what if {}: nothing within the person's control reaches it", s.what_if_target);
        }
        for w in &s.what_if {
            say!("  what if {}: {} -> exactly {}", s.what_if_target, w.text, w.predicted_score);
        }
    }
    for c in &s.coverage {
        let outcome = pb::PeerOutcome::try_from(c.outcome)
            .map(|o| o.as_str_name().trim_start_matches("PEER_OUTCOME_"))
            .unwrap_or("?");
        say!(
            "  peer {:<12} {:<12} {:>3} records {:>5} ms {}",
            c.peer,
            outcome,
            c.records_returned,
            c.latency_ms,
            c.error
        );
    }
}

/// A score as `--output json` prints it: the API's fields, enums by name.
pub fn score_json(s: &pb::Score) -> serde_json::Value {
    let name =
        |n: Option<&str>, prefix: &str| n.map(|n| n.trim_start_matches(prefix).to_lowercase()).unwrap_or_default();
    serde_json::json!({
        "score": s.score,
        "band": name(pb::ScoreBand::try_from(s.band).ok().map(|b| b.as_str_name()), "SCORE_BAND_"),
        "partial": s.partial,
        "range": [s.range_min, s.range_max],
        "scored_on": s.scored_on,
        "exclusion": s.exclusion.as_ref().map(|x| serde_json::json!({"code": x.code, "description": x.description})),
        "what_if": s.what_if.iter().map(|w| serde_json::json!({
            "target": s.what_if_target, "change": w.text, "predicted_score": w.predicted_score,
        })).collect::<Vec<_>>(),
        "model_version": s.model_version,
        "query_id": s.query_id,
        "reasons": s.reasons.iter().map(|r| serde_json::json!({
            "code": r.code, "points_lost": r.points_lost, "description": r.description,
        })).collect::<Vec<_>>(),
        "disputed_records_excluded": s.disputed_records_excluded,
        "route": name(pb::ScoreRoute::try_from(s.route).ok().map(|r| r.as_str_name()), "SCORE_ROUTE_"),
        "members": s.members,
        "members_asked": s.members_asked,
        "coverage": s.coverage.iter().map(|c| serde_json::json!({
            "peer": c.peer,
            "outcome": name(pb::PeerOutcome::try_from(c.outcome).ok().map(|o| o.as_str_name()), "PEER_OUTCOME_"),
            "records_returned": c.records_returned,
            "latency_ms": c.latency_ms,
            "error": c.error,
        })).collect::<Vec<_>>(),
    })
}
