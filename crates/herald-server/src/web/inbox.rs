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
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herald_core::{Channel, Inbox, Page};
use herald_engine::ReplyError;
use herald_store::{
    Author, Conversation, ConversationStatus, Direction, Store, StoreError, Suppression,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inbox", get(all_inboxes))
        .route("/inbox/events", get(list_events))
        .route("/inbox/{id}", get(one_inbox))
        .route("/conversations/{id}", get(conversation))
        .route("/conversations/{id}/reply", post(reply))
        .route("/conversations/{id}/events", get(conversation_events))
        .route("/conversations/{id}/status", post(set_status))
        .route("/conversations/{id}/assign", post(assign))
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
    /// Open conversations with customer messages the user has not read.
    unread: u64,
}

struct ConversationItem {
    id: Uuid,
    customer: String,
    channel: &'static str,
    inbox: String,
    campaign: Option<String>,
    last_message: String,
    last_message_iso: String,
    /// The newest message's first words.
    preview: String,
    /// The customer's messages the user has not read.
    unread: u64,
    /// Who it is assigned to; `None` when nobody.
    assignee: Option<String>,
    closed: bool,
}

/// The live part of an inbox page: the tabs with their unread counts and the conversations.
/// Rendered into the page, and again by [`list_events`] whenever it changes.
#[derive(Template)]
#[template(path = "inbox_list.html")]
struct InboxList {
    tabs: Vec<InboxTab>,
    items: Vec<ConversationItem>,
    /// The list mixes inboxes: each conversation says its inbox.
    show_inbox: bool,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
    /// [`InboxList`], rendered (askama-escaped HTML, no user input unescaped).
    list_html: String,
    /// Where the page's live list reads its updates.
    events_url: String,
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

/// Users' emails by id, read once each: who a conversation is assigned to, who wrote an answer.
struct UserNames<'a> {
    store: &'a dyn Store,
    names: HashMap<Uuid, String>,
}

impl<'a> UserNames<'a> {
    fn new(store: &'a dyn Store) -> Self {
        Self {
            store,
            names: HashMap::new(),
        }
    }

    /// The user's email, or "a former user" when they are gone.
    async fn get(&mut self, id: Uuid) -> String {
        if let Some(name) = self.names.get(&id) {
            return name.clone();
        }
        let name = match self.store.get_user(id).await {
            Ok(u) => u.email,
            Err(_) => "a former user".to_string(),
        };
        self.names.insert(id, name.clone());
        name
    }
}

/// The first words of a message, on one line.
fn preview(body: &str) -> String {
    const PREVIEW_CHARS: usize = 120;
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > PREVIEW_CHARS {
        let cut: String = line.chars().take(PREVIEW_CHARS).collect();
        format!("{}…", cut.trim_end())
    } else {
        line
    }
}

async fn items(
    store: &dyn Store,
    user: &CurrentUser,
    conversations: &[Conversation],
    inboxes: &[Inbox],
) -> Result<Vec<ConversationItem>, StoreError> {
    let ids: Vec<Uuid> = conversations.iter().map(|c| c.id).collect();
    let glances = store.conversation_glances(&ids, user.id).await?;
    let mut names = CampaignNames::new(store);
    let mut users = UserNames::new(store);
    let mut out = Vec::with_capacity(conversations.len());
    for c in conversations {
        let glance = glances.get(&c.id).cloned().unwrap_or_default();
        let assignee = match c.assignee_id {
            Some(id) if id == user.id => Some("you".to_string()),
            Some(id) => Some(users.get(id).await),
            None => None,
        };
        out.push(ConversationItem {
            id: c.id,
            customer: customer_label(c),
            channel: c.channel.as_str(),
            inbox: inboxes
                .iter()
                .find(|i| i.id == c.inbox_id)
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            campaign: names.get(c.campaign_id).await,
            last_message: utc(c.last_message_at),
            last_message_iso: c.last_message_at.to_string(),
            preview: glance.preview.as_deref().map(preview).unwrap_or_default(),
            unread: glance.unread,
            assignee,
            closed: c.status == ConversationStatus::Closed,
        });
    }
    Ok(out)
}

