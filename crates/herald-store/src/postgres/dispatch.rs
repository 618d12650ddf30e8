//! What the dispatcher reads and writes, on PostgreSQL.
//!
//! Claims are one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`
//! statement, so concurrent dispatchers (on one machine or many) take disjoint recipients; the
//! subquery walks the partial index `recipients_due` (`migrations/postgres/0003_dispatch.sql`) in
//! claim order. Results are written in one transaction, one `UPDATE … FROM unnest(…)` statement
//! for the accepted sends and one for every other outcome; the accepted proactive messages go on
//! their customers' timelines in the same transaction (`conversation::record_messages`), and
//! only then does the sends' update return the ids it changed.
//!
//! A write that depends on the outreach's status locks the outreach row first (`FOR UPDATE` to
//! change it, `FOR SHARE` to rely on it), so the statements after the lock see what the other
//! writer committed: stopping waits for a batch of retries to land and then skips them, and a
//! batch of retries recorded after a stop sees it and skips instead.

use crate::dispatch::{ClaimRow, OtherRow, SentRow};
use sqlx::PgConnection;

/// Many writers: a claim runs while another batch's results are written.
const CONCURRENT_WRITES: bool = true;

/// The outreaches the dispatcher works on, with whether they have recipients pending and sending.
/// "Pending" is the first entry of the `recipients_due` walk, which a plain `EXISTS` would not use.
const LIVE_SELECT: &str = concat!(
    "SELECT o.id, o.campaign_id, o.status, o.start_at, o.end_at, \
     (SELECT 1 FROM recipients r WHERE r.outreach_id = o.id AND r.state = 'pending' \
      ORDER BY ",
    due_key!(),
    " LIMIT 1) IS NOT NULL, \
     EXISTS (SELECT 1 FROM recipients r WHERE r.outreach_id = o.id AND r.state = 'sending') \
     FROM outreaches o WHERE o.status IN ('scheduled', 'in_progress') ORDER BY o.id"
);

/// Outreach `$1` completed at `$2` if it is live and has no recipient pending or sending.
const COMPLETE_UPDATE: &str = concat!(
    "UPDATE outreaches SET status = 'completed', updated_at = $2, finished_at = $2 \
     WHERE id = $1 AND status IN ('scheduled', 'in_progress') \
     AND (SELECT 1 FROM recipients WHERE outreach_id = $1 AND state = 'pending' ORDER BY ",
    due_key!(),
    " LIMIT 1) IS NULL \
     AND NOT EXISTS (SELECT 1 FROM recipients WHERE outreach_id = $1 AND state = 'sending')"
);

