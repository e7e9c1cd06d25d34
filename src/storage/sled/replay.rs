//! Recovery of the write-ahead log ([`super::wal`]) at open: what sled lacks is applied, and a
//! log that cannot give back everything a writer may have been told is durable is refused.
//!
//! Each segment is read whole, past a damaged record: the records after it are found again by
//! their checksums, so damage in the middle of the log (intact records after it) is told apart
//! from a torn tail (nothing valid after it). Then, from the record after the one sled holds:
//! - a damaged record sled already holds (its number is at most sled's) is skipped with a WARN:
//!   nothing is lost;
//! - a record missing with intact records after it is refused, naming the segment file, the
//!   byte offset and the number, and which records after it are intact;
//! - a log that ends before the mark (the last record a finished `fdatasync` may have covered)
//!   is refused the same way: a writer may have been told that record was durable;
//! - anything else past the end is a torn tail, never acknowledged, and is dropped.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use sled::{Batch, Tree};
use tracing::warn;

use super::wal::{
    crc, seg_path, small_crc, Recovered, FIRST, MAGIC, MAGIC_V1, MARK, MARK_SLOTS, PADDING, PUT, RECORD_HEADER, REMOVE,
    SEGMENT_HEADER, SEGMENT_HEADER_V1, SEQ_KEY,
};

/// One segment, read.
#[derive(Debug, Default)]
pub(super) struct Segment<'a> {
    /// The header is neither valid nor zeroed: nothing in the segment can be checked.
    pub damaged_header: bool,
    /// The highest valid mark in its slots.
    pub mark: Option<u64>,
    /// Valid records in file order: offset, number, body.
    pub records: Vec<(u64, u64, &'a [u8])>,
    /// Damaged stretches with a valid record after them in this segment.
    pub damage: Vec<Damage>,
    /// Where the valid records end, when what follows is not zeros: a torn record, old records
    /// of a reused segment, or damage.
    pub end: Option<End>,
}

/// A stretch of a segment that does not check out, with a valid record after it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Damage {
    pub offset: u64,
    /// The record numbers it held, when the records around it tell (`None`: unknown).
    pub first: Option<u64>,
    pub last: u64,
}

/// Where a segment's valid records end, followed by something that is not zeros.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct End {
    pub offset: u64,
    /// The number the next record would have, when known.
    pub next: Option<u64>,
    /// Whether what follows carries that number in a record header: a damaged or torn record
    /// (old records of a reused segment have lower numbers).
    pub named: bool,
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap_or_default())
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap_or_default())
}

/// The record at `at`, if one with a number in `seqs` checks out there.
fn record_at(bytes: &[u8], nonce: u64, at: usize, seqs: std::ops::RangeInclusive<u64>) -> Option<(u64, &[u8], usize)> {
    let h = bytes.get(at..at + RECORD_HEADER)?;
    let (len, sum, seq) = (le_u32(h) as usize, le_u32(&h[4..]), le_u64(&h[8..]));
    if len == 0 || !seqs.contains(&seq) {
        return None;
    }
    let body = bytes.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
    (crc(nonce, seq, body) == sum).then_some((seq, body, at + RECORD_HEADER + len))
}

