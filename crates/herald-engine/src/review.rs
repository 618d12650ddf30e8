//! The review of an upload before it is launched: the file read and checked exactly as a launch
//! reads it, but nothing stored. It says what a launch would do — the summary and the first row
//! errors, the columns, the message rendered for the first rows, warnings (recipients this
//! campaign already reached in the last 30 days, recipients the frequency cap would skip, an end
//! time that would leave recipients unsent) — and forecasts when the first and the last message
//! would go out ([`herald_core::forecast`]).
//!
//! A review keeps nothing: launching is uploading the same file again without `dry_run`. The
//! review's `digest` (SHA-256 of the file), sent back with the launch as `reviewed`, makes sure
//! the file launched is the file reviewed ([`check_reviewed`]).

use crate::dispatch::DispatchConfig;
use crate::import::{
    ImportOutreachError, OutreachUpload, Prepared, invalid, prepare, read_outcome,
};
use herald_core::forecast::{Forecast, ForecastInput, ZoneGroup, forecast};
use herald_core::quiet::{ZoneSource, resolve_recipient_zone};
use herald_core::sms::SmsInfo;
use herald_core::{Address, Channel, SendingHours};
use herald_import::{ImportSink, Recipient, RowError};
use herald_store::{ImportSummary, Store};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows whose message the review shows.
pub const SAMPLE_ROWS: usize = 3;
/// Rows whose message is rendered to measure what a message costs (SMS segments).
const COST_ROWS: usize = 100;
/// Row errors the review lists (all of them are counted).
pub const ERROR_ROWS: usize = 10;
/// How far back "already sent this campaign" looks.
pub const RECENT_DAYS: i64 = 30;

/// What launching an upload would do. Nothing of it is stored.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutreachReview {
    pub file_name: String,
    /// SHA-256 of the file, hex. Send it as the `reviewed` field of the launch: a launch whose
    /// file differs is refused.
    pub digest: String,
    pub summary: ImportSummary,
    /// The contact column as spelled in the file.
    pub contact_column: String,
    pub timezone_column: Option<String>,
    /// The other columns: the message's variables.
    pub variables: Vec<String>,
    /// The first row errors (`summary.invalid` counts them all).
    pub errors: Vec<ReviewRowError>,
    /// The message as the first recipients would get it.
    pub samples: Vec<ReviewSample>,
    pub warnings: Vec<ReviewWarning>,
    /// Recipients by the time zone their hours are read in, most first.
    pub zones: Vec<ZoneCount>,
    pub forecast: Forecast,
    /// What the forecast assumes, in a sentence.
    pub forecast_basis: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRowError {
    pub line: u64,
    pub column: Option<String>,
    pub value: String,
    pub reason: String,
}

/// One recipient's message.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewSample {
    pub line: u64,
    pub to: String,
    pub subject: Option<String>,
    /// The SMS text, what a call says, or the email's plain-text part.
    pub body: String,
    /// The email's HTML part.
    pub html: Option<String>,
    /// SMS: its encoding and segments.
    pub sms: Option<SmsInfo>,
}

/// Something the admin should know before launching.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewWarning {
    /// `sent_recently`, `frequency_cap`, `expire`, `never`, `invalid_rows`, `opted_out`.
    pub code: String,
    /// Recipients (or rows) it concerns.
    pub count: u64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneCount {
    /// IANA name.
    pub zone: String,
    /// `csv`, `phone_region` or `schedule`: where the zone came from.
    pub source: ZoneSource,
    pub recipients: u64,
}

