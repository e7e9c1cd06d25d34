//! The federation's signed member directory: who the members are (id, node addresses, log
//! verifier key, active or suspended) and where the record locator's shards run, under a
//! monotonic serial, signed by the licensing authority as a C2SP signed note:
//!
//! ```text
//! <federation>/directory\n<serial>\n<one line of JSON: members and locators>\n
//! \n
//! — <federation>/directory <base64(key id ‖ Ed25519 signature)>\n
//! ```
//!
//! Nodes load it like the CRL and never accept an older, unsigned or unparsable one; no node's
//! own configuration lists the others.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    audit::checkpoint::{open_note, parse_verifier_key, sign_note, CheckpointError},
    net::identity::is_valid_member_id,
};

/// A member's standing in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Licensed: asks and is asked.
    Active,
    /// Licence suspended: refused like a revoked member until made active again.
    Suspended,
}

/// One member institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The institution id its certificate names.
    pub id: String,
    /// `host:port` of each of its nodes (replicas over one store); the first is preferred.
    pub addresses: Vec<String>,
    /// Its log's checkpoint verifier key (`name+id+key`), for regulators and witnesses.
    #[serde(default)]
    pub log_key: String,
    /// Active or suspended.
    pub status: Status,
}

/// One shard of the record locator: the subjects whose pseudonym starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocatorShard {
    /// The locator node's institution id (its certificate names it).
    pub id: String,
    /// Lowercase hex prefix of the pseudonyms it serves; `""` serves every subject.
    pub prefix: String,
    /// `host:port` of each of its nodes.
    pub addresses: Vec<String>,
    /// Its log's checkpoint verifier key.
    #[serde(default)]
    pub log_key: String,
}

/// The directory's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// The federation it lists.
    #[serde(skip)]
    pub federation: String,
    /// Raised by every new edition; a node never goes back to a lower one.
    #[serde(skip)]
    pub serial: u64,
    /// The members, by id.
    pub members: Vec<Member>,
    /// The locator's shards; empty when the federation runs none (scores then ask everyone).
    #[serde(default)]
    pub locators: Vec<LocatorShard>,
}

/// Why a directory file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The file cannot be read.
    #[error("{0}")]
    Io(String),
    /// No valid signature by the authority's directory key.
    #[error("not signed by the authority's directory key: {0}")]
    Signature(String),
    /// Signed, but not a directory this node can use.
    #[error("malformed directory: {0}")]
    Malformed(String),
    /// A serial lower than (or equal to, with other content) the one in force.
    #[error("serial {offered} is not newer than {current}, the one in force")]
    Rollback {
        /// The file's serial.
        offered: u64,
        /// The serial in force.
        current: u64,
    },
}

impl DirectoryError {
    /// The `reason` label of `bureau_directory_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "unreadable",
            Self::Signature(_) => "bad_signature",
            Self::Malformed(_) => "malformed",
            Self::Rollback { .. } => "rollback",
        }
    }
}

/// The note's origin line (and the signing key's name) for `federation`'s directory.
pub fn origin(federation: &str) -> String {
    format!("{federation}/directory")
}

impl Directory {
    /// An empty first edition.
    pub fn new(federation: &str) -> Self {
        Self { federation: federation.to_owned(), serial: 0, members: Vec::new(), locators: Vec::new() }
    }

    /// The signed note of this edition.
    pub fn sign(&self, key: &ed25519_dalek::SigningKey) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let name = origin(&self.federation);
        sign_note(&format!("{name}\n{}\n{json}\n", self.serial), &name, key)
    }

    /// Opens `note`: checks the authority's signature (`verifier`: a verifier key string named
    /// `<federation>/directory`) and the content.
    pub fn open(note: &str, federation: &str, verifier: &str) -> Result<Self, DirectoryError> {
        let name = origin(federation);
        let (key_name, key) =
            parse_verifier_key(verifier).map_err(|e| DirectoryError::Signature(format!("directory key: {e}")))?;
        if key_name != name {
            return Err(DirectoryError::Signature(format!("the directory key is named {key_name}, expected {name}")));
        }
        let body = open_note(note, &name, &key).map_err(|e| match e {
            CheckpointError::Malformed(m) => DirectoryError::Malformed(m.to_owned()),
            e => DirectoryError::Signature(e.to_string()),
        })?;
        let mut lines = body.lines();
        if lines.next() != Some(name.as_str()) {
            return Err(DirectoryError::Malformed(format!("first line is not {name}")));
        }
        let serial = lines
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| DirectoryError::Malformed("second line is not a serial".into()))?;
        let json = lines.next().ok_or_else(|| DirectoryError::Malformed("no member list".into()))?;
        let mut dir: Self = serde_json::from_str(json).map_err(|e| DirectoryError::Malformed(e.to_string()))?;
        dir.federation = federation.to_owned();
        dir.serial = serial;
        dir.check()?;
        Ok(dir)
    }

    /// Reads and opens the file at `path`.
    pub fn load(path: &Path, federation: &str, verifier: &str) -> Result<Self, DirectoryError> {
        let note = std::fs::read_to_string(path).map_err(|e| DirectoryError::Io(format!("{}: {e}", path.display())))?;
        Self::open(&note, federation, verifier)
    }

    /// Ids unique and valid, every member and shard with an address, shard prefixes hex and
    /// covering every pseudonym.
    fn check(&self) -> Result<(), DirectoryError> {
        let bad = |why: String| Err(DirectoryError::Malformed(why));
        let mut ids = std::collections::BTreeSet::new();
        for m in &self.members {
            if !is_valid_member_id(&m.id) || !ids.insert(m.id.as_str()) {
                return bad(format!("member id {:?} is invalid or listed twice", m.id));
            }
            if m.addresses.is_empty() {
                return bad(format!("member {} has no address", m.id));
            }
        }
        for l in &self.locators {
            if !is_valid_member_id(&l.id) || l.addresses.is_empty() {
                return bad(format!("locator {:?} has an invalid id or no address", l.id));
            }
            if !l.prefix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return bad(format!("locator {} has prefix {:?}, not lowercase hex", l.id, l.prefix));
            }
        }
        if !self.locators.is_empty() && !covers_every_pseudonym(&self.locators) {
            return bad("the locator shards' prefixes leave some pseudonyms without a shard".into());
        }
        Ok(())
    }

    /// The member `id`, if listed.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The locator shard serving `subject_id`: the longest prefix that matches.
    pub fn locator_for(&self, subject_id: &str) -> Option<&LocatorShard> {
        self.locators.iter().filter(|l| subject_id.starts_with(&l.prefix)).max_by_key(|l| l.prefix.len())
    }

    /// True when `id` is one of the locator's nodes.
    pub fn is_locator(&self, id: &str) -> bool {
        self.locators.iter().any(|l| l.id == id)
    }

    /// Whether `next` may replace this edition: a higher serial, or the same content again.
    pub fn accepts(&self, next: &Self) -> Result<bool, DirectoryError> {
        if next.serial > self.serial {
            Ok(true)
        } else if next == self {
            Ok(false)
        } else {
            Err(DirectoryError::Rollback { offered: next.serial, current: self.serial })
        }
    }
}

