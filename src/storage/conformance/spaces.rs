//! The conformance checks of the state spaces the record locator adds: every space keeps its
//! own keys, and a person's holdings are one prefix scan, compare-and-set and durable.

use super::*;

/// The same key in every space holds that space's own value: no space reads another's, the
/// locator's holdings and progress marks included.
pub async fn every_space_keeps_its_own_keys(b: &dyn Backend) {
    let s = b.open().await;
    let puts = Space::ALL.iter().map(|sp| put(*sp, "same/key", Some(sp.as_str()))).collect();
    assert!(s.state_write(StateChange { expect: vec![], put: puts, entries: vec![entry(1)] }).await.unwrap());
    for sp in Space::ALL {
        assert_eq!(s.state_get(sp, "same/key").await.unwrap().as_deref(), Some(sp.as_str().as_bytes()), "{sp:?}");
        assert_eq!(s.state_scan(sp, "same/", None, 10).await.unwrap().len(), 1, "{sp:?}");
    }
    s.close().await.unwrap();
}

/// A person's holdings (`subject/member`) are found by one prefix scan and never include
/// another person's; a holding is replaced only by a change expecting what it read; all of it
/// survives a reopen.
pub async fn holdings_scan_by_person_and_survive_reopen(b: &dyn Backend) {
    let s = b.open().await;
    let (a, other) = (subject(20), subject(21));
    let held = |v: u64| format!("{{\"v\":{v},\"h\":true}}");
    let mut puts = Vec::new();
    for m in ["m0001", "m0002", "m2083"] {
        puts.push(put(Space::Holding, &format!("{a}/{m}"), Some(&held(1))));
    }
    puts.push(put(Space::Holding, &format!("{other}/m0001"), Some(&held(1))));
    assert!(s.state_write(StateChange { expect: vec![], put: puts, entries: vec![entry(1)] }).await.unwrap());
    let found = s.state_scan(Space::Holding, &format!("{a}/"), None, 64).await.unwrap();
    let members: Vec<&str> = found.iter().map(|(k, _)| k.rsplit('/').next().unwrap_or_default()).collect();
    assert_eq!(members, ["m0001", "m0002", "m2083"]);
    let key = format!("{a}/m0002");
    let stale = StateChange {
        expect: vec![put(Space::Holding, &key, Some(&held(0)))],
        put: vec![put(Space::Holding, &key, Some("{\"v\":2,\"h\":false}"))],
        entries: vec![entry(2)],
    };
    assert!(!s.state_write(stale).await.unwrap(), "a holding changed since it was read is not replaced");
    let newer = StateChange {
        expect: vec![put(Space::Holding, &key, Some(&held(1)))],
        put: vec![put(Space::Holding, &key, Some("{\"v\":2,\"h\":false}"))],
        entries: vec![entry(3)],
    };
    assert!(s.state_write(newer).await.unwrap());
    s.sync().await.unwrap();
    s.close().await.unwrap();
    let s = b.open().await;
    assert_eq!(s.state_get(Space::Holding, &key).await.unwrap().as_deref(), Some(&b"{\"v\":2,\"h\":false}"[..]));
    assert_eq!(s.state_scan(Space::Holding, &format!("{a}/"), None, 64).await.unwrap().len(), 3);
    s.close().await.unwrap();
}

