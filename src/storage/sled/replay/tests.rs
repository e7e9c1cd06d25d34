//! Recovery over real segment files: every record comes back, a torn tail is dropped, and damage
//! that would leave the store short is refused by name.

use std::{path::Path, sync::Arc};

use sled::Tree;

use super::{parse, recover, sled_seq, Damage};
use crate::storage::sled::wal::{seg_path, start, Shared, Writer, DIR, RECORD_HEADER, SEGMENT_HEADER, SEQ_KEY};

fn ledger() -> (sled::Db, Tree) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let t = db.open_tree("t").unwrap();
    (db, t)
}

/// Writes records of one put each (key i → value i), through rotations when small.
fn write(w: &mut Writer, range: std::ops::Range<u32>) {
    for i in range {
        let k = i.to_be_bytes();
        let v = vec![i as u8; 300];
        let seq = w.next_seq().to_be_bytes();
        w.append([(&k[..], Some(&v[..])), (SEQ_KEY, Some(&seq[..]))].into_iter()).unwrap();
    }
}

/// The size of one record [`write`] writes.
const REC: usize = RECORD_HEADER + 1 + 4 + 4 + 4 + 300 + 1 + 4 + SEQ_KEY.len() + 4 + 8;

fn fresh(dir: &Path, segment_bytes: u64) -> (Writer, Arc<Shared>) {
    let (_db, t) = ledger();
    let found = recover(dir, &t).unwrap();
    start(dir, found, segment_bytes, true).unwrap()
}

/// A ledger whose sled holds records up to `seq`.
fn ledger_at(seq: u64) -> (sled::Db, Tree) {
    let (db, t) = ledger();
    t.insert(SEQ_KEY, &seq.to_be_bytes()[..]).unwrap();
    (db, t)
}

/// The only segment file (after [`fresh`] on an empty directory).
fn only_segment(dir: &Path) -> std::path::PathBuf {
    seg_path(&dir.join(DIR), 1)
}

/// Flips 32 bytes of the one-segment log, starting `into` bytes into record `n` (1-based).
fn flip(dir: &Path, n: usize, into: usize) -> u64 {
    let seg = only_segment(dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = SEGMENT_HEADER + (n - 1) * REC + into;
    bytes[at..at + 32].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&seg, bytes).unwrap();
    (SEGMENT_HEADER + (n - 1) * REC) as u64
}

#[test]
fn every_record_is_replayed_into_a_sled_that_has_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _s) = fresh(dir.path(), 8 << 10);
    write(&mut w, 0..100); // ~30 rotations of 8 KiB segments
    drop(w);
    let (_db, t) = ledger();
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!((found.last_seq, found.replayed), (100, 100));
    assert_eq!(t.get(99u32.to_be_bytes()).unwrap().unwrap()[0], 99);
    assert_eq!(sled_seq(&t).unwrap(), 100);
}

#[test]
fn parsing_goes_on_past_damage_and_names_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..10);
    // 32 bytes across the end of record 4 and the header of record 5.
    let at = flip(dir.path(), 4, REC - 10);
    let bytes = std::fs::read(only_segment(dir.path())).unwrap();
    let seg = parse(&bytes);
    let seqs: Vec<u64> = seg.records.iter().map(|r| r.1).collect();
    assert_eq!(seqs, [1, 2, 3, 6, 7, 8, 9, 10]);
    assert_eq!(seg.damage, [Damage { offset: at, first: Some(4), last: 5 }]);
    assert_eq!(seg.end, None, "zeros after the last record");
}

#[test]
fn damage_in_the_middle_with_intact_records_after_it_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..10);
    let at = flip(dir.path(), 8, 40);
    let (_db, t) = ledger_at(3);
    let err = recover(dir.path(), &t).err().expect("refused: records 9 and 10 would be lost");
    let seg = only_segment(dir.path()).display().to_string();
    assert!(err.contains("write-ahead record 8 is missing"), "{err}");
    assert!(err.contains(&format!("{seg} is damaged at byte {at}")), "{err}");
    assert!(err.contains(&format!("9..=10 (2 records) in {seg}")), "{err}");
    assert!(err.contains("restore the store from a backup"), "names what to do: {err}");
}

#[test]
fn a_torn_tail_is_dropped_and_a_tail_under_the_mark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..9);
    s.sync(9, true).unwrap();
    write(&mut w, 9..10);
    // Record 10 torn (never covered by a sync): the store starts with 1..=9.
    flip(dir.path(), 10, 100);
    let (_db, t) = ledger_at(3);
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!((found.last_seq, found.replayed), (9, 6));
    assert!(t.get(8u32.to_be_bytes()).unwrap().is_some());
    // Record 9 damaged: the mark says a sync covered it, so a writer may have been told.
    flip(dir.path(), 9, 100);
    let (_db, t) = ledger_at(3);
    let err = recover(dir.path(), &t).err().expect("refused: record 9 was marked durable");
    assert!(err.contains("records up to 9 were made durable"), "{err}");
    assert!(err.contains(&only_segment(dir.path()).display().to_string()), "{err}");
}

#[test]
fn a_damaged_record_sled_already_holds_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..10);
    s.sync(10, true).unwrap();
    flip(dir.path(), 4, 40);
    let (_db, t) = ledger_at(5);
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!((found.last_seq, found.replayed), (10, 5), "4 is in sled; 6..=10 replayed");
    flip(dir.path(), 10, 40); // the last one too, under the mark: fine when sled holds it
    let (_db, t) = ledger_at(10);
    assert_eq!(recover(dir.path(), &t).unwrap().last_seq, 10);
}

