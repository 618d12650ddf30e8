// What the dispatcher reads and writes, the part that is the same on both backends: the
// outreach's lifecycle (start, complete, expire), its status and progress, and lease recovery.
// `sqlite/dispatch.rs` and `postgres/dispatch.rs` include this file; what they hold themselves
// is what really differs: the claim (`claim`), the recording of results (`record`), and the SQL
// of `LIVE_SELECT` and `COMPLETE_UPDATE`.

use super::{Backend, Db, DbConn};
use crate::Result;
use crate::Ts;
use crate::conversation::SentMessage;
use crate::dispatch::{
    self, ClaimedRecipient, DailyCap, DeliveryResult, Grant, Held, LEASE_EXPIRED_CODE,
    LEASE_EXPIRED_MESSAGE, LiveOutreach, LiveRow, not_found,
};
use async_trait::async_trait;
use herald_core::outreach::{CrashPolicy, OutreachStatus, Progress};
use jiff::Timestamp;
use uuid::Uuid;

/// `NotFound` unless the outreach exists.
pub(super) async fn ensure_exists<'e, E>(e: E, id: Uuid) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    sqlx::query("SELECT 1 FROM outreaches WHERE id = $1")
        .bind(id)
        .fetch_optional(e)
        .await?
        .map(|_| ())
        .ok_or_else(|| not_found(id))
}

/// The outreach's recipients counted by state; `NotFound` for an unknown outreach, and for one
/// still being imported (on SQLite its rows are there already, its outreach is not).
pub(crate) async fn progress(conn: &mut DbConn, id: Uuid) -> Result<Progress> {
    ensure_exists(&mut *conn, id).await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM recipients WHERE outreach_id = $1 GROUP BY state",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    dispatch::progress(id, rows)
}

