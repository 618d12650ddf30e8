// The catalog: inboxes, senders, answers and campaigns. Written once for both backends:
// `sqlite/catalog.rs` and `postgres/catalog.rs` include this file, over the names their `mod.rs`
// defines (`Backend`, `Db`, `DbRow`), the SQL pieces of their `sql.rs` (`for_update!`, `later!`)
// and how each stores a schedule (`read_schedule`, `schedule_param`).

use super::{Backend, Db, DbRow};
use crate::common::{
    self, AnswerRow, CampaignRow, InboxRow, SenderRow, VariantRow, Violation, col,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use herald_core::{
    Answer, AnswerSpec, Campaign, CampaignSpec, Channel, Inbox, InboxSpec, Listing, Page, Sender,
    SenderSpec,
};
use sqlx::{Row, Transaction};
use uuid::Uuid;
pub(super) fn inbox_row(r: &DbRow) -> Result<InboxRow> {
    let id: Uuid = col(r, "inbox", None, "id")?;
    let e = "inbox";
    Ok(InboxRow {
        id,
        name: col(r, e, Some(id), "name")?,
        agent_number: col(r, e, Some(id), "agent_number")?,
        created_us: col(r, e, Some(id), "created_at")?,
        updated_us: col(r, e, Some(id), "updated_at")?,
    })
}

pub(crate) fn sender_row(r: &DbRow) -> Result<SenderRow> {
    let e = "sender";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(SenderRow {
        id,
        channel: col(r, e, Some(id), "channel")?,
        address: col(r, e, Some(id), "address")?,
        inbox_id: col(r, e, Some(id), "inbox_id")?,
        provider: col(r, e, Some(id), "provider")?,
        created_us: col(r, e, Some(id), "created_at")?,
        updated_us: col(r, e, Some(id), "updated_at")?,
    })
}

/// A row of `answers LEFT JOIN answer_variants`.
pub(super) fn answer_variant_row(r: &DbRow) -> Result<(AnswerRow, Option<VariantRow>)> {
    let e = "answer";
    let id: Uuid = col(r, e, None, "id")?;
    let answer = AnswerRow {
        id,
        name: col(r, e, Some(id), "name")?,
        created_us: col(r, e, Some(id), "created_at")?,
        updated_us: col(r, e, Some(id), "updated_at")?,
    };
    let language: Option<String> = col(r, e, Some(id), "language")?;
    let variant = match language {
        None => None,
        Some(language) => Some(VariantRow {
            answer_id: id,
            language,
            subject: col(r, e, Some(id), "subject")?,
            body: col(r, e, Some(id), "body")?,
            voice: col(r, e, Some(id), "voice")?,
        }),
    };
    Ok((answer, variant))
}

pub(super) fn campaign_row(r: &DbRow) -> Result<CampaignRow> {
    let e = "campaign";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(CampaignRow {
        id,
        name: col(r, e, Some(id), "name")?,
        description: col(r, e, Some(id), "description")?,
        channel: col(r, e, Some(id), "channel")?,
        sender_id: col(r, e, Some(id), "sender_id")?,
        language: col(r, e, Some(id), "language")?,
        answer_id: col(r, e, Some(id), "answer_id")?,
        schedule: read_schedule(r, id)?,
        quiet_hours: col(r, e, Some(id), "quiet_hours")?,
        frequency_cap: (
            col(r, e, Some(id), "frequency_cap_messages")?,
            col(r, e, Some(id), "frequency_cap_days")?,
        ),
        voice_settings: herald_core::VoiceSettings {
            voice: col(r, e, Some(id), "voice")?,
            spoken_language: col(r, e, Some(id), "spoken_language")?,
            press_one_prompt: col(r, e, Some(id), "press_one_prompt")?,
            agent_unavailable: col(r, e, Some(id), "agent_unavailable")?,
        },
        created_us: col(r, e, Some(id), "created_at")?,
        updated_us: col(r, e, Some(id), "updated_at")?,
    })
}

pub(super) async fn exists(
    tx: &mut Transaction<'static, Db>,
    sql: &'static str,
    id: Uuid,
) -> Result<bool> {
    Ok(sqlx::query(sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

/// The names of the campaigns a query (binding one id) returns, in name order.
pub(super) async fn names(
    tx: &mut Transaction<'static, Db>,
    sql: &'static str,
    id: Uuid,
) -> Result<Vec<String>> {
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

/// What [`delete_unused`] deletes and what it checks first.
pub(super) struct Unused {
    pub(super) entity: &'static str,
    /// Reads (and locks) the row's name or address.
    pub(super) label: &'static str,
    /// The names of what still uses the row, in order.
    pub(super) users: &'static str,
    pub(super) delete: &'static str,
    /// The refusal when something still uses it.
    pub(super) in_use: fn(&str, &[String]) -> StoreError,
}

/// Deletes row `id` unless something still uses it (then the refusal names what): the row is
/// locked first, so nothing can start using it in between; the foreign keys are the backstop.
pub(super) async fn delete_unused(store: &Backend, what: Unused, id: Uuid) -> Result<()> {
    let entity = what.entity;
    let mut tx = store.write().await?;
    let label: String = sqlx::query(what.label)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound { entity, id })?
        .try_get(0)?;
    let users = names(&mut tx, what.users, id).await?;
    if !users.is_empty() {
        return Err((what.in_use)(&label, &users));
    }
    sqlx::query(what.delete)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::ForeignKey(_) => common::still_referenced(entity, id),
            v => v.into(),
        })?;
    tx.commit().await?;
    tracing::debug!(entity, %id, "deleted");
    Ok(())
}

pub(super) async fn insert_variants(
    tx: &mut Transaction<'static, Db>,
    answer_id: Uuid,
    spec: &AnswerSpec,
) -> Result<()> {
    for (position, v) in spec.variants.iter().enumerate() {
        sqlx::query(
            "INSERT INTO answer_variants (answer_id, position, language, subject, body, voice) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(answer_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(v.language.as_str())
        .bind(v.subject.as_ref().map(|s| s.source()))
        .bind(v.body.source())
        .bind(v.voice.as_ref().map(|s| s.source()))
        .execute(&mut **tx)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::Unique(_) => common::duplicate_variant(&v.language),
            v => v.into(),
        })?;
    }
    Ok(())
}

/// Campaigns that would break if the answer became `spec`: they use a language it no longer has,
/// or send email in a language whose variant lost its subject.
pub(super) async fn campaigns_broken_by(
    tx: &mut Transaction<'static, Db>,
    answer_id: Uuid,
    spec: &AnswerSpec,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT name, channel, language FROM campaigns WHERE answer_id = $1 ORDER BY name",
    )
    .bind(answer_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut broken = Vec::new();
    for r in &rows {
        let name: String = r.try_get("name")?;
        let channel: String = r.try_get("channel")?;
        let language: String = r.try_get("language")?;
        if common::breaks_campaign(spec, &channel, &language) {
            broken.push(name);
        }
    }
    Ok(broken)
}

pub(super) async fn check_campaign_references(
    tx: &mut Transaction<'static, Db>,
    spec: &CampaignSpec,
) -> Result<()> {
    if let Some(sender_id) = spec.sender_id
        && !exists(
            tx,
            concat!("SELECT 1 FROM senders WHERE id = $1", for_key_share!()),
            sender_id,
        )
        .await?
    {
        return Err(common::missing("sender_id", "sender", sender_id));
    }
    if !exists(
        tx,
        concat!("SELECT 1 FROM answers WHERE id = $1", for_key_share!()),
        spec.answer_id,
    )
    .await?
    {
        return Err(common::missing("answer_id", "answer", spec.answer_id));
    }
    Ok(())
}

#[async_trait]
impl crate::Catalog for Backend {
    async fn create_inbox(&self, spec: &InboxSpec) -> Result<Inbox> {
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        sqlx::query(
            "INSERT INTO inboxes (id, name, created_at, updated_at, agent_number) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(now_us)
        .bind(spec.agent_number.as_ref().map(|n| n.as_str()))
        .execute(&self.pool)
        .await?;
        tracing::debug!(inbox_id = %id, "created inbox");
        Ok(Inbox {
            id,
            name: spec.name.clone(),
            agent_number: spec.agent_number.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_inbox(&self, id: Uuid) -> Result<Inbox> {
        let row = sqlx::query(concat!(
            "SELECT ",
            inbox_cols!(),
            " FROM inboxes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "inbox",
            id,
        })?;
        inbox_row(&row)?.parse()
    }

    async fn list_inboxes(&self, page: Page) -> Result<Listing<Inbox>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            inbox_cols!(),
            " FROM inboxes WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| inbox_row(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |i| i.id))
    }

    async fn update_inbox(&self, id: Uuid, spec: &InboxSpec) -> Result<Inbox> {
        let (_, now_us) = common::now();
        let row = sqlx::query(concat!(
            "UPDATE inboxes SET name = $2, agent_number = $4, updated_at = ",
            later!("$3"),
            " WHERE id = $1 RETURNING ",
            inbox_cols!()
        ))
        .bind(id)
        .bind(&spec.name)
        .bind(now_us)
        .bind(spec.agent_number.as_ref().map(|n| n.as_str()))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "inbox",
            id,
        })?;
        inbox_row(&row)?.parse()
    }

    async fn delete_inbox(&self, id: Uuid) -> Result<()> {
        delete_unused(
            self,
            Unused {
                entity: "inbox",
                label: concat!("SELECT name FROM inboxes WHERE id = $1", for_update!()),
                users: "SELECT address FROM senders WHERE inbox_id = $1 ORDER BY address",
                delete: "DELETE FROM inboxes WHERE id = $1",
                in_use: common::inbox_in_use,
            },
            id,
        )
        .await
    }

    async fn create_sender(&self, spec: &SenderSpec) -> Result<Sender> {
        common::check_sender(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            concat!("SELECT 1 FROM inboxes WHERE id = $1", for_key_share!()),
            spec.inbox_id,
        )
        .await?
        {
            return Err(common::missing("inbox_id", "inbox", spec.inbox_id));
        }
        sqlx::query(
            "INSERT INTO senders (id, channel, address, inbox_id, provider, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id)
        .bind(spec.channel.as_str())
        .bind(spec.address.as_str())
        .bind(spec.inbox_id)
        .bind(spec.provider.as_str())
        .bind(now_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| common::sender_violation(e, spec))?;
        tx.commit().await?;
        tracing::debug!(sender_id = %id, "created sender");
        Ok(Sender {
            id,
            channel: spec.channel,
            address: spec.address.clone(),
            inbox_id: spec.inbox_id,
            provider: spec.provider,
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_sender(&self, id: Uuid) -> Result<Sender> {
        let row = sqlx::query(concat!(
            "SELECT ",
            sender_cols!(),
            " FROM senders WHERE id = $1 AND channel <> 'chat'"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "sender",
            id,
        })?;
        sender_row(&row)?.parse()
    }

    async fn list_senders(&self, page: Page) -> Result<Listing<Sender>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            sender_cols!(),
            " FROM senders WHERE ($1 IS NULL OR id > $1) AND channel <> 'chat' \
             ORDER BY id LIMIT $2"
        ))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| sender_row(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |s| s.id))
    }

    async fn update_sender(&self, id: Uuid, spec: &SenderSpec) -> Result<Sender> {
        common::check_sender(spec)?;
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        let current = sqlx::query(concat!(
            "SELECT channel, address FROM senders WHERE id = $1 AND channel <> 'chat'",
            for_update!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "sender",
            id,
        })?;
        let channel: String = current.try_get("channel")?;
        if channel != spec.channel.as_str() {
            let campaigns = names(
                &mut tx,
                "SELECT name FROM campaigns WHERE sender_id = $1 ORDER BY name",
                id,
            )
            .await?;
            if !campaigns.is_empty() {
                let address: String = current.try_get("address")?;
                return Err(common::sender_channel_in_use(
                    &address, &channel, &campaigns,
                ));
            }
        }
        if !exists(
            &mut tx,
            concat!("SELECT 1 FROM inboxes WHERE id = $1", for_key_share!()),
            spec.inbox_id,
        )
        .await?
        {
            return Err(common::missing("inbox_id", "inbox", spec.inbox_id));
        }
        let row = sqlx::query(concat!(
            "UPDATE senders SET channel = $2, address = $3, inbox_id = $4, provider = $5, \
             updated_at = ",
            later!("$6"),
            " WHERE id = $1 RETURNING ",
            sender_cols!()
        ))
        .bind(id)
        .bind(spec.channel.as_str())
        .bind(spec.address.as_str())
        .bind(spec.inbox_id)
        .bind(spec.provider.as_str())
        .bind(now_us)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| common::sender_violation(e, spec))?;
        let sender = sender_row(&row)?.parse()?;
        tx.commit().await?;
        Ok(sender)
    }

    async fn delete_sender(&self, id: Uuid) -> Result<()> {
        delete_unused(
            self,
            Unused {
                entity: "sender",
                label: concat!(
                    "SELECT address FROM senders WHERE id = $1 AND channel <> 'chat'",
                    for_update!()
                ),
                users: "SELECT name FROM campaigns WHERE sender_id = $1 ORDER BY name",
                delete: "DELETE FROM senders WHERE id = $1 AND channel <> 'chat'",
                in_use: common::sender_in_use,
            },
            id,
        )
        .await
    }

    async fn create_answer(&self, spec: &AnswerSpec) -> Result<Answer> {
        common::check_answer(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO answers (id, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $3)",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        insert_variants(&mut tx, id, spec).await?;
        tx.commit().await?;
        tracing::debug!(answer_id = %id, "created answer");
        Ok(Answer {
            id,
            name: spec.name.clone(),
            variants: spec.variants.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_answer(&self, id: Uuid) -> Result<Answer> {
        let rows = sqlx::query(answers_with_variants!(
            "SELECT * FROM answers WHERE id = $1"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(answer_variant_row)
            .collect::<Result<Vec<_>>>()?;
        common::group_answers(rows)?
            .pop()
            .ok_or(StoreError::NotFound {
                entity: "answer",
                id,
            })
    }

    async fn list_answers(&self, page: Page) -> Result<Listing<Answer>> {
        let rows = sqlx::query(answers_with_variants!(
            "SELECT * FROM answers WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(answer_variant_row)
            .collect::<Result<Vec<_>>>()?;
        let items = common::group_answers(rows)?;
        Ok(common::listing(&page, items, |a| a.id))
    }

    async fn update_answer(&self, id: Uuid, spec: &AnswerSpec) -> Result<Answer> {
        common::check_answer(spec)?;
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            concat!("SELECT 1 FROM answers WHERE id = $1", for_update!()),
            id,
        )
        .await?
        {
            return Err(StoreError::NotFound {
                entity: "answer",
                id,
            });
        }
        let broken = campaigns_broken_by(&mut tx, id, spec).await?;
        if !broken.is_empty() {
            return Err(common::answer_change_in_use(&spec.name, &broken));
        }
        let row = sqlx::query(concat!(
            "UPDATE answers SET name = $2, updated_at = ",
            later!("$3"),
            " WHERE id = $1 RETURNING created_at, updated_at"
        ))
        .bind(id)
        .bind(&spec.name)
        .bind(now_us)
        .fetch_one(&mut *tx)
        .await?;
        let created_us: crate::Ts = col(&row, "answer", Some(id), "created_at")?;
        let updated_us: crate::Ts = col(&row, "answer", Some(id), "updated_at")?;
        sqlx::query("DELETE FROM answer_variants WHERE answer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_variants(&mut tx, id, spec).await?;
        tx.commit().await?;
        AnswerRow {
            id,
            name: spec.name.clone(),
            created_us,
            updated_us,
        }
        .with_variants(spec)
    }

    async fn delete_answer(&self, id: Uuid) -> Result<()> {
        delete_unused(
            self,
            Unused {
                entity: "answer",
                label: concat!("SELECT name FROM answers WHERE id = $1", for_update!()),
                users: "SELECT name FROM campaigns WHERE answer_id = $1 ORDER BY name",
                delete: "DELETE FROM answers WHERE id = $1",
                in_use: common::answer_in_use,
            },
            id,
        )
        .await
    }

    async fn recent_columns(
        &self,
        answer_id: Uuid,
        lists: u32,
    ) -> Result<std::collections::BTreeSet<String>> {
        let rows: Vec<(Option<String>,)> = sqlx::query_as(
            "SELECT (SELECT r.variables FROM recipients r WHERE r.outreach_id = o.id LIMIT 1) \
             FROM outreaches o JOIN campaigns c ON c.id = o.campaign_id \
             WHERE c.answer_id = $1 ORDER BY o.created_at DESC LIMIT $2",
        )
        .bind(answer_id)
        .bind(i64::from(lists))
        .fetch_all(&self.pool)
        .await?;
        let mut columns = std::collections::BTreeSet::new();
        for (vars,) in rows {
            if let Some(serde_json::Value::Object(map)) =
                vars.and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
            {
                columns.extend(map.into_iter().map(|(k, _)| k));
            }
        }
        Ok(columns)
    }

    async fn create_campaign(&self, spec: &CampaignSpec) -> Result<Campaign> {
        common::check_campaign(spec)?;
        let schedule = schedule_param(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        check_campaign_references(&mut tx, spec).await?;
        sqlx::query(
            "INSERT INTO campaigns (id, name, description, channel, sender_id, language, \
             answer_id, schedule, quiet_hours, frequency_cap_messages, frequency_cap_days, \
             voice, spoken_language, press_one_prompt, agent_unavailable, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $13, $14, $15, $16, $10, $10)",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.channel.as_str())
        .bind(spec.sender_id)
        .bind(spec.language.as_str())
        .bind(spec.answer_id)
        .bind(schedule)
        .bind(spec.quiet_hours)
        .bind(now_us)
        .bind(spec.frequency_cap.map(|c| i64::from(c.messages)))
        .bind(spec.frequency_cap.map(|c| i64::from(c.days)))
        .bind(spec.voice_settings.voice.as_deref())
        .bind(spec.voice_settings.spoken_language.as_deref())
        .bind(spec.voice_settings.press_one_prompt.as_deref())
        .bind(spec.voice_settings.agent_unavailable.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| common::campaign_violation(e, spec))?;
        tx.commit().await?;
        tracing::debug!(campaign_id = %id, "created campaign");
        Ok(Campaign {
            id,
            name: spec.name.clone(),
            description: spec.description.clone(),
            channel: spec.channel,
            sender_id: spec.sender_id,
            language: spec.language.clone(),
            answer_id: spec.answer_id,
            schedule: spec.schedule.clone(),
            quiet_hours: spec.quiet_hours,
            frequency_cap: spec.frequency_cap,
            voice_settings: spec.voice_settings.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_campaign(&self, id: Uuid) -> Result<Campaign> {
        let row = sqlx::query(concat!(
            "SELECT ",
            campaign_cols!(),
            " FROM campaigns WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "campaign",
            id,
        })?;
        campaign_row(&row)?.parse()
    }

    async fn list_campaigns(
        &self,
        channel: Option<Channel>,
        page: Page,
    ) -> Result<Listing<Campaign>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            campaign_cols!(),
            " FROM campaigns WHERE ($1 IS NULL OR channel = $1) \
             AND ($2 IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        ))
        .bind(channel.map(Channel::as_str))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| campaign_row(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |c| c.id))
    }

    async fn update_campaign(&self, id: Uuid, spec: &CampaignSpec) -> Result<Campaign> {
        common::check_campaign(spec)?;
        let schedule = schedule_param(spec)?;
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            concat!("SELECT 1 FROM campaigns WHERE id = $1", for_update!()),
            id,
        )
        .await?
        {
            return Err(StoreError::NotFound {
                entity: "campaign",
                id,
            });
        }
        check_campaign_references(&mut tx, spec).await?;
        let row = sqlx::query(concat!(
            "UPDATE campaigns SET name = $2, description = $3, channel = $4, sender_id = $5, \
             language = $6, answer_id = $7, schedule = $8, quiet_hours = $9, \
             frequency_cap_messages = $11, frequency_cap_days = $12, voice = $13, \
             spoken_language = $14, press_one_prompt = $15, agent_unavailable = $16, updated_at = ",
            later!("$10"),
            " WHERE id = $1 RETURNING ",
            campaign_cols!()
        ))
        .bind(id)
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.channel.as_str())
        .bind(spec.sender_id)
        .bind(spec.language.as_str())
        .bind(spec.answer_id)
        .bind(schedule)
        .bind(spec.quiet_hours)
        .bind(now_us)
        .bind(spec.frequency_cap.map(|c| i64::from(c.messages)))
        .bind(spec.frequency_cap.map(|c| i64::from(c.days)))
        .bind(spec.voice_settings.voice.as_deref())
        .bind(spec.voice_settings.spoken_language.as_deref())
        .bind(spec.voice_settings.press_one_prompt.as_deref())
        .bind(spec.voice_settings.agent_unavailable.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| common::campaign_violation(e, spec))?;
        let campaign = campaign_row(&row)?.parse()?;
        // Its hours as saved now decide for the recipients waiting for them.
        super::outreach::release_waiting(&mut *tx, id, now_us).await?;
        tx.commit().await?;
        Ok(campaign)
    }

    async fn delete_campaign(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM campaigns WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| match Violation::of(e) {
                Violation::ForeignKey(_) => common::still_referenced("campaign", id),
                v => v.into(),
            })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "campaign",
                id,
            });
        }
        tracing::debug!(campaign_id = %id, "deleted campaign");
        Ok(())
    }

    async fn find_sender(&self, channel: Channel, address: &str) -> Result<Option<Sender>> {
        let pool = &self.pool;
        let row = sqlx::query(concat!(
            "SELECT ",
            sender_cols!(),
            " FROM senders WHERE channel = $1 AND address = $2"
        ))
        .bind(channel.as_str())
        .bind(address)
        .fetch_optional(pool)
        .await?;
        row.map(|r| super::catalog::sender_row(&r)?.parse())
            .transpose()
    }

    async fn serves_email_domain(&self, domain: &str) -> Result<bool> {
        let Some(domain) = crate::conversation::plain_domain(domain) else {
            return Ok(false);
        };
        let n: i64 = sqlx::query_scalar(crate::conversation::SERVES_EMAIL_DOMAIN)
            .bind(domain)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
