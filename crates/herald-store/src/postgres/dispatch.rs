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

use crate::Result;
use crate::Ts;
use crate::conversation::SentMessage;
use crate::dispatch::{
    self, ClaimRow, ClaimedRecipient, DeliveryResult, LEASE_EXPIRED_CODE, LEASE_EXPIRED_MESSAGE,
    LiveOutreach, LiveRow, OtherRow, SentRow, not_found,
};
use async_trait::async_trait;
use herald_core::outreach::{CrashPolicy, OutreachStatus, Progress};
use jiff::Timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

/// `NotFound` unless the outreach exists.
pub(super) async fn ensure_exists<'e, E>(e: E, id: Uuid) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query("SELECT 1 FROM outreaches WHERE id = $1")
        .bind(id)
        .fetch_optional(e)
        .await?
        .map(|_| ())
        .ok_or_else(|| not_found(id))
}

/// The outreach's recipients counted by state; `NotFound` for an unknown outreach.
pub(crate) async fn progress(conn: &mut PgConnection, id: Uuid) -> Result<Progress> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM recipients WHERE outreach_id = $1 GROUP BY state",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        ensure_exists(&mut *conn, id).await?;
    }
    dispatch::progress(id, rows)
}

/// Locks the outreach row for an update; `NotFound` if there is none.
pub(super) async fn ensure_locked(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    locked_status(conn, id).await.map(|_| ())
}

