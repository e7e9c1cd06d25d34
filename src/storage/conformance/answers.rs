//! The conformance checks of answering a peer: one write that reads, records and logs; the
//! window the read is bounded by; a protection the gate cannot decode.

use super::*;

/// Answering a peer reads the responder's live records of the subject (no one else's, no
/// deleted ones), logs the inquiry with that count, and returns the inquiries newest first with
/// this one included, all in one write that moves the log by exactly one entry.
pub async fn answering_an_inquiry_is_one_write(b: &dyn Backend) {
    let s = b.open().await;
    let (a, other) = (subject(10), subject(11));
    s.furnish(vec![record("bank", "b1", &a, 1), record("bank", "b2", &a, 1), record("bank", "x", &other, 1)], t0())
        .await
        .unwrap();
    s.furnish(vec![record("payapp", "p1", &a, 1)], t0()).await.unwrap();
    s.delete("bank", "b2", "FRAUD", "", t0()).await.unwrap();
    for n in 0..3 {
        let (i, e) = inquiry(&a, n, &format!("old-{n}"));
        s.add_inquiry(i, e).await.unwrap();
    }
    let size = s.audit_size().await.unwrap();
    let (i, mut e) = inquiry(&a, 30, "now");
    e.record_count = 99;
    let answer = s.answer_inquiry(AnswerQuery::new(i.clone(), e, 3)).await.unwrap();
    assert_eq!(answer.records, vec![record("bank", "b1", &a, 1)], "the responder's live records only");
    let ids: Vec<_> = answer.inquiries.iter().map(|i| i.query_id.as_str()).collect();
    assert_eq!(ids, ["now", "old-2", "old-1"], "newest first, this one included, at most 3");
    assert_eq!(s.audit_size().await.unwrap(), size + 1);
    let (_, bytes) = s.audit_entries(size, 1).await.unwrap().remove(0);
    let logged = Entry::from_bytes(&bytes).unwrap();
    assert_eq!((logged.query_id.as_str(), logged.record_count), ("now", 1), "the count answered is logged");
    let recorded = Inquiry { log_index: Some(size), ..i };
    assert_eq!(s.subject_inquiries(&a, None, 10).await.unwrap().items[0], recorded, "stored with its entry's index");
    assert_eq!(answer.inquiries[0], recorded);

    // The answer's filter sees each record's flag, read in the same write; what it drops is
    // neither answered nor counted in the entry.
    let flag = StateChange {
        expect: vec![],
        put: vec![put(Space::Mark, &crate::storage::mark_key(&a, "bank", "b1"), Some("hide"))],
        entries: vec![entry(9)],
    };
    assert!(s.state_write(flag).await.unwrap());
    let hide: crate::storage::RecordFilter = std::sync::Arc::new(|_, mark| mark != Some(&b"hide"[..]));
    let size = s.audit_size().await.unwrap();
    let (i, e) = inquiry(&a, 40, "hidden");
    assert!(s
        .answer_inquiry(AnswerQuery { show: hide, ..AnswerQuery::new(i, e, 3) })
        .await
        .unwrap()
        .records
        .is_empty());
    let (_, bytes) = s.audit_entries(size, 1).await.unwrap().remove(0);
    assert_eq!(Entry::from_bytes(&bytes).unwrap().record_count, 0);

    // The gate sees the subject's protection, read in the same write, and a refusal writes
    // nothing at all.
    let frozen =
        StateChange { expect: vec![], put: vec![put(Space::Protection, &a, Some("frozen"))], entries: vec![entry(10)] };
    assert!(s.state_write(frozen).await.unwrap());
    let (size, inquiries) =
        (s.audit_size().await.unwrap(), s.subject_inquiries(&a, None, 100).await.unwrap().items.len());
    let gate: crate::storage::AnswerGate = std::sync::Arc::new(|p| {
        if p == Some(&b"frozen"[..]) {
            Err(GateError::Refused(Refusal("frozen")))
        } else {
            Ok(())
        }
    });
    let (i, e) = inquiry(&a, 50, "refused");
    let refused = s.answer_inquiry(AnswerQuery { gate, ..AnswerQuery::new(i, e, 3) }).await.unwrap();
    assert_eq!((refused.refused, refused.records.len()), (Some(Refusal("frozen")), 0));
    assert_eq!(s.audit_size().await.unwrap(), size, "nothing logged");
    assert_eq!(s.subject_inquiries(&a, None, 100).await.unwrap().items.len(), inquiries, "nothing recorded");
    let (i, e) = inquiry(&a, 60, "open");
    let answered = s.answer_inquiry(AnswerQuery::new(i, e, 3)).await.unwrap();
    assert_eq!(answered.protection.as_deref(), Some(&b"frozen"[..]), "the protection comes with the answer");
    s.close().await.unwrap();
}

