//! The C2SP formats for tests that play a log or a verifier against real nodes: sign a
//! checkpoint with a log key file, build an `add-checkpoint` body, check a witness's
//! cosignature, split an entry bundle, name a tile's path.

use std::path::Path;

use ed25519_dalek::pkcs8::DecodePrivateKey;

use crate::audit::{
    checkpoint::Checkpoint,
    cosignature::{cosigned_by as check, parse_witness_key, Cosigned},
    merkle::Hash,
    tiles::{parse_bundle, Tile, TileKind},
    witness::AddCheckpoint,
};

/// The checkpoint `origin`, `size`, `root` signed with the Ed25519 PKCS#8 key in `key_file`.
pub fn sign_checkpoint(key_file: &Path, origin: &str, size: u64, root: Hash) -> String {
    let pem = std::fs::read_to_string(key_file).expect("log key file");
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("an Ed25519 key");
    Checkpoint { origin: origin.to_owned(), size, root }.sign(&key)
}

/// An `add-checkpoint` request body.
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    AddCheckpoint { old, proof: proof.to_vec(), note: note.to_owned() }.body()
}

/// The timestamp of the witness's (`vkey`, cosignature/v1) good cosignature on `note`;
/// `None` when it has none; panics on a failing line.
pub fn cosigned_at(note: &str, vkey: &str) -> Option<u64> {
    let w = parse_witness_key(vkey).expect("a cosignature/v1 vkey");
    match check(note, &w) {
        Cosigned::At(t) => Some(t),
        Cosigned::Absent => None,
        Cosigned::Bad => panic!("a failing cosignature line by {}", w.name),
    }
}

/// The entries of an entry bundle.
pub fn bundle_entries(bundle: &[u8]) -> Vec<Vec<u8>> {
    parse_bundle(bundle).expect("a well-formed entry bundle")
}

/// The path (after the prefix) of hash tile `index` at tile `level` (or of an entry bundle,
/// `level` `None`) with `width` hashes.
pub fn tile_path(level: Option<u8>, index: u64, width: u64) -> String {
    let kind = level.map_or(TileKind::Entries, TileKind::Hash);
    Tile { kind, index, width }.path()
}
