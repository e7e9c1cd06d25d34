//! Signed checkpoints in the C2SP `tlog-checkpoint` format, as a C2SP `signed-note` with an
//! Ed25519 signature, so transparency-log tooling (Go's `golang.org/x/mod/sumdb/note`, sigsum,
//! Rekor clients) can read them:
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root hash>\n
//! \n
//! — <key name> <base64(4-byte key id ‖ 64-byte signature)>\n
//! ```
//!
//! The key id is the first four bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key).

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::audit::merkle::Hash;

/// Ed25519's algorithm byte in signed notes.
const ALG_ED25519: u8 = 0x01;

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The log's origin line (also the key name).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// The RFC 6962 root hash.
    pub root: Hash,
}

/// Why a signed checkpoint was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CheckpointError {
    /// Not a signed note of a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key verifies.
    #[error("no valid signature by {0}")]
    BadSignature(String),
    /// A verifier key string that is not `name+hexid+base64key`.
    #[error("malformed verifier key")]
    BadKey,
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl Checkpoint {
    /// The note body: origin, size and root, one per line.
    pub(crate) fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// The signed note, signed by `key` under the name `origin`.
    pub(crate) fn sign(&self, key: &SigningKey) -> String {
        sign_note(&self.body(), &self.origin, key)
    }

    /// Parses `note` and checks that `name`'s key signed it.
    pub(crate) fn open(note: &str, name: &str, key: &VerifyingKey) -> Result<Self, CheckpointError> {
        let body = open_note(note, name, key)?;
        let mut lines = body.lines();
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(CheckpointError::Malformed("no origin"))?;
        let size = lines.next().and_then(|s| s.parse().ok()).ok_or(CheckpointError::Malformed("bad size"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or(CheckpointError::Malformed("bad root hash"))?;
        Ok(Self { origin: origin.to_owned(), size, root })
    }
}

/// `body` (lines ending in a newline, none empty) as a signed note, signed by `key` under `name`.
pub(crate) fn sign_note(body: &str, name: &str, key: &SigningKey) -> String {
    let sig = key.sign(body.as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{body}\n\u{2014} {name} {}\n", STANDARD.encode(blob))
}

/// The body of signed note `note` (ending in a newline), once a signature by `name`'s `key`
/// verifies over it. A line with that name and key id that does *not* verify rejects the whole
/// note, even beside a good one (C2SP signed-note: such a note is malformed).
pub(crate) fn open_note(note: &str, name: &str, key: &VerifyingKey) -> Result<String, CheckpointError> {
    let (body, sigs) = note.split_once("\n\n").ok_or(CheckpointError::Malformed("no blank line"))?;
    let body = format!("{body}\n");
    let want = key_id(name, key);
    let mut signed = false;
    for l in sigs.lines().filter_map(|l| l.strip_prefix("\u{2014} ")) {
        let Some((n, b64)) = l.split_once(' ') else { continue };
        let Ok(blob) = STANDARD.decode(b64) else { continue };
        if n != name || blob.len() < 4 || blob[..4] != want {
            continue;
        }
        let good = blob.len() == 68
            && Signature::from_slice(&blob[4..]).is_ok_and(|sig| key.verify(body.as_bytes(), &sig).is_ok());
        if !good {
            return Err(CheckpointError::BadSignature(name.to_owned()));
        }
        signed = true;
    }
    if !signed {
        return Err(CheckpointError::BadSignature(name.to_owned()));
    }
    Ok(body)
}

/// The verifier key string `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
pub(crate) fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut blob = vec![ALG_ED25519];
    blob.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex::encode(key_id(name, key)), STANDARD.encode(blob))
}

/// Parses a verifier key string into its name and key, checking the key id.
pub(crate) fn parse_verifier_key(s: &str) -> Result<(String, VerifyingKey), CheckpointError> {
    let mut parts = s.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CheckpointError::BadKey);
    };
    let blob = STANDARD.decode(b64).map_err(|_| CheckpointError::BadKey)?;
    let (Some(&ALG_ED25519), Ok(bytes)) = (blob.first(), <[u8; 32]>::try_from(&blob[1.min(blob.len())..])) else {
        return Err(CheckpointError::BadKey);
    };
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointError::BadKey)?;
    if hex::encode(key_id(name, &key)) != id {
        return Err(CheckpointError::BadKey);
    }
    Ok((name.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn signs_and_opens_and_refuses_tampering() {
        let cp = Checkpoint { origin: "fed.test/institution/bank".into(), size: 42, root: [9u8; 32] };
        let note = cp.sign(&key());
        assert!(note.starts_with("fed.test/institution/bank\n42\nCQkJ"));
        assert!(note.contains("\n\n\u{2014} fed.test/institution/bank "));
        let vk = key().verifying_key();
        assert_eq!(Checkpoint::open(&note, &cp.origin, &vk).unwrap(), cp);
        let forged = note.replace("\n42\n", "\n43\n");
        assert!(matches!(Checkpoint::open(&forged, &cp.origin, &vk), Err(CheckpointError::BadSignature(_))));
        // A failing line from the known key rejects the note even beside a good one.
        let broken: String = {
            let (body, line) = note.split_once("\n\n").unwrap();
            let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
            let mut blob = STANDARD.decode(b64).unwrap();
            blob[10] ^= 1;
            format!("{body}\n\n{line}{head} {}\n", STANDARD.encode(blob))
        };
        assert!(matches!(Checkpoint::open(&broken, &cp.origin, &vk), Err(CheckpointError::BadSignature(_))));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(Checkpoint::open(&note, &cp.origin, &other).is_err());
        let (name, parsed) = parse_verifier_key(&verifier_key(&cp.origin, &vk)).unwrap();
        assert_eq!((name.as_str(), parsed), (cp.origin.as_str(), vk));
    }

    /// The Go `note` package's documented example: the verifier key
    /// `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW` and its signed
    /// message, which our verifier must accept, proving the format matches.
    #[test]
    fn accepts_the_go_note_package_example() {
        let (name, vk) =
            parse_verifier_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        let msg =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let note = format!("{msg}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
        // Not a checkpoint body, so check the signature alone.
        let (body, sigs) = note.split_once("\n\n").unwrap();
        let blob = STANDARD.decode(sigs.trim().rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(blob[..4], key_id(&name, &vk));
        let sig = Signature::from_slice(&blob[4..]).unwrap();
        assert!(vk.verify(format!("{body}\n").as_bytes(), &sig).is_ok());
    }
}
