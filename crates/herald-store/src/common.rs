//! What both backends share: reading rows back into the core types, the rules a store checks on a
//! spec before writing it, the messages of refusals, and paging.

use crate::{Result, StoreError};
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, Answer, AnswerSpec, AnswerVariant, ApiToken, Campaign, CampaignSpec, Channel, E164,
    EmailAddress, FrequencyCap, Inbox, Language, Listing, PAGE_MAX, Page, Provider, Role, Schedule,
    Sender, SenderSpec, Template, VoiceSettings,
};
use jiff::Timestamp;
use uuid::Uuid;

// ---------------------------------------------------------------- time

/// The current time, cut to whole microseconds (what both schemas keep), and those microseconds.
// The catalog's created/updated stamps are the one place the store reads the clock itself: they
// are bookkeeping, never compared with the dispatcher's injected time.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> (Timestamp, crate::Ts) {
    let ts = crate::Ts::new(Timestamp::now());
    (ts.0, ts)
}

pub(crate) fn corrupt(entity: &'static str, id: Uuid, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        entity,
        id: id.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------- rows as stored

pub(crate) struct InboxRow {
    pub id: Uuid,
    pub name: String,
    pub agent_number: Option<String>,
    pub created_us: crate::Ts,
    pub updated_us: crate::Ts,
}

impl InboxRow {
    pub fn parse(self) -> Result<Inbox> {
        let agent_number = self
            .agent_number
            .map(|n| E164::parse(&n, None))
            .transpose()
            .map_err(|e| corrupt("inbox", self.id, format!("agent_number: {e}")))?;
        Ok(Inbox {
            id: self.id,
            agent_number,
            created_at: self.created_us.0,
            updated_at: self.updated_us.0,
            name: self.name,
        })
    }
}

pub(crate) struct SenderRow {
    pub id: Uuid,
    pub channel: String,
    pub address: String,
    pub inbox_id: Uuid,
    pub provider: String,
    pub created_us: crate::Ts,
    pub updated_us: crate::Ts,
}

impl SenderRow {
    pub fn parse(self) -> Result<Sender> {
        let id = self.id;
        let bad = |reason: String| corrupt("sender", id, reason);
        let channel: Channel = self
            .channel
            .parse()
            .map_err(|e| bad(format!("channel: {e}")))?;
        let address = match channel {
            Channel::Sms | Channel::Voice => E164::parse(&self.address, None)
                .map(Address::Phone)
                .map_err(|e| bad(format!("address: {e}")))?,
            Channel::Email => EmailAddress::parse(&self.address)
                .map(Address::Email)
                .map_err(|e| bad(format!("address: {e}")))?,
            Channel::Chat => return Err(bad("channel: chat has no senders".into())),
        };
        let provider: Provider = self
            .provider
            .parse()
            .map_err(|e| bad(format!("provider: {e}")))?;
        Ok(Sender {
            id,
            channel,
            address,
            inbox_id: self.inbox_id,
            provider,
            created_at: self.created_us.0,
            updated_at: self.updated_us.0,
        })
    }
}

pub(crate) struct AnswerRow {
    pub id: Uuid,
    pub name: String,
    pub created_us: crate::Ts,
    pub updated_us: crate::Ts,
}

pub(crate) struct VariantRow {
    pub answer_id: Uuid,
    pub language: String,
    pub subject: Option<String>,
    pub body: String,
    pub voice: Option<String>,
}

impl VariantRow {
    fn parse(self) -> Result<AnswerVariant> {
        let id = self.answer_id;
        let bad = |reason: String| corrupt("answer", id, reason);
        let language =
            Language::parse(&self.language).map_err(|e| bad(format!("language: {e}")))?;
        let subject = match self.subject {
            None => None,
            Some(s) => {
                Some(Template::parse(&s).map_err(|e| bad(format!("{language} subject: {e}")))?)
            }
        };
        let body = Template::parse(&self.body).map_err(|e| bad(format!("{language} body: {e}")))?;
        let voice = match self.voice {
            None => None,
            Some(s) => {
                Some(Template::parse(&s).map_err(|e| bad(format!("{language} voice: {e}")))?)
            }
        };
        Ok(AnswerVariant {
            language,
            subject,
            body,
            voice,
        })
    }
}

impl AnswerRow {
    /// The answer as just written from `spec`.
    pub fn with_variants(self, spec: &AnswerSpec) -> Result<Answer> {
        Ok(Answer {
            id: self.id,
            variants: spec.variants.clone(),
            created_at: self.created_us.0,
            updated_at: self.updated_us.0,
            name: self.name,
        })
    }

    /// `variants` are this answer's, in position order.
    pub fn parse(self, variants: Vec<VariantRow>) -> Result<Answer> {
        let id = self.id;
        let variants = variants
            .into_iter()
            .map(VariantRow::parse)
            .collect::<Result<Vec<_>>>()?;
        if variants.is_empty() {
            return Err(corrupt("answer", id, "it has no variants"));
        }
        Ok(Answer {
            id,
            name: self.name,
            variants,
            created_at: self.created_us.0,
            updated_at: self.updated_us.0,
        })
    }
}

/// Groups the rows of an answers-left-join-variants query (ordered by answer id, then position)
/// into answers. A row without a variant (`None`) is an answer that has none.
pub(crate) fn group_answers(rows: Vec<(AnswerRow, Option<VariantRow>)>) -> Result<Vec<Answer>> {
    let mut out = Vec::new();
    let mut current: Option<(AnswerRow, Vec<VariantRow>)> = None;
    for (answer, variant) in rows {
        match &mut current {
            Some((a, variants)) if a.id == answer.id => variants.extend(variant),
            _ => {
                if let Some((a, variants)) = current.take() {
                    out.push(a.parse(variants)?);
                }
                current = Some((answer, variant.into_iter().collect()));
            }
        }
    }
    if let Some((a, variants)) = current {
        out.push(a.parse(variants)?);
    }
    Ok(out)
}

/// Reads one column; a value the column type cannot decode is corrupt data, not a crash.
pub(crate) fn col<'r, R, T>(
    row: &'r R,
    entity: &'static str,
    id: Option<Uuid>,
    column: &'static str,
) -> Result<T>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    row.try_get(column).map_err(|e| match e {
        sqlx::Error::ColumnDecode { .. } => StoreError::Corrupt {
            entity,
            id: id.map_or_else(|| "(unreadable id)".to_string(), |id| id.to_string()),
            reason: e.to_string(),
        },
        other => StoreError::Database(other),
    })
}

