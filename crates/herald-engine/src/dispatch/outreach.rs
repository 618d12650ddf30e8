//! One outreach's turn in a tick: what it needs to send ([`Ctx`]), the recovery of a dead
//! Herald's sends, and the moves of its life (start, expire, complete).

use super::{DispatchError, Dispatcher, TickReport};
use herald_channels::Transport;
use herald_core::outreach::{CrashPolicy, OutreachAction, OutreachClock, OutreachStatus, decide};
use herald_core::quiet::SendingHours;
use herald_core::{Campaign, E164, Renderer, Sender};
use herald_store::{LiveOutreach, StoreError};
use std::sync::Arc;

/// What is needed to send for one outreach's campaign, built once per tick.
pub(super) struct Ctx {
    pub(super) campaign: Campaign,
    pub(super) sender: Sender,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) renderer: Renderer,
    pub(super) hours: SendingHours,
    pub(super) policy: CrashPolicy,
    pub(super) rate: f64,
    /// The sender's messages a day, if capped (`[dispatch.daily_caps]`).
    pub(super) daily_cap: Option<u64>,
    /// Voice: where a person who presses 1 is connected (the sender's inbox's agent number).
    pub(super) agent_number: Option<E164>,
}

impl Dispatcher {
    /// One outreach's turn in a tick: resolve a dead Herald's sends, start, expire or complete
    /// it, then send what is due. Every log line inside carries the outreach id.
    #[tracing::instrument(name = "outreach", skip_all, fields(outreach = %o.id))]
    pub(super) async fn tick_outreach(
        &self,
        o: &LiveOutreach,
        ctx: Result<Arc<Ctx>, String>,
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        let now = self.clock.now();
        // Recovery may put recipients back in the queue: they are sent in this same turn.
        let mut has_pending = o.has_pending;
        if o.has_in_flight {
            let policy = match &ctx {
                Ok(c) => c.policy,
                // Without its campaign the channel is unknown: never risk a duplicate.
                Err(_) => CrashPolicy::AtMostOnce,
            };
            let n = self.store.recover_expired_leases(o.id, now, policy).await?;
            if n > 0 {
                tracing::warn!(
                    recipients = n,
                    ?policy,
                    "resolved sends of a Herald that stopped mid-send"
                );
            }
            report.recovered += n;
            self.metrics.leases_recovered(n);
            has_pending |= n > 0;
        }
        let clock = OutreachClock {
            status: o.status,
            start_at: o.start_at,
            end_at: o.end_at,
            pending: u64::from(has_pending),
            in_flight: u64::from(o.has_in_flight),
        };
        let mut sending = o.status == OutreachStatus::InProgress;
        match decide(&clock, now) {
            OutreachAction::Wait { .. } => {}
            OutreachAction::Start => {
                if self.store.start_outreach(o.id, now).await? {
                    tracing::info!("outreach started");
                    report.started += 1;
                }
                sending = true;
            }
            OutreachAction::ExpirePending => {
                let n = self.store.expire_pending(o.id, now).await?;
                tracing::info!(recipients = n, "end time passed; unsent recipients expired");
                report.expired += n;
                sending = false;
                if !o.has_in_flight && self.store.complete_outreach(o.id, now).await? {
                    report.completed += 1;
                }
            }
            OutreachAction::Complete => {
                if self.store.complete_outreach(o.id, now).await? {
                    tracing::info!("outreach completed");
                    report.completed += 1;
                }
                sending = false;
            }
        }
        if sending && has_pending {
            self.send_due(o, &ctx, report).await?;
        }
        Ok(())
    }
    /// The campaign, sender, transport and renderer of an outreach; `Err` with words for a person
    /// when the outreach cannot be sent as configured (its recipients then fail with them).
    pub(super) async fn context(
        &self,
        campaign_id: uuid::Uuid,
    ) -> Result<Result<Ctx, String>, StoreError> {
        let campaign = match self.store.get_campaign(campaign_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => return Ok(Err("the campaign was deleted".into())),
            Err(e) => return Err(e),
        };
        let Some(sender_id) = campaign.sender_id else {
            return Ok(Err(format!(
                "the campaign `{}` has no sender to send from",
                campaign.name
            )));
        };
        let sender = self.store.get_sender(sender_id).await?;
        let agent_number = self.store.get_inbox(sender.inbox_id).await?.agent_number;
        let answer = self.store.get_answer(campaign.answer_id).await?;
        let Some(variant) = answer
            .variants
            .iter()
            .find(|v| v.language == campaign.language)
        else {
            return Ok(Err(format!(
                "the answer `{}` has no {} variant",
                answer.name, campaign.language
            )));
        };
        // Email bodies are Markdown, sent as HTML and plain text; calls say the voice script.
        let compiled = Renderer::for_channel(variant, campaign.channel);
        let renderer = match compiled {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err(format!(
                    "the answer `{}` cannot be used: {e}",
                    answer.name
                )));
            }
        };
        let Some(transport) = self.transports.get(sender.provider) else {
            return Ok(Err(format!(
                "the sender {} uses the {} provider, which is not configured; add [channels.{}] to herald.toml, then retry the failed recipients",
                sender.address,
                sender.provider.as_str(),
                sender.provider.as_str()
            )));
        };
        if !transport.supports(campaign.channel) {
            return Ok(Err(format!(
                "the {} provider cannot carry {} messages",
                sender.provider.as_str(),
                campaign.channel
            )));
        }
        let hours = SendingHours::new(&campaign.schedule, campaign.channel, campaign.quiet_hours);
        let rate = self.config.rates.for_sender(&sender);
        let daily_cap = self.config.daily_caps.for_sender(&sender);
        Ok(Ok(Ctx {
            policy: CrashPolicy::for_channel(campaign.channel),
            campaign,
            sender,
            transport,
            renderer,
            hours,
            rate,
            daily_cap,
            agent_number,
        }))
    }
}
