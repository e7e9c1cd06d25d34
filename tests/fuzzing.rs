//! The fuzz targets on stable: every file of the seed corpus in `fuzz/corpus/<target>/` (crashes
//! found by `cargo fuzz` are added there once fixed), then a fixed-seed stream of mutations of
//! those seeds. A panic is a failure. Longer, coverage-guided runs: see `fuzz/README.md`.

use std::{fs, path::Path};

use bureau::testkit::fuzz::TARGETS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mutations per target: enough to walk every branch the seeds are near, a few seconds in debug;
/// `BUREAU_FUZZ_MUTATIONS` asks for more (CI, where no nightly toolchain runs cargo fuzz).
fn mutations() -> usize {
    std::env::var("BUREAU_FUZZ_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| fs::read(e.expect("corpus entry").path()).expect("corpus file"))
        .collect();
    seeds.sort();
    seeds
}

/// One libFuzzer-style mutation: flip, insert, delete, duplicate or splice bytes.
fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..6) {
        let at = rng.gen_range(0..=d.len());
        match rng.gen_range(0..6) {
            0 if at < d.len() => d[at] ^= 1 << rng.gen_range(0..8),
            1 => d.insert(at, rng.gen()),
            2 if at < d.len() => {
                d.remove(at);
            }
            3 => {
                let interesting = [0u8, 0xff, b'\n', b'"', b'=', b'[', b'+', 0x80, 0x7f];
                d.insert(at, interesting[rng.gen_range(0..interesting.len())]);
            }
            4 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                let from = rng.gen_range(0..=other.len());
                d.splice(at..at, other[from..].iter().copied().take(16));
            }
            _ if !d.is_empty() => d.truncate(at),
            _ => {}
        }
    }
    d
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    for (name, target) in TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
        for s in &seeds {
            target(s);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0x6275_7265_6175);
        for _ in 0..mutations() {
            target(&mutate(&mut rng, &seeds));
        }
    }
}

/// The seed corpus in the repo holds every seed the real encoders build (named by content), so a
/// format change that the corpus has not followed fails here. `BUREAU_WRITE_SEEDS=1` writes the
/// missing ones: `BUREAU_WRITE_SEEDS=1 cargo test --test fuzzing`.
#[test]
fn the_corpus_holds_every_seed_the_encoders_build() {
    use sha2::{Digest, Sha256};
    let write = std::env::var_os("BUREAU_WRITE_SEEDS").is_some();
    let mut missing = Vec::new();
    for (target, bytes) in bureau::testkit::fuzz::seeds() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let file = dir.join(format!("seed-{}", hex::encode(&Sha256::digest(&bytes)[..8])));
        if fs::read(&file).ok().as_deref() == Some(&bytes[..]) {
            continue;
        }
        if write {
            fs::create_dir_all(&dir).expect("corpus dir");
            fs::write(&file, &bytes).expect("seed");
        } else {
            missing.push(file.display().to_string());
        }
    }
    assert!(missing.is_empty(), "seeds missing from the corpus (BUREAU_WRITE_SEEDS=1 writes them): {missing:?}");
}

#[test]
fn the_seeds_built_from_real_encoders_pass_every_target() {
    for (target, bytes) in bureau::testkit::fuzz::seeds() {
        let (_, f) = TARGETS.iter().find(|(n, _)| *n == target).expect("known target");
        f(&bytes);
        // The seeds must get past the first checks, or the fuzzer starts at the front door.
        match target {
            "config" => {
                let text = std::str::from_utf8(&bytes).expect("utf-8");
                bureau::config::NodeConfig::parse(text, Path::new("/fuzz/node.toml")).expect("the config seed parses");
            }
            "record" if !bytes.is_empty() => {
                let r = <bureau::pb::bureau::v1::CreditRecord as prost::Message>::decode(&bytes[..]).expect("decodes");
                bureau::convert::record_from_stored(r).expect("the record seed is valid");
            }
            _ => {}
        }
    }
}
