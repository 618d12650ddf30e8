//! The SQLite store: Herald's embedded default. One file, WAL journal, foreign keys on.
//!
//! Writes that read before they write run in `BEGIN IMMEDIATE` transactions, so the check and the
//! write see the same database (a deferred transaction could fail to upgrade its lock under
//! concurrent writers); the busy timeout makes concurrent writers wait their turn.

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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another writer before giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// [`Store`] on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file if missing; the directory must exist),
    /// `sqlite:PATH` or `sqlite::memory:`. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_private(options.get_filename())?;
        }
        let pool = if in_memory {
            // An in-memory database lives as long as one connection to it: keep exactly one,
            // for ever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?
        };
        tracing::debug!(in_memory, "opened sqlite store");
        Ok(Self { pool })
    }

    /// The connection pool, for queries this crate does not offer yet (and for tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Creates the database file, readable and writable by its owner only (0600 on Unix), if it
/// does not exist yet: it holds customers' addresses and password hashes. SQLite gives its
/// `-wal` and `-shm` files the database file's permissions. An existing file is left as it is.
fn create_private(path: &std::path::Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A directory that does not exist: let SQLite say so, as it did.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

// ---------------------------------------------------------------- rows

fn inbox_row(r: &SqliteRow) -> Result<InboxRow> {
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

pub(crate) fn sender_row(r: &SqliteRow) -> Result<SenderRow> {
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
fn answer_variant_row(r: &SqliteRow) -> Result<(AnswerRow, Option<VariantRow>)> {
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

fn campaign_row(r: &SqliteRow) -> Result<CampaignRow> {
    let e = "campaign";
    let id: Uuid = col(r, e, None, "id")?;
    let schedule: String = col(r, e, Some(id), "schedule")?;
    Ok(CampaignRow {
        id,
        name: col(r, e, Some(id), "name")?,
        description: col(r, e, Some(id), "description")?,
        channel: col(r, e, Some(id), "channel")?,
        sender_id: col(r, e, Some(id), "sender_id")?,
        language: col(r, e, Some(id), "language")?,
        answer_id: col(r, e, Some(id), "answer_id")?,
        schedule: serde_json::from_str(&schedule).map_err(|e| e.to_string()),
        quiet_hours: col(r, e, Some(id), "quiet_hours")?,
        created_us: col(r, e, Some(id), "created_at")?,
        updated_us: col(r, e, Some(id), "updated_at")?,
    })
}

fn token_row(r: &SqliteRow) -> Result<TokenRow> {
    let e = "token";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(TokenRow {
        id,
        name: col(r, e, Some(id), "name")?,
        role: col(r, e, Some(id), "role")?,
        created_us: col(r, e, Some(id), "created_at")?,
    })
}

fn schedule_text(spec: &CampaignSpec) -> Result<String> {
    Ok(common::schedule_json(&spec.schedule)?.to_string())
}

// ---------------------------------------------------------------- queries

macro_rules! inbox_cols {
    () => {
        "id, name, agent_number, created_at, updated_at"
    };
}

macro_rules! sender_cols {
    () => {
        "id, channel, address, inbox_id, provider, created_at, updated_at"
    };
}

macro_rules! campaign_cols {
    () => {
        "id, name, description, channel, sender_id, language, answer_id, schedule, quiet_hours, \
         created_at, updated_at"
    };
}

macro_rules! answers_with_variants {
    ($answers:literal) => {
        concat!(
            "SELECT a.id, a.name, a.created_at, a.updated_at, v.language, v.subject, v.body \
             FROM (",
            $answers,
            ") a LEFT JOIN answer_variants v ON v.answer_id = a.id \
             ORDER BY a.id, v.position"
        )
    };
}

async fn exists(
    tx: &mut Transaction<'static, Sqlite>,
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
    tx: &mut Transaction<'static, Sqlite>,
    sql: &'static str,
    id: Uuid,
) -> Result<Vec<String>> {
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

async fn insert_variants(
    tx: &mut Transaction<'static, Sqlite>,
    answer_id: Uuid,
    spec: &AnswerSpec,
) -> Result<()> {
    for (position, v) in spec.variants.iter().enumerate() {
        sqlx::query(
            "INSERT INTO answer_variants (answer_id, position, language, subject, body) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(answer_id)
        .bind(position as i64)
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
    tx: &mut Transaction<'static, Sqlite>,
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
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        tracing::info!(backend = "sqlite", "database schema is up to date");
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
            "INSERT INTO inboxes (id, name, created_at, updated_at, agent_number) VALUES ($1, $2, $3, $3, $4)",
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
            "UPDATE inboxes SET name = $2, agent_number = $4, updated_at = max($3, updated_at + 1) WHERE id = $1 \
             RETURNING ",
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
        let mut tx = self.write().await?;
        let name: String = sqlx::query("SELECT name FROM inboxes WHERE id = $1")
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
            "SELECT 1 FROM inboxes WHERE id = $1",
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
            " FROM senders WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
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
        let current = sqlx::query("SELECT channel, address FROM senders WHERE id = $1")
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
            "SELECT 1 FROM inboxes WHERE id = $1",
            spec.inbox_id,
        )
        .await?
        {
            return Err(common::missing("inbox_id", "inbox", spec.inbox_id));
        }
        let row = sqlx::query(concat!(
            "UPDATE senders SET channel = $2, address = $3, inbox_id = $4, provider = $5, \
             updated_at = max($6, updated_at + 1) WHERE id = $1 RETURNING ",
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
        let address: String = sqlx::query("SELECT address FROM senders WHERE id = $1")
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
            "INSERT INTO answers (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
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
        if !exists(&mut tx, "SELECT 1 FROM answers WHERE id = $1", id).await? {
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
            "UPDATE answers SET name = $2, updated_at = max($3, updated_at + 1) WHERE id = $1 \
             RETURNING created_at, updated_at",
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
        let name: String = sqlx::query("SELECT name FROM answers WHERE id = $1")
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
        let schedule = schedule_text(spec)?;
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        let mut tx = self.write().await?;
        check_campaign_references(&mut tx, spec).await?;
        sqlx::query(
            "INSERT INTO campaigns (id, name, description, channel, sender_id, language, \
             answer_id, schedule, quiet_hours, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
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
            " FROM campaigns WHERE ($1 IS NULL OR channel = $1) AND ($2 IS NULL OR id > $2) \
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
        let schedule = schedule_text(spec)?;
        let (_, now_us) = common::now();
        let mut tx = self.write().await?;
        if !exists(&mut tx, "SELECT 1 FROM campaigns WHERE id = $1", id).await? {
            return Err(StoreError::NotFound {
                entity: "campaign",
                id,
            });
        }
        check_campaign_references(&mut tx, spec).await?;
        let row = sqlx::query(concat!(
            "UPDATE campaigns SET name = $2, description = $3, channel = $4, sender_id = $5, \
             language = $6, answer_id = $7, schedule = $8, quiet_hours = $9, \
             updated_at = max($10, updated_at + 1) WHERE id = $1 RETURNING ",
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
             VALUES ($1, $2, $3, $4, $5)",
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
        let row =
            sqlx::query("SELECT id, name, role, created_at FROM api_tokens WHERE hash_hex = $1")
                .bind(hash_hex)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| token_row(&r)?.parse()).transpose()
    }

    // ------------------------------------------------------------ web accounts

    async fn count_users(&self) -> Result<u64> {
        crate::sqlite_users::count_users(&self.pool).await
    }

    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User> {
        crate::sqlite_users::create_user(&self.pool, email, role, password_hash).await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        crate::sqlite_users::find_user_by_email(&self.pool, email).await
    }

    async fn get_user(&self, id: Uuid) -> Result<User> {
        crate::sqlite_users::get_user(&self.pool, id).await
    }

    async fn create_setup_token(
        &self,
        hash_hex: &str,
        email: Option<&str>,
        role: Role,
        expires_at: Timestamp,
    ) -> Result<()> {
        crate::sqlite_users::create_setup_token(&self.pool, hash_hex, email, role, expires_at).await
    }

    async fn find_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>> {
        crate::sqlite_users::find_setup_token(&self.pool, hash_hex, now).await
    }

    async fn take_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>> {
        crate::sqlite_users::take_setup_token(&self.pool, hash_hex, now).await
    }

    async fn create_session(
        &self,
        hash_hex: &str,
        user_id: Uuid,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        crate::sqlite_users::create_session(&self.pool, hash_hex, user_id, csrf_token, expires_at)
            .await
    }

    async fn find_session(&self, hash_hex: &str, now: Timestamp) -> Result<Option<(User, String)>> {
        crate::sqlite_users::find_session(&self.pool, hash_hex, now).await
    }

    async fn delete_session(&self, hash_hex: &str) -> Result<()> {
        crate::sqlite_users::delete_session(&self.pool, hash_hex).await
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: Timestamp,
        max_attempts: u32,
        window: jiff::SignedDuration,
    ) -> Result<crate::LoginAttempt> {
        crate::sqlite_users::reserve_login_attempt(&self.pool, email, now, max_attempts, window)
            .await
    }

    async fn clear_login_attempts(&self, email: &str) -> Result<()> {
        crate::sqlite_users::clear_login_attempts(&self.pool, email).await
    }

    async fn begin_outreach(&self, new: &NewOutreach) -> Result<Box<dyn OutreachImport>> {
        crate::sqlite_outreach::begin(&self.pool, new).await
    }

    async fn get_outreach(&self, id: Uuid) -> Result<Outreach> {
        crate::sqlite_outreach::get(&self.pool, id).await
    }

    async fn list_outreaches(
        &self,
        campaign_id: Uuid,
        status: Option<OutreachStatus>,
        page: Page,
    ) -> Result<Listing<Outreach>> {
        crate::sqlite_outreach::list(&self.pool, campaign_id, status, page).await
    }

    async fn import_errors(
        &self,
        outreach_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ImportErrorRecord)>> {
        crate::sqlite_outreach::import_errors(&self.pool, outreach_id, after, limit).await
    }

    async fn suppressed_addresses(&self, sender_id: Option<Uuid>) -> Result<HashSet<String>> {
        crate::sqlite_outreach::suppressed_addresses(&self.pool, sender_id).await
    }

    async fn add_suppression(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
    ) -> Result<bool> {
        crate::sqlite_outreach::add_suppression(&self.pool, address, sender_id, reason).await
    }

    async fn suppressed_among(
        &self,
        sender_id: Uuid,
        addresses: &[String],
    ) -> Result<HashSet<String>> {
        crate::sqlite_conversation::suppressed_among(&self.pool, sender_id, addresses).await
    }

    async fn suppression_for(&self, address: &str, sender_id: Uuid) -> Result<Option<Suppression>> {
        crate::sqlite_conversation::suppression_for(&self.pool, address, sender_id).await
    }

    async fn list_suppressions(
        &self,
        address: Option<&str>,
        page: Page,
    ) -> Result<Listing<Suppression>> {
        crate::sqlite_conversation::list_suppressions(&self.pool, address, page).await
    }

    async fn get_suppression(&self, id: Uuid) -> Result<Suppression> {
        crate::sqlite_conversation::get_suppression(&self.pool, id).await
    }

    async fn delete_suppression(&self, id: Uuid) -> Result<()> {
        crate::sqlite_conversation::delete_suppression(&self.pool, id).await
    }

    async fn remove_suppression(&self, address: &str, sender_id: Option<Uuid>) -> Result<bool> {
        crate::sqlite_conversation::remove_suppression(&self.pool, address, sender_id).await
    }

    async fn skip_pending_for_address(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: SkipReason,
        now: Timestamp,
    ) -> Result<u64> {
        crate::sqlite_conversation::skip_pending_for_address(
            &self.pool, address, sender_id, reason, now,
        )
        .await
    }

    async fn find_sender(&self, channel: Channel, address: &str) -> Result<Option<Sender>> {
        crate::sqlite_conversation::find_sender(&self.pool, channel, address).await
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
        crate::sqlite_dispatch::get_recipient(&self.pool, outreach_id, recipient_id).await
    }

    async fn receive_message(&self, msg: &InboundMessage) -> Result<Received> {
        crate::sqlite_conversation::receive_message(&self.pool, msg).await
    }

    async fn add_outbound(&self, msg: &OutboundRecord) -> Result<Message> {
        crate::sqlite_conversation::add_outbound(&self.pool, msg).await
    }

    async fn get_conversation(&self, id: Uuid) -> Result<Conversation> {
        crate::sqlite_conversation::get_conversation(&self.pool, id).await
    }

    async fn list_conversations(
        &self,
        inbox_id: Uuid,
        page: Page,
    ) -> Result<Listing<Conversation>> {
        crate::sqlite_conversation::list_conversations(&self.pool, inbox_id, page).await
    }

    async fn conversation_messages(
        &self,
        conversation_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        crate::sqlite_conversation::conversation_messages(&self.pool, conversation_id, after, limit)
            .await
    }

    async fn get_customer(&self, id: Uuid) -> Result<Customer> {
        crate::sqlite_conversation::get_customer(&self.pool, id).await
    }

    async fn find_customer(&self, address: &str) -> Result<Option<Customer>> {
        crate::sqlite_conversation::find_customer(&self.pool, address).await
    }

    async fn customer_messages(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        crate::sqlite_conversation::customer_messages(&self.pool, customer_id, after, limit).await
    }

    async fn apply_status(&self, report: &StatusReport) -> Result<StatusApplied> {
        crate::sqlite_conversation::apply_status(&self.pool, report).await
    }

    async fn purge_kept_status_reports(&self, before: Timestamp) -> Result<u64> {
        crate::sqlite_conversation::purge_kept_status_reports(&self.pool, before).await
    }

    async fn live_outreaches(&self) -> Result<Vec<LiveOutreach>> {
        crate::sqlite_dispatch::live_outreaches(&self.pool).await
    }

    async fn outreach_status(&self, id: Uuid) -> Result<OutreachStatus> {
        crate::sqlite_dispatch::outreach_status(&self.pool, id).await
    }

    async fn start_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        crate::sqlite_dispatch::start_outreach(&self.pool, id, now).await
    }

    async fn complete_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        crate::sqlite_dispatch::complete_outreach(&self.pool, id, now).await
    }

    async fn expire_pending(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        crate::sqlite_dispatch::expire_pending(&self.pool, id, now).await
    }

    async fn stop_outreach(&self, id: Uuid, now: Timestamp) -> Result<Outreach> {
        crate::sqlite_dispatch::stop_outreach(&self.pool, id, now).await
    }

    async fn retry_failed(&self, id: Uuid, now: Timestamp) -> Result<u64> {
        crate::sqlite_dispatch::retry_failed(&self.pool, id, now).await
    }

    async fn claim_due(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedRecipient>> {
        crate::sqlite_dispatch::claim_due(&self.pool, outreach_id, now, lease_until, limit).await
    }

    async fn record_results_with_messages(
        &self,
        now: Timestamp,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> Result<()> {
        crate::sqlite_dispatch::record_results(&self.pool, now, results, sent).await
    }

    async fn recover_expired_leases(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        policy: CrashPolicy,
    ) -> Result<u64> {
        crate::sqlite_dispatch::recover_expired_leases(&self.pool, outreach_id, now, policy).await
    }

    async fn outreach_progress(&self, id: Uuid) -> Result<Progress> {
        let mut conn = self.pool.acquire().await?;
        crate::sqlite_dispatch::progress(&mut conn, id).await
    }

    async fn list_recipients(
        &self,
        outreach_id: Uuid,
        state: Option<DeliveryState>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>> {
        crate::sqlite_dispatch::list_recipients(&self.pool, outreach_id, state, after, limit).await
    }

    async fn recipient_phones(&self, after: i64, limit: u32) -> Result<Vec<RecipientPhone>> {
        crate::audit::sqlite::recipient_phones(&self.pool, after, limit).await
    }

    async fn stored_phones(
        &self,
        table: PhoneTable,
        after: Uuid,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>> {
        crate::audit::sqlite::stored_phones(&self.pool, table, after, limit).await
    }
}

async fn check_campaign_references(
    tx: &mut Transaction<'static, Sqlite>,
    spec: &CampaignSpec,
) -> Result<()> {
    if let Some(sender_id) = spec.sender_id
        && !exists(tx, "SELECT 1 FROM senders WHERE id = $1", sender_id).await?
    {
        return Err(common::missing("sender_id", "sender", sender_id));
    }
    if !exists(tx, "SELECT 1 FROM answers WHERE id = $1", spec.answer_id).await? {
        return Err(common::missing("answer_id", "answer", spec.answer_id));
    }
    Ok(())
}