/// The outreach's status and end in a write transaction, its row locked for an update (on
/// PostgreSQL; SQLite's write transaction holds the whole database); `NotFound` if there is none.
pub(super) async fn locked_status(
    conn: &mut DbConn,
    id: Uuid,
) -> Result<(OutreachStatus, Option<Timestamp>)> {
    let (status, end_at): (String, Option<Ts>) = sqlx::query_as(concat!(
        "SELECT status, end_at FROM outreaches WHERE id = $1",
        for_update!()
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| not_found(id))?;
    Ok((dispatch::parse_status(id, &status)?, end_at.map(|t| t.0)))
}

/// Changes the sender's bucket in one write transaction (the row locked; made full if it is
/// new): `change` gets its tokens at `now` — refilled at `rate` a second since it was last
/// written, at most `burst`; a clock behind the one that wrote it refills nothing — and the
/// tokens spent on the `daily` cap's day so far, and returns the tokens to keep, the day's count
/// to keep and what to answer.
async fn with_bucket<T>(
    store: &Backend,
    sender_id: Uuid,
    (rate, burst): (f64, f64),
    now: Timestamp,
    daily: Option<DailyCap>,
    change: impl FnOnce(f64, u64) -> (f64, u64, T),
) -> Result<T> {
    let mut tx = store.write().await?;
    sqlx::query(
        "INSERT INTO sender_buckets (sender_id, tokens, at) VALUES ($1, $2, $3) \
         ON CONFLICT (sender_id) DO NOTHING",
    )
    .bind(sender_id)
    .bind(burst)
    .bind(Ts::new(now))
    .execute(&mut *tx)
    .await?;
    let (tokens, at, day, day_used): (f64, Ts, Option<String>, i64) = sqlx::query_as(concat!(
        "SELECT tokens, at, day, day_used FROM sender_buckets WHERE sender_id = $1",
        for_update!()
    ))
    .bind(sender_id)
    .fetch_one(&mut *tx)
    .await?;
    let elapsed = now.duration_since(at.0).as_secs_f64().max(0.0);
    let today = daily.map(|d| d.day.to_string());
    // A new day (or no cap) starts from nothing spent.
    let used = match (&today, &day) {
        (Some(t), Some(d)) if t == d => u64::try_from(day_used).unwrap_or(0),
        _ => 0,
    };
    let (tokens, used, answer) = change((tokens + elapsed * rate).min(burst), used);
    // `at` never goes back: a later write by a node whose clock is ahead stands.
    sqlx::query(concat!(
        "UPDATE sender_buckets SET tokens = $2, at = ",
        greatest!("at", "$3"),
        ", day = $4, day_used = $5 WHERE sender_id = $1"
    ))
    .bind(sender_id)
    .bind(tokens)
    .bind(Ts::new(now))
    .bind(today.or(day))
    .bind(i64::try_from(used).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(answer)
}

#[async_trait]
impl crate::Dispatch for Backend {
    fn concurrent_writes(&self) -> bool {
        CONCURRENT_WRITES
    }

    async fn live_outreaches(&self) -> Result<Vec<LiveOutreach>> {
        let rows: Vec<LiveRow> = sqlx::query_as(LIVE_SELECT).fetch_all(&self.pool).await?;
        dispatch::live(rows)
    }

    async fn outreach_status(&self, id: Uuid) -> Result<OutreachStatus> {
        let (status,): (String,) = sqlx::query_as("SELECT status FROM outreaches WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(id))?;
        dispatch::parse_status(id, &status)
    }

    async fn start_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        let pool = &self.pool;
        let done = sqlx::query(
            "UPDATE outreaches SET status = 'in_progress', updated_at = $2 \
             WHERE id = $1 AND status = 'scheduled'",
        )
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
        let mut tx = self.write().await?;
        // Lock first: the check below then sees whatever a concurrent retry-failed committed.
        locked_status(&mut tx, id).await?;
        let done = sqlx::query(COMPLETE_UPDATE)
            .bind(id)
            .bind(Ts::new(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn expire_pending(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        let pool = &self.pool;
        let done = sqlx::query(
            "UPDATE recipients SET state = 'skipped', skip_reason = 'expired', updated_at = $2 \
             WHERE outreach_id = $1 AND state = 'pending'",
        )
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
        claim(self, outreach_id, now, lease_until, limit).await
    }

    async fn record_batch(
        &self,
        now: Timestamp,
        held: Held,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        record(&mut tx, Ts::new(now), held, results, sent).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_sends(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        ids: &[i64],
    ) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut started: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE recipients SET send_started_at = $1 WHERE id ",
            in_list!("$3"),
            " AND state = 'sending' AND lease_until = $2 RETURNING id"
        ))
        .bind(Ts::new(now))
        .bind(Ts::new(lease_until))
        .bind(id_list(ids))
        .fetch_all(&self.pool)
        .await?;
        started.sort_unstable();
        Ok(started)
    }

    async fn release_unbegun(
        &self,
        now: Timestamp,
        marked_at: Timestamp,
        ids: &[i64],
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(concat!(
            "UPDATE recipients SET \
             state = CASE WHEN (SELECT o.status FROM outreaches o \
                 WHERE o.id = recipients.outreach_id) = 'stopped' \
                 THEN 'skipped' ELSE 'pending' END, \
             skip_reason = CASE WHEN (SELECT o.status FROM outreaches o \
                 WHERE o.id = recipients.outreach_id) = 'stopped' \
                 THEN 'stopped' END, \
             attempts = attempts - 1, lease_until = NULL, send_started_at = NULL, \
             error_code = CASE WHEN state = 'unknown' THEN NULL ELSE error_code END, \
             error_message = CASE WHEN state = 'unknown' THEN NULL ELSE error_message END, \
             updated_at = $1 \
             WHERE id ",
            in_list!("$3"),
            " AND send_started_at = $2 \
             AND (state = 'sending' OR (state = 'unknown' AND error_code = $4))"
        ))
        .bind(Ts::new(now))
        .bind(Ts::new(marked_at))
        .bind(id_list(ids))
        .bind(LEASE_EXPIRED_CODE)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn due_recipients(&self, now: Timestamp) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(concat!(
            "SELECT count(*) FROM recipients WHERE state = 'pending' AND ",
            due_key!(),
            " <= $1 AND outreach_id IN (SELECT id FROM outreaches WHERE status = 'in_progress')"
        ))
        .bind(Ts::new(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn take_tokens(
        &self,
        sender_id: Uuid,
        rate: f64,
        burst: f64,
        now: Timestamp,
        want: u32,
        daily: Option<DailyCap>,
    ) -> Result<Grant> {
        with_bucket(
            self,
            sender_id,
            (rate, burst),
            now,
            daily,
            |tokens, used| {
                // Whole messages only: the truncation is the point.
                let mut granted = (tokens.floor().max(0.0) as u64).min(u64::from(want)) as u32;
                let mut capped = false;
                if let Some(cap) = daily {
                    let left = cap.limit.saturating_sub(used);
                    if u64::from(granted) > left {
                        granted = u32::try_from(left).unwrap_or(u32::MAX);
                        capped = true;
                    }
                }
                (
                    tokens - f64::from(granted),
                    used + u64::from(granted),
                    Grant {
                        tokens: granted,
                        capped,
                    },
                )
            },
        )
        .await
    }

    async fn adjust_tokens(
        &self,
        sender_id: Uuid,
        rate: f64,
        burst: f64,
        now: Timestamp,
        delta: i64,
        daily: Option<DailyCap>,
    ) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        with_bucket(
            self,
            sender_id,
            (rate, burst),
            now,
            daily,
            |tokens, used| {
                #[allow(clippy::cast_precision_loss)] // a batch's tokens, far below 2^52
                let tokens = (tokens + delta as f64).min(burst);
                let used = if delta > 0 {
                    used.saturating_sub(delta.unsigned_abs())
                } else {
                    used.saturating_add(delta.unsigned_abs())
                };
                (tokens, used, ())
            },
        )
        .await
    }

    async fn renew_leases(
        &self,
        ids: &[i64],
        lease_until: Timestamp,
        new_lease_until: Timestamp,
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(concat!(
            "UPDATE recipients SET lease_until = $2 WHERE id ",
            in_list!("$3"),
            " AND state = 'sending' AND lease_until = $1"
        ))
        .bind(Ts::new(lease_until))
        .bind(Ts::new(new_lease_until))
        .bind(id_list(ids))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn recover_expired_leases(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        policy: CrashPolicy,
    ) -> Result<u64> {
        // Most ticks find another live batch's lease, not an expired one: answer those without
        // a write transaction or the outreach's lock.
        let expired = sqlx::query(
            "SELECT 1 FROM recipients \
             WHERE outreach_id = $1 AND state = 'sending' AND lease_until < $2 LIMIT 1",
        )
        .bind(outreach_id)
        .bind(Ts::new(now))
        .fetch_optional(&self.pool)
        .await?;
        if expired.is_none() {
            ensure_exists(&self.pool, outreach_id).await?;
            return Ok(0);
        }
        let mut tx = self.write().await?;
        let (status, _) = locked_status(&mut tx, outreach_id).await?;
        let stopped = status == OutreachStatus::Stopped;
        // Never started: nothing reached the provider, so the claim is simply undone (back in
        // the queue, its attempt not counted), whatever the channel; skipped if stopped.
        let unsent = sqlx::query(
            "UPDATE recipients SET \
             state = CASE WHEN $3 THEN 'skipped' ELSE 'pending' END, \
             skip_reason = CASE WHEN $3 THEN 'stopped' END, \
             attempts = attempts - 1, lease_until = NULL, updated_at = $2 \
             WHERE outreach_id = $1 AND state = 'sending' AND lease_until < $2 \
             AND send_started_at IS NULL",
        )
        .bind(outreach_id)
        .bind(Ts::new(now))
        .bind(stopped)
        .execute(&mut *tx)
        .await?;
        // Started: the send may have reached the provider.
        let started =
            match policy {
                CrashPolicy::AtMostOnce => sqlx::query(
                    "UPDATE recipients SET state = 'unknown', lease_until = NULL, error_code = $3, \
                     error_message = $4, updated_at = $2 \
                     WHERE outreach_id = $1 AND state = 'sending' AND lease_until < $2",
                )
                .bind(outreach_id)
                .bind(Ts::new(now))
                .bind(LEASE_EXPIRED_CODE)
                .bind(LEASE_EXPIRED_MESSAGE)
                .execute(&mut *tx)
                .await?,
                // Back in the queue, due at once; skipped instead if the outreach was stopped.
                CrashPolicy::AtLeastOnce => {
                    sqlx::query(
                        "UPDATE recipients SET \
                     state = CASE WHEN $3 THEN 'skipped' ELSE 'pending' END, \
                     skip_reason = CASE WHEN $3 THEN 'stopped' END, \
                     due_at = NULL, lease_until = NULL, updated_at = $2 \
                     WHERE outreach_id = $1 AND state = 'sending' AND lease_until < $2",
                    )
                    .bind(outreach_id)
                    .bind(Ts::new(now))
                    .bind(stopped)
                    .execute(&mut *tx)
                    .await?
                }
            };
        tx.commit().await?;
        Ok(unsent.rows_affected() + started.rows_affected())
    }
}