/// `sent` for every recipient of `rows` still `sending` (or `unknown`). With `returning`, the ids
/// of the recipients it changed (else none).
pub(super) async fn record_sent(
    conn: &mut PgConnection,
    now_us: Ts,
    rows: &[SentRow<'_>],
    returning: bool,
) -> Result<Vec<i64>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let provider_ids: Vec<Option<&str>> = rows.iter().map(|r| r.provider_message_id).collect();
    if !returning {
        sqlx::query(sent_update!())
            .bind(now_us)
            .bind(ids)
            .bind(provider_ids)
            .execute(&mut *conn)
            .await?;
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar(concat!(sent_update!(), " RETURNING r.id"))
            .bind(now_us)
            .bind(ids)
            .bind(provider_ids)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Every other outcome, for recipients of `rows` still `sending` and still `held` by the batch.
/// A recipient going back to `pending` whose outreach was stopped is `skipped: stopped` instead.
/// The state and holder checks name `v` for the reason given at `sent_update!`.
pub(super) async fn record_other(
    conn: &mut PgConnection,
    now_us: Ts,
    held: Held,
    rows: &[OtherRow<'_>],
) -> Result<()> {
    let (lease, mark) = held.keys();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    if rows.iter().any(|r| r.state == "pending") {
        // Rely on the outreaches' status until the commit: a stop waits for this batch and then
        // skips what it re-queued; a stop that came first is seen below.
        sqlx::query(
            "SELECT 1 FROM outreaches WHERE id IN \
             (SELECT outreach_id FROM recipients WHERE id = ANY($1)) ORDER BY id FOR SHARE",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    }
    sqlx::query(concat!(
        "UPDATE recipients r SET \
         state = CASE WHEN v.state = 'pending' AND o.status = 'stopped' \
                 THEN 'skipped' ELSE v.state END, \
         skip_reason = CASE WHEN v.state = 'pending' AND o.status = 'stopped' \
                       THEN 'stopped' ELSE v.skip_reason END, \
         due_at = CASE WHEN v.state = 'pending' \
                  THEN v.due_us \
                  ELSE r.due_at END, \
         error_code = CASE WHEN v.set_error THEN v.error_code ELSE r.error_code END, \
         error_message = CASE WHEN v.set_error THEN v.error_message ELSE r.error_message END, \
         attempts = r.attempts + v.attempts_delta, lease_until = NULL, updated_at = ",
        "$1",
        " FROM unnest($2::int8[], $3::text[], $4::text[], $5::timestamptz[], $6::bool[], $7::text[], \
                      $8::text[], $9::int4[]) \
              AS v (id, state, skip_reason, due_us, set_error, error_code, error_message, \
                    attempts_delta), \
              outreaches o \
         WHERE r.id = v.id AND o.id = r.outreach_id \
           AND ((r.state = 'sending' \
                 AND ($10::timestamptz IS NULL OR r.lease_until = $10) \
                 AND ($11::timestamptz IS NULL OR r.send_started_at = $11)) \
                OR v.id IS NULL)"
    ))
    .bind(now_us)
    .bind(ids)
    .bind(rows.iter().map(|r| r.state).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.skip_reason).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.due_us).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.set_error).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.error_code).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.error_message).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.attempts_delta).collect::<Vec<_>>())
    .bind(lease)
    .bind(mark)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due recipients of the outreach until `lease_until`: one statement, and
/// `SKIP LOCKED` lets concurrent claims take disjoint recipients.
async fn claim(
    store: &Backend,
    outreach_id: Uuid,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<ClaimedRecipient>> {
    let rows: Vec<ClaimRow> = sqlx::query_as(concat!(
        "UPDATE recipients SET state = 'sending', lease_until = $3, attempts = attempts + 1, \
         send_started_at = NULL, updated_at = $2 WHERE id IN (SELECT id FROM recipients \
           WHERE outreach_id = $1 AND state = 'pending' AND ",
        due_key!(),
        " <= $2 AND EXISTS (SELECT 1 FROM outreaches WHERE id = $1 AND status = 'in_progress') \
           ORDER BY ",
        due_key!(),
        ", id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING id, outreach_id, line, address, timezone, variables, attempts::int8, due_at"
    ))
    .bind(outreach_id)
    .bind(Ts::new(now))
    .bind(Ts::new(lease_until))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await?;
    Ok(dispatch::claimed(rows))
}

/// Writes a batch's results in `tx`, and the accepted proactive messages on their customers'
/// timelines (before the sends' update returns the ids it changed).
async fn record(
    tx: &mut PgConnection,
    now_us: Ts,
    held: Held,
    results: &[DeliveryResult],
    messages: &[SentMessage],
) -> Result<()> {
    let (sent, other) = dispatch::group_results(results);
    if !other.is_empty() {
        record_other(&mut *tx, now_us, held, &other).await?;
    }
    if !sent.is_empty() {
        // Which recipients the sends resolved, only when there are messages to record for them.
        let applied = record_sent(&mut *tx, now_us, &sent, !messages.is_empty()).await?;
        if !applied.is_empty() {
            super::conversation::record_messages(&mut *tx, now_us, &applied, messages).await?;
        }
    }
    Ok(())
}

/// A list of recipient ids as one bound value (an `int8[]`), for `in_list!`.
fn id_list(ids: &[i64]) -> Vec<i64> {
    ids.to_vec()
}

include!("../shared/dispatch.rs");