pub(crate) struct CampaignRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub channel: String,
    pub sender_id: Option<Uuid>,
    pub language: String,
    pub answer_id: Uuid,
    /// The schedule column, already read as JSON (or the reason it is not JSON).
    pub schedule: std::result::Result<serde_json::Value, String>,
    pub quiet_hours: bool,
    /// `frequency_cap_messages` and `frequency_cap_days`.
    pub frequency_cap: (Option<i64>, Option<i64>),
    pub voice_settings: VoiceSettings,
    pub created_us: crate::Ts,
    pub updated_us: crate::Ts,
}

impl CampaignRow {
    pub fn parse(self) -> Result<Campaign> {
        let id = self.id;
        let bad = |reason: String| corrupt("campaign", id, reason);
        let channel: Channel = self
            .channel
            .parse()
            .map_err(|e| bad(format!("channel: {e}")))?;
        let language =
            Language::parse(&self.language).map_err(|e| bad(format!("language: {e}")))?;
        let input: ScheduleInput = self
            .schedule
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
            .map_err(|e| bad(format!("schedule: {e}")))?;
        let schedule = Schedule::parse(&input).map_err(|e| bad(format!("schedule: {e}")))?;
        let frequency_cap = match self.frequency_cap {
            (None, None) => None,
            (Some(messages), Some(days)) => {
                let cap = FrequencyCap {
                    messages: u32::try_from(messages)
                        .map_err(|_| bad(format!("frequency_cap_messages: {messages}")))?,
                    days: u32::try_from(days)
                        .map_err(|_| bad(format!("frequency_cap_days: {days}")))?,
                };
                cap.check()
                    .map_err(|e| bad(format!("frequency_cap: {e}")))?;
                Some(cap)
            }
            (m, d) => {
                return Err(bad(format!(
                    "frequency_cap: messages {m:?} and days {d:?} are not both set or both empty"
                )));
            }
        };
        Ok(Campaign {
            id,
            name: self.name,
            description: self.description,
            channel,
            sender_id: self.sender_id,
            language,
            answer_id: self.answer_id,
            schedule,
            quiet_hours: self.quiet_hours,
            frequency_cap,
            voice_settings: self.voice_settings,
            created_at: self.created_us.0,
            updated_at: self.updated_us.0,
        })
    }
}