/// Checks that `key` is a checkpoint verifier key string (`name+id+key`), as a member's
/// `log_key` must be for regulators and witnesses to use it.
pub fn check_log_key(key: &str) -> Result<(), String> {
    parse_verifier_key(key).map(|_| ()).map_err(|e| e.to_string())
}

/// True when every pseudonym (lowercase hex) starts with some shard's prefix.
fn covers_every_pseudonym(shards: &[LocatorShard]) -> bool {
    fn covered(prefix: &str, shards: &[LocatorShard], depth: usize) -> bool {
        if shards.iter().any(|s| prefix.starts_with(&s.prefix)) {
            return true;
        }
        depth < 4 && "0123456789abcdef".chars().all(|c| covered(&format!("{prefix}{c}"), shards, depth + 1))
    }
    covered("", shards, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::verifier_key;

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[3u8; 32])
    }

    fn member(id: &str) -> Member {
        Member { id: id.into(), addresses: vec!["127.0.0.1:1".into()], log_key: String::new(), status: Status::Active }
    }

    #[test]
    fn signs_opens_and_refuses_tampering_rollback_and_gaps() {
        let mut d = Directory::new("fed.test");
        d.serial = 7;
        d.members = vec![member("bank-a"), member("bank-b")];
        d.locators = vec![LocatorShard {
            id: "locator".into(),
            prefix: String::new(),
            addresses: vec!["127.0.0.1:2".into()],
            log_key: String::new(),
        }];
        let vk = verifier_key(&origin("fed.test"), &key().verifying_key());
        let note = d.sign(&key());
        let opened = Directory::open(&note, "fed.test", &vk).unwrap();
        assert_eq!(opened, d);
        assert!(matches!(
            Directory::open(&note.replace("bank-b", "bank-c"), "fed.test", &vk),
            Err(DirectoryError::Signature(_))
        ));
        assert!(Directory::open(&note, "other.test", &vk).is_err());
        let mut older = d.clone();
        older.serial = 6;
        assert!(matches!(d.accepts(&older), Err(DirectoryError::Rollback { offered: 6, current: 7 })));
        assert!(!d.accepts(&d).unwrap());
        let mut gap = d.clone();
        gap.locators[0].prefix = "0".into();
        assert!(matches!(Directory::open(&gap.sign(&key()), "fed.test", &vk), Err(DirectoryError::Malformed(_))));
        assert_eq!(d.locator_for(&"ab".repeat(32)).unwrap().id, "locator");
    }

    #[test]
    fn shards_split_by_prefix_and_the_longest_prefix_wins() {
        let shard = |id: &str, prefix: &str| LocatorShard {
            id: id.into(),
            prefix: prefix.into(),
            addresses: vec!["x:1".into()],
            log_key: String::new(),
        };
        let halves: Vec<_> =
            "01234567".chars().map(|c| shard("low", &c.to_string())).chain([shard("high", "8")]).collect();
        assert!(!covers_every_pseudonym(&halves));
        let mut all = halves.clone();
        all.extend("9abcdef".chars().map(|c| shard("high", &c.to_string())));
        assert!(covers_every_pseudonym(&all));
        let mut d = Directory::new("f");
        d.locators = vec![shard("all", ""), shard("hot", "ab")];
        assert_eq!(d.locator_for("abcd").unwrap().id, "hot");
        assert_eq!(d.locator_for("a0cd").unwrap().id, "all");
    }
}
