//! Fuzz entry points: one function per parser of untrusted bytes, each of which must return
//! without panicking on any input and keep its round-trip promise on every input it accepts.
//!
//! `fuzz/` (cargo fuzz, nightly) drives them with libFuzzer; `tests/fuzzing.rs` replays the seed
//! corpus in `fuzz/corpus/` and a fixed-seed stream of mutations on stable, so a crash found once
//! stays fixed. Each function panics only when a promise is broken, which is what a fuzzer reports.

use std::path::Path;

use chrono::{NaiveDate, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use prost::Message;

use crate::{
    audit::{
        checkpoint::{self, Checkpoint},
        merkle::{self, Hash},
        Entry,
    },
    config::NodeConfig,
    grpc::token::{self, Listing},
    pb::bureau::v1 as pb,
    wire::convert,
};

/// A fuzz target: takes any bytes, panics only when a promise is broken.
pub type Target = fn(&[u8]);

/// The targets, by the name their corpus folder and cargo-fuzz binary carry.
pub const TARGETS: [(&str, Target); 6] = [
    ("record", record),
    ("checkpoint", checkpoint),
    ("page_token", page_token),
    ("config", config),
    ("audit_proof", audit_proof),
    ("deliver_notice", deliver_notice),
];

/// A record as a caller or peer sends it: protobuf bytes, validated and converted. An accepted
/// record converts back to the same protobuf and is accepted again, unchanged.
pub fn record(data: &[u8]) {
    let Ok(msg) = pb::CreditRecord::decode(data) else { return };
    let _ = convert::parse_record_name(&msg.name);
    let _ = convert::parse_subject_name(&msg.subject_id);
    let _ = msg.update_time.as_ref().map(convert::from_timestamp);
    let _ = convert::record_from_stored(msg.clone());
    let today = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date");
    let Ok(rec) = convert::record_from_pb(msg, "fuzz-bank", today) else { return };
    let updated = Utc.timestamp_opt(1_780_000_000, 0).single().expect("a time");
    let again = convert::record_from_pb(convert::record_to_pb(&rec, updated), "fuzz-bank", today);
    assert_eq!(again.as_ref().ok(), Some(&rec), "an accepted record must round-trip");
    let stored = convert::record_from_stored(convert::record_to_stored(&rec, updated));
    assert_eq!(stored.as_ref().ok(), Some(&rec), "a stored record must read back");
}

fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A signed checkpoint note and a verifier key string. The input is tried as a whole note and,
/// so the fuzzer reaches the body parser, as a body signed by the test key. An accepted
/// checkpoint signs to a note that opens to the same checkpoint.
pub fn checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let key = log_key();
    let _ = checkpoint::parse_verifier_key(text);
    let _ = Checkpoint::open(text, "fuzz.example/log", &key.verifying_key());
    let body = text.split_once("\n\n").map_or(text, |(b, _)| b);
    let origin = body.lines().next().unwrap_or_default();
    let note = Checkpoint { origin: origin.to_owned(), size: 0, root: [0; 32] }.sign(&key);
    let signature = note.split_once("\n\n").map_or("", |(_, s)| s);
    let forged = format!("{body}\n\n{signature}");
    if let Ok(cp) = Checkpoint::open(&forged, origin, &key.verifying_key()) {
        let reopened = Checkpoint::open(&cp.sign(&key), &cp.origin, &key.verifying_key());
        assert_eq!(reopened.ok().as_ref(), Some(&cp), "an accepted checkpoint must round-trip");
    }
}

/// A page token from a caller, for each listing, and the cursor inside it. Any cursor encodes
/// to a token that decodes to the same cursor for the same listing and parent only.
pub fn page_token(data: &[u8]) {
    let parent = "subjects/fuzz";
    if let Ok(text) = std::str::from_utf8(data) {
        for listing in [Listing::Records, Listing::Inquiries, Listing::Audit] {
            if let Ok(Some(cursor)) = token::decode(text, listing, parent) {
                let _ = token::parse_record_cursor(&cursor);
                let _ = token::parse_inquiry_cursor(&cursor);
            }
        }
    }
    let _ = token::parse_record_cursor(data);
    let _ = token::parse_inquiry_cursor(data);
    let t = token::encode(Listing::Records, parent, data);
    assert_eq!(token::decode(&t, Listing::Records, parent).ok().flatten().as_deref(), Some(data));
    assert!(token::decode(&t, Listing::Inquiries, parent).is_err(), "a token is bound to its listing");
    assert!(token::decode(&t, Listing::Records, "subjects/other").is_err(), "a token is bound to its parent");
}

/// A node's configuration file. Parsing never touches the filesystem; an accepted file is valid.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = NodeConfig::parse(text, Path::new("/fuzz/node.toml")) {
        assert!(cfg.check().is_ok(), "an accepted configuration passes its own check");
        let _ = cfg.handshake_timeout();
    }
}

