//! Customers, conversations and their messages; provider status callbacks; the opt-out list.
//!
//! A **customer** is one address (an E.164 number or a normalized email address), created the
//! first time Herald messages it or it writes in. A **conversation** is the thread between one
//! customer and one sender, and belongs to the sender's inbox. Its timeline is every message
//! between the two, the proactive outreach messages included (those are recorded when the
//! provider accepts them, in the same transaction as the delivery result).
//!
//! A conversation is created when the customer first writes (or an agent first writes to
//! them): an outreach to a million customers does not put a million conversations in the
//! inbox, but the proactive message is on each customer's timeline, and on the conversation's
//! once it exists.

use herald_core::Channel;
use herald_core::outreach::DeliveryState;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Someone Herald has messaged or who wrote in, keyed by address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    pub id: Uuid,
    /// E.164 (`+15551234567`) or a normalized email address.
    pub address: String,
    /// The name the customer gave (a chat's onboarding), if any.
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer (an outreach, an agent, or an automatic reply).
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Who wrote an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Author {
    /// The customer (every inbound message).
    Customer,
    /// An outreach's proactive message.
    Outreach,
    /// An agent, through the API or the web UI.
    Agent,
    /// Herald itself (the HELP reply).
    Auto,
}

impl Author {
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Customer => "customer",
            Author::Outreach => "outreach",
            Author::Agent => "agent",
            Author::Auto => "auto",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Author::Customer),
            "outreach" => Some(Author::Outreach),
            "agent" => Some(Author::Agent),
            "auto" => Some(Author::Auto),
            _ => None,
        }
    }
}

/// The thread between one customer and one sender, in the sender's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    pub id: Uuid,
    pub inbox_id: Uuid,
    pub sender_id: Uuid,
    pub customer_id: Uuid,
    pub customer_address: String,
    /// The name the customer gave, if any.
    pub customer_name: Option<String>,
    pub status: ConversationStatus,
    /// The user it is assigned to, if any.
    pub assignee_id: Option<Uuid>,
    /// The newest customer message's time (none before the customer wrote).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_inbound_at: Option<Timestamp>,
    pub channel: Channel,
    /// The campaign the latest attributed reply answered, if any.
    pub campaign_id: Option<Uuid>,
    pub outreach_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The newest message's time: inboxes list conversations newest first.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_message_at: Timestamp,
}

/// Whether a conversation waits for the team (open) or is done (closed). A customer's new
/// message opens it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Closed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(ConversationStatus::Open),
            "closed" => Some(ConversationStatus::Closed),
            _ => None,
        }
    }
}

/// What an inbox list shows of a conversation besides the conversation itself, for one user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationGlance {
    /// The customer's messages since the user last read the conversation.
    pub unread: u64,
    /// The newest message's text.
    pub preview: Option<String>,
}

/// One message on a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub sender_id: Uuid,
    pub direction: Direction,
    pub author: Author,
    pub channel: Channel,
    /// Who sent it: the customer's address (inbound) or the sender's (outbound).
    pub from: String,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub campaign_id: Option<Uuid>,
    pub outreach_id: Option<Uuid>,
    /// The outreach recipient the message was sent to (proactive messages), or whose outreach
    /// message an inbound reply answers (attributed replies).
    pub recipient_id: Option<i64>,
    /// Twilio's MessageSid, the email Message-ID, ... Unique per direction: a replayed inbound
    /// webhook is recognised by it.
    pub provider_message_id: Option<String>,
    /// `received` (inbound), `sent`, `delivered`, `undelivered`, `failed`.
    pub status: String,
    pub error_code: Option<String>,
    /// An inbound email whose `From` the trusted MX did not authenticate: shown, but taken as
    /// anyone's words, not the customer's — it was attributed to nothing and changed no
    /// recipient's state. False for every other message.
    pub unverified_sender: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The user who wrote an agent's answer (none for an answer through the API).
    pub agent_id: Option<Uuid>,
}

/// A proactive message the provider accepted, recorded with its recipient's result
/// ([`crate::Dispatch::record_results_with_messages`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentMessage {
    pub recipient_id: i64,
    pub sender_id: Uuid,
    pub channel: Channel,
    pub campaign_id: Uuid,
    pub outreach_id: Uuid,
    /// The sender's address.
    pub from: String,
    /// The recipient's address (the customer's key).
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub provider_message_id: Option<String>,
}

