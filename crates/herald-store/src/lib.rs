//! Storage for Herald: one [`Store`] trait, implemented for SQLite (the embedded default) and
//! PostgreSQL (how Herald scales past one machine).

use async_trait::async_trait;
pub use audit::{PhoneTable, RecipientPhone};
pub use conversation::{
    Author, ChatDayFigures, ChatStart, ChatStartRecord, Conversation, ConversationGlance,
    ConversationStatus, Customer, Direction, InboundMessage, Message, OutboundRecord, Received,
    SentMessage, StatusApplied, StatusReport, Suppression,
};
pub use dispatch::{
    ClaimedRecipient, DailyCap, DeliveryResult, Grant, Held, LiveOutreach, Outcome, RecipientRecord,
};
use herald_core::chat::{ChatSettings, ChatSite, ChatSiteSpec};
use herald_core::outreach::{CrashPolicy, DeliveryState, OutreachStatus, Progress};
use herald_core::{
    Answer, AnswerSpec, ApiToken, Campaign, CampaignSpec, Inbox, InboxSpec, Listing, Page, Role,
    Sender, SenderSpec,
};
use jiff::Timestamp;
pub use outreach::{
    HourCount, ImportErrorRecord, ImportSummary, ImportedRecipient, NewOutreach, Outreach,
    OutreachImport, OutreachReport, ReasonCount,
};
use std::collections::HashSet;
use std::sync::Arc;
pub use test_send::{NewTestSend, TestSend, TestSendState};
pub use users::{
    Actor, AuditContext, AuditEntry, Invitation, LoginAttempt, TokenInfo, User, UserAccount,
    UserChange,
};
use uuid::Uuid;

pub mod audit;
mod common;
mod time;
pub use time::Ts;
pub mod conversation;
pub mod dispatch;
pub mod outreach;
pub mod postgres;
// The files of `shared/` are the code both backends share, compiled inside each backend's module
// of the same name (with `include!`). This declaration is never compiled: it is here so that
// rustfmt formats them.
#[cfg(any())]
mod shared;
pub mod sqlite;
pub mod test_send;
pub mod testing;
pub mod users;

/// The store's traits, to call their methods on an `Arc<dyn Store>`:
/// `use herald_store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Accounts, Catalog, ChatSites, Conversations, Dispatch, DispatchStore, Outreaches,
        PhoneAudit, ReplyStore, Schema, Store, Suppressions, TestSends,
    };
}

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What can go wrong in storage, in words the API can pass on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row with that id.
    #[error("no {entity} has id {id}")]
    NotFound { entity: &'static str, id: Uuid },
    /// A uniqueness rule was broken (`a campaign named "X" already exists on sms`).
    #[error("{0}")]
    Conflict(String),
    /// The row is referenced and cannot be deleted (`sender is used by campaigns: A, B`).
    #[error("{0}")]
    InUse(String),
    /// Stored data that no longer parses (should never happen; says which row).
    #[error("stored {entity} {id} is corrupt: {reason}")]
    Corrupt {
        entity: &'static str,
        id: String,
        reason: String,
    },
    /// A field names a row that does not exist, or a combination the schema refuses
    /// (`inbox_id: no inbox has id …`). The API answers it as it answers a validation error.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// [`connect`] was given a url for a database Herald cannot use. Only the scheme is kept:
    /// a url may carry a password.
    #[error(
        "`{0}` is not a database Herald can use; give sqlite://PATH, sqlite::memory: or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A token to store: only its SHA-256 hash (hex) is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub hash_hex: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("hash_hex", &"<redacted>")
            .finish()
    }
}

/// The database itself.
#[async_trait]
pub trait Schema: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations; on SQLite, then deletes what imports killed midway left
    /// behind (see [`OutreachImport`]).
    async fn migrate(&self) -> Result<()>;
    /// A round trip to the database.
    async fn ping(&self) -> Result<()>;
    /// How many of the migrations this build knows the database has not applied (all of them
    /// on a database never migrated).
    async fn pending_migrations(&self) -> Result<usize>;
}

