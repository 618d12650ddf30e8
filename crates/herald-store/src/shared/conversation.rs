// Customers, conversations, messages, status reports and the opt-out list. Written once for
// both backends: `sqlite/conversation.rs` and `postgres/conversation.rs` include this file. What
// they hold themselves is what really differs: creating a customer (`customer_id`), writing a
// batch's proactive messages (`record_messages`), skipping the pending recipients of an
// opted-out address (`skip_pending`), the status-report lock (`lock_report`) and how a list of
// strings is bound (`text_list`, `in_list!`).

use super::{Backend, DbConn};
use crate::Ts;
use crate::conversation::{
    self, AttributionRow, Conversation, ConversationGlance, ConversationStatus, Customer,
    CustomerRow, InboundMessage, KeptRow, Message, Outbound, OutboundRecord, Received, SentMessage,
    StatusApplied, StatusReport, Suppression, SuppressionRow,
};
use crate::{Result, StoreError, common};
use async_trait::async_trait;
use herald_core::outreach::{DeliveryState, SkipReason};
use herald_core::{Listing, Page};
use jiff::Timestamp;
use std::collections::HashSet;
use uuid::Uuid;

// ---------------------------------------------------------------- conversations

/// The conversation of the sender and the customer, if any.
pub(super) async fn conversation_of(
    conn: &mut DbConn,
    sender_id: Uuid,
    customer_id: Uuid,
) -> Result<Option<Conversation>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        conversation_cols!(),
        " FROM conversations c JOIN customers cu ON cu.id = c.customer_id \
         WHERE c.sender_id = $1 AND c.customer_id = $2"
    ))
    .bind(sender_id)
    .bind(customer_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| conversation::conversation_row(&r)?.parse())
        .transpose()
}

pub(super) fn conversation_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        entity: "conversation",
        id,
    }
}

// ---------------------------------------------------------------- timelines

/// `created_at` of the message `after` names, which must be on the timeline being read.
pub(super) async fn cursor(
    conn: &mut DbConn,
    after: Option<Uuid>,
    customer_id: Uuid,
) -> Result<Option<Ts>> {
    let Some(after) = after else { return Ok(None) };
    let (created_us,): (Ts,) =
        sqlx::query_as("SELECT created_at FROM messages WHERE id = $1 AND customer_id = $2")
            .bind(after)
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "message",
                id: after,
            })?;
    Ok(Some(created_us))
}

// ---------------------------------------------------------------- inbound

/// The message received before with this provider id, as a duplicate.
pub(super) async fn received_before(conn: &mut DbConn, pid: &str) -> Result<Option<Received>> {
    let Some(row) = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages WHERE direction = 'inbound' AND provider_message_id = $1"
    ))
    .bind(pid)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let message = conversation::message_row(&row)?.parse()?;
    let conversation = conversation_of(conn, message.sender_id, message.customer_id)
        .await?
        .ok_or_else(|| {
            common::corrupt(
                "message",
                message.id,
                "it has no conversation of its sender and customer",
            )
        })?;
    Ok(Some(Received {
        duplicate: true,
        attributed: conversation::attributed_of(&message),
        conversation,
        message,
    }))
}

/// The newest proactive message since `$3`.
pub(super) const ATTRIBUTION_IN_WINDOW: &str = concat!(
    attribution_select!(),
    " AND created_at >= $3 ORDER BY created_at DESC, id DESC LIMIT 1"
);

