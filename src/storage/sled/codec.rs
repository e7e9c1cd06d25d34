//! The on-disk form of records and inquiries in the ledger tree: the API's protobuf messages
//! (their wire format evolves safely), decoded into domain types or a `Corrupt` error naming
//! the key.

use chrono::{DateTime, Utc};
use prost::Message as _;

use super::corrupt;
use crate::{
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{StoreError, StoredRecord},
    wire::{convert, pb::bureau::v1 as pb},
};

/// The on-disk form of a record: the API's protobuf message (its wire format evolves safely)
/// plus a tombstone.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredValue {
    #[prost(message, optional, tag = "1")]
    pub(super) record: Option<pb::CreditRecord>,
    #[prost(bool, tag = "2")]
    pub(super) deleted: bool,
    #[prost(string, tag = "3")]
    pub(super) deletion_reason: String,
    #[prost(string, tag = "4")]
    pub(super) deletion_note: String,
}

pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredValue, StoreError> {
    StoredValue::decode(bytes).map_err(|e| corrupt(key, e.to_string()))
}

pub(super) fn live(key: &[u8], v: StoredValue) -> Result<Option<StoredRecord>, StoreError> {
    if v.deleted {
        return Ok(None);
    }
    let pb = v.record.ok_or_else(|| corrupt(key, "no record"))?;
    let updated =
        pb.update_time.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)).unwrap_or_default();
    let record = convert::record_from_stored(pb).map_err(|why| corrupt(key, why))?;
    Ok(Some(StoredRecord { record, updated }))
}

pub(super) fn encode_record(r: &CreditRecord, now: DateTime<Utc>) -> Vec<u8> {
    StoredValue { record: Some(convert::record_to_stored(r, now)), ..Default::default() }.encode_to_vec()
}

pub(super) fn decode_inquiry(k: &[u8], v: &[u8]) -> Result<Inquiry, StoreError> {
    let pb = pb::Inquiry::decode(v).map_err(|e| corrupt(k, e.to_string()))?;
    convert::inquiry_from_pb(&pb).ok_or_else(|| corrupt(k, "incomplete inquiry"))
}
