//! Rows and the types they hold: how stored rows decode (by column name), a record row as the
//! version rules see it, and the column arrays the group writes take as parameters.

use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use tokio_postgres::{types::ToSql, Row};

use super::pool::corrupt;
use crate::{
    audit::merkle::Hash,
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{StoreError, StoredRecord},
    wire::{convert, pb::bureau::v1 as pb},
};

/// A record row (live or a tombstone) as the version rules see it.
#[derive(Clone)]
pub(super) struct RecordRow {
    /// Whether the row was committed before this group (an UPDATE) or is new (an INSERT).
    pub in_db: bool,
    /// The version stored (a tombstone keeps the deleted one).
    pub version: u64,
    /// False for a tombstone.
    pub live: bool,
    /// The subject the record is about.
    pub subject: String,
    /// The record as stored.
    pub record: Option<CreditRecord>,
    /// When this version was stored.
    pub updated: DateTime<Utc>,
    /// Why it was deleted, and the note: (reason, note).
    pub deletion: (String, String),
}

impl RecordRow {
    /// A full row as [`GROUP_RECORD_ROWS`](super::statements::GROUP_RECORD_ROWS) reads it.
    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let (furnisher, record_id): (&str, &str) = (row.get("furnisher"), row.get("record_id"));
        Ok(Self {
            in_db: true,
            subject: row.get("subject_id"),
            version: row.get::<_, i64>("version") as u64,
            live: row.get("live"),
            record: Some(decode_record(furnisher, record_id, row.get("body"))?),
            updated: micros(row.get("updated_micros")),
            deletion: (row.get("deletion_reason"), row.get("deletion_note")),
        })
    }
}

/// A live record as the reads select it: `furnisher, record_id, body, updated_micros`.
pub(super) fn stored_record(row: &Row) -> Result<StoredRecord, StoreError> {
    let record = decode_record(row.get("furnisher"), row.get("record_id"), row.get("body"))?;
    Ok(StoredRecord { record, updated: micros(row.get("updated_micros")) })
}

/// A record's stored protobuf form.
pub(super) fn decode_record(furnisher: &str, record_id: &str, body: &[u8]) -> Result<CreditRecord, StoreError> {
    let key = || format!("records ({furnisher}, {record_id})");
    let pb = pb::CreditRecord::decode(body).map_err(|e| corrupt(key(), e.to_string()))?;
    convert::record_from_stored(pb).map_err(|e| corrupt(key(), e))
}

/// An inquiry as the reads select it: `time_micros, query_id, body`.
pub(super) fn inquiry(row: &Row) -> Result<Inquiry, StoreError> {
    let query: &str = row.get("query_id");
    let key = || format!("inquiries ({query})");
    let pb = pb::Inquiry::decode(row.get::<_, &[u8]>("body")).map_err(|e| corrupt(key(), e.to_string()))?;
    convert::inquiry_from_pb(&pb).ok_or_else(|| corrupt(key(), "incomplete inquiry"))
}

/// A stored time in microseconds since the epoch.
pub(super) fn micros(m: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(m).single().unwrap_or_default()
}

/// Record rows as the column arrays a group write takes, in the table's column order.
#[derive(Default)]
pub(super) struct RecordColumns<'a> {
    furnisher: Vec<&'a str>,
    record_id: Vec<&'a str>,
    subject_id: Vec<&'a str>,
    version: Vec<i64>,
    live: Vec<bool>,
    body: Vec<Vec<u8>>,
    updated_micros: Vec<i64>,
    deletion_reason: Vec<&'a str>,
    deletion_note: Vec<&'a str>,
}

impl<'a> RecordColumns<'a> {
    /// The columns of `rows`, by their (furnisher, record id).
    pub(super) fn of(rows: impl Iterator<Item = (&'a (String, String), &'a RecordRow)>) -> Result<Self, StoreError> {
        let mut c = Self::default();
        for ((furnisher, record_id), s) in rows {
            let r = s.record.as_ref().ok_or_else(|| corrupt("records", "a changed row without its record"))?;
            c.furnisher.push(furnisher);
            c.record_id.push(record_id);
            c.subject_id.push(&s.subject);
            c.version.push(s.version as i64);
            c.live.push(s.live);
            c.body.push(convert::record_to_stored(r, s.updated).encode_to_vec());
            c.updated_micros.push(s.updated.timestamp_micros());
            c.deletion_reason.push(&s.deletion.0);
            c.deletion_note.push(&s.deletion.1);
        }
        Ok(c)
    }

    /// The parameters, in the statement's column order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.furnisher,
            &self.record_id,
            &self.subject_id,
            &self.version,
            &self.live,
            &self.body,
            &self.updated_micros,
            &self.deletion_reason,
            &self.deletion_note,
        ]
    }
}

/// Inquiries as the column arrays a group write takes.
pub(super) struct InquiryColumns<'a> {
    subject_id: Vec<&'a str>,
    time_micros: Vec<i64>,
    query_id: Vec<&'a str>,
    body: Vec<Vec<u8>>,
}

impl<'a> InquiryColumns<'a> {
    /// The columns of `inquiries`.
    pub(super) fn of(inquiries: &'a [Inquiry]) -> Self {
        Self {
            subject_id: inquiries.iter().map(|i| i.subject_id.as_str()).collect(),
            time_micros: inquiries.iter().map(|i| i.time.timestamp_micros()).collect(),
            query_id: inquiries.iter().map(|i| i.query_id.as_str()).collect(),
            body: inquiries.iter().map(|i| convert::inquiry_to_pb(i).encode_to_vec()).collect(),
        }
    }

    /// The parameters, in the statement's column order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.subject_id, &self.time_micros, &self.query_id, &self.body]
    }
}

/// What a group appends to the log, as the parameters of its log part: the entries, the
/// subtree hashes they complete, and the head's move.
pub(super) struct LogColumns<'a> {
    idx: Vec<i64>,
    leaf: &'a [Vec<u8>],
    node_level: Vec<i16>,
    node_idx: Vec<i64>,
    node_hash: Vec<&'a [u8]>,
    new_size: i64,
    new_root: &'a [u8],
    old_size: i64,
}

impl<'a> LogColumns<'a> {
    /// `leaves` appended from size `old_size`, completing `nodes`; the new head has `root`.
    pub(super) fn of(old_size: u64, leaves: &'a [Vec<u8>], nodes: &'a [((u8, u64), Hash)], root: &'a Hash) -> Self {
        let new_size = old_size + leaves.len() as u64;
        Self {
            idx: (old_size..new_size).map(|i| i as i64).collect(),
            leaf: leaves,
            node_level: nodes.iter().map(|((l, _), _)| i16::from(*l)).collect(),
            node_idx: nodes.iter().map(|((_, i), _)| *i as i64).collect(),
            node_hash: nodes.iter().map(|(_, h)| &h[..]).collect(),
            new_size: new_size as i64,
            new_root: &root[..],
            old_size: old_size as i64,
        }
    }

    /// The parameters, in the statement's order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.idx,
            &self.leaf,
            &self.node_level,
            &self.node_idx,
            &self.node_hash,
            &self.new_size,
            &self.new_root,
            &self.old_size,
        ]
    }
}
