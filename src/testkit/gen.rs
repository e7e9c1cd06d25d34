//! Reproducible synthetic credit files: subjects drawn from personas (prime, near-prime,
//! subprime, thin file, no file) in plausible shares, each with accounts of plausible kinds,
//! limits, balances and payment histories, spread over the given institutions. Subject `i`'s
//! records depend only on (seed, i), never on generation order, and generation streams, so a
//! million subjects never sit in memory at once.

use chrono::{Datelike, Months, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{
    domain::record::{AccountStatus, CreditRecord, PaymentStatus, RecordKind, MAX_PAYMENT_HISTORY},
    domain::subject::derive_subject_id,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of subjects.
    pub subjects: usize,
    /// Seed; the same seed gives the same records.
    pub seed: u64,
    /// Furnishing institutions; each record goes to one of them.
    pub institutions: Vec<String>,
    /// The federation's subject key (pseudonyms are derived as institutions would).
    pub federation_key: Vec<u8>,
    /// The reporting date.
    pub as_of: NaiveDate,
}

/// The synthetic identity document of subject `i`: type and an obviously fake number (the 99
/// prefix is not a real region code).
pub fn subject_identity(seed: u64, i: usize) -> (&'static str, String) {
    ("RESIDENT_ID", format!("99{:04}{:012}", seed % 10_000, i))
}

/// The pseudonym of subject `i`.
pub fn subject_id(cfg: &GenConfig, i: usize) -> String {
    let (t, n) = subject_identity(cfg.seed, i);
    derive_subject_id(&cfg.federation_key, t, &n)
}

/// Every record of every subject, subject by subject.
pub fn generate(cfg: &GenConfig) -> impl Iterator<Item = CreditRecord> + '_ {
    (0..cfg.subjects).flat_map(move |i| subject_records(cfg, i))
}

#[derive(Debug, Clone, Copy)]
struct Persona {
    accounts: (u32, u32),
    age_months: (u32, u32),
    utilisation: (f64, f64),
    late_per_month: f64,
    derogatory: f64,
}

const PRIME: Persona = Persona {
    accounts: (3, 7),
    age_months: (60, 240),
    utilisation: (0.0, 0.3),
    late_per_month: 0.002,
    derogatory: 0.0,
};
const NEAR_PRIME: Persona = Persona {
    accounts: (2, 6),
    age_months: (24, 120),
    utilisation: (0.2, 0.7),
    late_per_month: 0.02,
    derogatory: 0.03,
};
const SUBPRIME: Persona =
    Persona { accounts: (2, 6), age_months: (12, 96), utilisation: (0.5, 1.0), late_per_month: 0.08, derogatory: 0.3 };
const THIN: Persona =
    Persona { accounts: (1, 2), age_months: (3, 24), utilisation: (0.0, 0.6), late_per_month: 0.01, derogatory: 0.0 };

/// Subject `i`'s records.
pub fn subject_records(cfg: &GenConfig, i: usize) -> Vec<CreditRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64);
    let persona = match rng.gen_range(0..100) {
        0..=44 => PRIME,
        45..=69 => NEAR_PRIME,
        70..=84 => SUBPRIME,
        85..=94 => THIN,
        _ => return Vec::new(), // no file
    };
    if cfg.institutions.is_empty() {
        return Vec::new();
    }
    let subject = subject_id(cfg, i);
    let n = rng.gen_range(persona.accounts.0..=persona.accounts.1);
    let derogatory_account = (rng.gen_bool(persona.derogatory)).then(|| rng.gen_range(0..n));
    (0..n)
        .map(|k| {
            let furnisher = cfg.institutions[rng.gen_range(0..cfg.institutions.len())].clone();
            account(&mut rng, cfg.as_of, &persona, furnisher, &subject, i, k, derogatory_account == Some(k))
        })
        .collect()
}

fn kind(rng: &mut ChaCha8Rng) -> (RecordKind, &'static str) {
    match rng.gen_range(0..100) {
        0..=34 => (RecordKind::CreditCard, "cc"),
        35..=54 => (RecordKind::Instalment, "inst"),
        55..=69 => (RecordKind::Loan, "ln"),
        70..=84 => (RecordKind::DepositFreeRental, "rent"),
        85..=97 => (RecordKind::Utility, "util"),
        _ => (RecordKind::Guarantee, "gtee"),
    }
}

/// Credit limit or original amount in fen, by kind.
fn limit(rng: &mut ChaCha8Rng, kind: RecordKind) -> i64 {
    let yuan = match kind {
        RecordKind::CreditCard => rng.gen_range(5_000..=100_000),
        RecordKind::Loan => rng.gen_range(20_000..=500_000),
        RecordKind::Instalment => rng.gen_range(500..=20_000),
        RecordKind::DepositFreeRental => *[99, 199, 299, 500, 1_000, 3_000].get(rng.gen_range(0..6)).unwrap_or(&99),
        RecordKind::Utility => 0,
        RecordKind::Guarantee => rng.gen_range(50_000..=1_000_000),
    };
    yuan * 100
}

