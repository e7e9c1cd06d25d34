//! `bureau backup` and `bureau restore`: a consistent snapshot of a running node's embedded
//! store, written to a file, and restored into an empty data directory.
//!
//! File: an [age](https://age-encryption.org/v1) file encrypted to the institution's X25519
//! recipients (`age1…`), whose plaintext is `bureau-backup v1\n`, then `BackupChunk` messages,
//! each prefixed by its length (4 bytes, big-endian). The first chunk names the audit log's size
//! and root; the last carries a SHA-256 over every pair, which age's AEAD authenticates: without
//! an identity of a recipient nobody reads the file, and nobody changes it unnoticed. The file is
//! written `0600` beside its final name (`.partial`) and renamed when complete; the partial file
//! is removed on any failure. A restore decrypts and checks the checksum before writing
//! anything, then checks that the restored store's log has the backup's size and root.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    str::FromStr,
};

use age::x25519;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use crate::{
    audit::merkle::Hash,
    storage::{StoreError, TreeHead},
    wire::pb::bureau::v1::{self as pb, admin_service_client::AdminServiceClient},
};

const MAGIC: &[u8] = b"bureau-backup v1\n";
/// Largest chunk a file may hold (a chunk is 1,000 pairs).
const MAX_CHUNK: usize = 256 << 20;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The audit log's size in the snapshot.
    pub tree_size: u64,
    /// The log's root at that size.
    pub root: Hash,
    /// Key-value pairs written.
    pub pairs: u64,
}

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The node refused or failed the call.
    #[error("the node: {0}")]
    Node(#[from] tonic::Status),
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a whole, undamaged backup.
    #[error("{0}")]
    Damaged(String),
    /// The file is encrypted to other recipients than the identities given.
    #[error("{0}")]
    WrongKey(String),
    /// No recipient or identity, or one that is not an age X25519 key.
    #[error("{0}")]
    Key(String),
    /// Restoring into the store.
    #[error("restore: {0}")]
    Store(#[from] StoreError),
}

fn pair_digest(h: &mut Sha256, key: &[u8], value: &[u8]) {
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update((value.len() as u64).to_be_bytes());
    h.update(value);
}

/// Reads age X25519 recipients (`age1…`, one a line; `#` comments and blank lines skipped).
pub fn read_recipients(path: &Path) -> Result<Vec<x25519::Recipient>, BackupError> {
    read_keys(path, "recipient")
}

/// Reads age X25519 identities (`AGE-SECRET-KEY-1…`, one a line, as `age-keygen` and
/// `bureau pki init` write them; `#` comments and blank lines skipped).
pub fn read_identities(path: &Path) -> Result<Vec<x25519::Identity>, BackupError> {
    read_keys(path, "identity")
}

fn read_keys<K: FromStr>(path: &Path, what: &str) -> Result<Vec<K>, BackupError> {
    let text = std::fs::read_to_string(path).map_err(|source| BackupError::Io { path: path.to_owned(), source })?;
    let keys = text
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            K::from_str(l)
                .map_err(|_| BackupError::Key(format!("{} line {}: not an age X25519 {what}", path.display(), n + 1)))
        })
        .collect::<Result<Vec<K>, _>>()?;
    if keys.is_empty() {
        return Err(BackupError::Key(format!("{}: no age X25519 {what} in the file", path.display())));
    }
    Ok(keys)
}

/// Creates `path` readable by its owner only (0600) from the first byte, replacing a file left
/// there.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Streams a backup from the node on `channel` (as an application its configuration names
/// administrator) into `out`, encrypted to `recipients`. Nothing is left at `out` or beside it
/// unless the whole backup arrived.
pub async fn backup_to_file(
    channel: Channel,
    out: &Path,
    recipients: &[x25519::Recipient],
) -> Result<BackupSummary, BackupError> {
    if recipients.is_empty() {
        return Err(BackupError::Key("a backup is encrypted: name at least one age recipient".into()));
    }
    let partial = out.with_extension("partial");
    let written = write_backup(channel, out, &partial, recipients).await;
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

async fn write_backup(
    channel: Channel,
    out: &Path,
    partial: &Path,
    recipients: &[x25519::Recipient],
) -> Result<BackupSummary, BackupError> {
    let io = |source| BackupError::Io { path: partial.to_owned(), source };
    let mut stream = AdminServiceClient::new(channel)
        .max_decoding_message_size(MAX_CHUNK)
        .backup(pb::BackupRequest {})
        .await?
        .into_inner();
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| BackupError::Key(format!("age recipients: {e}")))?;
    let mut file = encryptor.wrap_output(BufWriter::new(create_private(partial).map_err(io)?)).map_err(io)?;
    file.write_all(MAGIC).map_err(io)?;
    let mut digest = Sha256::new();
    let mut summary: Option<BackupSummary> = None;
    let write_chunk = |file: &mut dyn Write, c: &pb::BackupChunk| -> std::io::Result<()> {
        let bytes = c.encode_to_vec();
        file.write_all(&(bytes.len() as u32).to_be_bytes())?;
        file.write_all(&bytes)
    };
    while let Some(chunk) = stream.message().await? {
        match summary.as_mut() {
            None => {
                let root: Hash = chunk
                    .root_hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| BackupError::Damaged("the node's first chunk has no root".into()))?;
                summary = Some(BackupSummary { tree_size: chunk.tree_size, root, pairs: 0 });
            }
            Some(s) => s.pairs += chunk.pairs.len() as u64,
        }
        chunk.pairs.iter().for_each(|p| pair_digest(&mut digest, &p.key, &p.value));
        write_chunk(&mut file, &chunk).map_err(io)?;
    }
    let summary = summary.ok_or_else(|| BackupError::Damaged("the node sent nothing".into()))?;
    let last = pb::BackupChunk { sha256: digest.finalize().to_vec(), ..Default::default() };
    write_chunk(&mut file, &last).map_err(io)?;
    let file = file.finish().map_err(io)?.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(partial, out).map_err(|source| BackupError::Io { path: out.to_owned(), source })?;
    Ok(summary)
}

