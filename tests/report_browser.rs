//! The person's report as they would see it: `bureau report` (the real command line, against
//! three real nodes) writes the HTML page and checks every inquiry's proof, then headless
//! Chromium renders it: no console errors and nothing fetched, the expected score and accounts
//! in the rendered page, and a screenshot that is not blank (kept under `target/tmp`, not in the
//! repository). Needs Debian's `chromium` (scripts/test installs it); fails, never skips,
//! without it.

mod common;

use std::process::Command;

use bureau::{
    pb::bureau::v1::{
        self as pb, disputes_service_client::DisputesServiceClient, scoring_service_client::ScoringServiceClient,
    },
    Role,
};
use common::{record, subject, Cluster};

const INSTITUTIONS: [&str; 3] = ["payapp", "bikeshare", "bank"];

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return name.to_owned();
        }
    }
    panic!("no chromium on PATH: install Debian's `chromium` (scripts/test does)");
}

/// Runs headless Chromium on `page` with `args`; returns (stdout, stderr).
fn headless(dir: &std::path::Path, page: &std::path::Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_renders_in_a_real_browser_with_the_score_and_accounts() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(7);
    for (i, inst) in INSTITUTIONS.iter().enumerate().take(2) {
        let mut r = record(&s, &format!("{inst}-card"), 1);
        r.payment_history = (0..24)
            .map(|m| match (i, m) {
                (1, 3) => pb::PaymentStatus::Late30,
                (1, 4) => pb::PaymentStatus::Late60,
                (1, 9) => pb::PaymentStatus::Late90,
                (_, m) if m > 20 => pb::PaymentStatus::NoData,
                _ => pb::PaymentStatus::Current,
            } as i32)
            .collect();
        c.f.records(Role::Application, inst, c.addrs[i])
            .furnish_records(pb::FurnishRecordsRequest { records: vec![r] })
            .await
            .unwrap();
    }
    ScoringServiceClient::new(c.app(2))
        .get_score(pb::GetScoreRequest {
            subject_id: s.clone(),
            purpose: pb::Purpose::CreditApplication as i32,
            consent_reference: "loan-1".into(),
        })
        .await
        .unwrap();
    DisputesServiceClient::new(c.app(0))
        .file_dispute(pb::FileDisputeRequest {
            record: "institutions/bikeshare/records/bikeshare-card".into(),
            subject_id: s.clone(),
            reason: pb::DisputeReason::InaccuratePaymentHistory as i32,
            statement: "I paid <on time> & have the receipt".into(),
            consent_reference: "consent-dispute".into(),
        })
        .await
        .unwrap();

    // The command line, as the person's institution runs it.
    let out_dir = tempfile::tempdir().unwrap();
    let page = out_dir.path().join("report.html");
    let run = c
        .cli("payapp", c.addrs[0], &["report", "--subject", &s])
        .args(["--consent", "report-2026-01", "--verify"])
        .arg("--pki")
        .arg(&c.f.fed.pki.0)
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "bureau report failed: {stdout}{}", String::from_utf8_lossy(&run.stderr));
    let score: i32 = stdout
        .split("score ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no score in {stdout:?}"));
    assert!(stdout.contains("3 inquiry(ies) proven") && stdout.contains("0 without proof"), "{stdout}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");

    // Rendered: the DOM holds the score, both accounts, the escaped statement; no console
    // errors, nothing failed to load.
    let (dom, log) = headless(out_dir.path(), &page, &["--dump-dom"]);
    assert!(dom.contains(&format!("<div class=\"big\" id=\"score\">{score}</div>")), "{dom}");
    for id in ["payapp-card", "bikeshare-card"] {
        assert!(dom.contains(&format!("data-record=\"{id}\"")), "account {id} missing");
    }
    assert!(dom.contains("Disputed by you"));
    assert!(dom.contains("I paid &lt;on time&gt; &amp; have the receipt"));
    assert!(dom.contains("class=\"l60\""), "the payment grid is coloured");
    // The exact what-if to the next band, when the score is below the top one.
    if score < 700 {
        assert!(dom.contains("<h2>What would reach ") && dom.contains("id=\"what-if\""), "{dom}");
    }
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("net::ERR_") || l.contains("Failed to load")
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // The picture: decoded, not blank (many colours, not all one).
    let shot = out_dir.path().join("report.png");
    headless(out_dir.path(), &page, &[&format!("--screenshot={}", shot.display()), "--window-size=1000,1800"]);
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = pixels.chunks(step).collect();
    assert!((info.width, info.height) == (1000, 1800), "{}x{}", info.width, info.height);
    assert!(colours.len() > 50, "a blank page: {} colours", colours.len());
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&shot, artifacts.join("report.png")).unwrap();
    std::fs::copy(&page, artifacts.join("report.html")).unwrap();
    c.shutdown().await;
}

