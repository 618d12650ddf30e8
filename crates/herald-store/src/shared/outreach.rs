// Outreaches and their recipients: creating one (the import itself is the backend's own, in
// `begin_import`), reading, stopping, retrying. Written once for both backends: `sqlite/outreach.rs`
// and `postgres/outreach.rs` include this file.

use super::dispatch::{ensure_exists, locked_status};
use super::{Backend, DbConn};
use crate::Ts;
use crate::dispatch::RecipientRecord;
use crate::outreach::{
    HourCount, ImportErrorRecord, ImportSummary, NewOutreach, Outreach, OutreachImport,
    OutreachReport, ReasonCount, outreach_row,
};
use crate::{Result, StoreError, common};
use async_trait::async_trait;
use herald_core::outreach::{DeliveryState, OutreachStatus, Progress};
use herald_core::{Listing, Page};
use jiff::Timestamp;
use uuid::Uuid;

/// Refuses an import into a campaign that does not exist (read in a write transaction, which
/// keeps it until the transaction ends).
async fn check_campaign(conn: &mut DbConn, campaign_id: Uuid) -> Result<()> {
    let found = sqlx::query(concat!(
        "SELECT 1 FROM campaigns WHERE id = $1",
        for_share!()
    ))
    .bind(campaign_id)
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            entity: "campaign",
            id: campaign_id,
        }),
    }
}

/// Inserts outreach `id` as `new` describes it, `scheduled`, with `summary`'s counts.
async fn insert_outreach(
    conn: &mut DbConn,
    id: Uuid,
    new: &NewOutreach,
    summary: &ImportSummary,
    created_us: Ts,
    now_us: Ts,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO outreaches (id, campaign_id, status, file_name, encoding, default_region, \
         start_at, end_at, rows_total, accepted, invalid, duplicates, suppressed, created_at, \
         updated_at) VALUES ($1, $2, 'scheduled', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14)",
    )
    .bind(id)
    .bind(new.campaign_id)
    .bind(&new.file_name)
    .bind(&summary.encoding)
    .bind(&new.default_region)
    .bind(Ts::new(new.start_at))
    .bind(new.end_at.map(Ts::new))
    .bind(summary.rows as i64)
    .bind(summary.accepted as i64)
    .bind(summary.invalid as i64)
    .bind(summary.duplicates as i64)
    .bind(summary.suppressed as i64)
    .bind(created_us)
    .bind(now_us)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outreach with its progress, read on one connection (inside a transaction, if it is in
/// one).
pub(crate) async fn get_in(conn: &mut DbConn, id: Uuid) -> Result<Outreach> {
    let mut outreach = row_in(conn, id).await?;
    outreach.progress = super::dispatch::progress(conn, id).await?;
    Ok(outreach)
}

/// A just-imported outreach, read back after its commit. Its progress is the import's own count
/// (every accepted recipient pending, the suppressed ones skipped), not a count of its rows: on
/// PostgreSQL counting 1,000,000 fresh rows, not yet vacuumed, took 0.4 s of the import
/// (docs/benchmarks.md). It is the outreach as committed: a dispatcher may already be sending.
pub(crate) async fn imported_in(
    conn: &mut DbConn,
    id: Uuid,
    summary: &ImportSummary,
) -> Result<Outreach> {
    let mut outreach = row_in(conn, id).await?;
    outreach.progress = Progress::from_counts([
        (
            DeliveryState::Pending,
            summary.accepted.saturating_sub(summary.suppressed),
        ),
        (DeliveryState::Skipped, summary.suppressed),
    ]);
    Ok(outreach)
}

/// The outreach's row, its progress left empty.
async fn row_in(conn: &mut DbConn, id: Uuid) -> Result<Outreach> {
    let row = sqlx::query(concat!(
        "SELECT ",
        outreach_cols!(),
        " FROM outreaches WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound {
        entity: "outreach",
        id,
    })?;
    outreach_row(&row)?.parse()
}

/// [`crate::Outreaches::release_waiting`], in `e` (the pool, or the transaction that saves the
/// campaign).
pub(super) async fn release_waiting<'e, E>(e: E, campaign_id: Uuid, now: Ts) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let done = sqlx::query(
        "UPDATE recipients SET due_at = $2, updated_at = $2 \
         WHERE state = 'pending' AND due_at > $2 AND error_code IS NULL \
         AND outreach_id IN (SELECT id FROM outreaches \
                             WHERE campaign_id = $1 AND status = 'in_progress')",
    )
    .bind(campaign_id)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

