//! What an attacker with a stopped node's store could do to it, for tests that check a regulator
//! catches it: on the embedded store, its files; on PostgreSQL (`BUREAU_TEST_STORE=postgres`), its rows, as
//! someone with the database's credentials would. Never used by a node.

use std::path::Path;

use crate::{
    audit::Entry,
    storage::{open::test_parts::tamper as files, StoreError},
    testkit::postgres,
};

/// The test database of a node's data directory, when its local node uses PostgreSQL
/// ([`crate::testkit::local::test_store`] decides).
fn database(dir: &Path) -> Option<(String, &'static postgres::TestPostgres)> {
    let url = crate::testkit::local::test_store(dir).postgres?.url;
    let name = url.rsplit('/').next().and_then(|n| n.split('?').next()).unwrap_or_default().to_owned();
    Some((name, postgres::shared()))
}

fn sql(dir: &Path, statement: &str) -> Option<String> {
    database(dir).map(|(db, pg)| pg.psql(&db, statement).unwrap_or_else(|e| panic!("{e}")))
}

/// Rewrites audit entry `index` in place (its Merkle nodes left as they were).
pub fn alter_entry(dir: &Path, index: u64, edit: impl FnOnce(&mut Entry)) {
    let Some(hex_leaf) = sql(dir, &format!("SELECT encode(leaf, 'hex') FROM audit_entries WHERE idx = {index}")) else {
        return files::alter_entry(dir, index, edit);
    };
    let mut e = Entry::from_bytes(&hex::decode(hex_leaf).expect("hex")).expect("an entry");
    edit(&mut e);
    let leaf = hex::encode(e.to_bytes());
    sql(dir, &format!("UPDATE audit_entries SET leaf = decode('{leaf}', 'hex') WHERE idx = {index}"));
}

/// Deletes audit entry `index`.
pub fn remove_entry(dir: &Path, index: u64) {
    if sql(dir, &format!("DELETE FROM audit_entries WHERE idx = {index}")).is_none() {
        files::remove_entry(dir, index)
    }
}

/// Truncates the audit log to `size` entries, as an attacker with the store would (embedded,
/// also deleting the high-water mark the node keeps beside it).
pub fn set_log_size(dir: &Path, size: u64) {
    let truncate = format!(
        "BEGIN; DELETE FROM audit_entries WHERE idx >= {size}; \
         DELETE FROM audit_nodes WHERE (idx + 1) * (1::bigint << level) > {size}; \
         UPDATE log_head SET size = {size}; COMMIT;"
    );
    if sql(dir, &truncate).is_none() {
        files::set_log_size(dir, size)
    }
}

/// Sets the audit log's recorded size and nothing else: what the embedded store does when it
/// takes damage for a torn tail. Embedded store only (the high-water mark that catches it is its).
pub fn lose_tail(dir: &Path, size: u64) {
    assert!(database(dir).is_none(), "lose_tail models the embedded store's torn-tail recovery");
    files::lose_tail(dir, size)
}

/// Replaces the whole log with `edit(old entries)`, hashed afresh: a self-consistent new history.
pub async fn rewrite_log(dir: &Path, edit: impl FnOnce(Vec<Entry>) -> Vec<Entry>) -> Result<(), StoreError> {
    let Some((db, pg)) = database(dir) else { return files::rewrite_log(dir, edit).await };
    let hex_leaves = pg.psql(&db, "SELECT encode(leaf, 'hex') FROM audit_entries ORDER BY idx").expect("psql");
    let old: Vec<Entry> =
        hex_leaves.lines().map(|h| Entry::from_bytes(&hex::decode(h).expect("hex")).expect("an entry")).collect();
    pg.psql(
        &db,
        "BEGIN; DELETE FROM audit_entries; DELETE FROM audit_nodes; \
         UPDATE log_head SET size = 0, root = sha256(''::bytea); COMMIT;",
    )
    .expect("psql");
    let store = crate::testkit::store::open_postgres(&pg.url(&db)).await?;
    store.append_audit(edit(old)).await?;
    store.close().await
}

/// One valid record of a stopped node's write-ahead log, and where it lies.
#[derive(Debug, Clone)]
pub struct WalRecord {
    /// Its segment file.
    pub segment: std::path::PathBuf,
    /// Its byte offset there (its header's).
    pub offset: u64,
    /// Header and body, bytes.
    pub len: u64,
    /// Its sequence number.
    pub seq: u64,
}

/// The valid records of a stopped node's write-ahead log, by sequence number (embedded store).
pub fn wal_records(dir: &Path) -> Vec<WalRecord> {
    files::wal_records(dir)
        .into_iter()
        .map(|(segment, offset, len, seq)| WalRecord { segment, offset, len, seq })
        .collect()
}

/// The last write-ahead record sled holds in a stopped node's store (embedded store only).
pub fn applied_seq(dir: &Path) -> u64 {
    files::applied_seq(dir)
}