/// Reads one segment: its mark, every record that checks out (past damage) and the damage.
pub(super) fn parse(bytes: &[u8]) -> Segment<'_> {
    let mut seg = Segment::default();
    let Some(magic) = bytes.get(..8) else { return seg };
    let (header, first) = if magic == MAGIC && bytes.len() >= SEGMENT_HEADER {
        let nonce = le_u64(&bytes[8..]);
        let first = le_u64(&bytes[16..]);
        // With its first number damaged, the records still check out under the nonce (if that
        // is intact): read them, numbers unknown until the first.
        seg.damaged_header = small_crc(nonce, FIRST, first) != le_u32(&bytes[24..]);
        let first = (!seg.damaged_header).then_some(first);
        seg.mark = (0..2)
            .filter_map(|i| {
                let slot = &bytes[MARK_SLOTS + 16 * i..];
                let seq = le_u64(slot);
                (small_crc(nonce, MARK, seq) == le_u32(&slot[8..])).then_some(seq)
            })
            .max();
        (SEGMENT_HEADER, first)
    } else if magic == MAGIC_V1 && bytes.len() >= SEGMENT_HEADER_V1 {
        (SEGMENT_HEADER_V1, None)
    } else {
        // Zeroed (a spare, or retired: magic and nonce zeroed, in either format) or never
        // written: nothing in it. Anything else is a damaged header.
        seg.damaged_header = bytes[..bytes.len().min(SEGMENT_HEADER_V1)].iter().any(|&b| b != 0);
        return seg;
    };
    let nonce = le_u64(&bytes[8..]);
    // The number the next record must have (unknown in a first-format segment until one is read).
    let mut expect = first;
    let mut at = header;
    loop {
        let exact = expect.map_or(1..=u64::MAX, |e| e..=e);
        if let Some((seq, body, next)) = record_at(bytes, nonce, at, exact) {
            seg.records.push((at as u64, seq, body));
            expect = Some(seq + 1);
            at = next;
            continue;
        }
        if bytes.get(at..).is_none_or(|rest| rest.iter().all(|&b| b == 0)) {
            return seg; // the unwritten rest of a preallocated segment
        }
        // Damage, a torn record, or old records of a reused segment: look for a valid record
        // further on. A later record has a higher number, at most one per record header's bytes.
        let lowest = expect.unwrap_or(1);
        let found = (at + 1..bytes.len().saturating_sub(RECORD_HEADER)).find_map(|o| {
            let most = lowest.saturating_add(((o - at) / RECORD_HEADER) as u64);
            record_at(bytes, nonce, o, lowest..=most).map(|r| (o, r))
        });
        match found {
            Some((o, (seq, _, _))) => {
                seg.damage.push(Damage { offset: at as u64, first: expect.filter(|&e| e < seq), last: seq - 1 });
                expect = Some(seq);
                at = o;
            }
            None => {
                let named = expect.is_some_and(|e| bytes.get(at + 8..at + 16).is_some_and(|b| le_u64(b) == e));
                seg.end = Some(End { offset: at as u64, next: expect, named });
                return seg;
            }
        }
    }
}

/// Decodes a record's body into the sled batch it was written from.
fn decode(mut body: &[u8]) -> Option<Batch> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn take_len(b: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize)
    }
    let mut batch = Batch::default();
    if body.first() == Some(&PADDING) {
        return Some(batch);
    }
    while !body.is_empty() {
        let tag = take(&mut body, 1)?[0];
        let klen = take_len(&mut body)?;
        let key = take(&mut body, klen)?;
        match tag {
            PUT => {
                let vlen = take_len(&mut body)?;
                batch.insert(key, take(&mut body, vlen)?);
            }
            REMOVE => batch.remove(key),
            _ => return None,
        }
    }
    Some(batch)
}

/// The sequence number sled holds (0 when the store never wrote through the log).
pub(super) fn sled_seq(ledger: &Tree) -> Result<u64, sled::Error> {
    Ok(ledger.get(SEQ_KEY)?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map_or(0, u64::from_be_bytes))
}

/// What an operator should do with a refused store.
const RESTORE: &str = "restore the store from a backup (`bureau restore`), or move the named segment \
                       file aside to start without the records it held and everything after them";

