//! What customers send back, and what agents answer.
//!
//! [`Replies`] is the one place inbound messages go through, whichever way they arrive (Twilio's
//! inbound SMS webhook, the SMTP listener): it records the message in the conversation of the
//! sender's inbox, attributes it to the outreach the customer is answering, and acts on SMS
//! keywords (STOP suppresses the number for that sender and skips its pending recipients; START
//! lifts it; HELP gets the configured help text). Agents reply through [`Replies::agent_reply`],
//! which sends through the conversation's sender and refuses an opted-out customer.

use crate::UnsubscribeLinks;
use crate::clock::{Clock, SystemClock};
use herald_channels::{OutboundMessage, SendError, Transports};
use herald_core::keywords::{self, Keyword};
use herald_core::outreach::{SkipReason, parse_idempotency_key};
use herald_core::{Address, Channel, E164, EmailAddress, Sender};
use herald_store::{
    Author, InboundMessage, Message, OutboundRecord, Received, ReplyStore, StoreError,
};
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use uuid::Uuid;

mod test_send;
pub use test_send::TestSendRequest;

/// How replies are handled (`[replies]` in `herald.toml`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepliesConfig {
    /// A reply is attributed to the newest outreach message the customer got from the same
    /// sender within this many days.
    pub attribution_days: u32,
    /// What Herald answers an SMS `HELP` or `INFO`.
    pub help_text: String,
    /// What Herald answers an SMS opt-out keyword; empty sends nothing (Twilio's own opt-out
    /// handling, on by default, already confirms it).
    pub opt_out_text: String,
    /// What Herald answers `START`/`YES`/`UNSTOP`; empty sends nothing.
    pub opt_in_text: String,
    /// The authserv-id of the MX in front of Herald's SMTP listener (`mx.example.com`): an
    /// email counts as its `From`'s only when the topmost `Authentication-Results` header of
    /// that id says so (`dmarc=pass`, or `spf=pass`/`dkim=pass` aligned with the From domain).
    /// Any other email — every email while this is empty — is kept and shown marked
    /// "unverified sender", but changes no recipient's state.
    pub trusted_authserv_id: String,
}

impl Default for RepliesConfig {
    fn default() -> Self {
        Self {
            attribution_days: 7,
            help_text: "Reply STOP to stop receiving messages from this number, START to \
                        receive them again. Msg & data rates may apply."
                .to_string(),
            opt_out_text: String::new(),
            opt_in_text: String::new(),
            trusted_authserv_id: String::new(),
        }
    }
}

impl RepliesConfig {
    pub fn window(&self) -> SignedDuration {
        SignedDuration::from_hours(i64::from(self.attribution_days) * 24)
    }
}

/// What happened to an inbound message.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub received: Received,
    /// The SMS keyword it was, if any (acted on only the first time the message arrived).
    pub keyword: Option<Keyword>,
    /// Recipients of live outreaches skipped because of an opt-out.
    pub skipped: u64,
    /// The text to answer with (TwiML `<Message>`), if any.
    pub auto_reply: Option<String>,
}