/// A durable answer is the same answer, and the durable head covers its entry when it returns
/// (what a peer may be told), with no separate sync; a refusal by the gate is durable nothing.
pub async fn a_durable_answer_is_durable_when_it_returns(b: &dyn Backend) {
    let s = b.open().await;
    let a = subject(12);
    s.furnish(vec![record("bank", "b1", &a, 1)], t0()).await.unwrap();
    for n in 0..3 {
        let size = s.audit_size().await.unwrap();
        let (i, e) = inquiry(&a, n, &format!("q-{n}"));
        let answer = s.answer_inquiry_durably(AnswerQuery::new(i, e, 10)).await.unwrap();
        assert_eq!(answer.records, vec![record("bank", "b1", &a, 1)]);
        assert_eq!(answer.inquiries.len(), n as usize + 1);
        let head = s.durable_head().await.unwrap();
        assert_eq!(head.size, size + 1, "durable when it returns");
        assert_eq!(head.root, s.audit_root(size + 1).await.unwrap());
    }
    let gate: crate::storage::AnswerGate = std::sync::Arc::new(|_| Err(GateError::Refused(Refusal("no"))));
    let size = s.audit_size().await.unwrap();
    let (i, e) = inquiry(&a, 9, "refused");
    let refused = s.answer_inquiry_durably(AnswerQuery { gate, ..AnswerQuery::new(i, e, 10) }).await.unwrap();
    assert_eq!(refused.refused, Some(Refusal("no")));
    assert_eq!(s.durable_head().await.unwrap().size, size, "nothing written, nothing to sync");
    s.close().await.unwrap();
    let s = b.open().await;
    assert_eq!(s.subject_inquiries(&a, None, 10).await.unwrap().items.len(), 3, "kept across a reopen");
    s.close().await.unwrap();
}

/// An answer bounded by a window's start returns (and reads) only the inquiries at or after it,
/// newest first, the one it records included, still at most the limit.
pub async fn an_answer_reads_from_the_window_start(b: &dyn Backend) {
    let s = b.open().await;
    let a = subject(12);
    for n in 0..6 {
        let (i, e) = inquiry(&a, n, &format!("old-{n}"));
        s.add_inquiry(i, e).await.unwrap();
    }
    let (i, e) = inquiry(&a, 30, "now");
    let since = Some(t0() + Duration::seconds(3));
    let answer = s.answer_inquiry(AnswerQuery { since, ..AnswerQuery::new(i, e, 10) }).await.unwrap();
    let ids: Vec<_> = answer.inquiries.iter().map(|i| i.query_id.as_str()).collect();
    assert_eq!(ids, ["now", "old-5", "old-4", "old-3"], "from the window's start, newest first");
    let (i, e) = inquiry(&a, 31, "later");
    let answer = s.answer_inquiry(AnswerQuery { since, ..AnswerQuery::new(i, e, 2) }).await.unwrap();
    let ids: Vec<_> = answer.inquiries.iter().map(|i| i.query_id.as_str()).collect();
    assert_eq!(ids, ["later", "now"], "and never past the limit");
}

/// A protection value the gate cannot decode is damage to the store: the answer fails as
/// [`StoreError::Corrupt`] naming the subject, writes nothing, and is not a refusal.
pub async fn an_undecodable_protection_fails_the_answer_as_corrupt(b: &dyn Backend) {
    let s = b.open().await;
    let a = subject(12);
    s.furnish(vec![record("bank", "b1", &a, 1)], t0()).await.unwrap();
    let damaged =
        StateChange { expect: vec![], put: vec![put(Space::Protection, &a, Some("garbage"))], entries: vec![entry(1)] };
    assert!(s.state_write(damaged).await.unwrap());
    let (size, inquiries) =
        (s.audit_size().await.unwrap(), s.subject_inquiries(&a, None, 100).await.unwrap().items.len());
    let gate: crate::storage::AnswerGate = std::sync::Arc::new(|p| match p {
        Some(b"garbage") => Err(GateError::Undecodable("not a protection".into())),
        _ => Ok(()),
    });
    let (i, e) = inquiry(&a, 10, "damaged");
    match s.answer_inquiry(AnswerQuery { gate, ..AnswerQuery::new(i, e, 3) }).await {
        Err(StoreError::Corrupt { key, why }) => {
            assert!(key.contains(&a), "names the subject: {key}");
            assert_eq!(why, "not a protection");
        }
        other => panic!("an undecodable protection must fail the answer as corrupt: {other:?}"),
    }
    assert_eq!(s.audit_size().await.unwrap(), size, "nothing logged");
    assert_eq!(s.subject_inquiries(&a, None, 100).await.unwrap().items.len(), inquiries, "nothing recorded");
    // The store still answers (the failed answer left nothing behind, on any connection).
    let (i, e) = inquiry(&a, 20, "after");
    let answered = s.answer_inquiry(AnswerQuery::new(i, e, 3)).await.unwrap();
    assert_eq!(answered.records, vec![record("bank", "b1", &a, 1)]);
    s.close().await.unwrap();
}

