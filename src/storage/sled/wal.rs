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
//! Each group also stores its sequence number in sled ([`SEQ_KEY`], written after the group's
//! other keys), so sled's state after any crash — a prefix of sled's own log — is the state after
//! record `s` and perhaps part of `s + 1`: recovery ([`super::replay`]) applies the records
//! numbered `s + 1, s + 2, …`, each in full.
//!
//! Segment files are `wal/<n>.seg`, [`SEGMENT_BYTES`] each (a larger one for a group that does not
//! fit). A segment starts with a header — magic ‖ nonce ‖ first seq ‖ crc ‖ two mark slots —
//! written afresh, with a new random nonce, each time the segment is taken into use; a record is
//! `len u32 ‖ crc32 u32 ‖ seq u64 ‖ body` with the checksum over nonce ‖ seq ‖ len ‖ body, so a
//! reused segment's older records never check out. At start every segment found is deleted once
//! its records are in sled and sled is synced; one left by a crash midway holds only records sled
//! has, which recovery passes over.
//!
//! **The acknowledged mark lives in the log.** Before each `fdatasync` the flusher writes, into a
//! mark slot of the segment it syncs, the last sequence number that sync covers; the same
//! `fdatasync` makes mark and records durable, and only then is any writer told "durable". So
//! the mark is never behind an acknowledgement, survives a power loss, and costs no second
//! device wait (a separate mark file would need its own `fdatasync`). Recovery refuses a log that
//! ends before its mark: a record a writer may have been told is durable is missing. The price:
//! a power loss *during* that one `fdatasync` may persist the mark without its record, and such
//! a store is refused (by name) although nothing acknowledged was lost. Refused, never short.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

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

pub(super) const MAGIC: &[u8; 8] = b"bureauW2";
/// The first format: magic ‖ nonce, no first sequence number, no mark. Still read.
pub(super) const MAGIC_V1: &[u8; 8] = b"bureauW1";
pub(super) const SEGMENT_HEADER_V1: usize = 16;
/// magic ‖ nonce ‖ first seq ‖ crc32(nonce ‖ first) ‖ 4 zero bytes ‖ mark slot 0 ‖ mark slot 1.
pub(super) const SEGMENT_HEADER: usize = 64;
/// Where the two mark slots start; each is seq u64 ‖ crc32 u32 ‖ 4 zero bytes.
pub(super) const MARK_SLOTS: usize = 32;
const MARK_SLOT: usize = 16;
/// len ‖ crc ‖ seq.
pub(super) const RECORD_HEADER: usize = 16;

/// A body of zeros: a record taken back, applied as nothing.
pub(super) const PADDING: u8 = 0;
pub(super) const PUT: u8 = 1;
pub(super) const REMOVE: u8 = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A record's checksum.
pub(super) fn crc(nonce: u64, seq: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&nonce.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&(body.len() as u32).to_le_bytes());
    h.update(body);
    h.finalize()
}

/// The checksum of a segment header's first sequence number, or of a mark slot (`what`).
pub(super) fn small_crc(nonce: u64, what: &[u8], n: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&nonce.to_le_bytes());
    h.update(what);
    h.update(&n.to_le_bytes());
    h.finalize()
}

pub(super) const FIRST: &[u8] = b"first";
pub(super) const MARK: &[u8] = b"mark";

/// A mark slot saying records up to `seq` are covered by the `fdatasync` that follows.
fn mark_slot(nonce: u64, seq: u64) -> [u8; MARK_SLOT] {
    let mut slot = [0u8; MARK_SLOT];
    slot[..8].copy_from_slice(&seq.to_le_bytes());
    slot[8..12].copy_from_slice(&small_crc(nonce, MARK, seq).to_le_bytes());
    slot
}

/// What the writer, the flusher and the checkpointer share.
pub(super) struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    segs: Mutex<Segs>,
    /// The segment the writer appends to (once its header is written), for the flusher's mark
    /// and `fdatasync`.
    current: Mutex<Option<Current>>,
}

struct Current {
    file: Arc<File>,
    nonce: u64,
    /// Marks written to it: the next goes to slot `marks % 2`, so a torn mark write leaves the
    /// one before intact.
    marks: u64,
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
    /// The sequence number of the current segment's first record.
    first: u64,
    next_seq: u64,
    fsync: bool,
    buf: Vec<u8>,
}