/// Reads a backup file chunk by chunk.
struct Chunks {
    path: PathBuf,
    reader: BufReader<age::stream::StreamReader<BufReader<File>>>,
}

impl Chunks {
    /// Opens `path` and decrypts it with the first of `identities` that it was encrypted to.
    fn open(path: &Path, identities: &[x25519::Identity]) -> Result<Self, BackupError> {
        let io = |source| BackupError::Io { path: path.to_owned(), source };
        let decryptor = age::Decryptor::new_buffered(BufReader::new(File::open(path).map_err(io)?)).map_err(|e| {
            BackupError::Damaged(format!("{}: not an encrypted bureau backup (age: {e})", path.display()))
        })?;
        let reader = decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity)).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupError::WrongKey(format!(
                "{}: encrypted to other recipients: none of the {} identity(ies) given can decrypt it",
                path.display(),
                identities.len()
            )),
            e => BackupError::Damaged(format!("{}: damaged (age: {e})", path.display())),
        })?;
        let mut reader = BufReader::new(reader);
        let mut magic = vec![0u8; MAGIC.len()];
        reader.read_exact(&mut magic).map_err(|e| damaged_or(path, e, "not a bureau backup"))?;
        if magic != MAGIC {
            return Err(BackupError::Damaged(format!("{}: not a bureau backup (v1)", path.display())));
        }
        Ok(Self { path: path.to_owned(), reader })
    }
}

impl Iterator for Chunks {
    type Item = Result<pb::BackupChunk, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => return Some(Err(damaged_or(&self.path, e, "truncated or damaged"))),
        }
        let len = u32::from_be_bytes(len) as usize;
        let damaged = || BackupError::Damaged(format!("{}: truncated or damaged", self.path.display()));
        if len > MAX_CHUNK {
            return Some(Err(damaged()));
        }
        let mut buf = vec![0u8; len];
        if let Err(e) = self.reader.read_exact(&mut buf) {
            return Some(Err(damaged_or(&self.path, e, "truncated or damaged")));
        }
        Some(pb::BackupChunk::decode(&buf[..]).map_err(|_| damaged()))
    }
}

/// Why reading the decrypted stream failed: age reports a chunk that fails authentication as
/// `InvalidData`, a damaged file; anything else is the disk's.
fn damaged_or(path: &Path, e: std::io::Error, what: &str) -> BackupError {
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            BackupError::Damaged(format!("{}: {what} ({e})", path.display()))
        }
        _ => BackupError::Io { path: path.to_owned(), source: e },
    }
}

/// Decrypts `file` with `identities` and checks it whole (its authenticated checksum), then
/// restores it into the empty directory `data_dir` and checks that the restored store's log has
/// the backup's size and root.
pub async fn restore_from_file(
    file: &Path,
    data_dir: &Path,
    identities: &[x25519::Identity],
) -> Result<BackupSummary, BackupError> {
    if identities.is_empty() {
        return Err(BackupError::Key("a backup is encrypted: give the age identity to decrypt it".into()));
    }
    let (path, ids) = (file.to_owned(), identities.to_vec());
    let summary = tokio::task::spawn_blocking(move || verify_file(&path, &ids))
        .await
        .map_err(|e| BackupError::Damaged(e.to_string()))??;
    let mut chunks = Chunks::open(file, identities)?;
    chunks.next(); // the head, checked above
    let pairs = chunks.map_while(|c| match c {
        Ok(c) if !c.sha256.is_empty() => None,
        Ok(c) => Some(Ok(c.pairs.into_iter().map(|p| (p.key, p.value)).collect())),
        Err(e) => Some(Err(StoreError::Unavailable(e.to_string()))),
    });
    let head = TreeHead { size: summary.tree_size, root: summary.root };
    crate::storage::open::restore_sled(data_dir.to_owned(), head, pairs).await?;
    Ok(summary)
}

fn verify_file(path: &Path, identities: &[x25519::Identity]) -> Result<BackupSummary, BackupError> {
    let mut chunks = Chunks::open(path, identities)?;
    let first = chunks.next().ok_or_else(|| BackupError::Damaged(format!("{}: empty", path.display())))??;
    let root: Hash = first
        .root_hash
        .as_slice()
        .try_into()
        .map_err(|_| BackupError::Damaged(format!("{}: no root in the first chunk", path.display())))?;
    let mut summary = BackupSummary { tree_size: first.tree_size, root, pairs: 0 };
    let mut digest = Sha256::new();
    for chunk in chunks {
        let chunk = chunk?;
        if !chunk.sha256.is_empty() {
            if chunk.sha256 != digest.finalize().to_vec() {
                return Err(BackupError::Damaged(format!("{}: checksum mismatch", path.display())));
            }
            return Ok(summary);
        }
        summary.pairs += chunk.pairs.len() as u64;
        chunk.pairs.iter().for_each(|p| pair_digest(&mut digest, &p.key, &p.value));
    }
    Err(BackupError::Damaged(format!("{}: truncated (no checksum at the end)", path.display())))
}
