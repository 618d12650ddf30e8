// Test sends (see `crate::test_send`). Written once for both backends: `sqlite/test_send.rs` and
// `postgres/test_send.rs` include this file, over the names their `mod.rs` defines (`Backend`,
// `DbRow`).

use super::{Backend, DbRow};
use crate::common::{self, col};
use crate::test_send::{NewTestSend, TestSend, TestSendState};
use crate::{Result, StoreError, Ts};
use async_trait::async_trait;
use herald_core::Channel;
use uuid::Uuid;

/// The columns a [`TestSend`] is read from (a macro, so that the SQL stays a literal).
macro_rules! test_send_columns {
    () => {
        "id, campaign_id, channel, to_address, subject, body, requested_by, \
         provider_message_id, error, created_at, finished_at"
    };
}

fn test_send_row(r: &DbRow) -> Result<TestSend> {
    let e = "test send";
    let id: Uuid = col(r, e, None, "id")?;
    let channel: String = col(r, e, Some(id), "channel")?;
    let channel: Channel = channel
        .parse()
        .map_err(|err| common::corrupt(e, id, format!("channel: {err}")))?;
    let provider_message_id: Option<String> = col(r, e, Some(id), "provider_message_id")?;
    let error: Option<String> = col(r, e, Some(id), "error")?;
    let finished: Option<Ts> = col(r, e, Some(id), "finished_at")?;
    let created: Ts = col(r, e, Some(id), "created_at")?;
    let state = match (&finished, &error) {
        (None, _) => TestSendState::Sending,
        (Some(_), Some(_)) => TestSendState::Failed,
        (Some(_), None) => TestSendState::Sent,
    };
    Ok(TestSend {
        id,
        campaign_id: col(r, e, Some(id), "campaign_id")?,
        channel,
        to: col(r, e, Some(id), "to_address")?,
        subject: col(r, e, Some(id), "subject")?,
        body: col(r, e, Some(id), "body")?,
        requested_by: col(r, e, Some(id), "requested_by")?,
        state,
        provider_message_id,
        error,
        created_at: created.0,
        finished_at: finished.map(|t| t.0),
    })
}

#[async_trait]
impl crate::TestSends for Backend {
    async fn begin_test_send(&self, t: &NewTestSend) -> Result<TestSend> {
        let id = Uuid::now_v7();
        let (_, now) = common::now();
        let row = sqlx::query(concat!(
            "INSERT INTO test_sends (id, campaign_id, channel, to_address, subject, body, \
             requested_by, created_at) \
             SELECT $1, id, $3, $4, $5, $6, $7, $8 FROM campaigns WHERE id = $2 \
             RETURNING ",
            test_send_columns!()
        ))
        .bind(id)
        .bind(t.campaign_id)
        .bind(t.channel.as_str())
        .bind(&t.to)
        .bind(&t.subject)
        .bind(&t.body)
        .bind(&t.requested_by)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => test_send_row(&r),
            None => Err(StoreError::NotFound {
                entity: "campaign",
                id: t.campaign_id,
            }),
        }
    }

    async fn finish_test_send(
        &self,
        id: Uuid,
        provider_message_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<TestSend> {
        let (_, now) = common::now();
        let row = sqlx::query(concat!(
            "UPDATE test_sends SET provider_message_id = $2, error = $3, finished_at = $4 \
             WHERE id = $1 AND finished_at IS NULL RETURNING ",
            test_send_columns!()
        ))
        .bind(id)
        .bind(provider_message_id)
        .bind(error)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => test_send_row(&r),
            None => Err(StoreError::NotFound {
                entity: "unfinished test send",
                id,
            }),
        }
    }

    async fn list_test_sends(&self, campaign_id: Uuid, limit: u32) -> Result<Vec<TestSend>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            test_send_columns!(),
            " FROM test_sends WHERE campaign_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(campaign_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(test_send_row).collect()
    }
}