/// Opens a segment for reading and writing.
fn open_seg(dir: &Path, n: u64) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(seg_path(dir, n))
}

/// The size of each write that fills a new segment with zeros: one page. The page cache sizes a
/// file's folios by the writes that create them, and since Linux 6.16 ext4 gives a 1 MiB write a
/// 1 MiB folio; every later small append into it then walks all 256 of the folio's blocks
/// (measured: 1.0 µs of kernel time per 700-byte `pwrite` against 0.3 µs in 4 KiB folios, and
/// several times that on an idle node whose caches are cold).
const FILL_WRITE: usize = 4096;

/// Creates segment `n` of `bytes` zeros, durably (data, size and name), under a temporary name
/// until complete so a crash never leaves a short segment.
pub(super) fn create(dir: &Path, n: u64, bytes: u64) -> io::Result<File> {
    let tmp = dir.join(format!("{n:016}.tmp"));
    let made = (|| {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        let zeros = [0u8; FILL_WRITE];
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

/// What recovery found.
pub(super) struct Recovered {
    /// The last sequence number in sled after replay.
    pub last_seq: u64,
    /// Records applied to sled from the log.
    pub replayed: usize,
    /// The segment files found (all deleted by [`start`]).
    pub segments: Vec<u64>,
}

/// Starts the log after [`recover`] (with sled flushed and synced): deletes the segments found
/// and takes a fresh one for writing. Reusing them would be cheaper by one file's creation, but
/// recovery read them in large folios, which make every later small append slow (see
/// [`FILL_WRITE`]); their space is freed before the new one is made.
pub(super) fn start(
    store: &Path,
    found: Recovered,
    segment_bytes: u64,
    fsync: bool,
) -> io::Result<(Writer, Arc<Shared>)> {
    let dir = store.join(DIR);
    for &n in &found.segments {
        std::fs::remove_file(seg_path(&dir, n))?;
    }
    let spares = VecDeque::new();
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
        first: 0,
        next_seq: found.last_seq + 1,
        fsync,
        buf: Vec::new(),
    };
    w.begin_segment(found.last_seq + 1);
    sync_dir(&shared.dir)?;
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
    Ok((file, len))
}

impl Writer {
    /// The sequence number the next record gets.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A fresh nonce; the header goes out with the segment's first record, `first`.
    fn begin_segment(&mut self, first: u64) {
        self.nonce = rand::random();
        self.first = first;
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
            self.begin_segment(seq);
        }
        let first_in_segment = self.offset == SEGMENT_HEADER as u64;
        let sum = crc(self.nonce, seq, &buf[SEGMENT_HEADER + RECORD_HEADER..]);
        let h = &mut buf[SEGMENT_HEADER..SEGMENT_HEADER + RECORD_HEADER];
        h[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        h[4..8].copy_from_slice(&sum.to_le_bytes());
        h[8..].copy_from_slice(&seq.to_le_bytes());
        let (bytes, at) = if first_in_segment {
            buf[..SEGMENT_HEADER].fill(0);
            buf[..8].copy_from_slice(MAGIC);
            buf[8..16].copy_from_slice(&self.nonce.to_le_bytes());
            buf[16..24].copy_from_slice(&self.first.to_le_bytes());
            buf[24..28].copy_from_slice(&small_crc(self.nonce, FIRST, self.first).to_le_bytes());
            (&buf[..], 0)
        } else {
            (&buf[SEGMENT_HEADER..], self.offset)
        };
        self.file.write_all_at(bytes, at)?;
        if first_in_segment {
            // Only now may the flusher mark and sync this segment: its header is there.
            *lock(&self.shared.current) = Some(Current { file: self.file.clone(), nonce: self.nonce, marks: 0 });
        }
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

    /// Marks record `upto` (written) as covered, then, with `fsync`, makes every record written
    /// so far and the mark durable in one `fdatasync`. Records in earlier segments were synced
    /// when the writer left them.
    pub(super) fn sync(&self, upto: u64, fsync: bool) -> io::Result<()> {
        let file = {
            let mut current = lock(&self.current);
            let Some(c) = current.as_mut() else { return Ok(()) };
            let at = MARK_SLOTS + MARK_SLOT * (c.marks % 2) as usize;
            c.marks += 1;
            c.file.write_all_at(&mark_slot(c.nonce, upto), at as u64)?;
            c.file.clone()
        };
        if fsync {
            file.sync_data()?;
        }
        Ok(())
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
