//! The PostgreSQL store: how Herald scales past one machine.
//!
//! Timestamps are `timestamptz` columns; the Rust side deals in unix microseconds, converted
//! exactly in SQL (see `migrations/postgres/0001_init.sql`). A write that checks before it writes
//! locks the row it checks (`FOR UPDATE`), so a concurrent writer cannot slip in between; the
//! foreign keys stay as the backstop.

use crate::common::{
    self, AnswerRow, CampaignRow, InboxRow, SenderRow, TokenRow, VariantRow, Violation, col,
};
use crate::conversation::{
    Conversation, Customer, InboundMessage, Message, OutboundRecord, Received, SentMessage,
    StatusApplied, StatusReport, Suppression,
};
use crate::dispatch::{ClaimedRecipient, DeliveryResult, LiveOutreach, RecipientRecord};
use crate::outreach::{ImportErrorRecord, NewOutreach, Outreach, OutreachImport};
use crate::{NewToken, PhoneTable, RecipientPhone, Result, Store, StoreError, User};
use async_trait::async_trait;
use herald_core::outreach::{CrashPolicy, DeliveryState, Progress, SkipReason};
use jiff::Timestamp;

use herald_core::outreach::OutreachStatus;
use herald_core::{
    Answer, AnswerSpec, ApiToken, Campaign, CampaignSpec, Channel, Inbox, InboxSpec, Listing, Page,
    Role, Sender, SenderSpec,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller waits for a free connection before the pool gives up.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`Store`] on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    // The pool's options hold the password: show none of them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]` (or `postgresql://`).
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Opens the database `options` name.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        tracing::debug!("opened postgres store");
        Ok(Self { pool })
    }

    /// The connection pool, for queries this crate does not offer yet (and for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

// ---------------------------------------------------------------- rows

fn inbox_row(r: &PgRow) -> Result<InboxRow> {
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

pub(crate) fn sender_row(r: &PgRow) -> Result<SenderRow> {
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
fn answer_variant_row(r: &PgRow) -> Result<(AnswerRow, Option<VariantRow>)> {
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
        }),
    };
    Ok((answer, variant))
}

fn campaign_row(r: &PgRow) -> Result<CampaignRow> {
    let e = "campaign";
    let id: Uuid = col(r, e, None, "id")?;
    let schedule: serde_json::Value = col(r, e, Some(id), "schedule")?;
    Ok(CampaignRow {
        id,
        name: col(r, e, Some(id), "name")?,
        description: col(r, e, Some(id), "description")?,
        channel: col(r, e, Some(id), "channel")?,
        sender_id: col(r, e, Some(id), "sender_id")?,
        language: col(r, e, Some(id), "language")?,
        answer_id: col(r, e, Some(id), "answer_id")?,
        schedule: Ok(schedule),
        quiet_hours: col(r, e, Some(id), "quiet_hours")?,
        created_us: col(r, e, Some(id), "created_at")?,
        updated_us: col(r, e, Some(id), "updated_at")?,
    })
}

fn token_row(r: &PgRow) -> Result<TokenRow> {
    let e = "token";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(TokenRow {
        id,
        name: col(r, e, Some(id), "name")?,
        role: col(r, e, Some(id), "role")?,
        created_us: col(r, e, Some(id), "created_at")?,
    })
}

fn schedule_json(spec: &CampaignSpec) -> Result<serde_json::Value> {
    common::schedule_json(&spec.schedule)
}

// ---------------------------------------------------------------- queries

macro_rules! inbox_cols {
    () => {
        "id, name, agent_number, (extract(epoch from created_at) * 1000000)::int8 AS created_at, \
         (extract(epoch from updated_at) * 1000000)::int8 AS updated_at"
    };
}

macro_rules! sender_cols {
    () => {
        "id, channel, address, inbox_id, provider, \
         (extract(epoch from created_at) * 1000000)::int8 AS created_at, \
         (extract(epoch from updated_at) * 1000000)::int8 AS updated_at"
    };
}

macro_rules! campaign_cols {
    () => {
        "id, name, description, channel, sender_id, language, answer_id, schedule, quiet_hours, \
         (extract(epoch from created_at) * 1000000)::int8 AS created_at, \
         (extract(epoch from updated_at) * 1000000)::int8 AS updated_at"
    };
}

macro_rules! answers_with_variants {
    ($answers:literal) => {
        concat!(
            "SELECT a.id, a.name, \
             (extract(epoch from a.created_at) * 1000000)::int8 AS created_at, \
             (extract(epoch from a.updated_at) * 1000000)::int8 AS updated_at, \
             v.language, v.subject, v.body \
             FROM (",
            $answers,
            ") a LEFT JOIN answer_variants v ON v.answer_id = a.id \
             ORDER BY a.id, v.position"
        )
    };
}

