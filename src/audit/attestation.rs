//! Threshold attestations: a node's signed statement that a person's score met (or did not
//! meet) a policy's threshold, for one verifier and its nonce, carrying no score and no reasons.
//!
//! The statement is a JWS (RFC 7515, compact form) with `alg` `EdDSA` (RFC 8037), signed by the
//! node's Ed25519 checkpoint key, so any JOSE library checks it with the public key alone. Its
//! log entry carries the JWS itself, and the bundle a verifier keeps carries that entry, its
//! RFC 9162 inclusion proof and the node's C2SP checkpoint signed by the same key: offline, the
//! verifier checks that the node signed the statement *and* logged it where a regulator sees it.

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::audit::{
    checkpoint::{parse_verifier_key, Checkpoint},
    merkle::{leaf_hash, verify_inclusion, Hash},
    Action, Entry,
};

/// The JWS `typ` of an attestation, so a token of another kind is never taken for one.
pub const TYP: &str = "bureau-attestation+jwt";
/// Outcome when the score met the threshold (and nothing else stood in the way).
pub const MEETS: &str = "meets";
/// Outcome otherwise.
pub const DOES_NOT_MEET: &str = "does_not_meet";

/// What an attestation states. Deliberately no score, band or reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The node's log origin (`<federation>/institution/<id>`), also its key's name.
    pub iss: String,
    /// The person's pseudonym.
    pub sub: String,
    /// The verifier it is for.
    pub aud: String,
    /// The verifier's nonce.
    pub nonce: String,
    /// The policy's name.
    pub policy: String,
    /// The policy's threshold.
    pub threshold: i32,
    /// [`MEETS`] or [`DOES_NOT_MEET`].
    pub outcome: String,
    /// The scorecard model's version.
    pub model: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The federated query's id: the node's log has the decision under it.
    pub jti: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Signs `claims` as a compact JWS with the node's key; `kid` is its C2SP verifier key string.
pub(crate) fn sign(claims: &Claims, key: &SigningKey, kid: &str) -> String {
    let header = Header { alg: "EdDSA".into(), typ: TYP.into(), kid: kid.into() };
    // Both are plain structs of strings and numbers: serialising cannot fail.
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{h}.{p}");
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// The log entry an attestation is recorded under: the JWS in `detail`, the outcome, the
/// verifier as counterparty. Like the statement, it holds no score.
pub(crate) fn entry(now: DateTime<Utc>, institution: &str, claims: &Claims, consent: &str, jws: &str) -> Entry {
    let mut e = Entry::new(Action::AttestationIssued, institution, claims.outcome.clone());
    e.time = now;
    e.query_id = claims.jti.clone();
    e.counterparty = claims.aud.clone();
    e.subject_id = claims.sub.clone();
    e.consent_reference = consent.to_owned();
    e.model_version = claims.model.clone();
    e.detail = jws.to_owned();
    e
}

/// What a verifier keeps: the statement, its log entry, the inclusion proof and the signed
/// checkpoint it proves against. Written as JSON (byte fields in standard base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The compact JWS.
    pub jws: String,
    /// The entry's index in the node's log.
    pub log_index: u64,
    /// The entry's exact leaf bytes, base64.
    pub log_entry: String,
    /// The RFC 9162 inclusion proof, base64 hashes, leaf to root.
    pub inclusion_proof: Vec<String>,
    /// The tree size the proof and checkpoint are for.
    pub tree_size: u64,
    /// The node's C2SP signed checkpoint.
    pub checkpoint: String,
}

/// Why an attestation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    /// Not a bundle, a JWS of the right form, or a key string.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// The statement's signature does not verify with the node's key.
    #[error("the statement's signature does not verify with the node's key")]
    BadSignature,
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(i64),
    /// Issued for another verifier.
    #[error("issued for verifier {0:?}")]
    WrongVerifier(String),
    /// Issued for another nonce.
    #[error("issued for another nonce")]
    WrongNonce,
    /// The checkpoint is not signed by the node's key, or is for another tree.
    #[error("checkpoint: {0}")]
    BadCheckpoint(String),
    /// The log entry does not carry this statement, or is not in the signed tree.
    #[error("not in the node's log: {0}")]
    NotInLog(&'static str),
}

fn b64(s: &str) -> Result<Vec<u8>, AttestationError> {
    STANDARD.decode(s).map_err(|_| AttestationError::Malformed("base64"))
}

/// Checks `bundle` offline against the node's verifier key string (`name+id+base64key`): the
/// JWS signature, its audience, nonce and expiry at `now`, that the log entry carries exactly
/// this JWS, and that the entry is included in the tree the node's signed checkpoint commits to.
pub fn verify(
    bundle: &Bundle,
    node_key: &str,
    verifier: &str,
    nonce: &str,
    now: DateTime<Utc>,
) -> Result<Claims, AttestationError> {
    let (name, key) = parse_verifier_key(node_key).map_err(|_| AttestationError::Malformed("node key"))?;
    let claims = open(&bundle.jws, &key)?;
    if claims.iss != name {
        return Err(AttestationError::BadSignature);
    }
    if claims.aud != verifier {
        return Err(AttestationError::WrongVerifier(claims.aud));
    }
    if claims.nonce != nonce {
        return Err(AttestationError::WrongNonce);
    }
    if now.timestamp() >= claims.exp {
        return Err(AttestationError::Expired(claims.exp));
    }
    let cp = Checkpoint::open(&bundle.checkpoint, &name, &key)
        .map_err(|e| AttestationError::BadCheckpoint(e.to_string()))?;
    if cp.size != bundle.tree_size {
        return Err(AttestationError::BadCheckpoint(format!("for size {}, not {}", cp.size, bundle.tree_size)));
    }
    let leaf = b64(&bundle.log_entry)?;
    let entry: Entry =
        serde_json::from_slice(&leaf).map_err(|_| AttestationError::NotInLog("entry is not a log entry"))?;
    if entry.action != Action::AttestationIssued || entry.detail != bundle.jws {
        return Err(AttestationError::NotInLog("the entry does not carry this statement"));
    }
    let proof: Vec<Hash> = bundle
        .inclusion_proof
        .iter()
        .map(|h| b64(h)?.try_into().map_err(|_| AttestationError::Malformed("proof hash")))
        .collect::<Result<_, _>>()?;
    if !verify_inclusion(&leaf_hash(&leaf), bundle.log_index, bundle.tree_size, &proof, &cp.root) {
        return Err(AttestationError::NotInLog("the inclusion proof does not reach the signed root"));
    }
    Ok(claims)
}

/// The claims of compact JWS `jws` once its EdDSA signature verifies with `key`.
fn open(jws: &str, key: &VerifyingKey) -> Result<Claims, AttestationError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AttestationError::Malformed("not a compact JWS"));
    };
    let bad = |_| AttestationError::Malformed("JWS encoding");
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(bad)?)
        .map_err(|_| AttestationError::Malformed("header"))?;
    if header.alg != "EdDSA" || header.typ != TYP {
        return Err(AttestationError::Malformed("not an EdDSA bureau attestation"));
    }
    let sig =
        Signature::from_slice(&URL_SAFE_NO_PAD.decode(s).map_err(bad)?).map_err(|_| AttestationError::BadSignature)?;
    key.verify_strict(format!("{h}.{p}").as_bytes(), &sig).map_err(|_| AttestationError::BadSignature)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(bad)?).map_err(|_| AttestationError::Malformed("claims"))
}