/// A message from a customer to a sender ([`crate::Conversations::receive_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub sender_id: Uuid,
    /// The customer's address (E.164 or normalized email).
    pub from: String,
    /// The sender's address as the customer wrote to it.
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    /// MessageSid, email Message-ID: a second message with the same id (a replayed webhook, a
    /// re-delivered email) changes nothing.
    pub provider_message_id: Option<String>,
    pub received_at: Timestamp,
    /// Replies are attributed to the newest proactive message the sender sent the customer at
    /// or after this instant (received_at minus the attribution window).
    pub attribute_since: Timestamp,
    /// The proactive message this one answers, when the channel says so (an email's
    /// `In-Reply-To`): (outreach id, recipient id). Used instead of the newest one, whatever its
    /// age, when that recipient was sent from this sender to this customer.
    pub in_reply_to: Option<(Uuid, i64)>,
    /// The sender of the message is not authenticated (an email without a passing
    /// `Authentication-Results` from the trusted MX): it is stored and marked so, but not
    /// attributed (no recipient becomes `replied`, the conversation's campaign stays).
    pub unverified_sender: bool,
}

/// What [`crate::Conversations::receive_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message had been received before: nothing changed, the stored one is returned.
    pub duplicate: bool,
    pub conversation: Conversation,
    pub message: Message,
    /// The proactive message the reply was attributed to: (campaign, outreach, recipient).
    pub attributed: Option<(Uuid, Uuid, i64)>,
}

/// An outbound message outside an outreach: an agent's reply, Herald's HELP answer
/// ([`crate::Conversations::add_outbound`]). Recorded after the provider accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub conversation_id: Uuid,
    pub author: Author,
    /// The user who wrote it (an agent's answer from the web UI).
    pub agent_id: Option<Uuid>,
    pub subject: Option<String>,
    pub body: String,
    pub provider_message_id: Option<String>,
    pub sent_at: Timestamp,
}

/// The address of a chat campaign's sender (see [`crate::ChatSites::chat_sender`]).
pub fn chat_sender_address(campaign_id: Uuid) -> String {
    format!("chat:{campaign_id}")
}

/// The start of a chat: the visitor answered a chat campaign's greeting on a page
/// ([`crate::ChatSites::record_chat_start`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatStart {
    pub conversation_id: Uuid,
    pub site_id: Uuid,
    pub campaign_id: Uuid,
    /// The page the visitor was on.
    pub page_url: String,
    /// The greeting the visitor saw (recorded as the campaign's outbound message).
    pub greeting: String,
    /// When the greeting was shown: before the visitor's first message.
    pub started_at: Timestamp,
}

/// A chat start as stored: the conversation's timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatStartRecord {
    pub id: Uuid,
    pub site_id: Uuid,
    pub campaign_id: Uuid,
    pub page_url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
}

/// A chat campaign's figures for one UTC day (or, added up, for several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatDayFigures {
    /// `YYYY-MM-DD`, UTC.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub day: jiff::civil::Date,
    /// Page views on which the campaign's triggers all held.
    pub eligible: u64,
    /// Greetings shown.
    pub shown: u64,
    /// Greetings the visitor closed.
    pub closed: u64,
    /// Visitors who answered the greeting.
    pub engaged: u64,
    /// Conversations those answers opened in the inbox.
    pub conversations: u64,
}

impl ChatDayFigures {
    /// `other`'s counts added to these.
    pub fn add(&mut self, other: &ChatDayFigures) {
        self.eligible += other.eligible;
        self.shown += other.shown;
        self.closed += other.closed;
        self.engaged += other.engaged;
        self.conversations += other.conversations;
    }
}

/// A provider's report on a message it accepted (Twilio `MessageStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub provider_message_id: String,
    /// `sent`, `delivered`, `undelivered` or `failed` (other Twilio statuses are not reported).
    pub state: DeliveryState,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub at: Timestamp,
}

/// What [`crate::Conversations::apply_status`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    /// The message (and its recipient, for a proactive one) moved to the reported state.
    Applied,
    /// Known message, but the report changes nothing (a replay, or a late report of an earlier
    /// state: `sent` after `delivered`).
    Unchanged,
    /// No message has that id yet (the callback beat the recording of the send): kept, and
    /// applied when the send is recorded.
    Kept,
}

/// An address that must not be messaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suppression {
    pub id: Uuid,
    pub address: String,
    /// Only this sender may not message the address (an SMS STOP, as carriers do); `null` means
    /// no sender may.
    pub sender_id: Option<Uuid>,
    pub reason: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Who added it from the web admin (their email) or the API (`token NAME`); `null` for a
    /// customer's STOP or unsubscribe.
    pub added_by: Option<String>,
}