/// Where the damage covering record `seq` is, for a refusal.
fn locate(found: &[(PathBuf, Segment<'_>)], seq: u64) -> String {
    for (path, seg) in found {
        for d in &seg.damage {
            if d.first.is_none_or(|f| f <= seq) && seq <= d.last {
                return format!("{} is damaged at byte {}", path.display(), d.offset);
            }
        }
        if let Some(End { offset, next: Some(next), .. }) = seg.end {
            if next == seq {
                return format!("{} does not check out at byte {offset}, where it belongs", path.display());
            }
        }
    }
    if let Some((path, _)) = found.iter().find(|(_, s)| s.damaged_header) {
        return format!("it is in no segment; {} has a damaged header", path.display());
    }
    "it is in no segment file".into()
}

/// Intact records numbered above `seq`: their ranges and segment files.
fn intact_after(found: &[(PathBuf, Segment<'_>)], seq: u64) -> String {
    let mut out = Vec::new();
    for (path, seg) in found {
        let after: Vec<u64> = seg.records.iter().map(|r| r.1).filter(|&s| s > seq).collect();
        if let (Some(a), Some(b)) = (after.first(), after.last()) {
            out.push(format!("{a}..={b} ({} records) in {}", after.len(), path.display()));
        }
    }
    out.join(", ")
}

/// Applies to `ledger` every logged record after the one sled holds, in order; refuses a log
/// that would leave the store without a record a writer may have been told was durable. The
/// caller flushes and syncs sled before [`super::wal::start`] retires the log.
pub(super) fn recover(store: &Path, ledger: &Tree) -> Result<Recovered, String> {
    let dir = store.join(super::wal::DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let from = sled_seq(ledger).map_err(|e| e.to_string())?;
    let mut segments = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if let Some(n) = name.strip_suffix(".tmp") {
            // A segment whose creation a crash interrupted: never used.
            if n.parse::<u64>().is_ok() {
                std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        } else if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
            segments.push(n);
        }
    }
    segments.sort_unstable();
    let mut files = Vec::with_capacity(segments.len());
    for &n in &segments {
        let path = seg_path(&dir, n);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((path, bytes));
    }
    let found: Vec<(PathBuf, Segment<'_>)> = files.iter().map(|(p, b)| (p.clone(), parse(b))).collect();

    let mut records: BTreeMap<u64, &[u8]> = BTreeMap::new();
    let mut mark = 0;
    for (path, seg) in &found {
        mark = mark.max(seg.mark.unwrap_or(0));
        for &(_, seq, body) in &seg.records {
            if seq > from {
                records.entry(seq).or_insert(body);
            }
        }
        let mut skipped: Vec<(u64, String)> = seg
            .damage
            .iter()
            .filter(|d| d.last <= from)
            .map(|d| (d.offset, format!("{}..={}", d.first.map_or("?".into(), |f| f.to_string()), d.last)))
            .collect();
        if let Some(End { offset, next: Some(n), named: true }) = seg.end {
            if n <= from {
                skipped.push((offset, n.to_string()));
            }
        }
        for (offset, records) in skipped {
            warn!(
                segment = %path.display(), offset, records = %records, applied = from,
                "a damaged write-ahead record is skipped: sled already holds it, nothing is lost"
            );
        }
    }
    let mut last = from;
    while let Some(body) = records.get(&(last + 1)) {
        let seq = last + 1;
        let batch = decode(body).ok_or_else(|| format!("write-ahead record {seq} does not decode; {RESTORE}"))?;
        ledger.apply_batch(batch).map_err(|e| e.to_string())?;
        last = seq;
    }
    let missing = last + 1;
    if let Some((&next, _)) = records.range(missing..).next() {
        return Err(format!(
            "write-ahead record {missing} is missing but records after it are intact — {}; record {missing}: {}. \
             Starting would leave out acknowledged records from {missing} on (sled holds up to {from}; the \
             next intact record is {next}); {RESTORE}",
            intact_after(&found, last),
            locate(&found, missing),
        ));
    }
    if mark >= missing {
        return Err(format!(
            "write-ahead record {missing} is missing, but the log's mark says records up to {mark} were made \
             durable and may have been acknowledged; record {missing}: {}. Starting would lose records \
             {missing}..={mark} (sled holds up to {from}); {RESTORE}",
            locate(&found, missing),
        ));
    }
    for (path, seg) in found.iter().filter(|(_, s)| s.damaged_header) {
        if seg.records.is_empty() {
            // Spares and retired segments are zeroed; one in use has a valid header. This one
            // may hold acknowledged records that nothing can check.
            return Err(format!(
                "{}'s header is damaged, so none of its records can be checked: it may hold acknowledged \
                 records after {last}. If sled already holds everything (the log was being retired), move that \
                 file aside; else {RESTORE}",
                path.display()
            ));
        }
        warn!(segment = %path.display(), records = seg.records.len(), "a write-ahead segment's header is damaged; its records check out on their own and were used");
    }
    Ok(Recovered { last_seq: last, replayed: (last - from) as usize, segments })
}

#[cfg(test)]
mod tests;