/// Why an agent's reply was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The customer opted out of messages from this sender: the reply is refused, not dropped.
    #[error("{0}")]
    OptedOut(String),
    /// Nothing to send, or a channel agents cannot reply on.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The provider is not configured, or refused the message.
    #[error("the message was not sent: {0}")]
    Send(SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Email unsubscribes.
#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    #[error("this unsubscribe link is not valid (it was altered or is incomplete)")]
    BadLink,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Inbound messages and agent replies; see the [module docs](self).
#[derive(Clone)]
pub struct Replies {
    store: Arc<dyn ReplyStore>,
    transports: Arc<Transports>,
    config: RepliesConfig,
    unsubscribe: Option<UnsubscribeLinks>,
    /// When agents' replies are sent, unsubscribes made, emails received.
    clock: Arc<dyn Clock>,
}

impl Replies {
    /// Reads the time from the system clock ([`Replies::with_clock`] to drive it).
    pub fn new(
        store: Arc<dyn ReplyStore>,
        transports: Arc<Transports>,
        config: RepliesConfig,
    ) -> Self {
        Self {
            store,
            transports,
            config,
            unsubscribe: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the signed one-click links of outreach emails ([`Replies::unsubscribe`]).
    pub fn with_unsubscribe_links(mut self, links: UnsubscribeLinks) -> Self {
        self.unsubscribe = Some(links);
        self
    }

    pub fn config(&self) -> &RepliesConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn ReplyStore> {
        &self.store
    }

    /// An SMS from `from` to the SMS sender `sender` (Twilio's inbound webhook). A replayed
    /// `sid` changes nothing and gets the same answer.
    pub async fn receive_sms(
        &self,
        sender: &Sender,
        from: &E164,
        body: &str,
        sid: Option<&str>,
        at: Timestamp,
    ) -> Result<Inbound, StoreError> {
        let received = self
            .store
            .receive_message(&InboundMessage {
                sender_id: sender.id,
                from: from.as_str().to_string(),
                to: sender.address.to_string(),
                subject: None,
                body: body.to_string(),
                provider_message_id: sid.map(str::to_string),
                received_at: at,
                attribute_since: at - self.config.window(),
                in_reply_to: None,
                unverified_sender: false,
            })
            .await?;
        let keyword = keywords::classify(body);
        let auto_reply = match keyword {
            Some(Keyword::Help) => Some(self.config.help_text.clone()),
            Some(Keyword::OptOut) => Some(self.config.opt_out_text.clone()),
            Some(Keyword::OptIn) => Some(self.config.opt_in_text.clone()),
            None => None,
        }
        .filter(|t| !t.trim().is_empty());
        let mut inbound = Inbound {
            received,
            keyword,
            skipped: 0,
            auto_reply,
        };
        if inbound.received.duplicate {
            return Ok(inbound);
        }
        let address = from.as_str();
        match keyword {
            Some(Keyword::OptOut) => {
                let reason = format!("replied {}", body.trim().to_uppercase());
                self.store
                    .add_suppression(address, Some(sender.id), &reason)
                    .await?;
                inbound.skipped = self
                    .store
                    .skip_pending_for_address(address, Some(sender.id), SkipReason::OptedOut, at)
                    .await?;
                // An answer to an outreach's message: it counts as that outreach's opt-out.
                if let Some((_, outreach_id, recipient_id)) = inbound.received.attributed {
                    self.store
                        .record_opt_out(outreach_id, recipient_id, at)
                        .await?;
                }
                tracing::info!(sender = %sender.address, skipped = inbound.skipped, "customer opted out by SMS");
            }
            Some(Keyword::OptIn) => {
                let lifted = self
                    .store
                    .remove_suppression(address, Some(sender.id))
                    .await?;
                tracing::info!(sender = %sender.address, lifted, "customer opted back in by SMS");
            }
            _ => {}
        }
        if let Some(text) = &inbound.auto_reply {
            // Sent as the webhook's TwiML answer: on the timeline, it is Herald's.
            self.store
                .add_outbound(&OutboundRecord {
                    conversation_id: inbound.received.conversation.id,
                    author: Author::Auto,
                    agent_id: None,
                    subject: None,
                    body: text.clone(),
                    provider_message_id: None,
                    sent_at: at,
                })
                .await?;
        }
        Ok(inbound)
    }

    /// An email a customer sent to the email sender `sender` (the SMTP listener). Threaded to
    /// the outreach message named by `In-Reply-To` / `References` when there is one. Unless
    /// `from_verified` (the trusted MX authenticated `from`), it is kept marked as from an
    /// unverified sender and attributed to nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn receive_email(
        &self,
        sender: &Sender,
        from: &EmailAddress,
        from_verified: bool,
        subject: Option<&str>,
        body: &str,
        message_id: Option<&str>,
        thread_ids: &[String],
        at: Timestamp,
    ) -> Result<Received, StoreError> {
        let in_reply_to = thread_ids.iter().find_map(|id| outreach_message(id));
        self.store
            .receive_message(&InboundMessage {
                sender_id: sender.id,
                from: from.as_str().to_string(),
                to: sender.address.to_string(),
                subject: subject.map(str::to_string),
                body: body.to_string(),
                provider_message_id: message_id
                    .map(|m| format!("<{}>", m.trim_matches(['<', '>']))),
                received_at: at,
                attribute_since: at - self.config.window(),
                in_reply_to,
                unverified_sender: !from_verified,
            })
            .await
    }

    /// An agent's reply on a conversation, sent through its sender and channel, then recorded on
    /// the timeline. Refused for a customer who opted out of that sender (or of every sender).
    pub async fn agent_reply(
        &self,
        conversation_id: Uuid,
        agent_id: Option<Uuid>,
        subject: Option<&str>,
        body: &str,
    ) -> Result<Message, ReplyError> {
        let body = body.trim();
        if body.is_empty() {
            return Err(ReplyError::Invalid {
                field: "body",
                message: "is empty; write the reply".into(),
            });
        }
        let conversation = self.store.get_conversation(conversation_id).await?;
        if conversation.channel == Channel::Chat {
            // Delivered by being stored: the visitor's widget reads it from its conversation's
            // stream (herald-server's `chat_live`), on whichever node it is connected to.
            return Ok(self
                .store
                .add_outbound(&OutboundRecord {
                    conversation_id,
                    author: Author::Agent,
                    agent_id,
                    subject: None,
                    body: body.to_string(),
                    provider_message_id: None,
                    sent_at: self.clock.now(),
                })
                .await?);
        }
        let sender = self.store.get_sender(conversation.sender_id).await?;
        self.refuse_opted_out(
            &conversation.customer_address,
            &sender,
            conversation.channel,
            "the reply",
        )
        .await?;
        let to = match conversation.channel {
            Channel::Sms => E164::parse(&conversation.customer_address, None)
                .map(Address::Phone)
                .map_err(|e| StoreError::Corrupt {
                    entity: "conversation",
                    id: conversation.id.to_string(),
                    reason: e.to_string(),
                })?,
            Channel::Email => EmailAddress::parse(&conversation.customer_address)
                .map(Address::Email)
                .map_err(|e| StoreError::Corrupt {
                    entity: "conversation",
                    id: conversation.id.to_string(),
                    reason: e.to_string(),
                })?,
            other => {
                return Err(ReplyError::Invalid {
                    field: "channel",
                    message: format!(
                        "agents reply by SMS or email; this conversation is on {other}"
                    ),
                });
            }
        };
        let thread = match conversation.channel {
            Channel::Email => self.email_thread(conversation_id).await?,
            _ => EmailThread::default(),
        };
        let subject = match conversation.channel {
            Channel::Email => Some(
                subject
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| thread.reply_subject()),
            ),
            _ => None,
        };
        let Some(transport) = self.transports.get(sender.provider) else {
            return Err(ReplyError::Send(SendError::permanent(
                "config",
                format!(
                    "the sender {} uses the {} provider, which is not configured",
                    sender.address,
                    sender.provider.as_str()
                ),
            )));
        };
        let in_reply_to = thread.parent;
        let key = format!("reply-{}", Uuid::now_v7().simple());
        let language = match conversation.campaign_id {
            Some(id) => match self.store.get_campaign(id).await {
                Ok(c) => c.language,
                Err(_) => herald_core::Language::parse("en").expect("en is a language"),
            },
            None => herald_core::Language::parse("en").expect("en is a language"),
        };
        let msg = OutboundMessage {
            idempotency_key: key,
            channel: conversation.channel,
            from: sender.address.clone(),
            to,
            subject: subject.clone(),
            body: body.to_string(),
            html: None,
            language,
            campaign_id: conversation.campaign_id.unwrap_or(Uuid::nil()),
            outreach_id: conversation.outreach_id.unwrap_or(Uuid::nil()),
            recipient_id: 0,
            unsubscribe_url: None,
            agent_number: None,
            voice_settings: Default::default(),
            in_reply_to,
        };
        let accepted = transport.send(&msg).await.map_err(ReplyError::Send)?;
        Ok(self
            .store
            .add_outbound(&OutboundRecord {
                conversation_id,
                author: Author::Agent,
                agent_id,
                subject,
                body: body.to_string(),
                provider_message_id: accepted.provider_message_id,
                sent_at: self.clock.now(),
            })
            .await?)
    }

    /// [`ReplyError::OptedOut`], in words, when `address` is on the opt-out list for `sender`:
    /// `what` (the reply, the test) is refused, never sent.
    async fn refuse_opted_out(
        &self,
        address: &str,
        sender: &Sender,
        channel: Channel,
        what: &str,
    ) -> Result<(), ReplyError> {
        let Some(s) = self.store.suppression_for(address, sender.id).await? else {
            return Ok(());
        };
        let scope = match s.sender_id {
            Some(_) => format!("messages from {}", sender.address),
            None => "all messages".to_string(),
        };
        let how = match channel {
            Channel::Email => "they must ask to be messaged again".to_string(),
            _ => format!("they can text START to {} to opt back in", sender.address),
        };
        Err(ReplyError::OptedOut(format!(
            "{address} opted out of {scope} ({}, {}); {what} was not sent: {how}",
            s.reason,
            s.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        )))
    }

    /// What an email reply on the conversation threads under: the latest subject (as "Re: …")
    /// and the `Message-ID` of the customer's latest email. One pass over the timeline, oldest
    /// first, a page at a time.
    async fn email_thread(&self, conversation_id: Uuid) -> Result<EmailThread, StoreError> {
        let mut thread = EmailThread::default();
        let mut after = None;
        loop {
            let page = self
                .store
                .conversation_messages(conversation_id, after, 500)
                .await?;
            for m in &page {
                if let Some(s) = m.subject.as_deref().filter(|s| !s.trim().is_empty()) {
                    thread.subject = Some(s.to_string());
                }
                if m.direction == herald_store::Direction::Inbound
                    && let Some(id) = &m.provider_message_id
                {
                    thread.parent = Some(id.clone());
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.id),
                _ => return Ok(thread),
            }
        }
    }

    /// Whether an unsubscribe link's signature is right (the page shown before the click).
    pub fn unsubscribe_link_valid(&self, key: &str, sig: &str) -> bool {
        self.unsubscribe
            .as_ref()
            .is_some_and(|links| links.verify(key, sig))
            && parse_idempotency_key(key).is_some()
    }

    /// The one-click unsubscribe of an outreach email (`List-Unsubscribe-Post`): checks the
    /// link's signature, suppresses the recipient's address for every sender, skips its
    /// pending recipients and counts the recipient as opted out of its outreach. The address;
    /// repeating it changes nothing.
    pub async fn unsubscribe(&self, key: &str, sig: &str) -> Result<String, UnsubscribeError> {
        let links = self.unsubscribe.as_ref().ok_or(UnsubscribeError::BadLink)?;
        if !links.verify(key, sig) {
            return Err(UnsubscribeError::BadLink);
        }
        let (outreach_id, recipient_id) =
            parse_idempotency_key(key).ok_or(UnsubscribeError::BadLink)?;
        let recipient = match self.store.get_recipient(outreach_id, recipient_id).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Err(UnsubscribeError::BadLink),
            Err(e) => return Err(e.into()),
        };
        let address = recipient.address;
        let added = self
            .store
            .add_suppression(&address, None, "unsubscribed by the email link")
            .await?;
        let now = self.clock.now();
        let skipped = self
            .store
            .skip_pending_for_address(&address, None, SkipReason::OptedOut, now)
            .await?;
        // The link is in that outreach's message: it counts as that outreach's opt-out.
        self.store
            .record_opt_out(outreach_id, recipient_id, now)
            .await?;
        tracing::info!(outreach = %outreach_id, added, skipped, "email recipient unsubscribed");
        Ok(address)
    }
}

