//! `bureau backup` and `bureau restore`: a consistent snapshot of a running node's embedded
//! store, written to a file, and restored into an empty data directory.
//!
//! File: `bureau-backup v1\n`, then `BackupChunk` messages, each prefixed by its length (4 bytes,
//! big-endian). The first chunk names the audit log's size and root; the last carries a SHA-256
//! over every pair. The file is written beside its final name and renamed when complete, so a
//! failed backup never leaves a file that looks whole; a restore checks the checksum before
//! writing anything, then checks that the restored store's log has the backup's size and root.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

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

/// Streams a backup from the node on `channel` (as one of its institution's applications) into
/// `out`.
pub async fn backup_to_file(channel: Channel, out: &Path) -> Result<BackupSummary, BackupError> {
    let io = |source| BackupError::Io { path: out.to_owned(), source };
    let mut stream = AdminServiceClient::new(channel)
        .max_decoding_message_size(MAX_CHUNK)
        .backup(pb::BackupRequest {})
        .await?
        .into_inner();
    let partial = out.with_extension("partial");
    let mut file = BufWriter::new(File::create(&partial).map_err(io)?);
    file.write_all(MAGIC).map_err(io)?;
    let mut digest = Sha256::new();
    let mut summary: Option<BackupSummary> = None;
    let write_chunk = |file: &mut BufWriter<File>, c: &pb::BackupChunk| -> std::io::Result<()> {
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
    let file = file.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&partial, out).map_err(io)?;
    Ok(summary)
}

/// Reads a backup file chunk by chunk.
struct Chunks {
    path: PathBuf,
    reader: BufReader<File>,
}

impl Chunks {
    fn open(path: &Path) -> Result<Self, BackupError> {
        let io = |source| BackupError::Io { path: path.to_owned(), source };
        let mut reader = BufReader::new(File::open(path).map_err(io)?);
        let mut magic = vec![0u8; MAGIC.len()];
        reader
            .read_exact(&mut magic)
            .map_err(|_| BackupError::Damaged(format!("{}: not a bureau backup", path.display())))?;
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
            Err(source) => return Some(Err(BackupError::Io { path: self.path.clone(), source })),
        }
        let len = u32::from_be_bytes(len) as usize;
        let damaged = || BackupError::Damaged(format!("{}: truncated or damaged", self.path.display()));
        if len > MAX_CHUNK {
            return Some(Err(damaged()));
        }
        let mut buf = vec![0u8; len];
        if self.reader.read_exact(&mut buf).is_err() {
            return Some(Err(damaged()));
        }
        Some(pb::BackupChunk::decode(&buf[..]).map_err(|_| damaged()))
    }
}

/// Checks `file` whole (its checksum), then restores it into the empty directory `data_dir` and
/// checks that the restored store's log has the backup's size and root.
pub async fn restore_from_file(file: &Path, data_dir: &Path) -> Result<BackupSummary, BackupError> {
    let path = file.to_owned();
    let summary = tokio::task::spawn_blocking(move || verify_file(&path))
        .await
        .map_err(|e| BackupError::Damaged(e.to_string()))??;
    let mut chunks = Chunks::open(file)?;
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

fn verify_file(path: &Path) -> Result<BackupSummary, BackupError> {
    let mut chunks = Chunks::open(path)?;
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
