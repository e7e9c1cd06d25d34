//! Schema migrations: the `migrations/` folder embedded with [`refinery`], applied at start
//! under an advisory lock so processes starting together migrate once; a database whose schema
//! is newer than this binary is refused, naming both versions.

use deadpool_postgres::Pool;

use super::pool::{db, pool_error, unavailable};
use crate::storage::StoreError;

refinery::embed_migrations!("src/storage/postgres/migrations");

/// The advisory lock key that serialises migrations across processes ("bureau" in ASCII).
const MIGRATION_LOCK: i64 = 0x6275_7265_6175;

/// Applies the embedded migrations under an advisory lock, after checking that the database's
/// schema is not newer than this binary's.
pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db)?;
    let result = async {
        let ours = migrations::runner().get_migrations().iter().map(|m| i64::from(m.version())).max().unwrap_or(0);
        let exists: bool = client
            .query_one("SELECT to_regclass('refinery_schema_history') IS NOT NULL", &[])
            .await
            .map_err(db)?
            .get(0);
        if exists {
            let theirs: Option<i64> = client
                .query_one("SELECT max(version)::bigint FROM refinery_schema_history", &[])
                .await
                .map_err(db)?
                .get(0);
            if let Some(theirs) = theirs.filter(|&t| t > ours) {
                return Err(StoreError::Corrupt {
                    key: "refinery_schema_history".into(),
                    why: format!(
                        "the database's schema is version {theirs}, newer than this binary's {ours}: \
                         run a bureau at least as new as the one that migrated it"
                    ),
                });
            }
        }
        let runner = migrations::runner().set_abort_divergent(true).set_abort_missing(true);
        runner.run_async(&mut **client).await.map_err(|e| unavailable(format!("migration: {e}")))?;
        Ok(())
    }
    .await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result
}
