// Proactive chat: sites and the chat settings of chat campaigns. Written once for both backends:
// `sqlite/chat.rs` and `postgres/chat.rs` include this file, over the names their `mod.rs`
// defines (`Backend`, `DbRow`) and the SQL pieces of their `sql.rs` (`for_update!`, `later!`).
// The JSON columns (origins, triggers) are text on both backends.

use super::catalog::{Unused, campaign_row, delete_unused, exists};
use super::{Backend, DbRow};
use crate::common::{self, Violation, col};
use crate::{Result, StoreError, Ts};
use async_trait::async_trait;
use herald_core::chat::{ChatSettings, ChatSite, ChatSiteSpec, TriggerInput};
use herald_core::{Campaign, Listing, Page};
use sqlx::Row;
use uuid::Uuid;

macro_rules! site_cols {
    () => {
        "id, name, site_key, allowed_origins, max_per_visit, created_at, updated_at"
    };
}

macro_rules! chat_settings_cols {
    () => {
        "campaign_id, site_id, inbox_id, position, triggers, onboarding, starts_at, ends_at, paused"
    };
}

fn site_row(r: &DbRow) -> Result<ChatSite> {
    let e = "chat site";
    let id: Uuid = col(r, e, None, "id")?;
    let origins: String = col(r, e, Some(id), "allowed_origins")?;
    let allowed_origins: Vec<String> = serde_json::from_str(&origins)
        .map_err(|err| common::corrupt("chat site", id, format!("allowed_origins: {err}")))?;
    let max: Option<i64> = col(r, e, Some(id), "max_per_visit")?;
    let max_per_visit = max
        .map(u32::try_from)
        .transpose()
        .map_err(|err| common::corrupt("chat site", id, format!("max_per_visit: {err}")))?;
    let created: Ts = col(r, e, Some(id), "created_at")?;
    let updated: Ts = col(r, e, Some(id), "updated_at")?;
    Ok(ChatSite {
        id,
        name: col(r, e, Some(id), "name")?,
        key: col(r, e, Some(id), "site_key")?,
        allowed_origins,
        max_per_visit,
        created_at: created.0,
        updated_at: updated.0,
    })
}

fn settings_row(r: &DbRow) -> Result<(Uuid, ChatSettings)> {
    let e = "chat campaign";
    let id: Uuid = col(r, e, None, "campaign_id")?;
    let triggers: String = col(r, e, Some(id), "triggers")?;
    let triggers: Vec<TriggerInput> = serde_json::from_str(&triggers)
        .map_err(|err| common::corrupt("chat campaign", id, format!("triggers: {err}")))?;
    let position: i64 = col(r, e, Some(id), "position")?;
    let starts: Option<Ts> = col(r, e, Some(id), "starts_at")?;
    let ends: Option<Ts> = col(r, e, Some(id), "ends_at")?;
    Ok((
        id,
        ChatSettings {
            site_id: col(r, e, Some(id), "site_id")?,
            inbox_id: col(r, e, Some(id), "inbox_id")?,
            order: u32::try_from(position)
                .map_err(|err| common::corrupt("chat campaign", id, format!("position: {err}")))?,
            triggers,
            onboarding: col(r, e, Some(id), "onboarding")?,
            starts_at: starts.map(|t| t.0),
            ends_at: ends.map(|t| t.0),
            paused: col(r, e, Some(id), "paused")?,
        },
    ))
}

fn origins_json(spec: &ChatSiteSpec) -> String {
    serde_json::Value::from(spec.allowed_origins.clone()).to_string()
}

fn key_taken(e: sqlx::Error) -> StoreError {
    match Violation::of(e) {
        Violation::Unique(_) => {
            StoreError::Conflict("a chat site with that key already exists".to_string())
        }
        v => v.into(),
    }
}

