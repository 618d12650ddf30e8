//! The inbox in the web UI: conversations newest first, a conversation's timeline, and an
//! agent's reply (sent by [`herald_engine::Replies::agent_reply`], which refuses opted-out
//! customers). Agents and admins alike work here.

use super::outreaches::{checked_form, store_problem};
use super::session::{Chrome, CurrentUser};
use super::{render, render_status};
use crate::AppState;
use crate::web::session::WebId;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herald_core::{Channel, Inbox, Page};
use herald_engine::ReplyError;
use herald_store::{Author, Conversation, Direction, Store, StoreError, Suppression};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inbox", get(all_inboxes))
        .route("/inbox/{id}", get(one_inbox))
        .route("/conversations/{id}", get(conversation))
        .route("/conversations/{id}/reply", post(reply))
}

/// Conversations one inbox page lists.
const CONVERSATION_PAGE: u32 = 50;
/// Inboxes the inbox page reads (every inbox of any real team).
const INBOX_MAX: u32 = 500;
/// Messages read per query of a timeline, and the most a page shows.
const TIMELINE_PAGE: u32 = 500;
const TIMELINE_MAX: usize = 5_000;

/// Times in the inbox are UTC: agents may sit anywhere, and campaigns have zones, inboxes none.
fn utc(ts: Timestamp) -> String {
    super::outreaches::when(ts, &TimeZone::UTC)
}

// ---------------------------------------------------------------- conversation lists

struct InboxTab {
    href: String,
    name: String,
    current: bool,
}

struct ConversationItem {
    id: Uuid,
    customer: String,
    channel: &'static str,
    inbox: String,
    campaign: Option<String>,
    last_message: String,
    last_message_iso: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
    tabs: Vec<InboxTab>,
    /// The inbox shown, when one is (else every inbox's newest conversations).
    inbox: Option<Inbox>,
    items: Vec<ConversationItem>,
    next_href: Option<String>,
    no_inboxes: bool,
}

/// Campaign names by id, read once each.
struct CampaignNames<'a> {
    store: &'a dyn Store,
    names: HashMap<Uuid, Option<String>>,
}

impl<'a> CampaignNames<'a> {
    fn new(store: &'a dyn Store) -> Self {
        Self {
            store,
            names: HashMap::new(),
        }
    }

    /// The campaign's name; `None` when there is none or it was deleted.
    async fn get(&mut self, id: Option<Uuid>) -> Option<String> {
        let id = id?;
        if let Some(name) = self.names.get(&id) {
            return name.clone();
        }
        let name = self.store.get_campaign(id).await.ok().map(|c| c.name);
        self.names.insert(id, name.clone());
        name
    }
}

async fn items(
    store: &dyn Store,
    conversations: &[Conversation],
    inboxes: &[Inbox],
) -> Vec<ConversationItem> {
    let mut names = CampaignNames::new(store);
    let mut out = Vec::with_capacity(conversations.len());
    for c in conversations {
        out.push(ConversationItem {
            id: c.id,
            customer: c.customer_address.clone(),
            channel: c.channel.as_str(),
            inbox: inboxes
                .iter()
                .find(|i| i.id == c.inbox_id)
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            campaign: names.get(c.campaign_id).await,
            last_message: utc(c.last_message_at),
            last_message_iso: c.last_message_at.to_string(),
        });
    }
    out
}

/// Every inbox (up to [`INBOX_MAX`]), for the tabs.
async fn every_inbox(store: &dyn Store) -> Result<Vec<Inbox>, StoreError> {
    let page = Page {
        limit: INBOX_MAX,
        after: None,
    };
    Ok(store.list_inboxes(page).await?.items)
}

fn tabs(inboxes: &[Inbox], current: Option<Uuid>) -> Vec<InboxTab> {
    let mut tabs = vec![InboxTab {
        href: "/inbox".into(),
        name: "All inboxes".into(),
        current: current.is_none(),
    }];
    tabs.extend(inboxes.iter().map(|i| InboxTab {
        href: format!("/inbox/{}", i.id),
        name: i.name.clone(),
        current: current == Some(i.id),
    }));
    tabs
}

async fn all_inboxes(user: CurrentUser, State(s): State<AppState>) -> Response {
    let inboxes = match every_inbox(&*s.store).await {
        Ok(inboxes) => inboxes,
        Err(e) => return store_problem(&user, e),
    };
    // The newest conversations of every inbox, merged newest first.
    let mut conversations = Vec::new();
    for inbox in &inboxes {
        let page = Page {
            limit: CONVERSATION_PAGE,
            after: None,
        };
        match s.store.list_conversations(inbox.id, page).await {
            Ok(l) => conversations.extend(l.items),
            Err(e) => return store_problem(&user, e),
        }
    }
    conversations.sort_by(|a, b| {
        b.last_message_at
            .cmp(&a.last_message_at)
            .then(b.id.cmp(&a.id))
    });
    conversations.truncate(CONVERSATION_PAGE as usize);
    let items = items(&*s.store, &conversations, &inboxes).await;
    render(&InboxPage {
        chrome: Chrome::new(&user, "Inbox", "inbox"),
        tabs: tabs(&inboxes, None),
        no_inboxes: inboxes.is_empty(),
        inbox: None,
        items,
        next_href: None,
    })
}

