//! One commit group's round trips: everything it reads before applying its changes, sent at
//! once (tokio-postgres pipelines them on the connection), and everything it writes, in one
//! statement (one implicit transaction, one commit).

use std::collections::{HashMap, HashSet};

use tokio_postgres::{types::ToSql, Row};

use super::{
    frontier::Frontier,
    model::{self, InquiryColumns, LogColumns, RecordColumns, RecordRow},
    op::Op,
    pool::{corrupt, db},
    statements,
};
use crate::{
    audit::merkle::Hash,
    domain::{inquiry::Inquiry, record::CreditRecord},
    storage::{Space, StoreError},
};

/// What one group reads before it applies its changes, and what it writes.
#[derive(Default)]
pub(super) struct Pending {
    /// The record rows the group touches, as read and then as changed, by (furnisher, id).
    pub rows: HashMap<(String, String), RecordRow>,
    /// Record keys the group changed (repeats allowed).
    pub dirty: Vec<(String, String)>,
    /// Inquiries the group records.
    pub inquiries: Vec<Inquiry>,
    /// Log leaves the group appends.
    pub leaves: Vec<Vec<u8>>,
    /// Subtree hashes the appended leaves complete.
    pub nodes: Vec<((u8, u64), Hash)>,
    /// State values as the group sees them (read before it, then its own changes).
    pub state: HashMap<(Space, String), Option<Vec<u8>>>,
    /// State keys the group changed.
    pub state_dirty: Vec<(Space, String)>,
    /// Inquiries known to exist before the group, by (subject, time, query id).
    pub inquiries_stored: HashSet<(String, i64, String)>,
    /// Inquiries the group deletes.
    pub inquiries_deleted: Vec<(String, i64, String)>,
}

/// What an answer reads from before the group.
pub(super) struct AnswerReads {
    /// The responder's live records of the subject, by record id.
    pub records: Vec<CreditRecord>,
    /// The newest inquiries about the subject, newest first.
    pub newest: Vec<Inquiry>,
    /// The subject's record flags by [`mark_key`](crate::storage::mark_key).
    pub marks: HashMap<String, Vec<u8>>,
    /// The subject's protection value.
    pub protection: Option<Vec<u8>>,
}

/// Why a group did not commit.
pub(super) enum GroupError {
    /// Another process appended to the log since this one last looked: nothing was written;
    /// reload the log's edge and try again.
    Stale,
    /// Anything else: nothing was written; the connection is suspect.
    Store(StoreError),
}

impl From<StoreError> for GroupError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A failed group write: stale when another process wrote first.
fn group_db(e: tokio_postgres::Error) -> GroupError {
    use tokio_postgres::error::SqlState;
    match e.as_db_error() {
        // Our first index is taken or a record we took for new exists: another process wrote
        // meanwhile. Or the head moved under us (1/0).
        Some(d)
            if *d.code() == SqlState::UNIQUE_VIOLATION
                && matches!(d.constraint(), Some("audit_entries_pkey" | "records_pkey")) =>
        {
            GroupError::Stale
        }
        Some(d) if *d.code() == SqlState::DIVISION_BY_ZERO => GroupError::Stale,
        _ => GroupError::Store(db(e)),
    }
}

/// Everything the group reads, sent at once: the current rows of every record key it touches,
/// the state its changes expect, the inquiries its purges name, and what each answer needs (one
/// [`AnswerReads`] per answer, in order).
pub(super) async fn read_before(
    c: &deadpool_postgres::Object,
    ops: &[Op],
    p: &mut Pending,
) -> Result<Vec<AnswerReads>, StoreError> {
    let answers = futures::future::try_join_all(ops.iter().filter_map(|op| match op {
        Op::Answer(q) => Some(read_answer(c, &q.inquiry, q.max_inquiries, q.since)),
        _ => None,
    }));
    let (rows, answers, state, stored) =
        tokio::try_join!(read_rows(c, ops), answers, read_state(c, ops), read_inquiry_keys(c, ops))?;
    for row in rows {
        let key: (String, String) = (row.get("furnisher"), row.get("record_id"));
        p.rows.insert(key, RecordRow::from_row(&row)?);
    }
    p.state = state;
    p.inquiries_stored = stored;
    Ok(answers)
}

