//! Every SQL statement the backend runs, by name, with its parameters and result columns named.
//! Arrays passed as `unnest(..) AS alias(column, ..)` carry the table's own column names, so a
//! statement reads like the schema in `migrations/`.
//!
//! The group writes are built from parts that share one parameter layout, so the larger write
//! only adds parameters after the smaller one's: the log (`$1`–`$8`), then inquiries (`$9`–`$12`),
//! then records inserted (`$13`–`$21`) and updated (`$22`–`$30`).

// ---- reads outside the writer --------------------------------------------------------------

/// One live record: `$1` furnisher, `$2` record id.
pub(super) const GET_RECORD: &str = "SELECT furnisher, record_id, body, updated_micros FROM records \
     WHERE furnisher = $1 AND record_id = $2 AND live";

/// A page of a subject's live records: `$1` subject, strictly after (`$2` furnisher, `$3`
/// record id), at most `$4`.
pub(super) const LIST_SUBJECT_RECORDS: &str = "SELECT furnisher, record_id, body, updated_micros FROM records \
     WHERE subject_id = $1 AND live AND (furnisher, record_id) > ($2, $3) \
     ORDER BY furnisher, record_id LIMIT $4";

/// Every live record of subject `$1`.
pub(super) const SUBJECT_RECORDS: &str = "SELECT furnisher, record_id, body, updated_micros FROM records \
     WHERE subject_id = $1 AND live ORDER BY furnisher, record_id";

/// A subject's newest inquiries: `$1` subject, at most `$2`.
pub(super) const NEWEST_INQUIRIES: &str = "SELECT time_micros, query_id, body FROM inquiries WHERE subject_id = $1 \
     ORDER BY time_micros DESC, query_id DESC LIMIT $2";

/// A subject's newest inquiries recorded at or after a time: `$1` subject, from `$2` (micros),
/// at most `$3`. The primary key (subject, time, query id) bounds the read to what it returns.
pub(super) const NEWEST_INQUIRIES_SINCE: &str = "SELECT time_micros, query_id, body FROM inquiries \
     WHERE subject_id = $1 AND time_micros >= $2 ORDER BY time_micros DESC, query_id DESC LIMIT $3";

/// A subject's inquiries older than a cursor: `$1` subject, strictly before (`$2` time, `$3`
/// query id), at most `$4`.
pub(super) const INQUIRIES_BEFORE_CURSOR: &str = "SELECT time_micros, query_id, body FROM inquiries \
     WHERE subject_id = $1 AND (time_micros, query_id) < ($2, $3) \
     ORDER BY time_micros DESC, query_id DESC LIMIT $4";

/// One state value: `$1` space, `$2` key.
pub(super) const GET_STATE: &str = "SELECT value FROM node_state WHERE space = $1 AND key = $2";

/// State values of space `$1` whose key starts with `$2`, from key `$3` (strictly after it when
/// `$4`), at most `$5`.
pub(super) const SCAN_STATE: &str = "SELECT key, value FROM node_state WHERE space = $1 AND starts_with(key, $2) \
     AND (key > $3 OR (NOT $4 AND key = $3)) ORDER BY key LIMIT $5";

/// Live records of any subject strictly after (`$1` furnisher, `$2` record id), at most `$3`.
pub(super) const SCAN_RECORDS: &str = "SELECT furnisher, record_id, body, updated_micros FROM records \
     WHERE live AND (furnisher, record_id) > ($1, $2) ORDER BY furnisher, record_id LIMIT $3";

/// Inquiries made before time `$1`, oldest first, at most `$2`.
pub(super) const INQUIRIES_BEFORE_TIME: &str = "SELECT time_micros, query_id, body FROM inquiries \
     WHERE time_micros < $1 ORDER BY time_micros LIMIT $2";

/// The committed head of the log.
pub(super) const LOG_HEAD: &str = "SELECT size, root FROM log_head WHERE one";

