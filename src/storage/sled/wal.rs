//! The sled store's write-ahead log: one device wait per durable commit.
//!
//! sled 0.34's flush waits on the device itself (`sync_file_range`) and power-loss safety needs
//! an `fdatasync` after it: two waits per commit, plus a journal commit whenever sled's file
//! grows. Instead the writer thread appends each group (its puts and removes, absolute values)
//! as one checksummed record to a segment file preallocated with zeros, then applies the group
//! to sled's cache. A commit is durable once its segment is `fdatasync`ed: one wait, and no
//! metadata to commit since the file never changes size. A checkpointer thread flushes sled and
//! syncs sled's file in the background; segments whose records that covers are reused.
//!
//! Each group also stores its sequence number in sled ([`SEQ_KEY`], in the same atomic batch), so
//! sled's state after any crash is the state after exactly one record `s`: recovery applies the
//! records numbered `s + 1, s + 2, …` and stops at the first missing one (a torn tail was never
//! acknowledged: acknowledgement waits for the `fdatasync` that covers it).
//!
//! Segment files are `wal/<n>.seg`, [`SEGMENT_BYTES`] each (a larger one for a group that does not
//! fit). A segment starts with a header — magic ‖ nonce — written afresh, with a new random
//! nonce, each time the segment is taken into use; a record is `len u32 ‖ crc32 u32 ‖ seq u64 ‖
//! body` with the checksum over nonce ‖ seq ‖ len ‖ body, so a reused segment's older records
//! never check out. At start every segment found is retired (its header zeroed and synced) once
//! its records are in sled and sled is synced.

use std::{
    collections::{BTreeMap, VecDeque},
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use sled::{Batch, Tree};

/// The directory of the log inside the store's.
pub(super) const DIR: &str = "wal";
/// The size of a segment file.
pub(super) const SEGMENT_BYTES: u64 = 4 << 20;
/// The sled key holding the sequence number of the last record applied.
pub(super) const SEQ_KEY: &[u8] = b"m/wal_seq";
/// Segments kept zero-filled and ready, so the writer rarely creates one.
const SPARES: usize = 1;
/// Most segments kept for reuse; more are deleted.
const MAX_SPARES: usize = 2;

const MAGIC: &[u8; 8] = b"bureauW1";
/// magic ‖ nonce.
const SEGMENT_HEADER: usize = 16;
/// len ‖ crc ‖ seq.
const RECORD_HEADER: usize = 16;

/// A body of zeros: a record taken back, applied as nothing.
const PADDING: u8 = 0;
const PUT: u8 = 1;
const REMOVE: u8 = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn crc(nonce: u64, seq: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&nonce.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&(body.len() as u32).to_le_bytes());
    h.update(body);
    h.finalize()
}

/// What the writer, the flusher and the checkpointer share.
pub(super) struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    segs: Mutex<Segs>,
    /// The segment the writer appends to, for the flusher's `fdatasync`.
    current: Mutex<Option<Arc<File>>>,
}

struct Segs {
    /// Segments in the order the writer took them; the last is the current one.
    live: VecDeque<Live>,
    /// Zero-filled or retired segments ready for use.
    spares: VecDeque<u64>,
    next_number: u64,
}

struct Live {
    number: u64,
    /// The sequence number of its first record.
    first: u64,
}

/// A record the writer wrote (and may have to take back).
pub(super) struct Written {
    seq: u64,
    offset: u64,
    body_len: usize,
}

/// The writer thread's end of the log.
pub(super) struct Writer {
    shared: Arc<Shared>,
    file: Arc<File>,
    len: u64,
    offset: u64,
    nonce: u64,
    next_seq: u64,
    fsync: bool,
    buf: Vec<u8>,
}

/// What recovery found.
pub(super) struct Recovered {
    /// The last sequence number in sled after replay.
    pub last_seq: u64,
    /// Records applied to sled from the log.
    pub replayed: usize,
    segments: Vec<u64>,
}

/// Opens a segment for reading and writing.
fn open_seg(dir: &Path, n: u64) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(seg_path(dir, n))
}

