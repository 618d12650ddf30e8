//! Test sends: a campaign's answer, rendered for one row, sent to the team's own number or
//! address through the campaign's sender, outside any outreach — to see the message as a
//! recipient will before launching. Each is recorded before the provider is called and
//! completed with the provider's answer (`herald_store::TestSends`), so no test goes out
//! unrecorded, whatever happens in between.

use super::{Replies, ReplyError};
use herald_channels::{OutboundMessage, SendError};
use herald_core::{Address, Channel, E164, EmailAddress, Renderer};
use herald_store::{NewTestSend, TestSend};
use serde_json::{Map, Value};
use uuid::Uuid;

/// What to send as a test, and to whom.
#[derive(Debug, Clone)]
pub struct TestSendRequest<'a> {
    pub campaign_id: Uuid,
    /// The number (E.164, with its `+` and country code) or email address to send the test to.
    pub to: &'a str,
    /// The row's values, by column name, as an uploaded CSV row would give them.
    pub variables: &'a Map<String, Value>,
    /// Who asks for it: the user's email or the API token's name.
    pub requested_by: &'a str,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ReplyError {
    ReplyError::Invalid {
        field,
        message: message.into(),
    }
}

impl Replies {
    /// Renders the campaign's answer for `req.variables` and sends it to `req.to` through the
    /// campaign's sender. `Ok` with the record in state `sent` when the provider accepted it;
    /// [`ReplyError::Send`] when it did not (the record, state `failed`, says so too). Nothing
    /// is sent, and nothing recorded, when the campaign cannot send (chat, no sender, provider
    /// not configured), the address is not one of the channel's or it opted out of the sender.
    pub async fn test_send(&self, req: &TestSendRequest<'_>) -> Result<TestSend, ReplyError> {
        let campaign = self.store.get_campaign(req.campaign_id).await?;
        let Some(sender_id) = campaign.sender_id else {
            return Err(invalid(
                "campaign",
                format!(
                    "the campaign `{}` has no sender: {} campaigns send no messages to test",
                    campaign.name, campaign.channel
                ),
            ));
        };
        let sender = self.store.get_sender(sender_id).await?;
        let to = match campaign.channel {
            Channel::Sms | Channel::Voice => E164::parse(req.to.trim(), None)
                .map(Address::Phone)
                .map_err(|e| invalid("to", e.to_string()))?,
            Channel::Email => EmailAddress::parse(req.to.trim())
                .map(Address::Email)
                .map_err(|e| invalid("to", e.to_string()))?,
            Channel::Chat => return Err(invalid("campaign", "chat campaigns have no sender")),
        };
        let to_text = to.to_string();
        self.refuse_opted_out(&to_text, &sender, campaign.channel, "the test")
            .await?;
        let answer = self.store.get_answer(campaign.answer_id).await?;
        let Some(variant) = answer
            .variants
            .iter()
            .find(|v| v.language == campaign.language)
        else {
            return Err(invalid(
                "campaign",
                format!(
                    "the answer `{}` has no {} variant",
                    answer.name, campaign.language
                ),
            ));
        };
        // As an outreach renders it: an email's Markdown as an HTML and a text part, a call's
        // voice script.
        let renderer = Renderer::for_channel(variant, campaign.channel);
        let rendered = renderer
            .and_then(|r| r.render(req.variables))
            .map_err(|e| invalid("variables", e.to_string()))?;
        let Some(transport) = self
            .transports
            .get(sender.provider)
            .filter(|t| t.supports(campaign.channel))
        else {
            return Err(ReplyError::Send(SendError::permanent(
                "config",
                format!(
                    "the sender {} uses the {} provider, which is not configured for {} messages",
                    sender.address,
                    sender.provider.as_str(),
                    campaign.channel
                ),
            )));
        };
        let agent_number = match campaign.channel {
            Channel::Voice => self.store.get_inbox(sender.inbox_id).await?.agent_number,
            _ => None,
        };
        let record = self
            .store
            .begin_test_send(&NewTestSend {
                campaign_id: campaign.id,
                channel: campaign.channel,
                to: to_text,
                subject: rendered.subject.clone(),
                body: rendered.body.clone(),
                requested_by: req.requested_by.to_string(),
            })
            .await?;
        let msg = OutboundMessage {
            idempotency_key: format!("test-{}", record.id.simple()),
            channel: campaign.channel,
            from: sender.address.clone(),
            to,
            subject: rendered.subject,
            body: rendered.body,
            html: rendered.html,
            language: campaign.language.clone(),
            campaign_id: campaign.id,
            outreach_id: Uuid::nil(),
            recipient_id: 0,
            // A test is no subscription: there is nothing to unsubscribe from.
            unsubscribe_url: None,
            agent_number,
            voice_settings: campaign.voice_settings.clone(),
            in_reply_to: None,
        };
        tracing::info!(campaign = %campaign.id, test_send = %record.id, "test send");
        match transport.send(&msg).await {
            Ok(accepted) => Ok(self
                .store
                .finish_test_send(record.id, accepted.provider_message_id.as_deref(), None)
                .await?),
            Err(e) => {
                self.store
                    .finish_test_send(record.id, None, Some(&e.to_string()))
                    .await?;
                Err(ReplyError::Send(e))
            }
        }
    }
}