/// The current rows of every record key the group's furnishings, corrections and deletions name.
async fn read_rows(c: &deadpool_postgres::Object, ops: &[Op]) -> Result<Vec<Row>, StoreError> {
    let mut furnishers = Vec::new();
    let mut ids = Vec::new();
    let mut add = |f: &str, i: &str| {
        furnishers.push(f.to_owned());
        ids.push(i.to_owned());
    };
    for op in ops {
        match op {
            Op::Furnish(rs, _) => rs.iter().for_each(|r| add(&r.furnisher, &r.record_id)),
            Op::Correct(r, _) => add(&r.furnisher, &r.record_id),
            Op::Delete { furnisher, record_id, .. } => add(furnisher, record_id),
            _ => {}
        }
    }
    if furnishers.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = c.prepare_cached(statements::GROUP_RECORD_ROWS).await.map_err(db)?;
    c.query(&stmt, &[&furnishers, &ids]).await.map_err(db)
}

/// What answering `inquiry` needs from before the group, in three pipelined queries; the
/// inquiries read are only those answered (at most `max`, none before `since`).
async fn read_answer(
    c: &deadpool_postgres::Object,
    inquiry: &Inquiry,
    max: usize,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<AnswerReads, StoreError> {
    let (rs, is, ms) = (
        c.prepare_cached(statements::ANSWER_RECORDS).await.map_err(db)?,
        c.prepare_cached(statements::NEWEST_INQUIRIES_SINCE).await.map_err(db)?,
        c.prepare_cached(statements::ANSWER_MARKS_AND_PROTECTION).await.map_err(db)?,
    );
    let limit = max as i64;
    let prefix = format!("{}/", inquiry.subject_id);
    let rp: [&(dyn ToSql + Sync); 2] = [&inquiry.subject_id, &inquiry.responder];
    let since = since.map_or(i64::MIN, |t| t.timestamp_micros());
    let ip: [&(dyn ToSql + Sync); 3] = [&inquiry.subject_id, &since, &limit];
    let mp: [&(dyn ToSql + Sync); 2] = [&prefix, &inquiry.subject_id];
    let (records, newest, marks) =
        tokio::try_join!(c.query(&rs, &rp), c.query(&is, &ip), c.query(&ms, &mp)).map_err(db)?;
    // The protection row comes back under the empty key (no flag key is empty).
    let mut marks: HashMap<String, Vec<u8>> = marks.iter().map(|r| (r.get("key"), r.get("value"))).collect();
    let protection = marks.remove("");
    let records = records
        .iter()
        .map(|r| model::decode_record(r.get("furnisher"), r.get("record_id"), r.get("body")))
        .collect::<Result<_, _>>()?;
    let newest = newest.iter().map(model::inquiry).collect::<Result<_, _>>()?;
    Ok(AnswerReads { records, newest, marks, protection })
}

/// The current values of every state key the group's changes expect something of (absent
/// ones as `None`).
async fn read_state(
    c: &deadpool_postgres::Object,
    ops: &[Op],
) -> Result<HashMap<(Space, String), Option<Vec<u8>>>, StoreError> {
    let mut out: HashMap<(Space, String), Option<Vec<u8>>> = HashMap::new();
    let changes = ops.iter().filter_map(|op| match op {
        Op::State(change) => Some(change),
        Op::Answer(q) => q.first.as_ref(),
        _ => None,
    });
    for change in changes {
        for (space, key, _) in &change.expect {
            out.insert((*space, key.clone()), None);
        }
    }
    if out.is_empty() {
        return Ok(out);
    }
    let spaces: Vec<&str> = out.keys().map(|(s, _)| s.as_str()).collect();
    let keys: Vec<&str> = out.keys().map(|(_, k)| k.as_str()).collect();
    let stmt = c.prepare_cached(statements::GROUP_STATE).await.map_err(db)?;
    let rows = c.query(&stmt, &[&spaces, &keys]).await.map_err(db)?;
    let by_name: HashMap<&str, Space> = Space::ALL.into_iter().map(|s| (s.as_str(), s)).collect();
    let mut found = Vec::new();
    for row in rows {
        let space: &str = row.get("space");
        let space = *by_name.get(space).ok_or_else(|| corrupt("node_state", format!("unknown space {space}")))?;
        found.push(((space, row.get::<_, String>("key")), Some(row.get::<_, Vec<u8>>("value"))));
    }
    out.extend(found);
    Ok(out)
}

/// Which of the inquiries the group's purges name are stored now.
async fn read_inquiry_keys(
    c: &deadpool_postgres::Object,
    ops: &[Op],
) -> Result<HashSet<(String, i64, String)>, StoreError> {
    let wanted: Vec<&Inquiry> = ops
        .iter()
        .filter_map(|op| match op {
            Op::PurgeInquiries(is, _) => Some(is.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let subject_id: Vec<&str> = wanted.iter().map(|i| i.subject_id.as_str()).collect();
    let time_micros: Vec<i64> = wanted.iter().map(|i| i.time.timestamp_micros()).collect();
    let query_id: Vec<&str> = wanted.iter().map(|i| i.query_id.as_str()).collect();
    let stmt = c.prepare_cached(statements::GROUP_INQUIRY_KEYS).await.map_err(db)?;
    let rows = c.query(&stmt, &[&subject_id, &time_micros, &query_id]).await.map_err(db)?;
    Ok(rows.iter().map(|r| (r.get("subject_id"), r.get("time_micros"), r.get("query_id"))).collect())
}

/// Writes what the group gathered in one statement: records, inquiries, entries, subtree
/// hashes and the new head (lifecycle changes, which are rare, in a second statement of the
/// same transaction).
pub(super) async fn write(c: &deadpool_postgres::Object, f: &Frontier, p: Pending) -> Result<(), GroupError> {
    if p.leaves.is_empty() {
        return Ok(()); // every change logs an entry: nothing changed
    }
    if !p.state_dirty.is_empty() || !p.inquiries_deleted.is_empty() {
        c.batch_execute("BEGIN").await.map_err(db)?;
        let done = async {
            write_lifecycle(c, &p).await?;
            let mut rest = Pending { state_dirty: Vec::new(), inquiries_deleted: Vec::new(), ..p };
            rest.state.clear();
            Box::pin(write(c, f, rest)).await
        }
        .await;
        return match done {
            Ok(()) => c.batch_execute("COMMIT").await.map_err(group_db),
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                Err(e)
            }
        };
    }
    let size = f.loaded_size()?;
    let root = f.root(size)?;
    let log = LogColumns::of(size - p.leaves.len() as u64, &p.leaves, &p.nodes, &root);
    let mut params: Vec<&(dyn ToSql + Sync)> = log.params().to_vec();
    if p.dirty.is_empty() && p.inquiries.is_empty() {
        return run_write(c, statements::WRITE_LOG, &params).await;
    }
    let inquiries = InquiryColumns::of(&p.inquiries);
    params.extend(inquiries.params());
    if p.dirty.is_empty() {
        return run_write(c, statements::WRITE_INQUIRIES, &params).await;
    }
    let mut seen = HashSet::new();
    let dirty = p.dirty.iter().filter(|k| seen.insert(*k)).map(|k| (k, &p.rows[k]));
    // New rows are plain INSERTs (cheaper than an upsert); rows read before are UPDATEs.
    let (inserts, updates): (Vec<_>, Vec<_>) = dirty.partition(|(_, row)| !row.in_db);
    let (inserts, updates) = (RecordColumns::of(inserts.into_iter())?, RecordColumns::of(updates.into_iter())?);
    params.extend(inserts.params());
    params.extend(updates.params());
    run_write(c, statements::WRITE_GROUP, &params).await
}

/// Lifecycle state values and purged inquiries, in one statement (inside the group's
/// transaction).
async fn write_lifecycle(c: &deadpool_postgres::Object, p: &Pending) -> Result<(), GroupError> {
    let mut seen = HashSet::new();
    let (mut put_space, mut put_key, mut put_value) = (Vec::new(), Vec::new(), Vec::new());
    let (mut removed_space, mut removed_key) = (Vec::new(), Vec::new());
    for key in p.state_dirty.iter().filter(|k| seen.insert(*k)) {
        match p.state.get(key).cloned().flatten() {
            Some(v) => {
                put_space.push(key.0.as_str());
                put_key.push(key.1.as_str());
                put_value.push(v);
            }
            None => {
                removed_space.push(key.0.as_str());
                removed_key.push(key.1.as_str());
            }
        }
    }
    let gone = &p.inquiries_deleted;
    let subject_id: Vec<&str> = gone.iter().map(|k| k.0.as_str()).collect();
    let time_micros: Vec<i64> = gone.iter().map(|k| k.1).collect();
    let query_id: Vec<&str> = gone.iter().map(|k| k.2.as_str()).collect();
    let stmt = c.prepare_cached(statements::WRITE_LIFECYCLE).await.map_err(db)?;
    let params: [&(dyn ToSql + Sync); 8] =
        [&put_space, &put_key, &put_value, &removed_space, &removed_key, &subject_id, &time_micros, &query_id];
    c.execute(&stmt, &params).await.map_err(group_db)?;
    Ok(())
}

/// Runs one of the group-writing statements (one round trip, one commit).
async fn run_write(c: &deadpool_postgres::Object, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<(), GroupError> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query_one(&stmt, params).await.map_err(group_db)?;
    Ok(())
}