/// The SHA-256 of a spooled upload, hex; the file is left at its start.
pub fn file_digest(file: &mut std::fs::File) -> std::io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Refuses a launch whose file is not the one reviewed (`reviewed`: the review's digest).
pub fn check_reviewed(file: &mut std::fs::File, reviewed: &str) -> Result<(), ImportOutreachError> {
    let digest = file_digest(file)?;
    if !digest.eq_ignore_ascii_case(reviewed.trim()) {
        return Err(invalid(
            "reviewed",
            "the file is not the one reviewed (it changed since); review it again before \
             launching",
        ));
    }
    Ok(())
}

/// What the reading thread gathers for the review while the file is read.
struct ReviewSink {
    schedule: herald_core::Schedule,
    /// By zone name: the zone, where it came from, recipients.
    zones: HashMap<String, (jiff::tz::TimeZone, ZoneSource, u64)>,
    /// Line, address, variables of the first recipients to be messaged.
    rows: Vec<(u64, String, String)>,
    errors: Vec<RowError>,
    /// Addresses of the recipients to be messaged, for the store's checks.
    tx: mpsc::Sender<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the review stopped")]
struct ReviewGone;

impl ImportSink for ReviewSink {
    type Error = ReviewGone;

    fn recipients(&mut self, batch: Vec<Recipient>) -> Result<(), Self::Error> {
        let mut addresses = Vec::with_capacity(batch.len());
        for r in batch {
            if r.suppressed {
                continue;
            }
            let phone = match &r.address {
                Address::Phone(p) => Some(p),
                Address::Email(_) => None,
            };
            let (zone, source) =
                resolve_recipient_zone(r.timezone.as_deref(), phone, &self.schedule);
            let name = zone.iana_name().unwrap_or("UTC").to_string();
            self.zones.entry(name).or_insert((zone, source, 0)).2 += 1;
            let address = r.address.into_string();
            if self.rows.len() < COST_ROWS {
                self.rows.push((r.line, address.clone(), r.variables_json));
            }
            addresses.push(address);
        }
        self.tx.blocking_send(addresses).map_err(|_| ReviewGone)
    }

    fn row_errors(&mut self, batch: Vec<RowError>) -> Result<(), Self::Error> {
        let room = ERROR_ROWS.saturating_sub(self.errors.len());
        self.errors.extend(batch.into_iter().take(room));
        Ok(())
    }
}

/// Reads `upload` as a launch would and says what launching it would do, storing nothing.
/// `now` is when the review is made (a start in the past starts now).
pub async fn review_outreach(
    store: Arc<dyn Store>,
    mut upload: OutreachUpload,
    dispatch: &DispatchConfig,
    now: Timestamp,
) -> Result<OutreachReview, ImportOutreachError> {
    let Prepared {
        campaign,
        sender,
        renderer,
        options,
        suppressed,
        ..
    } = prepare(store.as_ref(), &upload).await?;
    let digest = {
        let mut file = upload.file.try_clone()?;
        tokio::task::spawn_blocking(move || file_digest(&mut file))
            .await
            .map_err(|e| ImportOutreachError::Internal(e.to_string()))??
    };
    upload.file.seek(SeekFrom::Start(0))?;

    let (tx, mut rx) = mpsc::channel::<Vec<String>>(4);
    let file = upload.file;
    let schedule = campaign.schedule.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let check = |a: &Address| suppressed.contains(a.as_str());
        let mut sink = ReviewSink {
            schedule,
            zones: HashMap::new(),
            rows: Vec::new(),
            errors: Vec::new(),
            tx,
        };
        let read = herald_import::import(file, &options, &check, &mut sink, &|_| {});
        (read, sink.zones, sink.rows, sink.errors)
    });

    let recent_since = now
        .checked_sub(SignedDuration::from_hours(24 * RECENT_DAYS))
        .unwrap_or(now);
    // The workspace's cap and the campaign's: a recipient over either is skipped.
    let caps: Vec<herald_core::FrequencyCap> = dispatch
        .frequency_cap
        .into_iter()
        .chain(campaign.frequency_cap)
        .collect();
    let mut sent_recently = 0u64;
    let mut capped = 0u64;
    let mut check_error = None;
    while let Some(addresses) = rx.recv().await {
        let checked = async {
            sent_recently += store
                .campaign_contacts_among(campaign.id, &addresses, recent_since)
                .await?;
            let mut over = std::collections::HashSet::new();
            for cap in &caps {
                let counts = store.contacts_since(&addresses, cap.since(now)).await?;
                over.extend(
                    counts
                        .into_iter()
                        .filter(|(_, n)| *n >= u64::from(cap.messages))
                        .map(|(a, _)| a),
                );
            }
            capped += over.len() as u64;
            Ok::<(), herald_store::StoreError>(())
        }
        .await;
        if let Err(e) = checked {
            check_error = Some(e);
            break;
        }
    }
    drop(rx);
    let (read, zones, rows, errors) = reader
        .await
        .map_err(|e| ImportOutreachError::Internal(e.to_string()))?;
    if let Some(e) = check_error {
        return Err(e.into());
    }
    let summary = read_outcome(Ok(read))?;

    // The message for the first rows, and what one costs the sender.
    let mut samples = Vec::new();
    let mut segments = 0u64;
    let mut rendered_rows = 0u64;
    for (line, to, vars) in &rows {
        let Ok(message) = renderer.render_json(vars) else {
            continue;
        };
        let sms =
            (campaign.channel == Channel::Sms).then(|| herald_core::sms::analyze(&message.body));
        if let Some(info) = &sms {
            segments += u64::from(info.segments.max(1));
            rendered_rows += 1;
        }
        if samples.len() < SAMPLE_ROWS {
            samples.push(ReviewSample {
                line: *line,
                to: to.clone(),
                subject: message.subject,
                body: message.body,
                html: message.html,
                sms,
            });
        }
    }
    let cost = if rendered_rows > 0 {
        segments as f64 / rendered_rows as f64
    } else {
        1.0
    };

    // The forecast.
    let hours = SendingHours::new(&campaign.schedule, campaign.channel, campaign.quiet_hours);
    let rate = sender
        .as_ref()
        .map_or(f64::INFINITY, |s| dispatch.rates.for_sender(s));
    let daily_cap = sender
        .as_ref()
        .and_then(|s| dispatch.daily_caps.for_sender(s))
        .and_then(|cap| {
            jiff::tz::TimeZone::get(&dispatch.daily_caps.zone)
                .ok()
                .map(|z| (cap, z))
        });
    let start = upload.start_at.max(now);
    // Capped recipients are skipped, not sent: they take no turn.
    let mut groups: Vec<ZoneGroup> = Vec::new();
    let mut zone_counts: Vec<ZoneCount> = zones
        .iter()
        .map(|(name, (_, source, n))| ZoneCount {
            zone: name.clone(),
            source: *source,
            recipients: *n,
        })
        .collect();
    zone_counts.sort_by(|a, b| b.recipients.cmp(&a.recipients).then(a.zone.cmp(&b.zone)));
    let messaged: u64 = zones.values().map(|(_, _, n)| n).sum();
    let mut to_skip = capped.min(messaged);
    for (zone, _, n) in zones.into_values() {
        // Spread the capped ones over the zones in proportion (which ones is not known here).
        let skip = if messaged == 0 {
            0
        } else {
            (u128::from(capped.min(messaged)) * u128::from(n) / u128::from(messaged)) as u64
        }
        .min(to_skip)
        .min(n);
        to_skip -= skip;
        groups.push(ZoneGroup {
            zone: Some(zone),
            recipients: n - skip,
        });
    }
    let forecast = forecast(&ForecastInput {
        hours: &hours,
        start,
        end: upload.end_at,
        rate,
        cost,
        daily_cap: daily_cap.clone(),
        groups,
    });
    let forecast_basis = basis(&campaign, rate, cost, daily_cap.map(|(c, _)| c));

    let mut warnings = Vec::new();
    if sent_recently > 0 {
        let message = if sent_recently == messaged {
            format!(
                "every recipient of this list was already sent this campaign in the last \
                 {RECENT_DAYS} days: is this list a repeat?"
            )
        } else {
            format!(
                "{sent_recently} of {messaged} recipients {} already sent this campaign in the \
                 last {RECENT_DAYS} days",
                were(sent_recently)
            )
        };
        warnings.push(ReviewWarning {
            code: "sent_recently".into(),
            count: sent_recently,
            message,
        });
    }
    if capped > 0 {
        let limits = caps
            .iter()
            .map(|c| {
                format!(
                    "{} or more messages in the last {} days",
                    c.messages, c.days
                )
            })
            .collect::<Vec<_>>()
            .join(", or ");
        warnings.push(ReviewWarning {
            code: "frequency_cap".into(),
            count: capped,
            message: format!(
                "{} {} already sent {limits}; the frequency cap will skip {}",
                things(capped, "recipient"),
                were(capped),
                if capped == 1 { "it" } else { "them" }
            ),
        });
    }
    if forecast.expire > 0 {
        warnings.push(ReviewWarning {
            code: "expire".into(),
            count: forecast.expire,
            message: format!(
                "{} would still be waiting when the outreach ends, and expire unsent; move the \
                 end later or widen the sending hours",
                things(forecast.expire, "recipient")
            ),
        });
    }
    if forecast.never > 0 {
        warnings.push(ReviewWarning {
            code: "never".into(),
            count: forecast.never,
            message: format!(
                "{} would never be sent: the campaign's sending hours never open for {}",
                things(forecast.never, "recipient"),
                if forecast.never == 1 { "it" } else { "them" }
            ),
        });
    }
    if summary.invalid > 0 {
        warnings.push(ReviewWarning {
            code: "invalid_rows".into(),
            count: summary.invalid,
            message: format!(
                "{} refused and would not be messaged; see the rows below",
                match summary.invalid {
                    1 => "1 row was".to_string(),
                    n => format!("{n} rows were"),
                }
            ),
        });
    }
    if summary.suppressed > 0 {
        warnings.push(ReviewWarning {
            code: "opted_out".into(),
            count: summary.suppressed,
            message: format!(
                "{} opted out and will not be messaged",
                things(summary.suppressed, "recipient")
            ),
        });
    }
    Ok(OutreachReview {
        file_name: upload.file_name,
        digest,
        summary: ImportSummary {
            rows: summary.rows,
            accepted: summary.accepted,
            invalid: summary.invalid,
            duplicates: summary.duplicates,
            suppressed: summary.suppressed,
            encoding: summary.encoding.as_str().to_string(),
        },
        contact_column: summary.contact_column,
        timezone_column: summary.timezone_column,
        variables: summary.variables,
        errors: errors
            .into_iter()
            .map(|e| ReviewRowError {
                line: e.line,
                column: e.column,
                value: e.value,
                reason: e.reason,
            })
            .collect(),
        samples,
        warnings,
        zones: zone_counts,
        forecast,
        forecast_basis,
    })
}

/// "1 recipient", "3 recipients".
fn things(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn were(n: u64) -> &'static str {
    if n == 1 { "was" } else { "were" }
}

/// What a forecast assumes, said once.
fn basis(campaign: &herald_core::Campaign, rate: f64, cost: f64, daily: Option<u64>) -> String {
    let mut s = if rate.is_finite() {
        if campaign.channel == Channel::Sms && cost > 1.0 {
            format!("the sender's rate of {rate} segments a second, {cost:.1} segments a message")
        } else {
            format!("the sender's rate of {rate} messages a second")
        }
    } else {
        "no rate limit on the sender".to_string()
    };
    if let Some(cap) = daily {
        s.push_str(&format!(", at most {cap} a day"));
    }
    s.push_str(
        ", each recipient's sending hours, and that the sender sends nothing else meanwhile",
    );
    s
}
