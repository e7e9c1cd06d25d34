//! C2SP `tlog-cosignature` v1 with Ed25519: a witness's timestamped statement that a checkpoint
//! is the largest consistent tree it has seen of that log. The signature line is
//! `— <witness name> base64(key id ‖ u64 BE timestamp ‖ 64-byte signature)` over
//!
//! ```text
//! cosignature/v1\ntime <timestamp>\n<checkpoint body>
//! ```
//!
//! with key id SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]; the verifier key string is
//! `<name>+<hex key id>+base64(0x04 ‖ public key)`.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::audit::checkpoint::CheckpointError;

/// The cosignature/v1 algorithm byte.
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// A witness as a verifier knows it: its name and Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witness {
    /// The witness's key name.
    pub name: String,
    /// Its public key.
    pub key: VerifyingKey,
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_COSIGNATURE_V1]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// The cosignature line (ending in a newline) by `name`'s `key` on checkpoint `body` at
/// `timestamp` (seconds since the epoch, never zero).
pub(crate) fn cosign(body: &str, name: &str, key: &SigningKey, timestamp: u64) -> String {
    let sig = key.sign(message(body, timestamp).as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&sig.to_bytes());
    format!("\u{2014} {name} {}\n", STANDARD.encode(blob))
}

/// What one witness's lines on a note say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cosigned {
    /// No line by this witness's name and key id.
    Absent,
    /// A good cosignature, at this timestamp.
    At(u64),
    /// A line by this witness's name and key id that does not verify: the note is malformed
    /// (C2SP signed-note) and must be rejected.
    Bad,
}

/// Checks `witness`'s cosignature lines on the signed note `note` (body, blank line, lines).
pub(crate) fn cosigned_by(note: &str, witness: &Witness) -> Cosigned {
    let Some((body, sigs)) = note.split_once("\n\n") else { return Cosigned::Absent };
    let body = format!("{body}\n");
    let want = key_id(&witness.name, &witness.key);
    let mut found = Cosigned::Absent;
    for line in sigs.lines().filter_map(|l| l.strip_prefix("\u{2014} ")) {
        let Some((n, b64)) = line.split_once(' ') else { continue };
        let Ok(blob) = STANDARD.decode(b64) else { continue };
        if n != witness.name || blob.len() < 4 || blob[..4] != want {
            continue;
        }
        let good = blob.len() == 76
            && Signature::from_slice(&blob[12..]).is_ok_and(|sig| {
                let ts = u64::from_be_bytes(blob[4..12].try_into().unwrap_or_default());
                witness.key.verify(message(&body, ts).as_bytes(), &sig).is_ok()
            });
        if !good {
            return Cosigned::Bad;
        }
        found = Cosigned::At(u64::from_be_bytes(blob[4..12].try_into().unwrap_or_default()));
    }
    found
}

/// The witness's verifier key string.
pub(crate) fn witness_key(name: &str, key: &VerifyingKey) -> String {
    let mut blob = vec![ALG_COSIGNATURE_V1];
    blob.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex::encode(key_id(name, key)), STANDARD.encode(blob))
}

/// Parses a cosignature/v1 verifier key string, checking its key id.
pub(crate) fn parse_witness_key(s: &str) -> Result<Witness, CheckpointError> {
    let mut parts = s.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CheckpointError::BadKey);
    };
    let blob = STANDARD.decode(b64).map_err(|_| CheckpointError::BadKey)?;
    let (Some(&ALG_COSIGNATURE_V1), Ok(bytes)) = (blob.first(), <[u8; 32]>::try_from(&blob[1.min(blob.len())..]))
    else {
        return Err(CheckpointError::BadKey);
    };
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointError::BadKey)?;
    if hex::encode(key_id(name, &key)) != id {
        return Err(CheckpointError::BadKey);
    }
    Ok(Witness { name: name.to_owned(), key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosigns_verifies_and_rejects_a_bad_line_from_a_known_key() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let w = parse_witness_key(&witness_key("fed.test/witness/bank", &key.verifying_key())).unwrap();
        let body = "fed.test/institution/shop\n5\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        let line = cosign(body, &w.name, &key, 1_700_000_000);
        let note = format!("{body}\n{line}");
        assert_eq!(cosigned_by(&note, &w), Cosigned::At(1_700_000_000));
        let other = Witness { name: "fed.test/witness/other".into(), key: w.key };
        assert_eq!(cosigned_by(&note, &other), Cosigned::Absent);
        assert_eq!(cosigned_by(&note.replace("\n5\n", "\n6\n"), &w), Cosigned::Bad);
        // A second, good line does not save a note with a failing one.
        let bad = cosign(body, &w.name, &key, 1_700_000_001).replace('A', "B");
        assert_eq!(cosigned_by(&format!("{note}{bad}"), &w), Cosigned::Bad);
        assert!(parse_witness_key(&crate::audit::checkpoint::verifier_key(&w.name, &w.key)).is_err());
    }
}
