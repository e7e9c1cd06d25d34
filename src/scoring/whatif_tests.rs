//! The what-if's promise, checked on generated files: every suggestion, applied and re-scored,
//! gives exactly the predicted score, at or above the target; the same change one step smaller
//! does not reach it.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::{
    domain::inquiry::Purpose,
    testkit::gen::{self, GenConfig},
};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

fn file(seed: u64, i: usize) -> Vec<CreditRecord> {
    let cfg = GenConfig {
        subjects: 1,
        seed,
        institutions: vec!["a".into(), "b".into(), "c".into()],
        federation_key: b"k".to_vec(),
        as_of: as_of(),
    };
    gen::subject_records(&cfg, i)
}

fn inquiries(days_ago: &[i64]) -> Vec<Inquiry> {
    days_ago
        .iter()
        .map(|d| Inquiry {
            inquirer: "x".into(),
            responder: "y".into(),
            subject_id: "s".into(),
            purpose: Purpose::CreditApplication,
            hard: true,
            time: Utc.from_utc_datetime(&(as_of() - chrono::Duration::days(*d)).and_hms_opt(12, 0, 0).unwrap()),
            query_id: format!("q{d}"),
            log_index: None,
        })
        .collect()
}

/// The same change one step smaller: a cent less paid, one account fewer, a day less.
fn one_smaller(s: &Suggestion, records: &[CreditRecord]) -> Suggestion {
    let mut t = s.clone();
    match s.lever {
        Lever::PayDown => {
            t.pay_minor -= 1;
            t.accounts = pay_down(records, t.pay_minor);
        }
        Lever::BringCurrent => t.accounts = bring_current(records, s.accounts.len() - 1),
        Lever::Wait => t.wait_days -= 1,
    }
    t
}

fn check(records: &[CreditRecord], inq: &[Inquiry], target: i32) -> Result<usize, TestCaseError> {
    let m = Model::embedded_default();
    let suggestions = m.what_if(records, inq, as_of(), target);
    for s in &suggestions {
        let (changed, day) = s.apply(records, as_of());
        let after = m.score(&changed, inq, day);
        prop_assert_eq!(after.score, s.predicted, "{:?}", s);
        prop_assert!(after.exclusion.is_none() && s.predicted >= target, "{:?}", s);
        let smaller = one_smaller(s, records);
        let (changed, day) = smaller.apply(records, as_of());
        let before = m.score(&changed, inq, day);
        prop_assert!(
            before.score < target || before.exclusion.is_some(),
            "a smaller change reaches too: {:?}",
            smaller
        );
        // Bringing current: no other choice of fewer accounts reaches it either.
        let late = past_due(records);
        if s.lever == Lever::BringCurrent && late.len() <= 8 {
            for mask in 0u32..(1 << late.len()) {
                if mask.count_ones() as usize >= s.accounts.len() {
                    continue;
                }
                let accounts = late
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, r)| AccountChange {
                        furnisher: r.furnisher.clone(),
                        record_id: r.record_id.clone(),
                        balance_to_minor: None,
                        bring_current: true,
                    })
                    .collect();
                let other = Suggestion { accounts, ..s.clone() };
                let (changed, day) = other.apply(records, as_of());
                let r = m.score(&changed, inq, day);
                prop_assert!(r.score < target || r.exclusion.is_some(), "fewer accounts reach too: {:?}", other);
            }
        }
    }
    Ok(suggestions.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_suggestion_reaches_exactly_its_prediction_and_nothing_smaller_does(
        seed in any::<u64>(),
        i in 0usize..10_000,
        target in 450i32..800,
        days in proptest::collection::vec(0i64..400, 0..6),
    ) {
        check(&file(seed, i), &inquiries(&days), target)?;
    }
}

/// The generated files do exercise every family (the property is not vacuous).
#[test]
fn generated_files_get_suggestions_of_every_family() {
    let m = Model::embedded_default();
    let mut seen = std::collections::HashSet::new();
    for i in 0..400 {
        let records = file(7, i);
        let inq = inquiries(&[3, 20, 40]);
        let target = m.score(&records, &inq, as_of()).score + 15;
        for s in m.what_if(&records, &inq, as_of(), target) {
            seen.insert(s.lever);
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn a_file_that_reaches_the_target_needs_nothing_and_a_young_file_waits_to_be_scoreable() {
    let m = Model::embedded_default();
    let records = file(1, 0);
    assert!(m.what_if(&records, &[], as_of(), 350).is_empty());
    let mut young = crate::domain::record::tests::sample();
    young.opened = as_of() - chrono::Duration::days(30);
    let s = m.what_if(std::slice::from_ref(&young), &[], as_of(), 350);
    let wait = s.iter().find(|s| s.lever == Lever::Wait).expect("waiting makes it scoreable");
    let (_, day) = wait.apply(std::slice::from_ref(&young), as_of());
    assert_eq!(m.score(std::slice::from_ref(&young), &[], day).exclusion, None);
    assert!(m.score(std::slice::from_ref(&young), &[], day.pred_opt().unwrap()).exclusion.is_some());
}
