//! Customers, conversations, messages, status reports and the opt-out list, on PostgreSQL.
//!
//! The code the backends share is in `../shared/conversation.rs`. Where SQLite's single writer makes a check and the write
//! after it atomic, PostgreSQL needs one of these:
//!
//! * A replayed inbound message racing its first delivery: the message is inserted `ON CONFLICT
//!   DO NOTHING` before anything else is written; the second insert waits for the first
//!   transaction and, finding the id taken, rolls its own back and answers as a duplicate.
//! * A status report racing the recording of its message: the report's transaction and the
//!   results' transaction each take a transaction-level advisory lock on the provider id
//!   ([`REPORT_LOCK`], then the id's hash) before reading what the other writes, so one of them
//!   sees the other's commit: either the report finds the message, or the recording finds the
//!   kept report.
//! * Customers created by two transactions at once: `INSERT … ON CONFLICT DO NOTHING` in address
//!   order, then a read.

use sqlx::PgPool;

/// The first key of the advisory locks taken on a status report's provider id (`HERA`), so they
/// cannot collide with other users of advisory locks.
pub(crate) const REPORT_LOCK: i32 = 0x4845_5241;

/// The advisory lock of a status report's provider id (see the module's notes).
async fn lock_report(conn: &mut DbConn, provider_message_id: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(REPORT_LOCK)
        .bind(provider_message_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A list of strings as one bound array, read back with `in_list!` (`= ANY`).
fn text_list<S: AsRef<str>>(items: &[S]) -> Vec<&str> {
    items.iter().map(AsRef::as_ref).collect()
}

/// Skips the address's pending recipients in the live outreaches of the sender (of every sender,
/// for None): outreach by outreach, so that each update is a range of one outreach's index.
async fn skip_pending(
    pool: &PgPool,
    address: &str,
    sender_id: Option<Uuid>,
    reason: SkipReason,
    now_us: Ts,
) -> Result<u64> {
    let live: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT o.id FROM outreaches o JOIN campaigns c ON c.id = o.campaign_id \
         WHERE o.status IN ('scheduled', 'in_progress') AND ($1 IS NULL OR c.sender_id = $1) \
         ORDER BY o.id",
    )
    .bind(sender_id)
    .fetch_all(pool)
    .await?;
    let mut skipped = 0;
    for (outreach_id,) in live {
        skipped += sqlx::query(concat!(
            "UPDATE recipients SET state = 'skipped', skip_reason = $3, updated_at = ",
            "$4",
            " WHERE outreach_id = $1 AND state = 'pending' AND address = $2"
        ))
        .bind(outreach_id)
        .bind(address)
        .bind(reason.as_str())
        .bind(now_us)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(skipped)
}

/// The customer with the address, created (at `at_us`) if new.
pub(super) async fn customer_id(conn: &mut DbConn, address: &str, at_us: Ts) -> Result<Uuid> {
    let find = || {
        sqlx::query_as::<_, (Uuid,)>("SELECT id FROM customers WHERE address = $1").bind(address)
    };
    if let Some((id,)) = find().fetch_optional(&mut *conn).await? {
        return Ok(id);
    }
    sqlx::query(concat!(
        "INSERT INTO customers (id, address, created_at) VALUES ($1, $2, ",
        "$3",
        ") ON CONFLICT (address) DO NOTHING"
    ))
    .bind(Uuid::now_v7())
    .bind(address)
    .bind(at_us)
    .execute(&mut *conn)
    .await?;
    // Ours, or the one a concurrent transaction committed first.
    Ok(find().fetch_one(&mut *conn).await?.0)
}

/// Records the proactive messages of `sent` whose recipients' `Sent` results were applied
/// (`applied`), in the results' transaction: their customers (if new), the messages, then the
/// status reports kept for them. Four statements, whatever the batch size.
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
    // In address order, so two batches creating the same customers cannot deadlock.
    let mut addresses: Vec<&str> = todo.iter().map(|m| m.to.as_str()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let ids: Vec<Uuid> = addresses.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(concat!(
        "INSERT INTO customers (id, address, created_at) SELECT v.id, v.address, ",
        "$1",
        " FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS v (id, address, n) \
         ORDER BY v.n ON CONFLICT (address) DO NOTHING"
    ))
    .bind(now_us)
    .bind(&ids)
    .bind(&addresses)
    .execute(&mut *conn)
    .await?;
    // The sender is joined so that a message of a sender deleted meanwhile is left out rather
    // than fail the whole batch of results.
    sqlx::query(concat!(
        "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, \
         from_address, to_address, subject, body, campaign_id, outreach_id, recipient_id, \
         provider_message_id, status, created_at) \
         SELECT v.id, cu.id, v.sender_id, 'outbound', 'outreach', v.channel, v.from_address, \
         v.to_address, v.subject, v.body, v.campaign_id, v.outreach_id, v.recipient_id, \
         v.provider_message_id, 'sent', ",
        "$1",
        " FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                      $8::text[], $9::uuid[], $10::uuid[], $11::int8[], $12::text[]) \
              AS v (id, sender_id, channel, from_address, to_address, subject, body, \
                    campaign_id, outreach_id, recipient_id, provider_message_id) \
         JOIN customers cu ON cu.address = v.to_address \
         JOIN senders s ON s.id = v.sender_id \
         ON CONFLICT DO NOTHING"
    ))
    .bind(now_us)
    .bind(todo.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.sender_id).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.channel.as_str()).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.from.as_str()).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.to.as_str()).collect::<Vec<_>>())
    .bind(
        todo.iter()
            .map(|m| m.subject.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(todo.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.campaign_id).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.outreach_id).collect::<Vec<_>>())
    .bind(todo.iter().map(|m| m.recipient_id).collect::<Vec<_>>())
    .bind(
        todo.iter()
            .map(|m| m.provider_message_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    let ids: Vec<&str> = todo
        .iter()
        .filter_map(|m| m.provider_message_id.as_deref())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    // A report for one of these ids committed before the lock is seen below; one that waits for
    // the lock finds the message once this transaction commits.
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, k) \
         FROM (SELECT DISTINCT hashtext(p) AS k FROM unnest($2::text[]) AS p ORDER BY k) AS s",
    )
    .bind(REPORT_LOCK)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    apply_kept(conn, &ids).await
}

include!("../shared/conversation.rs");