/// Every inbox (up to [`INBOX_MAX`]), for the tabs.
async fn every_inbox(store: &dyn Store) -> Result<Vec<Inbox>, StoreError> {
    let page = Page {
        limit: INBOX_MAX,
        after: None,
    };
    Ok(store.list_inboxes(page).await?.items)
}

fn tabs(inboxes: &[Inbox], current: Option<Uuid>, unread: &HashMap<Uuid, u64>) -> Vec<InboxTab> {
    let mut tabs = vec![InboxTab {
        href: "/inbox".into(),
        name: "All inboxes".into(),
        current: current.is_none(),
        unread: inboxes
            .iter()
            .map(|i| unread.get(&i.id).copied().unwrap_or(0))
            .sum(),
    }];
    tabs.extend(inboxes.iter().map(|i| InboxTab {
        href: format!("/inbox/{}", i.id),
        name: i.name.clone(),
        current: current == Some(i.id),
        unread: unread.get(&i.id).copied().unwrap_or(0),
    }));
    tabs
}

/// An inbox page's parts: its live list, its title, where its next page is, and whether there
/// is any inbox at all.
struct InboxView {
    list: InboxList,
    title: String,
    next_href: Option<String>,
    no_inboxes: bool,
}

/// The list of one inbox (from `after`), or the newest conversations of every inbox merged.
async fn inbox_view(
    s: &AppState,
    user: &CurrentUser,
    current: Option<Uuid>,
    after: Option<Uuid>,
) -> Result<InboxView, StoreError> {
    let store = &*s.store;
    let inboxes = every_inbox(store).await?;
    let unread = store.unread_by_inbox(user.id).await?;
    let page = Page {
        limit: CONVERSATION_PAGE,
        after,
    };
    let (title, conversations, next_href) = match current {
        Some(id) => {
            let inbox = store.get_inbox(id).await?;
            let listing = store.list_conversations(id, page).await?;
            (
                format!("Inbox: {}", inbox.name),
                listing.items,
                listing
                    .next_after
                    .map(|after| format!("/inbox/{id}?after={after}")),
            )
        }
        None => {
            // The newest conversations of every inbox, merged newest first.
            let mut conversations = Vec::new();
            for inbox in &inboxes {
                let first = Page {
                    limit: CONVERSATION_PAGE,
                    after: None,
                };
                conversations.extend(store.list_conversations(inbox.id, first).await?.items);
            }
            conversations.sort_by(|a, b| {
                b.last_message_at
                    .cmp(&a.last_message_at)
                    .then(b.id.cmp(&a.id))
            });
            conversations.truncate(CONVERSATION_PAGE as usize);
            ("Inbox".to_string(), conversations, None)
        }
    };
    let items = items(store, user, &conversations, &inboxes).await?;
    Ok(InboxView {
        list: InboxList {
            tabs: tabs(&inboxes, current, &unread),
            items,
            show_inbox: current.is_none(),
        },
        title,
        next_href,
        no_inboxes: inboxes.is_empty(),
    })
}

fn events_url(current: Option<Uuid>, after: Option<Uuid>) -> String {
    match (current, after) {
        (Some(id), Some(after)) => format!("/inbox/events?inbox={id}&after={after}"),
        (Some(id), None) => format!("/inbox/events?inbox={id}"),
        _ => "/inbox/events".to_string(),
    }
}

async fn inbox_page(
    s: &AppState,
    user: &CurrentUser,
    current: Option<Uuid>,
    after: Option<Uuid>,
) -> Response {
    match inbox_view(s, user, current, after).await {
        Ok(view) => render(&InboxPage {
            chrome: Chrome::new(user, view.title, "inbox"),
            list_html: view.list.render().unwrap_or_default(),
            events_url: events_url(current, after),
            next_href: view.next_href,
            no_inboxes: view.no_inboxes,
        }),
        Err(e) => store_problem(user, e),
    }
}

