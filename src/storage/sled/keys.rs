//! The key spaces of the one sled `ledger` tree. Every key starts with a one-byte prefix, so a
//! change and its audit entry land in one atomic batch on one tree.

/// The one sled tree holding every key space.
pub(super) const LEDGER: &str = "ledger";
/// Records: `r` ‖ furnisher ‖ 0x00 ‖ record id → `StoredValue`.
pub(super) const RECORD: u8 = b'r';
/// The subject index: `s` ‖ subject ‖ furnisher ‖ 0x00 ‖ record id → empty.
pub(super) const SUBJECT: u8 = b's';
/// Inquiries: `i` ‖ subject ‖ time_micros(u64 be) ‖ query id → protobuf `Inquiry`, in time order
/// per subject.
pub(super) const INQUIRY: u8 = b'i';
/// Audit entries: `e` ‖ index(be) → leaf bytes.
pub(super) const ENTRY: u8 = b'e';
/// The audit log's complete-subtree hashes: `n` ‖ level ‖ index(be) → 32 bytes.
pub(super) const NODE: u8 = b'n';
/// Lifecycle state: `x` ‖ space tag ‖ key → value (see [`crate::storage::Space`]).
pub(super) const STATE: u8 = b'x';
/// The audit log's size.
pub(super) const SIZE: &[u8] = b"m/audit_size";

/// `furnisher 0x00 record_id`: a record's identity within the record and subject key spaces.
pub(super) fn record_suffix(furnisher: &str, record_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(furnisher.len() + 1 + record_id.len());
    k.extend_from_slice(furnisher.as_bytes());
    k.push(0);
    k.extend_from_slice(record_id.as_bytes());
    k
}

/// `prefix ‖ parts…`.
pub(super) fn prefixed(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The key of a record.
pub(super) fn record(furnisher: &str, record_id: &str) -> Vec<u8> {
    prefixed(RECORD, &[&record_suffix(furnisher, record_id)])
}

/// The record key a subject-index key points at.
pub(super) fn record_of_index(index_key: &[u8], subject: &str) -> Vec<u8> {
    prefixed(RECORD, &[&index_key[1 + subject.len()..]])
}

/// The subject-index key of a record.
pub(super) fn subject(subject: &str, furnisher: &str, record_id: &str) -> Vec<u8> {
    prefixed(SUBJECT, &[subject.as_bytes(), &record_suffix(furnisher, record_id)])
}

/// The time part of inquiry keys; times before the epoch sort as the epoch.
pub(super) fn inquiry_time(time_micros: i64) -> [u8; 8] {
    (time_micros.max(0) as u64).to_be_bytes()
}

/// The key range `[from, to)` of a subject's inquiries recorded at or after `since` (micros; all
/// of them when `None`).
pub(super) fn inquiries_since(subject: &str, since: Option<i64>) -> (Vec<u8>, Vec<u8>) {
    let prefix = prefixed(INQUIRY, &[subject.as_bytes()]);
    let mut from = prefix.clone();
    if let Some(micros) = since {
        from.extend_from_slice(&inquiry_time(micros));
    }
    // Past every key of this subject (subject ids are fixed-length hex).
    let mut to = prefix;
    to.push(0xff);
    (from, to)
}

/// The key of an inquiry.
pub(super) fn inquiry(i: &crate::domain::inquiry::Inquiry) -> Vec<u8> {
    prefixed(INQUIRY, &[i.subject_id.as_bytes(), &inquiry_time(i.time.timestamp_micros()), i.query_id.as_bytes()])
}

/// The key of a state value.
pub(super) fn state(space: crate::storage::Space, key: &str) -> Vec<u8> {
    prefixed(STATE, &[&[space.tag()], key.as_bytes()])
}

/// The time (micros) in an inquiry key, `None` if the key is not one.
pub(super) fn inquiry_key_time(k: &[u8]) -> Option<i64> {
    let t = k.get(1 + crate::domain::subject::SUBJECT_ID_LEN..1 + crate::domain::subject::SUBJECT_ID_LEN + 8)?;
    Some(u64::from_be_bytes(t.try_into().ok()?) as i64)
}

/// The key of audit entry `index`.
pub(super) fn entry(index: u64) -> [u8; 9] {
    let mut k = [ENTRY; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The key of the audit node at (level, index).
pub(super) fn node(level: u8, index: u64) -> [u8; 10] {
    let mut k = [NODE; 10];
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Reads a stored size value (absent means 0).
pub(super) fn decode_size(v: Option<&[u8]>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v).ok()).map_or(0, u64::from_be_bytes)
}