/// What an agent's email threads under ([`Replies::email_thread`]).
#[derive(Debug, Default)]
struct EmailThread {
    /// The latest subject on the conversation.
    subject: Option<String>,
    /// The `Message-ID` of the customer's latest email.
    parent: Option<String>,
}

impl EmailThread {
    /// "Re: " and the latest subject (once), else a neutral one.
    fn reply_subject(&self) -> String {
        match self.subject.as_deref() {
            Some(s) if s.to_ascii_lowercase().starts_with("re:") => s.to_string(),
            Some(s) => format!("Re: {s}"),
            None => "Re: your message".to_string(),
        }
    }
}

/// The SMTP listener's mailbox: mail for an email sender's address goes into that sender's
/// inbox through [`Replies::receive_email`].
///
/// At `RCPT` every address of a domain some email sender is at is accepted alike (and
/// `postmaster` of it, RFC 5321), so that the answers do not tell which addresses exist; other
/// domains are refused. After `DATA`, mail for an address that is no sender's is dropped (and
/// logged), mail for `postmaster` is logged. Bounces and auto-replies are accepted (so the
/// sending server stops retrying) but not recorded as customer replies. Whether the `From` is
/// authenticated is [`RepliesConfig::trusted_authserv_id`]'s to say.
pub struct EmailInbox {
    replies: Replies,
}