#[allow(clippy::too_many_arguments)]
fn account(
    rng: &mut ChaCha8Rng,
    as_of: NaiveDate,
    p: &Persona,
    furnisher: String,
    subject: &str,
    i: usize,
    k: u32,
    derogatory: bool,
) -> CreditRecord {
    let (kind, prefix) = kind(rng);
    let age = rng.gen_range(p.age_months.0..=p.age_months.1.max(p.age_months.0));
    let opened = as_of.checked_sub_months(Months::new(age)).unwrap_or(as_of);
    let opened = opened.with_day(rng.gen_range(1..=28)).unwrap_or(opened).min(as_of);
    let reported = (as_of - chrono::Duration::days(rng.gen_range(0..28))).max(opened);

    // The payment history, oldest month first while generating: each month may slip one level
    // later, and a late account is often brought current again.
    let months = (age as usize).clamp(1, MAX_PAYMENT_HISTORY);
    let mut level = 0u32;
    let mut history = Vec::with_capacity(months);
    for _ in 0..months {
        if rng.gen_bool(p.late_per_month) || (level > 0 && rng.gen_bool(0.35)) {
            level = (level + 1).min(4);
        } else if level > 0 && rng.gen_bool(0.6) {
            level = 0;
        }
        if derogatory && history.len() + 5 >= months {
            level = (level + 1).min(4); // a derogatory account ends 120+ days late
        }
        history.push(match level {
            0 => PaymentStatus::Current,
            1 => PaymentStatus::Late30,
            2 => PaymentStatus::Late60,
            3 => PaymentStatus::Late90,
            _ => PaymentStatus::Late120Plus,
        });
    }
    history.reverse(); // newest first

    let limit = limit(rng, kind);
    let mut balance = match kind {
        RecordKind::Utility => rng.gen_range(0..=60_000),
        _ => (limit as f64 * rng.gen_range(p.utilisation.0..=p.utilisation.1)) as i64,
    };
    let (mut status, mut dpd, mut closed) = (AccountStatus::Current, 0, None);
    if level > 0 {
        status = AccountStatus::Delinquent;
        dpd = level * 30 + rng.gen_range(0..30);
        if level == 4 && (derogatory || rng.gen_bool(0.3)) {
            status = if rng.gen_bool(0.5) { AccountStatus::ChargedOff } else { AccountStatus::InCollection };
        }
    } else if age > 12 && rng.gen_bool(0.15) {
        status = AccountStatus::Closed;
        balance = 0;
        let span = (reported - opened).num_days().max(1);
        closed = Some((opened + chrono::Duration::days(rng.gen_range(0..=span))).min(reported));
    }
    CreditRecord {
        furnisher,
        record_id: format!("{prefix}-{i}-{k}"),
        subject_id: subject.to_owned(),
        kind,
        opened,
        closed,
        reported,
        credit_limit_minor: limit,
        balance_minor: balance.max(0),
        currency: "CNY".into(),
        status,
        days_past_due: dpd,
        payment_history: history,
        version: 1,
        dispute: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::{Band, Model};

    fn cfg(subjects: usize, seed: u64) -> GenConfig {
        GenConfig {
            subjects,
            seed,
            institutions: vec!["payapp".into(), "bikeshare".into(), "bank".into()],
            federation_key: b"federation".to_vec(),
            as_of: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        }
    }

    #[test]
    fn every_generated_record_is_valid_and_ids_are_unique_per_furnisher() {
        let c = cfg(2_000, 42);
        let mut keys = std::collections::HashSet::new();
        let mut n = 0;
        for r in generate(&c) {
            assert_eq!(r.violations(c.as_of), vec![], "{r:?}");
            assert!(keys.insert((r.furnisher.clone(), r.record_id.clone())));
            n += 1;
        }
        assert!(n > 4_000, "{n} records for 2000 subjects");
    }

    #[test]
    fn output_is_reproducible_and_independent_of_population_size() {
        let a: Vec<_> = generate(&cfg(300, 7)).collect();
        let b: Vec<_> = generate(&cfg(300, 7)).collect();
        assert_eq!(a, b);
        assert_eq!(subject_records(&cfg(10, 7), 5), subject_records(&cfg(1_000_000, 7), 5));
        assert_ne!(a, generate(&cfg(300, 8)).collect::<Vec<_>>());
    }

    #[test]
    fn scores_of_a_generated_population_span_the_bands() {
        let c = cfg(5_000, 1);
        let m = Model::embedded_default();
        let mut scores: Vec<i32> =
            (0..c.subjects).map(|i| m.score(&subject_records(&c, i), &[], c.as_of).score).collect();
        scores.sort_unstable();
        let mut bands = std::collections::BTreeMap::new();
        for s in &scores {
            *bands.entry(Band::of(*s)).or_insert(0) += 1;
        }
        let median = scores[scores.len() / 2];
        println!(
            "median {median}, p10 {}, p90 {}, bands {bands:?}",
            scores[scores.len() / 10],
            scores[scores.len() * 9 / 10]
        );
        assert_eq!(bands.len(), 5, "every band is populated: {bands:?}");
        assert!((600..=720).contains(&median), "median {median}");
    }
}