/// Log entries from index `$1`, at most `$2`.
pub(super) const AUDIT_ENTRIES: &str = "SELECT idx, leaf FROM audit_entries WHERE idx >= $1 ORDER BY idx LIMIT $2";

/// Stored subtree hashes by (`$1` levels, `$2` indices).
pub(super) const AUDIT_NODES: &str = "SELECT n.level, n.idx, n.hash FROM audit_nodes n \
     JOIN unnest($1::smallint[], $2::bigint[]) AS wanted(level, idx) ON n.level = wanted.level AND n.idx = wanted.idx";

/// A database round trip and nothing else.
pub(super) const PROBE: &str = "SELECT 1";

// ---- reads a group makes before it applies its changes -------------------------------------

/// The rows (live or tombstones) under (`$1` furnishers, `$2` record ids).
pub(super) const GROUP_RECORD_ROWS: &str = "SELECT r.furnisher, r.record_id, r.subject_id, r.version, r.live, \
       r.body, r.updated_micros, r.deletion_reason, r.deletion_note \
     FROM records r JOIN unnest($1::text[], $2::text[]) AS wanted(furnisher, record_id) \
       ON r.furnisher = wanted.furnisher AND r.record_id = wanted.record_id";

/// An answer's records: subject `$1`'s live records furnished by `$2`, by record id.
pub(super) const ANSWER_RECORDS: &str = "SELECT furnisher, record_id, body FROM records \
     WHERE subject_id = $1 AND furnisher = $2 AND live ORDER BY record_id";

/// An answer's flags and protection: the record flags under prefix `$1` (by key), then the
/// protection of subject `$2` under the empty key (no flag key is empty).
pub(super) const ANSWER_MARKS_AND_PROTECTION: &str = "SELECT key, value FROM node_state \
     WHERE space = 'mark' AND starts_with(key, $1) \
     UNION ALL SELECT '' AS key, value FROM node_state WHERE space = 'protection' AND key = $2";

/// The state values under (`$1` spaces, `$2` keys) that exist.
pub(super) const GROUP_STATE: &str = "SELECT s.space, s.key, s.value FROM node_state s \
     JOIN unnest($1::text[], $2::text[]) AS wanted(space, key) ON s.space = wanted.space AND s.key = wanted.key";

/// Which inquiries under (`$1` subjects, `$2` times, `$3` query ids) exist.
pub(super) const GROUP_INQUIRY_KEYS: &str = "SELECT q.subject_id, q.time_micros, q.query_id FROM inquiries q \
     JOIN unnest($1::text[], $2::bigint[], $3::text[]) AS wanted(subject_id, time_micros, query_id) \
       ON q.subject_id = wanted.subject_id AND q.time_micros = wanted.time_micros AND q.query_id = wanted.query_id";

/// The committed size of the log (the writer's frontier starts there).
pub(super) const LOG_SIZE: &str = "SELECT size FROM log_head WHERE one";

// ---- the group writes: one statement, one round trip, one commit ---------------------------

/// The log part: entries (`$1` indices, `$2` leaves), subtree hashes (`$3` levels, `$4` indices,
/// `$5` hashes), and the head moved to (`$6` size, `$7` root) only from size `$8`. A process
/// whose view of the log is stale fails atomically: its first entry index is taken, or no head
/// row moves and `head_moved!` divides by zero.
macro_rules! append_log {
    () => {
        "new_entries AS (INSERT INTO audit_entries (idx, leaf) SELECT * FROM unnest($1::bigint[], $2::bytea[])), \
         new_nodes AS (INSERT INTO audit_nodes (level, idx, hash) \
             SELECT * FROM unnest($3::smallint[], $4::bigint[], $5::bytea[])), \
         moved_head AS (UPDATE log_head SET size = $6, root = $7 WHERE one AND size = $8 RETURNING 1)"
    };
}