/// What a regulator reads from a node it does not trust: audit entry bytes and Merkle proofs.
/// Input: `m, n, index` (u64 each, big-endian), then 32-byte hashes: two roots, a leaf, the proof.
/// Verification must answer yes or no, never panic, for any sizes and any proof.
pub fn audit_proof(data: &[u8]) {
    let _ = Entry::from_bytes(data);
    let Some((head, rest)) = data.split_first_chunk::<24>() else { return };
    let word = |i: usize| u64::from_be_bytes(head[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (m, n, index) = (word(0), word(1), word(2));
    let hashes: Vec<Hash> = rest.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
    let [root_m, root_n, leaf, proof @ ..] = hashes.as_slice() else { return };
    let _ = merkle::verify_consistency(m, n, root_m, root_n, proof);
    let _ = merkle::verify_inclusion(leaf, index, n, proof, root_n);
    // A proof the log itself would give for these sizes must verify.
    let leaves: Vec<Hash> = (0..n.min(64)).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
    let size = leaves.len() as u64;
    let mut tree = merkle::Tree::new(|level: u8, i: u64| -> Result<Hash, ()> { subtree(&leaves, level, i) });
    let (Ok(root), Some(i)) = (tree.root(size), (size > 0).then(|| index % size)) else { return };
    let path = tree.inclusion_proof(i, size).expect("inclusion proof");
    assert!(merkle::verify_inclusion(&leaves[i as usize], i, size, &path, &root));
    let old = 1 + m % size; // 0 < old <= size, as the proof requires
    let (Ok(old_root), Ok(cons)) = (tree.root(old), tree.consistency_proof(old, size)) else { return };
    assert!(merkle::verify_consistency(old, size, &old_root, &root, &cons));
}

/// The receiving node's clock in [`deliver_notice`].
fn notice_now() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000, 0).single().expect("a time")
}

/// A notice a peer delivers (`DeliverNotice`): `Notice` protobuf, decoded and checked as the
/// receiving node (`fuzz-bank`) checks it at a fixed time, never panicking whatever the times
/// (the ends of the calendar included). Each notice is tried from the sender it names, so the
/// fuzzer reaches the time checks, and from another. Whatever is accepted keeps its promises:
/// times within the window and through the sender; a filing's deadline ahead; a protection
/// change that re-encodes to a notice accepted as the same and merges once.
pub fn deliver_notice(data: &[u8]) {
    use crate::{
        app::notice_checks::{check_filing, check_notice, check_resolution},
        domain::{
            peer_time::Window,
            protection::Protection,
            retention::{Profile, Retention},
        },
    };
    let Ok(notice) = pb::Notice::decode(data) else { return };
    let now = notice_now();
    let window = Window::around(now);
    match notice.body {
        None => {}
        Some(pb::notice::Body::DisputeFiled(p) | pb::notice::Body::DisputeResolved(p)) => {
            let Ok(d) = convert::dispute_from_pb(&p) else { return };
            for retention in [Retention::of(Profile::Pbc), Retention::of(Profile::Fcra)] {
                for from in [d.filer.as_str(), "fuzz-other"] {
                    if let Ok(taken) = check_filing(from, "fuzz-bank", now, &retention, d.clone()) {
                        assert!(window.check(taken.filed).is_ok(), "an accepted filing was filed within the window");
                        assert!(taken.deadline.is_some_and(|t| t > now), "an accepted filing's deadline lies ahead");
                        assert_eq!(taken.filer, from, "only the filer delivers its dispute");
                    }
                }
            }
            if check_resolution(now, d.filed, &d).is_ok() {
                assert!(d.resolved.is_none_or(|t| window.check(t).is_ok() && t >= d.filed));
            }
        }
        Some(pb::notice::Body::Protection(n)) => {
            for from in [n.freeze_changed_by.as_str(), n.alert_changed_by.as_str(), "fuzz-other"] {
                let Ok(p) = check_notice(from, now, &n) else { continue };
                for c in [&p.freeze, &p.alert].into_iter().flatten() {
                    assert!(window.check(c.at).is_ok(), "an accepted change lies within the window");
                    assert_eq!(c.by, from, "an accepted change went through the sender");
                }
                let again = convert::protection_notice(&n.change_id, &n.subject_id, &p, now);
                assert_eq!(check_notice(from, now, &again).ok().as_ref(), Some(&p), "an accepted notice round-trips");
                let mut held = Protection::default();
                held.merge(&p);
                assert!(!held.merge(&p), "a notice merged twice changes nothing the second time");
                let _ = (held.alert_active(now), held.alert_expires(), convert::protection_to_pb(&held, now));
            }
        }
    }
}