// ---------------------------------------------------------------- shared by both backends

/// Counts (0 or 1) the email senders at the domain `$1`, in both dialects. The domain must be
/// [`plain_domain`], so that it holds no `LIKE` wildcard.
pub(crate) const SERVES_EMAIL_DOMAIN: &str = "SELECT count(*) FROM (SELECT 1 FROM senders \
     WHERE channel = 'email' AND lower(address) LIKE ('%@' || $1) LIMIT 1) AS s";

/// `domain` lower-cased, if it is a plain domain name (letters, digits, `-`, dots between
/// labels): nothing else can be an email sender's domain.
pub(crate) fn plain_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().to_ascii_lowercase();
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(domain)
}

/// The states a provider's status report may carry (`replied` comes from an inbound message, not
/// a report; the others are Herald's own).
pub(crate) fn reportable(state: DeliveryState) -> bool {
    matches!(
        state,
        DeliveryState::Sent
            | DeliveryState::Delivered
            | DeliveryState::Undelivered
            | DeliveryState::Failed
    )
}

/// Whether a message or recipient in `state` keeps the report's error code and message (else
/// they are cleared: a message that was delivered after all has no error).
pub(crate) fn keeps_error(state: DeliveryState) -> bool {
    matches!(state, DeliveryState::Failed | DeliveryState::Undelivered)
}

/// The proactive messages of `sent` to record: those whose recipient's `Sent` result was applied
/// (`applied`, the recipients the update touched), once per recipient, in the given order.
pub(crate) fn to_record<'a>(applied: &[i64], sent: &'a [SentMessage]) -> Vec<&'a SentMessage> {
    let applied: std::collections::HashSet<i64> = applied.iter().copied().collect();
    let mut seen = std::collections::HashSet::new();
    sent.iter()
        .filter(|m| applied.contains(&m.recipient_id) && seen.insert(m.recipient_id))
        .collect()
}

/// The outbound message a status report names, as the report needs it.
pub(crate) struct Outbound {
    pub id: Uuid,
    pub status: String,
    pub outreach_id: Option<Uuid>,
    pub recipient_id: Option<i64>,
}

/// A delivery state as stored on a message or recipient.
pub(crate) fn stored_state(
    entity: &'static str,
    id: String,
    state: &str,
) -> crate::Result<DeliveryState> {
    state
        .parse()
        .map_err(
            |e: herald_core::outreach::UnknownDeliveryState| crate::StoreError::Corrupt {
                entity,
                id,
                reason: format!("state: {e}"),
            },
        )
}

/// What a report does to a message or recipient in `current` (stored as text): `Some(new
/// state)`, or `None` when it changes nothing.
pub(crate) fn callback(
    entity: &'static str,
    id: String,
    current: &str,
    report: &StatusReport,
) -> crate::Result<Option<DeliveryState>> {
    Ok(stored_state(entity, id, current)?.apply_callback(report.state))
}

/// A `messages` row as selected (its instant as [`crate::Ts`]).
pub(crate) struct MessageRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub sender_id: Uuid,
    pub direction: String,
    pub author: String,
    pub channel: String,
    pub from: String,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub campaign_id: Option<Uuid>,
    pub outreach_id: Option<Uuid>,
    pub recipient_id: Option<i64>,
    pub provider_message_id: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    pub unverified_sender: bool,
    pub created_us: crate::Ts,
    pub agent_id: Option<Uuid>,
}

/// Reads a [`MessageRow`] selected with `message_cols!` (`shared/sql.rs`).
pub(crate) fn message_row<R>(r: &R) -> crate::Result<MessageRow>
where
    R: sqlx::Row,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> crate::Ts: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<crate::Ts>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    use crate::common::col;
    let e = "message";
    let id: Uuid = col(r, e, None, "id")?;
    let i = Some(id);
    Ok(MessageRow {
        id,
        customer_id: col(r, e, i, "customer_id")?,
        sender_id: col(r, e, i, "sender_id")?,
        direction: col(r, e, i, "direction")?,
        author: col(r, e, i, "author")?,
        channel: col(r, e, i, "channel")?,
        from: col(r, e, i, "from_address")?,
        to: col(r, e, i, "to_address")?,
        subject: col(r, e, i, "subject")?,
        body: col(r, e, i, "body")?,
        campaign_id: col(r, e, i, "campaign_id")?,
        outreach_id: col(r, e, i, "outreach_id")?,
        recipient_id: col(r, e, i, "recipient_id")?,
        provider_message_id: col(r, e, i, "provider_message_id")?,
        status: col(r, e, i, "status")?,
        error_code: col(r, e, i, "error_code")?,
        unverified_sender: col(r, e, i, "unverified_sender")?,
        created_us: col(r, e, i, "created_at")?,
        agent_id: col(r, e, i, "agent_id")?,
    })
}