/// Creates segment `n` of `bytes` zeros, durably (data, size and name), under a temporary name
/// until complete so a crash never leaves a short segment.
fn create(dir: &Path, n: u64, bytes: u64) -> io::Result<File> {
    let tmp = dir.join(format!("{n:016}.tmp"));
    let made = (|| {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < bytes {
            let n = zeros.len().min((bytes - at) as usize);
            f.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, seg_path(dir, n))?;
        sync_dir(dir)?;
        Ok(f)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// The valid records of one segment, in file order, up to the first that does not check out.
fn parse(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    if bytes.len() < SEGMENT_HEADER || &bytes[..8] != MAGIC {
        return out;
    }
    let nonce = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let mut at = SEGMENT_HEADER;
    while at + RECORD_HEADER <= bytes.len() {
        let h = &bytes[at..at + RECORD_HEADER];
        let len = u32::from_le_bytes(h[..4].try_into().unwrap_or_default()) as usize;
        let sum = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        let start = at + RECORD_HEADER;
        if len == 0 || start + len > bytes.len() {
            break;
        }
        let body = &bytes[start..start + len];
        if crc(nonce, seq, body) != sum {
            break;
        }
        out.push((seq, body));
        at = start + len;
    }
    out
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
fn sled_seq(ledger: &Tree) -> Result<u64, sled::Error> {
    Ok(ledger.get(SEQ_KEY)?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map_or(0, u64::from_be_bytes))
}

/// Applies to `ledger` every logged record after the one sled holds, in order, stopping at the
/// first missing number. The caller flushes and syncs sled before [`start`] retires the log.
pub(super) fn recover(store: &Path, ledger: &Tree) -> Result<Recovered, String> {
    let dir = store.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let from = sled_seq(ledger).map_err(|e| e.to_string())?;
    let mut segments = Vec::new();
    let mut files = Vec::new();
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
            files.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        }
    }
    segments.sort_unstable();
    let mut records: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for bytes in &files {
        for (seq, body) in parse(bytes) {
            if seq > from {
                records.entry(seq).or_insert(body);
            }
        }
    }
    let mut last = from;
    for (seq, body) in records {
        if seq != last + 1 {
            break; // written after a record that never reached the disk: never acknowledged
        }
        let batch = decode(body).ok_or_else(|| format!("write-ahead record {seq} does not decode"))?;
        ledger.apply_batch(batch).map_err(|e| e.to_string())?;
        last = seq;
    }
    Ok(Recovered { last_seq: last, replayed: (last - from) as usize, segments })
}

/// Starts the log after [`recover`] (with sled flushed and synced): retires the segments found,
/// keeps them as spares (deleting the extra and odd-sized ones) and takes one for writing.
pub(super) fn start(
    store: &Path,
    found: Recovered,
    segment_bytes: u64,
    fsync: bool,
) -> io::Result<(Writer, Arc<Shared>)> {
    let dir = store.join(DIR);
    let mut spares = VecDeque::new();
    for &n in &found.segments {
        let f = open_seg(&dir, n)?;
        if spares.len() < MAX_SPARES && f.metadata()?.len() == segment_bytes {
            f.write_all_at(&[0u8; SEGMENT_HEADER], 0)?;
            f.sync_data()?;
            spares.push_back(n);
        } else {
            drop(f);
            std::fs::remove_file(seg_path(&dir, n))?;
        }
    }
    let next_number = found.segments.iter().max().map_or(1, |m| m + 1);
    let shared = Arc::new(Shared {
        dir,
        segment_bytes,
        segs: Mutex::new(Segs { live: VecDeque::new(), spares, next_number }),
        current: Mutex::new(None),
    });
    let (file, len) = take_segment(&shared, found.last_seq + 1, 0)?;
    let mut w = Writer {
        shared: shared.clone(),
        file,
        len,
        offset: 0,
        nonce: 0,
        next_seq: found.last_seq + 1,
        fsync,
        buf: Vec::new(),
    };
    w.begin_segment();
    if found.segments.is_empty() {
        sync_dir(&shared.dir)?;
    }
    Ok((w, shared))
}

/// Takes a spare (or creates a segment, larger when `need` exceeds the standard size) and makes
/// it the current one, its first record numbered `first`.
fn take_segment(shared: &Shared, first: u64, need: u64) -> io::Result<(Arc<File>, u64)> {
    let standard = need + (SEGMENT_HEADER as u64) <= shared.segment_bytes;
    let mut segs = lock(&shared.segs);
    let spare = if standard { segs.spares.pop_front() } else { None };
    let (number, file) = match spare {
        Some(n) => (n, open_seg(&shared.dir, n)?),
        None => {
            let n = segs.next_number;
            let bytes = if standard { shared.segment_bytes } else { need + SEGMENT_HEADER as u64 };
            let f = create(&shared.dir, n, bytes)?;
            segs.next_number += 1;
            (n, f)
        }
    };
    let len = file.metadata()?.len();
    let file = Arc::new(file);
    segs.live.push_back(Live { number, first });
    *lock(&shared.current) = Some(file.clone());
    Ok((file, len))
}

impl Writer {
    /// The sequence number the next record gets.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A fresh nonce; the header goes out with the segment's first record.
    fn begin_segment(&mut self) {
        self.nonce = rand::random();
        self.offset = SEGMENT_HEADER as u64;
    }

    /// Appends one group (in the page cache: [`sync`] makes it durable) as record
    /// [`Writer::next_seq`].
    pub(super) fn append<'a>(
        &mut self,
        changes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> io::Result<Written> {
        let seq = self.next_seq;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(SEGMENT_HEADER + RECORD_HEADER, 0);
        for (k, v) in changes {
            buf.push(if v.is_some() { PUT } else { REMOVE });
            buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            buf.extend_from_slice(k);
            if let Some(v) = v {
                buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                buf.extend_from_slice(v);
            }
        }
        let body_len = buf.len() - SEGMENT_HEADER - RECORD_HEADER;
        let result = self.write_record(seq, &mut buf, body_len);
        self.buf = buf;
        result
    }

    fn write_record(&mut self, seq: u64, buf: &mut [u8], body_len: usize) -> io::Result<Written> {
        let record_len = (RECORD_HEADER + body_len) as u64;
        if self.offset + record_len > self.len {
            if self.fsync {
                self.file.sync_data()?;
            }
            let (file, len) = take_segment(&self.shared, seq, record_len)?;
            self.file = file;
            self.len = len;
            self.begin_segment();
        }
        let first_in_segment = self.offset == SEGMENT_HEADER as u64;
        let sum = crc(self.nonce, seq, &buf[SEGMENT_HEADER + RECORD_HEADER..]);
        let h = &mut buf[SEGMENT_HEADER..SEGMENT_HEADER + RECORD_HEADER];
        h[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        h[4..8].copy_from_slice(&sum.to_le_bytes());
        h[8..].copy_from_slice(&seq.to_le_bytes());
        let (bytes, at) = if first_in_segment {
            buf[..8].copy_from_slice(MAGIC);
            buf[8..16].copy_from_slice(&self.nonce.to_le_bytes());
            (&buf[..], 0)
        } else {
            (&buf[SEGMENT_HEADER..], self.offset)
        };
        self.file.write_all_at(bytes, at)?;
        let written = Written { seq, offset: self.offset, body_len };
        self.offset += record_len;
        self.next_seq += 1;
        Ok(written)
    }

    /// Takes back the last record written (sled refused its group): rewrites it as padding of
    /// the same length and number, so the records after it still follow and replay applies
    /// nothing for it.
    pub(super) fn unwrite(&mut self, w: Written) -> io::Result<()> {
        let mut buf = vec![0u8; RECORD_HEADER + w.body_len];
        let sum = crc(self.nonce, w.seq, &buf[RECORD_HEADER..]);
        buf[..4].copy_from_slice(&(w.body_len as u32).to_le_bytes());
        buf[4..8].copy_from_slice(&sum.to_le_bytes());
        buf[8..16].copy_from_slice(&w.seq.to_le_bytes());
        self.file.write_all_at(&buf, w.offset)
    }
}

impl Shared {
    /// Segments the writer has filled and left.
    pub(super) fn full_segments(&self) -> usize {
        lock(&self.segs).live.len().saturating_sub(1)
    }

    /// Whether a spare segment is ready for the writer.
    pub(super) fn spares_ready(&self) -> bool {
        lock(&self.segs).spares.len() >= SPARES
    }

    /// Makes every record written so far durable. Records in earlier segments were synced when
    /// the writer left them.
    pub(super) fn sync(&self) -> io::Result<()> {
        let file = lock(&self.current).clone();
        file.map_or(Ok(()), |f| f.sync_data())
    }

    /// After sled is flushed and synced up to record `covered`: the segments holding only
    /// records up to it become spares (or are deleted beyond [`MAX_SPARES`]), and at least
    /// [`SPARES`] are ready.
    pub(super) fn checkpointed(&self, covered: u64) -> io::Result<()> {
        let mut segs = lock(&self.segs);
        while segs.live.len() > 1 && segs.live[1].first <= covered + 1 {
            let Some(done) = segs.live.pop_front() else { break };
            let path = seg_path(&self.dir, done.number);
            let keep = segs.spares.len() < MAX_SPARES && std::fs::metadata(&path)?.len() == self.segment_bytes;
            if keep {
                // Its records are in sled; a zeroed header makes that plain to a reader.
                open_seg(&self.dir, done.number)?.write_all_at(&[0u8; SEGMENT_HEADER], 0)?;
                segs.spares.push_back(done.number);
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        while segs.spares.len() < SPARES {
            let n = segs.next_number;
            create(&self.dir, n, self.segment_bytes)?;
            segs.next_number += 1;
            segs.spares.push_back(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> (sled::Db, Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        (db, t)
    }

    /// Writes `n` records of one put each (key i → value i), through rotations when small.
    fn write(w: &mut Writer, range: std::ops::Range<u32>) {
        for i in range {
            let k = i.to_be_bytes();
            let v = vec![i as u8; 300];
            let seq = w.next_seq().to_be_bytes();
            w.append([(&k[..], Some(&v[..])), (SEQ_KEY, Some(&seq[..]))].into_iter()).unwrap();
        }
    }

    fn fresh(dir: &Path, segment_bytes: u64) -> (Writer, Arc<Shared>) {
        let (_db, t) = ledger();
        let found = recover(dir, &t).unwrap();
        start(dir, found, segment_bytes, true).unwrap()
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
    fn replay_starts_after_what_sled_holds_and_stops_at_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _s) = fresh(dir.path(), 1 << 20);
        write(&mut w, 0..10);
        // Tear record 8 (the 8th written): flip a byte of its body.
        let seg = std::fs::read_dir(dir.path().join(DIR)).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&seg).unwrap();
        let rec = RECORD_HEADER + 1 + 4 + 4 + 4 + 300 + 1 + 4 + SEQ_KEY.len() + 4 + 8;
        bytes[SEGMENT_HEADER + 7 * rec + RECORD_HEADER + 20] ^= 1;
        std::fs::write(&seg, bytes).unwrap();
        let (_db, t) = ledger();
        t.insert(SEQ_KEY, &3u64.to_be_bytes()[..]).unwrap();
        let found = recover(dir.path(), &t).unwrap();
        assert_eq!((found.last_seq, found.replayed), (7, 4), "4..=7 applied; 8 torn, so 9 and 10 never count");
        assert!(t.get(2u32.to_be_bytes()).unwrap().is_none(), "records sled already had are not replayed");
        assert!(t.get(6u32.to_be_bytes()).unwrap().is_some());
        assert!(t.get(8u32.to_be_bytes()).unwrap().is_none());
    }

    #[test]
    fn reused_segments_never_bring_back_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, s) = fresh(dir.path(), 8 << 10);
        write(&mut w, 0..60);
        s.checkpointed(60).unwrap();
        assert!(lock(&s.segs).live.len() == 1, "every finished segment covered");
        write(&mut w, 60..70);
        drop((w, s));
        // A store restored from before record 61 with sled at 60: only 61..=70 apply, and the
        // retired and reused segments' older records (same keys, other values) do not.
        let (_db, t) = ledger();
        t.insert(SEQ_KEY, &60u64.to_be_bytes()[..]).unwrap();
        let found = recover(dir.path(), &t).unwrap();
        assert_eq!((found.last_seq, found.replayed), (70, 10));
        assert!(t.get(10u32.to_be_bytes()).unwrap().is_none());
        // After a restart the old segments are retired: nothing replays twice.
        let (mut w, _s) = start(dir.path(), found, 8 << 10, true).unwrap();
        write(&mut w, 70..72);
        drop(w);
        let (_db, t) = ledger();
        t.insert(SEQ_KEY, &70u64.to_be_bytes()[..]).unwrap();
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
        s.sync().unwrap();
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
}