impl EmailInbox {
    pub fn new(replies: Replies) -> Self {
        Self { replies }
    }

    async fn sender(&self, address: &str) -> Result<Option<Sender>, StoreError> {
        match EmailAddress::parse(address) {
            Ok(a) => {
                self.replies
                    .store
                    .find_sender(Channel::Email, a.as_str())
                    .await
            }
            Err(_) => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl herald_smtp_in::Mailbox for EmailInbox {
    async fn accepts(&self, rcpt: &str) -> Result<bool, String> {
        let Some((_, domain)) = rcpt.rsplit_once('@') else {
            return Ok(false);
        };
        self.replies
            .store
            .serves_email_domain(domain)
            .await
            .map_err(|e| format!("cannot look up the mailbox: {e}"))
    }

    async fn deliver(
        &self,
        mail: herald_smtp_in::ReceivedMail,
    ) -> Result<(), herald_smtp_in::Reject> {
        if mail.auto_submitted {
            tracing::info!(from = %mail.envelope_from, "ignored an automatic email (bounce or auto-reply)");
            return Ok(());
        }
        let raw_from = mail
            .from
            .clone()
            .unwrap_or_else(|| mail.envelope_from.clone());
        let from = EmailAddress::parse(&raw_from).ok();
        // The nearest message first: In-Reply-To, then References from the newest.
        let thread: Vec<String> = mail
            .in_reply_to
            .iter()
            .chain(mail.references.iter().rev())
            .cloned()
            .collect();
        let trusted = self.replies.config.trusted_authserv_id.trim();
        let verified = !trusted.is_empty() && herald_smtp_in::from_authenticated(&mail, trusted);
        let at = self.replies.clock.now();
        for rcpt in &mail.recipients {
            if rcpt == "postmaster" || rcpt.starts_with("postmaster@") {
                tracing::warn!(
                    rcpt = %rcpt,
                    from = %raw_from,
                    subject = mail.subject.as_deref().unwrap_or_default(),
                    size = mail.size,
                    "mail for postmaster (not kept: point postmaster at a real mailbox on your MX)"
                );
                continue;
            }
            let sender = match self.sender(rcpt).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    tracing::info!(rcpt = %rcpt, "dropped an email for an address that is no sender's");
                    continue;
                }
                Err(e) => return Err(herald_smtp_in::Reject::Temporary(e.to_string())),
            };
            let Some(from) = &from else {
                return Err(herald_smtp_in::Reject::Permanent(format!(
                    "the From address `{raw_from}` is not an email address Herald can answer"
                )));
            };
            let received = self
                .replies
                .receive_email(
                    &sender,
                    from,
                    verified,
                    mail.subject.as_deref(),
                    &mail.reply_text,
                    mail.message_id.as_deref(),
                    &thread,
                    at,
                )
                .await
                .map_err(|e| herald_smtp_in::Reject::Temporary(e.to_string()))?;
            tracing::info!(
                conversation = %received.conversation.id,
                duplicate = received.duplicate,
                attributed = received.attributed.is_some(),
                verified,
                "inbound email"
            );
        }
        Ok(())
    }
}

/// The (outreach, recipient) of an outreach email's Message-ID (`<key@domain>`), if it is one.
pub fn outreach_message(message_id: &str) -> Option<(Uuid, i64)> {
    let id = message_id.trim().trim_matches(['<', '>']);
    let (key, _) = id.split_once('@')?;
    parse_idempotency_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outreach_message_ids_name_their_recipient() {
        let o = Uuid::now_v7();
        let key = herald_core::idempotency_key(o, 42);
        assert_eq!(
            outreach_message(&format!("<{key}@example.com>")),
            Some((o, 42))
        );
        assert_eq!(
            outreach_message(&format!("{key}@example.com")),
            Some((o, 42))
        );
        assert_eq!(outreach_message("<CAF=abc@mail.gmail.com>"), None);
        assert_eq!(outreach_message("<reply-0190@example.com>"), None);
        assert_eq!(outreach_message(&key), None);
    }
}