/// The schedule as stored: the `ScheduleInput` shape.
pub(crate) fn schedule_json(schedule: &Schedule) -> Result<serde_json::Value> {
    serde_json::to_value(schedule.to_input()).map_err(|e| StoreError::Invalid {
        field: "schedule",
        message: format!("cannot be written as JSON: {e}"),
    })
}

pub(crate) struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_us: crate::Ts,
}

impl TokenRow {
    pub fn parse(self) -> Result<ApiToken> {
        let id = self.id;
        let role: Role = self
            .role
            .parse()
            .map_err(|e: String| corrupt("token", id, format!("role: {e}")))?;
        Ok(ApiToken {
            id,
            name: self.name,
            role,
            created_at: self.created_us.0,
        })
    }
}

// ---------------------------------------------------------------- checks before writing

/// Specs are normally made by the core's `validate`, but their fields are public: the store
/// refuses what its schema cannot hold with a message, not a database error.
pub(crate) fn check_sender(spec: &SenderSpec) -> Result<()> {
    let invalid = |field, message: String| Err(StoreError::Invalid { field, message });
    match (&spec.channel, &spec.address) {
        (Channel::Chat, _) => invalid(
            "channel",
            "chat campaigns have no sender; use sms, voice or email".into(),
        ),
        (Channel::Sms | Channel::Voice, Address::Phone(_))
        | (Channel::Email, Address::Email(_)) => Ok(()),
        (c, a) => invalid("address", format!("{a} is not an address for {c}")),
    }
}