fn channel(entity: &'static str, id: Uuid, s: &str) -> crate::Result<Channel> {
    s.parse()
        .map_err(|e| crate::common::corrupt(entity, id, format!("channel: {e}")))
}

impl MessageRow {
    pub fn parse(self) -> crate::Result<Message> {
        let id = self.id;
        let bad = |reason: String| crate::common::corrupt("message", id, reason);
        Ok(Message {
            id,
            customer_id: self.customer_id,
            sender_id: self.sender_id,
            direction: Direction::parse(&self.direction)
                .ok_or_else(|| bad(format!("direction: `{}`", self.direction)))?,
            author: Author::parse(&self.author)
                .ok_or_else(|| bad(format!("author: `{}`", self.author)))?,
            channel: channel("message", id, &self.channel)?,
            from: self.from,
            to: self.to,
            subject: self.subject,
            body: self.body,
            campaign_id: self.campaign_id,
            outreach_id: self.outreach_id,
            recipient_id: self.recipient_id,
            provider_message_id: self.provider_message_id,
            status: self.status,
            error_code: self.error_code,
            unverified_sender: self.unverified_sender,
            created_at: self.created_us.0,
            agent_id: self.agent_id,
        })
    }
}

/// A `conversations` row joined with its customer's address.
pub(crate) struct ConversationRow {
    pub id: Uuid,
    pub inbox_id: Uuid,
    pub sender_id: Uuid,
    pub customer_id: Uuid,
    pub customer_address: String,
    pub customer_name: Option<String>,
    pub status: String,
    pub assignee_id: Option<Uuid>,
    pub last_inbound_us: Option<crate::Ts>,
    pub channel: String,
    pub campaign_id: Option<Uuid>,
    pub outreach_id: Option<Uuid>,
    pub created_us: crate::Ts,
    pub last_message_us: crate::Ts,
}

pub(crate) fn conversation_row<R>(r: &R) -> crate::Result<ConversationRow>
where
    R: sqlx::Row,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> crate::Ts: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    use crate::common::col;
    let e = "conversation";
    let id: Uuid = col(r, e, None, "id")?;
    let i = Some(id);
    Ok(ConversationRow {
        id,
        inbox_id: col(r, e, i, "inbox_id")?,
        sender_id: col(r, e, i, "sender_id")?,
        customer_id: col(r, e, i, "customer_id")?,
        customer_address: col(r, e, i, "customer_address")?,
        customer_name: col(r, e, i, "customer_name")?,
        status: col(r, e, i, "status")?,
        assignee_id: col(r, e, i, "assignee_id")?,
        last_inbound_us: col(r, e, i, "last_inbound_at")?,
        channel: col(r, e, i, "channel")?,
        campaign_id: col(r, e, i, "campaign_id")?,
        outreach_id: col(r, e, i, "outreach_id")?,
        created_us: col(r, e, i, "created_at")?,
        last_message_us: col(r, e, i, "last_message_at")?,
    })
}

impl ConversationRow {
    pub fn parse(self) -> crate::Result<Conversation> {
        let id = self.id;
        let e = "conversation";
        Ok(Conversation {
            id,
            inbox_id: self.inbox_id,
            sender_id: self.sender_id,
            customer_id: self.customer_id,
            customer_address: self.customer_address,
            customer_name: self.customer_name,
            status: ConversationStatus::parse(&self.status).ok_or_else(|| {
                crate::common::corrupt(e, id, format!("status: `{}`", self.status))
            })?,
            assignee_id: self.assignee_id,
            last_inbound_at: self.last_inbound_us.map(|t| t.0),
            channel: channel(e, id, &self.channel)?,
            campaign_id: self.campaign_id,
            outreach_id: self.outreach_id,
            created_at: self.created_us.0,
            last_message_at: self.last_message_us.0,
        })
    }
}

/// A customer as selected: id, address, created_at.
pub(crate) type CustomerRow = (Uuid, String, Option<String>, crate::Ts);

