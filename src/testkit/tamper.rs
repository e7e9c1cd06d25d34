//! What an attacker with a stopped node's store could do to it, for tests that check a regulator
//! catches it: on sled, its files; on PostgreSQL (`BUREAU_TEST_STORE=postgres`), its rows, as
//! someone with the database's credentials would. Never used by a node.

use std::path::Path;

use crate::{
    audit::Entry,
    storage::{tamper as sled, StoreError},
    testkit::postgres,
};

/// The test database of a node's data directory, when the tests run on PostgreSQL.
fn database(dir: &Path) -> Option<(String, &'static postgres::TestPostgres)> {
    (std::env::var("BUREAU_TEST_STORE").as_deref() == Ok("postgres")).then(|| {
        let pg = postgres::shared();
        let url = pg.database_for(dir).unwrap_or_else(|e| panic!("{e}"));
        let name = url.rsplit('/').next().and_then(|n| n.split('?').next()).unwrap_or_default().to_owned();
        (name, pg)
    })
}

fn sql(dir: &Path, statement: &str) -> Option<String> {
    database(dir).map(|(db, pg)| pg.psql(&db, statement).unwrap_or_else(|e| panic!("{e}")))
}

/// Rewrites audit entry `index` in place (its Merkle nodes left as they were).
pub fn alter_entry(dir: &Path, index: u64, edit: impl FnOnce(&mut Entry)) {
    let Some(hex_leaf) = sql(dir, &format!("SELECT encode(leaf, 'hex') FROM audit_entries WHERE idx = {index}")) else {
        return sled::alter_entry(dir, index, edit);
    };
    let mut e = Entry::from_bytes(&hex::decode(hex_leaf).expect("hex")).expect("an entry");
    edit(&mut e);
    let leaf = hex::encode(e.to_bytes());
    sql(dir, &format!("UPDATE audit_entries SET leaf = decode('{leaf}', 'hex') WHERE idx = {index}"));
}

/// Deletes audit entry `index`.
pub fn remove_entry(dir: &Path, index: u64) {
    if sql(dir, &format!("DELETE FROM audit_entries WHERE idx = {index}")).is_none() {
        sled::remove_entry(dir, index)
    }
}

/// Truncates the audit log to `size` entries, as an attacker with the store would (on sled,
/// also deleting the high-water mark the node keeps beside it).
pub fn set_log_size(dir: &Path, size: u64) {
    let truncate = format!(
        "BEGIN; DELETE FROM audit_entries WHERE idx >= {size}; \
         DELETE FROM audit_nodes WHERE (idx + 1) * (1::bigint << level) > {size}; \
         UPDATE log_head SET size = {size}; COMMIT;"
    );
    if sql(dir, &truncate).is_none() {
        sled::set_log_size(dir, size)
    }
}

/// Sets the audit log's recorded size and nothing else: what sled does when it takes damage for
/// a torn tail. sled only (the high-water mark that catches it is sled's).
pub fn lose_tail(dir: &Path, size: u64) {
    assert!(database(dir).is_none(), "lose_tail models sled's torn-tail recovery; sled only");
    sled::lose_tail(dir, size)
}

/// Replaces the whole log with `edit(old entries)`, hashed afresh: a self-consistent new history.
pub async fn rewrite_log(dir: &Path, edit: impl FnOnce(Vec<Entry>) -> Vec<Entry>) -> Result<(), StoreError> {
    let Some((db, pg)) = database(dir) else { return sled::rewrite_log(dir, edit).await };
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
