//! Consent tokens: a JWS (RFC 7515, compact, ES256) that the asking institution's application
//! signs with its own key, carrying its certificate (`x5c`) so any member can check that it
//! chains to the federation's authority and is not revoked — the same check as an mTLS peer.
//! The claims bind the consent to one person (`sub`), one purpose, one asking institution
//! (`iss`), a short life (`iat`..`exp`, at most [`MAX_TTL`]), a nonce (`jti`) and the SHA-256 of
//! the consent evidence the institution keeps (`evidence_sha256`), which every answering node
//! logs and a regulator may demand. Binding to a query and replay are the caller's checks.

use std::{path::Path, sync::Arc};

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    domain::{inquiry::Purpose, subject::is_valid_subject_id},
    net::{
        identity::{Identity, Role},
        revocation::Revocation,
    },
};

/// The JWS `typ` of a consent token, so no other JWT signed by an application passes as one.
pub const TOKEN_TYPE: &str = "bureau-consent+jwt";
/// Longest life a token may have: a consent is for one application, not a standing licence.
pub const MAX_TTL: Duration = Duration::hours(24);
/// Longest token accepted (a certificate and the claims fit in about 1.5 kB).
pub const MAX_TOKEN_LEN: usize = 8192;
/// How far ahead of the node's clock a token's issue time may be (the application's clock).
const CLOCK_SKEW: Duration = Duration::minutes(5);
/// What the audit log holds of a verified token: this prefix and the evidence hash.
pub const LOGGED_PREFIX: &str = "sha256:";

/// What a consent token states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentClaims {
    /// The asking institution (its application's certificate must name it).
    pub iss: String,
    /// The person's pseudonymous subject id.
    pub sub: String,
    /// The one purpose the person consented to.
    pub purpose: Purpose,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// A fresh nonce: a token serves one federated query only.
    pub jti: String,
    /// SHA-256 (hex) of the consent evidence the institution keeps (a signed form, a recording).
    pub evidence_sha256: String,
}

/// A token whose signature, chain and claims' shape were checked.
#[derive(Debug, Clone)]
pub struct VerifiedConsent {
    /// Its claims.
    pub claims: ConsentClaims,
    /// The application that signed it, from its certificate.
    pub signer: Identity,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a consent token at all, or one with a malformed part.
    #[error("not a valid consent token: {0}")]
    Malformed(String),
    /// The signature does not verify with the certificate's key.
    #[error("the consent token's signature does not verify")]
    BadSignature,
    /// The certificate does not chain to the authority, is expired or is revoked.
    #[error("the consent token's certificate is not trusted: {0}")]
    Untrusted(String),
    /// The token has expired, is not yet valid, or claims a life longer than [`MAX_TTL`].
    #[error("the consent token is expired or outside its validity: {0}")]
    Expired(String),
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// A key or certificate file that could not be read or parsed.
    #[error("{0}")]
    Material(String),
    /// Claims that no node would accept.
    #[error("{0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The SHA-256 of consent evidence, hex: what a token carries and a regulator checks.
pub fn evidence_hash(evidence: &[u8]) -> String {
    hex::encode(Sha256::digest(evidence))
}

/// What to sign: the person, the purpose, the evidence's hash and the token's life.
#[derive(Debug, Clone)]
pub struct ConsentRequest<'a> {
    /// The person's pseudonymous subject id.
    pub subject: &'a str,
    /// The purpose consented to.
    pub purpose: Purpose,
    /// SHA-256 hex of the consent evidence.
    pub evidence_sha256: &'a str,
    /// The token's life, at most [`MAX_TTL`].
    pub ttl: Duration,
    /// Issue time.
    pub now: DateTime<Utc>,
}

/// Signs a consent token with an application's PKCS#8 key (PEM) and its certificate (PEM).
pub fn mint(key_pem: &str, cert_pem: &str, req: &ConsentRequest<'_>) -> Result<String, MintError> {
    if !is_valid_subject_id(req.subject) {
        return Err(MintError::Invalid("subject must be 64 lowercase hex characters".into()));
    }
    if req.ttl <= Duration::zero() || req.ttl > MAX_TTL {
        return Err(MintError::Invalid(format!("ttl must be positive and at most {} hours", MAX_TTL.num_hours())));
    }
    if !is_hex64(req.evidence_sha256) {
        return Err(MintError::Invalid("evidence hash must be 64 lowercase hex characters".into()));
    }
    let cert = pem_der(cert_pem, "CERTIFICATE")?;
    let key = pem_der(key_pem, "PRIVATE KEY")?;
    let signer = Identity::from_cert_der(&cert).map_err(|e| MintError::Material(format!("certificate: {e}")))?;
    if signer.role != Role::Application {
        return Err(MintError::Material(format!("{signer} is not an application: only applications sign consent")));
    }
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let claims = ConsentClaims {
        iss: signer.id.clone(),
        sub: req.subject.to_owned(),
        purpose: req.purpose,
        iat: req.now.timestamp(),
        exp: (req.now + req.ttl).timestamp(),
        jti: hex::encode(nonce),
        evidence_sha256: req.evidence_sha256.to_owned(),
    };
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.x5c = Some(vec![base64::engine::general_purpose::STANDARD.encode(&cert)]);
    Ok(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&key))?)
}

/// [`mint`] with the key and certificate read from files.
pub fn mint_with_files(key: &Path, cert: &Path, req: &ConsentRequest<'_>) -> Result<String, MintError> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| MintError::Material(format!("{}: {e}", p.display())));
    mint(&read(key)?, &read(cert)?, req)
}