async fn exists(
    tx: &mut Transaction<'static, Postgres>,
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
async fn names(
    tx: &mut Transaction<'static, Postgres>,
    sql: &'static str,
    id: Uuid,
) -> Result<Vec<String>> {
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

async fn insert_variants(
    tx: &mut Transaction<'static, Postgres>,
    answer_id: Uuid,
    spec: &AnswerSpec,
) -> Result<()> {
    for (position, v) in spec.variants.iter().enumerate() {
        sqlx::query(
            "INSERT INTO answer_variants (answer_id, position, language, subject, body) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(answer_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(v.language.as_str())
        .bind(v.subject.as_ref().map(|s| s.source()))
        .bind(v.body.source())
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
async fn campaigns_broken_by(
    tx: &mut Transaction<'static, Postgres>,
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

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        tracing::info!(backend = "postgres", "database schema is up to date");
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ------------------------------------------------------------ inboxes

    async fn create_inbox(&self, spec: &InboxSpec) -> Result<Inbox> {
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        sqlx::query(
            "INSERT INTO inboxes (id, name, created_at, updated_at, agent_number) \
             VALUES ($1, $2, (timestamptz 'epoch' + $3::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $3::int8 * interval '1 microsecond'), $4)",
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
            " FROM inboxes WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
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
            "UPDATE inboxes SET name = $2, agent_number = $4, updated_at = greatest((timestamptz 'epoch' + $3::int8 * interval '1 microsecond'), updated_at + interval '1 microsecond') WHERE id = $1 \
             RETURNING ",
            inbox_cols!()
        ))
        .bind(id)
        .bind(&spec.name)
        .bind(now_us)
        .bind(spec.agent_number.as_ref().map(|n| n.as_str()))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound { entity: "inbox", id })?;
        inbox_row(&row)?.parse()
    }

    async fn delete_inbox(&self, id: Uuid) -> Result<()> {
        let mut tx = self.write().await?;
        let name: String = sqlx::query("SELECT name FROM inboxes WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "inbox",
                id,
            })?
            .try_get(0)?;
        let senders = names(
            &mut tx,
            "SELECT address FROM senders WHERE inbox_id = $1 ORDER BY address",
            id,
        )
        .await?;
        if !senders.is_empty() {
            return Err(common::inbox_in_use(&name, &senders));
        }
        sqlx::query("DELETE FROM inboxes WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| match Violation::of(e) {
                Violation::ForeignKey(_) => common::still_referenced("inbox", id),
                v => v.into(),
            })?;
        tx.commit().await?;
        tracing::debug!(inbox_id = %id, "deleted inbox");
        Ok(())
    }

    // ------------------------------------------------------------ senders

    async fn create_sender(&self, spec: &SenderSpec) -> Result<Sender> {
        common::check_sender(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM inboxes WHERE id = $1 FOR KEY SHARE",
            spec.inbox_id,
        )
        .await?
        {
            return Err(common::missing("inbox_id", "inbox", spec.inbox_id));
        }
        sqlx::query(
            "INSERT INTO senders (id, channel, address, inbox_id, provider, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, (timestamptz 'epoch' + $6::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $6::int8 * interval '1 microsecond'))",
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
            " FROM senders WHERE id = $1"
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
            " FROM senders WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
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
        let current = sqlx::query("SELECT channel, address FROM senders WHERE id = $1 FOR UPDATE")
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
            "SELECT 1 FROM inboxes WHERE id = $1 FOR KEY SHARE",
            spec.inbox_id,
        )
        .await?
        {
            return Err(common::missing("inbox_id", "inbox", spec.inbox_id));
        }
        let row = sqlx::query(concat!(
            "UPDATE senders SET channel = $2, address = $3, inbox_id = $4, provider = $5, \
             updated_at = greatest((timestamptz 'epoch' + $6::int8 * interval '1 microsecond'), updated_at + interval '1 microsecond') WHERE id = $1 RETURNING ",
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
        let mut tx = self.write().await?;
        let address: String = sqlx::query("SELECT address FROM senders WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "sender",
                id,
            })?
            .try_get(0)?;
        let campaigns = names(
            &mut tx,
            "SELECT name FROM campaigns WHERE sender_id = $1 ORDER BY name",
            id,
        )
        .await?;
        if !campaigns.is_empty() {
            return Err(common::sender_in_use(&address, &campaigns));
        }
        sqlx::query("DELETE FROM senders WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| match Violation::of(e) {
                Violation::ForeignKey(_) => common::still_referenced("sender", id),
                v => v.into(),
            })?;
        tx.commit().await?;
        tracing::debug!(sender_id = %id, "deleted sender");
        Ok(())
    }

    // ------------------------------------------------------------ answers

    async fn create_answer(&self, spec: &AnswerSpec) -> Result<Answer> {
        common::check_answer(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO answers (id, name, created_at, updated_at) \
             VALUES ($1, $2, (timestamptz 'epoch' + $3::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $3::int8 * interval '1 microsecond'))",
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
            "SELECT * FROM answers WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
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
            "SELECT 1 FROM answers WHERE id = $1 FOR UPDATE",
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
        let row = sqlx::query(
            "UPDATE answers SET name = $2, updated_at = greatest((timestamptz 'epoch' + $3::int8 * interval '1 microsecond'), updated_at + interval '1 microsecond') WHERE id = $1 \
             RETURNING (extract(epoch from created_at) * 1000000)::int8 AS created_at, \
             (extract(epoch from updated_at) * 1000000)::int8 AS updated_at",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(now_us)
        .fetch_one(&mut *tx)
        .await?;
        let created_us: i64 = col(&row, "answer", Some(id), "created_at")?;
        let updated_us: i64 = col(&row, "answer", Some(id), "updated_at")?;
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
        let mut tx = self.write().await?;
        let name: String = sqlx::query("SELECT name FROM answers WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "answer",
                id,
            })?
            .try_get(0)?;
        let campaigns = names(
            &mut tx,
            "SELECT name FROM campaigns WHERE answer_id = $1 ORDER BY name",
            id,
        )
        .await?;
        if !campaigns.is_empty() {
            return Err(common::answer_in_use(&name, &campaigns));
        }
        sqlx::query("DELETE FROM answers WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| match Violation::of(e) {
                Violation::ForeignKey(_) => common::still_referenced("answer", id),
                v => v.into(),
            })?;
        tx.commit().await?;
        tracing::debug!(answer_id = %id, "deleted answer");
        Ok(())
    }

    // ------------------------------------------------------------ campaigns

    async fn create_campaign(&self, spec: &CampaignSpec) -> Result<Campaign> {
        common::check_campaign(spec)?;
        let schedule = schedule_json(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        check_campaign_references(&mut tx, spec).await?;
        sqlx::query(
            "INSERT INTO campaigns (id, name, description, channel, sender_id, language, \
             answer_id, schedule, quiet_hours, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (timestamptz 'epoch' + $10::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $10::int8 * interval '1 microsecond'))",
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
            " FROM campaigns WHERE ($1::text IS NULL OR channel = $1) \
             AND ($2::uuid IS NULL OR id > $2) \
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
        let schedule = schedule_json(spec)?;
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE",
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
             updated_at = greatest((timestamptz 'epoch' + $10::int8 * interval '1 microsecond'), updated_at + interval '1 microsecond') WHERE id = $1 RETURNING ",
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
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| common::campaign_violation(e, spec))?;
        let campaign = campaign_row(&row)?.parse()?;
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

    // ------------------------------------------------------------ tokens

    async fn create_token(&self, token: &NewToken) -> Result<ApiToken> {
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, hash_hex, created_at) \
             VALUES ($1, $2, $3, $4, (timestamptz 'epoch' + $5::int8 * interval '1 microsecond'))",
        )
        .bind(id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.hash_hex)
        .bind(now_us)
        .execute(&self.pool)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::Unique(_) => common::token_conflict(),
            v => v.into(),
        })?;
        tracing::debug!(token_id = %id, role = %token.role, "created api token");
        Ok(ApiToken {
            id,
            name: token.name.clone(),
            role: token.role,
            created_at: now,
        })
    }

    async fn find_token(&self, hash_hex: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(
            "SELECT id, name, role, (extract(epoch from created_at) * 1000000)::int8 AS created_at \
             FROM api_tokens WHERE hash_hex = $1",
        )
        .bind(hash_hex)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_row(&r)?.parse()).transpose()
    }

    // ------------------------------------------------------------ web accounts

    async fn count_users(&self) -> Result<u64> {
        crate::pg_users::count_users(&self.pool).await
    }

    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User> {
        crate::pg_users::create_user(&self.pool, email, role, password_hash).await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        crate::pg_users::find_user_by_email(&self.pool, email).await
    }

    async fn get_user(&self, id: Uuid) -> Result<User> {
        crate::pg_users::get_user(&self.pool, id).await
    }

    async fn create_setup_token(
        &self,
        hash_hex: &str,
        email: Option<&str>,
        role: Role,
        expires_at: Timestamp,
    ) -> Result<()> {
        crate::pg_users::create_setup_token(&self.pool, hash_hex, email, role, expires_at).await
    }

    async fn find_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>> {
        crate::pg_users::find_setup_token(&self.pool, hash_hex, now).await
    }

    async fn take_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>> {
        crate::pg_users::take_setup_token(&self.pool, hash_hex, now).await
    }

    async fn create_session(
        &self,
        hash_hex: &str,
        user_id: Uuid,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        crate::pg_users::create_session(&self.pool, hash_hex, user_id, csrf_token, expires_at).await
    }

    async fn find_session(&self, hash_hex: &str, now: Timestamp) -> Result<Option<(User, String)>> {
        crate::pg_users::find_session(&self.pool, hash_hex, now).await
    }

    async fn delete_session(&self, hash_hex: &str) -> Result<()> {
        crate::pg_users::delete_session(&self.pool, hash_hex).await
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: Timestamp,
        max_attempts: u32,
        window: jiff::SignedDuration,
    ) -> Result<crate::LoginAttempt> {
        crate::pg_users::reserve_login_attempt(&self.pool, email, now, max_attempts, window).await
    }

    async fn clear_login_attempts(&self, email: &str) -> Result<()> {
        crate::pg_users::clear_login_attempts(&self.pool, email).await
    }

    async fn begin_outreach(&self, new: &NewOutreach) -> Result<Box<dyn OutreachImport>> {
        crate::pg_outreach::begin(&self.pool, new).await
    }

    async fn get_outreach(&self, id: Uuid) -> Result<Outreach> {
        crate::pg_outreach::get(&self.pool, id).await
    }

    async fn list_outreaches(
        &self,
        campaign_id: Uuid,
        status: Option<OutreachStatus>,
        page: Page,
    ) -> Result<Listing<Outreach>> {
        crate::pg_outreach::list(&self.pool, campaign_id, status, page).await
    }

    async fn import_errors(
        &self,
        outreach_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ImportErrorRecord)>> {
        crate::pg_outreach::import_errors(&self.pool, outreach_id, after, limit).await
    }

    async fn suppressed_addresses(&self, sender_id: Option<Uuid>) -> Result<HashSet<String>> {
        crate::pg_outreach::suppressed_addresses(&self.pool, sender_id).await
    }

    async fn add_suppression(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
    ) -> Result<bool> {
        crate::pg_outreach::add_suppression(&self.pool, address, sender_id, reason).await
    }

    async fn suppressed_among(
        &self,
        sender_id: Uuid,
        addresses: &[String],
    ) -> Result<HashSet<String>> {
        crate::pg_conversation::suppressed_among(&self.pool, sender_id, addresses).await
    }

    async fn suppression_for(&self, address: &str, sender_id: Uuid) -> Result<Option<Suppression>> {
        crate::pg_conversation::suppression_for(&self.pool, address, sender_id).await
    }

    async fn list_suppressions(
        &self,
        address: Option<&str>,
        page: Page,
    ) -> Result<Listing<Suppression>> {
        crate::pg_conversation::list_suppressions(&self.pool, address, page).await
    }

    async fn get_suppression(&self, id: Uuid) -> Result<Suppression> {
        crate::pg_conversation::get_suppression(&self.pool, id).await
    }

    async fn delete_suppression(&self, id: Uuid) -> Result<()> {
        crate::pg_conversation::delete_suppression(&self.pool, id).await
    }

    async fn remove_suppression(&self, address: &str, sender_id: Option<Uuid>) -> Result<bool> {
        crate::pg_conversation::remove_suppression(&self.pool, address, sender_id).await
    }

    async fn skip_pending_for_address(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: SkipReason,
        now: Timestamp,
    ) -> Result<u64> {
        crate::pg_conversation::skip_pending_for_address(
            &self.pool, address, sender_id, reason, now,
        )
        .await
    }

    async fn find_sender(&self, channel: Channel, address: &str) -> Result<Option<Sender>> {
        crate::pg_conversation::find_sender(&self.pool, channel, address).await
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

    async fn get_recipient(&self, outreach_id: Uuid, recipient_id: i64) -> Result<RecipientRecord> {
        crate::pg_dispatch::get_recipient(&self.pool, outreach_id, recipient_id).await
    }

    async fn receive_message(&self, msg: &InboundMessage) -> Result<Received> {
        crate::pg_conversation::receive_message(&self.pool, msg).await
    }

    async fn add_outbound(&self, msg: &OutboundRecord) -> Result<Message> {
        crate::pg_conversation::add_outbound(&self.pool, msg).await
    }

    async fn get_conversation(&self, id: Uuid) -> Result<Conversation> {
        crate::pg_conversation::get_conversation(&self.pool, id).await
    }

    async fn list_conversations(
        &self,
        inbox_id: Uuid,
        page: Page,
    ) -> Result<Listing<Conversation>> {
        crate::pg_conversation::list_conversations(&self.pool, inbox_id, page).await
    }

    async fn conversation_messages(
        &self,
        conversation_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        crate::pg_conversation::conversation_messages(&self.pool, conversation_id, after, limit)
            .await
    }

    async fn get_customer(&self, id: Uuid) -> Result<Customer> {
        crate::pg_conversation::get_customer(&self.pool, id).await
    }

    async fn find_customer(&self, address: &str) -> Result<Option<Customer>> {
        crate::pg_conversation::find_customer(&self.pool, address).await
    }

    async fn customer_messages(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        crate::pg_conversation::customer_messages(&self.pool, customer_id, after, limit).await
    }

    async fn apply_status(&self, report: &StatusReport) -> Result<StatusApplied> {
        crate::pg_conversation::apply_status(&self.pool, report).await
    }

    async fn purge_kept_status_reports(&self, before: Timestamp) -> Result<u64> {
        crate::pg_conversation::purge_kept_status_reports(&self.pool, before).await
    }

    async fn live_outreaches(&self) -> Result<Vec<LiveOutreach>> {
        crate::pg_dispatch::live_outreaches(&self.pool).await
    }

    async fn outreach_status(&self, id: Uuid) -> Result<OutreachStatus> {
        crate::pg_dispatch::outreach_status(&self.pool, id).await
    }

    async fn start_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        crate::pg_dispatch::start_outreach(&self.pool, id, now).await
    }

    async fn complete_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        crate::pg_dispatch::complete_outreach(&self.pool, id, now).await
    }

    async fn expire_pending(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        crate::pg_dispatch::expire_pending(&self.pool, id, now).await
    }

    async fn stop_outreach(&self, id: Uuid, now: Timestamp) -> Result<Outreach> {
        crate::pg_dispatch::stop_outreach(&self.pool, id, now).await
    }

    async fn retry_failed(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        crate::pg_dispatch::retry_failed(&self.pool, id, now).await
    }

    async fn claim_due(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedRecipient>> {
        crate::pg_dispatch::claim_due(&self.pool, outreach_id, now, lease_until, limit).await
    }

    async fn record_results_with_messages(
        &self,
        now: Timestamp,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> Result<()> {
        crate::pg_dispatch::record_results(&self.pool, now, results, sent).await
    }

    async fn recover_expired_leases(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        policy: CrashPolicy,
    ) -> Result<u64> {
        crate::pg_dispatch::recover_expired_leases(&self.pool, outreach_id, now, policy).await
    }

    async fn outreach_progress(&self, id: Uuid) -> Result<Progress> {
        let mut conn = self.pool.acquire().await?;
        crate::pg_dispatch::progress(&mut conn, id).await
    }

    async fn list_recipients(
        &self,
        outreach_id: Uuid,
        state: Option<DeliveryState>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>> {
        crate::pg_dispatch::list_recipients(&self.pool, outreach_id, state, after, limit).await
    }

    async fn recipient_phones(&self, after: i64, limit: u32) -> Result<Vec<RecipientPhone>> {
        crate::audit::postgres::recipient_phones(&self.pool, after, limit).await
    }

    async fn stored_phones(
        &self,
        table: PhoneTable,
        after: Uuid,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>> {
        crate::audit::postgres::stored_phones(&self.pool, table, after, limit).await
    }
}

async fn check_campaign_references(
    tx: &mut Transaction<'static, Postgres>,
    spec: &CampaignSpec,
) -> Result<()> {
    if let Some(sender_id) = spec.sender_id
        && !exists(
            tx,
            "SELECT 1 FROM senders WHERE id = $1 FOR KEY SHARE",
            sender_id,
        )
        .await?
    {
        return Err(common::missing("sender_id", "sender", sender_id));
    }
    if !exists(
        tx,
        "SELECT 1 FROM answers WHERE id = $1 FOR KEY SHARE",
        spec.answer_id,
    )
    .await?
    {
        return Err(common::missing("answer_id", "answer", spec.answer_id));
    }
    Ok(())
}
