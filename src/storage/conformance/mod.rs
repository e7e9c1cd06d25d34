//! The storage conformance suite: every behaviour the [`Storage`] trait promises, written once
//! and run against every backend (quickwit's metastore tests are the model). A backend's tests
//! instantiate it with [`storage_conformance!`](crate::storage_conformance), giving an
//! expression that makes a fresh [`Backend`] (an empty store of its own) for each check.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::future::BoxFuture;

use crate::{
    audit::{merkle, Action, Entry},
    domain::{
        inquiry::{Inquiry, Purpose},
        record::{AccountStatus, CreditRecord, PaymentStatus, RecordKind},
    },
    storage::{
        AnswerQuery, Applied, Deleted, DynStorage, GateError, InquiryCursor, RecordCursor, Refusal, Space, StateChange,
        StoreError,
    },
};

/// One backend under test: opens its one store, empty the first time; opening again after
/// [`crate::storage::Storage::close`] must find everything that was synced.
pub trait Backend: Send + Sync {
    /// Opens (or reopens) the store.
    fn open(&self) -> BoxFuture<'_, DynStorage>;
}

mod answers;
mod spaces;
pub use answers::{
    a_change_made_first_is_part_of_the_answer, a_durable_answer_is_durable_when_it_returns,
    an_answer_reads_from_the_window_start, an_undecodable_protection_fails_the_answer_as_corrupt,
    answering_an_inquiry_is_one_write,
};
pub use spaces::{
    consent_nonces_are_spent_once_and_scan_in_expiry_order, every_space_keeps_its_own_keys,
    holdings_scan_by_person_and_survive_reopen, subtrees_read_as_tiles_and_witness_state_survives,
};

/// Generates one `#[tokio::test]` per conformance check for the backend `$make` creates.
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr) => {
        $crate::storage_conformance!(@tests $make;
            version_rules, each_change_logs_one_entry, subject_listing_pages_by_key,
            inquiries_newest_first_page_by_key, audit_appends_and_proofs, concurrent_appends_make_one_log,
            durable_after_reopen, durable_head_covers_synced_writes, answering_an_inquiry_is_one_write,
            a_durable_answer_is_durable_when_it_returns, a_change_made_first_is_part_of_the_answer,
            an_answer_reads_from_the_window_start, an_undecodable_protection_fails_the_answer_as_corrupt, state_is_compare_and_set_and_scans_by_prefix, retention_scans_and_purges_log_each_deletion,
            every_space_keeps_its_own_keys, holdings_scan_by_person_and_survive_reopen,
            consent_nonces_are_spent_once_and_scan_in_expiry_order,
            subtrees_read_as_tiles_and_witness_state_survives);
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $make;
                $crate::storage::conformance::$check(&backend).await;
            }
        )*
    };
}