#[derive(Debug, Deserialize)]
struct AfterQuery {
    after: Option<Uuid>,
}

async fn one_inbox(
    user: CurrentUser,
    State(s): State<AppState>,
    WebId(id): WebId,
    Query(q): Query<AfterQuery>,
) -> Response {
    let inbox = match s.store.get_inbox(id).await {
        Ok(i) => i,
        Err(e) => return store_problem(&user, e),
    };
    let inboxes = match every_inbox(&*s.store).await {
        Ok(inboxes) => inboxes,
        Err(e) => return store_problem(&user, e),
    };
    let page = Page {
        limit: CONVERSATION_PAGE,
        after: q.after,
    };
    let listing = match s.store.list_conversations(id, page).await {
        Ok(l) => l,
        Err(e) => return store_problem(&user, e),
    };
    let items = items(&*s.store, &listing.items, std::slice::from_ref(&inbox)).await;
    render(&InboxPage {
        chrome: Chrome::new(&user, format!("Inbox: {}", inbox.name), "inbox"),
        tabs: tabs(&inboxes, Some(id)),
        no_inboxes: false,
        next_href: listing
            .next_after
            .map(|after| format!("/inbox/{id}?after={after}")),
        inbox: Some(inbox),
        items,
    })
}

// ---------------------------------------------------------------- one conversation

struct TimelineItem {
    class: &'static str,
    author: String,
    from: String,
    to: String,
    time: String,
    time_iso: String,
    subject: Option<String>,
    body: String,
    status: String,
    /// An email whose From the trusted MX did not authenticate.
    unverified: bool,
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage {
    chrome: Chrome,
    id: Uuid,
    customer: String,
    channel: &'static str,
    is_email: bool,
    inbox_id: Uuid,
    inbox: String,
    sender: String,
    is_chat: bool,
    /// A chat conversation's starts: the campaign, its description and the page.
    chat_starts: Vec<ChatStartItem>,
    campaign_id: Option<Uuid>,
    campaign: Option<String>,
    outreach_id: Option<Uuid>,
    timeline: Vec<TimelineItem>,
    truncated: bool,
    /// Why the customer cannot be messaged, when they opted out.
    opted_out: Option<String>,
    /// Why the reply box is disabled, when it is for another reason (a channel agents cannot
    /// reply on).
    cannot_reply: Option<String>,
    /// What went wrong with the last reply, shown above the form.
    error: Option<String>,
    body_error: Option<String>,
    subject: String,
    body: String,
}

/// One start of a chat as the conversation page shows it.
struct ChatStartItem {
    campaign: String,
    description: String,
    page_url: String,
    time: String,
    time_iso: String,
}

/// What the page says about an opt-out: what the customer did, when, and how it is undone.
fn opt_out_text(c: &Conversation, s: &Suppression, sender: &str) -> String {
    let when = utc(s.created_at);
    let what = if s.reason.to_ascii_lowercase().starts_with("replied ") {
        format!("{} {} on {when}", c.customer_address, s.reason)
    } else {
        format!(
            "{} is on the opt-out list since {when} ({})",
            c.customer_address, s.reason
        )
    };
    let how = match (s.sender_id, c.channel) {
        (None, _) => "they opted out of every sender; an admin must lift the opt-out before anyone messages them again".to_string(),
        (Some(_), Channel::Email) => "they must ask to be messaged again".to_string(),
        (Some(_), _) => format!("they can text START to {sender} to opt back in"),
    };
    format!("{what}; {how}. Replies are not sent until then.")
}

fn author_label(author: Author, customer: &str, campaign: Option<&str>) -> String {
    match author {
        Author::Customer => customer.to_string(),
        Author::Outreach => match campaign {
            Some(name) => format!("Campaign {name}"),
            None => "Campaign message".to_string(),
        },
        Author::Agent => "Agent".to_string(),
        Author::Auto => "Herald (automatic reply)".to_string(),
    }
}

/// Everything the conversation page shows; `error`s and the draft are filled in by a failed
/// reply.
async fn conversation_page(
    store: &dyn Store,
    user: &CurrentUser,
    id: Uuid,
) -> Result<ConversationPage, StoreError> {
    let c = store.get_conversation(id).await?;
    let is_chat = c.channel == Channel::Chat;
    // A chat conversation's sender is Herald's own (the campaign's widget), not a sender.
    let sender = if is_chat {
        None
    } else {
        Some(store.get_sender(c.sender_id).await?)
    };
    let inbox = store.get_inbox(c.inbox_id).await?;
    let mut messages = Vec::new();
    let mut after = None;
    let mut truncated = false;
    loop {
        let page = store
            .conversation_messages(id, after, TIMELINE_PAGE)
            .await?;
        let full = page.len() == TIMELINE_PAGE as usize;
        after = page.last().map(|m| m.id);
        messages.extend(page);
        if !full {
            break;
        }
        if messages.len() >= TIMELINE_MAX {
            truncated = true;
            break;
        }
    }
    let mut names = CampaignNames::new(store);
    let campaign = names.get(c.campaign_id).await;
    let mut timeline = Vec::with_capacity(messages.len());
    for m in &messages {
        let campaign_name = names.get(m.campaign_id).await;
        timeline.push(TimelineItem {
            class: match m.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            },
            author: author_label(m.author, &c.customer_address, campaign_name.as_deref()),
            from: m.from.clone(),
            to: m.to.clone(),
            time: utc(m.created_at),
            time_iso: m.created_at.to_string(),
            subject: m.subject.clone().filter(|s| !s.trim().is_empty()),
            body: m.body.clone(),
            status: m.status.clone(),
            unverified: m.unverified_sender,
        });
    }
    let mut chat_starts = Vec::new();
    if is_chat {
        for start in store.chat_starts(c.id).await? {
            let (campaign, description) = match store.get_campaign(start.campaign_id).await {
                Ok(campaign) => (campaign.name, campaign.description),
                Err(_) => ("(a deleted campaign)".to_string(), String::new()),
            };
            chat_starts.push(ChatStartItem {
                campaign,
                description,
                page_url: start.page_url,
                time: utc(start.started_at),
                time_iso: start.started_at.to_string(),
            });
        }
    }
    let (sender_address, opted_out) = match &sender {
        Some(sender) => {
            let address = sender.address.to_string();
            let opted_out = store
                .suppression_for(&c.customer_address, sender.id)
                .await?
                .map(|s| opt_out_text(&c, &s, &address));
            (address, opted_out)
        }
        None => ("the chat widget".to_string(), None),
    };
    let cannot_reply = match c.channel {
        Channel::Sms | Channel::Email | Channel::Chat => None,
        other => Some(format!(
            "Agents reply by SMS, email or chat; this conversation is on {other}."
        )),
    };
    Ok(ConversationPage {
        chrome: Chrome::new(
            user,
            format!("Conversation with {}", c.customer_address),
            "inbox",
        ),
        id: c.id,
        customer: c.customer_address.clone(),
        channel: c.channel.as_str(),
        is_email: c.channel == Channel::Email,
        inbox_id: inbox.id,
        inbox: inbox.name,
        sender: sender_address,
        is_chat,
        chat_starts,
        campaign_id: c.campaign_id.filter(|_| campaign.is_some()),
        campaign,
        outreach_id: c.outreach_id,
        timeline,
        truncated,
        opted_out,
        cannot_reply,
        error: None,
        body_error: None,
        subject: String::new(),
        body: String::new(),
    })
}