pub(crate) fn customer((id, address, name, created_us): CustomerRow) -> crate::Result<Customer> {
    Ok(Customer {
        id,
        address,
        name,
        created_at: created_us.0,
    })
}

/// A suppression as selected: id, address, sender_id, reason, created_at.
pub(crate) type SuppressionRow = (
    Uuid,
    String,
    Option<Uuid>,
    String,
    crate::Ts,
    Option<String>,
);

pub(crate) fn suppression(
    (id, address, sender_id, reason, created_us, added_by): SuppressionRow,
) -> crate::Result<Suppression> {
    Ok(Suppression {
        id,
        address,
        sender_id,
        reason,
        created_at: created_us.0,
        added_by,
    })
}

/// A kept status report as selected: provider id, state, error code and message, at.
pub(crate) type KeptRow = (String, String, Option<String>, Option<String>, crate::Ts);

pub(crate) fn kept_report(
    (provider_message_id, state, error_code, error_message, at_us): KeptRow,
) -> crate::Result<StatusReport> {
    let bad = |reason: String| crate::StoreError::Corrupt {
        entity: "status report",
        id: provider_message_id.clone(),
        reason,
    };
    let state = state
        .parse()
        .map_err(|e: herald_core::outreach::UnknownDeliveryState| bad(format!("state: {e}")))?;
    Ok(StatusReport {
        provider_message_id,
        state,
        error_code,
        error_message,
        at: at_us.0,
    })
}

/// The attribution of a reply, as selected from the proactive message it answers: campaign,
/// outreach, recipient (all set on an outreach's message).
pub(crate) type AttributionRow = (Option<Uuid>, Option<Uuid>, Option<i64>);

pub(crate) fn attribution(row: Option<AttributionRow>) -> Option<(Uuid, Uuid, i64)> {
    match row? {
        (Some(c), Some(o), Some(r)) => Some((c, o, r)),
        _ => None,
    }
}

/// What a duplicate inbound message was attributed to when it was first received.
pub(crate) fn attributed_of(m: &Message) -> Option<(Uuid, Uuid, i64)> {
    Some((m.campaign_id?, m.outreach_id?, m.recipient_id?))
}

/// The name a recipient list gave a customer: its `name` (or `full_name`, `customer_name`)
/// column, else `first_name` and `last_name` together; `None` when the row has none.
pub(crate) fn name_in_variables(variables_json: &str) -> Option<String> {
    let vars: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(variables_json).ok()?;
    let get = |key: &str| {
        vars.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let name = match ["name", "full_name", "customer_name"]
        .into_iter()
        .find_map(get)
    {
        Some(name) => name.to_string(),
        None => [get("first_name"), get("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
    };
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    (!name.is_empty()).then_some(name)
}

/// Refuses an outbound message said to be written by the customer.
pub(crate) fn check_outbound_author(author: Author) -> crate::Result<()> {
    if author == Author::Customer {
        return Err(crate::StoreError::Invalid {
            field: "author",
            message: "an outbound message is written by an outreach, an agent or Herald (auto), \
                      not the customer"
                .into(),
        });
    }
    Ok(())
}

/// A timeline's rows, read in order.
pub(crate) fn messages<R>(rows: &[R]) -> crate::Result<Vec<Message>>
where
    R: sqlx::Row,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<Uuid>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> crate::Ts: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<crate::Ts>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    rows.iter().map(|r| message_row(r)?.parse()).collect()
}

/// An outbound message whose provider id is already recorded is refused in words.
pub(crate) fn outbound_violation(e: sqlx::Error, msg: &OutboundRecord) -> crate::StoreError {
    match crate::common::Violation::of(e) {
        crate::common::Violation::Unique(_) => crate::StoreError::Conflict(format!(
            "an outbound message with provider id {} is already recorded",
            msg.provider_message_id.as_deref().unwrap_or_default()
        )),
        v => v.into(),
    }
}

#[cfg(test)]
mod name_tests {
    use super::name_in_variables;

    #[test]
    fn a_lists_name_columns_make_the_customers_name() {
        assert_eq!(
            name_in_variables(r#"{"Name": " Ann Lee ", "first_name": "A"}"#).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(
            name_in_variables(r#"{"first_name": "Ann", "last_name": "Lee"}"#).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(
            name_in_variables(r#"{"first_name": "Ann"}"#).as_deref(),
            Some("Ann")
        );
        assert_eq!(name_in_variables(r#"{"order": "A-1"}"#), None);
        assert_eq!(name_in_variables("not json"), None);
    }
}
