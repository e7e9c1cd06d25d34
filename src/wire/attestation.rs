//! An attestation's protobuf form and the JSON bundle a verifier keeps (byte fields in base64).

use base64::{engine::general_purpose::STANDARD, Engine as _};

use crate::{audit::attestation::Bundle, wire::pb::bureau::v1 as pb};

/// The protobuf form of a bundle; its byte fields were encoded by this node, so they decode.
pub(crate) fn bundle_to_pb(b: Bundle) -> pb::Attestation {
    pb::Attestation {
        log_entry: STANDARD.decode(&b.log_entry).unwrap_or_default(),
        inclusion_proof: b.inclusion_proof.iter().map(|h| STANDARD.decode(h).unwrap_or_default()).collect(),
        jws: b.jws,
        log_index: b.log_index,
        tree_size: b.tree_size,
        checkpoint: b.checkpoint,
    }
}

/// The bundle a verifier keeps, from the API's answer.
pub fn bundle_from_pb(a: &pb::Attestation) -> Bundle {
    Bundle {
        jws: a.jws.clone(),
        log_index: a.log_index,
        log_entry: STANDARD.encode(&a.log_entry),
        inclusion_proof: a.inclusion_proof.iter().map(|h| STANDARD.encode(h)).collect(),
        tree_size: a.tree_size,
        checkpoint: a.checkpoint.clone(),
    }
}
