//! Customers, conversations, messages, status reports and the opt-out list, on SQLite.
//!
//! Every write that reads first runs in one `BEGIN IMMEDIATE` transaction: SQLite has one writer
//! at a time, so a duplicate check, an attribution or a status report's lookup and the writes
//! that follow see the same database. The proactive messages of a batch of results are written
//! in the results' own transaction ([`record_messages`]) as multi-row statements of bound
//! values, padded like the results' updates so that a few prepared statements serve every batch.

use crate::dispatch;
use sqlx::{Sqlite, SqlitePool};

/// Rows per multi-row statement: at most 11 values a row, well under SQLite's 32,766 bound
/// parameters.
pub(super) const CHUNK: usize = 1024;

/// A list of strings as one bound value, read back with `in_list!` (`json_each`).
fn text_list<S: AsRef<str>>(items: &[S]) -> String {
    serde_json::Value::Array(
        items
            .iter()
            .map(|s| serde_json::Value::String(s.as_ref().to_string()))
            .collect(),
    )
    .to_string()
}

/// The pending recipients of the live outreaches sending from the sender (any, for NULL), found
/// outreach by outreach through `recipients_due` (or `recipients_outreach_state`), never by a
/// scan of every recipient.
pub(crate) const SKIP_PENDING: &str = "UPDATE recipients SET state = 'skipped', skip_reason = $3, \
     updated_at = $4 \
     WHERE outreach_id IN (SELECT o.id FROM outreaches o JOIN campaigns c ON c.id = o.campaign_id \
                           WHERE o.status IN ('scheduled', 'in_progress') \
                             AND ($2 IS NULL OR c.sender_id = $2)) \
       AND state = 'pending' AND address = $1";

/// Skips the address's pending recipients in the live outreaches of the sender (of every sender,
/// for None): one statement.
async fn skip_pending(
    pool: &SqlitePool,
    address: &str,
    sender_id: Option<Uuid>,
    reason: SkipReason,
    now_us: Ts,
) -> Result<u64> {
    let done = sqlx::query(SKIP_PENDING)
        .bind(address)
        .bind(sender_id)
        .bind(reason.as_str())
        .bind(now_us)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Nothing to lock: a status report's write transaction holds the whole database.
async fn lock_report(_conn: &mut DbConn, _provider_message_id: &str) -> Result<()> {
    Ok(())
}

/// The customer with the address, created (at `at_us`) if new.
pub(super) async fn customer_id(conn: &mut DbConn, address: &str, at_us: Ts) -> Result<Uuid> {
    if let Some((id,)) = sqlx::query_as::<_, (Uuid,)>("SELECT id FROM customers WHERE address = $1")
        .bind(address)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(id);
    }
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO customers (id, address, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(address)
        .bind(at_us)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Records the proactive messages of `sent` whose recipients' `Sent` results were applied
/// (`applied`), in the results' transaction: their customers (if new), the messages, then the
/// status reports kept for them.
pub(crate) async fn record_messages(
    conn: &mut DbConn,
    now_us: Ts,
    applied: &[i64],
    sent: &[SentMessage],
) -> Result<()> {
    let todo = conversation::to_record(applied, sent);
    if todo.is_empty() {
        return Ok(());
    }
    for chunk in todo.chunks(CHUNK) {
        let rows = chunk
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None))
            .take(dispatch::padded(chunk.len()));
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO customers (id, address, created_at) SELECT column1, column2, ",
        );
        q.push_bind(now_us).push(" FROM (");
        // Padding rows have a NULL id and are left out.
        q.push_values(rows, |mut b, m| {
            b.push_bind(m.map(|_| Uuid::now_v7()))
                .push_bind(m.map(|m| m.to.as_str()));
        });
        q.push(") WHERE column1 IS NOT NULL ON CONFLICT (address) DO NOTHING");
        q.build().execute(&mut *conn).await?;
    }
    for chunk in todo.chunks(CHUNK) {
        let rows = chunk
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None))
            .take(dispatch::padded(chunk.len()));
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, \
             from_address, to_address, subject, body, campaign_id, outreach_id, recipient_id, \
             provider_message_id, status, created_at) \
             SELECT v.column1, cu.id, v.column2, 'outbound', 'outreach', v.column3, v.column4, \
             v.column5, v.column6, v.column7, v.column8, v.column9, v.column10, v.column11, \
             'sent', ",
        );
        q.push_bind(now_us).push(" FROM (");
        q.push_values(rows, |mut b, m| {
            b.push_bind(m.map(|_| Uuid::now_v7()))
                .push_bind(m.map(|m| m.sender_id))
                .push_bind(m.map(|m| m.channel.as_str()))
                .push_bind(m.map(|m| m.from.as_str()))
                .push_bind(m.map(|m| m.to.as_str()))
                .push_bind(m.and_then(|m| m.subject.as_deref()))
                .push_bind(m.map(|m| m.body.as_str()))
                .push_bind(m.map(|m| m.campaign_id))
                .push_bind(m.map(|m| m.outreach_id))
                .push_bind(m.map(|m| m.recipient_id))
                .push_bind(m.and_then(|m| m.provider_message_id.as_deref()));
        });
        // The sender is joined so that a message of a sender deleted meanwhile is left out
        // rather than fail the whole batch of results. The WHERE also tells SQLite's parser that
        // the ON CONFLICT below is the upsert, not a join's ON.
        q.push(
            ") AS v JOIN customers cu ON cu.address = v.column5 \
             JOIN senders s ON s.id = v.column2 \
             WHERE v.column1 IS NOT NULL ON CONFLICT DO NOTHING",
        );
        q.build().execute(&mut *conn).await?;
    }
    let ids: Vec<&str> = todo
        .iter()
        .filter_map(|m| m.provider_message_id.as_deref())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    apply_kept(conn, &ids).await
}

include!("../shared/conversation.rs");

#[cfg(test)]
mod tests {
    use super::*;

    async fn plan(pool: &SqlitePool, sql: &str, binds: usize) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(sql));
        for _ in 0..binds {
            q = q.bind(Uuid::nil());
        }
        let rows = q.fetch_all(pool).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// What keeps these off full scans of `recipients` and `messages`.
    #[tokio::test]
    async fn lookups_use_indexes() {
        let t = crate::testing::sqlite().await;
        let pool = SqlitePool::connect(&t.url).await.unwrap();
        let skip = plan(&pool, SKIP_PENDING, 4).await;
        assert!(!skip.contains("SCAN recipients"), "{skip}");
        assert!(skip.contains("USING INDEX recipients_"), "{skip}");
        let attribution = plan(&pool, ATTRIBUTION_IN_WINDOW, 3).await;
        assert!(attribution.contains("messages_timeline"), "{attribution}");
        assert!(!attribution.contains("TEMP B-TREE"), "{attribution}");
        let outbound = plan(
            &pool,
            "SELECT id FROM messages WHERE direction = 'outbound' AND provider_message_id = $1",
            1,
        )
        .await;
        assert!(outbound.contains("messages_provider_id"), "{outbound}");
    }
}