async fn conversation(user: CurrentUser, State(s): State<AppState>, WebId(id): WebId) -> Response {
    match conversation_page(&*s.store, &user, id).await {
        Ok(page) => render(&page),
        Err(e) => store_problem(&user, e),
    }
}

async fn reply(
    user: CurrentUser,
    State(s): State<AppState>,
    WebId(id): WebId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match checked_form(&user, &headers, &body) {
        Ok(fields) => fields,
        Err(refused) => return refused,
    };
    let text = fields.get("body").cloned().unwrap_or_default();
    let subject = fields.get("subject").cloned().unwrap_or_default();
    let outcome = s
        .replies
        .agent_reply(
            id,
            Some(subject.as_str()).filter(|s| !s.trim().is_empty()),
            &text,
        )
        .await;
    let (status, error, body_error) = match outcome {
        Ok(_) => {
            // A chat visitor's stream on this node reads it now.
            s.chat_live.poke(id);
            return Redirect::to(&format!("/conversations/{id}#reply-form")).into_response();
        }
        Err(ReplyError::OptedOut(m)) => (StatusCode::CONFLICT, Some(m), None),
        Err(ReplyError::Invalid {
            field: "body",
            message,
        }) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(message)),
        Err(ReplyError::Invalid { field, message }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(format!("{field}: {message}")),
            None,
        ),
        Err(ReplyError::Send(e)) => (
            StatusCode::BAD_GATEWAY,
            Some(format!(
                "The message was not sent: {}{}",
                e.message(),
                e.code().map(|c| format!(" (code {c})")).unwrap_or_default()
            )),
            None,
        ),
        Err(ReplyError::Store(e)) => return store_problem(&user, e),
    };
    match conversation_page(&*s.store, &user, id).await {
        Ok(mut page) => {
            page.error = error;
            page.body_error = body_error;
            page.subject = subject;
            page.body = text;
            render_status(status, &page)
        }
        Err(e) => store_problem(&user, e),
    }
}