/// A change made first (a consent nonce spent on the query) goes into the answer's own write:
/// its entries before the inquiry's, the inquiry indexed after them. When its expectations do
/// not hold (the nonce already spent) nothing at all is written, and a gate's refusal leaves it
/// unmade. A change that logs nothing is refused.
pub async fn a_change_made_first_is_part_of_the_answer(b: &dyn Backend) {
    let s = b.open().await;
    let a = subject(13);
    s.furnish(vec![record("bank", "b1", &a, 1)], t0()).await.unwrap();
    let spend = |n: usize| StateChange {
        expect: vec![(Space::ConsentNonce, "000000000100/nonce-1".into(), None)],
        put: vec![put(Space::ConsentNonce, "000000000100/nonce-1", Some("q-1"))],
        entries: vec![entry(n)],
    };
    let size = s.audit_size().await.unwrap();
    let (i, e) = inquiry(&a, 1, "q-1");
    let answer = s.answer_inquiry_durably(AnswerQuery { first: Some(spend(1)), ..AnswerQuery::new(i.clone(), e, 10) });
    let answer = answer.await.unwrap();
    assert!(!answer.unmet);
    assert_eq!(answer.records, vec![record("bank", "b1", &a, 1)]);
    assert_eq!(s.audit_size().await.unwrap(), size + 2, "the change's entry and the inquiry's");
    assert_eq!(s.durable_head().await.unwrap().size, size + 2, "both durable when it returns");
    let logged: Vec<_> =
        s.audit_entries(size, 2).await.unwrap().into_iter().map(|(_, b)| Entry::from_bytes(&b).unwrap()).collect();
    assert_eq!((logged[0].clone(), logged[1].query_id.as_str()), (entry(1), "q-1"), "the change's entry first");
    let recorded = Inquiry { log_index: Some(size + 1), ..i };
    assert_eq!(s.subject_inquiries(&a, None, 10).await.unwrap().items, vec![recorded]);
    assert_eq!(s.state_get(Space::ConsentNonce, "000000000100/nonce-1").await.unwrap().as_deref(), Some(&b"q-1"[..]));

    // Spent already: nothing written, not even the inquiry.
    let (i, e) = inquiry(&a, 2, "q-2");
    let unmet = s.answer_inquiry(AnswerQuery { first: Some(spend(2)), ..AnswerQuery::new(i, e, 10) }).await.unwrap();
    assert!(unmet.unmet);
    assert!(unmet.records.is_empty() && unmet.inquiries.is_empty() && unmet.refused.is_none());
    assert_eq!(s.audit_size().await.unwrap(), size + 2, "nothing logged");
    assert_eq!(s.subject_inquiries(&a, None, 10).await.unwrap().items.len(), 1, "nothing recorded");

    // Refused at the gate: the change is not made.
    let fresh = StateChange {
        expect: vec![(Space::ConsentNonce, "000000000100/nonce-2".into(), None)],
        put: vec![put(Space::ConsentNonce, "000000000100/nonce-2", Some("q-3"))],
        entries: vec![entry(3)],
    };
    let gate: crate::storage::AnswerGate = std::sync::Arc::new(|_| Err(GateError::Refused(Refusal("no"))));
    let (i, e) = inquiry(&a, 3, "q-3");
    let refused = s.answer_inquiry(AnswerQuery { gate, first: Some(fresh.clone()), ..AnswerQuery::new(i, e, 10) });
    assert_eq!(refused.await.unwrap().refused, Some(Refusal("no")));
    assert_eq!(s.state_get(Space::ConsentNonce, "000000000100/nonce-2").await.unwrap(), None, "left unspent");
    assert_eq!(s.audit_size().await.unwrap(), size + 2);

    let unlogged = StateChange { entries: vec![], ..fresh };
    let (i, e) = inquiry(&a, 4, "q-4");
    let answered = s.answer_inquiry(AnswerQuery { first: Some(unlogged), ..AnswerQuery::new(i, e, 10) }).await;
    assert!(matches!(answered, Err(StoreError::Unsupported(_))), "{answered:?}");
    assert_eq!(s.audit_size().await.unwrap(), size + 2);
    s.close().await.unwrap();
}
