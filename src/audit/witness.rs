//! The C2SP `tlog-witness` rules, storage-free: parse an `add-checkpoint` request, and decide
//! from the last checkpoint this witness cosigned for that log whether the new one may be
//! cosigned (it must extend it, proven by a consistency proof) or which refusal the spec names.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::audit::{
    checkpoint::{Checkpoint, CheckpointError},
    merkle::{self, Hash},
};

/// Most consistency proof lines a request may carry.
const MAX_PROOF_LINES: usize = 63;

/// An `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddCheckpoint {
    /// The size of the checkpoint the log believes this witness cosigned last.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint.
    pub note: String,
}

/// What a witness keeps per log: the last checkpoint it cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seen {
    /// Its size.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
    /// The checkpoint note as submitted (the log's signature included).
    pub note: String,
    /// This witness's cosignature line(s) on it, as returned (served to monitors).
    #[serde(default)]
    pub cosignature: String,
}

/// Why a checkpoint is not cosigned, as the spec's status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// 400: not an add-checkpoint request, or an old size above the checkpoint's.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 404: a log this witness does not witness.
    #[error("unknown log origin {0}")]
    UnknownOrigin(String),
    /// 403: no good signature by the log's key, or a failing one.
    #[error("checkpoint not signed by the log's key")]
    Forbidden,
    /// 409: the old size is not the size this witness last cosigned (which it says).
    #[error("old size does not match the last cosigned size {0}")]
    Conflict(u64),
    /// 422: the checkpoint is not consistent with what this witness cosigned before: a fork,
    /// or a bad proof.
    #[error("inconsistent checkpoint: {0}")]
    Inconsistent(&'static str),
}

impl Refusal {
    /// The HTTP status the spec gives this refusal.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UnknownOrigin(_) => 404,
            Self::Forbidden => 403,
            Self::Conflict(_) => 409,
            Self::Inconsistent(_) => 422,
        }
    }
}