async fn all_inboxes(user: CurrentUser, State(s): State<AppState>) -> Response {
    inbox_page(&s, &user, None, None).await
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
    inbox_page(&s, &user, Some(id), q.after).await
}

#[derive(Debug, Deserialize)]
struct ListEventsQuery {
    inbox: Option<Uuid>,
    after: Option<Uuid>,
}

/// The live list of an inbox page as Server-Sent Events: an event `list` whose data is the
/// list's HTML, at once and whenever it changes (read every `events_interval`, so a message
/// received by any node shows). A user's streams count against `event_streams_per_caller`.
async fn list_events(
    user: CurrentUser,
    State(s): State<AppState>,
    Query(q): Query<ListEventsQuery>,
) -> Response {
    let render = move |s: AppState, user: CurrentUser| async move {
        inbox_view(&s, &user, q.inbox, q.after)
            .await
            .map(|v| v.list.render().unwrap_or_default())
    };
    live(s, user, "list", render).await
}

/// A stream of `name` events whose data is what `render` makes, sent at once and whenever it
/// changes; read every `events_interval` until the client leaves or the server stops. A read
/// that fails ends the stream (the browser reconnects).
async fn live<F, Fut>(s: AppState, user: CurrentUser, name: &'static str, render: F) -> Response
where
    F: Fn(AppState, CurrentUser) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<String, StoreError>> + Send,
{
    let who = format!("user `{}`", user.email);
    let permit = match s.gates.streams.enter(format!("live:{}", user.id), &who) {
        Ok(permit) => permit,
        Err(busy) => return busy.into_response(),
    };
    let closed = Box::pin(s.event_streams_closed());
    let interval = s.events_interval;
    let state = (s, user, render, None::<String>, closed, permit, true);
    let stream = futures_util::stream::unfold(
        state,
        move |(s, user, render, last, mut closed, permit, first)| async move {
            let mut last = last;
            let mut first = first;
            loop {
                if !first {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = &mut closed => return None,
                    }
                }
                first = false;
                let html = render(s.clone(), user.clone()).await.ok()?;
                if last.as_deref() != Some(html.as_str()) {
                    let event = Event::default().event(name).data(html.clone());
                    last = Some(html);
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (s, user, render, last, closed, permit, false),
                    ));
                }
            }
        },
    );
    (
        [(
            axum::http::HeaderName::from_static("x-accel-buffering"),
            "no",
        )],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))),
    )
        .into_response()
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

