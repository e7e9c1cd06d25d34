//! The adverse-action notice as one self-contained HTML page, like the person's report (no
//! scripts, fonts or images from anywhere; the report's styles inline; print styles for A4):
//! the decision, the score on its scale and its date or why the file was unscoreable, the key
//! factors in plain words, whose records were used, and the person's rights. Personal data:
//! written readable by its owner only (0600).

use std::fmt::Write as _;

use crate::{
    report::{escape, STYLE},
    wire::pb::bureau::v1 as pb,
};

/// Renders `n` as one HTML page.
pub fn render(n: &pb::AdverseActionNotice) -> String {
    let mut h = String::new();
    let when = n
        .decision_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Notice of adverse action</title><style>{STYLE}</style></head><body><main>\
         <h1>Notice of adverse action</h1><div class=\"meta\">From {} on {when}, for subject <span class=\"mono\">{}</span></div>\
         <div class=\"notice alert\" id=\"decision\">Your application under {} was not approved ({}).</div>",
        escape(&n.lender),
        escape(&n.subject_id),
        escape(&n.policy),
        escape(&n.outcome)
    );
    h.push_str("<h2>The score we used</h2>");
    if n.exclusion_code.is_empty() {
        let _ = write!(
            h,
            "<div class=\"score\"><div class=\"big\" id=\"score\">{}</div><div class=\"meta\" id=\"range\">on a scale from {} to {}, computed on {}; model {}</div></div>",
            n.score,
            n.range_min,
            n.range_max,
            escape(&n.scored_on),
            escape(&n.model_version)
        );
    } else {
        let _ = write!(
            h,
            "<p id=\"score\">Your file could not be scored on {} ({}: {}). Scores range from {} to {}.</p>",
            escape(&n.scored_on),
            escape(&n.exclusion_code),
            escape(&n.exclusion),
            n.range_min,
            n.range_max
        );
    }
    if !n.key_factors.is_empty() || !n.inquiries_factor.is_empty() {
        h.push_str("<p>The key factors that lowered it, largest first:</p><ol class=\"reasons\" id=\"factors\">");
        for f in &n.key_factors {
            let _ = write!(h, "<li>{}</li>", escape(f));
        }
        h.push_str("</ol>");
        if !n.inquiries_factor.is_empty() {
            let _ = write!(h, "<p id=\"inquiries\">Also: {}.</p>", escape(&n.inquiries_factor));
        }
    }
    h.push_str("<h2>Where the information came from</h2><ul id=\"sources\">");
    for s in &n.sources {
        let _ = write!(h, "<li>{}</li>", escape(s));
    }
    if n.sources.is_empty() {
        h.push_str("<li>No institution holds a record about you.</li>");
    }
    let _ = write!(
        h,
        "</ul><p class=\"meta\">Reference: query <span class=\"mono\">{}</span>.</p><h2>Your rights</h2><ul id=\"rights\">",
        escape(&n.query_id)
    );
    for r in &n.rights {
        let _ = write!(h, "<li>{}</li>", escape(r));
    }
    let _ = writeln!(
        h,
        "</ul><p class=\"meta\">Deadlines under the {} retention profile.</p></main></body></html>",
        escape(&n.retention_profile)
    );
    h
}

/// Writes `n`'s page to `path`, readable by its owner only (0600) from the first byte.
pub fn write(path: &std::path::Path, n: &pb::AdverseActionNotice) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = crate::backup::create_private(path)?;
    file.write_all(render(n).as_bytes())?;
    file.sync_all()
}