/// What a campaign is made of: inboxes, senders, answers, campaigns.
#[async_trait]
pub trait Catalog: Send + Sync {
    async fn create_inbox(&self, spec: &InboxSpec) -> Result<Inbox>;
    async fn get_inbox(&self, id: Uuid) -> Result<Inbox>;
    async fn list_inboxes(&self, page: Page) -> Result<Listing<Inbox>>;
    async fn update_inbox(&self, id: Uuid, spec: &InboxSpec) -> Result<Inbox>;
    /// Refused with [`StoreError::InUse`] while a sender links to the inbox.
    async fn delete_inbox(&self, id: Uuid) -> Result<()>;
    /// Refused with [`StoreError::Conflict`] if the same address is already a sender on the same
    /// channel (the same number may be an SMS sender and a voice sender).
    async fn create_sender(&self, spec: &SenderSpec) -> Result<Sender>;
    async fn get_sender(&self, id: Uuid) -> Result<Sender>;
    async fn list_senders(&self, page: Page) -> Result<Listing<Sender>>;
    async fn update_sender(&self, id: Uuid, spec: &SenderSpec) -> Result<Sender>;
    /// Refused with [`StoreError::InUse`] while a campaign uses the sender (names them).
    async fn delete_sender(&self, id: Uuid) -> Result<()>;
    /// The sender whose channel is `channel` and whose address is `address`, if any (inbound
    /// messages are routed by the address they were sent to).
    async fn find_sender(
        &self,
        channel: herald_core::Channel,
        address: &str,
    ) -> Result<Option<Sender>>;
    /// Whether some email sender's address is at `domain` (lower-case, as `example.com`): the
    /// SMTP listener accepts every address of such a domain alike, so that its answers do not
    /// tell which addresses exist. False for anything that is not a plain domain name.
    async fn serves_email_domain(&self, domain: &str) -> Result<bool>;
    async fn create_answer(&self, spec: &AnswerSpec) -> Result<Answer>;
    async fn get_answer(&self, id: Uuid) -> Result<Answer>;
    async fn list_answers(&self, page: Page) -> Result<Listing<Answer>>;
    async fn update_answer(&self, id: Uuid, spec: &AnswerSpec) -> Result<Answer>;
    /// Refused with [`StoreError::InUse`] while a campaign uses the answer (names them).
    async fn delete_answer(&self, id: Uuid) -> Result<()>;
    /// The columns (template variables) of the latest `lists` recipient lists uploaded to the
    /// campaigns that use the answer: what its editor checks its variables against. One
    /// recipient row is read per list.
    async fn recent_columns(
        &self,
        answer_id: Uuid,
        lists: u32,
    ) -> Result<std::collections::BTreeSet<String>>;
    /// Refused with [`StoreError::Conflict`] if a campaign of that name exists on the channel.
    async fn create_campaign(&self, spec: &CampaignSpec) -> Result<Campaign>;
    async fn get_campaign(&self, id: Uuid) -> Result<Campaign>;
    /// Optionally only the campaigns of one channel.
    async fn list_campaigns(
        &self,
        channel: Option<herald_core::Channel>,
        page: Page,
    ) -> Result<Listing<Campaign>>;
    /// Saves the campaign, and in the same transaction releases the recipients of its
    /// outreaches in progress that wait for its hours ([`Outreaches::release_waiting`]), so
    /// that a changed schedule or quiet hours apply to them too.
    async fn update_campaign(&self, id: Uuid, spec: &CampaignSpec) -> Result<Campaign>;
    async fn delete_campaign(&self, id: Uuid) -> Result<()>;
}