pub(crate) fn check_answer(spec: &AnswerSpec) -> Result<()> {
    if spec.variants.is_empty() {
        return Err(StoreError::Invalid {
            field: "variants",
            message: "needs at least one language variant".into(),
        });
    }
    for (i, v) in spec.variants.iter().enumerate() {
        if spec.variants[..i].iter().any(|o| o.language == v.language) {
            return Err(StoreError::Invalid {
                field: "variants",
                message: format!("{} has more than one variant", v.language),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_campaign(spec: &CampaignSpec) -> Result<()> {
    if let Some(cap) = &spec.frequency_cap {
        if spec.channel == Channel::Chat {
            return Err(StoreError::Invalid {
                field: "frequency_cap",
                message: "chat campaigns send no messages to cap; leave it out".into(),
            });
        }
        cap.check().map_err(|message| StoreError::Invalid {
            field: "frequency_cap",
            message,
        })?;
    }
    match (spec.channel, spec.sender_id) {
        (Channel::Chat, Some(_)) => Err(StoreError::Invalid {
            field: "sender_id",
            message: "chat campaigns have no sender; leave it out".into(),
        }),
        (c, None) if c.has_senders() => Err(StoreError::Invalid {
            field: "sender_id",
            message: format!("is required: the {c} sender this campaign sends from"),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn missing(field: &'static str, entity: &str, id: Uuid) -> StoreError {
    StoreError::Invalid {
        field,
        message: format!("no {entity} has id {id}"),
    }
}

// ---------------------------------------------------------------- refusals

fn article(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms | Channel::Email => "an",
        Channel::Voice | Channel::Chat => "a",
    }
}

pub(crate) fn sender_conflict(spec: &SenderSpec) -> StoreError {
    StoreError::Conflict(format!(
        "{} is already {} {} sender",
        spec.address,
        article(spec.channel),
        spec.channel
    ))
}

pub(crate) fn campaign_conflict(spec: &CampaignSpec) -> StoreError {
    StoreError::Conflict(format!(
        "a campaign named \"{}\" already exists on {}",
        spec.name, spec.channel
    ))
}

pub(crate) fn token_conflict() -> StoreError {
    StoreError::Conflict(
        "a token with the same hash already exists; generate a new secret".to_string(),
    )
}

/// How many names a refusal lists before it says "and N more".
const NAMES_SHOWN: usize = 10;

fn name_list(names: &[String]) -> String {
    let shown = names.iter().take(NAMES_SHOWN).cloned().collect::<Vec<_>>();
    let mut list = shown.join(", ");
    if names.len() > NAMES_SHOWN {
        list.push_str(&format!(" and {} more", names.len() - NAMES_SHOWN));
    }
    list
}

pub(crate) fn sender_in_use(address: &str, campaigns: &[String]) -> StoreError {
    StoreError::InUse(format!(
        "sender {address} is used by campaigns: {}; change or delete those first",
        name_list(campaigns)
    ))
}

pub(crate) fn answer_in_use(name: &str, campaigns: &[String]) -> StoreError {
    StoreError::InUse(format!(
        "answer \"{name}\" is used by campaigns: {}; change or delete those first",
        name_list(campaigns)
    ))
}

pub(crate) fn inbox_in_use(name: &str, senders: &[String]) -> StoreError {
    StoreError::InUse(format!(
        "inbox \"{name}\" is linked to senders: {}; link them to another inbox or delete them first",
        name_list(senders)
    ))
}

pub(crate) fn sender_channel_in_use(
    address: &str,
    channel: &str,
    campaigns: &[String],
) -> StoreError {
    StoreError::InUse(format!(
        "sender {address} is used by {channel} campaigns: {}; it keeps its channel while they use it",
        name_list(campaigns)
    ))
}

pub(crate) fn answer_change_in_use(name: &str, campaigns: &[String]) -> StoreError {
    StoreError::InUse(format!(
        "answer \"{name}\" would lose a variant (or, for email, a subject) that campaigns use: {}; \
         keep it or change those campaigns first",
        name_list(campaigns)
    ))
}

/// Whether a campaign on `channel` in `language` could no longer send `spec`: the language has
/// no variant, or an email campaign's variant has no subject.
pub(crate) fn breaks_campaign(spec: &AnswerSpec, channel: &str, language: &str) -> bool {
    match spec
        .variants
        .iter()
        .find(|v| v.language.as_str() == language)
    {
        None => true,
        Some(v) => channel == Channel::Email.as_str() && v.subject.is_none(),
    }
}

/// The backstop when a foreign key refuses a delete the checks let through (a race).
pub(crate) fn still_referenced(entity: &str, id: Uuid) -> StoreError {
    StoreError::InUse(format!(
        "{entity} {id} is still in use by other records; change or delete those first"
    ))
}

/// A database error sorted by the constraint it broke, so each write can say in words what went
/// wrong; anything else stays a database error.
pub(crate) enum Violation {
    Unique(sqlx::Error),
    ForeignKey(sqlx::Error),
    Check(sqlx::Error),
    Other(sqlx::Error),
}

impl Violation {
    pub fn of(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let kind = e.as_database_error().map(|d| d.kind());
        let v = match kind {
            Some(ErrorKind::UniqueViolation) => Violation::Unique(e),
            Some(ErrorKind::ForeignKeyViolation) => Violation::ForeignKey(e),
            Some(ErrorKind::CheckViolation) => Violation::Check(e),
            _ => return Violation::Other(e),
        };
        if let Violation::Unique(e) | Violation::ForeignKey(e) | Violation::Check(e) = &v {
            tracing::debug!(error = %e, "a constraint refused a write");
        }
        v
    }
}

impl From<Violation> for StoreError {
    fn from(v: Violation) -> Self {
        match v {
            Violation::Unique(e)
            | Violation::ForeignKey(e)
            | Violation::Check(e)
            | Violation::Other(e) => StoreError::Database(e),
        }
    }
}

pub(crate) fn sender_violation(e: sqlx::Error, spec: &SenderSpec) -> StoreError {
    match Violation::of(e) {
        Violation::Unique(_) => sender_conflict(spec),
        Violation::ForeignKey(_) => missing("inbox_id", "inbox", spec.inbox_id),
        Violation::Check(_) => StoreError::Invalid {
            field: "channel",
            message: format!(
                "a {} sender with provider {} cannot be stored; use sms, voice or email",
                spec.channel, spec.provider
            ),
        },
        v => v.into(),
    }
}

pub(crate) fn campaign_violation(e: sqlx::Error, spec: &CampaignSpec) -> StoreError {
    match Violation::of(e) {
        Violation::Unique(_) => campaign_conflict(spec),
        Violation::ForeignKey(_) => StoreError::Invalid {
            field: "sender_id",
            message: format!(
                "the sender or answer this campaign names no longer exists (sender {}, answer {}); pick them again",
                spec.sender_id
                    .map_or_else(|| "none".to_string(), |id| id.to_string()),
                spec.answer_id
            ),
        },
        Violation::Check(_) => StoreError::Invalid {
            field: "sender_id",
            message: "chat campaigns have no sender and every other campaign has one".into(),
        },
        v => v.into(),
    }
}

pub(crate) fn duplicate_variant(language: &Language) -> StoreError {
    StoreError::Invalid {
        field: "variants",
        message: format!("{language} has more than one variant"),
    }
}

// ---------------------------------------------------------------- paging

/// The page size a store serves: `Page::new` keeps limits in 1..=PAGE_MAX, and a hand-made page
/// outside that is clamped rather than refused (a zero limit could never say where to go on).
pub(crate) fn page_limit(page: &Page) -> usize {
    page.limit.clamp(1, PAGE_MAX) as usize
}

/// Rows to fetch for a page: one more than it holds, to learn whether another page follows.
pub(crate) fn fetch_count(page: &Page) -> i64 {
    page_limit(page) as i64 + 1
}

/// Cuts the extra row off and sets the cursor when there was one.
pub(crate) fn listing<T>(page: &Page, mut items: Vec<T>, id: impl Fn(&T) -> Uuid) -> Listing<T> {
    let limit = page_limit(page);
    let next_after = if items.len() > limit {
        items.truncate(limit);
        items.last().map(id)
    } else {
        None
    };
    Listing { items, next_after }
}

/// The SQL that reads the migrations a database has applied (sqlx's own table).
pub(crate) const APPLIED_MIGRATIONS: &str =
    "SELECT version FROM _sqlx_migrations WHERE success = true";

/// How many of `migrator`'s migrations are not among `applied` (the versions
/// [`APPLIED_MIGRATIONS`] read): all of them when that table is missing, as on a database never
/// migrated.
pub(crate) fn pending_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: std::result::Result<Vec<i64>, sqlx::Error>,
) -> crate::Result<usize> {
    let applied: std::collections::HashSet<i64> = match applied {
        Ok(versions) => versions.into_iter().collect(),
        Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => {
            std::collections::HashSet::new()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (1..=12).map(|i| format!("c{i}")).collect();
        assert_eq!(
            name_list(&names),
            "c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 and 2 more"
        );
        assert_eq!(name_list(&names[..2]), "c1, c2");
    }

    #[test]
    fn a_page_holds_its_limit_and_points_past_it() {
        let page = Page {
            limit: 2,
            after: None,
        };
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let l = listing(&page, ids.clone(), |u| *u);
        assert_eq!(l.items, ids[..2]);
        assert_eq!(l.next_after, Some(ids[1]));
        let l = listing(&page, ids[..2].to_vec(), |u| *u);
        assert_eq!(l.next_after, None);
        let zero = Page {
            limit: 0,
            after: None,
        };
        assert_eq!(fetch_count(&zero), 2);
    }

    #[test]
    fn now_is_whole_microseconds() {
        let (ts, us) = now();
        assert_eq!(ts, us.0);
        assert_eq!(ts.subsec_nanosecond() % 1_000, 0);
    }
}
