//! The scorecard's properties: bounds, monotonicity, explanations, model validation.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::{
    domain::inquiry::Purpose,
    domain::record::{AccountStatus, PaymentStatus, RecordKind},
    testkit::gen::{self, GenConfig},
};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

fn cfg(seed: u64) -> GenConfig {
    GenConfig {
        subjects: 1,
        seed,
        institutions: vec!["a".into(), "b".into(), "c".into()],
        federation_key: b"k".to_vec(),
        as_of: as_of(),
    }
}

/// A realistic file: subject `i` of a generated population.
fn file(seed: u64, i: usize) -> Vec<CreditRecord> {
    gen::subject_records(&cfg(seed), i)
}

fn hard(days_ago: i64) -> Inquiry {
    let t = Utc.from_utc_datetime(&(as_of() - chrono::Duration::days(days_ago)).and_hms_opt(12, 0, 0).unwrap());
    Inquiry {
        inquirer: "x".into(),
        responder: "y".into(),
        subject_id: "s".into(),
        purpose: Purpose::CreditApplication,
        hard: true,
        time: t,
        query_id: format!("q{days_ago}"),
        log_index: None,
    }
}

#[test]
fn embedded_model_loads_with_a_content_version() {
    let m = Model::embedded_default();
    assert!(m.version().starts_with("bureau-default-2026.11+"), "{}", m.version());
    assert_eq!(m.version().len(), "bureau-default-2026.11+".len() + 12);
    let tweaked = m.text().replace("pdo = 45.0", "pdo = 46.0");
    assert_ne!(Model::from_toml(&tweaked).unwrap().version(), m.version());
}

#[test]
fn a_thin_file_scores_low_but_not_minimum_and_says_why() {
    let r = Model::embedded_default().score(&[], &[], as_of());
    assert!(r.score > MIN_SCORE && r.score < 600, "{}", r.score);
    assert_eq!(r.reasons[0].code, "H01", "{:?}", r.reasons);
    assert!(r.reasons.len() <= MAX_REASONS + 1);
}

/// Inquiries that cost points are named even when four other reasons lost more: a file
/// with four serious problems and recent hard inquiries gets the inquiry reason fifth.
#[test]
fn recent_inquiries_that_cost_points_are_a_fifth_reason() {
    let m = Model::embedded_default();
    let mut bad = crate::domain::record::tests::sample();
    bad.status = AccountStatus::ChargedOff;
    bad.days_past_due = 150;
    bad.payment_history = vec![PaymentStatus::Late120Plus; 3];
    bad.balance_minor = bad.credit_limit_minor;
    let inquiries: Vec<_> = (0..6).map(|d| hard(d * 10)).collect();
    let r = m.score(std::slice::from_ref(&bad), &inquiries, as_of());
    assert_eq!(r.reasons.len(), MAX_REASONS + 1, "{:?}", r.reasons);
    assert_eq!(r.reasons[MAX_REASONS].code, "I01");
    assert!(r.reasons[..MAX_REASONS].iter().all(|x| x.code != "I01"));
    let none = m.score(std::slice::from_ref(&bad), &[], as_of());
    assert!(none.reasons.len() <= MAX_REASONS, "no inquiries, no fifth reason: {:?}", none.reasons);
}

/// A disputed record's delinquency and charge-off are left out while the flag stands; the
/// score says so. Resolved flags (XC, XH) count as usual.
#[test]
fn a_disputed_record_s_derogatory_lines_are_left_out() {
    use crate::domain::dispute::{DisputeMark, MarkState};
    let m = Model::embedded_default();
    let good = crate::domain::record::tests::sample();
    let mut bad = good.clone();
    bad.record_id = "acct-2".into();
    bad.status = AccountStatus::ChargedOff;
    bad.days_past_due = 150;
    bad.payment_history = vec![PaymentStatus::Late120Plus; 3];
    let plain = m.score(&[good.clone(), bad.clone()], &[], as_of());
    let mut disputed = bad.clone();
    disputed.dispute = Some(DisputeMark { state: MarkState::Disputed, statement: "not mine".into() });
    let flagged = m.score(&[good.clone(), disputed], &[], as_of());
    assert_eq!(flagged.disputed_excluded, 1);
    assert!(flagged.score > plain.score, "{} vs {}", flagged.score, plain.score);
    assert!(!flagged.reasons.iter().any(|r| r.code == "R01" || r.code == "D01"), "{:?}", flagged.reasons);
    let mut closed = bad.clone();
    closed.dispute = Some(DisputeMark { state: MarkState::PreviouslyDisputed, statement: String::new() });
    let after = m.score(&[good, closed], &[], as_of());
    assert_eq!((after.score, after.disputed_excluded), (plain.score, 0));
}

#[test]
fn bands_follow_the_published_ranges() {
    assert_eq!(Band::of(350), Band::Poor);
    assert_eq!(Band::of(549), Band::Poor);
    assert_eq!(Band::of(550), Band::Fair);
    assert_eq!(Band::of(600), Band::Good);
    assert_eq!(Band::of(650), Band::VeryGood);
    assert_eq!(Band::of(699), Band::VeryGood);
    assert_eq!(Band::of(700), Band::Excellent);
    assert_eq!(Band::of(950), Band::Excellent);
}

#[test]
fn models_that_could_reward_a_worse_file_are_refused() {
    let text = Model::embedded_default().text().to_owned();
    let broken = [
        // A 60-day delinquency earning more than a 30-day one.
        text.replace("{ upto = 2, points = -0.45 }", "{ upto = 2, points = 0.3 }"),
        // Never late earning less than recently late.
        text.replace("missing_points = 0.25", "missing_points = -1.0"),
        // A flipped direction.
        text.replacen("direction = \"higher_is_worse\"", "direction = \"higher_is_better\"", 1),
        // Unsorted bounds.
        text.replace("{ upto = 2999, points = 0.4 }", "{ upto = 500, points = 0.4 }"),
        // An unknown characteristic.
        text.replace("id = \"credit_mix\"", "id = \"shoe_size\""),
    ];
    for (i, t) in broken.iter().enumerate() {
        assert_ne!(t, &text, "case {i} changed nothing");
        assert!(Model::from_toml(t).is_err(), "case {i} accepted");
    }
}