/// Proactive chat: the sites that embed the widget and the chat settings of chat campaigns.
#[async_trait]
pub trait ChatSites: Send + Sync {
    /// Stores a site under `key` (random, made by the caller); [`StoreError::Conflict`] if the
    /// key is taken.
    async fn create_chat_site(&self, spec: &ChatSiteSpec, key: &str) -> Result<ChatSite>;
    async fn get_chat_site(&self, id: Uuid) -> Result<ChatSite>;
    /// The site whose public key is `key`, if any.
    async fn find_chat_site(&self, key: &str) -> Result<Option<ChatSite>>;
    async fn list_chat_sites(&self, page: Page) -> Result<Listing<ChatSite>>;
    /// Changes name, origins and visibility; the key stays.
    async fn update_chat_site(&self, id: Uuid, spec: &ChatSiteSpec) -> Result<ChatSite>;
    /// Refused with [`StoreError::InUse`] while a campaign shows on the site (names them).
    async fn delete_chat_site(&self, id: Uuid) -> Result<()>;
    /// Sets the chat settings of a chat campaign (replacing any). [`StoreError::NotFound`] if
    /// the campaign does not exist, [`StoreError::Invalid`] if it is not a chat campaign or the
    /// site does not exist.
    async fn set_chat_settings(
        &self,
        campaign_id: Uuid,
        settings: &ChatSettings,
    ) -> Result<ChatSettings>;
    /// The chat settings of a campaign, if it has any.
    async fn get_chat_settings(&self, campaign_id: Uuid) -> Result<Option<ChatSettings>>;
    /// The chat campaigns of a site with their settings, in order (1 first), then by id.
    async fn site_campaigns(&self, site_id: Uuid) -> Result<Vec<(Campaign, ChatSettings)>>;
    /// The sender of a chat campaign's conversations (channel `chat`, address
    /// [`conversation::chat_sender_address`]), made the first time and moved to `inbox_id`.
    /// The senders API does not show it.
    async fn chat_sender(&self, campaign_id: Uuid, inbox_id: Uuid) -> Result<Uuid>;
    /// Records the start of a chat on its conversation (made by the visitor's first message):
    /// the page, and the greeting as the campaign's outbound message at `started_at`.
    async fn record_chat_start(&self, start: &ChatStart) -> Result<Message>;
    /// The chat starts of a conversation, oldest first (at most 100).
    async fn chat_starts(&self, conversation_id: Uuid) -> Result<Vec<ChatStartRecord>>;
    /// Conversations whose newest message is at `since` or later, with that message's time,
    /// the newest first, at most `limit`: what changed lately, for live chat's poller.
    async fn recent_conversations(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<(Uuid, Timestamp)>>;
    /// Adds each row's counts to its campaign's figures of its day (rows of campaigns deleted
    /// meanwhile are dropped). One transaction.
    async fn add_chat_figures(&self, campaign_rows: &[(Uuid, ChatDayFigures)]) -> Result<()>;
    /// The campaign's figures for each day from `from` to `to` (UTC, both included) that has
    /// any, oldest first.
    async fn chat_figures(
        &self,
        campaign_id: Uuid,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<ChatDayFigures>>;
}

/// Outreaches and their recipients: the import, the lists, progress, and an admin's stop and retry.
#[async_trait]
pub trait Outreaches: Send + Sync {
    /// Starts importing an outreach of the campaign: invisible, and gone again, unless the
    /// returned import is committed (see [`OutreachImport`]). [`StoreError::NotFound`] if the
    /// campaign does not exist.
    async fn begin_outreach(&self, new: &NewOutreach) -> Result<Box<dyn OutreachImport>>;
    async fn get_outreach(&self, id: Uuid) -> Result<Outreach>;
    /// A campaign's outreaches in creation order, optionally of one status.
    async fn list_outreaches(
        &self,
        campaign_id: Uuid,
        status: Option<OutreachStatus>,
        page: Page,
    ) -> Result<Listing<Outreach>>;
    /// The import report of an outreach, in file order: at most `limit` entries whose cursor
    /// (the first element) is greater than `after` (start with 0).
    async fn import_errors(
        &self,
        outreach_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ImportErrorRecord)>>;
    /// How far the outreach got (a `GROUP BY state` over its recipients).
    async fn outreach_progress(&self, id: Uuid) -> Result<Progress>;
    /// The outreach's recipients in id order, optionally of one state: at most `limit` with an
    /// id greater than `after` (start with 0). [`StoreError::NotFound`] for an unknown outreach.
    async fn list_recipients(
        &self,
        outreach_id: Uuid,
        state: Option<DeliveryState>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>>;
    /// One recipient of an outreach. [`StoreError::NotFound`] (entity `recipient`) if the
    /// outreach has no recipient with that id (a recipient id is a number: the error's uuid is
    /// the one whose low 64 bits are that number).
    async fn get_recipient(&self, outreach_id: Uuid, recipient_id: i64) -> Result<RecipientRecord>;
    /// `scheduled | in_progress → stopped`, `finished_at = now`; every `pending` recipient
    /// becomes `skipped: stopped` in the same transaction (`sending` ones are left for their
    /// results). [`StoreError::Conflict`] with the words of
    /// [`herald_core::outreach::OutreachTransitionError`] if the outreach is already final.
    async fn stop_outreach(&self, id: Uuid, now: Timestamp) -> Result<Outreach>;
    /// Puts every `failed` recipient back to `pending` (`attempts = 0`, `due_at` cleared, the
    /// last error kept until the next attempt) and, if the outreach had `completed`, moves it back
    /// to `in_progress` (`finished_at` cleared). The number re-queued. [`StoreError::Conflict`]
    /// for a stopped outreach, or one whose end time has passed (`now >= end_at`).
    async fn retry_failed(&self, id: Uuid, now: Timestamp) -> Result<u64>;
    /// [`Outreaches::retry_failed`] for the `unknown` recipients: sends a crash cut short, which
    /// may have reached the customer. Queuing them again may send a second message; the caller
    /// must have had that confirmed.
    async fn requeue_uncertain(&self, id: Uuid, now: Timestamp) -> Result<u64>;
    /// Makes due at `now` the recipients of the campaign's outreaches in progress that wait for
    /// their sending hours or quiet hours to open (`pending`, due after `now`, no error: a
    /// retry's back-off is kept), so that the dispatcher decides again under the campaign's
    /// schedule as it is now. Called when a campaign is saved: a schedule opened wider, or
    /// quiet hours turned off, releases those waiting at once; one still closed defers them
    /// again. The number made due. [`Catalog::update_campaign`] does this in its own
    /// transaction.
    async fn release_waiting(&self, campaign_id: Uuid, now: Timestamp) -> Result<u64>;
    /// The outreach's figures ([`OutreachReport`]): a handful of grouped reads over its
    /// recipients through the `(outreach_id, state)` index. The time to reply is measured to
    /// the recipient's last change, which for a `replied` recipient is its answer.
    /// [`StoreError::NotFound`] for an unknown outreach.
    async fn outreach_report(&self, id: Uuid) -> Result<OutreachReport>;
    /// [`Outreaches::outreach_report`] over every outreach of the campaign.
    /// [`StoreError::NotFound`] (entity `campaign`) for an unknown campaign.
    async fn campaign_report(&self, campaign_id: Uuid) -> Result<OutreachReport>;
    /// Records that the recipient opted out in answer to its outreach's message (a STOP reply
    /// attributed to it, the email's unsubscribe link), whatever its state: it counts in the
    /// outreach's `opted_out` from then on, once. False when it had already opted out (the
    /// first time is kept) or there is no such recipient.
    async fn record_opt_out(
        &self,
        outreach_id: Uuid,
        recipient_id: i64,
        at: Timestamp,
    ) -> Result<bool>;
    /// The recipients of each of the campaign's outreaches that opted out
    /// ([`OutreachReport::opted_out`]), by outreach; outreaches with none are left out.
    async fn opted_out_by_outreach(
        &self,
        campaign_id: Uuid,
    ) -> Result<std::collections::HashMap<Uuid, u64>>;
}

/// What the dispatcher does to outreaches and recipients.
///
/// Every method takes the current instant from the caller (the dispatcher's clock), never
/// from the system, so tests can drive time.
#[async_trait]
pub trait Dispatch: Send + Sync {
    /// Every outreach that is `scheduled` or `in_progress`, with whether it has `pending` and
    /// `sending` recipients (cheap `EXISTS` checks, not counts).
    async fn live_outreaches(&self) -> Result<Vec<LiveOutreach>>;
    /// Whether a write transaction can make progress while another one is under way
    /// (PostgreSQL's many writers). On SQLite, with its one writer, a second write waits for the
    /// first, so the dispatcher does not claim its next batch while one is being recorded.
    fn concurrent_writes(&self) -> bool {
        false
    }
    /// The outreach's status alone (cheap; the dispatcher checks it mid-batch for a stop).
    async fn outreach_status(&self, id: Uuid) -> Result<OutreachStatus>;
    /// `scheduled → in_progress`. False (and nothing changes) if it was not `scheduled`.
    async fn start_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool>;
    /// `scheduled | in_progress → completed`, `finished_at = now`, but only while no recipient
    /// is `pending` or `sending` (checked in the same statement). False if nothing changed.
    async fn complete_outreach(&self, id: Uuid, now: Timestamp) -> Result<bool>;
    /// Every `pending` recipient becomes `skipped: expired` (the end time passed). The count.
    async fn expire_pending(&self, id: Uuid, now: Timestamp) -> Result<u64>;
    /// Claims at most `limit` recipients of an `in_progress` outreach that are `pending` and due
    /// (`due_at` unset or `<= now`), in order of `due_at` then id: `sending`,
    /// `lease_until = lease_until`, `attempts + 1`. Atomic (PostgreSQL: one `UPDATE` of rows
    /// taken `FOR UPDATE SKIP LOCKED`; SQLite: one `BEGIN IMMEDIATE` transaction, SQLite's single
    /// writer), so two dispatchers never claim the same recipient.
    /// Uses an index, so recipients deferred to a later window are not scanned on every claim.
    async fn claim_due(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedRecipient>>;
    /// Records the outcomes of claimed recipients in one transaction; `updated_at = now`,
    /// `lease_until` cleared. Applies only to recipients still `sending` (a result for a recipient
    /// already resolved by lease recovery is ignored), except that `Sent` also resolves an
    /// `unknown` one. `Retry` and `Defer` of a recipient whose outreach was stopped meanwhile
    /// become `skipped: stopped` instead, so nothing is left pending in a final outreach.
    ///
    /// Whose results they are is not checked ([`Held::Unchecked`]): the dispatcher records with
    /// [`Dispatch::record_batch`], which is.
    async fn record_results(&self, now: Timestamp, results: &[DeliveryResult]) -> Result<()> {
        self.record_batch(now, Held::Unchecked, results, &[]).await
    }
    /// [`Dispatch::record_results`] with the messages of [`Dispatch::record_batch`], whose
    /// holder is not checked ([`Held::Unchecked`]).
    async fn record_results_with_messages(
        &self,
        now: Timestamp,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> Result<()> {
        self.record_batch(now, Held::Unchecked, results, sent).await
    }
    /// Records the outcomes of a batch of claimed recipients in one transaction, as
    /// [`Dispatch::record_results`] says, and in the same transaction records each accepted
    /// proactive message on its customer's timeline (creating the customer if new) — only for
    /// recipients whose `Sent` result was applied — then applies any status reports kept for
    /// their provider message ids.
    ///
    /// An outcome other than `Sent` applies only to a recipient the batch still holds (`held`):
    /// a batch whose lease ran out while its node was paused must not re-queue or fail a
    /// recipient another node has claimed since, or that node's send would be followed by a
    /// second one. A `Sent` applies to any recipient still `sending` or `unknown`, whoever
    /// holds it: the message went out, and a holder that has not begun its own send then never
    /// does ([`Dispatch::start_sends`] marks only recipients still `sending`).
    async fn record_batch(
        &self,
        now: Timestamp,
        held: Held,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> Result<()>;
    /// Marks the sends of claimed recipients as begun (`send_started_at = now`), just before
    /// they are made: only recipients still `sending` under this very lease (`lease_until`, as
    /// claimed or last renewed) are marked, and only those may be sent. Their ids, ascending.
    /// After a crash, a claimed recipient whose send was never marked begun goes back to the
    /// queue instead of becoming `unknown` ([`Dispatch::recover_expired_leases`]).
    async fn start_sends(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        ids: &[i64],
    ) -> Result<Vec<i64>>;
    /// Gives back to the queue recipients whose sends were marked begun at `marked_at` (the
    /// `now` of their [`Dispatch::start_sends`]) but never made: the dispatcher that marked them
    /// stopped first, and its local journal says so. Each goes back to `pending` (`skipped:
    /// stopped` if the outreach was stopped) with the claim's attempt undone and the mark
    /// cleared, if it is still `sending` under that very mark, or was made `unknown` by lease
    /// recovery since. A recipient marked again since (another claim) is left alone. The count.
    async fn release_unbegun(
        &self,
        now: Timestamp,
        marked_at: Timestamp,
        ids: &[i64],
    ) -> Result<u64>;
    /// Recipients of outreaches in progress that are `pending` and due at `now`: the work
    /// waiting for the dispatchers (one count through the due index).
    async fn due_recipients(&self, now: Timestamp) -> Result<u64>;
    /// Takes up to `want` tokens from the sender's bucket at `now`, atomically for every node
    /// on the database: the bucket gains `rate` tokens a second, keeps at most `burst`, and
    /// starts full. With a `daily` cap, no more than its `limit` are granted on its `day`
    /// (counted with every node's). The tokens granted (none when the bucket holds less than
    /// one), and whether the cap held some back.
    async fn take_tokens(
        &self,
        sender_id: Uuid,
        rate: f64,
        burst: f64,
        now: Timestamp,
        want: u32,
        daily: Option<DailyCap>,
    ) -> Result<Grant>;
    /// Settles the tokens of a batch at `now`: `delta` > 0 puts back tokens taken but not
    /// spent (the bucket keeps at most `burst`); `delta` < 0 charges what was spent beyond them
    /// (a message of more segments than the bucket held), which may leave the bucket in debt:
    /// nothing is granted until it has refilled. The day's count of a `daily` cap moves the
    /// other way (tokens given back were not spent today).
    async fn adjust_tokens(
        &self,
        sender_id: Uuid,
        rate: f64,
        burst: f64,
        now: Timestamp,
        delta: i64,
        daily: Option<DailyCap>,
    ) -> Result<()>;
    /// Extends the lease of claimed recipients still `sending` under `lease_until` to
    /// `new_lease_until`, so that a live dispatcher's slow batch is not taken for a dead one's.
    /// The count renewed.
    async fn renew_leases(
        &self,
        ids: &[i64],
        lease_until: Timestamp,
        new_lease_until: Timestamp,
    ) -> Result<u64>;
    /// Recipients of the outreach left `sending` with `lease_until < now` (the Herald sending
    /// them died or stopped). Those whose send never began (`send_started_at` unset) go back to
    /// `pending` with the claim's attempt undone, whatever the channel. Those whose send began
    /// become `unknown` (at-most-once) or go back to `pending`, due at once (at-least-once).
    /// Either way `skipped: stopped` instead of `pending` if the outreach was stopped;
    /// `lease_until` cleared. The count.
    async fn recover_expired_leases(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        policy: CrashPolicy,
    ) -> Result<u64>;
}

/// The opt-out list.
#[async_trait]
pub trait Suppressions: Send + Sync {
    /// Addresses that must not be messaged from the sender: those suppressed for it and those
    /// suppressed for every sender.
    async fn suppressed_addresses(&self, sender_id: Option<Uuid>) -> Result<HashSet<String>>;
    /// Puts an address on the opt-out list, for one sender or (None) all of them. False when it
    /// was already there.
    async fn add_suppression(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
    ) -> Result<bool>;
    /// How many proactive messages (outreach messages on the customers' timelines, from any
    /// sender) each of `addresses` was sent at or after `since`; addresses with none are left
    /// out. One query for a batch, through the customers' address and timeline indexes.
    async fn contacts_since(
        &self,
        addresses: &[String],
        since: Timestamp,
    ) -> Result<std::collections::HashMap<String, u64>>;
    /// How many of `addresses` were sent a message of campaign `campaign_id` at or after
    /// `since` (the review of an upload warns of a list sent again). One query for a batch.
    async fn campaign_contacts_among(
        &self,
        campaign_id: Uuid,
        addresses: &[String],
        since: Timestamp,
    ) -> Result<u64>;
    /// Of `addresses`, those that must not be messaged from the sender (suppressed for it or
    /// for every sender). One query, for a batch about to be sent.
    async fn suppressed_among(
        &self,
        sender_id: Uuid,
        addresses: &[String],
    ) -> Result<HashSet<String>>;
    /// The suppression that keeps the sender from messaging the address (one for that sender
    /// first, else one for every sender), if any.
    async fn suppression_for(&self, address: &str, sender_id: Uuid) -> Result<Option<Suppression>>;
    /// The opt-out list, newest first (keyset by id), optionally for one address.
    async fn list_suppressions(
        &self,
        address: Option<&str>,
        page: Page,
    ) -> Result<Listing<Suppression>>;
    async fn get_suppression(&self, id: Uuid) -> Result<Suppression>;
    /// Lifts one suppression. [`StoreError::NotFound`] if there is none with that id.
    async fn delete_suppression(&self, id: Uuid) -> Result<()>;
    /// Lifts the suppression of the address for exactly that sender (None: the one for every
    /// sender). False when there was none.
    async fn remove_suppression(&self, address: &str, sender_id: Option<Uuid>) -> Result<bool>;
    /// Every `pending` recipient with the address, in a `scheduled` or `in_progress` outreach of
    /// a campaign sending from the sender (None: from any sender), becomes `skipped` with
    /// `reason`. The count.
    async fn skip_pending_for_address(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: herald_core::outreach::SkipReason,
        now: Timestamp,
    ) -> Result<u64>;
}

/// Customers, their conversations and messages, and providers' status reports.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// Records a message from a customer, in one transaction: creates the customer if new,
    /// attributes it (see [`InboundMessage::attribute_since`] and
    /// [`InboundMessage::in_reply_to`]: the attributed recipient becomes `replied` if
    /// [`DeliveryState::apply_callback`] allows it), creates or updates the conversation of the
    /// sender and the customer (its inbox is the sender's; `campaign_id`/`outreach_id` set to the
    /// attribution, if any; `last_message_at`), and stores the message (`status = received`,
    /// `author = customer`, the attribution's campaign/outreach/recipient). A message whose
    /// `provider_message_id` was already received changes nothing (`duplicate`).
    async fn receive_message(&self, msg: &InboundMessage) -> Result<Received>;
    /// Records an outbound message on a conversation (after the provider accepted it) and moves
    /// its `last_message_at`. `status = sent`. [`StoreError::NotFound`] for an unknown
    /// conversation.
    async fn add_outbound(&self, msg: &OutboundRecord) -> Result<Message>;
    async fn get_conversation(&self, id: Uuid) -> Result<Conversation>;
    /// Closes or reopens a conversation (a customer's new message reopens it by itself).
    async fn set_conversation_status(
        &self,
        id: Uuid,
        status: ConversationStatus,
    ) -> Result<Conversation>;
    /// Assigns a conversation to a user, or to nobody; an unknown user is
    /// [`StoreError::Invalid`] (`assignee_id`).
    async fn assign_conversation(&self, id: Uuid, assignee: Option<Uuid>) -> Result<Conversation>;
    /// Records that a user has read a conversation up to `at` (a read never goes back).
    async fn mark_conversation_read(&self, id: Uuid, user_id: Uuid, at: Timestamp) -> Result<()>;
    /// For each of the conversations (an inbox page's), what the user has not read and the
    /// newest message's text. Conversations not found are left out.
    async fn conversation_glances(
        &self,
        ids: &[Uuid],
        user_id: Uuid,
    ) -> Result<std::collections::HashMap<Uuid, ConversationGlance>>;
    /// Per inbox, the open conversations with customer messages the user has not read.
    async fn unread_by_inbox(&self, user_id: Uuid) -> Result<std::collections::HashMap<Uuid, u64>>;
    /// An inbox's conversations, the most recent `last_message_at` first (ties by id, newest
    /// first); `page.after` is the id of the last conversation of the previous page.
    async fn list_conversations(&self, inbox_id: Uuid, page: Page)
    -> Result<Listing<Conversation>>;
    /// A conversation's timeline, oldest first: every message between its customer and its
    /// sender, the proactive ones included; `after` is the id of the last message already seen.
    async fn conversation_messages(
        &self,
        conversation_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>>;
    async fn get_customer(&self, id: Uuid) -> Result<Customer>;
    async fn find_customer(&self, address: &str) -> Result<Option<Customer>>;
    /// Sets the name a customer gave (a chat's onboarding); the latest given wins.
    async fn set_customer_name(&self, id: Uuid, name: &str) -> Result<()>;
    /// A customer's whole timeline (every sender), oldest first.
    async fn customer_messages(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Message>>;
    /// A provider's report on a message it accepted: the message's status (and error code) and,
    /// for a proactive message, its recipient's state as [`DeliveryState::apply_callback`]
    /// allows (`error_code`/`error_message` kept on the recipient for `failed`/`undelivered`).
    /// A report whose state changes nothing is [`StatusApplied::Unchanged`]. A report for an id no
    /// message has yet is kept and applied by the `record_results_with_messages` that records
    /// it ([`StatusApplied::Kept`]); a kept report replayed is kept once.
    async fn apply_status(&self, report: &StatusReport) -> Result<StatusApplied>;
    /// Forgets kept status reports that arrived before `before` and never found their message
    /// (a send recorded without a provider id, a message of another system on the same account).
    /// The count.
    async fn purge_kept_status_reports(&self, before: Timestamp) -> Result<u64>;
}

/// API tokens and web accounts.
///
/// Session and setup tokens are given as the SHA-256 (lower-case hex) of the secret: the
/// secret itself is never stored. Emails are trimmed and lower-cased by the store.
#[async_trait]
pub trait Accounts: Send + Sync {
    async fn create_token(&self, token: &NewToken) -> Result<ApiToken>;
    /// The token whose secret hashes to `hash_hex`, if any.
    async fn find_token(&self, hash_hex: &str) -> Result<Option<ApiToken>>;
    /// How many users exist (none: `herald serve` offers a link to create the first admin).
    async fn count_users(&self) -> Result<u64>;
    /// [`StoreError::Conflict`] if a user has the email (compared lower-cased).
    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User>;
    /// The active user with the email (compared lower-cased) and their argon2 PHC password
    /// hash; none for a deactivated user (they cannot sign in).
    async fn find_user_by_email(&self, email: &str) -> Result<Option<(User, String)>>;
    /// [`StoreError::NotFound`] (entity `user`) for an unknown id.
    async fn get_user(&self, id: Uuid) -> Result<User>;
    /// A one-time link creating a user with `role` (and, if given, that email). It REPLACES
    /// the unused links of the same email (re-inviting someone revokes the older link); a link
    /// without an email (the first admin's) replaces every other unused link without one.
    /// [`StoreError::Conflict`] if the hash exists.
    async fn create_setup_token(
        &self,
        hash_hex: &str,
        email: Option<&str>,
        role: Role,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The setup token's email and role while it is unused and `now < expires_at` and, for a
    /// link without an email (the first admin's), while no admin exists; changes nothing (the
    /// setup form shows it).
    async fn find_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>>;
    /// [`Accounts::find_setup_token`], marking the token used in the same statement: of two
    /// concurrent takers only one gets it. None when unknown, used or expired.
    async fn take_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>>;
    /// A signed-in browser of the user until `expires_at`. [`StoreError::NotFound`] for an
    /// unknown user. Expired sessions are swept. Records the sign-in on the user
    /// (`last_sign_in_at`).
    async fn create_session(
        &self,
        hash_hex: &str,
        user_id: Uuid,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The session's user and CSRF token, while `now < expires_at` and the user is active.
    async fn find_session(&self, hash_hex: &str, now: Timestamp) -> Result<Option<(User, String)>>;
    /// Signs the session out (nothing happens for an unknown one).
    async fn delete_session(&self, hash_hex: &str) -> Result<()>;
    /// Counts a sign-in attempt for `email` BEFORE its password is checked, in one atomic
    /// statement (so parallel attempts, on any number of Herald processes, cannot get past
    /// the limit): [`LoginAttempt::Allowed`] for the first `max_attempts` attempts since the
    /// last one older than `window`, then [`LoginAttempt::Locked`] until `window` after the
    /// last allowed one (locked attempts do not extend it). Rows older than `window` are swept.
    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: Timestamp,
        max_attempts: u32,
        window: jiff::SignedDuration,
    ) -> Result<LoginAttempt>;
    /// Forgets the address's attempts (after a successful sign-in).
    async fn clear_login_attempts(&self, email: &str) -> Result<()>;

    // ---- people and access (the admin's People, API tokens, Opt-outs and Audit log)

    /// Users in creation order (keyset by id), deactivated ones included.
    async fn list_users(&self, page: Page) -> Result<Listing<UserAccount>>;
    /// One user with their state. [`StoreError::NotFound`] (entity `user`) for an unknown id.
    async fn get_user_account(&self, id: Uuid) -> Result<UserAccount>;
    /// Invitations not taken yet (expired ones included), oldest first, at most 500.
    async fn list_invitations(&self) -> Result<Vec<Invitation>>;
    /// Invites `email` with `role`: a setup link (its hash) until `expires_at` that replaces any
    /// earlier link of the email ([`Accounts::create_setup_token`]), and the audit entry
    /// (`user.invited`, or `user.invitation_resent` when the email had a link still unused), in
    /// one transaction. True when it replaced a link. [`StoreError::Conflict`] if a user has the
    /// email (active or not).
    async fn invite_user(
        &self,
        email: &str,
        role: Role,
        hash_hex: &str,
        expires_at: Timestamp,
        ctx: &AuditContext,
    ) -> Result<bool>;
    /// Changes a user's role and whether they are active, with one audit entry per change, in
    /// one transaction. Deactivating deletes the user's sessions in the same transaction (their
    /// next request is signed out). [`StoreError::Conflict`] if it would leave no active admin.
    async fn update_user(
        &self,
        id: Uuid,
        change: UserChange,
        ctx: &AuditContext,
    ) -> Result<UserAccount>;
    /// API tokens in creation order (keyset by id).
    async fn list_tokens(&self, page: Page) -> Result<Listing<TokenInfo>>;
    /// [`Accounts::create_token`] with its `token.created` audit entry, in one transaction.
    async fn create_token_audited(&self, token: &NewToken, ctx: &AuditContext) -> Result<ApiToken>;
    /// Deletes a token (the next request with it is refused) and writes `token.revoked`, in one
    /// transaction. [`StoreError::NotFound`] (entity `token`) for an unknown id.
    async fn revoke_token(&self, id: Uuid, ctx: &AuditContext) -> Result<TokenInfo>;
    /// [`Accounts::find_token`] for a request at `now`: also records the use, when the last one
    /// recorded is older than [`users::TOKEN_USE_RESOLUTION`] (so most requests only read).
    async fn use_token(&self, hash_hex: &str, now: Timestamp) -> Result<Option<ApiToken>>;
    /// [`Suppressions::add_suppression`] with its `suppression.added` audit entry (the address,
    /// the reason; only when it was new), in one transaction.
    async fn add_suppression_audited(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
        ctx: &AuditContext,
    ) -> Result<bool>;
    /// [`Suppressions::delete_suppression`] with its `suppression.removed` audit entry, in one
    /// transaction: the suppression that was lifted.
    async fn delete_suppression_audited(&self, id: Uuid, ctx: &AuditContext)
    -> Result<Suppression>;
    /// Writes one audit entry on its own (for changes made outside these methods).
    async fn record_audit(
        &self,
        ctx: &AuditContext,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<()>;
    /// The audit log, newest first (keyset by id).
    async fn list_audit(&self, page: Page) -> Result<Listing<AuditEntry>>;
}

/// Stored phone numbers, for `herald doctor phones`, which checks numbers stored by an older
/// reading.
#[async_trait]
pub trait PhoneAudit: Send + Sync {
    /// Recipients stored under a phone number, in id order, at most `limit` after `after`.
    async fn recipient_phones(&self, after: i64, limit: u32) -> Result<Vec<RecipientPhone>>;
    /// Customers or opt-outs keyed by a phone number, in id order, at most `limit` after
    /// `after` (start with `Uuid::nil()`).
    async fn stored_phones(
        &self,
        table: PhoneTable,
        after: Uuid,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>>;
}

/// What the dispatcher needs: its own noun, the campaign's parts, the opt-out list (checked
/// before each batch, added to when a provider reports an opt-out) and the kept status reports
/// it purges.
pub trait DispatchStore: Dispatch + Catalog + Suppressions + Conversations {}

impl<T: ?Sized + Dispatch + Catalog + Suppressions + Conversations> DispatchStore for T {}

/// Test sends: a campaign's message sent to the team's own number or address, outside any
/// outreach, each recorded before the provider is called and completed with its outcome.
#[async_trait]
pub trait TestSends: Send + Sync {
    /// Records a test send about to go out (state `sending`). [`StoreError::NotFound`] (entity
    /// `campaign`) if the campaign does not exist.
    async fn begin_test_send(&self, send: &NewTestSend) -> Result<TestSend>;
    /// Records what the provider answered: its message id, or the error in words (then the
    /// state is `failed`). [`StoreError::NotFound`] for an unknown or already finished id.
    async fn finish_test_send(
        &self,
        id: Uuid,
        provider_message_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<TestSend>;
    /// A campaign's test sends, newest first, at most `limit`.
    async fn list_test_sends(&self, campaign_id: Uuid, limit: u32) -> Result<Vec<TestSend>>;
}

/// What the reply path needs (provider webhooks, the SMTP listener, agents' answers, test
/// sends): conversations, the opt-out list, the campaign's parts, the recipient a reply answers
/// and the record of test sends.
pub trait ReplyStore: Conversations + Suppressions + Catalog + Outreaches + TestSends {}

impl<T: ?Sized + Conversations + Suppressions + Catalog + Outreaches + TestSends> ReplyStore for T {}

/// Everything Herald keeps: the sum of the per-noun traits. Both backends implement each noun
/// directly and pass the same conformance suite (`tests/conformance.rs`); a consumer takes the
/// narrowest trait it needs ([`DispatchStore`], [`ReplyStore`], or one noun).
pub trait Store:
    Schema + DispatchStore + ReplyStore + Outreaches + Accounts + PhoneAudit + ChatSites + 'static
{
}

impl<T> Store for T where
    T: Schema
        + Catalog
        + Outreaches
        + Dispatch
        + Suppressions
        + Conversations
        + TestSends
        + Accounts
        + PhoneAudit
        + ChatSites
        + 'static
{
}

/// Opens the database a url names, without migrating it (call [`Schema::migrate`]):
/// `sqlite://PATH` (the file is created if missing), `sqlite::memory:`, or
/// `postgres://…` / `postgresql://…`. Any other scheme is [`StoreError::UnsupportedUrl`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    match url_scheme(url).as_deref() {
        Some("sqlite") => Ok(Arc::new(SqliteStore::connect(url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PgStore::connect(url).await?)),
        Some(other) => Err(StoreError::UnsupportedUrl(format!("{other}:"))),
        None => Err(StoreError::UnsupportedUrl(
            "a url without a scheme".to_string(),
        )),
    }
}

/// The lower-cased scheme of a url (`sqlite` for `sqlite::memory:`), if it has one.
fn url_scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.trim().split_once(':')?;
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_without_the_rest_of_the_url() {
        assert_eq!(url_scheme("sqlite::memory:").as_deref(), Some("sqlite"));
        assert_eq!(url_scheme("SQLite://herald.db").as_deref(), Some("sqlite"));
        assert_eq!(
            url_scheme("postgresql://u:secret@h/db").as_deref(),
            Some("postgresql")
        );
        assert_eq!(url_scheme("herald.db"), None);
        assert_eq!(url_scheme("/tmp/a:b"), None);
    }

    #[tokio::test]
    async fn other_schemes_are_refused_without_repeating_the_url() {
        let err = match connect("mysql://root:hunter2@localhost/herald").await {
            Err(e) => e,
            Ok(_) => panic!("mysql urls must be refused"),
        };
        let msg = err.to_string();
        assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
        assert!(msg.contains("`mysql:`"), "{msg}");
        assert!(msg.contains("sqlite://PATH"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(matches!(
            connect("herald.db").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}
