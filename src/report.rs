//! A person's report as one self-contained HTML page: no scripts, fonts or images from anywhere
//! (styles inline), the score on its 350–950 scale, reasons in plain words, each account with a
//! 24-month payment grid coloured as printed bureau reports colour them, who looked and why,
//! disputes and how to file one, and print styles for A4. The page is personal data: it is
//! written readable by its owner only (0600).

use std::fmt::Write as _;

use crate::{
    scoring::{Band, MAX_SCORE, MIN_SCORE},
    wire::pb::bureau::v1 as pb,
};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn date(d: Option<&crate::wire::pb::google::r#type::Date>) -> String {
    d.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_else(|| "—".into())
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

fn money(minor: i64, currency: &str) -> String {
    let units = minor / 100;
    let mut digits = units.abs().to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    format!("{}{digits}{grouped}.{:02} {}", if minor < 0 { "-" } else { "" }, (minor % 100).abs(), escape(currency))
}

fn kind(k: i32) -> &'static str {
    match pb::RecordKind::try_from(k) {
        Ok(pb::RecordKind::Loan) => "Loan",
        Ok(pb::RecordKind::CreditCard) => "Credit card",
        Ok(pb::RecordKind::Instalment) => "Instalment plan",
        Ok(pb::RecordKind::DepositFreeRental) => "Deposit-free rental",
        Ok(pb::RecordKind::Utility) => "Utility or telecom",
        Ok(pb::RecordKind::Guarantee) => "Guarantee",
        _ => "Account",
    }
}

fn status(s: i32) -> &'static str {
    match pb::AccountStatus::try_from(s) {
        Ok(pb::AccountStatus::Current) => "Paid as agreed",
        Ok(pb::AccountStatus::Delinquent) => "Past due",
        Ok(pb::AccountStatus::ChargedOff) => "Charged off",
        Ok(pb::AccountStatus::InCollection) => "In collection",
        Ok(pb::AccountStatus::Closed) => "Closed",
        _ => "Unknown",
    }
}

fn purpose(p: i32) -> &'static str {
    match pb::Purpose::try_from(p) {
        Ok(pb::Purpose::CreditApplication) => "You applied for credit",
        Ok(pb::Purpose::AccountReview) => "Review of an account you hold",
        Ok(pb::Purpose::DepositWaiver) => "You asked for a deposit to be waived",
        Ok(pb::Purpose::Collections) => "Collection of a debt",
        Ok(pb::Purpose::SubjectRequest) => "You asked for your own report",
        _ => "Unknown",
    }
}

/// (css class, label) of one month of payment history.
fn month(p: i32) -> (&'static str, &'static str) {
    match pb::PaymentStatus::try_from(p) {
        Ok(pb::PaymentStatus::Current) => ("ok", "OK"),
        Ok(pb::PaymentStatus::Late30) => ("l30", "30"),
        Ok(pb::PaymentStatus::Late60) => ("l60", "60"),
        Ok(pb::PaymentStatus::Late90) => ("l90", "90"),
        Ok(pb::PaymentStatus::Late120Plus) => ("l120", "120"),
        _ => ("nd", "–"),
    }
}

fn flag(r: &pb::CreditRecord) -> Option<&'static str> {
    match pb::RecordDisputeState::try_from(r.dispute_state) {
        Ok(pb::RecordDisputeState::Disputed) => Some("Disputed by you — investigation in progress"),
        Ok(pb::RecordDisputeState::CompletedSubjectDisagrees) => Some("Dispute completed — you disagree"),
        Ok(pb::RecordDisputeState::PreviouslyDisputed) => Some("Previously disputed"),
        _ => None,
    }
}

fn dispute_status(s: i32) -> &'static str {
    match pb::DisputeStatus::try_from(s) {
        Ok(pb::DisputeStatus::PendingDelivery) => "Filed, on its way to the furnisher",
        Ok(pb::DisputeStatus::Open) => "Under investigation",
        Ok(pb::DisputeStatus::Verified) => "Verified as reported",
        Ok(pb::DisputeStatus::Corrected) => "Corrected",
        Ok(pb::DisputeStatus::Deleted) => "Deleted",
        Ok(pb::DisputeStatus::Rejected) => "Refused by the furnisher",
        _ => "Unknown",
    }
}