/// Decimal with no leading zeroes (`0` itself allowed).
fn size(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl AddCheckpoint {
    /// Parses a request body: `old <size>\n`, proof lines, a blank line, the checkpoint.
    pub(crate) fn parse(body: &str) -> Result<Self, Refusal> {
        let (head, note) = body.split_once("\n\n").ok_or(Refusal::BadRequest("no blank line"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(size)
            .ok_or(Refusal::BadRequest("no old size line"))?;
        let proof = lines
            .map(|l| STANDARD.decode(l).ok().and_then(|h| Hash::try_from(h).ok()))
            .collect::<Option<Vec<Hash>>>()
            .ok_or(Refusal::BadRequest("bad proof line"))?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(Refusal::BadRequest("too many proof lines"));
        }
        Ok(Self { old, proof, note: note.to_owned() })
    }

    /// The request body for these parts.
    pub(crate) fn body(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&STANDARD.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    /// The origin the checkpoint claims (its first line), before any signature is checked.
    pub(crate) fn origin(&self) -> &str {
        self.note.split('\n').next().unwrap_or_default()
    }

    /// Checks the request against the log's key and what this witness cosigned last (`None`:
    /// never), in the spec's order. The checkpoint to cosign, and what to keep, once it passes.
    pub(crate) fn check(&self, key: &VerifyingKey, last: Option<&Seen>) -> Result<(Checkpoint, Seen), Refusal> {
        let origin = self.origin().to_owned();
        let cp = match Checkpoint::open(&self.note, &origin, key) {
            Ok(cp) => cp,
            Err(CheckpointError::Malformed(why)) => return Err(Refusal::BadRequest(why)),
            Err(_) => return Err(Refusal::Forbidden),
        };
        if self.old > cp.size {
            return Err(Refusal::BadRequest("old size above the checkpoint's size"));
        }
        let last_size = last.map_or(0, |s| s.size);
        if self.old != last_size {
            return Err(Refusal::Conflict(last_size));
        }
        if cp.size == 0 && cp.root != merkle::empty_root() {
            return Err(Refusal::Inconsistent("an empty tree with a root other than the empty hash"));
        }
        match last {
            None if !self.proof.is_empty() => return Err(Refusal::Inconsistent("a proof from the empty tree")),
            None => {}
            Some(seen) => {
                let old_root: Hash = STANDARD
                    .decode(&seen.root)
                    .ok()
                    .and_then(|r| r.try_into().ok())
                    .ok_or(Refusal::Inconsistent("the stored root does not decode"))?;
                if seen.size == 0 {
                    if !self.proof.is_empty() {
                        return Err(Refusal::Inconsistent("a proof from the empty tree"));
                    }
                } else if seen.size == cp.size {
                    if old_root != cp.root {
                        return Err(Refusal::Inconsistent("same size, different root"));
                    }
                } else if !merkle::verify_consistency(seen.size, cp.size, &old_root, &cp.root, &self.proof) {
                    return Err(Refusal::Inconsistent("the consistency proof does not verify"));
                }
            }
        }
        let seen =
            Seen { size: cp.size, root: STANDARD.encode(cp.root), note: self.note.clone(), cosignature: String::new() };
        Ok((cp, seen))
    }
}

/// The body of a 409 answer: the last cosigned size and a newline (`text/x.tlog.size`).
pub(crate) fn conflict_body(size: u64) -> String {
    format!("{size}\n")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::audit::merkle::{append_nodes, leaf_hash, Tree};

    const ORIGIN: &str = "fed.test/institution/shop";

    fn log(n: u64, tag: &str) -> HashMap<(u8, u64), Hash> {
        let mut nodes = HashMap::new();
        for i in 0..n {
            let leaf = leaf_hash(format!("{tag}{i}").as_bytes());
            nodes.extend(append_nodes(i, leaf, |l, ix| Ok::<_, ()>(nodes[&(l, ix)])).unwrap());
        }
        nodes
    }

    fn request(nodes: &HashMap<(u8, u64), Hash>, old: u64, size: u64, key: &SigningKey) -> AddCheckpoint {
        let mut t = Tree::new(|l, i| nodes.get(&(l, i)).copied().ok_or(()));
        let root = t.root(size).unwrap();
        let proof = if old == 0 || old == size { vec![] } else { t.consistency_proof(old, size).unwrap() };
        let note = Checkpoint { origin: ORIGIN.into(), size, root }.sign(key);
        AddCheckpoint::parse(&AddCheckpoint { old, proof, note }.body()).unwrap()
    }

    #[test]
    fn cosigns_an_extension_and_refuses_a_fork_with_the_specs_codes() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let vk = key.verifying_key();
        let (honest, forked) = (log(20, "e"), {
            let mut f = log(10, "e");
            for i in 10..20 {
                let leaf = leaf_hash(format!("forged{i}").as_bytes());
                f.extend(append_nodes(i, leaf, |l, ix| Ok::<_, ()>(f[&(l, ix)])).unwrap());
            }
            f
        });
        let (_, first) = request(&honest, 0, 12, &key).check(&vk, None).unwrap();
        assert_eq!(first.size, 12);
        let (cp, second) = request(&honest, 12, 20, &key).check(&vk, Some(&first)).unwrap();
        assert_eq!(cp.size, 20);
        assert_eq!(request(&honest, 20, 20, &key).check(&vk, Some(&second)).map(|r| r.1), Ok(second.clone()));
        // The fork shares the first ten entries only: its proof from 12 cannot verify.
        assert_eq!(request(&forked, 12, 20, &key).check(&vk, Some(&first)).unwrap_err().status(), 422);
        assert_eq!(request(&forked, 20, 20, &key).check(&vk, Some(&second)).unwrap_err().status(), 422);
        assert_eq!(request(&honest, 0, 20, &key).check(&vk, Some(&first)).unwrap_err(), Refusal::Conflict(12));
        let other = SigningKey::from_bytes(&[6u8; 32]);
        assert_eq!(request(&honest, 12, 20, &other).check(&vk, Some(&first)).unwrap_err().status(), 403);
        let mut back = request(&honest, 12, 20, &key);
        back.old = 21;
        assert_eq!(back.check(&vk, Some(&first)).unwrap_err().status(), 400);
        let mut proof_from_empty = request(&honest, 0, 12, &key);
        proof_from_empty.proof = vec![[0; 32]];
        assert_eq!(proof_from_empty.check(&vk, None).unwrap_err().status(), 422);
        for bad in ["", "old 1\n", "old 01\n\nx", "new 1\n\nx", "old 1\nnot base64\n\nx"] {
            assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