/// The proactive message a reply answers: the one `in_reply_to` names if the sender sent it to
/// the customer, else the newest one since `attribute_since`.
pub(super) async fn attribute(
    conn: &mut DbConn,
    customer_id: Uuid,
    msg: &InboundMessage,
) -> Result<Option<(Uuid, Uuid, i64)>> {
    if let Some((outreach_id, recipient_id)) = msg.in_reply_to {
        let row: Option<AttributionRow> = sqlx::query_as(concat!(
            attribution_select!(),
            " AND outreach_id = $3 AND recipient_id = $4 ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(customer_id)
        .bind(msg.sender_id)
        .bind(outreach_id)
        .bind(recipient_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(found) = conversation::attribution(row) {
            return Ok(Some(found));
        }
    }
    let row: Option<AttributionRow> = sqlx::query_as(ATTRIBUTION_IN_WINDOW)
        .bind(customer_id)
        .bind(msg.sender_id)
        .bind(Ts::new(msg.attribute_since))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(conversation::attribution(row))
}

/// The attributed recipient becomes `replied`, if its state allows; the customer takes the
/// name its row gave, if they have none yet.
pub(super) async fn mark_replied(
    conn: &mut DbConn,
    customer_id: Uuid,
    outreach_id: Uuid,
    recipient_id: i64,
    at_us: Ts,
) -> Result<()> {
    let row: Option<(String, String)> = sqlx::query_as(concat!(
        "SELECT state, variables FROM recipients WHERE id = $1 AND outreach_id = $2",
        for_update!()
    ))
    .bind(recipient_id)
    .bind(outreach_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((state, variables)) = row else {
        return Ok(());
    };
    // The customer's name as the list wrote it, for the inbox; a name they gave later (a
    // chat's onboarding) is theirs and stays.
    if let Some(name) = conversation::name_in_variables(&variables) {
        sqlx::query("UPDATE customers SET name = $1 WHERE id = $2 AND name IS NULL")
            .bind(name)
            .bind(customer_id)
            .execute(&mut *conn)
            .await?;
    }
    let state = conversation::stored_state("recipient", recipient_id.to_string(), &state)?;
    if state.apply_callback(DeliveryState::Replied).is_some() {
        sqlx::query("UPDATE recipients SET state = 'replied', updated_at = $2 WHERE id = $1")
            .bind(recipient_id)
            .bind(at_us)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- status reports

pub(super) async fn find_outbound(conn: &mut DbConn, pid: &str) -> Result<Option<Outbound>> {
    let row: Option<(Uuid, String, Option<Uuid>, Option<i64>)> = sqlx::query_as(concat!(
        "SELECT id, status, outreach_id, recipient_id FROM messages \
         WHERE direction = 'outbound' AND provider_message_id = $1",
        for_update!()
    ))
    .bind(pid)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id, status, outreach_id, recipient_id)| Outbound {
        id,
        status,
        outreach_id,
        recipient_id,
    }))
}

/// Applies a report to its message and, for a proactive one, its recipient. Whether anything
/// changed.
pub(super) async fn apply_to(
    conn: &mut DbConn,
    m: &Outbound,
    report: &StatusReport,
) -> Result<bool> {
    let mut changed = false;
    let keeps = conversation::keeps_error(report.state);
    if let Some(to) = conversation::callback("message", m.id.to_string(), &m.status, report)? {
        sqlx::query("UPDATE messages SET status = $2, error_code = $3 WHERE id = $1")
            .bind(m.id)
            .bind(to.as_str())
            .bind(report.error_code.as_deref().filter(|_| keeps))
            .execute(&mut *conn)
            .await?;
        changed = true;
    }
    if let (Some(outreach_id), Some(recipient_id)) = (m.outreach_id, m.recipient_id) {
        let state: Option<(String,)> = sqlx::query_as(concat!(
            "SELECT state FROM recipients WHERE id = $1 AND outreach_id = $2",
            for_update!()
        ))
        .bind(recipient_id)
        .bind(outreach_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((state,)) = state
            && let Some(to) =
                conversation::callback("recipient", recipient_id.to_string(), &state, report)?
        {
            sqlx::query(
                "UPDATE recipients SET state = $2, error_code = $3, error_message = $4, \
                 updated_at = $5 WHERE id = $1",
            )
            .bind(recipient_id)
            .bind(to.as_str())
            .bind(report.error_code.as_deref().filter(|_| keeps))
            .bind(report.error_message.as_deref().filter(|_| keeps))
            .bind(Ts::new(report.at))
            .execute(&mut *conn)
            .await?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Applies the reports kept for these provider ids (their messages were just recorded), in the
/// order they were made, and forgets them.
pub(super) async fn apply_kept(conn: &mut DbConn, ids: &[&str]) -> Result<()> {
    let rows: Vec<KeptRow> = sqlx::query_as(concat!(
        "SELECT provider_message_id, state, error_code, error_message, at FROM status_reports \
         WHERE provider_message_id ",
        in_list!("$1"),
        " ORDER BY at, provider_message_id, state"
    ))
    .bind(text_list(ids))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut done = Vec::new();
    for row in rows {
        let report = conversation::kept_report(row)?;
        if let Some(m) = find_outbound(conn, &report.provider_message_id).await? {
            apply_to(conn, &m, &report).await?;
            done.push(report.provider_message_id);
        }
    }
    sqlx::query(concat!(
        "DELETE FROM status_reports WHERE provider_message_id ",
        in_list!("$1")
    ))
    .bind(text_list(&done))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl crate::Suppressions for Backend {
    async fn suppressed_addresses(&self, sender_id: Option<Uuid>) -> Result<HashSet<String>> {
        let pool = &self.pool;
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT address FROM suppressions WHERE sender_id IS NULL OR sender_id = $1",
        )
        .bind(sender_id)
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    async fn add_suppression(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
    ) -> Result<bool> {
        let pool = &self.pool;
        let (_, now_us) = common::now();
        let done = sqlx::query(
            "INSERT INTO suppressions (id, address, sender_id, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(address)
        .bind(sender_id)
        .bind(reason)
        .bind(now_us)
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppressed_among(
        &self,
        sender_id: Uuid,
        addresses: &[String],
    ) -> Result<HashSet<String>> {
        let pool = &self.pool;
        if addresses.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<(String,)> = sqlx::query_as(concat!(
            "SELECT DISTINCT address FROM suppressions WHERE address ",
            in_list!("$1"),
            " AND (sender_id IS NULL OR sender_id = $2)"
        ))
        .bind(text_list(addresses))
        .bind(sender_id)
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    async fn contacts_since(
        &self,
        addresses: &[String],
        since: Timestamp,
    ) -> Result<std::collections::HashMap<String, u64>> {
        if addresses.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT c.address, count(*) FROM customers c JOIN messages m ON m.customer_id = c.id \
             WHERE c.address ",
            in_list!("$1"),
            " AND m.author = 'outreach' AND m.created_at >= $2 GROUP BY c.address"
        ))
        .bind(text_list(addresses))
        .bind(Ts::new(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(a, n)| (a, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn campaign_contacts_among(
        &self,
        campaign_id: Uuid,
        addresses: &[String],
        since: Timestamp,
    ) -> Result<u64> {
        if addresses.is_empty() {
            return Ok(0);
        }
        let (n,): (i64,) = sqlx::query_as(concat!(
            "SELECT count(DISTINCT c.address) FROM customers c \
             JOIN messages m ON m.customer_id = c.id WHERE c.address ",
            in_list!("$1"),
            " AND m.author = 'outreach' AND m.campaign_id = $2 AND m.created_at >= $3"
        ))
        .bind(text_list(addresses))
        .bind(campaign_id)
        .bind(Ts::new(since))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn suppression_for(&self, address: &str, sender_id: Uuid) -> Result<Option<Suppression>> {
        let pool = &self.pool;
        // The sender's own first: `sender_id IS NULL` is false (0 on SQLite) for it.
        let row: Option<SuppressionRow> = sqlx::query_as(concat!(
            "SELECT ",
            suppression_cols!(),
            " FROM suppressions WHERE address = $1 AND (sender_id = $2 OR sender_id IS NULL) \
             ORDER BY sender_id IS NULL LIMIT 1"
        ))
        .bind(address)
        .bind(sender_id)
        .fetch_optional(pool)
        .await?;
        row.map(conversation::suppression).transpose()
    }

    async fn list_suppressions(
        &self,
        address: Option<&str>,
        page: Page,
    ) -> Result<Listing<Suppression>> {
        let pool = &self.pool;
        let rows: Vec<SuppressionRow> = sqlx::query_as(concat!(
            "SELECT ",
            suppression_cols!(),
            " FROM suppressions WHERE ($1 IS NULL OR address = $1) AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(address)
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(pool)
        .await?;
        let items = rows
            .into_iter()
            .map(conversation::suppression)
            .collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |s| s.id))
    }

    async fn get_suppression(&self, id: Uuid) -> Result<Suppression> {
        let pool = &self.pool;
        let row: SuppressionRow = sqlx::query_as(concat!(
            "SELECT ",
            suppression_cols!(),
            " FROM suppressions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "suppression",
            id,
        })?;
        conversation::suppression(row)
    }

    async fn delete_suppression(&self, id: Uuid) -> Result<()> {
        let pool = &self.pool;
        let done = sqlx::query("DELETE FROM suppressions WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "suppression",
                id,
            });
        }
        Ok(())
    }

    async fn remove_suppression(&self, address: &str, sender_id: Option<Uuid>) -> Result<bool> {
        let pool = &self.pool;
        // NULL compares equal to NULL here: None removes the one for every sender only.
        let done = sqlx::query(concat!(
            "DELETE FROM suppressions WHERE address = $1 AND sender_id ",
            is_same!(),
            " $2"
        ))
        .bind(address)
        .bind(sender_id)
        .execute(pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn skip_pending_for_address(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: SkipReason,
        now: Timestamp,
    ) -> Result<u64> {
        skip_pending(&self.pool, address, sender_id, reason, Ts::new(now)).await
    }
}

#[async_trait]
impl crate::Conversations for Backend {
    async fn receive_message(&self, msg: &InboundMessage) -> Result<Received> {
        let mut tx = self.write().await?;
        if let Some(pid) = &msg.provider_message_id
            && let Some(duplicate) = received_before(&mut tx, pid).await?
        {
            return Ok(duplicate);
        }
        let (channel, inbox_id): (String, Uuid) = sqlx::query_as(concat!(
            "SELECT channel, inbox_id FROM senders WHERE id = $1",
            for_share!()
        ))
        .bind(msg.sender_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "sender",
            id: msg.sender_id,
        })?;
        let at_us = Ts::new(msg.received_at);
        let customer_id = customer_id(&mut tx, &msg.from, at_us).await?;
        // An unauthenticated sender's message is kept but answers no outreach.
        let attributed = if msg.unverified_sender {
            None
        } else {
            attribute(&mut tx, customer_id, msg).await?
        };
        // First of the writes: on PostgreSQL a replay racing this message waits here for its
        // commit.
        let row = sqlx::query(concat!(
            "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, \
             from_address, to_address, subject, body, campaign_id, outreach_id, recipient_id, \
             provider_message_id, status, created_at, unverified_sender) \
             VALUES ($1, $2, $3, 'inbound', 'customer', $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     'received', $13, $14) \
             ON CONFLICT DO NOTHING RETURNING ",
            message_cols!()
        ))
        .bind(Uuid::now_v7())
        .bind(customer_id)
        .bind(msg.sender_id)
        .bind(&channel)
        .bind(&msg.from)
        .bind(&msg.to)
        .bind(&msg.subject)
        .bind(&msg.body)
        .bind(attributed.map(|a| a.0))
        .bind(attributed.map(|a| a.1))
        .bind(attributed.map(|a| a.2))
        .bind(&msg.provider_message_id)
        .bind(at_us)
        .bind(msg.unverified_sender)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Received meanwhile by another transaction (on PostgreSQL; SQLite has one writer):
            // answer as the duplicate it is.
            tx.rollback().await?;
            let mut conn = self.pool.acquire().await?;
            let pid = msg.provider_message_id.as_deref().unwrap_or_default();
            return received_before(&mut conn, pid).await?.ok_or_else(|| {
                StoreError::Conflict(format!("message {pid} was received twice at once"))
            });
        };
        let message = conversation::message_row(&row)?.parse()?;
        if let Some((_, outreach_id, recipient_id)) = attributed {
            mark_replied(&mut tx, customer_id, outreach_id, recipient_id, at_us).await?;
        }
        sqlx::query(concat!(
            "INSERT INTO conversations (id, inbox_id, sender_id, customer_id, channel, campaign_id, \
             outreach_id, created_at, last_message_at, last_inbound_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8) \
             ON CONFLICT (sender_id, customer_id) DO UPDATE SET \
               inbox_id = excluded.inbox_id, channel = excluded.channel, status = 'open', \
               last_inbound_at = ",
            greatest!(
                "coalesce(conversations.last_inbound_at, excluded.last_inbound_at)",
                "excluded.last_inbound_at"
            ),
            ", \
               campaign_id = coalesce(excluded.campaign_id, conversations.campaign_id), \
               outreach_id = coalesce(excluded.outreach_id, conversations.outreach_id), \
               last_message_at = ",
            greatest!("conversations.last_message_at", "excluded.last_message_at")
        ))
        .bind(Uuid::now_v7())
        .bind(inbox_id)
        .bind(msg.sender_id)
        .bind(customer_id)
        .bind(&channel)
        .bind(attributed.map(|a| a.0))
        .bind(attributed.map(|a| a.1))
        .bind(at_us)
        .execute(&mut *tx)
        .await?;
        let conversation = conversation_of(&mut tx, msg.sender_id, customer_id)
            .await?
            .ok_or_else(|| common::corrupt("sender", msg.sender_id, "its conversation vanished"))?;
        tx.commit().await?;
        tracing::debug!(
            conversation_id = %conversation.id,
            message_id = %message.id,
            attributed = attributed.is_some(),
            "received message"
        );
        Ok(Received {
            duplicate: false,
            conversation,
            message,
            attributed,
        })
    }

    async fn add_outbound(&self, msg: &OutboundRecord) -> Result<Message> {
        conversation::check_outbound_author(msg.author)?;
        let mut tx = self.write().await?;
        let (customer_id, sender_id, channel, from, to): (Uuid, Uuid, String, String, String) =
            sqlx::query_as(concat!(
                "SELECT c.customer_id, c.sender_id, c.channel, s.address, cu.address \
                 FROM conversations c JOIN senders s ON s.id = c.sender_id \
                 JOIN customers cu ON cu.id = c.customer_id WHERE c.id = $1",
                for_update_of!("c")
            ))
            .bind(msg.conversation_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| conversation_not_found(msg.conversation_id))?;
        let at_us = Ts::new(msg.sent_at);
        let row = sqlx::query(concat!(
            "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, \
             from_address, to_address, subject, body, provider_message_id, status, created_at, \
             agent_id) \
             VALUES ($1, $2, $3, 'outbound', $4, $5, $6, $7, $8, $9, $10, 'sent', $11, $12) \
             RETURNING ",
            message_cols!()
        ))
        .bind(Uuid::now_v7())
        .bind(customer_id)
        .bind(sender_id)
        .bind(msg.author.as_str())
        .bind(&channel)
        .bind(&from)
        .bind(&to)
        .bind(&msg.subject)
        .bind(&msg.body)
        .bind(&msg.provider_message_id)
        .bind(at_us)
        .bind(msg.agent_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conversation::outbound_violation(e, msg))?;
        let message = conversation::message_row(&row)?.parse()?;
        sqlx::query(concat!(
            "UPDATE conversations SET last_message_at = ",
            greatest!("last_message_at", "$2"),
            " WHERE id = $1"
        ))
        .bind(msg.conversation_id)
        .bind(at_us)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(message)
    }

    async fn get_conversation(&self, id: Uuid) -> Result<Conversation> {
        let pool = &self.pool;
        let row = sqlx::query(concat!(
            "SELECT ",
            conversation_cols!(),
            " FROM conversations c JOIN customers cu ON cu.id = c.customer_id WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| conversation_not_found(id))?;
        conversation::conversation_row(&row)?.parse()
    }

    async fn set_conversation_status(
        &self,
        id: Uuid,
        status: ConversationStatus,
    ) -> Result<Conversation> {
        let done = sqlx::query("UPDATE conversations SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(conversation_not_found(id));
        }
        self.get_conversation(id).await
    }

    async fn assign_conversation(&self, id: Uuid, assignee: Option<Uuid>) -> Result<Conversation> {
        if let Some(user) = assignee {
            let known: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
            if known.is_none() {
                return Err(StoreError::Invalid {
                    field: "assignee_id",
                    message: format!("no user has the id {user}"),
                });
            }
        }
        let done = sqlx::query("UPDATE conversations SET assignee_id = $2 WHERE id = $1")
            .bind(id)
            .bind(assignee)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(conversation_not_found(id));
        }
        self.get_conversation(id).await
    }

    async fn mark_conversation_read(&self, id: Uuid, user_id: Uuid, at: Timestamp) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO conversation_reads (conversation_id, user_id, read_at) \
             VALUES ($1, $2, $3) ON CONFLICT (conversation_id, user_id) DO UPDATE SET read_at = ",
            greatest!("conversation_reads.read_at", "excluded.read_at")
        ))
        .bind(id)
        .bind(user_id)
        .bind(Ts::new(at))
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => conversation_not_found(id),
            e => e.into(),
        })?;
        Ok(())
    }

    async fn conversation_glances(
        &self,
        ids: &[Uuid],
        user_id: Uuid,
    ) -> Result<std::collections::HashMap<Uuid, ConversationGlance>> {
        let mut conn = self.pool.acquire().await?;
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        // One indexed read per conversation (an inbox page has at most a few dozen): the
        // customer's messages after the user's read, and the newest message, both ranges of
        // `messages_timeline`.
        for &id in ids {
            let row: Option<(i64, Option<String>)> = sqlx::query_as(
                "SELECT \
                   (SELECT count(*) FROM messages m \
                     WHERE m.customer_id = c.customer_id AND m.sender_id = c.sender_id \
                       AND m.direction = 'inbound' \
                       AND (r.read_at IS NULL OR m.created_at > r.read_at)), \
                   (SELECT m.body FROM messages m \
                     WHERE m.customer_id = c.customer_id AND m.sender_id = c.sender_id \
                     ORDER BY m.created_at DESC, m.id DESC LIMIT 1) \
                 FROM conversations c LEFT JOIN conversation_reads r \
                   ON r.conversation_id = c.id AND r.user_id = $2 \
                 WHERE c.id = $1",
            )
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some((unread, preview)) = row {
                out.insert(
                    id,
                    ConversationGlance {
                        unread: u64::try_from(unread).unwrap_or(0),
                        preview,
                    },
                );
            }
        }
        Ok(out)
    }

    async fn unread_by_inbox(&self, user_id: Uuid) -> Result<std::collections::HashMap<Uuid, u64>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT c.inbox_id, count(*) FROM conversations c \
             LEFT JOIN conversation_reads r ON r.conversation_id = c.id AND r.user_id = $1 \
             WHERE c.status = 'open' AND c.last_inbound_at IS NOT NULL \
               AND (r.read_at IS NULL OR c.last_inbound_at > r.read_at) \
             GROUP BY c.inbox_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(inbox, n)| (inbox, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn list_conversations(
        &self,
        inbox_id: Uuid,
        page: Page,
    ) -> Result<Listing<Conversation>> {
        let pool = &self.pool;
        // Two statements rather than `$3 IS NULL OR …`, so that the cursor is a range of
        // `conversations_inbox_recent` and a late page does not read the pages before it.
        let query = match page.after {
            None => sqlx::query(concat!(
                "SELECT ",
                conversation_cols!(),
                " FROM conversations c JOIN customers cu ON cu.id = c.customer_id \
                 WHERE c.inbox_id = $1 ORDER BY c.last_message_at DESC, c.id DESC LIMIT $2"
            )),
            Some(_) => sqlx::query(concat!(
                "SELECT ",
                conversation_cols!(),
                " FROM conversations c JOIN customers cu ON cu.id = c.customer_id \
                 WHERE c.inbox_id = $1 AND (c.last_message_at, c.id) < \
                       (SELECT last_message_at, id FROM conversations WHERE id = $3) \
                 ORDER BY c.last_message_at DESC, c.id DESC LIMIT $2"
            )),
        };
        let query = query.bind(inbox_id).bind(common::fetch_count(&page));
        let query = match page.after {
            None => query,
            Some(after) => query.bind(after),
        };
        let rows = query.fetch_all(pool).await?;
        let items = rows
            .iter()
            .map(|r| conversation::conversation_row(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |c| c.id))
    }

    async fn conversation_messages(
        &self,
        conversation_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let pool = &self.pool;
        let mut conn = pool.acquire().await?;
        let (customer_id, sender_id): (Uuid, Uuid) =
            sqlx::query_as("SELECT customer_id, sender_id FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| conversation_not_found(conversation_id))?;
        let from_us = cursor(&mut conn, after, customer_id).await?;
        // With a cursor, a range of `messages_timeline`.
        let query = match from_us {
            None => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages WHERE customer_id = $1 AND sender_id = $2 \
                 ORDER BY created_at, id LIMIT $3"
            )),
            Some(_) => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages WHERE customer_id = $1 AND sender_id = $2 \
                   AND (created_at, id) > ($4, $5) ORDER BY created_at, id LIMIT $3"
            )),
        };
        let query = query
            .bind(customer_id)
            .bind(sender_id)
            .bind(i64::from(limit));
        let query = match from_us {
            None => query,
            Some(from_us) => query.bind(from_us).bind(after),
        };
        let rows = query.fetch_all(&mut *conn).await?;
        conversation::messages(&rows)
    }

    async fn get_customer(&self, id: Uuid) -> Result<Customer> {
        let pool = &self.pool;
        let row: CustomerRow = sqlx::query_as(concat!(
            "SELECT ",
            customer_cols!(),
            " FROM customers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "customer",
            id,
        })?;
        conversation::customer(row)
    }

    async fn set_customer_name(&self, id: Uuid, name: &str) -> Result<()> {
        let done = sqlx::query("UPDATE customers SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "customer",
                id,
            });
        }
        Ok(())
    }

    async fn find_customer(&self, address: &str) -> Result<Option<Customer>> {
        let pool = &self.pool;
        let row: Option<CustomerRow> = sqlx::query_as(concat!(
            "SELECT ",
            customer_cols!(),
            " FROM customers WHERE address = $1"
        ))
        .bind(address)
        .fetch_optional(pool)
        .await?;
        row.map(conversation::customer).transpose()
    }

    async fn customer_messages(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let pool = &self.pool;
        let mut conn = pool.acquire().await?;
        let from_us = cursor(&mut conn, after, customer_id).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages WHERE customer_id = $1 AND ($2 IS NULL OR (created_at, id) > ($2, $3)) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(customer_id)
        .bind(from_us)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        drop(conn);
        if rows.is_empty() && after.is_none() {
            self.get_customer(customer_id).await?;
        }
        conversation::messages(&rows)
    }

    async fn apply_status(&self, report: &StatusReport) -> Result<StatusApplied> {
        if !conversation::reportable(report.state) {
            return Ok(StatusApplied::Unchanged);
        }
        let mut tx = self.write().await?;
        lock_report(&mut tx, &report.provider_message_id).await?;
        let applied = match find_outbound(&mut tx, &report.provider_message_id).await? {
            None => {
                sqlx::query(
                    "INSERT INTO status_reports (provider_message_id, state, error_code, \
                     error_message, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&report.provider_message_id)
                .bind(report.state.as_str())
                .bind(&report.error_code)
                .bind(&report.error_message)
                .bind(Ts::new(report.at))
                .execute(&mut *tx)
                .await?;
                StatusApplied::Kept
            }
            Some(m) => {
                if apply_to(&mut tx, &m, report).await? {
                    StatusApplied::Applied
                } else {
                    StatusApplied::Unchanged
                }
            }
        };
        tx.commit().await?;
        Ok(applied)
    }

    async fn purge_kept_status_reports(&self, before: Timestamp) -> Result<u64> {
        let pool = &self.pool;
        let done = sqlx::query("DELETE FROM status_reports WHERE at < $1")
            .bind(Ts::new(before))
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    }
}