#[async_trait]
impl crate::ChatSites for Backend {
    async fn create_chat_site(&self, spec: &ChatSiteSpec, key: &str) -> Result<ChatSite> {
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        sqlx::query(
            "INSERT INTO chat_sites (id, name, site_key, allowed_origins, max_per_visit, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(key)
        .bind(origins_json(spec))
        .bind(spec.max_per_visit.map(i64::from))
        .bind(now_us)
        .execute(&self.pool)
        .await
        .map_err(key_taken)?;
        tracing::debug!(chat_site_id = %id, "created chat site");
        Ok(ChatSite {
            id,
            name: spec.name.clone(),
            key: key.to_string(),
            allowed_origins: spec.allowed_origins.clone(),
            max_per_visit: spec.max_per_visit,
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_chat_site(&self, id: Uuid) -> Result<ChatSite> {
        let row = sqlx::query(concat!(
            "SELECT ",
            site_cols!(),
            " FROM chat_sites WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "chat site",
            id,
        })?;
        site_row(&row)
    }

    async fn find_chat_site(&self, key: &str) -> Result<Option<ChatSite>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            site_cols!(),
            " FROM chat_sites WHERE site_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(site_row).transpose()
    }

    async fn list_chat_sites(&self, page: Page) -> Result<Listing<ChatSite>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            site_cols!(),
            " FROM chat_sites WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(site_row).collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |s| s.id))
    }

    async fn update_chat_site(&self, id: Uuid, spec: &ChatSiteSpec) -> Result<ChatSite> {
        let (_, now_us) = common::now();
        let row = sqlx::query(concat!(
            "UPDATE chat_sites SET name = $2, allowed_origins = $3, max_per_visit = $4, \
             updated_at = ",
            later!("$5"),
            " WHERE id = $1 RETURNING ",
            site_cols!()
        ))
        .bind(id)
        .bind(&spec.name)
        .bind(origins_json(spec))
        .bind(spec.max_per_visit.map(i64::from))
        .bind(now_us)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "chat site",
            id,
        })?;
        site_row(&row)
    }

    async fn delete_chat_site(&self, id: Uuid) -> Result<()> {
        delete_unused(
            self,
            Unused {
                entity: "chat site",
                label: concat!("SELECT name FROM chat_sites WHERE id = $1", for_update!()),
                users: "SELECT c.name FROM chat_campaigns cc JOIN campaigns c \
                        ON c.id = cc.campaign_id WHERE cc.site_id = $1 ORDER BY c.name",
                delete: "DELETE FROM chat_sites WHERE id = $1",
                in_use: |name, campaigns| {
                    StoreError::InUse(format!(
                        "chat site `{name}` is used by campaigns: {}; move or delete them first",
                        campaigns.join(", ")
                    ))
                },
            },
            id,
        )
        .await
    }

    async fn set_chat_settings(
        &self,
        campaign_id: Uuid,
        settings: &ChatSettings,
    ) -> Result<ChatSettings> {
        let triggers =
            serde_json::to_string(&settings.triggers).map_err(|e| StoreError::Invalid {
                field: "triggers",
                message: e.to_string(),
            })?;
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        let channel: String = sqlx::query(concat!(
            "SELECT channel FROM campaigns WHERE id = $1",
            for_key_share!()
        ))
        .bind(campaign_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "campaign",
            id: campaign_id,
        })?
        .try_get(0)?;
        if channel != "chat" {
            return Err(StoreError::Invalid {
                field: "campaign_id",
                message: format!(
                    "campaign {campaign_id} is a {channel} campaign; only chat campaigns have chat settings"
                ),
            });
        }
        if !exists(
            &mut tx,
            concat!("SELECT 1 FROM chat_sites WHERE id = $1", for_key_share!()),
            settings.site_id,
        )
        .await?
        {
            return Err(common::missing("site_id", "chat site", settings.site_id));
        }
        if let Some(inbox_id) = settings.inbox_id
            && !exists(
                &mut tx,
                concat!("SELECT 1 FROM inboxes WHERE id = $1", for_key_share!()),
                inbox_id,
            )
            .await?
        {
            return Err(common::missing("inbox_id", "inbox", inbox_id));
        }
        sqlx::query(
            "INSERT INTO chat_campaigns (campaign_id, site_id, position, triggers, onboarding, \
             starts_at, ends_at, paused, updated_at, inbox_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (campaign_id) DO UPDATE SET site_id = excluded.site_id, \
             inbox_id = excluded.inbox_id, \
             position = excluded.position, triggers = excluded.triggers, \
             onboarding = excluded.onboarding, starts_at = excluded.starts_at, \
             ends_at = excluded.ends_at, paused = excluded.paused, updated_at = excluded.updated_at",
        )
        .bind(campaign_id)
        .bind(settings.site_id)
        .bind(i64::from(settings.order))
        .bind(triggers)
        .bind(settings.onboarding)
        .bind(settings.starts_at.map(Ts::new))
        .bind(settings.ends_at.map(Ts::new))
        .bind(settings.paused)
        .bind(now_us)
        .bind(settings.inbox_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(%campaign_id, "set chat settings");
        Ok(settings.clone())
    }