/// Seeds for [`deliver_notice`]: a filing, a resolution and a protection change as a peer's
/// node sends them at the fuzz clock.
fn notice_seeds() -> Vec<Vec<u8>> {
    use crate::domain::protection::{Kind, Protection};
    let now = notice_now();
    let dispute = pb::Dispute {
        name: "institutions/fuzz-peer/disputes/0123456789abcdef01234567".into(),
        filer: "fuzz-peer".into(),
        record: "institutions/fuzz-bank/records/loan-0001".into(),
        subject_id: "ab".repeat(32),
        reason: pb::DisputeReason::NotMine as i32,
        statement: "not mine".into(),
        status: pb::DisputeStatus::PendingDelivery as i32,
        file_time: Some(convert::timestamp(now)),
        ..Default::default()
    };
    let mut resolved = dispute.clone();
    resolved.status = pb::DisputeStatus::Verified as i32;
    resolved.resolve_time = Some(convert::timestamp(now));
    resolved.deadline = Some(convert::timestamp(now + chrono::Duration::days(20)));
    let mut p = Protection::default();
    p.set(Kind::FraudAlert, true, now - chrono::Duration::days(2), "fuzz-peer");
    p.set(Kind::FraudAlert, false, now - chrono::Duration::days(1), "fuzz-peer");
    p.set(Kind::SecurityFreeze, true, now, "fuzz-peer");
    let protection = convert::protection_notice("change-0001", &"ab".repeat(32), &p, now);
    [
        pb::notice::Body::DisputeFiled(dispute),
        pb::notice::Body::DisputeResolved(resolved),
        pb::notice::Body::Protection(protection),
    ]
    .into_iter()
    .map(|body| pb::Notice { body: Some(body) }.encode_to_vec())
    .collect()
}

/// The hash of the perfect subtree at `level` whose first leaf is `i << level`.
fn subtree(leaves: &[Hash], level: u8, i: u64) -> Result<Hash, ()> {
    if level == 0 {
        return leaves.get(i as usize).copied().ok_or(());
    }
    Ok(merkle::node_hash(&subtree(leaves, level - 1, 2 * i)?, &subtree(leaves, level - 1, 2 * i + 1)?))
}

/// Seed inputs for each target, built from the real encoders, so the fuzzer starts from inputs
/// that pass the first checks. `tests/fuzzing.rs` writes them to `fuzz/corpus/` on request.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use crate::testkit::gen::{self, GenConfig};
    let mut out = Vec::new();
    let as_of = NaiveDate::from_ymd_opt(2026, 10, 31).expect("a date");
    let cfg =
        GenConfig { subjects: 4, seed: 1, institutions: vec!["fuzz-bank".into()], federation_key: vec![1; 32], as_of };
    let updated = Utc.timestamp_opt(1_780_000_000, 0).single().expect("a time");
    for r in gen::generate(&cfg).take(6) {
        out.push(("record", prost::Message::encode_to_vec(&convert::record_to_pb(&r, updated))));
    }
    out.push(("record", Vec::new()));

    let key = log_key();
    let root = merkle::leaf_hash(b"seed");
    let cp = Checkpoint { origin: "fuzz.example/log".into(), size: 17_939, root };
    out.push(("checkpoint", cp.sign(&key).into_bytes()));
    out.push(("checkpoint", cp.body().into_bytes()));
    out.push(("checkpoint", checkpoint::verifier_key(&cp.origin, &key.verifying_key()).into_bytes()));

    let parent = "subjects/fuzz";
    let records = token::record_cursor(&crate::storage::RecordCursor {
        furnisher: "fuzz-bank".into(),
        record_id: "loan-0001".into(),
    });
    let inquiries = token::inquiry_cursor(&crate::storage::InquiryCursor {
        time_micros: 1_780_000_000_000_000,
        query_id: "q-0001".into(),
    });
    out.push(("page_token", token::encode(Listing::Records, parent, &records).into_bytes()));
    out.push(("page_token", token::encode(Listing::Inquiries, parent, &inquiries).into_bytes()));
    out.push(("page_token", token::encode(Listing::Audit, parent, &42u64.to_be_bytes()).into_bytes()));
    out.push(("page_token", records));

    out.push(("config", CONFIG_SEED.as_bytes().to_vec()));

    let mut proof = [3u64, 7, 2].iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
    (0..6u8).for_each(|i| proof.extend_from_slice(&merkle::leaf_hash(&[i])));
    out.push(("audit_proof", proof));
    let mut entry = Entry::new(crate::audit::Action::ScoreServed, "institution/fuzz-bank/app/cli", "ok");
    entry.time = updated;
    out.push(("audit_proof", entry.to_bytes()));
    out.extend(notice_seeds().into_iter().map(|n| ("deliver_notice", n)));
    out
}

/// A full node configuration, every section present.
const CONFIG_SEED: &str = r#"[node]
institution = "payapp"
listen = "127.0.0.1:7001"
data_dir = "data/payapp"

[tls]
ca = "pki/ca.pem"
cert = "pki/institution-payapp.pem"
key = "pki/institution-payapp.key"
crl = "pki/crl.pem"
log_key = "pki/institution-payapp.log.key"

[federation]
name = "bureau.example"
subject_key = "pki/subject-key.hex"

[[peers]]
id = "bank"
address = "127.0.0.1:7002"

[limits]
max_message_bytes = 4194304
max_batch_records = 1000
handshake_timeout_ms = 5000

[scoring]
peer_deadline_ms = 300

[policies.deposit_waiver]
min_score = 550
purpose = "deposit_waiver"
"#;
