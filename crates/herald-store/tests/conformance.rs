//! One conformance suite, run against both backends: every body below is an `async fn(&dyn Store)`,
//! and `herald_store::on_both_backends!` makes a `<name>::sqlite` and a `<name>::postgres` test of
//! each.
//!
//! The Postgres half needs `HERALD_TEST_POSTGRES_URL` (e.g. `postgres://root@127.0.0.1:5432/postgres`);
//! without it those tests print a notice and pass, except in CI (`CI=true`), where they fail.

use herald_core::chat::{ChatSettings, ChatSiteSpec, TriggerInput, UrlMatch, UrlRule};
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, AnswerSpec, AnswerVariant, CampaignSpec, Channel, E164, EmailAddress, FrequencyCap,
    Inbox, InboxSpec, Language, Page, Provider, Role, Schedule, SenderSpec, Template,
};
use herald_store::{NewToken, Store, StoreError};
use std::collections::BTreeMap;
use uuid::Uuid;

herald_store::on_both_backends!(
    store:
    test_sends_are_recorded_before_and_after_and_go_with_their_campaign,
    an_unverified_sender_is_kept_but_answers_no_outreach,
    email_domains_served_by_senders,
    migrate_twice_and_ping,
    inbox_agent_number_round_trip,
    inbox_round_trip,
    sender_round_trip,
    answer_round_trip,
    answer_update_replaces_variants,
    campaign_round_trip,
    token_round_trip,
    timestamps_keep_microseconds,
    inboxes_page_by_id,
    senders_answers_and_campaigns_page_by_id,
    a_cursor_resumes_after_itself,
    sender_address_is_unique_per_channel,
    campaign_name_is_unique_per_channel,
    token_hash_is_unique,
    sender_in_use_is_not_deleted,
    answer_in_use_is_not_deleted,
    inbox_with_senders_is_not_deleted,
    missing_rows_are_not_found,
    missing_references_are_refused,
    specs_the_schema_cannot_hold_are_refused,
    sender_used_by_campaigns_keeps_its_channel,
    answer_keeps_what_its_campaigns_use,
    campaigns_filter_by_channel,
    concurrent_creates_all_succeed,
    outreach_import_is_one_transaction,
    a_batch_the_database_refuses_fails_the_import,
    imported_rows_keep_every_byte,
    stored_phones_are_read_back_with_the_file_values,
    a_dropped_import_leaves_nothing,
    an_import_in_progress_is_invisible,
    outreaches_go_with_their_campaign,
    suppressions_per_sender_and_for_all,
    claims_only_due_recipients_of_outreaches_in_progress,
    concurrent_claims_are_disjoint,
    each_outcome_changes_the_row_as_documented,
    late_results_are_ignored_but_sent_resolves_unknown,
    retries_after_a_stop_are_skipped,
    expired_leases_follow_the_crash_policy,
    a_crash_leaves_uncertain_only_the_sends_that_began,
    late_results_touch_only_what_their_claim_still_holds,
    a_saved_campaign_releases_recipients_waiting_for_its_hours,
    a_report_counts_the_funnel_reasons_hours_and_reply_time,
    sends_never_begun_go_back_only_under_their_own_mark,
    leases_are_renewed_only_by_their_holder,
    a_sender_has_one_bucket_of_tokens,
    a_daily_cap_holds_for_every_node_until_the_next_day,
    expire_pending_skips_what_is_left,
    stop_skips_pending_and_is_refused_once_final,
    complete_waits_for_pending_and_sending,
    retry_failed_requeues_and_reopens,
    progress_counts_every_state,
    live_outreaches_say_what_is_pending_and_in_flight,
    recipients_list_by_state_and_page,
    timeline_records_only_applied_sends,
    kept_status_reports_apply_when_the_send_is_recorded,
    status_reports_move_messages_and_recipients,
    replies_within_the_window_are_attributed,
    replies_outside_the_window_are_not_attributed,
    in_reply_to_beats_the_window,
    conversations_list_newest_first_and_page,
    suppressions_list_look_up_and_lift,
    skip_pending_touches_only_live_outreaches_of_the_sender,
    concurrent_replays_and_early_reports_settle,
    users_round_trip,
    user_emails_are_unique_whatever_their_case,
    setup_tokens_work_once_until_they_expire,
    concurrent_takes_of_a_setup_token_yield_one,
    sessions_find_their_user_until_they_expire,
    reissued_setup_links_replace_the_unused_ones,
    first_admin_links_stop_once_an_admin_exists,
    login_attempts_are_counted_before_the_password_and_lock,
    concurrent_login_attempts_never_pass_the_limit,
    chat_sites_round_trip_and_keys_are_unique,
    chat_settings_belong_to_chat_campaigns_and_go_with_them,
);

// ---------------------------------------------------------------- fixtures

fn phone(s: &str) -> E164 {
    E164::parse(s, None).expect("test phone number")
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("test email address")
}

fn lang(s: &str) -> Language {
    Language::parse(s).expect("test language")
}

fn tmpl(s: &str) -> Template {
    Template::parse(s).expect("test template")
}

fn inbox_spec(name: &str) -> InboxSpec {
    InboxSpec {
        name: name.to_string(),
        ..Default::default()
    }
}

async fn inbox(store: &dyn Store, name: &str) -> Inbox {
    store
        .create_inbox(&inbox_spec(name))
        .await
        .expect("create inbox")
}

fn sender_spec(channel: Channel, address: Address, inbox_id: Uuid) -> SenderSpec {
    SenderSpec {
        channel,
        address,
        inbox_id,
        provider: Provider::File,
    }
}

fn sms(number: &str, inbox_id: Uuid) -> SenderSpec {
    sender_spec(Channel::Sms, Address::Phone(phone(number)), inbox_id)
}

fn variant(language: &str, subject: Option<&str>, body: &str) -> AnswerVariant {
    AnswerVariant {
        language: lang(language),
        subject: subject.map(tmpl),
        body: tmpl(body),
        voice: None,
    }
}

fn answer_spec(name: &str) -> AnswerSpec {
    AnswerSpec {
        name: name.to_string(),
        variants: vec![
            variant(
                "en-US",
                Some("Your order {{ order_id }}"),
                "Hi {{ first_name }}, your order is late.",
            ),
            variant("es", None, "Hola {{ first_name }}, su pedido se retrasa."),
        ],
    }
}

fn schedule() -> Schedule {
    let mut days = BTreeMap::new();
    days.insert(
        "mon".to_string(),
        vec!["13:00-17:30".to_string(), "08:15-12:00".to_string()],
    );
    days.insert("wed".to_string(), vec!["09:00-24:00".to_string()]);
    days.insert("sat".to_string(), vec![]);
    Schedule::parse(&ScheduleInput {
        timezone: "America/New_York".to_string(),
        days,
        closed_dates: Vec::new(),
    })
    .expect("test schedule")
}

fn campaign_spec(
    name: &str,
    channel: Channel,
    sender_id: Option<Uuid>,
    answer_id: Uuid,
) -> CampaignSpec {
    CampaignSpec {
        name: name.to_string(),
        description: format!("Why we send {name}"),
        channel,
        sender_id,
        language: lang("en-US"),
        answer_id,
        schedule: schedule(),
        quiet_hours: true,
        frequency_cap: None,
        voice_settings: Default::default(),
    }
}

/// An inbox, an sms sender in it and an answer: what a campaign needs.
struct World {
    inbox: Uuid,
    sender: Uuid,
    answer: Uuid,
}

async fn world(store: &dyn Store) -> World {
    let inbox = inbox(store, "Support").await.id;
    let sender = store
        .create_sender(&sms("+14155552671", inbox))
        .await
        .expect("create sender")
        .id;
    let answer = store
        .create_answer(&answer_spec("Order delays"))
        .await
        .expect("create answer")
        .id;
    World {
        inbox,
        sender,
        answer,
    }
}

fn page(limit: u32, after: Option<Uuid>) -> Page {
    Page::new(Some(limit), after).expect("page")
}

fn expect_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Conflict(msg)) => msg,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn expect_in_use<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::InUse(msg)) => msg,
        other => panic!("expected in-use, got {other:?}"),
    }
}