/// A consent nonce is recorded only where none is (a second spend of the same nonce fails the
/// compare-and-set, writing nothing), nonces scan from the earliest expiry (their keys start
/// with the zero-padded expiry), removing the expired ones leaves the rest, and a person's
/// report count is replaced only from the value read; all of it survives a reopen.
pub async fn consent_nonces_are_spent_once_and_scan_in_expiry_order(b: &dyn Backend) {
    let s = b.open().await;
    let spend = |key: &str, query: &str, n: usize| StateChange {
        expect: vec![put(Space::ConsentNonce, key, None)],
        put: vec![put(Space::ConsentNonce, key, Some(query))],
        entries: vec![entry(n)],
    };
    let (late, early) = ("001800000000/bbbb", "001700000000/aaaa");
    assert!(s.state_write(spend(late, "q-1", 1)).await.unwrap());
    assert!(!s.state_write(spend(late, "q-2", 2)).await.unwrap(), "a nonce is spent once");
    assert_eq!(s.state_get(Space::ConsentNonce, late).await.unwrap().as_deref(), Some(&b"q-1"[..]));
    assert!(s.state_write(spend(early, "q-3", 3)).await.unwrap());
    let keys: Vec<String> =
        s.state_scan(Space::ConsentNonce, "", None, 10).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [early, late]);
    let purge =
        StateChange { expect: vec![], put: vec![put(Space::ConsentNonce, early, None)], entries: vec![entry(4)] };
    assert!(s.state_write(purge).await.unwrap());
    let key = format!("{}/bank", subject(30));
    let count = |old: Option<&str>, new: &str, n: usize| StateChange {
        expect: vec![put(Space::ReportCount, &key, old)],
        put: vec![put(Space::ReportCount, &key, Some(new))],
        entries: vec![entry(n)],
    };
    assert!(s.state_write(count(None, "[1]", 5)).await.unwrap());
    assert!(!s.state_write(count(None, "[2]", 6)).await.unwrap(), "a count changed since read is not replaced");
    assert!(s.state_write(count(Some("[1]"), "[1,2]", 7)).await.unwrap());
    s.sync().await.unwrap();
    s.close().await.unwrap();
    let s = b.open().await;
    let left: Vec<String> =
        s.state_scan(Space::ConsentNonce, "", None, 10).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, [late]);
    assert_eq!(s.state_get(Space::ReportCount, &key).await.unwrap().as_deref(), Some(&b"[1,2]"[..]));
    s.close().await.unwrap();
}

/// The stored complete subtrees read as C2SP hash tiles: level 0 is the leaf hashes, level 8
/// the roots of each 256 leaves, a partial range reads only what is complete; a witness's
/// record of a peer's log is replaced only by a change expecting what it read, and survives a
/// reopen.
pub async fn subtrees_read_as_tiles_and_witness_state_survives(b: &dyn Backend) {
    let s = b.open().await;
    let entries: Vec<Entry> = (0..600).map(entry).collect();
    for chunk in entries.chunks(100) {
        s.append_audit(chunk.to_vec()).await.unwrap();
    }
    let leaves: Vec<Vec<u8>> = s.audit_entries(0, 600).await.unwrap().into_iter().map(|(_, l)| l).collect();
    let tile0 = s.audit_nodes(0, 0, 256).await.unwrap();
    assert_eq!(tile0.len(), 256);
    assert!(tile0.iter().zip(&leaves).all(|(h, l)| *h == merkle::leaf_hash(l)));
    let partial = s.audit_nodes(0, 512, 88).await.unwrap();
    assert_eq!(partial[87], merkle::leaf_hash(&leaves[599]));
    let level8 = s.audit_nodes(8, 0, 2).await.unwrap();
    for (k, h) in level8.iter().enumerate() {
        let mut root = merkle::StreamingRoot::default();
        leaves[k * 256..(k + 1) * 256].iter().for_each(|l| root.push(l));
        assert_eq!(*h, root.root(), "level 8 node {k}");
    }
    assert!(matches!(s.audit_nodes(8, 2, 1).await, Err(StoreError::Corrupt { .. })), "an incomplete subtree");

    let key = "fed.test/institution/bank";
    let first = put(Space::Witness, key, Some("{\"size\":10}"));
    assert!(s
        .state_write(StateChange { expect: vec![], put: vec![first.clone()], entries: vec![entry(1)] })
        .await
        .unwrap());
    let stale = StateChange {
        expect: vec![put(Space::Witness, key, None)],
        put: vec![put(Space::Witness, key, Some("{\"size\":5}"))],
        entries: vec![entry(2)],
    };
    assert!(!s.state_write(stale).await.unwrap(), "a witness record read before another cosign is not rolled back");
    s.sync().await.unwrap();
    s.close().await.unwrap();
    let s = b.open().await;
    assert_eq!(s.state_get(Space::Witness, key).await.unwrap().as_deref(), Some(&b"{\"size\":10}"[..]));
    assert_eq!(s.audit_nodes(8, 1, 1).await.unwrap(), level8[1..]);
    s.close().await.unwrap();
}