    async fn get_chat_settings(&self, campaign_id: Uuid) -> Result<Option<ChatSettings>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            chat_settings_cols!(),
            " FROM chat_campaigns WHERE campaign_id = $1"
        ))
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(settings_row).transpose()?.map(|(_, s)| s))
    }

    async fn site_campaigns(&self, site_id: Uuid) -> Result<Vec<(Campaign, ChatSettings)>> {
        // Two reads, joined here: the campaign's columns and the settings' share names.
        let settings = sqlx::query(concat!(
            "SELECT ",
            chat_settings_cols!(),
            " FROM chat_campaigns WHERE site_id = $1 ORDER BY position, campaign_id"
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        let campaigns = sqlx::query(concat!(
            "SELECT ",
            campaign_cols!(),
            " FROM campaigns WHERE channel = 'chat' AND id IN \
             (SELECT campaign_id FROM chat_campaigns WHERE site_id = $1)"
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        let mut campaigns = campaigns
            .iter()
            .map(|r| campaign_row(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(settings.len());
        for row in &settings {
            let (id, s) = settings_row(row)?;
            if let Some(at) = campaigns.iter().position(|c| c.id == id) {
                out.push((campaigns.swap_remove(at), s));
            }
        }
        Ok(out)
    }

    async fn chat_sender(&self, campaign_id: Uuid, inbox_id: Uuid) -> Result<Uuid> {
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        // The sender follows the campaign's inbox; its conversations move with their next
        // message.
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO senders (id, channel, address, inbox_id, provider, created_at, updated_at) \
             VALUES ($1, 'chat', $2, $3, 'file', $4, $4) \
             ON CONFLICT (channel, address) DO UPDATE SET inbox_id = excluded.inbox_id, \
             updated_at = excluded.updated_at RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(crate::conversation::chat_sender_address(campaign_id))
        .bind(inbox_id)
        .bind(now_us)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::ForeignKey(_) => common::missing("inbox_id", "inbox", inbox_id),
            v => v.into(),
        })?;
        tx.commit().await?;
        Ok(id)
    }

    async fn record_chat_start(&self, start: &crate::ChatStart) -> Result<crate::Message> {
        let mut tx = self.write().await?;
        let (customer_id, sender_id, channel, from, to): (Uuid, Uuid, String, String, String) =
            sqlx::query_as(concat!(
                "SELECT c.customer_id, c.sender_id, c.channel, s.address, cu.address \
                 FROM conversations c JOIN senders s ON s.id = c.sender_id \
                 JOIN customers cu ON cu.id = c.customer_id WHERE c.id = $1",
                for_update_of!("c")
            ))
            .bind(start.conversation_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "conversation",
                id: start.conversation_id,
            })?;
        if channel != "chat" {
            return Err(StoreError::Invalid {
                field: "conversation_id",
                message: format!(
                    "conversation {} is on {channel}; only a chat conversation starts with a greeting",
                    start.conversation_id
                ),
            });
        }
        let at_us = Ts::new(start.started_at);
        sqlx::query(
            "INSERT INTO chat_starts (id, conversation_id, site_id, campaign_id, page_url, \
             started_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(start.conversation_id)
        .bind(start.site_id)
        .bind(start.campaign_id)
        .bind(&start.page_url)
        .bind(at_us)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, \
             from_address, to_address, body, campaign_id, status, created_at) \
             VALUES ($1, $2, $3, 'outbound', 'outreach', 'chat', $4, $5, $6, $7, 'sent', $8) \
             RETURNING ",
            message_cols!()
        ))
        .bind(Uuid::now_v7())
        .bind(customer_id)
        .bind(sender_id)
        .bind(&from)
        .bind(&to)
        .bind(&start.greeting)
        .bind(start.campaign_id)
        .bind(at_us)
        .fetch_one(&mut *tx)
        .await?;
        let message = crate::conversation::message_row(&row)?.parse()?;
        sqlx::query("UPDATE conversations SET campaign_id = $2 WHERE id = $1")
            .bind(start.conversation_id)
            .bind(start.campaign_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(message)
    }

    async fn chat_starts(&self, conversation_id: Uuid) -> Result<Vec<crate::ChatStartRecord>> {
        let rows: Vec<(Uuid, Uuid, Uuid, String, Ts)> = sqlx::query_as(
            "SELECT id, site_id, campaign_id, page_url, started_at FROM chat_starts \
             WHERE conversation_id = $1 ORDER BY started_at, id LIMIT 100",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, site_id, campaign_id, page_url, at)| crate::ChatStartRecord {
                    id,
                    site_id,
                    campaign_id,
                    page_url,
                    started_at: at.0,
                },
            )
            .collect())
    }

    async fn recent_conversations(
        &self,
        since: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<(Uuid, jiff::Timestamp)>> {
        let rows: Vec<(Uuid, Ts)> = sqlx::query_as(
            "SELECT id, last_message_at FROM conversations WHERE last_message_at >= $1 \
             ORDER BY last_message_at DESC LIMIT $2",
        )
        .bind(Ts::new(since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, at)| (id, at.0)).collect())
    }

    async fn add_chat_figures(&self, rows: &[(Uuid, crate::ChatDayFigures)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (campaign_id, f) in rows {
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            // `WHERE EXISTS`: a campaign deleted since the counts were gathered takes none.
            sqlx::query(
                "INSERT INTO chat_figures \
                 (campaign_id, day, eligible, shown, closed, engaged, conversations) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE EXISTS (SELECT 1 FROM campaigns WHERE id = $1) \
                 ON CONFLICT (campaign_id, day) DO UPDATE SET \
                 eligible = chat_figures.eligible + excluded.eligible, \
                 shown = chat_figures.shown + excluded.shown, \
                 closed = chat_figures.closed + excluded.closed, \
                 engaged = chat_figures.engaged + excluded.engaged, \
                 conversations = chat_figures.conversations + excluded.conversations",
            )
            .bind(campaign_id)
            .bind(f.day.to_string())
            .bind(n(f.eligible))
            .bind(n(f.shown))
            .bind(n(f.closed))
            .bind(n(f.engaged))
            .bind(n(f.conversations))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn chat_figures(
        &self,
        campaign_id: Uuid,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<crate::ChatDayFigures>> {
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT day, eligible, shown, closed, engaged, conversations FROM chat_figures \
             WHERE campaign_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(campaign_id)
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.pool)
        .await?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        rows.into_iter()
            .map(|(day, eligible, shown, closed, engaged, conversations)| {
                let day = day.parse().map_err(|e| {
                    common::corrupt("chat figures", campaign_id, format!("day `{day}`: {e}"))
                })?;
                Ok(crate::ChatDayFigures {
                    day,
                    eligible: u(eligible),
                    shown: u(shown),
                    closed: u(closed),
                    engaged: u(engaged),
                    conversations: u(conversations),
                })
            })
            .collect()
    }
}