#[test]
fn a_sled_behind_the_retired_segments_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, s) = fresh(dir.path(), 8 << 10);
    write(&mut w, 0..60);
    s.checkpointed(40).unwrap();
    drop((w, s));
    // sled restored from before record 20: 21..=40 went with the retired segments.
    let (_db, t) = ledger_at(20);
    let err = recover(dir.path(), &t).err().expect("refused");
    assert!(err.contains("write-ahead record 21 is missing but records after it are intact"), "{err}");
    assert!(err.contains("it is in no segment file"), "{err}");
}

#[test]
fn reused_segments_never_bring_back_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, s) = fresh(dir.path(), 8 << 10);
    write(&mut w, 0..60);
    s.checkpointed(60).unwrap();
    assert_eq!(s.full_segments(), 0, "every finished segment covered");
    write(&mut w, 60..70);
    drop((w, s));
    // A store restored from before record 61 with sled at 60: only 61..=70 apply, and the
    // retired and reused segments' older records (same keys, other values) do not.
    let (_db, t) = ledger_at(60);
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!((found.last_seq, found.replayed), (70, 10));
    assert!(t.get(10u32.to_be_bytes()).unwrap().is_none());
    // After a restart the old segments are retired: nothing replays twice.
    let (mut w, _s) = start(dir.path(), found, 8 << 10, true).unwrap();
    write(&mut w, 70..72);
    drop(w);
    let (_db, t) = ledger_at(70);
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!((found.last_seq, found.replayed), (72, 2));
}

#[test]
fn a_group_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, s) = fresh(dir.path(), 8 << 10);
    let big = vec![7u8; 20 << 10];
    let seq = w.next_seq().to_be_bytes();
    w.append([(&b"big"[..], Some(&big[..])), (SEQ_KEY, Some(&seq[..]))].into_iter()).unwrap();
    write(&mut w, 0..3);
    s.sync(4, true).unwrap();
    let (_db, t) = ledger();
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!(found.last_seq, 4);
    assert_eq!(t.get(b"big").unwrap().unwrap().len(), 20 << 10);
}

#[test]
fn a_record_taken_back_is_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..2);
    let seq = w.next_seq().to_be_bytes();
    let written = w.append([(&b"refused"[..], Some(&b"x"[..])), (SEQ_KEY, Some(&seq[..]))].into_iter()).unwrap();
    w.unwrite(written).unwrap();
    write(&mut w, 2..3);
    let (_db, t) = ledger();
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!(found.last_seq, 4, "the padding keeps its number; the record after it follows");
    assert!(t.get(b"refused").unwrap().is_none());
    assert!(t.get(2u32.to_be_bytes()).unwrap().is_some());
}

/// A segment in the first format (magic ‖ nonce, records from byte 16, no mark), as a store
/// written before the mark moved into the log left it, still replays.
#[test]
fn a_first_format_segment_still_replays() {
    use crate::storage::sled::wal::{crc, MAGIC_V1, PUT, SEGMENT_HEADER_V1};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
    let nonce = 0x1234_5678_9abc_def0u64;
    let mut bytes = vec![0u8; 64 << 10];
    bytes[..8].copy_from_slice(MAGIC_V1);
    bytes[8..16].copy_from_slice(&nonce.to_le_bytes());
    let mut at = SEGMENT_HEADER_V1;
    for seq in 1..=3u64 {
        let mut body = Vec::new();
        for (k, v) in [(&b"k"[..], seq.to_be_bytes()), (SEQ_KEY, seq.to_be_bytes())] {
            body.push(PUT);
            body.extend_from_slice(&(k.len() as u32).to_le_bytes());
            body.extend_from_slice(k);
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
            body.extend_from_slice(&v);
        }
        bytes[at..at + 4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&crc(nonce, seq, &body).to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&seq.to_le_bytes());
        bytes[at + 16..at + 16 + body.len()].copy_from_slice(&body);
        at += 16 + body.len();
    }
    std::fs::write(only_segment(dir.path()), bytes).unwrap();
    let (_db, t) = ledger();
    let found = recover(dir.path(), &t).unwrap();
    assert_eq!((found.last_seq, found.replayed), (3, 3));
    assert_eq!(t.get(b"k").unwrap().unwrap().as_ref(), 3u64.to_be_bytes());
}

/// A damaged segment header: with the nonce intact the records still check out and replay;
/// with nothing readable the store is refused naming the segment (it may hold acknowledged
/// records).
#[test]
fn a_damaged_segment_header_replays_what_checks_out_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..5);
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[16] ^= 0xff; // the first record's number
    std::fs::write(&seg, &bytes).unwrap();
    let (_db, t) = ledger();
    assert_eq!(recover(dir.path(), &t).unwrap().last_seq, 5);
    bytes[8] ^= 0xff; // the nonce: nothing checks out
    std::fs::write(&seg, &bytes).unwrap();
    let (_db, t) = ledger();
    let err = recover(dir.path(), &t).err().expect("refused");
    assert!(err.contains(&format!("{}'s header is damaged", seg.display())), "{err}");
}

/// A segment the first format retired (only its 16-byte header zeroed, records behind it) is a
/// spare, not damage.
#[test]
fn a_segment_retired_by_the_first_format_is_a_spare() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _s) = fresh(dir.path(), 1 << 20);
    write(&mut w, 0..5);
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[..16].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let (_db, t) = ledger_at(5);
    assert_eq!(recover(dir.path(), &t).unwrap().last_seq, 5);
}