/// The DER of the first `label` block (`CERTIFICATE`, or a PKCS#8 `PRIVATE KEY`) in `pem`.
fn pem_der(pem: &str, label: &str) -> Result<Vec<u8>, MintError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivatePkcs8KeyDer};
    let der = match label {
        "CERTIFICATE" => CertificateDer::from_pem_slice(pem.as_bytes()).map(|c| c.to_vec()),
        _ => PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map(|k| k.secret_pkcs8_der().to_vec()),
    };
    der.map_err(|e| MintError::Material(format!("no {label} in the PEM given: {e}")))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True when `consent` has a JWS's shape (three base64url parts): a token, not a legacy
/// reference string.
pub fn looks_like_token(consent: &str) -> bool {
    let parts: Vec<&str> = consent.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// What the audit log keeps of a consent: for a token, `sha256:` and the evidence hash it
/// carries (the token itself is large and says nothing more a regulator needs); otherwise the
/// reference as given. Only tokens that were verified reach an entry that records an answer.
pub fn logged_form(consent: &str) -> String {
    if !looks_like_token(consent) {
        return consent.to_owned();
    }
    match unverified_claims(consent) {
        Some(c) if is_hex64(&c.evidence_sha256) => format!("{LOGGED_PREFIX}{}", c.evidence_sha256),
        _ => format!("token-sha256:{}", evidence_hash(consent.as_bytes())),
    }
}

fn unverified_claims(token: &str) -> Option<ConsentClaims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks consent tokens against the federation's authority and its revocation list in force.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    anchors: Arc<Vec<TrustAnchor<'static>>>,
    revocation: Arc<Revocation>,
    federation: String,
}

impl TokenVerifier {
    /// A verifier for `federation`'s authority certificates `ca`, following `revocation`.
    pub fn new(ca: &[CertificateDer<'_>], revocation: Arc<Revocation>, federation: &str) -> Result<Self, TokenError> {
        let anchors = ca
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TokenError::Untrusted(format!("trust anchor: {e}")))?;
        Ok(Self { anchors: Arc::new(anchors), revocation, federation: federation.to_owned() })
    }

    /// Verifies `token` at `now`: its type, the certificate's chain and revocation, that the
    /// certificate is an application of the institution the token names, the signature, and
    /// the claims' shape and life. Binding to a query is the caller's.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedConsent, TokenError> {
        let malformed = |why: &str| TokenError::Malformed(why.to_owned());
        if token.len() > MAX_TOKEN_LEN || !looks_like_token(token) {
            return Err(malformed("expected a compact JWS"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(malformed("expected alg ES256 and typ bureau-consent+jwt"));
        }
        let chain = header.x5c.as_deref().unwrap_or_default();
        let der: Vec<Vec<u8>> = chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
            .collect::<Result<_, _>>()
            .map_err(|_| malformed("x5c is not base64"))?;
        let leaf = der.first().ok_or_else(|| malformed("no x5c certificate"))?;
        self.check_chain(leaf, &der[1..], now)?;
        let signer = Identity::from_cert_der(leaf).map_err(|e| TokenError::Untrusted(e.to_string()))?;
        if signer.role != Role::Application || signer.federation != self.federation {
            return Err(TokenError::Untrusted(format!("{signer} is not an application of this federation")));
        }
        let point = public_key(leaf)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<ConsentClaims>(token, &DecodingKey::from_ec_der(&point), &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(format!("claims: {e}")),
            })?
            .claims;
        if claims.iss != signer.id {
            return Err(TokenError::Untrusted(format!("signed by {signer}, claims institution {}", claims.iss)));
        }
        if !is_valid_subject_id(&claims.sub) || !is_hex64(&claims.evidence_sha256) {
            return Err(malformed("sub and evidence_sha256 must be 64 lowercase hex characters"));
        }
        if claims.jti.len() < 16 || claims.jti.len() > 64 || !claims.jti.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed("jti must be 16 to 64 alphanumeric characters"));
        }
        let t = now.timestamp();
        if claims.exp <= t {
            return Err(TokenError::Expired(format!("expired {} s ago", t - claims.exp)));
        }
        if claims.iat > t + CLOCK_SKEW.num_seconds() {
            return Err(TokenError::Expired("issued in the future".into()));
        }
        if claims.exp - claims.iat > MAX_TTL.num_seconds() {
            return Err(TokenError::Expired(format!("lives longer than {} hours", MAX_TTL.num_hours())));
        }
        Ok(VerifiedConsent { claims, signer })
    }

    fn check_chain(&self, leaf: &[u8], intermediates: &[Vec<u8>], now: DateTime<Utc>) -> Result<(), TokenError> {
        let leaf = CertificateDer::from(leaf);
        let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| TokenError::Untrusted(e.to_string()))?;
        let intermediates: Vec<CertificateDer<'_>> =
            intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let crls = self.revocation.current();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
        let revocation = super::revocation::Revocation::end_entity_options(&crl_refs);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.timestamp().max(0) as u64));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertRevoked => TokenError::Untrusted("certificate revoked".into()),
            webpki::Error::UnknownIssuer => TokenError::Untrusted("certificate not issued by the authority".into()),
            e => TokenError::Untrusted(e.to_string()),
        })?;
        Ok(())
    }
}

/// The EC public key point of a certificate (what ES256 verification takes).
fn public_key(der: &[u8]) -> Result<Vec<u8>, TokenError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| TokenError::Untrusted("bad certificate".into()))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_form_keeps_legacy_strings_and_hashes_tokens() {
        assert_eq!(logged_form("consent-1"), "consent-1");
        assert!(!looks_like_token("a.b"));
        assert!(looks_like_token("a.b.c"));
        assert!(logged_form("a.b.c").starts_with("token-sha256:"));
    }

    #[test]
    fn evidence_hash_is_sha256_hex() {
        assert_eq!(evidence_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