fn expect_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> (&'static str, String) {
    match r {
        Err(StoreError::Invalid { field, message }) => (field, message),
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

fn expect_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, entity: &str, id: Uuid) {
    match r {
        Err(StoreError::NotFound { entity: e, id: i }) => {
            assert_eq!((e, i), (entity, id));
        }
        other => panic!("expected {entity} {id} not found, got {other:?}"),
    }
}

// ---------------------------------------------------------------- round trips

async fn migrate_twice_and_ping(store: &dyn Store) {
    store.ping().await.expect("ping");
    store.migrate().await.expect("migrating again is a no-op");
    let w = world(store).await;
    store.migrate().await.expect("and keeps data");
    assert_eq!(
        store.get_inbox(w.inbox).await.expect("inbox").name,
        "Support"
    );
}

async fn inbox_round_trip(store: &dyn Store) {
    let created = inbox(store, "Billing").await;
    assert_eq!(created.name, "Billing");
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(store.get_inbox(created.id).await.expect("get"), created);

    let listed = store.list_inboxes(Page::default()).await.expect("list");
    assert_eq!(listed.items, vec![created.clone()]);
    assert_eq!(listed.next_after, None);

    let updated = store
        .update_inbox(created.id, &inbox_spec("Billing EU"))
        .await
        .expect("update");
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.name, "Billing EU");
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(store.get_inbox(created.id).await.expect("get"), updated);

    store.delete_inbox(created.id).await.expect("delete");
    expect_not_found(store.get_inbox(created.id).await, "inbox", created.id);
    assert!(
        store
            .list_inboxes(Page::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

async fn sender_round_trip(store: &dyn Store) {
    let support = inbox(store, "Support").await;
    let sales = inbox(store, "Sales").await;
    let specs = [
        sms("+14155552671", support.id),
        sender_spec(
            Channel::Voice,
            Address::Phone(phone("+442079460958")),
            support.id,
        ),
        SenderSpec {
            provider: Provider::Smtp,
            ..sender_spec(
                Channel::Email,
                Address::Email(email("Help.Desk@example.com")),
                sales.id,
            )
        },
    ];
    let mut created = Vec::new();
    for spec in &specs {
        let s = store.create_sender(spec).await.expect("create sender");
        assert_eq!(
            (s.channel, &s.address, s.inbox_id, s.provider),
            (spec.channel, &spec.address, spec.inbox_id, spec.provider)
        );
        assert_eq!(s.created_at, s.updated_at);
        assert_eq!(store.get_sender(s.id).await.expect("get"), s);
        created.push(s);
    }
    let listed = store.list_senders(Page::default()).await.expect("list");
    assert_eq!(listed.items, created);

    // Move the sms sender to another number, inbox and provider.
    let first = &created[0];
    let spec = SenderSpec {
        provider: Provider::Twilio,
        ..sms("+14155552672", sales.id)
    };
    let updated = store.update_sender(first.id, &spec).await.expect("update");
    assert_eq!(updated.address, Address::Phone(phone("+14155552672")));
    assert_eq!(updated.inbox_id, sales.id);
    assert_eq!(updated.provider, Provider::Twilio);
    assert_eq!(updated.created_at, first.created_at);
    assert!(updated.updated_at > first.updated_at);
    assert_eq!(store.get_sender(first.id).await.expect("get"), updated);

    store.delete_sender(first.id).await.expect("delete");
    expect_not_found(store.get_sender(first.id).await, "sender", first.id);
    let listed = store.list_senders(Page::default()).await.expect("list");
    assert_eq!(listed.items, created[1..].to_vec());
}

async fn answer_round_trip(store: &dyn Store) {
    let spec = AnswerSpec {
        name: "Welcome".to_string(),
        variants: vec![
            variant(
                "fr-CA",
                Some("Bienvenue {{ name }}"),
                "Bonjour {{ name }} !",
            ),
            variant("en", Some("Welcome"), "Hello {{ name | upper }}"),
            variant("zh-Hant-TW", None, "{% if vip %}VIP {% endif %}歡迎"),
        ],
    };
    let created = store.create_answer(&spec).await.expect("create");
    assert_eq!(created.name, spec.name);
    assert_eq!(created.variants, spec.variants, "variants keep their order");
    assert_eq!(created.created_at, created.updated_at);
    let got = store.get_answer(created.id).await.expect("get");
    assert_eq!(got, created);
    assert_eq!(
        got.variants[1].body.variables().iter().collect::<Vec<_>>(),
        vec!["name"]
    );

    let listed = store.list_answers(Page::default()).await.expect("list");
    assert_eq!(listed.items, vec![created.clone()]);

    store.delete_answer(created.id).await.expect("delete");
    expect_not_found(store.get_answer(created.id).await, "answer", created.id);
    assert!(
        store
            .list_answers(Page::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

async fn answer_update_replaces_variants(store: &dyn Store) {
    let created = store
        .create_answer(&answer_spec("Order delays"))
        .await
        .expect("create");
    let spec = AnswerSpec {
        name: "Order delays (v2)".to_string(),
        variants: vec![
            variant("de", None, "Hallo {{ first_name }}"),
            variant("en-US", None, "Hi {{ first_name }}, sorry."),
        ],
    };
    let updated = store
        .update_answer(created.id, &spec)
        .await
        .expect("update");
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.name, spec.name);
    assert_eq!(
        updated.variants, spec.variants,
        "old variants are gone, order kept"
    );
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(store.get_answer(created.id).await.expect("get"), updated);

    // A second answer is untouched by the first one's update.
    let other = store
        .create_answer(&answer_spec("Other"))
        .await
        .expect("create");
    store
        .update_answer(created.id, &answer_spec("Back"))
        .await
        .expect("update again");
    assert_eq!(store.get_answer(other.id).await.expect("get"), other);
    assert_eq!(
        store.get_answer(created.id).await.expect("get").variants,
        answer_spec("Back").variants
    );
}

async fn campaign_round_trip(store: &dyn Store) {
    let w = world(store).await;
    let spec = CampaignSpec {
        quiet_hours: false,
        frequency_cap: Some(FrequencyCap {
            messages: 2,
            days: 7,
        }),
        ..campaign_spec("Order delays", Channel::Sms, Some(w.sender), w.answer)
    };
    let created = store.create_campaign(&spec).await.expect("create");
    assert_eq!(
        (
            &created.name,
            &created.description,
            created.channel,
            created.sender_id,
            &created.language,
            created.answer_id,
            &created.schedule,
            created.quiet_hours,
            created.frequency_cap
        ),
        (
            &spec.name,
            &spec.description,
            spec.channel,
            spec.sender_id,
            &spec.language,
            spec.answer_id,
            &spec.schedule,
            spec.quiet_hours,
            spec.frequency_cap
        )
    );
    assert_eq!(created.created_at, created.updated_at);
    let got = store.get_campaign(created.id).await.expect("get");
    assert_eq!(got, created);
    assert_eq!(
        got.schedule.windows(0).len(),
        2,
        "monday keeps both windows"
    );
    assert_eq!(got.schedule.timezone_name(), "America/New_York");

    // A chat campaign has no sender.
    let chat = store
        .create_campaign(&campaign_spec("Greeting", Channel::Chat, None, w.answer))
        .await
        .expect("chat campaign");
    assert_eq!(chat.sender_id, None);
    assert_eq!(store.get_campaign(chat.id).await.expect("get"), chat);

    // A cap that cannot hold is refused by the store as by the API, and so is a cap on chat.
    for (channel, sender, messages, days) in [
        (Channel::Sms, Some(w.sender), 0, 7),
        (Channel::Sms, Some(w.sender), 1, 3651),
        (Channel::Chat, None, 1, 7),
    ] {
        let refused = store
            .create_campaign(&CampaignSpec {
                frequency_cap: Some(FrequencyCap { messages, days }),
                ..campaign_spec("Capped", channel, sender, w.answer)
            })
            .await;
        assert!(
            matches!(
                refused,
                Err(StoreError::Invalid {
                    field: "frequency_cap",
                    ..
                })
            ),
            "{channel} {messages}/{days}: {refused:?}"
        );
    }

    // Change every field: another channel, sender, answer, language, schedule.
    let voice = store
        .create_sender(&sender_spec(
            Channel::Voice,
            Address::Phone(phone("+442079460958")),
            w.inbox,
        ))
        .await
        .expect("voice sender");
    let answer = store
        .create_answer(&AnswerSpec {
            name: "Callback".into(),
            variants: vec![variant("es", None, "Le llamamos")],
        })
        .await
        .expect("answer");
    let spec = CampaignSpec {
        name: "Callbacks".into(),
        description: String::new(),
        channel: Channel::Voice,
        sender_id: Some(voice.id),
        language: lang("es"),
        answer_id: answer.id,
        schedule: Schedule::office_hours("Europe/Madrid").expect("schedule"),
        quiet_hours: true,
        frequency_cap: None,
        voice_settings: Default::default(),
    };
    let updated = store
        .update_campaign(created.id, &spec)
        .await
        .expect("update");
    assert_eq!(updated.id, created.id);
    assert_eq!(
        (
            &updated.name,
            &updated.description,
            updated.channel,
            updated.sender_id,
            &updated.language,
            updated.answer_id,
            &updated.schedule,
            updated.quiet_hours,
            updated.frequency_cap
        ),
        (
            &spec.name,
            &spec.description,
            spec.channel,
            spec.sender_id,
            &spec.language,
            spec.answer_id,
            &spec.schedule,
            spec.quiet_hours,
            None
        )
    );
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(store.get_campaign(created.id).await.expect("get"), updated);

    let listed = store
        .list_campaigns(None, Page::default())
        .await
        .expect("list");
    assert_eq!(listed.items, vec![updated.clone(), chat.clone()]);

    store.delete_campaign(created.id).await.expect("delete");
    expect_not_found(store.get_campaign(created.id).await, "campaign", created.id);
    let listed = store
        .list_campaigns(None, Page::default())
        .await
        .expect("list");
    assert_eq!(listed.items, vec![chat]);
}

async fn token_round_trip(store: &dyn Store) {
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let created = store
        .create_token(&NewToken {
            name: "ci deploy".into(),
            role: Role::Agent,
            hash_hex: hash.into(),
        })
        .await
        .expect("create");
    assert_eq!(
        (created.name.as_str(), created.role),
        ("ci deploy", Role::Agent)
    );
    let found = store.find_token(hash).await.expect("find");
    assert_eq!(found, Some(created.clone()));

    let admin = store
        .create_token(&NewToken {
            name: "lead".into(),
            role: Role::Admin,
            hash_hex: "ab".repeat(32),
        })
        .await
        .expect("create admin");
    assert_eq!(
        store.find_token(&"ab".repeat(32)).await.expect("find"),
        Some(admin)
    );
    assert_eq!(store.find_token(hash).await.expect("find"), Some(created));
    assert_eq!(
        store.find_token(&"cd".repeat(32)).await.expect("find"),
        None
    );
    assert_eq!(store.find_token("").await.expect("find"), None);
}

async fn timestamps_keep_microseconds(store: &dyn Store) {
    // Whatever the clock says, what a create returns is what a read returns: both backends keep
    // whole microseconds, and the store hands back the value it wrote.
    for i in 0..5 {
        let created = inbox(store, &format!("Inbox {i}")).await;
        assert_eq!(created.created_at.subsec_nanosecond() % 1_000, 0);
        let got = store.get_inbox(created.id).await.expect("get");
        assert_eq!(got.created_at, created.created_at);
        assert_eq!(got.updated_at, created.updated_at);
        let updated = store
            .update_inbox(created.id, &inbox_spec("renamed"))
            .await
            .expect("update");
        assert_eq!(store.get_inbox(created.id).await.expect("get"), updated);
    }
}

// ---------------------------------------------------------------- pagination

async fn inboxes_page_by_id(store: &dyn Store) {
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(inbox(store, &format!("Inbox {i}")).await);
    }
    let mut after = None;
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let listing = store.list_inboxes(page(3, after)).await.expect("list");
        sizes.push(listing.items.len());
        if let Some(next) = listing.next_after {
            assert_eq!(Some(next), listing.items.last().map(|i| i.id));
        }
        seen.extend(listing.items);
        match listing.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen, created, "every inbox once, in creation order");

    // A page that ends exactly at the last row says there is no further page.
    let all = store.list_inboxes(page(7, None)).await.expect("list");
    assert_eq!(all.items.len(), 7);
    assert_eq!(all.next_after, None);
    let six = store.list_inboxes(page(6, None)).await.expect("list");
    assert_eq!(six.next_after, Some(created[5].id));
}

async fn senders_answers_and_campaigns_page_by_id(store: &dyn Store) {
    let inbox = inbox(store, "Support").await;
    let mut senders = Vec::new();
    for n in 0..5 {
        let spec = sms(&format!("+1415555267{n}"), inbox.id);
        senders.push(store.create_sender(&spec).await.expect("sender"));
    }
    let mut answers = Vec::new();
    for n in 0..5 {
        // Several variants each: pages count answers, not variant rows.
        answers.push(
            store
                .create_answer(&answer_spec(&format!("Answer {n}")))
                .await
                .expect("answer"),
        );
    }
    let mut campaigns = Vec::new();
    for n in 0..5 {
        let spec = campaign_spec(
            &format!("Campaign {n}"),
            Channel::Sms,
            Some(senders[n].id),
            answers[n].id,
        );
        campaigns.push(store.create_campaign(&spec).await.expect("campaign"));
    }

    let p1 = store.list_senders(page(2, None)).await.expect("senders");
    let p2 = store
        .list_senders(page(2, p1.next_after))
        .await
        .expect("senders");
    let p3 = store
        .list_senders(page(2, p2.next_after))
        .await
        .expect("senders");
    assert_eq!(
        [p1.items, p2.items, p3.items.clone()].concat(),
        senders,
        "senders in creation order"
    );
    assert_eq!(p3.items.len(), 1);
    assert_eq!(p3.next_after, None);

    let p1 = store.list_answers(page(2, None)).await.expect("answers");
    assert_eq!(p1.items, answers[..2].to_vec());
    assert_eq!(p1.next_after, Some(answers[1].id));
    let p2 = store
        .list_answers(page(2, p1.next_after))
        .await
        .expect("answers");
    assert_eq!(p2.items, answers[2..4].to_vec());
    let p3 = store
        .list_answers(page(2, p2.next_after))
        .await
        .expect("answers");
    assert_eq!(p3.items, answers[4..].to_vec());
    assert_eq!(p3.next_after, None);

    let p1 = store
        .list_campaigns(None, page(4, None))
        .await
        .expect("campaigns");
    assert_eq!(p1.items, campaigns[..4].to_vec());
    let p2 = store
        .list_campaigns(None, page(4, p1.next_after))
        .await
        .expect("campaigns");
    assert_eq!(p2.items, campaigns[4..].to_vec());
    assert_eq!(p2.next_after, None);
}

async fn a_cursor_resumes_after_itself(store: &dyn Store) {
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(inbox(store, &format!("Inbox {i}")).await);
    }
    let rest = store
        .list_inboxes(page(10, Some(created[1].id)))
        .await
        .expect("list");
    assert_eq!(rest.items, created[2..].to_vec());
    assert_eq!(rest.next_after, None);

    let two = store
        .list_inboxes(page(2, Some(created[3].id)))
        .await
        .expect("list");
    assert_eq!(two.items, created[4..6].to_vec());
    assert_eq!(two.next_after, Some(created[5].id));

    let end = store
        .list_inboxes(page(3, Some(created[6].id)))
        .await
        .expect("list");
    assert!(end.items.is_empty());
    assert_eq!(end.next_after, None);

    // A cursor need not be a row that still exists: it is a position in id order.
    store.delete_inbox(created[2].id).await.expect("delete");
    let after_deleted = store
        .list_inboxes(page(2, Some(created[2].id)))
        .await
        .expect("list");
    assert_eq!(after_deleted.items, created[3..5].to_vec());
}

// ---------------------------------------------------------------- uniqueness

async fn sender_address_is_unique_per_channel(store: &dyn Store) {
    let support = inbox(store, "Support").await;
    let sales = inbox(store, "Sales").await;
    let first = store
        .create_sender(&sms("+14155552671", support.id))
        .await
        .expect("first");

    // The same number on the same channel, written differently and in another inbox.
    let again = sender_spec(
        Channel::Sms,
        Address::Phone(E164::parse("(415) 555-2671", Some("US")).expect("number")),
        sales.id,
    );
    let msg = expect_conflict(store.create_sender(&again).await);
    assert_eq!(msg, "+14155552671 is already an sms sender");

    // The same number may be a voice sender.
    let voice = store
        .create_sender(&sender_spec(
            Channel::Voice,
            Address::Phone(phone("+14155552671")),
            support.id,
        ))
        .await
        .expect("the same number as a voice sender");
    assert_eq!(voice.address, first.address);
    let msg = expect_conflict(
        store
            .create_sender(&sender_spec(
                Channel::Voice,
                Address::Phone(phone("+14155552671")),
                sales.id,
            ))
            .await,
    );
    assert_eq!(msg, "+14155552671 is already a voice sender");

    let mail = sender_spec(
        Channel::Email,
        Address::Email(email("news@example.com")),
        support.id,
    );
    store.create_sender(&mail).await.expect("email sender");
    let msg = expect_conflict(store.create_sender(&mail).await);
    assert_eq!(msg, "news@example.com is already an email sender");

    // Moving another sms sender onto the number clashes too, and changes nothing.
    let second = store
        .create_sender(&sms("+14155552672", support.id))
        .await
        .expect("second");
    let msg = expect_conflict(
        store
            .update_sender(second.id, &sms("+14155552671", support.id))
            .await,
    );
    assert_eq!(msg, "+14155552671 is already an sms sender");
    assert_eq!(store.get_sender(second.id).await.expect("get"), second);
    // Updating a sender to its own address is no clash.
    store
        .update_sender(first.id, &sms("+14155552671", sales.id))
        .await
        .expect("same address, other inbox");
    assert_eq!(
        store
            .list_senders(Page::default())
            .await
            .expect("list")
            .items
            .len(),
        4
    );
}

async fn campaign_name_is_unique_per_channel(store: &dyn Store) {
    let w = world(store).await;
    let voice = store
        .create_sender(&sender_spec(
            Channel::Voice,
            Address::Phone(phone("+14155552671")),
            w.inbox,
        ))
        .await
        .expect("voice sender");
    store
        .create_campaign(&campaign_spec(
            "Order delays",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .expect("first");
    let msg = expect_conflict(
        store
            .create_campaign(&campaign_spec(
                "Order delays",
                Channel::Sms,
                Some(w.sender),
                w.answer,
            ))
            .await,
    );
    assert_eq!(
        msg,
        "a campaign named \"Order delays\" already exists on sms"
    );

    let on_voice = store
        .create_campaign(&campaign_spec(
            "Order delays",
            Channel::Voice,
            Some(voice.id),
            w.answer,
        ))
        .await
        .expect("the same name on another channel");
    store
        .create_campaign(&campaign_spec(
            "Order delays",
            Channel::Chat,
            None,
            w.answer,
        ))
        .await
        .expect("and on chat");

    // Renaming into a taken name clashes; the campaign is left as it was.
    let other = store
        .create_campaign(&campaign_spec(
            "Refunds",
            Channel::Voice,
            Some(voice.id),
            w.answer,
        ))
        .await
        .expect("other");
    let msg = expect_conflict(
        store
            .update_campaign(
                other.id,
                &campaign_spec("Order delays", Channel::Voice, Some(voice.id), w.answer),
            )
            .await,
    );
    assert_eq!(
        msg,
        "a campaign named \"Order delays\" already exists on voice"
    );
    assert_eq!(store.get_campaign(other.id).await.expect("get"), other);
    // Keeping one's own name is no clash.
    store
        .update_campaign(
            on_voice.id,
            &CampaignSpec {
                description: "changed".into(),
                ..campaign_spec("Order delays", Channel::Voice, Some(voice.id), w.answer)
            },
        )
        .await
        .expect("update keeping the name");
}

async fn token_hash_is_unique(store: &dyn Store) {
    let token = |name: &str| NewToken {
        name: name.into(),
        role: Role::Admin,
        hash_hex: "0f".repeat(32),
    };
    let first = store.create_token(&token("first")).await.expect("first");
    let msg = expect_conflict(store.create_token(&token("second")).await);
    assert!(msg.contains("same hash"), "{msg}");
    assert!(
        !msg.contains(&"0f".repeat(32)),
        "the hash stays out of messages: {msg}"
    );
    assert_eq!(
        store.find_token(&"0f".repeat(32)).await.expect("find"),
        Some(first)
    );
}

// ---------------------------------------------------------------- refusals to delete

async fn sender_in_use_is_not_deleted(store: &dyn Store) {
    let w = world(store).await;
    let a = store
        .create_campaign(&campaign_spec(
            "Order delays",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .expect("campaign");
    let b = store
        .create_campaign(&campaign_spec(
            "Appointment reminders",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .expect("campaign");
    let msg = expect_in_use(store.delete_sender(w.sender).await);
    assert_eq!(
        msg,
        "sender +14155552671 is used by campaigns: Appointment reminders, Order delays; \
         change or delete those first"
    );
    store.get_sender(w.sender).await.expect("still there");

    store.delete_campaign(a.id).await.expect("delete a");
    let msg = expect_in_use(store.delete_sender(w.sender).await);
    assert!(msg.contains("campaigns: Appointment reminders;"), "{msg}");
    store.delete_campaign(b.id).await.expect("delete b");
    store.delete_sender(w.sender).await.expect("now unused");
    expect_not_found(store.get_sender(w.sender).await, "sender", w.sender);
}

async fn answer_in_use_is_not_deleted(store: &dyn Store) {
    let w = world(store).await;
    let c = store
        .create_campaign(&campaign_spec("Greeting", Channel::Chat, None, w.answer))
        .await
        .expect("campaign");
    let msg = expect_in_use(store.delete_answer(w.answer).await);
    assert_eq!(
        msg,
        "answer \"Order delays\" is used by campaigns: Greeting; change or delete those first"
    );
    assert_eq!(
        store
            .get_answer(w.answer)
            .await
            .expect("still there")
            .variants
            .len(),
        2
    );
    store.delete_campaign(c.id).await.expect("delete campaign");
    store.delete_answer(w.answer).await.expect("now unused");
    expect_not_found(store.get_answer(w.answer).await, "answer", w.answer);
}

async fn inbox_with_senders_is_not_deleted(store: &dyn Store) {
    let support = inbox(store, "Support").await;
    let a = store
        .create_sender(&sms("+14155552671", support.id))
        .await
        .expect("sender");
    let b = store
        .create_sender(&sender_spec(
            Channel::Email,
            Address::Email(email("help@example.com")),
            support.id,
        ))
        .await
        .expect("sender");
    let msg = expect_in_use(store.delete_inbox(support.id).await);
    assert_eq!(
        msg,
        "inbox \"Support\" is linked to senders: +14155552671, help@example.com; \
         link them to another inbox or delete them first"
    );
    // Moving one sender away and deleting the other frees the inbox.
    let other = inbox(store, "Other").await;
    store
        .update_sender(a.id, &sms("+14155552671", other.id))
        .await
        .expect("move");
    let msg = expect_in_use(store.delete_inbox(support.id).await);
    assert!(msg.contains("senders: help@example.com;"), "{msg}");
    store.delete_sender(b.id).await.expect("delete sender");
    store.delete_inbox(support.id).await.expect("now empty");
    expect_not_found(store.get_inbox(support.id).await, "inbox", support.id);
}

// ---------------------------------------------------------------- missing rows

async fn missing_rows_are_not_found(store: &dyn Store) {
    let w = world(store).await;
    let id = Uuid::now_v7();

    expect_not_found(store.get_inbox(id).await, "inbox", id);
    expect_not_found(store.update_inbox(id, &inbox_spec("x")).await, "inbox", id);
    expect_not_found(store.delete_inbox(id).await, "inbox", id);

    expect_not_found(store.get_sender(id).await, "sender", id);
    expect_not_found(
        store.update_sender(id, &sms("+14155552679", w.inbox)).await,
        "sender",
        id,
    );
    expect_not_found(store.delete_sender(id).await, "sender", id);

    expect_not_found(store.get_answer(id).await, "answer", id);
    expect_not_found(
        store.update_answer(id, &answer_spec("x")).await,
        "answer",
        id,
    );
    expect_not_found(store.delete_answer(id).await, "answer", id);

    expect_not_found(store.get_campaign(id).await, "campaign", id);
    expect_not_found(
        store
            .update_campaign(
                id,
                &campaign_spec("x", Channel::Sms, Some(w.sender), w.answer),
            )
            .await,
        "campaign",
        id,
    );
    expect_not_found(store.delete_campaign(id).await, "campaign", id);

    let msg = StoreError::NotFound {
        entity: "campaign",
        id,
    }
    .to_string();
    assert_eq!(msg, format!("no campaign has id {id}"));
    // Nothing was written along the way.
    assert_eq!(
        store
            .list_inboxes(Page::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    assert!(
        store
            .list_campaigns(None, Page::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

async fn missing_references_are_refused(store: &dyn Store) {
    let w = world(store).await;
    let ghost = Uuid::now_v7();

    let (field, msg) = expect_invalid(store.create_sender(&sms("+14155552679", ghost)).await);
    assert_eq!(
        (field, msg),
        ("inbox_id", format!("no inbox has id {ghost}"))
    );
    let (field, _) = expect_invalid(
        store
            .update_sender(w.sender, &sms("+14155552671", ghost))
            .await,
    );
    assert_eq!(field, "inbox_id");

    let (field, msg) = expect_invalid(
        store
            .create_campaign(&campaign_spec("A", Channel::Sms, Some(ghost), w.answer))
            .await,
    );
    assert_eq!(
        (field, msg),
        ("sender_id", format!("no sender has id {ghost}"))
    );
    let (field, msg) = expect_invalid(
        store
            .create_campaign(&campaign_spec("A", Channel::Sms, Some(w.sender), ghost))
            .await,
    );
    assert_eq!(
        (field, msg),
        ("answer_id", format!("no answer has id {ghost}"))
    );

    let c = store
        .create_campaign(&campaign_spec("A", Channel::Sms, Some(w.sender), w.answer))
        .await
        .expect("campaign");
    let (field, _) = expect_invalid(
        store
            .update_campaign(
                c.id,
                &campaign_spec("A", Channel::Sms, Some(w.sender), ghost),
            )
            .await,
    );
    assert_eq!(field, "answer_id");
    assert_eq!(store.get_campaign(c.id).await.expect("get"), c);
    assert_eq!(
        store
            .list_senders(Page::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

async fn specs_the_schema_cannot_hold_are_refused(store: &dyn Store) {
    let w = world(store).await;
    // Specs are normally checked by the core, but their fields are public.
    let twice = AnswerSpec {
        name: "Twice".into(),
        variants: vec![variant("en", None, "a"), variant("en", None, "b")],
    };
    let (field, msg) = expect_invalid(store.create_answer(&twice).await);
    assert_eq!(
        (field, msg.as_str()),
        ("variants", "en has more than one variant")
    );
    let none = AnswerSpec {
        name: "None".into(),
        variants: vec![],
    };
    assert_eq!(
        expect_invalid(store.create_answer(&none).await).0,
        "variants"
    );

    let (field, _) = expect_invalid(
        store
            .create_campaign(&campaign_spec(
                "Chat",
                Channel::Chat,
                Some(w.sender),
                w.answer,
            ))
            .await,
    );
    assert_eq!(field, "sender_id");
    let (field, _) = expect_invalid(
        store
            .create_campaign(&campaign_spec("Sms", Channel::Sms, None, w.answer))
            .await,
    );
    assert_eq!(field, "sender_id");

    let (field, _) = expect_invalid(
        store
            .create_sender(&sender_spec(
                Channel::Email,
                Address::Phone(phone("+14155552679")),
                w.inbox,
            ))
            .await,
    );
    assert_eq!(field, "address");
    let (field, _) = expect_invalid(
        store
            .create_sender(&sender_spec(
                Channel::Chat,
                Address::Phone(phone("+14155552679")),
                w.inbox,
            ))
            .await,
    );
    assert_eq!(field, "channel");
    assert_eq!(
        store
            .list_answers(Page::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

async fn sender_used_by_campaigns_keeps_its_channel(store: &dyn Store) {
    let w = world(store).await;
    store
        .create_campaign(&campaign_spec(
            "Order delays",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .expect("campaign");
    let to_voice = sender_spec(
        Channel::Voice,
        Address::Phone(phone("+14155552671")),
        w.inbox,
    );
    let msg = expect_in_use(store.update_sender(w.sender, &to_voice).await);
    assert!(
        msg.starts_with("sender +14155552671 is used by sms campaigns: Order delays;"),
        "{msg}"
    );
    assert_eq!(
        store.get_sender(w.sender).await.expect("get").channel,
        Channel::Sms
    );
    // Other changes are fine.
    let moved = store
        .update_sender(
            w.sender,
            &SenderSpec {
                provider: Provider::Webhook,
                ..sms("+14155552671", w.inbox)
            },
        )
        .await
        .expect("provider change");
    assert_eq!(moved.provider, Provider::Webhook);
}

async fn answer_keeps_what_its_campaigns_use(store: &dyn Store) {
    let w = world(store).await;
    let mail = store
        .create_sender(&sender_spec(
            Channel::Email,
            Address::Email(email("news@example.com")),
            w.inbox,
        ))
        .await
        .expect("email sender");
    store
        .create_campaign(&campaign_spec(
            "Newsletter",
            Channel::Email,
            Some(mail.id),
            w.answer,
        ))
        .await
        .expect("campaign");

    // Dropping the en-US variant the campaign sends is refused.
    let without_en = AnswerSpec {
        name: "Order delays".into(),
        variants: vec![variant("es", None, "Hola")],
    };
    let msg = expect_in_use(store.update_answer(w.answer, &without_en).await);
    assert!(msg.contains("campaigns use: Newsletter;"), "{msg}");
    // So is dropping the subject an email campaign needs.
    let no_subject = AnswerSpec {
        name: "Order delays".into(),
        variants: vec![variant("en-US", None, "Hi")],
    };
    expect_in_use(store.update_answer(w.answer, &no_subject).await);
    assert_eq!(
        store.get_answer(w.answer).await.expect("get").variants,
        answer_spec("x").variants
    );
    // Keeping it is fine.
    let kept = AnswerSpec {
        name: "Order delays".into(),
        variants: vec![variant("en-US", Some("Late"), "Hi")],
    };
    let updated = store.update_answer(w.answer, &kept).await.expect("update");
    assert_eq!(updated.variants, kept.variants);
}

async fn campaigns_filter_by_channel(store: &dyn Store) {
    let w = world(store).await;
    let mut sms_campaigns = Vec::new();
    let mut chat_campaigns = Vec::new();
    for i in 0..5 {
        sms_campaigns.push(
            store
                .create_campaign(&campaign_spec(
                    &format!("Sms {i}"),
                    Channel::Sms,
                    Some(w.sender),
                    w.answer,
                ))
                .await
                .expect("sms"),
        );
        chat_campaigns.push(
            store
                .create_campaign(&campaign_spec(
                    &format!("Chat {i}"),
                    Channel::Chat,
                    None,
                    w.answer,
                ))
                .await
                .expect("chat"),
        );
    }
    let sms = store
        .list_campaigns(Some(Channel::Sms), Page::default())
        .await
        .expect("sms");
    assert_eq!(sms.items, sms_campaigns);

    // Paging within a channel: the cursor skips the other channel's rows.
    let p1 = store
        .list_campaigns(Some(Channel::Chat), page(3, None))
        .await
        .expect("chat");
    assert_eq!(p1.items, chat_campaigns[..3].to_vec());
    assert_eq!(p1.next_after, Some(chat_campaigns[2].id));
    let p2 = store
        .list_campaigns(Some(Channel::Chat), page(3, p1.next_after))
        .await
        .expect("chat");
    assert_eq!(p2.items, chat_campaigns[3..].to_vec());
    assert_eq!(p2.next_after, None);

    let email = store
        .list_campaigns(Some(Channel::Email), Page::default())
        .await
        .expect("email");
    assert!(email.items.is_empty());
    assert_eq!(email.next_after, None);
    let all = store
        .list_campaigns(None, page(500, None))
        .await
        .expect("all");
    assert_eq!(all.items.len(), 10);
}

async fn concurrent_creates_all_succeed(store: &dyn Store) {
    let creates = (0..20)
        .map(|i| async move { store.create_inbox(&inbox_spec(&format!("Inbox {i}"))).await });
    let results = futures_util::future::join_all(creates).await;
    let mut ids = Vec::new();
    for r in results {
        ids.push(r.expect("every concurrent create succeeds").id);
    }
    let listed = store.list_inboxes(page(50, None)).await.expect("list");
    assert_eq!(listed.items.len(), 20);
    let mut listed_ids: Vec<Uuid> = listed.items.iter().map(|i| i.id).collect();
    ids.sort();
    listed_ids.sort();
    assert_eq!(listed_ids, ids);

    // Concurrent writers that check before they write (delete refusals, sender creates) too.
    let inbox_id = ids[0];
    let senders = (0..10).map(|n| async move {
        store
            .create_sender(&sms(&format!("+1415555267{n}"), inbox_id))
            .await
    });
    for r in futures_util::future::join_all(senders).await {
        r.expect("concurrent sender create");
    }
    let deletes = ids[1..].iter().map(|id| store.delete_inbox(*id));
    for r in futures_util::future::join_all(deletes).await {
        r.expect("concurrent delete");
    }
    assert_eq!(
        store
            .list_inboxes(Page::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    assert_eq!(
        store
            .list_senders(Page::default())
            .await
            .expect("list")
            .items
            .len(),
        10
    );
}

// ---------------------------------------------------------------- one backend only

mod sqlite_only {
    use herald_store::prelude::*;
    use herald_store::{SqliteStore, StoreError};
    use sqlx::Row;

    #[tokio::test]
    async fn connect_creates_the_file_and_sets_the_pragmas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new.db");
        assert!(!path.exists());
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        assert!(path.exists(), "the file is created");
        let pool = store.pool();
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .expect("journal_mode")
            .get(0);
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .expect("fk")
            .get(0);
        assert_eq!(fk, 1);
        let busy: i64 = sqlx::query("PRAGMA busy_timeout")
            .fetch_one(pool)
            .await
            .expect("busy")
            .get(0);
        assert_eq!(busy, 5000);
        let sync: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .expect("sync")
            .get(0);
        assert_eq!(sync, 1, "NORMAL");

        // Connecting does not migrate.
        let tables: i64 = sqlx::query("SELECT count(*) FROM sqlite_master WHERE name = 'inboxes'")
            .fetch_one(pool)
            .await
            .expect("count")
            .get(0);
        assert_eq!(tables, 0);
        store.migrate().await.expect("migrate");
        store.ping().await.expect("ping");
    }

    #[tokio::test]
    async fn connect_picks_the_backend_by_scheme() {
        let store = herald_store::connect("sqlite::memory:")
            .await
            .expect("memory");
        assert_eq!(store.backend(), "sqlite");
        store.migrate().await.expect("migrate");
        // One in-memory database, kept across uses of the pool.
        let inbox = store
            .create_inbox(&herald_core::InboxSpec {
                name: "Mem".into(),
                ..Default::default()
            })
            .await
            .expect("create");
        assert_eq!(store.get_inbox(inbox.id).await.expect("get"), inbox);

        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("plain.db").display());
        let store = herald_store::connect(&url).await.expect("sqlite:PATH");
        assert_eq!(store.backend(), "sqlite");

        match herald_store::connect("mysql://localhost/herald").await {
            Err(StoreError::UnsupportedUrl(scheme)) => assert_eq!(scheme, "mysql:"),
            Err(e) => panic!("expected UnsupportedUrl, got {e:?}"),
            Ok(_) => panic!("expected UnsupportedUrl, got a store"),
        }
    }

    #[tokio::test]
    async fn corrupt_rows_are_reported_not_unwrapped() {
        let t = herald_store::testing::sqlite().await;
        let store = SqliteStore::connect(&t.url).await.expect("connect");
        let inbox = store
            .create_inbox(&herald_core::InboxSpec {
                name: "Support".into(),
                ..Default::default()
            })
            .await
            .expect("inbox");
        let sender = store
            .create_sender(&herald_core::SenderSpec {
                channel: herald_core::Channel::Sms,
                address: herald_core::Address::Phone(
                    herald_core::E164::parse("+14155552671", None).expect("number"),
                ),
                inbox_id: inbox.id,
                provider: herald_core::Provider::File,
            })
            .await
            .expect("sender");
        sqlx::query("UPDATE senders SET address = 'not a number' WHERE id = $1")
            .bind(sender.id)
            .execute(store.pool())
            .await
            .expect("corrupt it");
        match store.get_sender(sender.id).await {
            Err(StoreError::Corrupt { entity, id, reason }) => {
                assert_eq!(entity, "sender");
                assert_eq!(id, sender.id.to_string());
                assert!(reason.contains("address"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(
            store.list_senders(herald_core::Page::default()).await,
            Err(StoreError::Corrupt { .. })
        ));
    }
}

mod postgres_only {
    #[tokio::test]
    async fn connect_picks_the_backend_by_scheme() {
        let Some(t) = herald_store::testing::postgres().await else {
            return;
        };
        for url in [
            t.url.clone(),
            t.url.replacen("postgres://", "postgresql://", 1),
        ] {
            let store = herald_store::connect(&url).await.expect("connect");
            assert_eq!(store.backend(), "postgres");
            store.ping().await.expect("ping");
        }
        // The test database is migrated and empty.
        let listed = t
            .store
            .list_inboxes(herald_core::Page::default())
            .await
            .expect("list");
        assert!(listed.items.is_empty());
    }

    #[tokio::test]
    async fn test_databases_are_dropped() {
        let Some(t) = herald_store::testing::postgres().await else {
            return;
        };
        let admin_url =
            std::env::var(herald_store::testing::POSTGRES_URL_VAR).expect("variable is set");
        let name = t.url.rsplit('/').next().expect("database name").to_string();
        assert!(name.starts_with("herald_test_"), "{name}");
        let exists = |admin_url: String, name: String| async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("admin");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_one(&mut conn)
                .await
                .expect("count");
            n
        };
        assert_eq!(exists(admin_url.clone(), name.clone()).await, 1);
        drop(t);
        assert_eq!(
            exists(admin_url, name).await,
            0,
            "dropped with the TestStore"
        );
    }
}

// ---------------------------------------------------------------- outreaches

fn new_outreach(campaign_id: Uuid) -> herald_store::NewOutreach {
    herald_store::NewOutreach {
        campaign_id,
        file_name: "list.csv".into(),
        start_at: "2026-12-01T09:00:00Z".parse().unwrap(),
        end_at: Some("2026-12-02T09:00:00Z".parse().unwrap()),
        default_region: Some("US".into()),
    }
}

fn recipients(from_line: u64, n: u64) -> Vec<herald_store::ImportedRecipient> {
    (from_line..from_line + n)
        .map(|line| herald_store::ImportedRecipient {
            line,
            address: format!("+1415555{:04}", line),
            raw_address: None,
            timezone: (line % 2 == 0).then(|| "Europe/Berlin".to_string()),
            variables_json: format!(r#"{{"first_name":"Tab\there {line}","note":"back\\slash"}}"#),
            suppressed: line % 5 == 0,
        })
        .collect()
}

async fn sms_campaign(store: &dyn Store) -> Uuid {
    let w = world(store).await;
    store
        .create_campaign(&campaign_spec(
            "Delays",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .expect("campaign")
        .id
}

async fn outreach_import_is_one_transaction(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import
        .recipients(&recipients(2, 3000))
        .await
        .expect("batch 1");
    import
        .recipients(&recipients(3002, 10))
        .await
        .expect("batch 2");
    let errors: Vec<_> = (0..2500)
        .map(|i| herald_store::ImportErrorRecord {
            line: 5000 + i,
            column: (i % 2 == 0).then(|| "phone".to_string()),
            value: format!("bad\tvalue {i}"),
            reason: "not a phone number".into(),
        })
        .collect();
    import.row_errors(&errors).await.expect("errors");
    let id = import.outreach_id();
    // Nothing is visible before the commit.
    assert!(matches!(
        store.get_outreach(id).await,
        Err(StoreError::NotFound { .. })
    ));
    let summary = herald_store::ImportSummary {
        rows: 5510,
        accepted: 3010,
        invalid: 2500,
        duplicates: 0,
        suppressed: 602,
        encoding: "windows-1252".into(),
    };
    let outreach = import.commit(&summary).await.expect("commit");
    assert_eq!(outreach.id, id);
    assert_eq!(outreach.summary, summary);
    // The progress the commit answers is the summary's, and the rows' own (read back below).
    assert_eq!(
        (
            outreach.progress.total,
            outreach.progress.pending,
            outreach.progress.skipped
        ),
        (3010, 2408, 602)
    );
    assert_eq!(outreach.status, herald_core::OutreachStatus::Scheduled);
    assert_eq!(outreach.start_at.to_string(), "2026-12-01T09:00:00Z");
    assert_eq!(
        outreach.end_at.map(|t| t.to_string()).as_deref(),
        Some("2026-12-02T09:00:00Z")
    );
    assert_eq!(outreach.default_region.as_deref(), Some("US"));
    assert_eq!(store.get_outreach(id).await.expect("get"), outreach);

    // The report pages in file order and keeps every byte.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .import_errors(id, after, 1000)
            .await
            .expect("errors page");
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().0;
        seen.extend(page.into_iter().map(|(_, e)| e));
    }
    assert_eq!(seen, errors);

    let listing = store
        .list_outreaches(
            campaign,
            Some(herald_core::OutreachStatus::Scheduled),
            Page::default(),
        )
        .await
        .expect("list");
    assert_eq!(listing.items, vec![outreach]);
    let none = store
        .list_outreaches(
            campaign,
            Some(herald_core::OutreachStatus::Stopped),
            Page::default(),
        )
        .await
        .expect("list");
    assert!(none.items.is_empty());
}

/// Every column an import writes reads back as it was given: text with the bytes a `COPY` text
/// stream would escape (tab, newline, backslash, `\N`), characters beyond ASCII, absent values,
/// a line number beyond 32 bits, and the start time to the microsecond as the first due time.
async fn imported_rows_keep_every_byte(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut new = new_outreach(campaign);
    new.start_at = "2026-12-01T09:00:00.123456Z".parse().unwrap();
    let mut import = store.begin_outreach(&new).await.expect("begin");
    let written = vec![
        herald_store::ImportedRecipient {
            line: 2,
            address: "+14155550101".into(),
            raw_address: Some("(415) 555-0101\t\\N".into()),
            timezone: Some("America/Los_Angeles".into()),
            variables_json: r#"{"name":"Zoë ✓ 🎉","note":"a\tb\nc\\d \\N","q":"\"x\""}"#.into(),
            suppressed: false,
        },
        herald_store::ImportedRecipient {
            line: 4_000_000_123,
            address: "+442071838750".into(),
            raw_address: None,
            timezone: None,
            variables_json: "{}".into(),
            suppressed: true,
        },
    ];
    import.recipients(&written).await.expect("batch");
    let id = import.outreach_id();
    let summary = herald_store::ImportSummary {
        rows: 2,
        accepted: 2,
        suppressed: 1,
        encoding: "utf-8".into(),
        ..Default::default()
    };
    import.commit(&summary).await.expect("commit");

    let read: Vec<RecipientRecord> = recipients_by_id(store, id).await.into_values().collect();
    assert_eq!(read.len(), 2);
    for (w, r) in written.iter().zip(&read) {
        assert_eq!(r.line, w.line);
        assert_eq!(r.address, w.address);
        assert_eq!(r.timezone, w.timezone);
        let variables: serde_json::Value = serde_json::from_str(&w.variables_json).unwrap();
        assert_eq!(r.variables, variables);
        assert_eq!(r.due_at, Some(new.start_at), "{r:?}");
        assert_eq!(r.attempts, 0);
    }
    assert_eq!(read[0].state, DeliveryState::Pending);
    assert_eq!(read[0].skip_reason, None);
    assert_eq!(read[1].state, DeliveryState::Skipped);
    assert_eq!(read[1].skip_reason, Some(SkipReason::Suppressed));
    let phones = store.recipient_phones(0, 100).await.expect("phones");
    let raw: Vec<Option<String>> = phones
        .iter()
        .filter(|p| p.outreach_id == id)
        .map(|p| p.raw_address.clone())
        .collect();
    assert_eq!(raw, vec![written[0].raw_address.clone(), None]);
}

/// The outreach `id` of `campaign` cannot be read, has no import report and is not listed.
async fn assert_outreach_is_nowhere(store: &dyn Store, campaign: Uuid, id: Uuid) {
    assert!(matches!(
        store.get_outreach(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .import_errors(id, 0, 10)
            .await
            .expect("errors")
            .is_empty()
    );
    let listing = store
        .list_outreaches(campaign, None, Page::default())
        .await
        .expect("list");
    assert!(listing.items.is_empty());
}

async fn a_dropped_import_leaves_nothing(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import.recipients(&recipients(2, 100)).await.expect("batch");
    let id = import.outreach_id();
    drop(import);
    assert_outreach_is_nowhere(store, campaign, id).await;
    // The store is usable afterwards (no lock left behind).
    store
        .create_inbox(&InboxSpec {
            name: "After".into(),
            ..Default::default()
        })
        .await
        .expect("write after rollback");
    assert!(matches!(
        store.begin_outreach(&new_outreach(Uuid::now_v7())).await,
        Err(StoreError::NotFound {
            entity: "campaign",
            ..
        })
    ));
}

/// A batch the database refuses, among good ones and import errors. PostgreSQL's text cannot
/// hold a NUL byte: its `COPY` fails, and that failure must reach the import (from a later batch
/// or from the commit), roll everything back and leave the store usable. SQLite keeps the byte.
/// (Herald's CSV reader refuses files with NUL bytes before any of this; the store must not rely
/// on it.)
async fn a_batch_the_database_refuses_fails_the_import(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut refused = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    let id = refused.outreach_id();
    let mut bad = recipients(4002, 10);
    bad[3].timezone = Some("Europe/Ber\u{0}lin".into());
    let error = herald_store::ImportErrorRecord {
        line: 1,
        column: None,
        value: "x".into(),
        reason: "not a phone number".into(),
    };
    let mut failed = None;
    for step in 0..8 {
        let done = match step {
            0 => refused.recipients(&recipients(2, 2000)).await,
            1 => refused.row_errors(std::slice::from_ref(&error)).await,
            2 => refused.recipients(&recipients(2002, 2000)).await,
            3 => refused.recipients(&bad).await,
            _ => {
                refused
                    .recipients(&recipients(5000 + step * 1000, 1000))
                    .await
            }
        };
        if let Err(e) = done {
            failed = Some(e);
            break;
        }
    }
    if store.backend() == "sqlite" {
        assert!(failed.is_none(), "{failed:?}");
        let outreach = refused
            .commit(&herald_store::ImportSummary::default())
            .await
            .expect("SQLite keeps a NUL byte");
        let page = store
            .list_recipients(outreach.id, None, 0, 5000)
            .await
            .expect("page");
        let kept = page.iter().find(|r| r.line == 4005).expect("line 4005");
        assert_eq!(kept.timezone.as_deref(), Some("Europe/Ber\u{0}lin"));
        return;
    }
    let failure = match failed {
        Some(e) => e,
        None => refused
            .commit(&herald_store::ImportSummary::default())
            .await
            .expect_err("PostgreSQL refuses a NUL byte in text"),
    };
    assert!(
        failure.to_string().contains("0x00"),
        "the database's own reason: {failure}"
    );
    assert_outreach_is_nowhere(store, campaign, id).await;
    // The connection went back to the pool in a usable state: a new import commits.
    let outreach = import(store, campaign, &recipients(2, 50)).await;
    assert_eq!(
        store
            .get_outreach(outreach.id)
            .await
            .expect("get")
            .progress
            .total,
        50
    );
}

/// More rows than one chunk of a SQLite import (5,000), so that an import in progress has
/// committed some of its rows there.
const BIG_IMPORT: u64 = 12_000;

async fn an_import_in_progress_is_invisible(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import
        .recipients(&recipients(2, BIG_IMPORT))
        .await
        .expect("recipients");
    import
        .row_errors(&[herald_store::ImportErrorRecord {
            line: 20_000,
            column: None,
            value: "x".into(),
            reason: "not a phone number".into(),
        }])
        .await
        .expect("errors");
    let id = import.outreach_id();
    // Other writers go on meanwhile.
    store
        .create_inbox(&inbox_spec("Meanwhile"))
        .await
        .expect("a write during the import");
    // No read finds it (nor `get_outreach`, below).
    assert!(matches!(
        store.outreach_progress(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.list_recipients(id, None, 0, 10).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .list_recipients(id, Some(DeliveryState::Pending), 0, 10)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_outreach_is_nowhere(store, campaign, id).await;
    // Nor does the dispatcher: it cannot start it, nor claim from it.
    let live = store.live_outreaches().await.expect("live");
    assert!(live.iter().all(|o| o.id != id));
    assert!(!matches!(store.start_outreach(id, t(0)).await, Ok(true)));
    match store.claim_due(id, t(0), t(60), 100).await {
        Ok(claimed) => assert!(claimed.is_empty(), "claimed {}", claimed.len()),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => panic!("claim: {e}"),
    }

    // At its commit it appears whole, and works as any other.
    let outreach = import
        .commit(&herald_store::ImportSummary {
            rows: BIG_IMPORT + 1,
            accepted: BIG_IMPORT,
            invalid: 1,
            suppressed: BIG_IMPORT / 5,
            encoding: "utf-8".into(),
            ..Default::default()
        })
        .await
        .expect("commit");
    assert_eq!(outreach.progress.total, BIG_IMPORT);
    assert_eq!(outreach.progress.skipped, BIG_IMPORT / 5);
    assert_eq!(
        store.import_errors(id, 0, 10).await.expect("errors").len(),
        1
    );
    assert!(
        store
            .live_outreaches()
            .await
            .expect("live")
            .iter()
            .any(|o| o.id == id && o.has_pending)
    );
    assert!(store.start_outreach(id, t(0)).await.expect("start"));
    let claimed = store.claim_due(id, t(0), t(60), 100).await.expect("claim");
    assert_eq!(claimed.len(), 100);
}

async fn outreaches_go_with_their_campaign(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import.recipients(&recipients(2, 10)).await.expect("batch");
    let outreach = import
        .commit(&herald_store::ImportSummary::default())
        .await
        .expect("commit");
    store
        .delete_campaign(campaign)
        .await
        .expect("delete campaign");
    assert!(matches!(
        store.get_outreach(outreach.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn test_sends_are_recorded_before_and_after_and_go_with_their_campaign(store: &dyn Store) {
    use herald_store::{NewTestSend, TestSendState};
    let campaign = sms_campaign(store).await;
    let new = |to: &str| NewTestSend {
        campaign_id: campaign,
        channel: Channel::Sms,
        to: to.to_string(),
        subject: None,
        body: "Hi Ada, your order is late.".to_string(),
        requested_by: "admin@example.com".to_string(),
    };
    let first = store.begin_test_send(&new("+14155550001")).await.unwrap();
    assert_eq!(first.state, TestSendState::Sending);
    assert_eq!(first.to, "+14155550001");
    assert_eq!(first.requested_by, "admin@example.com");
    assert!(first.finished_at.is_none());
    let sent = store
        .finish_test_send(first.id, Some("SM123"), None)
        .await
        .unwrap();
    assert_eq!(sent.state, TestSendState::Sent);
    assert_eq!(sent.provider_message_id.as_deref(), Some("SM123"));
    assert!(sent.finished_at.is_some());
    // An outcome is written once.
    assert!(matches!(
        store.finish_test_send(first.id, None, Some("late")).await,
        Err(StoreError::NotFound { .. })
    ));
    let second = store.begin_test_send(&new("+14155550002")).await.unwrap();
    let failed = store
        .finish_test_send(
            second.id,
            None,
            Some("the SMS provider could not be reached"),
        )
        .await
        .unwrap();
    assert_eq!(failed.state, TestSendState::Failed);
    let listed = store.list_test_sends(campaign, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![second.id, first.id],
        "newest first"
    );
    assert_eq!(listed[1], sent);
    assert_eq!(store.list_test_sends(campaign, 1).await.unwrap().len(), 1);
    // No test send for a campaign that does not exist; none go with a deleted campaign.
    let mut orphan = new("+14155550003");
    orphan.campaign_id = Uuid::now_v7();
    assert!(matches!(
        store.begin_test_send(&orphan).await,
        Err(StoreError::NotFound {
            entity: "campaign",
            ..
        })
    ));
    store.delete_campaign(campaign).await.unwrap();
    assert!(
        store
            .list_test_sends(campaign, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn suppressions_per_sender_and_for_all(store: &dyn Store) {
    let w = world(store).await;
    assert!(
        store
            .add_suppression("+14155550001", Some(w.sender), "STOP")
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_suppression("+14155550001", Some(w.sender), "STOP again")
            .await
            .unwrap()
    );
    assert!(
        store
            .add_suppression("+14155550002", None, "asked by phone")
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_suppression("+14155550002", None, "twice")
            .await
            .unwrap()
    );
    let for_sender = store.suppressed_addresses(Some(w.sender)).await.unwrap();
    assert_eq!(for_sender.len(), 2);
    assert!(for_sender.contains("+14155550001") && for_sender.contains("+14155550002"));
    let other = store
        .suppressed_addresses(Some(Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!(
        other.into_iter().collect::<Vec<_>>(),
        vec!["+14155550002".to_string()]
    );
}

// ---------------------------------------------------------------- dispatch

use herald_core::outreach::{CrashPolicy, DeliveryState, OutreachStatus, Progress, SkipReason};
use herald_store::{DeliveryResult, Outcome, Outreach, RecipientRecord};
use jiff::{SignedDuration, Timestamp};

/// The outreaches' start (see `new_outreach`): what the import makes every recipient due at.
const START: &str = "2026-12-01T09:00:00Z";

/// `secs` seconds after the outreach's start.
fn t(secs: i64) -> Timestamp {
    START
        .parse::<Timestamp>()
        .unwrap()
        .checked_add(SignedDuration::from_secs(secs))
        .unwrap()
}

/// `n` recipients from line 2, none suppressed.
fn plain_recipients(n: u64) -> Vec<herald_store::ImportedRecipient> {
    (2..n + 2)
        .map(|line| herald_store::ImportedRecipient {
            line,
            address: format!("+1415556{:04}", line),
            raw_address: None,
            timezone: (line % 2 == 0).then(|| "America/New_York".to_string()),
            variables_json: format!(r#"{{"first_name":"R{line}","n":{line}}}"#),
            suppressed: false,
        })
        .collect()
}

/// An outreach of the campaign with these recipients, committed (still `scheduled`).
async fn import(
    store: &dyn Store,
    campaign: Uuid,
    rows: &[herald_store::ImportedRecipient],
) -> Outreach {
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import.recipients(rows).await.expect("recipients");
    let summary = herald_store::ImportSummary {
        rows: rows.len() as u64,
        accepted: rows.len() as u64,
        suppressed: rows.iter().filter(|r| r.suppressed).count() as u64,
        encoding: "utf-8".into(),
        ..Default::default()
    };
    import.commit(&summary).await.expect("commit")
}

/// A started outreach of `n` plain recipients on a new campaign.
async fn started(store: &dyn Store, n: u64) -> Outreach {
    let campaign = sms_campaign(store).await;
    let outreach = import(store, campaign, &plain_recipients(n)).await;
    assert!(
        store
            .start_outreach(outreach.id, t(0))
            .await
            .expect("start")
    );
    outreach
}

/// Every recipient of the outreach, by id.
async fn recipients_by_id(store: &dyn Store, outreach: Uuid) -> BTreeMap<i64, RecipientRecord> {
    let mut all = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store
            .list_recipients(outreach, None, after, 7)
            .await
            .expect("list recipients");
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page.into_iter().map(|r| (r.id, r)));
    }
    all
}

async fn recipient(store: &dyn Store, outreach: Uuid, id: i64) -> RecipientRecord {
    recipients_by_id(store, outreach)
        .await
        .remove(&id)
        .expect("recipient")
}

fn result(recipient_id: i64, outcome: Outcome) -> DeliveryResult {
    DeliveryResult {
        recipient_id,
        outcome,
    }
}

fn sent(provider_message_id: &str) -> Outcome {
    Outcome::Sent {
        provider_message_id: Some(provider_message_id.to_string()),
    }
}

fn ids(claimed: &[herald_store::ClaimedRecipient]) -> Vec<i64> {
    claimed.iter().map(|c| c.id).collect()
}

async fn claims_only_due_recipients_of_outreaches_in_progress(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let outreach = import(store, campaign, &plain_recipients(6)).await;
    let id = outreach.id;
    // Scheduled: nothing is claimed, even when due.
    assert!(
        store
            .claim_due(id, t(60), t(120), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.outreach_status(id).await.unwrap(),
        OutreachStatus::Scheduled
    );
    assert!(store.start_outreach(id, t(1)).await.unwrap());
    assert!(!store.start_outreach(id, t(2)).await.unwrap(), "only once");
    let got = store.get_outreach(id).await.unwrap();
    assert_eq!(got.status, OutreachStatus::InProgress);
    assert_eq!(got.updated_at, t(1));
    assert_eq!(got.finished_at, None);
    // Recipients are due at the outreach's start, not before.
    assert!(
        store
            .claim_due(id, t(-1), t(120), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // In id order, at most `limit`, each once.
    let all: Vec<i64> = recipients_by_id(store, id).await.into_keys().collect();
    assert_eq!(all.len(), 6);
    let first = store.claim_due(id, t(0), t(300), 2).await.unwrap();
    assert_eq!(ids(&first), all[..2]);
    let c = &first[0];
    assert_eq!(c.outreach_id, id);
    assert_eq!(c.line, 2);
    assert_eq!(c.address, "+14155560002");
    assert_eq!(c.timezone.as_deref(), Some("America/New_York"));
    assert_eq!(c.variables_json, r#"{"first_name":"R2","n":2}"#);
    assert_eq!(c.attempts, 1);
    assert_eq!(first[1].timezone, None);
    let r = recipient(store, id, c.id).await;
    assert_eq!(r.state, DeliveryState::Sending);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.updated_at, Some(t(0)));

    // A recipient deferred to later is not due until then; the others come first.
    store
        .record_results(t(10), &[result(all[0], Outcome::Defer { due_at: t(3600) })])
        .await
        .unwrap();
    let next = store.claim_due(id, t(20), t(300), 10).await.unwrap();
    assert_eq!(ids(&next), all[2..]);
    assert!(
        store
            .claim_due(id, t(3599), t(4000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let later = store.claim_due(id, t(3600), t(4000), 10).await.unwrap();
    assert_eq!(ids(&later), vec![all[0]]);
    assert_eq!(later[0].attempts, 1, "a deferral does not count");

    // Unset due times (re-queued at once) come before any set one, then in id order.
    store
        .record_results(
            t(4001),
            &[
                result(all[0], Outcome::Defer { due_at: t(4500) }),
                result(all[3], Outcome::Defer { due_at: t(5000) }),
                result(all[2], Outcome::Defer { due_at: t(4500) }),
                result(all[5], Outcome::Defer { due_at: t(4500) }),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .recover_expired_leases(id, t(4002), CrashPolicy::AtLeastOnce)
            .await
            .unwrap(),
        2,
        "all[1] and all[4] were still leased until t(300)"
    );
    let order = store.claim_due(id, t(6000), t(7000), 10).await.unwrap();
    assert_eq!(
        ids(&order),
        vec![all[1], all[4], all[0], all[2], all[5], all[3]]
    );

    // A stopped or completed outreach has nothing to claim.
    store
        .record_results(
            t(6001),
            &order
                .iter()
                .map(|c| result(c.id, Outcome::Defer { due_at: t(6000) }))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    store.stop_outreach(id, t(6002)).await.unwrap();
    assert!(
        store
            .claim_due(id, t(9000), t(9999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let unknown = Uuid::now_v7();
    assert!(
        store
            .claim_due(unknown, t(9000), t(9999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    expect_not_found(store.outreach_status(unknown).await, "outreach", unknown);
    expect_not_found(
        store.start_outreach(unknown, t(0)).await,
        "outreach",
        unknown,
    );
}

async fn concurrent_claims_are_disjoint(store: &dyn Store) {
    let outreach = started(store, 3000).await;
    let claimer = || async {
        let mut mine = Vec::new();
        loop {
            let batch = store
                .claim_due(outreach.id, t(1), t(600), 37)
                .await
                .expect("claim");
            if batch.is_empty() {
                break;
            }
            mine.extend(ids(&batch));
            // Let the other claimer in between batches.
            tokio::task::yield_now().await;
        }
        mine
    };
    let (a, b) = tokio::join!(claimer(), claimer());
    // PostgreSQL's SKIP LOCKED hands both claimers work. SQLite has one writer: a claimer
    // waiting in SQLite's busy handler (which sleeps, up to 100 ms at a time) may find the other
    // has taken every batch meanwhile; what must hold there too is below.
    if store.backend() == "postgres" {
        assert!(!a.is_empty() && !b.is_empty(), "both claimers got work");
    }
    let a_set: std::collections::HashSet<i64> = a.iter().copied().collect();
    let b_set: std::collections::HashSet<i64> = b.iter().copied().collect();
    assert_eq!(
        a_set.len(),
        a.len(),
        "a claimer never gets a recipient twice"
    );
    assert_eq!(b_set.len(), b.len());
    assert!(a_set.is_disjoint(&b_set), "two claimers shared a recipient");
    assert_eq!(a.len() + b.len(), 3000);
    let progress = store.outreach_progress(outreach.id).await.unwrap();
    assert_eq!((progress.total, progress.pending), (3000, 3000));
    let sending = store
        .list_recipients(outreach.id, Some(DeliveryState::Sending), 0, 5000)
        .await
        .unwrap();
    assert_eq!(sending.len(), 3000);
    assert!(sending.iter().all(|r| r.attempts == 1));
}

async fn each_outcome_changes_the_row_as_documented(store: &dyn Store) {
    let outreach = started(store, 8).await;
    let id = outreach.id;
    let c = ids(&store.claim_due(id, t(0), t(300), 8).await.unwrap());
    let now = t(5);
    store
        .record_results(
            now,
            &[
                result(c[0], sent("SM0")),
                result(
                    c[1],
                    Outcome::Failed {
                        code: Some("21211".into()),
                        message: "not a valid phone number".into(),
                    },
                ),
                result(
                    c[2],
                    Outcome::Retry {
                        due_at: t(65),
                        code: Some("503".into()),
                        message: "provider unavailable".into(),
                    },
                ),
                result(c[3], Outcome::Defer { due_at: t(7200) }),
                result(
                    c[4],
                    Outcome::Unknown {
                        code: None,
                        message: "timed out after the request was sent".into(),
                    },
                ),
                result(
                    c[5],
                    Outcome::Skipped {
                        reason: SkipReason::OptedOut,
                        code: Some("21610".into()),
                        message: Some("unsubscribed".into()),
                    },
                ),
                result(
                    c[6],
                    Outcome::Skipped {
                        reason: SkipReason::Invalid,
                        code: None,
                        message: None,
                    },
                ),
                result(
                    c[7],
                    Outcome::Sent {
                        provider_message_id: None,
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let rows = recipients_by_id(store, id).await;
    let r = |i: usize| rows[&c[i]].clone();

    let s = r(0);
    assert_eq!(s.state, DeliveryState::Sent);
    assert_eq!(s.provider_message_id.as_deref(), Some("SM0"));
    assert_eq!((s.sent_at, s.updated_at), (Some(now), Some(now)));
    assert_eq!((s.attempts, s.error_code, s.error_message), (1, None, None));
    assert_eq!(s.due_at, Some(t(0)), "the import's due time stays");
    assert_eq!(s.variables, serde_json::json!({"first_name": "R2", "n": 2}));
    assert_eq!((s.line, s.address.as_str()), (2, "+14155560002"));

    let f = r(1);
    assert_eq!(f.state, DeliveryState::Failed);
    assert_eq!(f.error_code.as_deref(), Some("21211"));
    assert_eq!(f.error_message.as_deref(), Some("not a valid phone number"));
    assert_eq!((f.attempts, f.sent_at, f.skip_reason), (1, None, None));

    let rt = r(2);
    assert_eq!(rt.state, DeliveryState::Pending);
    assert_eq!(rt.due_at, Some(t(65)));
    assert_eq!(rt.attempts, 1, "a retry counts the attempt");
    assert_eq!(rt.error_code.as_deref(), Some("503"));
    assert_eq!(rt.error_message.as_deref(), Some("provider unavailable"));

    let d = r(3);
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.due_at, Some(t(7200)));
    assert_eq!(d.attempts, 0, "a deferral does not count");
    assert_eq!((d.error_code, d.error_message), (None, None));

    let u = r(4);
    assert_eq!(u.state, DeliveryState::Unknown);
    assert_eq!(u.error_code, None);
    assert_eq!(
        u.error_message.as_deref(),
        Some("timed out after the request was sent")
    );

    let o = r(5);
    assert_eq!(o.state, DeliveryState::Skipped);
    assert_eq!(o.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(o.error_code.as_deref(), Some("21610"));
    assert_eq!(o.error_message.as_deref(), Some("unsubscribed"));

    let i = r(6);
    assert_eq!(i.state, DeliveryState::Skipped);
    assert_eq!(i.skip_reason, Some(SkipReason::Invalid));
    assert_eq!((i.error_code, i.error_message), (None, None));

    let n = r(7);
    assert_eq!(n.state, DeliveryState::Sent);
    assert_eq!(n.provider_message_id, None);
    assert!(rows.values().all(|r| r.updated_at == Some(now)));

    // The retried recipient comes back when due; sending it clears the last error.
    let again = store.claim_due(id, t(65), t(400), 10).await.unwrap();
    assert_eq!(ids(&again), vec![c[2]]);
    assert_eq!(again[0].attempts, 2);
    store
        .record_results(t(70), &[result(c[2], sent("SM2"))])
        .await
        .unwrap();
    let done = recipient(store, id, c[2]).await;
    assert_eq!(done.state, DeliveryState::Sent);
    assert_eq!((done.attempts, done.sent_at), (2, Some(t(70))));
    assert_eq!((done.error_code, done.error_message), (None, None));

    // A large uniform batch (more rows than one statement takes) lands in one call.
    let big = import(store, outreach.campaign_id, &plain_recipients(2500))
        .await
        .id;
    assert!(store.start_outreach(big, t(0)).await.unwrap());
    let claimed = store.claim_due(big, t(0), t(300), 5000).await.unwrap();
    assert_eq!(claimed.len(), 2500);
    let results: Vec<_> = claimed
        .iter()
        .map(|c| result(c.id, sent(&format!("SM{}", c.id))))
        .collect();
    store.record_results(t(9), &results).await.unwrap();
    let rows = recipients_by_id(store, big).await;
    assert!(rows.values().all(|r| r.state == DeliveryState::Sent
        && r.provider_message_id.as_deref() == Some(format!("SM{}", r.id).as_str())));
    let p = store.outreach_progress(big).await.unwrap();
    assert_eq!((p.total, p.sent, p.pending), (2500, 2500, 0));
    store
        .record_results(t(9), &[])
        .await
        .expect("nothing to record");
}

async fn late_results_are_ignored_but_sent_resolves_unknown(store: &dyn Store) {
    let outreach = started(store, 5).await;
    let id = outreach.id;
    let c = ids(&store.claim_due(id, t(0), t(30), 3).await.unwrap());
    let pending: Vec<i64> = recipients_by_id(store, id)
        .await
        .into_values()
        .filter(|r| r.state == DeliveryState::Pending)
        .map(|r| r.id)
        .collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(store.start_sends(t(1), t(30), &c).await.unwrap(), c);
    // The dispatcher died mid-send: its leases expire and the sends become unknown.
    assert_eq!(
        store
            .recover_expired_leases(id, t(31), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        3
    );
    let failed = Outcome::Failed {
        code: None,
        message: "late".into(),
    };
    store
        .record_results(
            t(40),
            &[
                result(c[0], failed.clone()),
                result(c[1], sent("SM1")),
                result(
                    c[2],
                    Outcome::Retry {
                        due_at: t(50),
                        code: None,
                        message: "late".into(),
                    },
                ),
                // Never claimed: a result for it changes nothing.
                result(pending[0], sent("SMx")),
                result(pending[1], failed),
            ],
        )
        .await
        .unwrap();
    let rows = recipients_by_id(store, id).await;
    assert_eq!(rows[&c[0]].state, DeliveryState::Unknown);
    assert_eq!(rows[&c[0]].error_code.as_deref(), Some("lease_expired"));
    assert_eq!(rows[&c[0]].updated_at, Some(t(31)));
    let resolved = &rows[&c[1]];
    assert_eq!(resolved.state, DeliveryState::Sent);
    assert_eq!(resolved.provider_message_id.as_deref(), Some("SM1"));
    assert_eq!(resolved.sent_at, Some(t(40)));
    assert_eq!(
        (&resolved.error_code, &resolved.error_message),
        (&None, &None)
    );
    assert_eq!(rows[&c[2]].state, DeliveryState::Unknown);
    for p in &pending {
        assert_eq!(rows[p].state, DeliveryState::Pending);
        assert_eq!(rows[p].provider_message_id, None);
        assert_eq!(rows[p].attempts, 0);
    }
    // A second recording of the same result is ignored too.
    store
        .record_results(t(41), &[result(c[1], sent("SM1-again"))])
        .await
        .unwrap();
    let again = recipient(store, id, c[1]).await;
    assert_eq!(again.provider_message_id.as_deref(), Some("SM1"));
    assert_eq!(again.updated_at, Some(t(40)));
}

async fn retries_after_a_stop_are_skipped(store: &dyn Store) {
    let outreach = started(store, 7).await;
    let id = outreach.id;
    let c = ids(&store.claim_due(id, t(0), t(300), 4).await.unwrap());
    let stopped = store.stop_outreach(id, t(10)).await.unwrap();
    assert_eq!(
        stopped.progress.pending, 4,
        "sending ones wait for their results"
    );
    assert_eq!(stopped.progress.skipped, 3);
    store
        .record_results(
            t(20),
            &[
                result(
                    c[0],
                    Outcome::Retry {
                        due_at: t(80),
                        code: Some("429".into()),
                        message: "slow down".into(),
                    },
                ),
                result(c[1], Outcome::Defer { due_at: t(9000) }),
                result(c[2], sent("SM2")),
                result(
                    c[3],
                    Outcome::Failed {
                        code: None,
                        message: "no".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let rows = recipients_by_id(store, id).await;
    for i in [0, 1] {
        let r = &rows[&c[i]];
        assert_eq!(r.state, DeliveryState::Skipped, "{r:?}");
        assert_eq!(r.skip_reason, Some(SkipReason::Stopped));
    }
    assert_eq!(rows[&c[0]].attempts, 1);
    assert_eq!(rows[&c[1]].attempts, 0);
    assert_eq!(rows[&c[2]].state, DeliveryState::Sent);
    assert_eq!(rows[&c[3]].state, DeliveryState::Failed);
    assert!(
        !rows.values().any(|r| !r.state.is_terminal()),
        "nothing is left pending in a stopped outreach"
    );
    let p = store.outreach_progress(id).await.unwrap();
    assert_eq!((p.skipped, p.sent, p.failed, p.pending), (5, 1, 1, 0));
}

async fn expired_leases_follow_the_crash_policy(store: &dyn Store) {
    let outreach = started(store, 6).await;
    let id = outreach.id;
    let short = ids(&store.claim_due(id, t(0), t(30), 2).await.unwrap());
    let long = ids(&store.claim_due(id, t(0), t(600), 2).await.unwrap());
    // Their sends began (a claim whose sends never began is undone instead: see
    // `a_crash_leaves_uncertain_only_the_sends_that_began`).
    assert_eq!(store.start_sends(t(1), t(30), &short).await.unwrap(), short);
    assert_eq!(store.start_sends(t(1), t(600), &long).await.unwrap(), long);
    // Nothing expired yet.
    assert_eq!(
        store
            .recover_expired_leases(id, t(30), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        0
    );
    // At most once: unknown, never sent again.
    assert_eq!(
        store
            .recover_expired_leases(id, t(31), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        2
    );
    let rows = recipients_by_id(store, id).await;
    for i in &short {
        let r = &rows[i];
        assert_eq!(r.state, DeliveryState::Unknown);
        assert_eq!(r.error_code.as_deref(), Some("lease_expired"));
        let msg = r.error_message.as_deref().unwrap();
        assert!(
            msg.contains("not sent again") && msg.contains("duplicate"),
            "{msg}"
        );
        assert_eq!((r.attempts, r.updated_at), (1, Some(t(31))));
    }
    for i in &long {
        assert_eq!(rows[i].state, DeliveryState::Sending, "lease not expired");
    }
    // At least once: back in the queue, due at once, ahead of the rest.
    assert_eq!(
        store
            .recover_expired_leases(id, t(601), CrashPolicy::AtLeastOnce)
            .await
            .unwrap(),
        2
    );
    let rows = recipients_by_id(store, id).await;
    for i in &long {
        let r = &rows[i];
        assert_eq!(r.state, DeliveryState::Pending);
        assert_eq!((r.due_at, r.attempts), (None, 1));
    }
    let next = store.claim_due(id, t(602), t(700), 10).await.unwrap();
    assert_eq!(ids(&next)[..2], long[..]);
    assert!(next[..2].iter().all(|c| c.attempts == 2));
    assert_eq!(next.len(), 4);

    // At least once after a stop: skipped, not re-queued into a final outreach.
    store.stop_outreach(id, t(650)).await.unwrap();
    assert_eq!(
        store
            .recover_expired_leases(id, t(701), CrashPolicy::AtLeastOnce)
            .await
            .unwrap(),
        4
    );
    let rows = recipients_by_id(store, id).await;
    for c in &next {
        assert_eq!(rows[&c.id].state, DeliveryState::Skipped);
        assert_eq!(rows[&c.id].skip_reason, Some(SkipReason::Stopped));
    }
    let unknown = Uuid::now_v7();
    expect_not_found(
        store
            .recover_expired_leases(unknown, t(0), CrashPolicy::AtMostOnce)
            .await,
        "outreach",
        unknown,
    );
}

/// A node paused past its lease writes its batch's results after another node took the batch
/// over. Its failures and deferrals must not touch what the other node holds now (re-queued,
/// that recipient would be sent by the other node and then again); its sends still resolve
/// what they sent.
async fn late_results_touch_only_what_their_claim_still_holds(store: &dyn Store) {
    use herald_store::Held;
    let outreach = started(store, 4).await;
    let id = outreach.id;
    // Node A claims all four until t(30) and begins the sends of the first two at t(1).
    let a = ids(&store.claim_due(id, t(0), t(30), 4).await.unwrap());
    assert_eq!(a.len(), 4);
    assert_eq!(
        store.start_sends(t(1), t(30), &a[..2]).await.unwrap(),
        a[..2]
    );
    // A is paused past its lease; recovery leaves the begun two uncertain and re-queues the
    // others, which node B claims until t(100) and begins at t(41).
    assert_eq!(
        store
            .recover_expired_leases(id, t(40), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        4
    );
    let b = ids(&store.claim_due(id, t(40), t(100), 10).await.unwrap());
    assert_eq!(b, a[2..]);
    assert_eq!(store.start_sends(t(41), t(100), &b).await.unwrap(), b);
    // A renews its lease: nothing of the batch is still under it.
    assert_eq!(store.renew_leases(&a, t(30), t(60)).await.unwrap(), 0);

    let held_by_b = recipients_by_id(store, id).await;
    // A wakes: a[0] was sent, a[1] failed, a[2] deferred, a[3] failed for good.
    let failed = || Outcome::Failed {
        code: Some("30003".to_string()),
        message: "unreachable".to_string(),
    };
    store
        .record_batch(
            t(42),
            Held::Lease(t(30)),
            &[
                result(a[0], sent("SM-A0")),
                result(a[1], failed()),
                result(a[2], Outcome::Defer { due_at: t(3600) }),
                result(a[3], failed()),
            ],
            &[],
        )
        .await
        .unwrap();
    let rows = recipients_by_id(store, id).await;
    let a0 = &rows[&a[0]];
    assert_eq!(
        (a0.state, a0.provider_message_id.as_deref()),
        (DeliveryState::Sent, Some("SM-A0")),
        "a send resolves the uncertain recipient it sent"
    );
    assert_eq!(
        rows[&a[1]].state,
        DeliveryState::Unknown,
        "a failure under a lost lease is not applied"
    );
    for i in &b {
        assert_eq!(rows[i].state, DeliveryState::Sending, "B still holds {i}");
        assert_eq!(rows[i], held_by_b[i], "A's late results left {i} alone");
    }
    // The same results replayed from A's journal, under A's mark: nothing more changes.
    store
        .record_batch(
            t(43),
            Held::Begun(t(1)),
            &[result(a[2], failed()), result(a[3], failed())],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(recipients_by_id(store, id).await, rows);

    // B's own results apply, under its lease and under its mark.
    store
        .record_batch(
            t(50),
            Held::Lease(t(100)),
            &[result(b[0], sent("SM-B"))],
            &[],
        )
        .await
        .unwrap();
    store
        .record_batch(t(51), Held::Begun(t(41)), &[result(b[1], failed())], &[])
        .await
        .unwrap();
    let rows = recipients_by_id(store, id).await;
    assert_eq!(rows[&b[0]].state, DeliveryState::Sent);
    assert_eq!(rows[&b[0]].provider_message_id.as_deref(), Some("SM-B"));
    assert_eq!(rows[&b[1]].state, DeliveryState::Failed);
    let p = store.outreach_progress(id).await.unwrap();
    assert_eq!((p.sent, p.failed, p.uncertain, p.pending), (2, 1, 1, 0));
}

/// Recipients deferred to their next sending window are released when the campaign is saved
/// (its hours may be wider now); a retry's back-off and other campaigns' recipients are not.
async fn a_saved_campaign_releases_recipients_waiting_for_its_hours(store: &dyn Store) {
    let outreach = started(store, 4).await;
    let id = outreach.id;
    // Another campaign on the same sender and answer.
    let campaign = store.get_campaign(outreach.campaign_id).await.unwrap();
    let second = store
        .create_campaign(&campaign_spec(
            "Delays, again",
            Channel::Sms,
            campaign.sender_id,
            campaign.answer_id,
        ))
        .await
        .unwrap();
    let other = import(store, second.id, &plain_recipients(1)).await;
    assert!(store.start_outreach(other.id, t(0)).await.unwrap());
    let c = ids(&store.claim_due(id, t(0), t(30), 4).await.unwrap());
    let o = ids(&store.claim_due(other.id, t(0), t(30), 1).await.unwrap());
    let defer = || Outcome::Defer { due_at: t(3600) };
    store
        .record_results(
            t(1),
            &[
                result(c[0], defer()),
                result(c[1], defer()),
                result(
                    c[2],
                    Outcome::Retry {
                        due_at: t(3600),
                        code: Some("20429".to_string()),
                        message: "too many requests".to_string(),
                    },
                ),
                result(c[3], sent("SM1")),
                result(o[0], defer()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .release_waiting(outreach.campaign_id, t(100))
            .await
            .unwrap(),
        2
    );
    let rows = recipients_by_id(store, id).await;
    for i in &c[..2] {
        assert_eq!(rows[i].state, DeliveryState::Pending);
        assert_eq!((rows[i].due_at, rows[i].attempts), (Some(t(100)), 0), "{i}");
    }
    assert_eq!(
        rows[&c[2]].due_at,
        Some(t(3600)),
        "a retry keeps its back-off"
    );
    assert_eq!(rows[&c[3]].state, DeliveryState::Sent);
    let others = recipients_by_id(store, other.id).await;
    assert_eq!(others[&o[0]].due_at, Some(t(3600)), "another campaign's");
    // Released ones are due again; nothing is left to release.
    let again = ids(&store.claim_due(id, t(100), t(130), 10).await.unwrap());
    assert_eq!(again, c[..2]);
    assert_eq!(
        store
            .release_waiting(outreach.campaign_id, t(101))
            .await
            .unwrap(),
        0
    );
}

async fn a_report_counts_the_funnel_reasons_hours_and_reply_time(store: &dyn Store) {
    let outreach = started(store, 8).await;
    let id = outreach.id;
    let empty = store.outreach_report(id).await.unwrap();
    assert_eq!(empty.progress.total, 8);
    assert!(empty.sent_per_hour.is_empty() && empty.failures.is_empty());
    assert_eq!(empty.median_reply_seconds, None);

    let c = ids(&store.claim_due(id, t(0), t(30), 8).await.unwrap());
    let failed = |code: &str| Outcome::Failed {
        code: Some(code.to_string()),
        message: "no".to_string(),
    };
    // Three sent in the first hour, one in the third; two failures of one code, one of another;
    // one opted out at the provider.
    store
        .record_results(
            t(10),
            &[
                result(c[0], sent("SM0")),
                result(c[1], sent("SM1")),
                result(c[2], sent("SM2")),
                result(c[4], failed("30003")),
                result(c[5], failed("30003")),
                result(c[6], failed("30005")),
                result(
                    c[7],
                    Outcome::Skipped {
                        reason: SkipReason::OptedOut,
                        code: Some("21610".to_string()),
                        message: None,
                    },
                ),
            ],
        )
        .await
        .unwrap();
    store
        .record_results(t(2 * 3600 + 5), &[result(c[3], sent("SM3"))])
        .await
        .unwrap();
    let r = store.outreach_report(id).await.unwrap();
    assert_eq!(
        (r.progress.sent, r.progress.failed, r.progress.skipped),
        (4, 3, 1)
    );
    let hours: Vec<(Timestamp, u64)> = r.sent_per_hour.iter().map(|h| (h.hour, h.sent)).collect();
    assert_eq!(hours, vec![(t(0), 3), (t(2 * 3600), 1)]);
    let failures: Vec<(&str, u64)> = r
        .failures
        .iter()
        .map(|f| (f.reason.as_str(), f.count))
        .collect();
    assert_eq!(failures, vec![("30003", 2), ("30005", 1)]);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(
        (r.skipped[0].reason.as_str(), r.skipped[0].count),
        ("opted_out", 1)
    );
    let unknown = Uuid::now_v7();
    expect_not_found(store.outreach_report(unknown).await, "outreach", unknown);
    // The campaign has this one outreach: the same figures.
    assert_eq!(
        store.campaign_report(outreach.campaign_id).await.unwrap(),
        r
    );
    expect_not_found(store.campaign_report(unknown).await, "campaign", unknown);
}

async fn a_crash_leaves_uncertain_only_the_sends_that_began(store: &dyn Store) {
    let outreach = started(store, 8).await;
    let id = outreach.id;
    let claimed = ids(&store.claim_due(id, t(0), t(30), 6).await.unwrap());
    assert_eq!(claimed.len(), 6);
    // A group of two begins; a mark under another lease than the claim's marks nothing.
    let group = claimed[..2].to_vec();
    assert!(
        store
            .start_sends(t(1), t(31), &group)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.start_sends(t(1), t(30), &group).await.unwrap(), group);
    // A recipient that is not claimed (still pending) is never marked begun.
    let pending: Vec<i64> = recipients_by_id(store, id)
        .await
        .into_values()
        .filter(|r| r.state == DeliveryState::Pending)
        .map(|r| r.id)
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(
        store
            .start_sends(t(1), t(30), &pending)
            .await
            .unwrap()
            .is_empty()
    );

    // The group's results are written; the next group begins.
    let done = [
        herald_store::DeliveryResult {
            recipient_id: group[0],
            outcome: herald_store::Outcome::Sent {
                provider_message_id: Some("SM1".into()),
            },
        },
        herald_store::DeliveryResult {
            recipient_id: group[1],
            outcome: herald_store::Outcome::Failed {
                code: Some("21211".into()),
                message: "not a mobile number".into(),
            },
        },
    ];
    store.record_results(t(2), &done).await.unwrap();
    let second = claimed[2..4].to_vec();
    assert_eq!(
        store.start_sends(t(2), t(30), &second).await.unwrap(),
        second
    );
    let rows = recipients_by_id(store, id).await;
    assert_eq!(rows[&group[0]].state, DeliveryState::Sent);
    assert_eq!(rows[&group[0]].provider_message_id.as_deref(), Some("SM1"));
    assert_eq!(rows[&group[1]].state, DeliveryState::Failed);

    // The node dies: at most once, only the second group, whose sends began and whose results
    // were never written, is uncertain.
    assert_eq!(
        store
            .recover_expired_leases(id, t(31), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        4
    );
    let rows = recipients_by_id(store, id).await;
    for i in &claimed[2..] {
        let r = &rows[i];
        if second.contains(i) {
            assert_eq!(r.state, DeliveryState::Unknown, "{i}");
            assert_eq!(r.attempts, 1);
        } else {
            // Never begun: back in the queue as if never claimed, its attempt not counted.
            assert_eq!(r.state, DeliveryState::Pending, "{i}");
            assert_eq!(r.attempts, 0);
        }
    }
    assert_eq!(rows[&group[0]].state, DeliveryState::Sent);
    let again = store.claim_due(id, t(40), t(70), 10).await.unwrap();
    assert_eq!(
        again.len(),
        4,
        "the two never begun and the two never claimed"
    );
    assert!(again.iter().all(|c| c.attempts == 1));
    assert!(ids(&again).iter().all(|i| !claimed[..4].contains(i)));

    // A new claim forgets an earlier mark: after a retry's re-claim nothing is begun yet.
    store.stop_outreach(id, t(50)).await.unwrap();
    assert_eq!(
        store
            .recover_expired_leases(id, t(71), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        4
    );
    let rows = recipients_by_id(store, id).await;
    for c in &again {
        // Never begun in a stopped outreach: skipped, not uncertain and not re-queued.
        assert_eq!(rows[&c.id].state, DeliveryState::Skipped);
        assert_eq!(rows[&c.id].skip_reason, Some(SkipReason::Stopped));
    }
}

async fn sends_never_begun_go_back_only_under_their_own_mark(store: &dyn Store) {
    let outreach = started(store, 6).await;
    let id = outreach.id;
    let claimed = ids(&store.claim_due(id, t(0), t(30), 6).await.unwrap());
    assert_eq!(
        store.start_sends(t(1), t(30), &claimed).await.unwrap(),
        claimed
    );
    // The journal says the first two began; the other four were marked at t(1) but never sent.
    let unbegun = &claimed[2..];
    // Another mark's instant releases nothing.
    assert_eq!(store.release_unbegun(t(5), t(2), unbegun).await.unwrap(), 0);
    assert_eq!(
        store
            .release_unbegun(t(5), t(1), &unbegun[..2])
            .await
            .unwrap(),
        2
    );
    let rows = recipients_by_id(store, id).await;
    for i in &unbegun[..2] {
        assert_eq!(rows[i].state, DeliveryState::Pending, "{i}");
        assert_eq!(rows[i].attempts, 0, "the claim's attempt is undone");
    }
    // Lease recovery (another node, before this one came back) made the rest uncertain; the
    // journal's word takes them back: they never left.
    assert_eq!(
        store
            .recover_expired_leases(id, t(31), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        4
    );
    let rows = recipients_by_id(store, id).await;
    assert_eq!(rows[&unbegun[2]].state, DeliveryState::Unknown);
    assert_eq!(
        store
            .release_unbegun(t(32), t(1), &unbegun[2..])
            .await
            .unwrap(),
        2
    );
    let rows = recipients_by_id(store, id).await;
    for i in &unbegun[2..] {
        assert_eq!(rows[i].state, DeliveryState::Pending, "{i}");
        assert_eq!(rows[i].error_code, None);
    }
    // Those that began stay uncertain.
    for i in &claimed[..2] {
        assert_eq!(rows[i].state, DeliveryState::Unknown, "{i}");
    }
    // Released ones claimed and marked again by another node are not released by the old mark,
    // and a stopped outreach's unbegun sends are skipped, not queued.
    let again = ids(&store.claim_due(id, t(40), t(70), 6).await.unwrap());
    assert_eq!(again.len(), 4);
    assert_eq!(
        store.start_sends(t(41), t(70), &again).await.unwrap(),
        again
    );
    assert_eq!(store.release_unbegun(t(42), t(1), &again).await.unwrap(), 0);
    store.stop_outreach(id, t(43)).await.unwrap();
    assert_eq!(
        store.release_unbegun(t(44), t(41), &again).await.unwrap(),
        4
    );
    let rows = recipients_by_id(store, id).await;
    for i in &again {
        assert_eq!(rows[i].state, DeliveryState::Skipped, "{i}");
        assert_eq!(rows[i].skip_reason, Some(SkipReason::Stopped));
    }
}

async fn leases_are_renewed_only_by_their_holder(store: &dyn Store) {
    let outreach = started(store, 3).await;
    let id = outreach.id;
    let claimed = ids(&store.claim_due(id, t(0), t(30), 3).await.unwrap());
    // Another holder's lease value renews nothing.
    assert_eq!(store.renew_leases(&claimed, t(29), t(60)).await.unwrap(), 0);
    assert_eq!(store.renew_leases(&claimed, t(30), t(60)).await.unwrap(), 3);
    // Past the first lease, the renewed claim is not taken for a dead node's.
    assert_eq!(
        store
            .recover_expired_leases(id, t(45), CrashPolicy::AtMostOnce)
            .await
            .unwrap(),
        0
    );
    // Sends begin under the renewed lease only.
    assert!(
        store
            .start_sends(t(46), t(30), &claimed)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.start_sends(t(46), t(60), &claimed).await.unwrap(),
        claimed
    );
    // A recorded result ends the lease: nothing is left to renew.
    let results: Vec<_> = claimed
        .iter()
        .map(|&recipient_id| herald_store::DeliveryResult {
            recipient_id,
            outcome: herald_store::Outcome::Sent {
                provider_message_id: Some(format!("SM{recipient_id}")),
            },
        })
        .collect();
    store.record_results(t(50), &results).await.unwrap();
    assert_eq!(store.renew_leases(&claimed, t(60), t(90)).await.unwrap(), 0);
}

async fn a_sender_has_one_bucket_of_tokens(store: &dyn Store) {
    let w = world(store).await;
    let other = store
        .create_sender(&sms("+14155550199", inbox(store, "Other").await.id))
        .await
        .unwrap()
        .id;
    let ms = |n: i64| t(0).checked_add(SignedDuration::from_millis(n)).unwrap();
    // 10 a second, half a second kept, for `sender`, at `at` ms: the tokens granted of `want`.
    let take = |sender: Uuid, at: i64, want: u32| async move {
        store
            .take_tokens(sender, 10.0, 5.0, ms(at), want, None)
            .await
            .unwrap()
            .tokens
    };
    let adjust = |at: i64, delta: i64| async move {
        store
            .adjust_tokens(w.sender, 10.0, 5.0, ms(at), delta, None)
            .await
            .unwrap()
    };
    // A new bucket starts full.
    assert_eq!(take(w.sender, 0, 100).await, 5);
    assert_eq!(take(w.sender, 0, 100).await, 0);
    // Another sender has its own.
    assert_eq!(take(other, 0, 2).await, 2);
    // 300 ms refill three; no more than asked for is granted.
    assert_eq!(take(w.sender, 300, 2).await, 2);
    assert_eq!(take(w.sender, 300, 9).await, 1);
    // Unspent tokens go back, up to the burst; an idle bucket saves no more than the burst.
    adjust(300, 2).await;
    assert_eq!(take(w.sender, 300, 9).await, 2);
    assert_eq!(take(w.sender, 60_000, 99).await, 5);
    // Spending beyond the tokens taken leaves a debt that is paid off before anything more.
    adjust(60_000, -3).await;
    assert_eq!(take(w.sender, 60_200, 9).await, 0);
    assert_eq!(take(w.sender, 60_400, 9).await, 1);
    // A clock behind the last write refills nothing (nodes' clocks differ a little).
    assert_eq!(take(w.sender, 60_000, 9).await, 0);
}

async fn a_daily_cap_holds_for_every_node_until_the_next_day(store: &dyn Store) {
    let w = world(store).await;
    let day = |d: &str| herald_store::DailyCap {
        day: d.parse().unwrap(),
        limit: 7,
    };
    let monday = Some(day("2026-03-02"));
    // A fast rate: only the cap holds anything back.
    let take = |at: i64, want: u32, cap: Option<herald_store::DailyCap>| async move {
        store
            .take_tokens(w.sender, 1000.0, 1000.0, t(at), want, cap)
            .await
            .unwrap()
    };
    let g = take(0, 5, monday).await;
    assert_eq!((g.tokens, g.capped), (5, false));
    // Another node's take counts against the same day: two are left of seven.
    let g = take(1, 5, monday).await;
    assert_eq!((g.tokens, g.capped), (2, true));
    // Tokens given back were not spent today.
    store
        .adjust_tokens(w.sender, 1000.0, 1000.0, t(2), 1, monday)
        .await
        .unwrap();
    let g = take(3, 5, monday).await;
    assert_eq!((g.tokens, g.capped), (1, true));
    let g = take(4, 5, monday).await;
    assert_eq!((g.tokens, g.capped), (0, true));
    // A message of more segments than taken is charged to the day too.
    store
        .adjust_tokens(w.sender, 1000.0, 1000.0, t(5), -2, monday)
        .await
        .unwrap();
    // The next day starts from nothing spent; without a cap, nothing is held back.
    let g = take(86_400, 9, Some(day("2026-03-03"))).await;
    assert_eq!((g.tokens, g.capped), (7, true));
    let g = take(86_401, 9, None).await;
    assert_eq!((g.tokens, g.capped), (9, false));
}

async fn expire_pending_skips_what_is_left(store: &dyn Store) {
    let outreach = started(store, 5).await;
    let id = outreach.id;
    let c = ids(&store.claim_due(id, t(0), t(300), 2).await.unwrap());
    assert_eq!(store.expire_pending(id, t(100)).await.unwrap(), 3);
    assert_eq!(store.expire_pending(id, t(101)).await.unwrap(), 0);
    let rows = recipients_by_id(store, id).await;
    for r in rows.values() {
        if c.contains(&r.id) {
            assert_eq!(r.state, DeliveryState::Sending);
        } else {
            assert_eq!(r.state, DeliveryState::Skipped);
            assert_eq!(r.skip_reason, Some(SkipReason::Expired));
            assert_eq!(r.updated_at, Some(t(100)));
        }
    }
    let unknown = Uuid::now_v7();
    expect_not_found(
        store.expire_pending(unknown, t(0)).await,
        "outreach",
        unknown,
    );
}

async fn stop_skips_pending_and_is_refused_once_final(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let outreach = import(store, campaign, &plain_recipients(5)).await;
    let id = outreach.id;
    store.start_outreach(id, t(0)).await.unwrap();
    let c = ids(&store.claim_due(id, t(0), t(300), 2).await.unwrap());
    let stopped = store.stop_outreach(id, t(42)).await.unwrap();
    assert_eq!(stopped.id, id);
    assert_eq!(stopped.status, OutreachStatus::Stopped);
    assert_eq!(stopped.updated_at, t(42));
    assert_eq!(stopped.finished_at, Some(t(42)));
    assert_eq!(
        stopped.progress,
        Progress {
            total: 5,
            skipped: 3,
            pending: 2,
            ..Progress::default()
        }
    );
    assert_eq!(store.get_outreach(id).await.unwrap(), stopped);
    let rows = recipients_by_id(store, id).await;
    for r in rows.values() {
        if c.contains(&r.id) {
            assert_eq!(r.state, DeliveryState::Sending);
        } else {
            assert_eq!(r.state, DeliveryState::Skipped);
            assert_eq!(r.skip_reason, Some(SkipReason::Stopped));
        }
    }
    assert_eq!(
        expect_conflict(store.stop_outreach(id, t(43)).await),
        "the outreach is already stopped"
    );
    assert!(!store.complete_outreach(id, t(44)).await.unwrap());
    assert!(!store.start_outreach(id, t(44)).await.unwrap());
    assert_eq!(store.get_outreach(id).await.unwrap(), stopped, "unchanged");

    // A scheduled outreach can be stopped; a completed one cannot.
    let scheduled = import(store, campaign, &plain_recipients(2)).await;
    let s = store.stop_outreach(scheduled.id, t(1)).await.unwrap();
    assert_eq!((s.status, s.progress.skipped), (OutreachStatus::Stopped, 2));
    let empty = import(store, campaign, &[]).await;
    assert!(store.complete_outreach(empty.id, t(2)).await.unwrap());
    assert_eq!(
        expect_conflict(store.stop_outreach(empty.id, t(3)).await),
        "the outreach has already completed; there is nothing left to stop"
    );
    let unknown = Uuid::now_v7();
    expect_not_found(
        store.stop_outreach(unknown, t(0)).await,
        "outreach",
        unknown,
    );
}

async fn complete_waits_for_pending_and_sending(store: &dyn Store) {
    let outreach = started(store, 3).await;
    let id = outreach.id;
    assert!(!store.complete_outreach(id, t(1)).await.unwrap(), "pending");
    let c = ids(&store.claim_due(id, t(1), t(300), 3).await.unwrap());
    assert!(!store.complete_outreach(id, t(2)).await.unwrap(), "sending");
    store
        .record_results(
            t(3),
            &c.iter().map(|&i| result(i, sent("SM"))).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert!(store.complete_outreach(id, t(4)).await.unwrap());
    assert!(!store.complete_outreach(id, t(5)).await.unwrap(), "once");
    let done = store.get_outreach(id).await.unwrap();
    assert_eq!(done.status, OutreachStatus::Completed);
    assert_eq!((done.updated_at, done.finished_at), (t(4), Some(t(4))));
    assert_eq!((done.progress.sent, done.progress.total), (3, 3));
    assert!(store.live_outreaches().await.unwrap().is_empty());
    let unknown = Uuid::now_v7();
    expect_not_found(
        store.complete_outreach(unknown, t(0)).await,
        "outreach",
        unknown,
    );
}

async fn retry_failed_requeues_and_reopens(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let outreach = import(store, campaign, &plain_recipients(3)).await;
    let id = outreach.id;
    store.start_outreach(id, t(0)).await.unwrap();
    let c = ids(&store.claim_due(id, t(0), t(300), 3).await.unwrap());
    let failed = |code: &str| Outcome::Failed {
        code: Some(code.into()),
        message: format!("failed with {code}"),
    };
    store
        .record_results(
            t(5),
            &[
                result(c[0], failed("30003")),
                result(c[1], sent("SM1")),
                result(c[2], failed("30005")),
            ],
        )
        .await
        .unwrap();
    assert!(store.complete_outreach(id, t(6)).await.unwrap());

    assert_eq!(store.retry_failed(id, t(100)).await.unwrap(), 2);
    let reopened = store.get_outreach(id).await.unwrap();
    assert_eq!(reopened.status, OutreachStatus::InProgress);
    assert_eq!((reopened.finished_at, reopened.updated_at), (None, t(100)));
    assert_eq!(
        (reopened.progress.pending, reopened.progress.failed),
        (2, 0)
    );
    let rows = recipients_by_id(store, id).await;
    for (i, code) in [(0, "30003"), (2, "30005")] {
        let r = &rows[&c[i]];
        assert_eq!(r.state, DeliveryState::Pending);
        assert_eq!((r.attempts, r.due_at), (0, None));
        assert_eq!(
            r.error_code.as_deref(),
            Some(code),
            "the last error is kept"
        );
    }
    assert_eq!(rows[&c[1]].state, DeliveryState::Sent);
    let again = store.claim_due(id, t(101), t(300), 10).await.unwrap();
    assert_eq!(ids(&again), vec![c[0], c[2]]);
    assert!(again.iter().all(|c| c.attempts == 1));
    store
        .record_results(t(102), &[result(c[0], failed("30003"))])
        .await
        .unwrap();

    // In progress: re-queued, the status stays.
    store
        .recover_expired_leases(id, t(301), CrashPolicy::AtMostOnce)
        .await
        .unwrap();
    assert_eq!(store.retry_failed(id, t(302)).await.unwrap(), 1);
    assert_eq!(
        store.outreach_status(id).await.unwrap(),
        OutreachStatus::InProgress
    );
    // Nothing failed: a completed outreach stays completed.
    store.expire_pending(id, t(303)).await.unwrap();
    assert!(store.complete_outreach(id, t(304)).await.unwrap());
    assert_eq!(store.retry_failed(id, t(305)).await.unwrap(), 0);
    assert_eq!(
        store.outreach_status(id).await.unwrap(),
        OutreachStatus::Completed
    );

    // Past the end time, or stopped: refused.
    let end = new_outreach(campaign).end_at.unwrap();
    let late = import(store, campaign, &plain_recipients(1)).await;
    assert_eq!(
        expect_conflict(store.retry_failed(late.id, end).await),
        "the outreach's end time has passed; failed recipients can no longer be retried"
    );
    store.stop_outreach(late.id, t(1)).await.unwrap();
    assert_eq!(
        expect_conflict(store.retry_failed(late.id, t(2)).await),
        "a stopped outreach cannot be restarted; upload the recipients again in a new outreach"
    );
    let unknown = Uuid::now_v7();
    expect_not_found(store.retry_failed(unknown, t(0)).await, "outreach", unknown);
}

async fn progress_counts_every_state(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut rows = plain_recipients(10);
    rows[9].suppressed = true;
    rows[8].suppressed = true;
    let outreach = import(store, campaign, &rows).await;
    let id = outreach.id;
    assert_eq!(
        outreach.progress,
        Progress {
            total: 10,
            skipped: 2,
            pending: 8,
            ..Progress::default()
        },
        "the import's commit returns the progress"
    );
    store.start_outreach(id, t(0)).await.unwrap();
    let c = ids(&store.claim_due(id, t(0), t(30), 6).await.unwrap());
    store
        .record_results(
            t(1),
            &[
                result(c[0], sent("SM0")),
                result(c[1], sent("SM1")),
                result(
                    c[2],
                    Outcome::Failed {
                        code: None,
                        message: "no".into(),
                    },
                ),
                result(
                    c[3],
                    Outcome::Unknown {
                        code: None,
                        message: "maybe".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    // The unknown one is uncertain, never counted as sent.
    let expected = Progress {
        total: 10,
        sent: 2,
        failed: 1,
        skipped: 2,
        pending: 4,
        uncertain: 1,
        ..Progress::default()
    };
    assert_eq!(store.outreach_progress(id).await.unwrap(), expected);
    assert_eq!(store.get_outreach(id).await.unwrap().progress, expected);
    let listed = store
        .list_outreaches(campaign, None, Page::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].progress, expected);
    assert_eq!(expected.label(), "2/10");

    let empty = import(store, campaign, &[]).await;
    assert_eq!(empty.progress, Progress::default());
    assert_eq!(
        store.outreach_progress(empty.id).await.unwrap(),
        Progress::default()
    );
    let unknown = Uuid::now_v7();
    expect_not_found(store.outreach_progress(unknown).await, "outreach", unknown);
}

async fn live_outreaches_say_what_is_pending_and_in_flight(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let scheduled = import(store, campaign, &plain_recipients(2)).await;
    let sending = import(store, campaign, &plain_recipients(1)).await;
    store.start_outreach(sending.id, t(0)).await.unwrap();
    store.claim_due(sending.id, t(0), t(30), 1).await.unwrap();
    let mixed = import(store, campaign, &plain_recipients(2)).await;
    store.start_outreach(mixed.id, t(0)).await.unwrap();
    store.claim_due(mixed.id, t(0), t(30), 1).await.unwrap();
    let skipped_only = import(
        store,
        campaign,
        &[herald_store::ImportedRecipient {
            suppressed: true,
            ..plain_recipients(1).remove(0)
        }],
    )
    .await;
    let completed = import(store, campaign, &[]).await;
    store.complete_outreach(completed.id, t(0)).await.unwrap();
    let stopped = import(store, campaign, &plain_recipients(1)).await;
    store.stop_outreach(stopped.id, t(0)).await.unwrap();

    let live = store.live_outreaches().await.unwrap();
    let flags: Vec<_> = live
        .iter()
        .map(|l| (l.id, l.status, l.has_pending, l.has_in_flight))
        .collect();
    assert_eq!(
        flags,
        vec![
            (scheduled.id, OutreachStatus::Scheduled, true, false),
            (sending.id, OutreachStatus::InProgress, false, true),
            (mixed.id, OutreachStatus::InProgress, true, true),
            (skipped_only.id, OutreachStatus::Scheduled, false, false),
        ]
    );
    let l = &live[0];
    assert_eq!(l.campaign_id, campaign);
    assert_eq!(l.start_at, scheduled.start_at);
    assert_eq!(l.end_at, scheduled.end_at);
}

async fn recipients_list_by_state_and_page(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut rows = plain_recipients(9);
    for r in rows.iter_mut().step_by(3) {
        r.suppressed = true;
    }
    let outreach = import(store, campaign, &rows).await;
    let id = outreach.id;
    let all = recipients_by_id(store, id).await;
    assert_eq!(all.len(), 9);
    let lines: Vec<u64> = all.values().map(|r| r.line).collect();
    assert_eq!(lines, (2..11).collect::<Vec<_>>(), "id order is file order");
    let first = &all.values().next().unwrap();
    assert_eq!(
        first.variables,
        serde_json::json!({"first_name": "R2", "n": 2})
    );
    assert_eq!(first.timezone.as_deref(), Some("America/New_York"));
    assert_eq!(first.address, "+14155560002");
    assert_eq!(first.state, DeliveryState::Skipped);
    assert_eq!(first.skip_reason, Some(SkipReason::Suppressed));
    assert_eq!((first.attempts, first.sent_at), (0, None));

    let skipped = store
        .list_recipients(id, Some(DeliveryState::Skipped), 0, 2)
        .await
        .unwrap();
    assert_eq!(
        skipped.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 5]
    );
    let rest = store
        .list_recipients(id, Some(DeliveryState::Skipped), skipped[1].id, 10)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|r| r.line).collect::<Vec<_>>(), vec![8]);
    let pending = store
        .list_recipients(id, Some(DeliveryState::Pending), 0, 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 6);
    assert!(pending.iter().all(|r| r.skip_reason.is_none()));
    let page = store
        .list_recipients(id, None, all.keys().nth(3).copied().unwrap(), 2)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.line).collect::<Vec<_>>(), vec![6, 7]);
    assert!(
        store
            .list_recipients(id, Some(DeliveryState::Sent), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_recipients(id, None, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Another outreach's recipients are not listed.
    let other = import(store, campaign, &plain_recipients(3)).await;
    assert_eq!(recipients_by_id(store, other.id).await.len(), 3);
    assert_eq!(recipients_by_id(store, id).await.len(), 9);
    let unknown = Uuid::now_v7();
    expect_not_found(
        store.list_recipients(unknown, None, 0, 10).await,
        "outreach",
        unknown,
    );
}

async fn inbox_agent_number_round_trip(store: &dyn Store) {
    let agent = E164::parse("+14155550142", None).unwrap();
    let created = store
        .create_inbox(&InboxSpec {
            name: "Voice desk".into(),
            agent_number: Some(agent.clone()),
        })
        .await
        .expect("create");
    assert_eq!(created.agent_number.as_ref(), Some(&agent));
    assert_eq!(store.get_inbox(created.id).await.unwrap(), created);
    let updated = store
        .update_inbox(
            created.id,
            &InboxSpec {
                name: "Voice desk".into(),
                agent_number: None,
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.agent_number, None);
    assert_eq!(
        store.get_inbox(created.id).await.unwrap().agent_number,
        None
    );
}

// ---------------------------------------------------------------- conversations

use herald_store::{
    Author, ClaimedRecipient, Direction, InboundMessage, OutboundRecord, SentMessage,
    StatusApplied, StatusReport,
};

/// The sender every `world` has.
const SENDER_ADDRESS: &str = "+14155552671";

/// An outreach being sent, and what its messages name.
struct Sending {
    outreach: Uuid,
    campaign: Uuid,
    sender: Uuid,
    inbox: Uuid,
}

/// A started outreach of `n` plain recipients on a new campaign.
async fn sending(store: &dyn Store, n: u64) -> Sending {
    let outreach = started(store, n).await;
    let campaign = store.get_campaign(outreach.campaign_id).await.unwrap();
    let sender = store.get_sender(campaign.sender_id.unwrap()).await.unwrap();
    Sending {
        outreach: outreach.id,
        campaign: campaign.id,
        sender: sender.id,
        inbox: sender.inbox_id,
    }
}

/// The proactive message sent to a claimed recipient, accepted with provider id `pid`.
fn sent_message(s: &Sending, r: &ClaimedRecipient, pid: &str) -> SentMessage {
    SentMessage {
        recipient_id: r.id,
        sender_id: s.sender,
        channel: Channel::Sms,
        campaign_id: s.campaign,
        outreach_id: r.outreach_id,
        from: SENDER_ADDRESS.to_string(),
        to: r.address.clone(),
        subject: None,
        body: format!("Hi {}, your order is late.", r.line),
        provider_message_id: Some(pid.to_string()),
    }
}

/// Claims every due recipient of the outreach and records each as sent (`SM<id>`), with its
/// message, at `at`.
async fn send_all(
    store: &dyn Store,
    s: &Sending,
    outreach: Uuid,
    at: Timestamp,
) -> Vec<ClaimedRecipient> {
    let claimed = store
        .claim_due(outreach, at, at + SignedDuration::from_secs(60), 100)
        .await
        .unwrap();
    let results: Vec<_> = claimed
        .iter()
        .map(|r| result(r.id, sent(&format!("SM{}", r.id))))
        .collect();
    let messages: Vec<_> = claimed
        .iter()
        .map(|r| sent_message(s, r, &format!("SM{}", r.id)))
        .collect();
    store
        .record_results_with_messages(at, &results, &messages)
        .await
        .unwrap();
    claimed
}

fn inbound(
    s: &Sending,
    from: &str,
    pid: Option<&str>,
    at: Timestamp,
    since: Timestamp,
) -> InboundMessage {
    InboundMessage {
        sender_id: s.sender,
        from: from.to_string(),
        to: SENDER_ADDRESS.to_string(),
        subject: None,
        body: format!("reply at {at}"),
        provider_message_id: pid.map(str::to_string),
        received_at: at,
        attribute_since: since,
        in_reply_to: None,
        unverified_sender: false,
    }
}

fn report(pid: &str, state: DeliveryState, code: Option<&str>, at: Timestamp) -> StatusReport {
    StatusReport {
        provider_message_id: pid.to_string(),
        state,
        error_code: code.map(str::to_string),
        error_message: code.map(|c| format!("error {c}")),
        at,
    }
}

async fn timeline(store: &dyn Store, address: &str) -> Vec<herald_store::Message> {
    let Some(customer) = store.find_customer(address).await.unwrap() else {
        return Vec::new();
    };
    store
        .customer_messages(customer.id, None, 100)
        .await
        .unwrap()
}

async fn timeline_records_only_applied_sends(store: &dyn Store) {
    let s = sending(store, 4).await;
    let c = store.claim_due(s.outreach, t(0), t(300), 3).await.unwrap();
    let pending = recipients_by_id(store, s.outreach)
        .await
        .into_values()
        .find(|r| r.state == DeliveryState::Pending)
        .unwrap();
    let never_claimed = ClaimedRecipient {
        id: pending.id,
        outreach_id: s.outreach,
        line: pending.line,
        address: pending.address.clone(),
        timezone: None,
        variables_json: "{}".into(),
        attempts: 0,
    };
    store
        .record_results_with_messages(
            t(10),
            &[
                result(c[0].id, sent("SM0")),
                result(c[1].id, sent("SM1")),
                result(
                    c[2].id,
                    Outcome::Failed {
                        code: None,
                        message: "refused".into(),
                    },
                ),
                // Never claimed: its result is ignored, and so is its message.
                result(never_claimed.id, sent("SMx")),
            ],
            &[
                sent_message(&s, &c[0], "SM0"),
                sent_message(&s, &c[1], "SM1"),
                sent_message(&s, &c[2], "SM2"),
                sent_message(&s, &never_claimed, "SMx"),
            ],
        )
        .await
        .unwrap();
    let customer = store
        .find_customer(&c[0].address)
        .await
        .unwrap()
        .expect("the customer is created with the message");
    assert_eq!(customer.address, c[0].address);
    assert_eq!(customer.created_at, t(10));
    assert_eq!(store.get_customer(customer.id).await.unwrap(), customer);
    let messages = store
        .customer_messages(customer.id, None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.customer_id, customer.id);
    assert_eq!(m.sender_id, s.sender);
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.author, Author::Outreach);
    assert_eq!(m.channel, Channel::Sms);
    assert_eq!(m.from, SENDER_ADDRESS);
    assert_eq!(m.to, c[0].address);
    assert_eq!(m.body, format!("Hi {}, your order is late.", c[0].line));
    assert_eq!(m.subject, None);
    assert_eq!(m.campaign_id, Some(s.campaign));
    assert_eq!(m.outreach_id, Some(s.outreach));
    assert_eq!(m.recipient_id, Some(c[0].id));
    assert_eq!(m.provider_message_id.as_deref(), Some("SM0"));
    assert_eq!(m.status, "sent");
    assert_eq!(m.error_code, None);
    assert_eq!(m.created_at, t(10));
    assert_eq!(timeline(store, &c[1].address).await.len(), 1);
    // Neither the failed send nor the ignored result is on a timeline.
    assert!(store.find_customer(&c[2].address).await.unwrap().is_none());
    assert!(
        store
            .find_customer(&never_claimed.address)
            .await
            .unwrap()
            .is_none()
    );

    // The same result again is ignored, message included.
    store
        .record_results_with_messages(
            t(11),
            &[result(c[0].id, sent("SM0"))],
            &[sent_message(&s, &c[0], "SM0")],
        )
        .await
        .unwrap();
    assert_eq!(timeline(store, &c[0].address).await.len(), 1);
    // Plain results record no message.
    let rest = store
        .claim_due(s.outreach, t(20), t(300), 10)
        .await
        .unwrap();
    assert_eq!(ids(&rest), vec![never_claimed.id]);
    store
        .record_results(t(21), &[result(never_claimed.id, sent("SM3"))])
        .await
        .unwrap();
    assert!(
        store
            .find_customer(&never_claimed.address)
            .await
            .unwrap()
            .is_none()
    );

    // A second outreach to the same addresses: the customers are not made again.
    let second = import(store, s.campaign, &plain_recipients(4)).await;
    assert!(store.start_outreach(second.id, t(30)).await.unwrap());
    send_all(store, &s, second.id, t(40)).await;
    let again = store.find_customer(&c[0].address).await.unwrap().unwrap();
    assert_eq!(again, customer);
    let messages = store
        .customer_messages(customer.id, None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].outreach_id, Some(second.id));
    assert_eq!(messages[1].created_at, t(40));
    assert_eq!(timeline(store, &never_claimed.address).await.len(), 1);

    // get_recipient reads one row of one outreach.
    let listed = recipient(store, s.outreach, c[0].id).await;
    assert_eq!(
        store.get_recipient(s.outreach, c[0].id).await.unwrap(),
        listed
    );
    for (outreach, id) in [(s.outreach, 999_999), (second.id, c[0].id)] {
        match store.get_recipient(outreach, id).await {
            Err(StoreError::NotFound { entity, .. }) => assert_eq!(entity, "recipient"),
            other => panic!("expected recipient not found, got {other:?}"),
        }
    }
}

async fn kept_status_reports_apply_when_the_send_is_recorded(store: &dyn Store) {
    let s = sending(store, 2).await;
    let c = store.claim_due(s.outreach, t(0), t(300), 2).await.unwrap();
    let pid = format!("SM{}", c[0].id);
    // The callbacks beat the recording of the send.
    let delivered = report(&pid, DeliveryState::Delivered, None, t(5));
    assert_eq!(
        store.apply_status(&delivered).await.unwrap(),
        StatusApplied::Kept
    );
    assert_eq!(
        store.apply_status(&delivered).await.unwrap(),
        StatusApplied::Kept
    );
    assert_eq!(
        store
            .apply_status(&report(&pid, DeliveryState::Sent, None, t(4)))
            .await
            .unwrap(),
        StatusApplied::Kept
    );
    // Nothing changed yet.
    assert_eq!(
        recipient(store, s.outreach, c[0].id).await.state,
        DeliveryState::Sending
    );
    // Now the sends are recorded.
    store
        .record_results_with_messages(
            t(10),
            &[result(c[0].id, sent(&pid)), result(c[1].id, sent("other"))],
            &[
                sent_message(&s, &c[0], &pid),
                sent_message(&s, &c[1], "other"),
            ],
        )
        .await
        .unwrap();
    let r = recipient(store, s.outreach, c[0].id).await;
    assert_eq!(r.state, DeliveryState::Delivered);
    assert_eq!(r.updated_at, Some(t(5)));
    assert_eq!(r.sent_at, Some(t(10)));
    let m = timeline(store, &c[0].address).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].status, "delivered");
    let other = recipient(store, s.outreach, c[1].id).await;
    assert_eq!(other.state, DeliveryState::Sent);
    assert_eq!(other.updated_at, Some(t(10)));
    // The kept reports are gone: a replay now finds its message and changes nothing.
    assert_eq!(
        store.apply_status(&delivered).await.unwrap(),
        StatusApplied::Unchanged
    );
    assert_eq!(store.purge_kept_status_reports(t(1_000)).await.unwrap(), 0);

    // Reports that never find their message are forgotten once old enough, not before.
    for (pid, at) in [("SMorphan1", t(20)), ("SMorphan2", t(40))] {
        let r = report(pid, DeliveryState::Delivered, None, at);
        assert_eq!(store.apply_status(&r).await.unwrap(), StatusApplied::Kept);
    }
    assert_eq!(store.purge_kept_status_reports(t(30)).await.unwrap(), 1);
    assert_eq!(store.purge_kept_status_reports(t(30)).await.unwrap(), 0);
    assert_eq!(store.purge_kept_status_reports(t(41)).await.unwrap(), 1);
}

async fn status_reports_move_messages_and_recipients(store: &dyn Store) {
    let s = sending(store, 3).await;
    let c = send_all(store, &s, s.outreach, t(10)).await;
    assert_eq!(c.len(), 3);
    let pid = |i: usize| format!("SM{}", c[i].id);

    let delivered = report(&pid(0), DeliveryState::Delivered, None, t(20));
    assert_eq!(
        store.apply_status(&delivered).await.unwrap(),
        StatusApplied::Applied
    );
    let r = recipient(store, s.outreach, c[0].id).await;
    assert_eq!(r.state, DeliveryState::Delivered);
    assert_eq!(r.updated_at, Some(t(20)));
    assert_eq!(timeline(store, &c[0].address).await[0].status, "delivered");
    // A replay, and a late report of an earlier state, change nothing (not even updated_at).
    let replay = StatusReport {
        at: t(25),
        ..delivered.clone()
    };
    assert_eq!(
        store.apply_status(&replay).await.unwrap(),
        StatusApplied::Unchanged
    );
    assert_eq!(
        store
            .apply_status(&report(&pid(0), DeliveryState::Sent, None, t(26)))
            .await
            .unwrap(),
        StatusApplied::Unchanged
    );
    assert_eq!(recipient(store, s.outreach, c[0].id).await, r);

    // Undelivered keeps the error on the recipient and the message.
    assert_eq!(
        store
            .apply_status(&report(
                &pid(1),
                DeliveryState::Undelivered,
                Some("30003"),
                t(30)
            ))
            .await
            .unwrap(),
        StatusApplied::Applied
    );
    let r = recipient(store, s.outreach, c[1].id).await;
    assert_eq!(r.state, DeliveryState::Undelivered);
    assert_eq!(r.error_code.as_deref(), Some("30003"));
    assert_eq!(r.error_message.as_deref(), Some("error 30003"));
    assert_eq!(r.updated_at, Some(t(30)));
    let m = &timeline(store, &c[1].address).await[0];
    assert_eq!(m.status, "undelivered");
    assert_eq!(m.error_code.as_deref(), Some("30003"));
    // Delivered after all (callbacks out of order): the error goes.
    assert_eq!(
        store
            .apply_status(&report(&pid(1), DeliveryState::Delivered, None, t(31)))
            .await
            .unwrap(),
        StatusApplied::Applied
    );
    let r = recipient(store, s.outreach, c[1].id).await;
    assert_eq!(r.state, DeliveryState::Delivered);
    assert_eq!((r.error_code, r.error_message), (None, None));
    assert_eq!(timeline(store, &c[1].address).await[0].error_code, None);

    // Failed.
    assert_eq!(
        store
            .apply_status(&report(
                &pid(2),
                DeliveryState::Failed,
                Some("30007"),
                t(40)
            ))
            .await
            .unwrap(),
        StatusApplied::Applied
    );
    let r = recipient(store, s.outreach, c[2].id).await;
    assert_eq!(r.state, DeliveryState::Failed);
    assert_eq!(r.error_code.as_deref(), Some("30007"));
    assert_eq!(timeline(store, &c[2].address).await[0].status, "failed");
    // A state no provider reports is ignored.
    assert_eq!(
        store
            .apply_status(&report(&pid(2), DeliveryState::Pending, None, t(41)))
            .await
            .unwrap(),
        StatusApplied::Unchanged
    );
    let progress = store.outreach_progress(s.outreach).await.unwrap();
    assert_eq!(progress.delivered, 2);
    assert_eq!(progress.failed, 1);
}

async fn replies_within_the_window_are_attributed(store: &dyn Store) {
    let s = sending(store, 2).await;
    let c = send_all(store, &s, s.outreach, t(10)).await;
    let address = c[0].address.clone();
    // The frequency cap counts the proactive messages on the timeline, from a given instant.
    let unknown_address = "+14155559999".to_string();
    let counts = store
        .contacts_since(&[address.clone(), unknown_address.clone()], t(10))
        .await
        .unwrap();
    assert_eq!(counts.get(&address), Some(&1));
    assert!(!counts.contains_key(&unknown_address));
    assert!(
        store
            .contacts_since(std::slice::from_ref(&address), t(11))
            .await
            .unwrap()
            .is_empty()
    );

    let got = store
        .receive_message(&inbound(&s, &address, Some("IN1"), t(100), t(0)))
        .await
        .unwrap();
    assert!(!got.duplicate);
    assert_eq!(got.attributed, Some((s.campaign, s.outreach, c[0].id)));
    let m = &got.message;
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.author, Author::Customer);
    assert_eq!(m.status, "received");
    assert_eq!(m.channel, Channel::Sms);
    assert_eq!(m.from, address);
    assert_eq!(m.to, SENDER_ADDRESS);
    assert_eq!(m.provider_message_id.as_deref(), Some("IN1"));
    assert_eq!(
        (m.campaign_id, m.outreach_id, m.recipient_id),
        (Some(s.campaign), Some(s.outreach), Some(c[0].id))
    );
    assert_eq!(m.created_at, t(100));
    let conv = &got.conversation;
    assert_eq!(conv.inbox_id, s.inbox);
    assert_eq!(conv.sender_id, s.sender);
    assert_eq!(conv.customer_address, address);
    assert_eq!(conv.channel, Channel::Sms);
    assert_eq!(conv.campaign_id, Some(s.campaign));
    assert_eq!(conv.outreach_id, Some(s.outreach));
    assert_eq!(conv.created_at, t(100));
    assert_eq!(conv.last_message_at, t(100));
    assert_eq!(store.get_conversation(conv.id).await.unwrap(), *conv);
    let customer = store.find_customer(&address).await.unwrap().unwrap();
    assert_eq!(conv.customer_id, customer.id);
    assert_eq!(m.customer_id, customer.id);
    let r = recipient(store, s.outreach, c[0].id).await;
    assert_eq!(r.state, DeliveryState::Replied);
    assert_eq!(r.updated_at, Some(t(100)));
    // Sent at t(10), answered at t(100): the outreach's report has it.
    let report = store.outreach_report(s.outreach).await.unwrap();
    assert_eq!(report.progress.replied, 1);
    assert_eq!(report.median_reply_seconds, Some(90));
    // The other recipient is untouched.
    assert_eq!(
        recipient(store, s.outreach, c[1].id).await.state,
        DeliveryState::Sent
    );
    // The timeline holds the proactive message and the reply.
    let thread = store
        .conversation_messages(conv.id, None, 10)
        .await
        .unwrap();
    assert_eq!(thread.len(), 2);
    assert_eq!(thread[0].author, Author::Outreach);
    assert_eq!(thread[1], got.message);

    // A replay changes nothing and answers with what was stored.
    let replay = store
        .receive_message(&InboundMessage {
            body: "replayed".into(),
            received_at: t(200),
            ..inbound(&s, &address, Some("IN1"), t(200), t(0))
        })
        .await
        .unwrap();
    assert!(replay.duplicate);
    assert_eq!(replay.message, got.message);
    assert_eq!(replay.conversation, got.conversation);
    assert_eq!(replay.attributed, got.attributed);
    assert_eq!(
        store
            .conversation_messages(conv.id, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(recipient(store, s.outreach, c[0].id).await, r);

    // A later reply without a provider id; the recipient stays replied.
    let later = store
        .receive_message(&inbound(&s, &address, None, t(300), t(0)))
        .await
        .unwrap();
    assert!(!later.duplicate);
    assert_eq!(later.conversation.id, conv.id);
    assert_eq!(later.conversation.last_message_at, t(300));
    assert_eq!(later.conversation.created_at, t(100));
    assert_eq!(
        recipient(store, s.outreach, c[0].id).await.updated_at,
        Some(t(100))
    );

    // An unknown sender.
    let nobody = Uuid::now_v7();
    expect_not_found(
        store
            .receive_message(&InboundMessage {
                sender_id: nobody,
                ..inbound(&s, &address, Some("IN9"), t(400), t(0))
            })
            .await,
        "sender",
        nobody,
    );
}

async fn replies_outside_the_window_are_not_attributed(store: &dyn Store) {
    let s = sending(store, 1).await;
    let c = send_all(store, &s, s.outreach, t(10)).await;
    let address = c[0].address.clone();
    let got = store
        .receive_message(&inbound(&s, &address, Some("IN1"), t(100), t(11)))
        .await
        .unwrap();
    assert_eq!(got.attributed, None);
    assert_eq!(
        (
            got.message.campaign_id,
            got.message.outreach_id,
            got.message.recipient_id
        ),
        (None, None, None)
    );
    assert_eq!(got.conversation.campaign_id, None);
    assert_eq!(got.conversation.outreach_id, None);
    assert_eq!(
        recipient(store, s.outreach, c[0].id).await.state,
        DeliveryState::Sent
    );
    // Attributed next time; an unattributed reply after that keeps the conversation's campaign.
    let attributed = store
        .receive_message(&inbound(&s, &address, Some("IN2"), t(110), t(10)))
        .await
        .unwrap();
    assert_eq!(attributed.conversation.campaign_id, Some(s.campaign));
    let after = store
        .receive_message(&inbound(&s, &address, Some("IN3"), t(120), t(115)))
        .await
        .unwrap();
    assert_eq!(after.attributed, None);
    assert_eq!(after.conversation.campaign_id, Some(s.campaign));
    assert_eq!(after.conversation.outreach_id, Some(s.outreach));
    assert_eq!(after.conversation.id, got.conversation.id);
}

/// An email whose From the trusted MX did not authenticate: kept and marked on the timeline,
/// but attributed to nothing, even when it names the outreach message it answers.
async fn an_unverified_sender_is_kept_but_answers_no_outreach(store: &dyn Store) {
    let s = sending(store, 1).await;
    let sent = send_all(store, &s, s.outreach, t(10)).await;
    let address = sent[0].address.clone();
    let forged = store
        .receive_message(&InboundMessage {
            in_reply_to: Some((s.outreach, sent[0].id)),
            unverified_sender: true,
            ..inbound(&s, &address, Some("F1"), t(20), t(0))
        })
        .await
        .unwrap();
    assert!(!forged.duplicate);
    assert!(forged.message.unverified_sender);
    assert_eq!(forged.attributed, None);
    assert_eq!(
        (
            forged.message.campaign_id,
            forged.message.outreach_id,
            forged.message.recipient_id
        ),
        (None, None, None)
    );
    assert_eq!(forged.conversation.campaign_id, None);
    assert_eq!(
        recipient(store, s.outreach, sent[0].id).await.state,
        DeliveryState::Sent
    );
    // On the timeline, marked; the outreach message is not.
    let timeline = store
        .conversation_messages(forged.conversation.id, None, 10)
        .await
        .unwrap();
    assert_eq!(timeline.len(), 2);
    assert!(!timeline[0].unverified_sender);
    assert!(timeline[1].unverified_sender);
    assert_eq!(timeline[1].id, forged.message.id);
    // A replay is the same stored, marked message.
    let again = store
        .receive_message(&InboundMessage {
            unverified_sender: true,
            ..inbound(&s, &address, Some("F1"), t(21), t(0))
        })
        .await
        .unwrap();
    assert!(again.duplicate && again.message.unverified_sender);
    // The customer's own, authenticated reply is attributed as ever.
    let real = store
        .receive_message(&InboundMessage {
            in_reply_to: Some((s.outreach, sent[0].id)),
            ..inbound(&s, &address, Some("R1"), t(30), t(0))
        })
        .await
        .unwrap();
    assert!(!real.message.unverified_sender);
    assert_eq!(real.attributed, Some((s.campaign, s.outreach, sent[0].id)));
    assert_eq!(
        recipient(store, s.outreach, sent[0].id).await.state,
        DeliveryState::Replied
    );
}

async fn email_domains_served_by_senders(store: &dyn Store) {
    let inbox = inbox(store, "Mail").await.id;
    store
        .create_sender(&sender_spec(
            Channel::Email,
            Address::Email(email("Help.Desk@Mail.Example.com")),
            inbox,
        ))
        .await
        .unwrap();
    store
        .create_sender(&sms("+14155550142", inbox))
        .await
        .unwrap();
    assert!(store.serves_email_domain("mail.example.com").await.unwrap());
    assert!(store.serves_email_domain("MAIL.example.COM").await.unwrap());
    for other in [
        "example.com",
        "xmail.example.com",
        "ail.example.com",
        "%",
        "%.example.com",
        "_ail.example.com",
        "",
        "mail.example.com'",
        "14155550142",
    ] {
        assert!(
            !store.serves_email_domain(other).await.unwrap(),
            "{other:?}"
        );
    }
}

async fn in_reply_to_beats_the_window(store: &dyn Store) {
    let s = sending(store, 1).await;
    let first = send_all(store, &s, s.outreach, t(10)).await;
    let second = import(store, s.campaign, &plain_recipients(1)).await;
    assert!(store.start_outreach(second.id, t(15)).await.unwrap());
    let later = send_all(store, &s, second.id, t(20)).await;
    let address = first[0].address.clone();
    assert_eq!(later[0].address, address);

    // Named by the channel: used whatever its age, though a newer one exists.
    let got = store
        .receive_message(&InboundMessage {
            in_reply_to: Some((s.outreach, first[0].id)),
            ..inbound(&s, &address, Some("IN1"), t(100), t(50))
        })
        .await
        .unwrap();
    assert_eq!(got.attributed, Some((s.campaign, s.outreach, first[0].id)));
    assert_eq!(got.conversation.outreach_id, Some(s.outreach));
    assert_eq!(
        recipient(store, s.outreach, first[0].id).await.state,
        DeliveryState::Replied
    );
    assert_eq!(
        recipient(store, second.id, later[0].id).await.state,
        DeliveryState::Sent
    );
    // A reference to no message of this sender to this customer: the newest in the window.
    let got = store
        .receive_message(&InboundMessage {
            in_reply_to: Some((s.outreach, 999_999)),
            ..inbound(&s, &address, Some("IN2"), t(110), t(0))
        })
        .await
        .unwrap();
    assert_eq!(got.attributed, Some((s.campaign, second.id, later[0].id)));
    assert_eq!(got.conversation.outreach_id, Some(second.id));
    assert_eq!(
        recipient(store, second.id, later[0].id).await.state,
        DeliveryState::Replied
    );
}

async fn conversations_list_newest_first_and_page(store: &dyn Store) {
    let w = world(store).await;
    let s = Sending {
        outreach: Uuid::nil(),
        campaign: Uuid::nil(),
        sender: w.sender,
        inbox: w.inbox,
    };
    let a = "+14155550101";
    let receive = |from: &'static str, at: Timestamp| {
        let msg = inbound(&s, from, None, at, at);
        async move { store.receive_message(&msg).await.unwrap().conversation }
    };
    let ca = receive(a, t(10)).await;
    let cb = receive("+14155550102", t(20)).await;
    let cc = receive("+14155550103", t(30)).await;
    let cd = receive("+14155550104", t(30)).await;
    let ce = receive("+14155550105", t(40)).await;
    let ca = {
        let again = receive(a, t(50)).await;
        assert_eq!(again.id, ca.id);
        again
    };
    // An older message does not move a conversation back.
    let cb2 = receive("+14155550102", t(5)).await;
    assert_eq!(cb2.last_message_at, t(20));
    // Another inbox's conversation.
    let other_inbox = inbox(store, "Other").await.id;
    let other_sender = store
        .create_sender(&sms("+14155552672", other_inbox))
        .await
        .unwrap();
    store
        .receive_message(&InboundMessage {
            sender_id: other_sender.id,
            to: "+14155552672".into(),
            ..inbound(&s, a, None, t(60), t(60))
        })
        .await
        .unwrap();

    // Newest first; the tie at t(30) by id, newest first.
    let expected = [ca.id, ce.id, cd.id, cc.id, cb.id];
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let listing = store
            .list_conversations(w.inbox, page(2, after))
            .await
            .unwrap();
        seen.extend(listing.items.iter().map(|c| c.id));
        match listing.next_after {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let all = store
        .list_conversations(w.inbox, Page::default())
        .await
        .unwrap();
    assert_eq!(all.items[0], ca);
    assert_eq!(all.next_after, None);
    assert_eq!(
        store
            .list_conversations(other_inbox, Page::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // An agent answers A: the message goes from the sender to the customer and moves the
    // conversation.
    let out = store
        .add_outbound(&OutboundRecord {
            agent_id: None,
            conversation_id: ca.id,
            author: Author::Agent,
            subject: None,
            body: "We are on it.".into(),
            provider_message_id: Some("SMagent".into()),
            sent_at: t(70),
        })
        .await
        .unwrap();
    assert_eq!(out.direction, Direction::Outbound);
    assert_eq!(out.author, Author::Agent);
    assert_eq!(out.status, "sent");
    assert_eq!((out.from.as_str(), out.to.as_str()), (SENDER_ADDRESS, a));
    assert_eq!(out.sender_id, w.sender);
    assert_eq!(out.customer_id, ca.customer_id);
    assert_eq!(out.created_at, t(70));
    assert_eq!(
        store.get_conversation(ca.id).await.unwrap().last_message_at,
        t(70)
    );
    // Its delivery report moves it.
    assert_eq!(
        store
            .apply_status(&report("SMagent", DeliveryState::Delivered, None, t(71)))
            .await
            .unwrap(),
        StatusApplied::Applied
    );
    let thread = store.conversation_messages(ca.id, None, 10).await.unwrap();
    assert_eq!(
        thread.iter().map(|m| m.created_at).collect::<Vec<_>>(),
        vec![t(10), t(50), t(70)]
    );
    assert_eq!(thread[2].status, "delivered");
    // Paged after a message; the other sender's message to A is not on this thread, but is on
    // A's whole timeline.
    let rest = store
        .conversation_messages(ca.id, Some(thread[0].id), 1)
        .await
        .unwrap();
    assert_eq!(rest, vec![thread[1].clone()]);
    assert!(
        store
            .conversation_messages(ca.id, Some(thread[2].id), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let whole = store
        .customer_messages(ca.customer_id, None, 10)
        .await
        .unwrap();
    assert_eq!(whole.len(), 4);
    assert_eq!(whole[2].sender_id, other_sender.id);
    let tail = store
        .customer_messages(ca.customer_id, Some(whole[1].id), 10)
        .await
        .unwrap();
    assert_eq!(tail, whole[2..].to_vec());

    // Refusals and misses.
    let missing = Uuid::now_v7();
    expect_not_found(
        store
            .add_outbound(&OutboundRecord {
                agent_id: None,
                conversation_id: missing,
                author: Author::Agent,
                subject: None,
                body: "x".into(),
                provider_message_id: None,
                sent_at: t(80),
            })
            .await,
        "conversation",
        missing,
    );
    let (field, _) = expect_invalid(
        store
            .add_outbound(&OutboundRecord {
                agent_id: None,
                conversation_id: ca.id,
                author: Author::Customer,
                subject: None,
                body: "x".into(),
                provider_message_id: None,
                sent_at: t(80),
            })
            .await,
    );
    assert_eq!(field, "author");
    expect_not_found(
        store.get_conversation(missing).await,
        "conversation",
        missing,
    );
    expect_not_found(store.get_customer(missing).await, "customer", missing);
    expect_not_found(
        store.conversation_messages(missing, None, 10).await,
        "conversation",
        missing,
    );
    expect_not_found(
        store.customer_messages(missing, None, 10).await,
        "customer",
        missing,
    );
    assert_eq!(store.find_customer("+14155550199").await.unwrap(), None);

    // Senders are found by channel and address.
    let found = store
        .find_sender(Channel::Sms, SENDER_ADDRESS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, store.get_sender(w.sender).await.unwrap());
    assert_eq!(
        store
            .find_sender(Channel::Voice, SENDER_ADDRESS)
            .await
            .unwrap(),
        None
    );
}

async fn suppressions_list_look_up_and_lift(store: &dyn Store) {
    let w = world(store).await;
    let other = store
        .create_sender(&sms("+14155552672", w.inbox))
        .await
        .unwrap()
        .id;
    let (a, b, c, d) = (
        "+14155550001",
        "+14155550002",
        "+14155550003",
        "+14155550004",
    );
    assert!(
        store
            .add_suppression(a, Some(w.sender), "STOP")
            .await
            .unwrap()
    );
    assert!(
        store
            .add_suppression(a, None, "asked by phone")
            .await
            .unwrap()
    );
    assert!(store.add_suppression(b, None, "complaint").await.unwrap());
    assert!(store.add_suppression(c, Some(other), "STOP").await.unwrap());

    let batch: Vec<String> = [a, b, c, d].iter().map(|s| s.to_string()).collect();
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::HashSet<_>>()
    };
    assert_eq!(
        store.suppressed_among(w.sender, &batch).await.unwrap(),
        set(&[a, b])
    );
    assert_eq!(
        store.suppressed_among(other, &batch).await.unwrap(),
        set(&[a, b, c])
    );
    assert!(
        store
            .suppressed_among(w.sender, &[])
            .await
            .unwrap()
            .is_empty()
    );

    // The sender's own suppression first, else the one for every sender.
    let own = store.suppression_for(a, w.sender).await.unwrap().unwrap();
    assert_eq!(
        (own.sender_id, own.reason.as_str()),
        (Some(w.sender), "STOP")
    );
    let global = store.suppression_for(a, other).await.unwrap().unwrap();
    assert_eq!(
        (global.sender_id, global.reason.as_str()),
        (None, "asked by phone")
    );
    assert_eq!(store.suppression_for(c, w.sender).await.unwrap(), None);
    assert_eq!(store.suppression_for(d, w.sender).await.unwrap(), None);

    // Newest first, paged by id.
    let first = store.list_suppressions(None, page(2, None)).await.unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|s| s.address.as_str())
            .collect::<Vec<_>>(),
        vec![c, b]
    );
    assert_eq!(first.next_after, Some(first.items[1].id));
    let second = store
        .list_suppressions(None, page(2, first.next_after))
        .await
        .unwrap();
    assert_eq!(second.items, vec![global.clone(), own.clone()]);
    assert_eq!(second.next_after, None);
    let of_a = store
        .list_suppressions(Some(a), Page::default())
        .await
        .unwrap();
    assert_eq!(of_a.items, vec![global.clone(), own.clone()]);
    assert_eq!(store.get_suppression(own.id).await.unwrap(), own);

    // Lifting: exactly the sender's, then the one for every sender.
    assert!(store.remove_suppression(a, Some(w.sender)).await.unwrap());
    assert!(!store.remove_suppression(a, Some(w.sender)).await.unwrap());
    assert_eq!(
        store.suppression_for(a, w.sender).await.unwrap(),
        Some(global.clone())
    );
    assert!(store.remove_suppression(a, None).await.unwrap());
    assert!(!store.remove_suppression(a, None).await.unwrap());
    assert_eq!(store.suppression_for(a, w.sender).await.unwrap(), None);
    let b_id = store
        .suppression_for(b, w.sender)
        .await
        .unwrap()
        .unwrap()
        .id;
    store.delete_suppression(b_id).await.unwrap();
    expect_not_found(store.delete_suppression(b_id).await, "suppression", b_id);
    expect_not_found(store.get_suppression(b_id).await, "suppression", b_id);
    assert_eq!(
        store.suppressed_among(other, &batch).await.unwrap(),
        set(&[c])
    );
}

async fn skip_pending_touches_only_live_outreaches_of_the_sender(store: &dyn Store) {
    let w = world(store).await;
    let campaign = store
        .create_campaign(&campaign_spec(
            "Delays",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .unwrap()
        .id;
    let other_sender = store
        .create_sender(&sms("+14155552672", w.inbox))
        .await
        .unwrap()
        .id;
    let other_campaign = store
        .create_campaign(&campaign_spec(
            "Other",
            Channel::Sms,
            Some(other_sender),
            w.answer,
        ))
        .await
        .unwrap()
        .id;
    let rows = plain_recipients(3);
    let address = |i: usize| rows[i].address.clone();
    // In progress, its first recipient being sent.
    let running = import(store, campaign, &rows).await.id;
    assert!(store.start_outreach(running, t(0)).await.unwrap());
    let claimed = store.claim_due(running, t(0), t(300), 1).await.unwrap();
    assert_eq!(claimed[0].address, address(0));
    // Scheduled.
    let scheduled = import(store, campaign, &rows).await.id;
    // Stopped: its pending recipients were skipped already.
    let stopped = import(store, campaign, &rows).await.id;
    store.stop_outreach(stopped, t(1)).await.unwrap();
    // Another sender's.
    let others = import(store, other_campaign, &rows).await.id;

    let skipped = store
        .skip_pending_for_address(&address(1), Some(w.sender), SkipReason::OptedOut, t(5))
        .await
        .unwrap();
    assert_eq!(skipped, 2);
    for outreach in [running, scheduled] {
        let r = recipients_by_id(store, outreach)
            .await
            .into_values()
            .find(|r| r.address == address(1))
            .unwrap();
        assert_eq!(r.state, DeliveryState::Skipped);
        assert_eq!(r.skip_reason, Some(SkipReason::OptedOut));
        assert_eq!(r.updated_at, Some(t(5)));
    }
    let untouched = |outreach: Uuid, i: usize| {
        let address = address(i);
        async move {
            recipients_by_id(store, outreach)
                .await
                .into_values()
                .find(|r| r.address == address)
                .unwrap()
        }
    };
    assert_eq!(untouched(others, 1).await.state, DeliveryState::Pending);
    let stopped_row = untouched(stopped, 1).await;
    assert_eq!(stopped_row.skip_reason, Some(SkipReason::Stopped));
    // The one being sent is left for its result.
    assert_eq!(
        store
            .skip_pending_for_address(&address(0), Some(w.sender), SkipReason::OptedOut, t(6))
            .await
            .unwrap(),
        1
    );
    assert_eq!(untouched(running, 0).await.state, DeliveryState::Sending);
    assert_eq!(untouched(scheduled, 0).await.state, DeliveryState::Skipped);
    assert_eq!(untouched(others, 0).await.state, DeliveryState::Pending);
    // Every sender.
    assert_eq!(
        store
            .skip_pending_for_address(&address(2), None, SkipReason::Suppressed, t(7))
            .await
            .unwrap(),
        3
    );
    let r = untouched(others, 2).await;
    assert_eq!(r.state, DeliveryState::Skipped);
    assert_eq!(r.skip_reason, Some(SkipReason::Suppressed));
    assert_eq!(untouched(others, 1).await.state, DeliveryState::Pending);
    // Nothing left to skip.
    assert_eq!(
        store
            .skip_pending_for_address(&address(2), None, SkipReason::Suppressed, t(8))
            .await
            .unwrap(),
        0
    );
}

async fn concurrent_replays_and_early_reports_settle(store: &dyn Store) {
    let s = sending(store, 20).await;
    let claimed = store.claim_due(s.outreach, t(0), t(300), 20).await.unwrap();
    let pid = |r: &ClaimedRecipient| format!("SM{}", r.id);
    // Every report races the recording of its send: whichever commits first, each ends
    // applied.
    let record = async {
        let results: Vec<_> = claimed
            .iter()
            .map(|r| result(r.id, sent(&pid(r))))
            .collect();
        let messages: Vec<_> = claimed
            .iter()
            .map(|r| sent_message(&s, r, &pid(r)))
            .collect();
        store
            .record_results_with_messages(t(10), &results, &messages)
            .await
            .unwrap();
    };
    let reports = futures_util::future::join_all(claimed.iter().map(|r| async move {
        store
            .apply_status(&report(&pid(r), DeliveryState::Delivered, None, t(20)))
            .await
            .unwrap()
    }));
    let ((), outcomes) = tokio::join!(record, reports);
    assert!(
        outcomes.iter().all(|o| *o != StatusApplied::Unchanged),
        "{outcomes:?}"
    );
    for r in &claimed {
        let row = recipient(store, s.outreach, r.id).await;
        assert_eq!(row.state, DeliveryState::Delivered, "{outcomes:?}");
        assert_eq!(timeline(store, &r.address).await[0].status, "delivered");
        // Nothing is left kept: a replay finds the message.
        assert_eq!(
            store
                .apply_status(&report(&pid(r), DeliveryState::Delivered, None, t(20)))
                .await
                .unwrap(),
            StatusApplied::Unchanged
        );
    }

    // The same inbound message delivered several times at once is stored once.
    let address = "+14155550177";
    let replays = futures_util::future::join_all((0..6).map(|_| async {
        store
            .receive_message(&inbound(&s, address, Some("INX"), t(100), t(0)))
            .await
            .unwrap()
    }))
    .await;
    assert_eq!(replays.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(replays.iter().all(|r| r.message == replays[0].message));
    assert!(
        replays
            .iter()
            .all(|r| r.conversation.id == replays[0].conversation.id)
    );
    assert_eq!(timeline(store, address).await.len(), 1);
}

// ---------------------------------------------------------------- web accounts

/// A fake SHA-256 hex of a secret: 64 hex characters.
fn hash64(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// Now, cut to microseconds (what both schemas keep).
#[allow(clippy::disallowed_methods)] // the suite sets up data relative to the real time
fn now_us() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap()
}

async fn users_round_trip(store: &dyn Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let before = now_us();
    let ann = store
        .create_user(
            "  Ann@Example.ORG ",
            Role::Admin,
            "$argon2id$v=19$hash-of-ann",
        )
        .await
        .expect("create ann");
    assert_eq!(ann.email, "ann@example.org");
    assert_eq!(ann.role, Role::Admin);
    assert!(ann.created_at >= before, "{} < {before}", ann.created_at);
    let bob = store
        .create_user("bob@example.org", Role::Agent, "$argon2id$v=19$hash-of-bob")
        .await
        .expect("create bob");
    assert_ne!(ann.id, bob.id);
    assert_eq!(store.count_users().await.unwrap(), 2);

    // Found by email whatever its case, with the hash; read back exactly (microseconds too).
    let (found, hash) = store
        .find_user_by_email("ANN@example.org")
        .await
        .unwrap()
        .expect("ann by email");
    assert_eq!(found, ann);
    assert_eq!(hash, "$argon2id$v=19$hash-of-ann");
    let (found, hash) = store
        .find_user_by_email("bob@example.org")
        .await
        .unwrap()
        .expect("bob by email");
    assert_eq!(
        (found.role, hash.as_str()),
        (Role::Agent, "$argon2id$v=19$hash-of-bob")
    );
    assert_eq!(store.get_user(bob.id).await.unwrap(), bob);
    assert_eq!(store.get_user(ann.id).await.unwrap(), ann);
    assert!(
        store
            .find_user_by_email("cy@example.org")
            .await
            .unwrap()
            .is_none()
    );
    let nobody = Uuid::now_v7();
    expect_not_found(store.get_user(nobody).await, "user", nobody);
    let (field, _) = expect_invalid(store.create_user("  ", Role::Agent, "h").await);
    assert_eq!(field, "email");
    assert_eq!(store.count_users().await.unwrap(), 2);
}

async fn user_emails_are_unique_whatever_their_case(store: &dyn Store) {
    let first = store
        .create_user("dee@example.org", Role::Agent, "h1")
        .await
        .unwrap();
    let msg = expect_conflict(
        store
            .create_user("Dee@EXAMPLE.org", Role::Admin, "h2")
            .await,
    );
    assert!(msg.contains("dee@example.org"), "{msg}");
    assert_eq!(store.count_users().await.unwrap(), 1);
    // The first is untouched.
    let (found, hash) = store
        .find_user_by_email("dee@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, hash.as_str()), (first, "h1"));
}

async fn setup_tokens_work_once_until_they_expire(store: &dyn Store) {
    // An invitation naming an email (stored lower-cased), valid until t(3600).
    let invite = hash64(0x1a);
    store
        .create_setup_token(&invite, Some("Eve@Example.org"), Role::Agent, t(3600))
        .await
        .expect("create invite");
    let expected = Some((Some("eve@example.org".to_string()), Role::Agent));
    // Looking does not use it up.
    assert_eq!(
        store.find_setup_token(&invite, t(0)).await.unwrap(),
        expected
    );
    assert_eq!(
        store.find_setup_token(&invite, t(0)).await.unwrap(),
        expected
    );
    // Taken once; after that it is gone for both calls.
    assert_eq!(
        store.take_setup_token(&invite, t(10)).await.unwrap(),
        expected
    );
    assert_eq!(store.take_setup_token(&invite, t(11)).await.unwrap(), None);
    assert_eq!(store.find_setup_token(&invite, t(11)).await.unwrap(), None);

    // A first-admin link (no email) expiring at t(100): usable before, not at or after.
    let first = hash64(0x2b);
    store
        .create_setup_token(&first, None, Role::Admin, t(100))
        .await
        .expect("create first-admin link");
    assert_eq!(store.find_setup_token(&first, t(100)).await.unwrap(), None);
    assert_eq!(store.take_setup_token(&first, t(100)).await.unwrap(), None);
    assert_eq!(store.take_setup_token(&first, t(101)).await.unwrap(), None);
    // Still unused: a refused take (expired) did not mark it.
    assert_eq!(
        store.take_setup_token(&first, t(99)).await.unwrap(),
        Some((None, Role::Admin))
    );

    // Unknown hashes find nothing; a hash is unique.
    assert_eq!(
        store.find_setup_token(&hash64(0x3c), t(0)).await.unwrap(),
        None
    );
    assert_eq!(
        store.take_setup_token(&hash64(0x3c), t(0)).await.unwrap(),
        None
    );
    expect_conflict(
        store
            .create_setup_token(&invite, None, Role::Admin, t(7200))
            .await,
    );
}

async fn concurrent_takes_of_a_setup_token_yield_one(store: &dyn Store) {
    let hash = hash64(0x4d);
    store
        .create_setup_token(&hash, None, Role::Admin, t(3600))
        .await
        .unwrap();
    let takes = futures_util::future::join_all(
        (0..8).map(|_| async { store.take_setup_token(&hash, t(1)).await.unwrap() }),
    )
    .await;
    assert_eq!(takes.iter().filter(|t| t.is_some()).count(), 1, "{takes:?}");
}

async fn sessions_find_their_user_until_they_expire(store: &dyn Store) {
    let ann = store
        .create_user("ann@example.org", Role::Admin, "h")
        .await
        .unwrap();
    let bob = store
        .create_user("bob@example.org", Role::Agent, "h")
        .await
        .unwrap();
    let now = now_us();
    let hour = SignedDuration::from_hours(1);
    let later = now.checked_add(hour).unwrap();
    let (s_ann, s_bob) = (hash64(0x51), hash64(0x52));
    store
        .create_session(&s_ann, ann.id, "csrf-ann", later)
        .await
        .expect("ann's session");
    store
        .create_session(&s_bob, bob.id, "csrf-bob", later)
        .await
        .expect("bob's session");
    assert_eq!(
        store.find_session(&s_ann, now).await.unwrap(),
        Some((ann.clone(), "csrf-ann".to_string()))
    );
    assert_eq!(
        store.find_session(&s_bob, now).await.unwrap(),
        Some((bob.clone(), "csrf-bob".to_string()))
    );
    // Not at or after its end.
    assert_eq!(store.find_session(&s_ann, later).await.unwrap(), None);
    assert_eq!(store.find_session(&hash64(0x53), now).await.unwrap(), None);

    // Signing out deletes only that session; deleting an unknown one is fine.
    store.delete_session(&s_ann).await.unwrap();
    assert_eq!(store.find_session(&s_ann, now).await.unwrap(), None);
    assert!(store.find_session(&s_bob, now).await.unwrap().is_some());
    store.delete_session(&hash64(0x53)).await.unwrap();

    // A session needs a user; the same secret cannot make two sessions.
    let nobody = Uuid::now_v7();
    expect_not_found(
        store
            .create_session(&hash64(0x54), nobody, "c", later)
            .await,
        "user",
        nobody,
    );
    expect_conflict(store.create_session(&s_bob, ann.id, "c", later).await);

    // Sessions that have ended are swept when another begins.
    let ended = now.checked_sub(hour).unwrap();
    let old = hash64(0x55);
    store
        .create_session(&old, ann.id, "c-old", ended)
        .await
        .unwrap();
    let long_ago = ended.checked_sub(hour).unwrap();
    assert!(store.find_session(&old, long_ago).await.unwrap().is_some());
    store
        .create_session(&hash64(0x56), ann.id, "c-new", later)
        .await
        .unwrap();
    assert_eq!(store.find_session(&old, long_ago).await.unwrap(), None);
    assert!(store.find_session(&s_bob, now).await.unwrap().is_some());
}

/// `herald doctor phones` reads every stored number back: recipients with what their file
/// wrote and the region it was read in, then customers and opt-outs keyed by a phone number.
async fn stored_phones_are_read_back_with_the_file_values(store: &dyn Store) {
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    let rows: Vec<herald_store::ImportedRecipient> = (0..7)
        .map(|i| herald_store::ImportedRecipient {
            line: i + 2,
            address: format!("+86139123456{i:02}"),
            raw_address: (i % 2 == 0).then(|| format!("+86 139 1234 56{i:02}")),
            timezone: None,
            variables_json: "{}".into(),
            suppressed: false,
        })
        .collect();
    import.recipients(&rows).await.expect("recipients");
    let id = import.outreach_id();
    import
        .commit(&herald_store::ImportSummary {
            rows: 7,
            accepted: 7,
            ..Default::default()
        })
        .await
        .expect("commit");
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.recipient_phones(after, 3).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(page);
    }
    assert_eq!(seen.len(), 7);
    for (i, r) in seen.iter().enumerate() {
        assert_eq!(r.outreach_id, id);
        assert_eq!(r.line, i as u64 + 2);
        assert_eq!(r.address, format!("+86139123456{i:02}"));
        assert_eq!(r.default_region.as_deref(), Some("US"));
        let want = (i % 2 == 0).then(|| format!("+86 139 1234 56{i:02}"));
        assert_eq!(r.raw_address, want);
    }

    store
        .add_suppression("+8613912345600", None, "asked")
        .await
        .unwrap();
    store
        .add_suppression("someone@example.com", None, "asked")
        .await
        .unwrap();
    let phones = store
        .stored_phones(herald_store::PhoneTable::Suppressions, Uuid::nil(), 10)
        .await
        .unwrap();
    assert_eq!(phones.len(), 1, "only phone numbers: {phones:?}");
    assert_eq!(phones[0].1, "+8613912345600");
    let after_it = store
        .stored_phones(herald_store::PhoneTable::Suppressions, phones[0].0, 10)
        .await
        .unwrap();
    assert!(after_it.is_empty());
    assert!(
        store
            .stored_phones(herald_store::PhoneTable::Customers, Uuid::nil(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn reissued_setup_links_replace_the_unused_ones(store: &dyn Store) {
    // Two links for one email (the second issued later, in another case): only the second works.
    let (old, new) = (hash64(0x61), hash64(0x62));
    store
        .create_setup_token(&old, Some("eve@example.org"), Role::Agent, t(3600))
        .await
        .unwrap();
    store
        .create_setup_token(&new, Some("EVE@example.org"), Role::Agent, t(3600))
        .await
        .unwrap();
    assert_eq!(store.take_setup_token(&old, t(1)).await.unwrap(), None);
    assert_eq!(
        store.take_setup_token(&new, t(1)).await.unwrap(),
        Some((Some("eve@example.org".to_string()), Role::Agent))
    );
    // Another email's link is untouched by either.
    let other = hash64(0x63);
    store
        .create_setup_token(&other, Some("fay@example.org"), Role::Agent, t(3600))
        .await
        .unwrap();
    store
        .create_setup_token(&hash64(0x64), Some("gus@example.org"), Role::Agent, t(3600))
        .await
        .unwrap();
    assert!(
        store
            .find_setup_token(&other, t(1))
            .await
            .unwrap()
            .is_some()
    );

    // A new first-admin link revokes the older first-admin links, not the invitations.
    let (first_a, first_b) = (hash64(0x65), hash64(0x66));
    store
        .create_setup_token(&first_a, None, Role::Admin, t(3600))
        .await
        .unwrap();
    store
        .create_setup_token(&first_b, None, Role::Admin, t(3600))
        .await
        .unwrap();
    assert_eq!(store.find_setup_token(&first_a, t(1)).await.unwrap(), None);
    assert_eq!(
        store.find_setup_token(&first_b, t(1)).await.unwrap(),
        Some((None, Role::Admin))
    );
    assert!(
        store
            .find_setup_token(&other, t(1))
            .await
            .unwrap()
            .is_some()
    );
}

async fn first_admin_links_stop_once_an_admin_exists(store: &dyn Store) {
    let first = hash64(0x71);
    let invite = hash64(0x72);
    store
        .create_setup_token(&first, None, Role::Admin, t(3600))
        .await
        .unwrap();
    store
        .create_setup_token(&invite, Some("hal@example.org"), Role::Agent, t(3600))
        .await
        .unwrap();
    // An agent does not close the first-admin link...
    store
        .create_user("ann@example.org", Role::Agent, "h")
        .await
        .unwrap();
    assert!(
        store
            .find_setup_token(&first, t(1))
            .await
            .unwrap()
            .is_some()
    );
    // ...an admin (created any other way) does, for looking and for taking.
    store
        .create_user("bob@example.org", Role::Admin, "h")
        .await
        .unwrap();
    assert_eq!(store.find_setup_token(&first, t(1)).await.unwrap(), None);
    assert_eq!(store.take_setup_token(&first, t(1)).await.unwrap(), None);
    // An invitation naming its email still works.
    assert_eq!(
        store.take_setup_token(&invite, t(1)).await.unwrap(),
        Some((Some("hal@example.org".to_string()), Role::Agent))
    );
}

async fn login_attempts_are_counted_before_the_password_and_lock(store: &dyn Store) {
    use herald_store::LoginAttempt;
    let window = SignedDuration::from_mins(15);
    for n in 1..=5 {
        assert_eq!(
            store
                .reserve_login_attempt("Ann@Example.org", t(n), 5, window)
                .await
                .unwrap(),
            LoginAttempt::Allowed { attempt: n as u32 },
            "attempt {n}"
        );
    }
    // The sixth is locked until the window has passed since the fifth; locked attempts do
    // not move that.
    let locked = LoginAttempt::Locked {
        until: t(5).checked_add(window).unwrap(),
    };
    for at in [6, 60, 5 + 15 * 60 - 1] {
        assert_eq!(
            store
                .reserve_login_attempt("ann@example.org", t(at), 5, window)
                .await
                .unwrap(),
            locked,
            "at {at}"
        );
    }
    // Another address is not affected.
    assert_eq!(
        store
            .reserve_login_attempt("bob@example.org", t(60), 5, window)
            .await
            .unwrap(),
        LoginAttempt::Allowed { attempt: 1 }
    );
    // Once the window has passed, the count starts over.
    assert_eq!(
        store
            .reserve_login_attempt("ann@example.org", t(5 + 15 * 60), 5, window)
            .await
            .unwrap(),
        LoginAttempt::Allowed { attempt: 1 }
    );
    // A success clears the count.
    for n in 2..=5 {
        assert_eq!(
            store
                .reserve_login_attempt("ann@example.org", t(1000), 5, window)
                .await
                .unwrap(),
            LoginAttempt::Allowed { attempt: n }
        );
    }
    store.clear_login_attempts("ANN@example.org").await.unwrap();
    assert_eq!(
        store
            .reserve_login_attempt("ann@example.org", t(1001), 5, window)
            .await
            .unwrap(),
        LoginAttempt::Allowed { attempt: 1 }
    );
}

async fn concurrent_login_attempts_never_pass_the_limit(store: &dyn Store) {
    use herald_store::LoginAttempt;
    let window = SignedDuration::from_mins(15);
    let results = futures_util::future::join_all((0..40).map(|_| async {
        store
            .reserve_login_attempt("ann@example.org", t(1), 5, window)
            .await
            .unwrap()
    }))
    .await;
    let mut allowed: Vec<u32> = results
        .iter()
        .filter_map(|r| match r {
            LoginAttempt::Allowed { attempt } => Some(*attempt),
            LoginAttempt::Locked { .. } => None,
        })
        .collect();
    allowed.sort_unstable();
    assert_eq!(allowed, vec![1, 2, 3, 4, 5], "{results:?}");
}

// Recipients and import errors carry no foreign key to their outreach (it cost half of a large
// import on PostgreSQL); a trigger deletes them with it. These tests count the rows themselves,
// through a connection of their own, so that nothing the store's reads filter out can hide them.
herald_store::on_both_backends!(
    rows_go_with_their_outreach,
    a_refused_import_leaves_no_rows,
    an_aborted_import_leaves_nothing,
    a_dropped_import_is_deleted_in_the_background,
    imports_whose_process_is_gone_are_purged_at_start,
);

/// Rows of `table` for `outreach`, or of every outreach when `None`, read with raw SQL.
async fn count_rows(
    db: &herald_store::testing::TestStore,
    table: &str,
    outreach: Option<Uuid>,
) -> i64 {
    let filter = if outreach.is_some() {
        " WHERE outreach_id = $1"
    } else {
        ""
    };
    let id_column = if table == "outreaches" {
        "id"
    } else {
        "outreach_id"
    };
    let filter = filter.replace("outreach_id", id_column);
    let sql = format!("SELECT count(*) FROM {table}{filter}");
    if db.store.backend() == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.expect("sqlite");
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        if let Some(id) = outreach {
            q = q.bind(id);
        }
        let n = q.fetch_one(&pool).await.expect("count");
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("postgres");
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        if let Some(id) = outreach {
            q = q.bind(id);
        }
        let n = q.fetch_one(&pool).await.expect("count");
        pool.close().await;
        n
    }
}

/// An imported outreach of `campaign` with `n` recipients from line 2 and three row errors.
async fn imported(store: &dyn Store, campaign: Uuid, n: u64) -> Uuid {
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import.recipients(&recipients(2, n)).await.expect("batch");
    let errors: Vec<_> = (0..3)
        .map(|i| herald_store::ImportErrorRecord {
            line: 10_000 + i,
            column: Some("phone".into()),
            value: "555".into(),
            reason: "not a phone number".into(),
        })
        .collect();
    import.row_errors(&errors).await.expect("errors");
    import
        .commit(&herald_store::ImportSummary::default())
        .await
        .expect("commit")
        .id
}

async fn rows_go_with_their_outreach(db: herald_store::testing::TestStore) {
    let store = &*db.store;
    let w = world(store).await;
    let campaign = |name: &'static str| {
        let spec = campaign_spec(name, Channel::Sms, Some(w.sender), w.answer);
        async move { store.create_campaign(&spec).await.expect("campaign").id }
    };
    let (gone, kept) = (campaign("Gone").await, campaign("Kept").await);
    let first = imported(store, gone, 40).await;
    let second = imported(store, gone, 7).await;
    let other = imported(store, kept, 25).await;
    assert_eq!(count_rows(&db, "recipients", Some(first)).await, 40);
    assert_eq!(count_rows(&db, "import_errors", Some(second)).await, 3);
    assert_eq!(count_rows(&db, "recipients", None).await, 72);

    store.delete_campaign(gone).await.expect("delete campaign");
    for id in [first, second] {
        assert_eq!(count_rows(&db, "outreaches", Some(id)).await, 0);
        assert_eq!(
            count_rows(&db, "recipients", Some(id)).await,
            0,
            "recipients of {id}"
        );
        assert_eq!(
            count_rows(&db, "import_errors", Some(id)).await,
            0,
            "errors of {id}"
        );
    }
    // The other campaign's outreach keeps every row.
    assert_eq!(count_rows(&db, "recipients", None).await, 25);
    assert_eq!(count_rows(&db, "recipients", Some(other)).await, 25);
    assert_eq!(count_rows(&db, "import_errors", None).await, 3);
    assert_eq!(
        store
            .outreach_progress(other)
            .await
            .expect("progress")
            .total,
        25
    );
}

async fn a_refused_import_leaves_no_rows(db: herald_store::testing::TestStore) {
    let store = &*db.store;
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import
        .recipients(&recipients(2, 500))
        .await
        .expect("batch 1");
    import
        .recipients(&recipients(502, 500))
        .await
        .expect("batch 2");
    import
        .row_errors(&[herald_store::ImportErrorRecord {
            line: 2000,
            column: None,
            value: "x".into(),
            reason: "refused".into(),
        }])
        .await
        .expect("errors");
    // The upload is refused after two batches went in: the import is given up, not committed
    // (on SQLite the batches were committed, invisible; the abort deletes them before it
    // returns). A drop without the abort is `a_dropped_import_is_deleted_in_the_background`.
    import.abort().await.expect("abort");
    for table in ["outreaches", "recipients", "import_errors"] {
        assert_eq!(count_rows(&db, table, None).await, 0, "{table}");
    }
}

/// Runs `sql` (binding `id` as `$1`, if given) on the SQLite test database, through a
/// connection of its own.
async fn sqlite_exec(db: &herald_store::testing::TestStore, sql: &str, id: Option<Uuid>) {
    let pool = sqlx::SqlitePool::connect(&db.url).await.expect("sqlite");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    if let Some(id) = id {
        q = q.bind(id);
    }
    q.execute(&pool).await.expect("sql");
    pool.close().await;
}

/// Every row an import may have written, and (on SQLite) the marks of imports in progress.
async fn import_rows(db: &herald_store::testing::TestStore, outreach: Option<Uuid>) -> i64 {
    let mut n = 0;
    for table in ["outreaches", "recipients", "import_errors"] {
        n += count_rows(db, table, outreach).await;
    }
    if db.store.backend() == "sqlite" {
        n += count_rows(db, "outreach_imports", outreach).await;
    }
    n
}

async fn an_aborted_import_leaves_nothing(db: herald_store::testing::TestStore) {
    let store = &*db.store;
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import
        .recipients(&recipients(2, BIG_IMPORT))
        .await
        .expect("recipients");
    import
        .row_errors(&[herald_store::ImportErrorRecord {
            line: 20_000,
            column: Some("phone".into()),
            value: "555".into(),
            reason: "not a phone number".into(),
        }])
        .await
        .expect("errors");
    import.abort().await.expect("abort");
    assert_eq!(import_rows(&db, None).await, 0);
    // The campaign takes the next import as before.
    let id = imported(store, campaign, 10).await;
    assert_eq!(count_rows(&db, "recipients", Some(id)).await, 10);
}

async fn a_dropped_import_is_deleted_in_the_background(db: herald_store::testing::TestStore) {
    let store = &*db.store;
    let campaign = sms_campaign(store).await;
    let mut import = store
        .begin_outreach(&new_outreach(campaign))
        .await
        .expect("begin");
    import
        .recipients(&recipients(2, BIG_IMPORT))
        .await
        .expect("recipients");
    let id = import.outreach_id();
    // As when the client of an upload goes away: the future holding the import is dropped.
    drop(import);
    assert!(matches!(
        store.get_outreach(id).await,
        Err(StoreError::NotFound { .. })
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = import_rows(&db, None).await;
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} rows of a dropped import are still there after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn imports_whose_process_is_gone_are_purged_at_start(db: herald_store::testing::TestStore) {
    let store = &*db.store;
    let campaign = sms_campaign(store).await;
    let begin = || async {
        let mut import = store
            .begin_outreach(&new_outreach(campaign))
            .await
            .expect("begin");
        import
            .recipients(&recipients(2, BIG_IMPORT))
            .await
            .expect("recipients");
        import
    };
    // An import of this process, running: the purge must leave it alone.
    let live = begin().await;
    // Two imports whose process was killed midway: nothing runs their drop.
    let (killed, silent) = (begin().await, begin().await);
    let (killed_id, silent_id) = (killed.outreach_id(), silent.outreach_id());
    std::mem::forget(killed);
    std::mem::forget(silent);
    if store.backend() == "sqlite" {
        assert_eq!(
            count_rows(&db, "recipients", None).await,
            3 * BIG_IMPORT as i64
        );
        // `killed` names a process that does not run (a pid above Linux's largest);
        // `silent` has not written for an hour (as a process on another machine would).
        sqlite_exec(
            &db,
            "UPDATE outreach_imports SET node = \
             substr(node, 1, instr(node, '/')) || '4194305/1' WHERE outreach_id = $1",
            Some(killed_id),
        )
        .await;
        sqlite_exec(
            &db,
            "UPDATE outreach_imports SET heartbeat_at = heartbeat_at - 3600000000 \
             WHERE outreach_id = $1",
            Some(silent_id),
        )
        .await;
    }
    // Herald starts again on the database: it opens and migrates it.
    let again = herald_store::connect(&db.url).await.expect("reopen");
    again.migrate().await.expect("migrate");
    for id in [silent_id, killed_id] {
        assert_eq!(import_rows(&db, Some(id)).await, 0, "rows of {id}");
    }
    // The summary a real import would give: the commit answers its counts as the progress.
    let summary = herald_store::ImportSummary {
        rows: BIG_IMPORT,
        accepted: BIG_IMPORT,
        suppressed: BIG_IMPORT / 5,
        ..herald_store::ImportSummary::default()
    };
    let live = live
        .commit(&summary)
        .await
        .expect("the running import commits");
    assert_eq!(live.progress.total, BIG_IMPORT);
    assert_eq!(count_rows(&db, "recipients", None).await, BIG_IMPORT as i64);
    assert_eq!(
        again
            .list_outreaches(campaign, None, Page::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

// ---------------------------------------------------------------- proactive chat

fn site_spec(name: &str, max_per_visit: Option<u32>) -> ChatSiteSpec {
    ChatSiteSpec {
        name: name.to_string(),
        allowed_origins: vec![
            "https://shop.example.com".to_string(),
            "http://127.0.0.1:8080".to_string(),
        ],
        max_per_visit,
    }
}

fn chat_settings(site_id: Uuid, order: u32) -> ChatSettings {
    ChatSettings {
        site_id,
        inbox_id: None,
        order,
        triggers: vec![
            TriggerInput::Url {
                include: vec![UrlRule {
                    kind: UrlMatch::Wildcard,
                    value: "/products/*".to_string(),
                }],
                exclude: vec![],
            },
            TriggerInput::TimeOnPage { seconds: 7 },
        ],
        onboarding: true,
        starts_at: Some("2026-01-01T00:00:00.123456Z".parse().expect("time")),
        ends_at: None,
        paused: false,
    }
}

async fn chat_sites_round_trip_and_keys_are_unique(store: &dyn Store) {
    let created = store
        .create_chat_site(&site_spec("Shop", Some(1)), "key-one")
        .await
        .expect("create site");
    assert_eq!(created.key, "key-one");
    assert_eq!(created.max_per_visit, Some(1));
    assert_eq!(store.get_chat_site(created.id).await.expect("get"), created);
    assert_eq!(
        store.find_chat_site("key-one").await.expect("find"),
        Some(created.clone())
    );
    assert_eq!(store.find_chat_site("key-two").await.expect("find"), None);

    let msg = expect_conflict(
        store
            .create_chat_site(&site_spec("Other", None), "key-one")
            .await,
    );
    assert!(msg.contains("key"), "{msg}");

    let updated = store
        .update_chat_site(
            created.id,
            &ChatSiteSpec {
                name: "Shop EU".to_string(),
                allowed_origins: vec!["https://eu.example.com".to_string()],
                max_per_visit: None,
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (
            updated.name.as_str(),
            updated.key.as_str(),
            updated.allowed_origins.as_slice(),
            updated.max_per_visit
        ),
        (
            "Shop EU",
            "key-one",
            &["https://eu.example.com".to_string()][..],
            None
        )
    );
    assert!(updated.updated_at >= created.updated_at);

    let second = store
        .create_chat_site(&site_spec("Blog", Some(0)), "key-two")
        .await
        .expect("second site");
    let first_page = store.list_chat_sites(page(1, None)).await.expect("list");
    assert_eq!(first_page.items.len(), 1);
    assert_eq!(first_page.items[0].id, created.id);
    let next = store
        .list_chat_sites(page(1, first_page.next_after))
        .await
        .expect("list");
    assert_eq!(next.items[0], second);
    assert_eq!(
        next.items[0].max_per_visit,
        Some(0),
        "0 is kept, not unlimited"
    );

    store.delete_chat_site(second.id).await.expect("delete");
    expect_not_found(store.get_chat_site(second.id).await, "chat site", second.id);
    expect_not_found(
        store.delete_chat_site(second.id).await,
        "chat site",
        second.id,
    );
}

async fn chat_settings_belong_to_chat_campaigns_and_go_with_them(store: &dyn Store) {
    let w = world(store).await;
    let site = store
        .create_chat_site(&site_spec("Shop", None), "site-key")
        .await
        .expect("site");
    let chat = |name: &str| campaign_spec(name, Channel::Chat, None, w.answer);
    let first = store.create_campaign(&chat("Welcome")).await.expect("chat");
    let second = store
        .create_campaign(&chat("Cart help"))
        .await
        .expect("chat");
    let sms = store
        .create_campaign(&campaign_spec(
            "Texts",
            Channel::Sms,
            Some(w.sender),
            w.answer,
        ))
        .await
        .expect("sms");

    assert_eq!(store.get_chat_settings(first.id).await.expect("get"), None);
    let settings = chat_settings(site.id, 2);
    store
        .set_chat_settings(first.id, &settings)
        .await
        .expect("set");
    assert_eq!(
        store.get_chat_settings(first.id).await.expect("get"),
        Some(settings.clone()),
        "triggers, order, onboarding and start keep their values (to the microsecond)"
    );
    // Setting again replaces.
    let paused = ChatSettings {
        paused: true,
        order: 3,
        ends_at: Some("2027-01-01T00:00:00Z".parse().expect("time")),
        ..settings.clone()
    };
    store
        .set_chat_settings(first.id, &paused)
        .await
        .expect("set again");
    assert_eq!(
        store.get_chat_settings(first.id).await.expect("get"),
        Some(paused.clone())
    );
    store
        .set_chat_settings(second.id, &chat_settings(site.id, 1))
        .await
        .expect("set second");

    let listed = store.site_campaigns(site.id).await.expect("site campaigns");
    let names: Vec<_> = listed
        .iter()
        .map(|(c, s)| (c.name.as_str(), s.order))
        .collect();
    assert_eq!(
        names,
        [("Cart help", 1), ("Welcome", 3)],
        "in order, 1 first"
    );
    assert_eq!(listed[0].0, second);

    let (field, msg) = expect_invalid(store.set_chat_settings(sms.id, &settings).await);
    assert_eq!(field, "campaign_id");
    assert!(msg.contains("sms campaign"), "{msg}");
    let nowhere = Uuid::now_v7();
    let (field, _) = expect_invalid(
        store
            .set_chat_settings(first.id, &chat_settings(nowhere, 1))
            .await,
    );
    assert_eq!(field, "site_id");
    expect_not_found(
        store.set_chat_settings(nowhere, &settings).await,
        "campaign",
        nowhere,
    );

    let msg = expect_in_use(store.delete_chat_site(site.id).await);
    assert!(
        msg.contains("Cart help") && msg.contains("Welcome"),
        "{msg}"
    );

    store
        .delete_campaign(first.id)
        .await
        .expect("delete campaign");
    assert_eq!(store.get_chat_settings(first.id).await.expect("get"), None);
    assert_eq!(store.site_campaigns(site.id).await.expect("list").len(), 1);
    store
        .delete_campaign(second.id)
        .await
        .expect("delete campaign");
    store
        .delete_chat_site(site.id)
        .await
        .expect("site is free now");
}