#[test]
fn reasons_name_the_worst_lines_first() {
    let mut f = file(1, 0);
    while f.is_empty() {
        f = file(1, 1);
    }
    for r in &mut f {
        r.status = AccountStatus::ChargedOff;
        r.days_past_due = 150;
    }
    let res = Model::embedded_default().score(&f, &[hard(3), hard(10), hard(20)], as_of());
    let codes: Vec<_> = res.reasons.iter().map(|r| r.code.as_str()).collect();
    assert!(codes.contains(&"D01") && codes.contains(&"R01"), "{codes:?}");
    assert!(res.reasons.windows(2).all(|w| w[0].points_lost >= w[1].points_lost));
    assert_eq!(res.band, Band::Poor);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn score_is_bounded_and_deterministic(seed in any::<u64>(), i in 0usize..10_000, n in 0usize..8) {
        let f = file(seed, i);
        let inq: Vec<_> = (0..n).map(|d| hard(d as i64 * 17)).collect();
        let m = Model::embedded_default();
        let a = m.score(&f, &inq, as_of());
        prop_assert!((MIN_SCORE..=MAX_SCORE).contains(&a.score));
        prop_assert_eq!(&a, &m.score(&f, &inq, as_of()));
        prop_assert_eq!(a.band, Band::of(a.score));
    }

    #[test]
    fn more_delinquency_never_raises_a_score(
        seed in any::<u64>(), i in 0usize..10_000, pick in any::<usize>(), month in 0usize..24,
        worse in 1u8..=4, extra_dpd in 1u32..400, derog in any::<bool>(),
    ) {
        let f = file(seed, i);
        prop_assume!(!f.is_empty());
        let m = Model::embedded_default();
        let before = m.score(&f, &[], as_of()).score;
        let k = pick % f.len();
        let mut g = f.clone();
        let r = &mut g[k];
        if month < r.payment_history.len() {
            let target = [PaymentStatus::Late30, PaymentStatus::Late60, PaymentStatus::Late90, PaymentStatus::Late120Plus][worse as usize - 1];
            r.payment_history[month] = r.payment_history[month].max(target);
        }
        prop_assert!(m.score(&g, &[], as_of()).score <= before, "worse month raised the score");
        let mut h = f.clone();
        h[k].days_past_due = h[k].days_past_due.saturating_add(extra_dpd);
        prop_assert!(m.score(&h, &[], as_of()).score <= before, "more days past due raised the score");
        let mut d = f.clone();
        d[k].status = if derog { AccountStatus::ChargedOff } else { AccountStatus::InCollection };
        prop_assert!(m.score(&d, &[], as_of()).score <= before, "a charge-off raised the score");
    }

    #[test]
    fn higher_utilisation_never_raises_a_score(seed in any::<u64>(), i in 0usize..10_000, pick in any::<usize>(), more in 1i64..10_000_000) {
        let f = file(seed, i);
        let cards: Vec<usize> = f.iter().enumerate().filter(|(_, r)| r.kind == RecordKind::CreditCard).map(|(k, _)| k).collect();
        prop_assume!(!cards.is_empty());
        let m = Model::embedded_default();
        let before = m.score(&f, &[], as_of()).score;
        let mut g = f.clone();
        let k = cards[pick % cards.len()];
        g[k].balance_minor += more;
        prop_assert!(m.score(&g, &[], as_of()).score <= before);
    }

    #[test]
    fn another_recent_hard_inquiry_never_raises_a_score(seed in any::<u64>(), i in 0usize..10_000, n in 0usize..8, days in 0i64..180) {
        let f = file(seed, i);
        let m = Model::embedded_default();
        let inq: Vec<_> = (0..n).map(|d| hard(d as i64 * 13)).collect();
        let before = m.score(&f, &inq, as_of()).score;
        let mut more = inq.clone();
        more.push(hard(days));
        prop_assert!(m.score(&f, &more, as_of()).score <= before);
    }
}

/// The documented rule for unscoreable files: no record (X01), every record under dispute
/// (X02), oldest account younger than six months (X03); otherwise scored.
#[test]
fn thin_files_are_unscoreable_with_an_exclusion_code() {
    use crate::domain::dispute::{DisputeMark, MarkState};
    let m = Model::embedded_default();
    assert_eq!(m.score(&[], &[], as_of()).exclusion, Some(Exclusion::NoUsableRecords));
    let mut r = crate::domain::record::tests::sample();
    r.opened = as_of() - chrono::Months::new(6);
    assert_eq!(m.score(std::slice::from_ref(&r), &[], as_of()).exclusion, None, "six months is enough");
    r.opened = as_of() - chrono::Months::new(5);
    let young = m.score(std::slice::from_ref(&r), &[], as_of());
    assert_eq!(
        (young.exclusion, young.exclusion.map(Exclusion::code)),
        (Some(Exclusion::TooLittleHistory), Some("X03"))
    );
    r.opened = as_of() - chrono::Months::new(60);
    r.dispute = Some(DisputeMark { state: MarkState::Disputed, statement: "not mine".into() });
    assert_eq!(m.score(&[r], &[], as_of()).exclusion, Some(Exclusion::AllDisputed));
    let scored = m.score(&file(1, 0), &[], as_of());
    assert_eq!(scored.as_of, as_of());
}