/// Leaves out the recipients skipped with reason `opted_out` (counted by their skip reason).
macro_rules! not_skipped_opted_out {
    () => {
        "AND (state <> 'skipped' OR skip_reason IS NULL OR skip_reason <> 'opted_out')"
    };
}

/// The report queries over the recipients `$scope` selects (`$1` is the outreach's or the
/// campaign's id): the counts by state, skips by reason, failures by code, sends per hour,
/// the middle reply time and the opt-outs in answer to the message, in that order.
macro_rules! report_queries {
    ($scope:literal) => {
        [
            concat!(
                "SELECT state, count(*) FROM recipients WHERE ",
                $scope,
                " GROUP BY state"
            ),
            concat!(
                "SELECT skip_reason, count(*) FROM recipients WHERE ",
                $scope,
                " AND state = 'skipped' GROUP BY skip_reason"
            ),
            concat!(
                "SELECT error_code, count(*) FROM recipients WHERE ",
                $scope,
                " AND state IN ('failed', 'undelivered') \
                 GROUP BY error_code ORDER BY count(*) DESC, error_code LIMIT $2"
            ),
            concat!(
                "SELECT ",
                hour_of!("sent_at"),
                " AS hour, count(*) FROM recipients WHERE ",
                $scope,
                " AND state IN ('sent', 'delivered', 'undelivered', 'replied') \
                 AND sent_at IS NOT NULL GROUP BY hour ORDER BY hour DESC LIMIT $2"
            ),
            concat!(
                "SELECT ",
                seconds_between!("sent_at", "updated_at"),
                " AS secs FROM recipients WHERE ",
                $scope,
                " AND state = 'replied' AND sent_at IS NOT NULL ORDER BY secs LIMIT 1 OFFSET $2"
            ),
            // Those who opted out in answer to the message, not already counted as skipped
            // for it (through the partial index `recipients_opted_out`).
            concat!(
                "SELECT count(*) FROM recipients WHERE ",
                $scope,
                " AND opted_out_at IS NOT NULL ",
                not_skipped_opted_out!()
            ),
        ]
    };
}