pub(crate) const STYLE: &str = r#"
* { box-sizing: border-box; }
body { font-family: "Helvetica Neue", Arial, "Noto Sans CJK SC", sans-serif; color: #1d2430; margin: 0; background: #f4f6f8; }
main { max-width: 960px; margin: 0 auto; background: #fff; padding: 28px 36px 40px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 2px solid #1d4e89; padding-bottom: 4px; color: #1d4e89; }
.meta { color: #5b6675; font-size: 13px; } .mono { font-family: Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.score { display: flex; gap: 28px; align-items: center; margin-top: 12px; }
.big { font-size: 64px; font-weight: 700; line-height: 1; } .band { font-size: 20px; font-weight: 600; text-transform: capitalize; }
.scale { position: relative; height: 16px; border-radius: 8px; margin: 18px 0 4px; background: linear-gradient(90deg, #c0392b 0%, #e67e22 33%, #f1c40f 42%, #7dbb42 50%, #27ae60 58%, #1e8449 100%); }
.marker { position: absolute; top: -6px; width: 4px; height: 28px; background: #1d2430; border-radius: 2px; }
.ticks { position: relative; height: 16px; font-size: 11px; color: #5b6675; }
.ticks span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
.ticks span:first-child { transform: none; } .ticks span:last-child { transform: translateX(-100%); }
.notice { padding: 10px 14px; border-radius: 6px; margin: 10px 0; font-weight: 600; }
.frozen { background: #e8f0fb; border: 1px solid #1d4e89; } .alert { background: #fdecea; border: 1px solid #c0392b; } .clear { background: #eef7ee; border: 1px solid #7dbb42; font-weight: normal; }
table { width: 100%; border-collapse: collapse; font-size: 13px; } th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #dde3ea; vertical-align: top; } th { background: #eef2f6; }
.account { border: 1px solid #dde3ea; border-radius: 6px; padding: 12px 14px; margin: 12px 0; page-break-inside: avoid; }
.account h3 { margin: 0 0 6px; font-size: 15px; } .facts { display: grid; grid-template-columns: repeat(4, 1fr); gap: 4px 16px; font-size: 13px; }
.facts span { color: #5b6675; display: block; font-size: 11px; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); gap: 2px; margin-top: 10px; }
.grid div { height: 22px; font-size: 9px; display: flex; align-items: center; justify-content: center; border-radius: 2px; color: #fff; }
.ok { background: #27ae60; } .l30 { background: #f1c40f; color: #1d2430 !important; } .l60 { background: #e67e22; } .l90 { background: #c0392b; } .l120 { background: #7b241c; } .nd { background: #d5dbe1; color: #5b6675 !important; }
.legend { font-size: 11px; color: #5b6675; margin-top: 4px; } .legend i { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; border-radius: 2px; }
.flag { color: #c0392b; font-weight: 600; font-size: 13px; margin-top: 6px; } .statement { font-style: italic; font-size: 13px; }
.proven { color: #1e8449; font-weight: 600; } ol.reasons li { margin: 4px 0; }
@page { size: A4; margin: 14mm; }
@media print { body { background: #fff; } main { max-width: none; padding: 0; } h2 { break-after: avoid; } .account { break-inside: avoid; } }
"#;

/// Writes `r`'s page to `path`, readable by its owner only (0600) from the first byte; a file
/// already there is replaced.
pub fn write(path: &std::path::Path, r: &pb::SubjectReport) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = crate::backup::create_private(path)?;
    file.write_all(render(r).as_bytes())?;
    file.sync_all()
}

/// The what-if section: the smallest changes that reach the next band, each with the exact
/// score it gives.
fn what_if(h: &mut String, score: &pb::Score) {
    if score.what_if_target == 0 {
        return;
    }
    let _ = write!(h, "<h2>What would reach {}</h2>", score.what_if_target);
    if score.what_if.is_empty() {
        h.push_str("<p class=\"meta\" id=\"what-if\">No change within your control reaches it now.</p>");
        return;
    }
    h.push_str("<p>Any one of these, and nothing smaller of its kind, would do it; the score shown is exact, computed by the scorecard itself:</p><ul class=\"reasons\" id=\"what-if\">");
    for w in &score.what_if {
        let _ = write!(
            h,
            "<li data-lever=\"{}\">{} <span class=\"meta\">(score {})</span></li>",
            escape(&w.lever),
            escape(&w.text),
            w.predicted_score
        );
    }
    h.push_str("</ul>");
}

/// `, cosigned by <witness>, …` for the checkpoint of `responder` in the report, naming the
/// other signers on its note (the witnesses); empty when none. The page names them; `bureau
/// report --verify --policy` checks their signatures and the quorum.
fn witnesses(r: &pb::SubjectReport, responder: &str) -> String {
    let Some(cp) = r.checkpoints.iter().find(|c| c.origin.rsplit('/').next() == Some(responder)) else {
        return String::new();
    };
    let names: Vec<String> = cp
        .signed_note
        .split_once("\n\n")
        .map(|(_, sigs)| sigs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} ")?.split(' ').next())
        .filter(|n| *n != cp.origin)
        .map(escape)
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(", cosigned by {}", names.join(", "))
    }
}

/// Renders a person's report as one HTML page.
pub fn render(r: &pb::SubjectReport) -> String {
    let mut h = String::new();
    let score = r.score.clone().unwrap_or_default();
    let band = Band::of(score.score);
    let at = (f64::from(score.score - MIN_SCORE) / f64::from(MAX_SCORE - MIN_SCORE) * 100.0).clamp(0.0, 100.0);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Your credit report</title><style>{STYLE}</style></head><body><main>\
         <h1>Your credit report</h1><div class=\"meta\">Made {} for subject <span class=\"mono\">{}</span> — other nodes asked: {}</div>",
        time(r.report_time.as_ref()),
        escape(&r.subject_id),
        escape(
            &score
                .coverage
                .iter()
                .map(|c| {
                    let answered = c.outcome == pb::PeerOutcome::Answered as i32;
                    format!("{} ({})", c.peer, if answered { "answered" } else { "did not answer" })
                })
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    // The score.
    let _ = write!(
        h,
        "<h2>Your score</h2><div class=\"score\"><div class=\"big\" id=\"score\">{}</div><div><div class=\"band\" id=\"band\">{}</div>\
         <div class=\"meta\">on a scale from {MIN_SCORE} to {MAX_SCORE}, as of {}; model {}</div></div></div>\
         <div class=\"scale\"><div class=\"marker\" style=\"left: calc({at:.1}% - 2px)\"></div></div>\
         <div class=\"ticks\">{}</div>",
        if score.exclusion.is_some() { "—".to_owned() } else { score.score.to_string() },
        match &score.exclusion {
            Some(x) => format!("not scoreable ({}): {}", escape(&x.code), escape(&x.description)),
            None => band.as_str().to_owned(),
        },
        escape(&score.scored_on),
        escape(&score.model_version),
        [(350, "350 poor"), (550, "550 fair"), (600, "600"), (650, "650"), (700, "700 excellent"), (950, "950")]
            .iter()
            .map(|(v, label)| format!(
                "<span style=\"left: {:.1}%\">{label}</span>",
                f64::from(v - MIN_SCORE) / f64::from(MAX_SCORE - MIN_SCORE) * 100.0
            ))
            .collect::<String>()
    );
    if score.partial {
        h.push_str("<p class=\"meta\">Some nodes did not answer: this report and score rest on part of the federation's records.</p>");
    }
    if !score.reasons.is_empty() {
        h.push_str("<p>What lowered your score most:</p><ol class=\"reasons\">");
        for reason in &score.reasons {
            let _ = write!(
                h,
                "<li>{} <span class=\"meta\">({} points)</span></li>",
                escape(&reason.description),
                reason.points_lost
            );
        }
        h.push_str("</ol>");
    }
    if score.disputed_records_excluded > 0 {
        let _ = write!(
            h,
            "<p class=\"meta\">{} account(s) you dispute were left out of the late-payment parts of this score until the dispute ends.</p>",
            score.disputed_records_excluded
        );
    }
    what_if(&mut h, &score);
    // Protections.
    let p = r.protection.clone().unwrap_or_default();
    h.push_str("<h2>Freeze and fraud alert</h2>");
    if p.frozen {
        let _ = write!(
            h,
            "<div class=\"notice frozen\" id=\"freeze\">Security freeze in place since {} (through {}): no new creditor may see your file.</div>",
            time(p.freeze_time.as_ref()),
            escape(&p.freeze_placed_by)
        );
    }
    if p.fraud_alert {
        let _ = write!(
            h,
            "<div class=\"notice alert\" id=\"alert\">Fraud alert until {} (through {}): lenders must verify your identity before extending credit.</div>",
            time(p.alert_expire_time.as_ref()),
            escape(&p.alert_placed_by)
        );
    }
    if !p.frozen && !p.fraud_alert {
        h.push_str("<div class=\"notice clear\">No freeze or fraud alert. Either can be placed, free, through any institution you deal with.</div>");
    }
    // Accounts.
    let _ = write!(h, "<h2>Your accounts ({})</h2>", r.records.len());
    for rec in &r.records {
        let _ = write!(
            h,
            "<div class=\"account\" data-record=\"{}\"><h3>{} — {}</h3><div class=\"facts\">\
             <div><span>Reported by</span>{}</div><div><span>Account</span>{}</div><div><span>Opened</span>{}</div><div><span>Closed</span>{}</div>\
             <div><span>Status</span>{}</div><div><span>Balance</span>{}</div><div><span>Limit or amount</span>{}</div><div><span>Reported</span>{}</div></div>",
            escape(&rec.record_id),
            escape(kind(rec.kind)),
            escape(&rec.furnisher),
            escape(&rec.furnisher),
            escape(&rec.record_id),
            date(rec.opened_date.as_ref()),
            date(rec.closed_date.as_ref()),
            status(rec.status),
            money(rec.balance_minor, &rec.currency_code),
            money(rec.credit_limit_minor, &rec.currency_code),
            date(rec.reported_date.as_ref())
        );
        h.push_str("<div class=\"grid\" title=\"the last 24 months, newest first\">");
        for m in 0..24 {
            let (class, label) = month(rec.payment_history.get(m).copied().unwrap_or(0));
            let _ = write!(h, "<div class=\"{class}\">{label}</div>");
        }
        h.push_str("</div>");
        if let Some(f) = flag(rec) {
            let _ = write!(h, "<div class=\"flag\">{f}</div>");
        }
        if !rec.subject_statement.is_empty() {
            let _ = write!(h, "<div class=\"statement\">Your statement: “{}”</div>", escape(&rec.subject_statement));
        }
        h.push_str("</div>");
    }
    h.push_str(
        "<div class=\"legend\">Last 24 months, newest first:<i class=\"ok\"></i>paid as agreed<i class=\"l30\"></i>30 days late\
         <i class=\"l60\"></i>60<i class=\"l90\"></i>90<i class=\"l120\"></i>120+<i class=\"nd\"></i>no data</div>",
    );
    // Inquiries.
    let _ = write!(h, "<h2>Who looked at your file ({})</h2>", r.inquiries.len());
    if r.inquiries.is_empty() {
        h.push_str("<p>No one, within the period inquiries are kept.</p>");
    } else {
        h.push_str("<table id=\"inquiries\"><tr><th>When</th><th>Who</th><th>At</th><th>Why</th><th>Kind</th><th>Proof</th></tr>");
        for i in &r.inquiries {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(i.inquiry_time.as_ref()),
                escape(&i.inquirer),
                escape(&i.responder),
                purpose(i.purpose),
                if i.hard { "Hard (counts in scores)" } else { "Soft (never counts)" },
                if i.log_entry.is_empty() {
                    "—".to_owned()
                } else {
                    format!(
                        "<span class=\"proven\">in {}'s signed log, entry {}{}</span>",
                        escape(&i.responder),
                        i.log_index.unwrap_or(0),
                        witnesses(r, &i.responder)
                    )
                }
            );
        }
        h.push_str("</table>");
    }
    // Disputes.
    let _ = write!(h, "<h2>Your disputes ({})</h2>", r.disputes.len());
    if !r.disputes.is_empty() {
        h.push_str("<table id=\"disputes\"><tr><th>Account</th><th>Filed</th><th>Status</th><th>Answer due</th></tr>");
        for d in &r.disputes {
            let _ = write!(
                h,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
                escape(&d.record),
                time(d.file_time.as_ref()),
                dispute_status(d.status),
                if d.overdue { " — overdue: the account is not shown to anyone until it is answered" } else { "" },
                time(d.deadline.as_ref())
            );
        }
        h.push_str("</table>");
    }
    h.push_str(
        "<p><strong>How to dispute an account.</strong> If anything here is wrong, tell any institution you deal with. \
         It files the dispute for you with the institution that reported the account, which marks the account disputed at once \
         and must answer within the legal deadline (20 days in China, 30 in the United States). While it investigates, the \
         account's late payments are left out of your score; if it does not answer in time, the account is shown to no one \
         until it does. You may add a statement of up to 500 characters, which stays with the account.</p>",
    );
    h.push_str("</main></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_nothing_is_fetched() {
        let mut r = pb::SubjectReport { subject_id: "<script>alert(1)</script>".into(), ..Default::default() };
        r.records.push(pb::CreditRecord {
            record_id: "a\"b".into(),
            subject_statement: "<img src=x>".into(),
            ..Default::default()
        });
        let html = render(&r);
        assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"), "self-contained");
        assert!(!html.contains("src=\"") && !html.contains("url("), "nothing to fetch");
    }

    #[test]
    fn money_is_grouped_in_major_units() {
        assert_eq!(money(123_456_789, "CNY"), "1,234,567.89 CNY");
        assert_eq!(money(5, "USD"), "0.05 USD");
    }
}