/// The live part of a conversation page: who and where, its state (open or closed, assignee)
/// with the forms that change it, the chat starts and the timeline. Rendered into the page, and
/// again by [`conversation_events`] whenever it changes.
#[derive(Template)]
#[template(path = "conversation_live.html")]
struct ConversationLive {
    id: Uuid,
    csrf: String,
    customer: String,
    channel: &'static str,
    inbox_id: Uuid,
    inbox: String,
    sender: String,
    /// A chat conversation's starts: the campaign, its description and the page.
    chat_starts: Vec<ChatStartItem>,
    campaign_id: Option<Uuid>,
    campaign: Option<String>,
    outreach_id: Option<Uuid>,
    open: bool,
    /// Who it is assigned to (`None`: nobody), and whether that is the viewer.
    assignee: Option<String>,
    assigned_to_me: bool,
    /// The viewer.
    me: Uuid,
    /// The users it may be assigned to: (id, email, selected).
    team: Vec<(Uuid, String, bool)>,
    timeline: Vec<TimelineItem>,
    truncated: bool,
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage {
    chrome: Chrome,
    id: Uuid,
    customer: String,
    is_email: bool,
    is_chat: bool,
    /// [`ConversationLive`], rendered (askama-escaped HTML, no user input unescaped).
    live_html: String,
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

/// Who the customer is, as agents read it: the name they gave with their address
/// (`Ana Lima (ana@example.com)`), their address, or for a website visitor who gave none,
/// `Website visitor` and the start of their id.
pub(crate) fn customer_label(c: &herald_store::Conversation) -> String {
    let address = match c.customer_address.strip_prefix("chat:") {
        Some(id) => format!(
            "Website visitor {}",
            id.get(id.len().saturating_sub(6)..).unwrap_or(id)
        ),
        None => c.customer_address.clone(),
    };
    match &c.customer_name {
        Some(name) if c.customer_address.starts_with("chat:") => name.clone(),
        Some(name) => format!("{name} ({address})"),
        None => address,
    }
}

fn author_label(
    author: Author,
    customer: &str,
    campaign: Option<&str>,
    agent: Option<&str>,
) -> String {
    match author {
        Author::Customer => customer.to_string(),
        Author::Outreach => match campaign {
            Some(name) => format!("Campaign {name}"),
            None => "Campaign message".to_string(),
        },
        Author::Agent => match agent {
            Some(who) => who.to_string(),
            None => "Agent (through the API)".to_string(),
        },
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
    let (live, c) = conversation_live(store, user, id).await?;
    let sender = if c.channel == Channel::Chat {
        None
    } else {
        Some(store.get_sender(c.sender_id).await?)
    };
    let opted_out = match &sender {
        Some(sender) => store
            .suppression_for(&c.customer_address, sender.id)
            .await?
            .map(|s| opt_out_text(&c, &s, &sender.address.to_string())),
        None => None,
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
            format!("Conversation with {}", customer_label(&c)),
            "inbox",
        ),
        id: c.id,
        customer: customer_label(&c),
        is_email: c.channel == Channel::Email,
        is_chat: c.channel == Channel::Chat,
        live_html: live.render().unwrap_or_default(),
        opted_out,
        cannot_reply,
        error: None,
        body_error: None,
        subject: String::new(),
        body: String::new(),
    })
}

/// The users a conversation may be assigned to: every active user (the first
/// [`INBOX_MAX`], the viewer always among them), and its assignee even if deactivated.
async fn team(
    store: &dyn Store,
    user: &CurrentUser,
    assignee: Option<Uuid>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let page = Page {
        limit: INBOX_MAX,
        after: None,
    };
    let mut out: Vec<(Uuid, String)> = store
        .list_users(page)
        .await?
        .items
        .into_iter()
        .filter(|u| u.active || Some(u.id) == assignee)
        .map(|u| (u.id, u.email))
        .collect();
    if !out.iter().any(|(id, _)| *id == user.id) {
        out.insert(0, (user.id, user.email.clone()));
    }
    if let Some(id) = assignee.filter(|id| !out.iter().any(|(u, _)| u == id))
        && let Ok(u) = store.get_user(id).await
    {
        out.push((u.id, u.email));
    }
    Ok(out)
}

/// The live part of a conversation page, and the conversation.
async fn conversation_live(
    store: &dyn Store,
    user: &CurrentUser,
    id: Uuid,
) -> Result<(ConversationLive, Conversation), StoreError> {
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
    let mut users = UserNames::new(store);
    let campaign = names.get(c.campaign_id).await;
    let mut timeline = Vec::with_capacity(messages.len());
    for m in &messages {
        let campaign_name = names.get(m.campaign_id).await;
        let agent = match m.agent_id {
            Some(id) => Some(users.get(id).await),
            None => None,
        };
        timeline.push(TimelineItem {
            class: match m.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            },
            author: author_label(
                m.author,
                &customer_label(&c),
                campaign_name.as_deref(),
                agent.as_deref(),
            ),
            from: m.from.clone(),
            to: m.to.clone(),
            time: utc(m.created_at),
            time_iso: m.created_at.to_string(),
            // Only email has subjects; an SMS thread shows none, whatever the answer had.
            subject: m
                .subject
                .clone()
                .filter(|s| c.channel == Channel::Email && !s.trim().is_empty()),
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
    let sender_address = match &sender {
        Some(sender) => sender.address.to_string(),
        None => "the chat widget".to_string(),
    };
    let assignee = match c.assignee_id {
        Some(id) => Some(users.get(id).await),
        None => None,
    };
    let team = team(store, user, c.assignee_id)
        .await?
        .into_iter()
        .map(|(id, email)| (id, email, c.assignee_id == Some(id)))
        .collect();
    let live = ConversationLive {
        id: c.id,
        csrf: user.csrf_token.clone(),
        customer: customer_label(&c),
        channel: c.channel.as_str(),
        inbox_id: inbox.id,
        inbox: inbox.name,
        sender: sender_address,
        chat_starts,
        campaign_id: c.campaign_id.filter(|_| campaign.is_some()),
        campaign,
        outreach_id: c.outreach_id,
        open: c.status == ConversationStatus::Open,
        assigned_to_me: c.assignee_id == Some(user.id),
        me: user.id,
        assignee,
        team,
        timeline,
        truncated,
    };
    Ok((live, c))
}

async fn conversation(user: CurrentUser, State(s): State<AppState>, WebId(id): WebId) -> Response {
    match conversation_page(&*s.store, &user, id).await {
        Ok(page) => {
            // Opened: what the customer wrote so far is read.
            if let Err(e) = s
                .store
                .mark_conversation_read(id, user.id, s.clock.now())
                .await
            {
                return store_problem(&user, e);
            }
            render(&page)
        }
        Err(e) => store_problem(&user, e),
    }
}

/// The live part of a conversation page as Server-Sent Events (see [`live`]): an event
/// `conversation` whose data is its HTML. What it shows is read by the viewer.
async fn conversation_events(
    user: CurrentUser,
    State(s): State<AppState>,
    WebId(id): WebId,
) -> Response {
    if let Err(e) = s.store.get_conversation(id).await {
        return store_problem(&user, e);
    }
    // The newest customer message this stream has marked read: a read is written once per new
    // message, not at every interval.
    let marked = Arc::new(std::sync::Mutex::new(None::<Timestamp>));
    let render = move |s: AppState, user: CurrentUser| {
        let marked = marked.clone();
        async move {
            let (live, c) = conversation_live(&*s.store, &user, id).await?;
            let newest = c.last_inbound_at;
            let seen = *marked.lock().unwrap_or_else(|p| p.into_inner());
            if newest.is_some() && newest != seen {
                s.store
                    .mark_conversation_read(id, user.id, s.clock.now())
                    .await?;
                *marked.lock().unwrap_or_else(|p| p.into_inner()) = newest;
            }
            Ok(live.render().unwrap_or_default())
        }
    };
    live(s, user, "conversation", render).await
}

/// Closes or reopens a conversation (`status=closed|open`), then shows it again.
async fn set_status(
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
    let status = match fields.get("status").map(String::as_str) {
        Some("open") => ConversationStatus::Open,
        Some("closed") => ConversationStatus::Closed,
        _ => {
            return super::outreaches::problem(
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose whether the conversation is open or closed.",
            );
        }
    };
    shown_again(&user, id, s.store.set_conversation_status(id, status).await)
}

/// After a change of a conversation's state: the conversation again, or why the change was
/// refused.
fn shown_again(
    user: &CurrentUser,
    id: Uuid,
    changed: Result<Conversation, StoreError>,
) -> Response {
    match changed {
        Ok(_) => Redirect::to(&format!("/conversations/{id}")).into_response(),
        Err(StoreError::Invalid { message, .. }) => super::outreaches::problem(
            user,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The conversation was not changed: {message}."),
        ),
        Err(e) => store_problem(user, e),
    }
}

/// Assigns a conversation to a user (`assignee=<id>`), or to nobody (empty), then shows it
/// again.
async fn assign(
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
    let raw = fields.get("assignee").map(|v| v.trim()).unwrap_or_default();
    let assignee = if raw.is_empty() {
        None
    } else {
        match raw.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) => {
                return super::outreaches::problem(
                    &user,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Choose someone from the list to assign the conversation to.",
                );
            }
        }
    };
    shown_again(&user, id, s.store.assign_conversation(id, assignee).await)
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
            Some(user.id),
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