/// Inquiries recorded (`$9` subjects, `$10` times, `$11` query ids, `$12` bodies); the last of
/// two with one key wins, as with sequential upserts.
macro_rules! record_inquiries {
    () => {
        "new_inquiries AS (INSERT INTO inquiries (subject_id, time_micros, query_id, body) \
             SELECT DISTINCT ON (subject_id, time_micros, query_id) subject_id, time_micros, query_id, body \
             FROM unnest($9::text[], $10::bigint[], $11::text[], $12::bytea[]) \
                  WITH ORDINALITY AS recorded(subject_id, time_micros, query_id, body, position) \
             ORDER BY subject_id, time_micros, query_id, position DESC \
             ON CONFLICT (subject_id, time_micros, query_id) DO UPDATE SET body = EXCLUDED.body)"
    };
}

/// Records new to the table (`$13`–`$21`, the columns in table order) and rows read before the
/// group, rewritten (`$22`–`$30`, the same columns).
macro_rules! write_records {
    () => {
        "new_records AS (INSERT INTO records (furnisher, record_id, subject_id, version, live, body, \
                                              updated_micros, deletion_reason, deletion_note) \
             SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::bigint[], $17::bool[], \
                                  $18::bytea[], $19::bigint[], $20::text[], $21::text[])), \
         changed_records AS (UPDATE records SET subject_id = changed.subject_id, version = changed.version, \
                 live = changed.live, body = changed.body, updated_micros = changed.updated_micros, \
                 deletion_reason = changed.deletion_reason, deletion_note = changed.deletion_note \
             FROM unnest($22::text[], $23::text[], $24::text[], $25::bigint[], $26::bool[], $27::bytea[], \
                         $28::bigint[], $29::text[], $30::text[]) \
                  AS changed(furnisher, record_id, subject_id, version, live, body, updated_micros, \
                             deletion_reason, deletion_note) \
             WHERE records.furnisher = changed.furnisher AND records.record_id = changed.record_id)"
    };
}

/// The statement's one result: 1 when the head moved, a division by zero (failing everything)
/// when another process moved it first.
macro_rules! head_moved {
    () => {
        " SELECT 1 / (SELECT count(*)::int FROM moved_head)"
    };
}

/// A group that only appends to the log: parameters `$1`–`$8`.
pub(super) const WRITE_LOG: &str = concat!("WITH ", append_log!(), head_moved!());

/// A group that records inquiries and logs (peer answers), no records: `$1`–`$12`.
pub(super) const WRITE_INQUIRIES: &str = concat!("WITH ", append_log!(), ", ", record_inquiries!(), head_moved!());

/// A group that also stores records: `$1`–`$30`.
pub(super) const WRITE_GROUP: &str =
    concat!("WITH ", append_log!(), ", ", record_inquiries!(), ", ", write_records!(), head_moved!());

/// Lifecycle changes, in the group's transaction before [`WRITE_GROUP`] and its kin: state
/// values upserted (`$1` spaces, `$2` keys, `$3` values) and removed (`$4` spaces, `$5` keys),
/// and inquiries purged (`$6` subjects, `$7` times, `$8` query ids).
pub(super) const WRITE_LIFECYCLE: &str = "WITH \
  put_state AS (INSERT INTO node_state (space, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
        ON CONFLICT (space, key) DO UPDATE SET value = EXCLUDED.value), \
  removed_state AS (DELETE FROM node_state USING unnest($4::text[], $5::text[]) AS gone(space, key) \
        WHERE node_state.space = gone.space AND node_state.key = gone.key), \
  purged_inquiries AS (DELETE FROM inquiries \
        USING unnest($6::text[], $7::bigint[], $8::text[]) AS gone(subject_id, time_micros, query_id) \
        WHERE inquiries.subject_id = gone.subject_id AND inquiries.time_micros = gone.time_micros \
          AND inquiries.query_id = gone.query_id) \
SELECT 1";