/// A 64-hex subject id.
fn subject(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn record(furnisher: &str, id: &str, subject: &str, version: u64) -> CreditRecord {
    CreditRecord {
        furnisher: furnisher.into(),
        record_id: id.into(),
        subject_id: subject.into(),
        kind: RecordKind::CreditCard,
        opened: NaiveDate::from_ymd_opt(2020, 1, 15).expect("date"),
        closed: None,
        reported: NaiveDate::from_ymd_opt(2026, 10, 31).expect("date"),
        credit_limit_minor: 1_000_000,
        balance_minor: 1_000 * version as i64,
        currency: "CNY".into(),
        status: AccountStatus::Current,
        days_past_due: 0,
        payment_history: vec![PaymentStatus::Current; 6],
        version,
        dispute: None,
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().expect("time")
}

fn inquiry(subject: &str, n: i64, query: &str) -> (Inquiry, Entry) {
    let i = Inquiry {
        inquirer: "payapp".into(),
        responder: "bank".into(),
        subject_id: subject.into(),
        purpose: Purpose::AccountReview,
        hard: false,
        time: t0() + Duration::seconds(n),
        query_id: query.into(),
        log_index: None,
    };
    let mut e = Entry::new(Action::QueryInbound, "payapp", "answered");
    e.query_id = query.into();
    e.subject_id = subject.into();
    (i, e)
}

fn entry(n: usize) -> Entry {
    let mut e = Entry::new(Action::ScoreServed, "bank", format!("score={}", 400 + n));
    e.time = t0() + Duration::milliseconds(n as i64);
    e
}

/// A higher version replaces, an equal or lower one is ignored, a record never changes subject,
/// a correction needs a live record, and a deletion leaves a tombstone stale re-sends cannot pass.
pub async fn version_rules(b: &dyn Backend) {
    let s = b.open().await;
    let (a, other) = (subject(1), subject(2));
    let applied =
        |r: &[crate::storage::ApplyResult]| r.iter().map(|a| (a.applied, a.stored_version)).collect::<Vec<_>>();
    let r = s.furnish(vec![record("bank", "c1", &a, 2)], t0()).await.unwrap();
    assert_eq!(applied(&r), [(Applied::Created, 2)]);
    let r = s
        .furnish(vec![record("bank", "c1", &a, 2), record("bank", "c1", &a, 1), record("bank", "c1", &a, 3)], t0())
        .await
        .unwrap();
    assert_eq!(applied(&r), [(Applied::IgnoredStale, 2), (Applied::IgnoredStale, 2), (Applied::Replaced, 3)]);
    let r = s.furnish(vec![record("bank", "c1", &other, 4)], t0()).await.unwrap();
    assert_eq!(applied(&r), [(Applied::SubjectMismatch, 3)]);
    assert_eq!(s.get("bank", "c1").await.unwrap().unwrap().record, record("bank", "c1", &a, 3));
    assert_eq!(s.get("payapp", "c1").await.unwrap(), None, "records are keyed by furnisher too");

    assert_eq!(s.correct(record("bank", "nope", &a, 9), t0()).await.unwrap(), None);
    let c = s.correct(record("bank", "c1", &a, 3), t0()).await.unwrap().unwrap();
    assert_eq!((c.applied, c.stored_version), (Applied::IgnoredStale, 3));
    let c = s.correct(record("bank", "c1", &a, 4), t0()).await.unwrap().unwrap();
    assert_eq!((c.applied, c.stored_version), (Applied::Replaced, 4));

    assert_eq!(s.delete("bank", "c1", "FRAUD", "note", t0()).await.unwrap(), Deleted::Removed(4));
    assert_eq!(s.delete("bank", "c1", "FRAUD", "note", t0()).await.unwrap(), Deleted::NotFound);
    assert_eq!(s.get("bank", "c1").await.unwrap(), None);
    assert_eq!(s.subject_records(&a).await.unwrap(), vec![]);
    assert_eq!(s.correct(record("bank", "c1", &a, 9), t0()).await.unwrap(), None, "no correcting the deleted");
    let r = s.furnish(vec![record("bank", "c1", &a, 4)], t0()).await.unwrap();
    assert_eq!(applied(&r), [(Applied::IgnoredStale, 0)], "the tombstone keeps a stale re-send out");
    let r = s.furnish(vec![record("bank", "c1", &other, 5)], t0()).await.unwrap();
    assert_eq!(applied(&r), [(Applied::Created, 5)], "after deletion a record may be furnished anew");
    assert_eq!(s.subject_records(&other).await.unwrap(), vec![record("bank", "c1", &other, 5)]);
    s.close().await.unwrap();
}

/// Every change writes exactly its audit entry in the same write; nothing else moves the log.
pub async fn each_change_logs_one_entry(b: &dyn Backend) {
    let s = b.open().await;
    let a = subject(3);
    let entries = |from| {
        let s = s.clone();
        async move {
            s.audit_entries(from, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|(_, b)| Entry::from_bytes(&b).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let r = s.furnish(vec![record("bank", "x", &a, 1), record("bank", "y", &a, 1)], t0()).await.unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(s.audit_size().await.unwrap(), 1);
    let e = &entries(0).await[0];
    assert_eq!(
        (e.action, e.actor.as_str(), e.record_count, e.detail.as_str()),
        (Action::RecordFurnished, "bank", 2, "x,y")
    );

    s.furnish(vec![record("bank", "x", &a, 1)], t0()).await.unwrap();
    let e = &entries(1).await[0];
    assert_eq!((e.record_count, e.outcome.as_str()), (0, "accepted=0 not_stored=1"), "stale re-sends are logged too");

    s.correct(record("bank", "x", &a, 2), t0()).await.unwrap();
    s.delete("bank", "y", "FURNISHED_IN_ERROR", "", t0()).await.unwrap();
    let (i, e) = inquiry(&a, 0, "q-1");
    s.add_inquiry(i, e).await.unwrap();
    let first = s.append_audit(vec![entry(1), entry(2)]).await.unwrap();
    assert_eq!(first, 5);
    let all = entries(0).await;
    let actions: Vec<Action> = all.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            Action::RecordFurnished,
            Action::RecordFurnished,
            Action::RecordCorrected,
            Action::RecordDeleted,
            Action::QueryInbound,
            Action::ScoreServed,
            Action::ScoreServed
        ]
    );
    assert_eq!(all[2].detail, "x v2");
    assert_eq!((all[3].detail.as_str(), all[3].subject_id.as_str()), ("y v1", a.as_str()));
    assert!(all.iter().all(|e| !e.detail.contains("CNY")), "entries name keys, never contents");
    // A refused change (no live record) writes nothing.
    s.delete("bank", "y", "FRAUD", "", t0()).await.unwrap();
    s.correct(record("bank", "zz", &a, 3), t0()).await.unwrap();
    assert_eq!(s.audit_size().await.unwrap(), 7);
    s.close().await.unwrap();
}

/// A subject's records list in (furnisher, record id) order, page by page, with no repeats
/// even when records arrive between pages; deleted records and other subjects stay out.
pub async fn subject_listing_pages_by_key(b: &dyn Backend) {
    let s = b.open().await;
    let (a, other) = (subject(4), subject(5));
    let mut batch = Vec::new();
    for f in ["bank", "bikeshare", "payapp"] {
        for n in 0..9 {
            batch.push(record(f, &format!("r{n:02}"), &a, 1));
        }
    }
    batch.push(record("bank", "someone-else", &other, 1));
    s.furnish(batch, t0()).await.unwrap();
    s.delete("bikeshare", "r03", "FRAUD", "", t0()).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<RecordCursor> = None;
    let mut pages = 0;
    loop {
        let page = s.list_subject(&a, cursor.clone(), 7).await.unwrap();
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|r| (r.record.furnisher.clone(), r.record.record_id.clone())));
        pages += 1;
        if pages == 1 {
            // Arrives before the cursor: must not shift the next page.
            s.furnish(vec![record("bank", "a-new", &a, 1)], t0()).await.unwrap();
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no record listed twice: {seen:?}");
    assert_eq!(seen.len(), 26, "27 furnished, one deleted; the late arrival sorts before the cursor");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "listing order is (furnisher, record id)");
    assert!(!seen.contains(&("bikeshare".into(), "r03".into())));
    assert_eq!(s.subject_records(&a).await.unwrap().len(), 27);
    let empty = s.list_subject(&subject(9), None, 10).await.unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());
    let exact = s.list_subject(&other, None, 1).await.unwrap();
    assert_eq!(exact.items.len(), 1);
    s.close().await.unwrap();
}

/// Inquiries list newest first; a page token is a key, so an inquiry arriving between pages
/// is never listed again on the next page.
pub async fn inquiries_newest_first_page_by_key(b: &dyn Backend) {
    let s = b.open().await;
    let (a, other) = (subject(6), subject(7));
    for n in 0..5 {
        let (i, e) = inquiry(&a, n, &format!("q{n}"));
        s.add_inquiry(i, e).await.unwrap();
    }
    let (i, e) = inquiry(&other, 10, "x");
    s.add_inquiry(i, e).await.unwrap();
    // Two at the same instant order by query id.
    let (i, e) = inquiry(&a, 2, "q2b");
    s.add_inquiry(i, e).await.unwrap();

    let ids = |p: &crate::storage::Page<Inquiry, InquiryCursor>| {
        p.items.iter().map(|i| i.query_id.clone()).collect::<Vec<_>>()
    };
    let p1 = s.subject_inquiries(&a, None, 2).await.unwrap();
    assert_eq!(ids(&p1), ["q4", "q3"]);
    // A new inquiry arrives: it is newer than everything, so it does not shift page 2.
    let (i, e) = inquiry(&a, 60, "q-late");
    s.add_inquiry(i, e).await.unwrap();
    let p2 = s.subject_inquiries(&a, p1.next.clone(), 2).await.unwrap();
    assert_eq!(ids(&p2), ["q2b", "q2"]);
    let p3 = s.subject_inquiries(&a, p2.next.clone(), 2).await.unwrap();
    assert_eq!(ids(&p3), ["q1", "q0"]);
    assert!(p3.next.is_none(), "exactly full last page has no next token");
    let all = s.subject_inquiries(&a, None, 100).await.unwrap();
    assert_eq!(ids(&all), ["q-late", "q4", "q3", "q2b", "q2", "q1", "q0"]);
    assert!(all.next.is_none());
    assert_eq!(all.items[0].time, t0() + Duration::seconds(60));
    assert_eq!(s.subject_inquiries(&a, None, 0).await.unwrap().items.len(), 0);
    assert_eq!(ids(&s.subject_inquiries(&other, None, 10).await.unwrap()), ["x"]);
    s.close().await.unwrap();
}

/// The log is an RFC 6962 tree: roots match a tree built from the entries alone, and every
/// inclusion and consistency proof verifies.
pub async fn audit_appends_and_proofs(b: &dyn Backend) {
    let s = b.open().await;
    assert_eq!(s.audit_root(0).await.unwrap(), merkle::empty_root());
    for n in 0..37 {
        let batch: Vec<Entry> = (0..(n % 3) + 1).map(|k| entry(n * 10 + k)).collect();
        s.append_audit(batch).await.unwrap();
    }
    let size = s.audit_size().await.unwrap();
    assert_eq!(size, (0..37).map(|n| (n % 3) as u64 + 1).sum::<u64>());
    let mut leaves = Vec::new();
    let mut from = 0;
    loop {
        let page = s.audit_entries(from, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        for (i, bytes) in page {
            assert_eq!(i, leaves.len() as u64, "entries come in index order without gaps");
            leaves.push(bytes);
        }
        from = leaves.len() as u64;
    }
    assert_eq!(leaves.len() as u64, size);
    let mut roots = vec![merkle::empty_root()];
    let mut stream = merkle::StreamingRoot::default();
    for l in &leaves {
        stream.push(l);
        roots.push(stream.root());
    }
    for n in [1, 2, 3, 7, 8, 9, 31, 32, 33, size] {
        assert_eq!(s.audit_root(n).await.unwrap(), roots[n as usize], "root at {n}");
    }
    for (index, tree) in [(0, 1), (0, size), (5, 8), (40, size), (size - 1, size)] {
        let proof = s.audit_inclusion(index, tree).await.unwrap();
        let leaf = merkle::leaf_hash(&leaves[index as usize]);
        assert!(
            merkle::verify_inclusion(&leaf, index, tree, &proof, &roots[tree as usize]),
            "inclusion {index} in {tree}"
        );
    }
    for (m, n) in [(1, 2), (3, 7), (8, 8), (8, 33), (size - 1, size)] {
        let proof = s.audit_consistency(m, n).await.unwrap();
        assert!(
            merkle::verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &proof),
            "consistency {m}..{n}"
        );
    }
    s.close().await.unwrap();
}

/// Concurrent writers make one gap-free log with every entry exactly once.
pub async fn concurrent_appends_make_one_log(b: &dyn Backend) {
    let s = b.open().await;
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let mut e = entry(n);
                    e.query_id = format!("w{w}-{n}");
                    s.append_audit(vec![e]).await.unwrap();
                    if n % 5 == 0 {
                        s.sync().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    s.sync().await.unwrap();
    let all = s.audit_entries(0, 1000).await.unwrap();
    assert_eq!(all.len(), 200);
    let ids: HashSet<String> = all.iter().map(|(_, b)| Entry::from_bytes(b).unwrap().query_id).collect();
    assert_eq!(ids.len(), 200, "every entry exactly once");
    let mut stream = merkle::StreamingRoot::default();
    all.iter().for_each(|(_, b)| stream.push(b));
    assert_eq!(s.durable_head().await.unwrap().root, stream.root());
    s.close().await.unwrap();
}

/// What was synced survives closing and reopening (while the closed handle still exists):
/// records, tombstones, inquiries, the log.
pub async fn durable_after_reopen(b: &dyn Backend) {
    let a = subject(8);
    let head = {
        let s = b.open().await;
        s.furnish(vec![record("bank", "k1", &a, 3), record("bank", "k2", &a, 1)], t0()).await.unwrap();
        s.delete("bank", "k2", "FRAUD", "", t0()).await.unwrap();
        let (i, e) = inquiry(&a, 1, "q-r");
        s.add_inquiry(i, e).await.unwrap();
        s.sync().await.unwrap();
        let head = s.durable_head().await.unwrap();
        s.close().await.unwrap();
        (head, s)
    };
    // The old handle still exists: closing alone must have let go of the backend's files.
    let (head, _old) = head;
    let s = b.open().await;
    assert_eq!(s.get("bank", "k1").await.unwrap().unwrap().record, record("bank", "k1", &a, 3));
    assert_eq!(s.get("bank", "k2").await.unwrap(), None);
    let r = s.furnish(vec![record("bank", "k2", &a, 1)], t0()).await.unwrap();
    assert_eq!(r[0].applied, Applied::IgnoredStale, "the tombstone survived");
    assert_eq!(s.subject_inquiries(&a, None, 10).await.unwrap().items.len(), 1);
    assert_eq!(s.audit_root(head.size).await.unwrap(), head.root);
    assert!(s.durable_head().await.unwrap().size >= head.size);
    s.close().await.unwrap();
}

/// After a sync, the durable head covers everything written before it, and its root is the
/// log's root at that size; a durable append is covered when it returns.
pub async fn durable_head_covers_synced_writes(b: &dyn Backend) {
    let s = b.open().await;
    s.append_audit(vec![entry(1), entry(2), entry(3)]).await.unwrap();
    let before = s.durable_head().await.unwrap().size;
    assert!(before <= 3);
    s.sync().await.unwrap();
    let head = s.durable_head().await.unwrap();
    assert_eq!(head.size, 3);
    assert_eq!(head.root, s.audit_root(3).await.unwrap());
    assert_eq!(s.append_audit_durably(vec![entry(4), entry(5)]).await.unwrap(), 3);
    let head = s.durable_head().await.unwrap();
    assert_eq!(head.size, 5, "durable when it returns, with no separate sync");
    assert_eq!(head.root, s.audit_root(5).await.unwrap());
    s.close().await.unwrap();
    assert!(s.append_audit(vec![entry(6)]).await.is_err(), "a closed store takes no writes");
}

fn put(space: Space, key: &str, value: Option<&str>) -> (Space, String, Option<Vec<u8>>) {
    (space, key.to_owned(), value.map(|v| v.as_bytes().to_vec()))
}

/// State changes apply only when every expectation holds (absent included), all or nothing,
/// with their entries (a change without one is refused); scans keep to their space and prefix, in key order, strictly after the
/// cursor; everything survives a reopen.
pub async fn state_is_compare_and_set_and_scans_by_prefix(b: &dyn Backend) {
    let s = b.open().await;
    // A change that logs nothing is refused, and applies nothing, on every backend.
    let unlogged = StateChange { expect: vec![], put: vec![put(Space::Dispute, "quiet", Some("x"))], entries: vec![] };
    assert!(matches!(s.state_write(unlogged).await, Err(StoreError::Unsupported(_))));
    assert_eq!(s.state_get(Space::Dispute, "quiet").await.unwrap(), None);
    let create = |key: &str, value: &str| StateChange {
        expect: vec![put(Space::Dispute, key, None)],
        put: vec![put(Space::Dispute, key, Some(value)), put(Space::Outbox, key, Some("notice"))],
        entries: vec![entry(1)],
    };
    assert!(s.state_write(create("a/1", "v1")).await.unwrap());
    assert!(!s.state_write(create("a/1", "other")).await.unwrap(), "the key exists: not applied");
    assert_eq!(s.audit_size().await.unwrap(), 1, "a change not applied logs nothing");
    assert_eq!(s.state_get(Space::Dispute, "a/1").await.unwrap().as_deref(), Some(&b"v1"[..]));
    // A stale expectation fails the whole change, including its other puts.
    let stale = StateChange {
        expect: vec![put(Space::Dispute, "a/1", Some("v0"))],
        put: vec![put(Space::Dispute, "a/1", Some("v2")), put(Space::Mark, "x", Some("m"))],
        entries: vec![entry(2)],
    };
    assert!(!s.state_write(stale).await.unwrap());
    assert_eq!(s.state_get(Space::Mark, "x").await.unwrap(), None);
    let update = StateChange {
        expect: vec![put(Space::Dispute, "a/1", Some("v1"))],
        put: vec![put(Space::Dispute, "a/1", Some("v2")), put(Space::Outbox, "a/1", None)],
        entries: vec![entry(3), entry(4)],
    };
    assert!(s.state_write(update).await.unwrap());
    assert_eq!(s.audit_size().await.unwrap(), 3);
    assert_eq!(s.state_get(Space::Outbox, "a/1").await.unwrap(), None, "removed");
    for k in ["b/2", "a/3", "a/2", "ab"] {
        assert!(s.state_write(create(k, k)).await.unwrap());
    }
    let keys = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(s.state_scan(Space::Dispute, "a/", None, 10).await.unwrap()), ["a/1", "a/2", "a/3"]);
    assert_eq!(keys(s.state_scan(Space::Dispute, "a/", Some("a/1"), 1).await.unwrap()), ["a/2"]);
    assert_eq!(keys(s.state_scan(Space::Dispute, "", Some("a/3"), 10).await.unwrap()), ["ab", "b/2"]);
    assert_eq!(keys(s.state_scan(Space::Outbox, "", None, 10).await.unwrap()), ["a/2", "a/3", "ab", "b/2"]);
    assert!(s.state_scan(Space::Mark, "", None, 10).await.unwrap().is_empty(), "spaces never mix");
    s.sync().await.unwrap();
    s.close().await.unwrap();
    let s = b.open().await;
    assert_eq!(s.state_get(Space::Dispute, "a/1").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(s.state_scan(Space::Dispute, "", None, 10).await.unwrap().len(), 5);
    s.close().await.unwrap();
}

/// The purge's reads: every live record in key order after a cursor, and inquiries older than
/// a time; purging deletes those still there and logs one entry per deletion (keys only).
pub async fn retention_scans_and_purges_log_each_deletion(b: &dyn Backend) {
    let s = b.open().await;
    let (a, c) = (subject(20), subject(21));
    s.furnish(vec![record("bank", "k1", &a, 1), record("bank", "k2", &c, 1), record("bank", "k3", &a, 1)], t0())
        .await
        .unwrap();
    s.furnish(vec![record("alpha", "z", &c, 1)], t0()).await.unwrap();
    s.delete("bank", "k2", "FRAUD", "", t0()).await.unwrap();
    let first = s.scan_records(None, 2).await.unwrap();
    let ids: Vec<_> = first.iter().map(|r| (r.record.furnisher.as_str(), r.record.record_id.as_str())).collect();
    assert_eq!(ids, [("alpha", "z"), ("bank", "k1")]);
    let after = RecordCursor { furnisher: "bank".into(), record_id: "k1".into() };
    let rest = s.scan_records(Some(after), 10).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.record.record_id.as_str()).collect::<Vec<_>>(), ["k3"], "tombstones skipped");
    for n in 0..4 {
        let (i, e) = inquiry(if n % 2 == 0 { &a } else { &c }, n * 100, &format!("q{n}"));
        s.add_inquiry(i, e).await.unwrap();
    }
    let old = s.inquiries_before(t0() + Duration::seconds(150), 10).await.unwrap();
    assert_eq!(old.iter().map(|i| i.query_id.as_str()).collect::<Vec<_>>(), ["q0", "q1"], "oldest first");
    let size = s.audit_size().await.unwrap();
    let mut again = old.clone();
    again.push(old[0].clone());
    assert_eq!(s.purge_inquiries(again, t0()).await.unwrap(), 2, "each deleted once");
    assert_eq!(s.purge_inquiries(old, t0()).await.unwrap(), 0, "already gone");
    assert_eq!(s.audit_size().await.unwrap(), size + 2, "one entry per deletion");
    let logged = s.audit_entries(size, 2).await.unwrap();
    let e = Entry::from_bytes(&logged[0].1).unwrap();
    assert_eq!((e.action, e.query_id.as_str(), e.outcome.as_str()), (Action::InquiryPurged, "q0", "retention_expired"));
    assert_eq!(s.subject_inquiries(&a, None, 10).await.unwrap().items.len(), 1);
    assert!(s.inquiries_before(t0() + Duration::seconds(150), 10).await.unwrap().is_empty());
    s.close().await.unwrap();
}
