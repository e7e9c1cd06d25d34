//! The ledger's writes inside one write set: append entries to the log (with their Merkle
//! subtree hashes), apply a record under the version rule, and read a record by its index key.

use super::*;

pub(super) fn node_reader(ledger: &Tree) -> impl FnMut(u8, u64) -> Result<Hash, StoreError> + '_ {
    move |level, index| {
        let key = keys::node(level, index);
        match ledger.get(key)? {
            Some(v) => v.as_ref().try_into().map_err(|_| corrupt(&key, "node hash is not 32 bytes")),
            None => Err(corrupt(&key, "missing audit node")),
        }
    }
}

/// Appends `entries` in order to the log in `ws`; returns the index of the first.
pub(super) fn append(ws: &mut WriteSet<'_>, entries: &[Entry]) -> Result<u64, StoreError> {
    let first = ws.log_size;
    let mut size = first;
    for e in entries {
        let bytes = e.to_bytes();
        let new = merkle::append_nodes(size, merkle::leaf_hash(&bytes), |level, index| {
            let key = keys::node(level, index);
            match ws.get(&key)? {
                Some(v) => v.as_ref().try_into().map_err(|_| corrupt(&key, "node hash is not 32 bytes")),
                None => Err(corrupt(&key, "missing audit node")),
            }
        })?;
        ws.insert(keys::entry(size), bytes);
        for ((level, index), h) in new {
            ws.insert(keys::node(level, index), &h[..]);
        }
        size += 1;
    }
    ws.insert(keys::SIZE, &size.to_be_bytes()[..]);
    ws.log_size = size;
    Ok(first)
}

/// Makes `change` in `ws` if every expectation holds (its entries appended); whether they did.
pub(super) fn compare_and_set(ws: &mut WriteSet<'_>, change: &StateChange) -> Result<bool, StoreError> {
    for (space, key, want) in &change.expect {
        let now = ws.get(&keys::state(*space, key))?;
        if now.as_deref() != want.as_deref() {
            return Ok(false);
        }
    }
    for (space, key, value) in &change.put {
        match value {
            Some(v) => ws.insert(keys::state(*space, key), v.clone()),
            None => ws.remove(keys::state(*space, key)),
        }
    }
    append(ws, &change.entries)?;
    Ok(true)
}

/// Stores one record under the version rule in `ws`.
pub(super) fn apply(
    ws: &mut WriteSet<'_>,
    r: &CreditRecord,
    value: Vec<u8>,
    must_exist: bool,
) -> Result<ApplyResult, StoreError> {
    let key = keys::record(&r.furnisher, &r.record_id);
    let existing = match ws.get(&key)? {
        Some(bytes) => Some(decode(&key, &bytes)?),
        None => None,
    };
    let shape =
        existing.as_ref().and_then(|e| e.record.as_ref().map(|rec| (rec.version, !e.deleted, rec.subject_id.as_str())));
    let a = version_rule(r, shape, must_exist);
    if matches!(a.applied, crate::storage::Applied::Created | crate::storage::Applied::Replaced) {
        ws.insert(key, value);
        ws.insert(keys::subject(&r.subject_id, &r.furnisher, &r.record_id), &[][..]);
    }
    Ok(a)
}

pub(super) fn indexed(ledger: &Tree, index_key: &[u8], subject: &str) -> Result<Option<StoredRecord>, StoreError> {
    let rkey = keys::record_of_index(index_key, subject);
    match ledger.get(&rkey)? {
        Some(bytes) => live(&rkey, decode(&rkey, &bytes)?),
        None => Ok(None),
    }
}