/// The outreach's status and end, its row locked for an update; `NotFound` if there is none.
pub(super) async fn locked_status(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<(OutreachStatus, Option<Timestamp>)> {
    let (status, end_at): (String, Option<Ts>) = sqlx::query_as(concat!(
        "SELECT status, ",
        "end_at",
        " FROM outreaches WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| not_found(id))?;
    Ok((dispatch::parse_status(id, &status)?, end_at.map(|t| t.0)))
}

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

/// Every other outcome, for recipients of `rows` still `sending`. A recipient going back to
/// `pending` whose outreach was stopped is `skipped: stopped` instead. The state check names `v`
/// for the reason given at `sent_update!`.
pub(super) async fn record_other(
    conn: &mut PgConnection,
    now_us: Ts,
    rows: &[OtherRow<'_>],
) -> Result<()> {
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
         WHERE r.id = v.id AND (r.state = 'sending' OR v.id IS NULL) AND o.id = r.outreach_id"
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl crate::Dispatch for super::PgStore {
    async fn live_outreaches(&self) -> Result<Vec<LiveOutreach>> {
        let pool = &self.pool;
        let rows: Vec<LiveRow> = sqlx::query_as(concat!(
            "SELECT o.id, o.campaign_id, o.status, ",
            "o.start_at",
            ", ",
            "o.end_at",
            ", (SELECT 1 FROM recipients r WHERE r.outreach_id = o.id AND r.state = 'pending' \
                ORDER BY coalesce(r.due_at, '-infinity'::timestamptz) LIMIT 1) IS NOT NULL, \
             EXISTS (SELECT 1 FROM recipients r WHERE r.outreach_id = o.id AND r.state = 'sending') \
             FROM outreaches o WHERE o.status IN ('scheduled', 'in_progress') ORDER BY o.id"
        ))
        .fetch_all(pool)
        .await?;
        dispatch::live(rows)
    }

    async fn outreach_status(&self, id: Uuid) -> Result<OutreachStatus> {
        let pool = &self.pool;
        let (status,): (String,) = sqlx::query_as("SELECT status FROM outreaches WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        dispatch::parse_status(id, &status)
    }

    async fn start_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        let pool = &self.pool;
        let done = sqlx::query(concat!(
            "UPDATE outreaches SET status = 'in_progress', updated_at = ",
            "$2",
            " WHERE id = $1 AND status = 'scheduled'"
        ))
        .bind(id)
        .bind(Ts::new(now))
        .execute(pool)
        .await?;
        if done.rows_affected() == 0 {
            ensure_exists(pool, id).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    async fn complete_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        let pool = &self.pool;
        let mut tx = pool.begin().await?;
        // Lock first: the check below then sees whatever a concurrent retry-failed committed.
        ensure_locked(&mut tx, id).await?;
        let done = sqlx::query(concat!(
            "UPDATE outreaches SET status = 'completed', updated_at = ",
            "$2",
            ", finished_at = ",
            "$2",
            " WHERE id = $1 AND status IN ('scheduled', 'in_progress') \
             AND (SELECT 1 FROM recipients r WHERE r.outreach_id = $1 AND r.state = 'pending' \
                  ORDER BY coalesce(r.due_at, '-infinity'::timestamptz) LIMIT 1) IS NULL \
             AND NOT EXISTS (SELECT 1 FROM recipients \
                             WHERE outreach_id = $1 AND state = 'sending')"
        ))
        .bind(id)
        .bind(Ts::new(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn expire_pending(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        let pool = &self.pool;
        let done = sqlx::query(concat!(
            "UPDATE recipients SET state = 'skipped', skip_reason = 'expired', updated_at = ",
            "$2",
            " WHERE outreach_id = $1 AND state = 'pending'"
        ))
        .bind(id)
        .bind(Ts::new(now))
        .execute(pool)
        .await?;
        if done.rows_affected() == 0 {
            ensure_exists(pool, id).await?;
        }
        Ok(done.rows_affected())
    }

    async fn claim_due(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedRecipient>> {
        let pool = &self.pool;
        let rows: Vec<ClaimRow> = sqlx::query_as(concat!(
            "UPDATE recipients SET state = 'sending', lease_until = ",
            "$3",
            ", attempts = attempts + 1, updated_at = ",
            "$2",
            " WHERE id IN (SELECT id FROM recipients \
                          WHERE outreach_id = $1 AND state = 'pending' AND ",
            due_key!(),
            " <= ",
            "$2",
            " AND EXISTS (SELECT 1 FROM outreaches WHERE id = $1 AND status = 'in_progress') \
                          ORDER BY ",
            due_key!(),
            ", id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, outreach_id, line, address, timezone, variables, \
             attempts::int8 AS attempts, ",
            "due_at",
            " AS due_at"
        ))
        .bind(outreach_id)
        .bind(Ts::new(now))
        .bind(Ts::new(lease_until))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
        Ok(dispatch::claimed(rows))
    }

    async fn record_results_with_messages(
        &self,
        now: Timestamp,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> Result<()> {
        let pool = &self.pool;
        let messages = sent;
        if results.is_empty() {
            return Ok(());
        }
        let (sent, other) = dispatch::group_results(results);
        let now_us = Ts::new(now);
        let mut tx = pool.begin().await?;
        if !other.is_empty() {
            record_other(&mut tx, now_us, &other).await?;
        }
        if !sent.is_empty() {
            // Which recipients the sends resolved, only when there are messages to record for them.
            let applied = record_sent(&mut tx, now_us, &sent, !messages.is_empty()).await?;
            if !applied.is_empty() {
                super::conversation::record_messages(&mut tx, now_us, &applied, messages).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recover_expired_leases(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        policy: CrashPolicy,
    ) -> Result<u64> {
        let pool = &self.pool;
        let done =
            match policy {
                CrashPolicy::AtMostOnce => sqlx::query(concat!(
                    "UPDATE recipients SET state = 'unknown', lease_until = NULL, error_code = $3, \
                     error_message = $4, updated_at = ",
                    "$2",
                    " WHERE outreach_id = $1 AND state = 'sending' AND lease_until < ",
                    "$2"
                ))
                .bind(outreach_id)
                .bind(Ts::new(now))
                .bind(LEASE_EXPIRED_CODE)
                .bind(LEASE_EXPIRED_MESSAGE)
                .execute(pool)
                .await?,
                // Back in the queue, due at once; skipped instead if the outreach was stopped.
                CrashPolicy::AtLeastOnce => {
                    let mut tx = pool.begin().await?;
                    let (status, _) = locked_status(&mut tx, outreach_id).await?;
                    let stopped = status == OutreachStatus::Stopped;
                    let done = sqlx::query(concat!(
                        "UPDATE recipients SET \
                     state = CASE WHEN $3 THEN 'skipped' ELSE 'pending' END, \
                     skip_reason = CASE WHEN $3 THEN 'stopped' END, \
                     due_at = NULL, lease_until = NULL, updated_at = ",
                        "$2",
                        " WHERE outreach_id = $1 AND state = 'sending' AND lease_until < ",
                        "$2"
                    ))
                    .bind(outreach_id)
                    .bind(Ts::new(now))
                    .bind(stopped)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    done
                }
            };
        if done.rows_affected() == 0 {
            ensure_exists(pool, outreach_id).await?;
        }
        Ok(done.rows_affected())
    }
}
