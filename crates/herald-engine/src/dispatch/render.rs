//! One recipient's message: their time zone (for their sending hours) and the rendered message
//! with its cost in the sender's tokens.

use super::Dispatcher;
use super::outreach::Ctx;
use herald_channels::OutboundMessage;
use herald_core::outreach::idempotency_key;
use herald_core::quiet::resolve_recipient_zone;
use herald_core::{Address, Channel, E164, EmailAddress};
use herald_store::{ClaimedRecipient, LiveOutreach, Outcome};
use jiff::tz::TimeZone;
use std::collections::HashMap;

impl Dispatcher {
    /// The recipient's time zone: the CSV's, else their phone region's single zone, else the
    /// schedule's. Phone regions are looked up once per number prefix in a batch.
    pub(super) fn zone_of(
        &self,
        r: &ClaimedRecipient,
        ctx: &Ctx,
        cache: &mut HashMap<String, TimeZone>,
    ) -> TimeZone {
        let schedule = &ctx.campaign.schedule;
        if let Some(name) = r.timezone.as_deref().filter(|n| !n.trim().is_empty()) {
            if let Some(tz) = cache.get(name) {
                return tz.clone();
            }
            let (tz, _) = resolve_recipient_zone(Some(name), None, schedule);
            cache.insert(name.to_string(), tz.clone());
            return tz;
        }
        if !ctx.campaign.channel.is_phone() {
            return schedule.timezone().clone();
        }
        // `+` and the first seven digits (country code and area or operator code) decide the
        // region wherever one calling code is shared by several regions.
        let prefix: String = r.address.chars().take(8).collect();
        if let Some(tz) = cache.get(&prefix) {
            return tz.clone();
        }
        let phone = E164::parse(&r.address, None).ok();
        let (tz, _) = resolve_recipient_zone(None, phone.as_ref(), schedule);
        cache.insert(prefix, tz.clone());
        tz
    }

    /// The rendered message for a recipient and what it costs in the sender's tokens, or the
    /// outcome that stands in for it. Carriers meter SMS by the segment: a two-part text costs
    /// two tokens; the segments are counted here, once per message.
    pub(super) fn message(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        r: &ClaimedRecipient,
    ) -> Result<(OutboundMessage, u32), Outcome> {
        let invalid = |message: String| Outcome::Failed {
            code: Some("invalid_address".into()),
            message,
        };
        let to = match ctx.campaign.channel {
            Channel::Email => EmailAddress::parse(&r.address)
                .map(Address::Email)
                .map_err(|e| invalid(e.to_string()))?,
            _ => E164::parse(&r.address, None)
                .map(Address::Phone)
                .map_err(|e| invalid(e.to_string()))?,
        };
        let rendered =
            ctx.renderer
                .render_json(&r.variables_json)
                .map_err(|e| Outcome::Failed {
                    code: Some("render".into()),
                    message: e.to_string(),
                })?;
        let key = idempotency_key(o.id, r.id);
        let unsubscribe_url = match (&self.unsubscribe, ctx.campaign.channel) {
            (Some(links), Channel::Email) => Some(links.url(&key)),
            _ => None,
        };
        let mut body = rendered.body;
        let mut html = rendered.html;
        if let (Some(url), Some(html)) = (&unsubscribe_url, html.as_mut()) {
            herald_core::markdown::add_footer(&mut body, html, url);
        }
        let cost = if ctx.campaign.channel == Channel::Sms {
            let info = herald_core::sms::analyze(&body);
            tracing::debug!(
                recipient = r.id,
                encoding = info.encoding.as_str(),
                segments = info.segments,
                "sms rendered"
            );
            info.segments.max(1)
        } else {
            1
        };
        let message = OutboundMessage {
            idempotency_key: key,
            channel: ctx.campaign.channel,
            from: ctx.sender.address.clone(),
            to,
            subject: rendered.subject,
            body,
            html,
            language: ctx.campaign.language.clone(),
            campaign_id: ctx.campaign.id,
            outreach_id: o.id,
            recipient_id: r.id,
            unsubscribe_url,
            agent_number: match ctx.campaign.channel {
                Channel::Voice => ctx.agent_number.clone(),
                _ => None,
            },
            voice_settings: match ctx.campaign.channel {
                Channel::Voice => ctx.campaign.voice_settings.clone(),
                _ => Default::default(),
            },
            in_reply_to: None,
        };
        Ok((message, cost))
    }
}