/// A decline's adverse-action notice: the fields in the API, and `bureau decide --notice` writes
/// a self-contained page that headless Chromium renders with the score, its range and date, the
/// key factors, whose data was used and the person's rights; an unscoreable file's notice says
/// why instead of giving a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_gives_an_adverse_action_notice_that_renders_in_a_real_browser() {
    let mut c = Cluster::start(&INSTITUTIONS).await;
    for (name, unscoreable) in [("strict", "refer"), ("strict_deposit", "deposit")] {
        let policy: bureau::config::PolicyConfig = toml::from_str(&format!(
            "min_score = 900\npurpose = \"credit_application\"\nunscoreable = \"{unscoreable}\""
        ))
        .unwrap();
        c.cfgs[0].policies.insert(name.into(), policy);
    }
    c.stop(0).await;
    c.restart(0).await;
    let s = subject(8);
    for (i, inst) in INSTITUTIONS.iter().enumerate().skip(1) {
        let mut r = record(&s, &format!("{inst}-card"), 1);
        r.balance_minor = 1_900_000;
        r.payment_history[1] = pb::PaymentStatus::Late60 as i32;
        c.f.records(Role::Application, inst, c.addrs[i])
            .furnish_records(pb::FurnishRecordsRequest { records: vec![r] })
            .await
            .unwrap();
    }
    let decide = |subject: &str, policy: &str| pb::DecideRequest {
        subject_id: subject.into(),
        policy: policy.into(),
        consent_reference: "loan-9".into(),
    };
    let mut scoring = ScoringServiceClient::new(c.app(0));
    let d = scoring.decide(decide(&s, "strict")).await.unwrap().into_inner();
    assert_eq!(d.outcome, "decline");
    let n = d.notice.unwrap();
    let score = d.score.unwrap();
    assert_eq!((n.score, n.range_min, n.range_max), (score.score, 350, 950));
    assert_eq!(n.scored_on, score.scored_on);
    assert!(!n.key_factors.is_empty() && n.key_factors.len() <= 4, "{:?}", n.key_factors);
    assert_eq!(n.key_factors[0], score.reasons[0].description);
    assert_eq!(n.sources, ["bank", "bikeshare"]);
    assert_eq!((n.retention_profile.as_str(), n.dispute_days), ("pbc", 20));
    assert!(n.rights.iter().any(|r| r.contains("within 20 days")), "{:?}", n.rights);
    // An approval has no notice; an unscoreable decline says why, with no number.
    let thin = scoring.decide(decide(&subject(9), "strict_deposit")).await.unwrap().into_inner();
    assert_eq!(thin.outcome, "decline: unscoreable");
    let tn = thin.notice.unwrap();
    assert_eq!((tn.score, tn.exclusion_code.as_str(), tn.key_factors.len()), (0, "X01", 0));
    let referred = scoring.decide(decide(&subject(9), "strict")).await.unwrap().into_inner();
    assert!(referred.notice.is_none(), "a referral is not a decline");

    let out_dir = tempfile::tempdir().unwrap();
    let page = out_dir.path().join("notice.html");
    let run = c
        .cli("payapp", c.addrs[0], &["decide", "--subject", &s, "--policy", "strict", "--consent", "loan-10"])
        .arg("--notice")
        .arg(&page)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("strict: DECLINE (threshold 900)") && stdout.contains("key factor: "), "{stdout}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
    let (dom, log) = headless(out_dir.path(), &page, &["--dump-dom"]);
    // The command line's decision is a second hard inquiry: its own score, as it printed it.
    let printed = stdout.split("\nscore ").nth(1).and_then(|t| t.split(' ').next()).unwrap();
    assert!(dom.contains(&format!("<div class=\"big\" id=\"score\">{printed}</div>")), "{dom}");
    assert!(dom.contains(&format!("on a scale from 350 to 950, computed on {}", score.scored_on)), "{dom}");
    assert!(dom.contains(&format!("<li>{}</li>", n.key_factors[0])), "{dom}");
    assert!(dom.contains("<ul id=\"sources\"><li>bank</li><li>bikeshare</li></ul>"), "{dom}");
    assert!(dom.contains("must answer within 20 days"), "{dom}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") || l.contains("net::ERR_")).collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&page, artifacts.join("notice.html")).unwrap();
    c.shutdown().await;
}
