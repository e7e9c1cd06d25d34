//! Page tokens: opaque to callers, versioned, bound to the listing they came from, and checked.
//!
//! `base64url(version ‖ kind ‖ SHA-256(parent)[..8] ‖ cursor ‖ SHA-256(all before)[..8])`. The
//! cursor is a key (never an offset), so rows added between pages are never listed twice. A
//! token from another listing or parent, or altered in transit, is INVALID_ARGUMENT. The
//! checksum is not a secret MAC: a caller who forges one only starts a listing it may read
//! anyway at another key.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use sha2::{Digest, Sha256};

use crate::{
    app::{InquiryCursor, RecordCursor},
    grpc::error::ApiError,
};

const VERSION: u8 = 1;

/// Which listing a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Listing {
    /// `ListRecords` of one subject.
    Records = 1,
    /// `ListSubjectInquiries` of one subject.
    Inquiries = 2,
    /// `ListAuditEntries`.
    Audit = 3,
    /// `ListDisputes`.
    Disputes = 4,
}

fn digest8(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = Sha256::new();
    parts.iter().for_each(|p| h.update(p));
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The token resuming `listing` of `parent` at `cursor`.
pub(crate) fn encode(listing: Listing, parent: &str, cursor: &[u8]) -> String {
    let mut raw = vec![VERSION, listing as u8];
    raw.extend_from_slice(&digest8(&[parent.as_bytes()]));
    raw.extend_from_slice(cursor);
    let sum = digest8(&[&raw]);
    raw.extend_from_slice(&sum);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The cursor of `token` for `listing` of `parent`; `None` for the empty token (first page).
pub(crate) fn decode(token: &str, listing: Listing, parent: &str) -> Result<Option<Vec<u8>>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::invalid("page_token", "is not a token from a previous page of this listing");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    if raw.len() < 18 {
        return Err(bad());
    }
    let (body, sum) = raw.split_at(raw.len() - 8);
    if digest8(&[body]) != sum || body[0] != VERSION || body[1] != listing as u8 {
        return Err(bad());
    }
    if body[2..10] != digest8(&[parent.as_bytes()]) {
        return Err(ApiError::invalid("page_token", "belongs to a listing of another parent"));
    }
    Ok(Some(body[10..].to_vec()))
}

/// A record cursor's bytes: `furnisher 0x00 record_id`.
pub(crate) fn record_cursor(c: &RecordCursor) -> Vec<u8> {
    [c.furnisher.as_bytes(), &[0], c.record_id.as_bytes()].concat()
}

/// A record cursor from its bytes.
pub(crate) fn parse_record_cursor(b: &[u8]) -> Result<RecordCursor, ApiError> {
    let bad = || ApiError::invalid("page_token", "is not a token from a previous page of this listing");
    let at = b.iter().position(|&c| c == 0).ok_or_else(bad)?;
    let furnisher = String::from_utf8(b[..at].to_vec()).map_err(|_| bad())?;
    let record_id = String::from_utf8(b[at + 1..].to_vec()).map_err(|_| bad())?;
    Ok(RecordCursor { furnisher, record_id })
}

/// An inquiry cursor's bytes: `time_micros(be) ‖ query_id`.
pub(crate) fn inquiry_cursor(c: &InquiryCursor) -> Vec<u8> {
    [&c.time_micros.to_be_bytes()[..], c.query_id.as_bytes()].concat()
}

/// An inquiry cursor from its bytes.
pub(crate) fn parse_inquiry_cursor(b: &[u8]) -> Result<InquiryCursor, ApiError> {
    let bad = || ApiError::invalid("page_token", "is not a token from a previous page of this listing");
    let time: [u8; 8] = b.get(..8).and_then(|t| t.try_into().ok()).ok_or_else(bad)?;
    let query_id = String::from_utf8(b[8..].to_vec()).map_err(|_| bad())?;
    Ok(InquiryCursor { time_micros: i64::from_be_bytes(time), query_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_parents_listings_and_tampering() {
        let c = RecordCursor { furnisher: "bank".into(), record_id: "card-7".into() };
        let t = encode(Listing::Records, "subjects/aa", &record_cursor(&c));
        let back = decode(&t, Listing::Records, "subjects/aa").unwrap().unwrap();
        assert_eq!(parse_record_cursor(&back).unwrap(), c);
        assert_eq!(decode("", Listing::Records, "x").unwrap(), None);
        assert!(decode(&t, Listing::Records, "subjects/bb").is_err(), "another parent");
        assert!(decode(&t, Listing::Inquiries, "subjects/aa").is_err(), "another listing");
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[12] ^= 1;
        assert!(decode(&URL_SAFE_NO_PAD.encode(&raw), Listing::Records, "subjects/aa").is_err(), "tampered");
        assert!(decode("not base64!", Listing::Records, "subjects/aa").is_err());
        assert!(decode("AAAA", Listing::Records, "subjects/aa").is_err(), "too short");
        let i = InquiryCursor { time_micros: 1_700_000_000_000_000, query_id: "q-1".into() };
        let t = encode(Listing::Inquiries, "s", &inquiry_cursor(&i));
        let back = decode(&t, Listing::Inquiries, "s").unwrap().unwrap();
        assert_eq!(parse_inquiry_cursor(&back).unwrap(), i);
    }
}