/// A report over the recipients the queries `q` (`report_queries!`) select for `id`, whose
/// counts by state are `progress`.
async fn report(
    conn: &mut DbConn,
    id: Uuid,
    progress: Progress,
    q: &[&'static str; 6],
) -> Result<OutreachReport> {
    let skipped: Vec<(Option<String>, i64)> =
        sqlx::query_as(q[1]).bind(id).fetch_all(&mut *conn).await?;
    let failures: Vec<(Option<String>, i64)> = sqlx::query_as(q[2])
        .bind(id)
        .bind(i64::from(crate::outreach::REPORT_REASONS))
        .fetch_all(&mut *conn)
        .await?;
    let mut hours: Vec<(Ts, i64)> = sqlx::query_as(q[3])
        .bind(id)
        .bind(i64::from(crate::outreach::REPORT_HOURS))
        .fetch_all(&mut *conn)
        .await?;
    hours.reverse();
    // The median of the replied ones: the middle row of their times, in order.
    let median_reply_seconds = if progress.replied == 0 {
        None
    } else {
        let secs: Option<i64> = sqlx::query_scalar(q[4])
            .bind(id)
            .bind(i64::try_from(progress.replied / 2).unwrap_or(0))
            .fetch_optional(&mut *conn)
            .await?;
        secs.map(|s| u64::try_from(s).unwrap_or(0))
    };
    let answered: i64 = sqlx::query_scalar(q[5])
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let skipped_opted_out: i64 = skipped
        .iter()
        .filter(|(reason, _)| reason.as_deref() == Some("opted_out"))
        .map(|(_, n)| *n)
        .sum();
    let opted_out = u64::try_from(answered.saturating_add(skipped_opted_out)).unwrap_or(0);
    let counted = |rows: Vec<(Option<String>, i64)>| {
        let mut out: Vec<ReasonCount> = rows
            .into_iter()
            .map(|(reason, n)| ReasonCount {
                reason: reason.unwrap_or_else(|| "none".to_string()),
                count: u64::try_from(n).unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        out
    };
    Ok(OutreachReport {
        progress,
        opted_out,
        skipped: counted(skipped),
        failures: counted(failures),
        sent_per_hour: hours
            .into_iter()
            .map(|(hour, n)| HourCount {
                hour: hour.0,
                sent: u64::try_from(n).unwrap_or(0),
            })
            .collect(),
        median_reply_seconds,
    })
}

#[async_trait]
impl crate::Outreaches for Backend {
    async fn begin_outreach(&self, new: &NewOutreach) -> Result<Box<dyn OutreachImport>> {
        begin_import(self, new).await
    }

    async fn get_outreach(&self, id: Uuid) -> Result<Outreach> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, id).await
    }

    async fn list_outreaches(
        &self,
        campaign_id: Uuid,
        status: Option<OutreachStatus>,
        page: Page,
    ) -> Result<Listing<Outreach>> {
        let pool = &self.pool;
        let mut conn = pool.acquire().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            outreach_cols!(),
            " FROM outreaches \
             WHERE campaign_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id > $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(campaign_id)
        .bind(status.map(|s| s.as_str()))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&mut *conn)
        .await?;
        let items = rows
            .iter()
            .map(|r| outreach_row(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        let mut listing = common::listing(&page, items, |o| o.id);
        for o in &mut listing.items {
            o.progress = super::dispatch::progress(&mut conn, o.id).await?;
        }
        Ok(listing)
    }

    async fn import_errors(
        &self,
        outreach_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ImportErrorRecord)>> {
        let pool = &self.pool;
        let rows: Vec<crate::outreach::ErrorRow> = sqlx::query_as(
            "SELECT id, line, column_name, value, reason FROM import_errors \
             WHERE outreach_id = $1 AND id > $2 \
               AND EXISTS (SELECT 1 FROM outreaches WHERE id = $1) ORDER BY id LIMIT $3",
        )
        .bind(outreach_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
        Ok(crate::outreach::error_records(rows))
    }

    async fn get_recipient(&self, outreach_id: Uuid, recipient_id: i64) -> Result<RecipientRecord> {
        let pool = &self.pool;
        let row = sqlx::query(concat!(
            "SELECT ",
            recipient_cols!(),
            " FROM recipients WHERE id = $1 AND outreach_id = $2 \
             AND EXISTS (SELECT 1 FROM outreaches WHERE id = $2)"
        ))
        .bind(recipient_id)
        .bind(outreach_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| crate::dispatch::recipient_not_found(recipient_id))?;
        crate::dispatch::recipient_row(&row)?.parse()
    }

    async fn stop_outreach(&self, id: Uuid, now: Timestamp) -> Result<Outreach> {
        let mut tx = self.write().await?;
        let (status, _) = locked_status(&mut tx, id).await?;
        status.stop().map_err(crate::dispatch::conflict)?;
        let now_us = Ts::new(now);
        sqlx::query(
            "UPDATE outreaches SET status = 'stopped', updated_at = $2, finished_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        let skipped = sqlx::query(
            "UPDATE recipients SET state = 'skipped', skip_reason = 'stopped', updated_at = $2 \
             WHERE outreach_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(now_us)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outreach = super::outreach::get_in(&mut tx, id).await?;
        tx.commit().await?;
        tracing::info!(outreach_id = %id, skipped, "stopped outreach");
        Ok(outreach)
    }

    async fn retry_failed(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        requeue(self, id, now, DeliveryState::Failed).await
    }

    async fn requeue_uncertain(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        requeue(self, id, now, DeliveryState::Unknown).await
    }

    async fn release_waiting(&self, campaign_id: Uuid, now: Timestamp) -> Result<u64> {
        release_waiting(&self.pool, campaign_id, Ts::new(now)).await
    }

    async fn outreach_report(&self, id: Uuid) -> Result<OutreachReport> {
        let mut conn = self.pool.acquire().await?;
        let progress = super::dispatch::progress(&mut conn, id).await?;
        report(
            &mut conn,
            id,
            progress,
            &report_queries!("outreach_id = $1"),
        )
        .await
    }

    async fn campaign_report(&self, campaign_id: Uuid) -> Result<OutreachReport> {
        let mut conn = self.pool.acquire().await?;
        let found = sqlx::query("SELECT 1 FROM campaigns WHERE id = $1")
            .bind(campaign_id)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound {
                entity: "campaign",
                id: campaign_id,
            });
        }
        let queries =
            report_queries!("outreach_id IN (SELECT id FROM outreaches WHERE campaign_id = $1)");
        let counts: Vec<(String, i64)> = sqlx::query_as(queries[0])
            .bind(campaign_id)
            .fetch_all(&mut *conn)
            .await?;
        let progress = crate::dispatch::progress(campaign_id, counts)?;
        report(&mut conn, campaign_id, progress, &queries).await
    }

    async fn record_opt_out(
        &self,
        outreach_id: Uuid,
        recipient_id: i64,
        at: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE recipients SET opted_out_at = $3 \
             WHERE id = $1 AND outreach_id = $2 AND opted_out_at IS NULL",
        )
        .bind(recipient_id)
        .bind(outreach_id)
        .bind(Ts::new(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn opted_out_by_outreach(
        &self,
        campaign_id: Uuid,
    ) -> Result<std::collections::HashMap<Uuid, u64>> {
        // Skipped for it, through the `(outreach_id, state)` index; then those who answered
        // with an opt-out, through `recipients_opted_out`. No recipient is in both.
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(concat!(
            "SELECT outreach_id, count(*) FROM recipients \
             WHERE outreach_id IN (SELECT id FROM outreaches WHERE campaign_id = $1) \
             AND state = 'skipped' AND skip_reason = 'opted_out' GROUP BY outreach_id \
             UNION ALL \
             SELECT outreach_id, count(*) FROM recipients \
             WHERE outreach_id IN (SELECT id FROM outreaches WHERE campaign_id = $1) \
             AND opted_out_at IS NOT NULL ",
            not_skipped_opted_out!(),
            " GROUP BY outreach_id"
        ))
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = std::collections::HashMap::new();
        for (outreach, n) in rows {
            *out.entry(outreach).or_insert(0u64) += u64::try_from(n).unwrap_or(0);
        }
        Ok(out)
    }

    async fn outreach_progress(&self, id: Uuid) -> Result<Progress> {
        let mut conn = self.pool.acquire().await?;
        super::dispatch::progress(&mut conn, id).await
    }

    async fn list_recipients(
        &self,
        outreach_id: Uuid,
        state: Option<DeliveryState>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>> {
        let pool = &self.pool;
        // First, so that the rows of an import in progress (on SQLite) are never listed.
        ensure_exists(pool, outreach_id).await?;
        let rows = match state {
            // `(outreach_id, state)` is indexed, and the index is in id order within a state (on
            // PostgreSQL it names `id` as its third column).
            Some(state) => {
                sqlx::query(concat!(
                    "SELECT ",
                    recipient_cols!(),
                    " FROM recipients WHERE outreach_id = $1 AND state = $2 AND id > $3 \
                     ORDER BY id LIMIT $4"
                ))
                .bind(outreach_id)
                .bind(state.as_str())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
            }
            // The page's ids come from the index alone; only their rows are read.
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    recipient_cols!(),
                    " FROM recipients WHERE id IN (SELECT id FROM recipients \
                       WHERE outreach_id = $1 AND id > $2 ORDER BY id LIMIT $3) ORDER BY id"
                ))
                .bind(outreach_id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| crate::dispatch::recipient_row(r)?.parse())
            .collect()
    }
}

/// Every recipient of the outreach in `state` back to `pending` (`attempts = 0`, `due_at`
/// cleared), and a completed outreach back to `in_progress`; refused for a stopped outreach and
/// after its end time. The number re-queued.
async fn requeue(store: &Backend, id: Uuid, now: Timestamp, state: DeliveryState) -> Result<u64> {
    let mut tx = store.write().await?;
    let (status, end_at) = super::dispatch::locked_status(&mut tx, id).await?;
    let reopen = crate::dispatch::retry_check(status, end_at, now)?;
    let now_us = Ts::new(now);
    let requeued = sqlx::query(
        "UPDATE recipients SET state = 'pending', attempts = 0, due_at = NULL, updated_at = $2 \
         WHERE outreach_id = $1 AND state = $3",
    )
    .bind(id)
    .bind(now_us)
    .bind(state.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if reopen && requeued > 0 {
        let to = status.reopen().map_err(crate::dispatch::conflict)?;
        sqlx::query(
            "UPDATE outreaches SET status = $2, updated_at = $3, finished_at = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(outreach_id = %id, requeued, state = state.as_str(), "re-queued recipients");
    Ok(requeued)
}
