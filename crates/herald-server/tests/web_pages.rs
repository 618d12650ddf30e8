//! The Settings and Campaigns pages of the web UI, over real HTTP with a signed-in browser-like
//! client (session cookie, CSRF token read from the pages).

mod common;

use common::web::{Browser, element, sign_in};
use herald_core::{
    AnswerInput, AnswerVariantInput, CampaignInput, Channel, InboxInput, Role, SenderInput,
};
use herald_store::Store;
use reqwest::StatusCode;
use uuid::Uuid;

fn has_error(html: &str, field: &str) -> bool {
    element(html, &format!("{field}-error")).is_some_and(|e| e.contains("field-error"))
}

async fn inbox(store: &dyn Store, name: &str) -> Uuid {
    let spec = InboxInput {
        name: name.into(),
        agent_number: None,
    }
    .validate()
    .unwrap();
    store.create_inbox(&spec).await.unwrap().id
}

async fn sender(store: &dyn Store, channel: &str, address: &str, inbox_id: Uuid) -> Uuid {
    let spec = SenderInput {
        channel: channel.into(),
        address: address.into(),
        inbox_id: Some(inbox_id),
        provider: None,
        default_region: None,
    }
    .validate()
    .unwrap();
    store.create_sender(&spec).await.unwrap().id
}

async fn answer(store: &dyn Store, name: &str, variants: &[(&str, Option<&str>, &str)]) -> Uuid {
    let spec = AnswerInput {
        name: name.into(),
        variants: variants
            .iter()
            .map(|(language, subject, body)| AnswerVariantInput {
                language: (*language).into(),
                subject: subject.map(str::to_string),
                body: (*body).into(),
                voice: None,
            })
            .collect(),
    }
    .validate()
    .unwrap();
    store.create_answer(&spec).await.unwrap().id
}

async fn count_campaigns(store: &dyn Store) -> usize {
    store
        .list_campaigns(None, herald_core::Page::default())
        .await
        .unwrap()
        .items
        .len()
}

/// The fields of a valid SMS campaign form: open Monday 09:00-17:00, closed the other days.
fn campaign_fields<'a>(
    name: &'a str,
    sender_id: &'a str,
    language: &'a str,
    answer_id: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("channel", "sms"),
        ("name", name),
        ("description", "Late deliveries"),
        ("sender_id", sender_id),
        ("language", language),
        ("answer_id", answer_id),
        ("timezone", "Europe/Paris"),
        ("quiet_hours", "on"),
        ("mon_from", "09:00"),
        ("mon_to", "17:00"),
    ];
    for closed in [
        "tue_closed",
        "wed_closed",
        "thu_closed",
        "fri_closed",
        "sat_closed",
        "sun_closed",
    ] {
        f.push((closed, "on"));
    }
    f
}

// ------------------------------------------------------------------ settings

async fn settings_forms_store_what_they_check(app: common::App) {
    let store = app.db.store.clone();
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;

    // Inbox: created through the form; a name with markup comes back escaped.
    let res = admin
        .post(
            "/settings/inboxes",
            &[
                ("name", "Support <script>alert(1)</script>"),
                ("agent_number", ""),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/settings/inboxes");
    let list = admin.get("/settings/inboxes").await;
    assert!(
        list.body
            .contains("Support &#60;script&#62;alert(1)&#60;/script&#62;")
            || list
                .body
                .contains("Support &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<script>alert(1)"));
    let inboxes = store
        .list_inboxes(herald_core::Page::default())
        .await
        .unwrap()
        .items;
    assert_eq!(inboxes.len(), 1);
    let inbox_id = inboxes[0].id.to_string();

    // Field errors next to their fields, 422, values kept, nothing stored.
    let res = admin
        .post(
            "/settings/inboxes",
            &[("name", ""), ("agent_number", "not a number")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "name"), "{}", res.body);
    assert!(
        element(&res.body, "name-error")
            .unwrap()
            .contains("Name is required")
    );
    assert!(has_error(&res.body, "agent_number"), "{}", res.body);
    assert!(res.body.contains("value=\"not a number\""));
    let res = admin
        .post(
            "/settings/inboxes",
            &[("name", "Billing"), ("agent_number", "nope")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!has_error(&res.body, "name"), "{}", res.body);
    assert!(has_error(&res.body, "agent_number"));
    // Without the CSRF token: 403, nothing stored.
    let res = admin
        .post_raw("/settings/inboxes", &[("name", "Sneaky")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = admin
        .post_raw(
            "/settings/inboxes",
            &[("name", "Sneaky"), ("csrf", "not-the-token")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let count = store
        .list_inboxes(herald_core::Page::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(count, 1, "refused forms stored nothing");

    // Editing an inbox.
    let res = admin
        .post(
            &format!("/settings/inboxes/{inbox_id}"),
            &[("name", "Support desk"), ("agent_number", "+14155550142")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let stored = store.get_inbox(inboxes[0].id).await.unwrap();
    assert_eq!(stored.name, "Support desk");
    assert_eq!(
        stored.agent_number.map(|n| n.to_string()).as_deref(),
        Some("+14155550142")
    );

    // Senders: the form lists the inboxes; a created sender shows its channel and inbox.
    let page = admin.get("/settings/senders").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("value=\"{inbox_id}\"")));
    let res = admin
        .post(
            "/settings/senders",
            &[
                ("channel", "sms"),
                ("address", "+14155550100"),
                ("inbox_id", &inbox_id),
                ("provider", "file"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = admin.get("/settings/senders").await;
    let table = element(&page.body, "senders").unwrap();
    assert!(table.contains("+14155550100") && table.contains("Support desk"));
    assert!(table.contains(">sms<"), "{table}");
    // The API's messages, next to the field: a bad email, a provider that cannot carry SMS.
    let res = admin
        .post(
            "/settings/senders",
            &[
                ("channel", "email"),
                ("address", "not-an-address"),
                ("inbox_id", &inbox_id),
                ("provider", "file"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "address"), "{}", res.body);
    assert!(!has_error(&res.body, "provider"));
    let res = admin
        .post(
            "/settings/senders",
            &[
                ("channel", "sms"),
                ("address", "+14155550101"),
                ("inbox_id", ""),
                ("provider", "smtp"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "provider"), "{}", res.body);
    assert!(
        element(&res.body, "provider-error")
            .unwrap()
            .contains("smtp cannot carry sms")
    );
    assert!(has_error(&res.body, "inbox_id"));
    assert!(!has_error(&res.body, "address"));
    let senders = store
        .list_senders(herald_core::Page::default())
        .await
        .unwrap()
        .items;
    assert_eq!(senders.len(), 1, "refused senders were not stored");

    // Answers: two languages through the numbered fields; a blank variant is ignored.
    let res = admin
        .post(
            "/settings/answers",
            &[
                ("name", "Late order"),
                ("language_0", "en"),
                ("subject_0", ""),
                ("body_0", "Hi {{ first_name }}, your order is late."),
                ("language_1", "es"),
                ("subject_1", ""),
                ("body_1", "Hola {{ first_name }}, tu pedido llega tarde."),
                ("language_2", ""),
                ("subject_2", ""),
                ("body_2", ""),
                ("sample", "first_name=Ana"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let answers = store
        .list_answers(herald_core::Page::default())
        .await
        .unwrap()
        .items;
    assert_eq!(answers.len(), 1);
    let langs: Vec<String> = answers[0]
        .languages()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(langs, ["en", "es"]);
    // A broken template in the second variant: the error is next to body_1, not body_0.
    let res = admin
        .post(
            "/settings/answers",
            &[
                ("name", "Broken"),
                ("language_0", "en"),
                ("body_0", "fine"),
                ("language_1", "fr"),
                ("body_1", "Bonjour {{ first_name"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "body_1"), "{}", res.body);
    assert!(!has_error(&res.body, "body_0"));
    assert!(res.body.contains("Bonjour {{ first_name</textarea>"));
    let res = admin.post("/settings/answers", &[("name", "Empty")]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "variants"), "{}", res.body);
    assert_eq!(
        store
            .list_answers(herald_core::Page::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let page = admin.get("/settings/answers").await;
    assert!(
        element(&page.body, "answers")
            .unwrap()
            .contains("Late order")
    );
    let page = admin
        .get(&format!("/settings/answers/{}", answers[0].id))
        .await;
    assert!(
        page.body
            .contains("Hola {{ first_name }}, tu pedido llega tarde.")
    );

    // A sender a campaign uses: the store's "in use" message, not a 500; the sender stays.
    let spec = CampaignInput {
        name: "Uses the sender".into(),
        channel: "sms".into(),
        sender_id: Some(senders[0].id),
        language: "en".into(),
        answer_id: Some(answers[0].id),
        schedule: Some(herald_core::schedule::ScheduleInput {
            timezone: "UTC".into(),
            days: Default::default(),
            closed_dates: Vec::new(),
        }),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store.create_campaign(&spec).await.unwrap();
    let res = admin
        .post(&format!("/settings/senders/{}/delete", senders[0].id), &[])
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    let notice = element(&res.body, "notice").unwrap();
    assert!(notice.contains("Uses the sender"), "{notice}");
    assert!(store.get_sender(senders[0].id).await.is_ok());
    // An unused one goes.
    let other = sender(&*store, "voice", "+14155550199", inboxes[0].id).await;
    let res = admin
        .post(&format!("/settings/senders/{other}/delete"), &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(store.get_sender(other).await.is_err());
}

async fn the_answer_preview_renders_and_counts_segments(app: common::App) {
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let page = admin.get("/settings/answers/new").await;
    assert_eq!(page.status, StatusCode::OK);
    let body_0 = element(&page.body, "body_0").unwrap();
    assert!(body_0.contains("hx-post=\"/settings/answers/preview\""));
    assert!(body_0.contains("hx-target=\"#preview\""));
    assert!(page.body.contains("id=\"preview\""));

    let long = format!("{}🙂", "a".repeat(69));
    let res = admin
        .post(
            "/settings/answers/preview",
            &[
                ("variant", "0"),
                ("language_0", "en"),
                ("body_0", &long),
                ("sample", ""),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(
        res.body
            .contains("<span id=\"preview-segments\">2 segments</span>"),
        "{}",
        res.body
    );
    assert!(
        res.body
            .contains("<span id=\"preview-encoding\">UCS-2</span>")
    );

    // The variant being typed in, with the sample variables; markup is escaped.
    let res = admin
        .post(
            "/settings/answers/preview",
            &[
                ("variant", "1"),
                ("body_0", "first variant"),
                ("subject_1", "Order {{ order }}"),
                ("body_1", "Hi {{ name }} <b>!</b>"),
                ("sample", "name=Ana\norder=<script>x</script>"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let rendered = element(&res.body, "preview-body").unwrap();
    assert!(
        rendered.contains("Hi Ana &#60;b&#62;!&#60;/b&#62;")
            || rendered.contains("Hi Ana &lt;b&gt;!&lt;/b&gt;"),
        "{rendered}"
    );
    // As an email: Markdown as HTML with the answer's raw HTML shown as text, and the text
    // part; both end with the unsubscribe footer, a link in the HTML.
    let html = element(&res.body, "preview-email-html").unwrap();
    assert!(
        html.contains("<p>Hi Ana &lt;b&gt;!&lt;/b&gt;</p>"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("\">unsubscribe</a>"), "{html}");
    let text = element(&res.body, "preview-email-text").unwrap();
    assert!(
        text.contains("Hi Ana &#60;b&#62;!&#60;/b&#62;")
            || text.contains("Hi Ana &lt;b&gt;!&lt;/b&gt;"),
        "{text}"
    );
    assert!(text.contains("unsubscribe: https://"), "{text}");
    let subject = element(&res.body, "preview-subject").unwrap();
    assert!(!subject.contains("<script>"), "{subject}");
    assert!(subject.contains("Order "));
    assert!(
        res.body
            .contains("<span id=\"preview-segments\">1 segment</span>")
    );
    assert!(
        res.body
            .contains("<span id=\"preview-encoding\">GSM-7</span>")
    );

    // Template errors and missing sample variables are shown in the preview (200, not 500).
    let res = admin
        .post(
            "/settings/answers/preview",
            &[("body_0", "Hi {{ name"), ("sample", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        element(&res.body, "preview-error").is_some(),
        "{}",
        res.body
    );
    let res = admin
        .post(
            "/settings/answers/preview",
            &[("body_0", "Hi {{ first_name }}"), ("sample", "")],
        )
        .await;
    // An untouched sample is no error: the variable shows in brackets, and the preview says so.
    assert!(
        element(&res.body, "preview-error").is_none(),
        "{}",
        res.body
    );
    assert!(
        element(&res.body, "preview-body")
            .unwrap()
            .contains("Hi [first_name]"),
        "{}",
        res.body
    );
    assert!(
        element(&res.body, "preview-unsampled")
            .unwrap()
            .contains("first_name"),
        "{}",
        res.body
    );
    // A misspelled filter is refused when the answer is saved, by name.
    let (status, problem) = app
        .admin(
            reqwest::Method::POST,
            "/api/v1/answers",
            Some(
                serde_json::json!({"name": "Typo", "variants": [{"language": "en",
                "body": "Hi {{ first_name | uppper }}"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        common::has_error(&problem, "variants[0].body", "unknown filter"),
        "{problem}"
    );
    // CSRF is checked here too.
    let res = admin
        .post_raw("/settings/answers/preview", &[("body_0", "x")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

// ------------------------------------------------------------------ campaigns

async fn campaign_forms_offer_only_what_fits(app: common::App) {
    let store = app.db.store.clone();
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let desk = inbox(&*store, "Desk").await;
    let sms = sender(&*store, "sms", "+14155550100", desk).await;
    let voice = sender(&*store, "voice", "+14155550177", desk).await;
    let email = sender(&*store, "email", "news@example.com", desk).await;
    let english = answer(
        &*store,
        "English only",
        &[("en", None, "Hi {{ first_name }}")],
    )
    .await;
    let spanish = answer(&*store, "Spanish only", &[("es", None, "Hola")]).await;
    let both = answer(
        &*store,
        "Both <i>langs</i>",
        &[("en", Some("Hello"), "Hi"), ("es", None, "Hola")],
    )
    .await;

    // The SMS form: only SMS senders, labelled Phone Number; languages of the answers.
    let page = admin.get("/campaigns/new?channel=sms").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let senders = element(&page.body, "sender_id").unwrap();
    assert!(senders.contains(&sms.to_string()));
    assert!(!senders.contains(&voice.to_string()) && !senders.contains(&email.to_string()));
    assert!(
        page.body
            .contains("<label for=\"sender_id\">Phone Number</label>")
    );
    let languages = element(&page.body, "language").unwrap();
    assert!(languages.contains("value=\"en\"") && languages.contains("value=\"es\""));
    assert!(languages.contains("hx-get=\"/campaigns/answers-for\""));
    // Office hours by default: Monday to Friday 09:00-17:00, the weekend closed.
    for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
        let row = element(&page.body, &format!("schedule-{d}")).unwrap();
        let closed = row.contains(&format!("name=\"{d}_closed\" value=\"on\" checked"));
        assert_eq!(closed, d == "sat" || d == "sun", "{row}");
        assert!(
            row.contains("value=\"09:00\"") && row.contains("value=\"17:00\""),
            "{row}"
        );
    }
    // The browser offers its own time zone on a new campaign's first form.
    assert!(page.body.contains("data-browser-zone"), "{}", page.body);
    // The email form: only the email sender, labelled Email Address.
    let page = admin.get("/campaigns/new?channel=email").await;
    let senders = element(&page.body, "sender_id").unwrap();
    assert!(senders.contains(&email.to_string()) && !senders.contains(&sms.to_string()));
    assert!(
        page.body
            .contains("<label for=\"sender_id\">Email Address</label>")
    );

    // The answer select: only answers with a variant in the language.
    let frag = admin
        .get("/campaigns/answers-for?language=es&channel=sms")
        .await;
    assert_eq!(frag.status, StatusCode::OK);
    assert!(
        frag.body
            .trim_start()
            .starts_with("<select id=\"answer-select\" name=\"answer_id\""),
        "{}",
        frag.body
    );
    assert!(frag.body.contains(&spanish.to_string()) && frag.body.contains(&both.to_string()));
    assert!(!frag.body.contains(&english.to_string()));
    assert!(
        frag.body.contains("Both &#60;i&#62;langs&#60;/i&#62;")
            || frag.body.contains("Both &lt;i&gt;langs&lt;/i&gt;")
    );
    let frag = admin
        .get(&format!(
            "/campaigns/answers-for?language=en&channel=sms&answer_id={both}"
        ))
        .await;
    assert!(frag.body.contains(&english.to_string()) && !frag.body.contains(&spanish.to_string()));
    assert!(frag.body.contains(&format!("value=\"{both}\" selected")));

    // Errors next to their fields, 422, nothing stored.
    let mut fields = campaign_fields("", "", "en", "");
    fields.retain(|(k, _)| !k.starts_with("mon_"));
    fields.extend([("mon_from", "17:00"), ("mon_to", "09:00")]);
    let res = admin.post("/campaigns", &fields).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    for f in ["name", "sender_id", "answer_id", "schedule"] {
        assert!(has_error(&res.body, f), "{f}: {}", res.body);
    }
    assert!(!has_error(&res.body, "language") && !has_error(&res.body, "timezone"));
    assert!(
        element(&res.body, "schedule-error")
            .unwrap()
            .contains("Monday")
    );
    assert_eq!(count_campaigns(&*store).await, 0);
    // The answer has no variant in the language: said next to the language.
    let (sms_s, spanish_s) = (sms.to_string(), spanish.to_string());
    let res = admin
        .post(
            "/campaigns",
            &campaign_fields("Promo", &sms_s, "en", &spanish_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "language"), "{}", res.body);
    assert!(
        element(&res.body, "language-error")
            .unwrap()
            .contains("Spanish only")
    );
    // A sender of another channel and an unknown time zone.
    let (email_s, english_s) = (email.to_string(), english.to_string());
    let mut fields = campaign_fields("Promo", &email_s, "en", &english_s);
    fields.retain(|(k, _)| *k != "timezone");
    fields.push(("timezone", "Mars/Olympus"));
    let res = admin.post("/campaigns", &fields).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&res.body, "timezone"), "{}", res.body);
    assert!(res.body.contains("value=\"Mars/Olympus\""));
    assert_eq!(count_campaigns(&*store).await, 0);
    // Without CSRF: 403, nothing stored.
    let res = admin
        .post_raw(
            "/campaigns",
            &campaign_fields("Promo", &sms_s, "en", &english_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(count_campaigns(&*store).await, 0);

    // A valid form: stored as the API would, then shown on its page.
    let res = admin
        .post(
            "/campaigns",
            &campaign_fields("Promo <script>x</script>", &sms_s, "en", &english_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let location = res.location().to_string();
    let id: Uuid = location
        .strip_prefix("/campaigns/")
        .unwrap()
        .parse()
        .unwrap();
    let c = store.get_campaign(id).await.unwrap();
    assert_eq!(c.channel, Channel::Sms);
    assert_eq!(c.sender_id, Some(sms));
    assert_eq!(c.answer_id, english);
    assert_eq!(c.schedule.timezone_name(), "Europe/Paris");
    assert_eq!(c.schedule.windows(0).len(), 1);
    assert_eq!(c.schedule.windows(0)[0].to_string(), "09:00-17:00");
    assert!(c.schedule.windows(1).is_empty());
    assert!(c.quiet_hours);
    let page = admin.get(&location).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>x</script>"));
    assert!(page.body.contains("+14155550100") && page.body.contains("English only"));
    assert!(
        element(&page.body, "add-recipients")
            .unwrap()
            .contains(&format!("href=\"/campaigns/{id}/outreaches/new\""))
    );
    assert!(
        element(&page.body, "csv-template")
            .unwrap()
            .contains(&format!("href=\"/campaigns/{id}/template.csv\""))
    );
    assert!(
        element(&page.body, "delete-campaign")
            .unwrap()
            .contains("data-confirm=")
    );
    assert!(page.body.contains("id=\"outreach-section\""));
    // Listed under its channel only.
    let list = admin.get("/campaigns?channel=sms").await;
    assert!(
        element(&list.body, "campaigns")
            .unwrap()
            .contains(&format!("href=\"/campaigns/{id}\""))
    );
    assert!(
        list.body
            .contains("id=\"new-campaign\" href=\"/campaigns/new?channel=sms\"")
    );
    let list = admin.get("/campaigns?channel=email").await;
    assert!(!list.body.contains(&id.to_string()));
    // The same name on the same channel: next to the name.
    let res = admin
        .post(
            "/campaigns",
            &campaign_fields("Promo <script>x</script>", &sms_s, "en", &english_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(has_error(&res.body, "name"), "{}", res.body);
    assert_eq!(count_campaigns(&*store).await, 1);

    // Editing: the form shows the stored values; closing Monday and opening Tuesday sticks.
    let page = admin.get(&format!("/campaigns/{id}/edit")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        element(&page.body, "schedule-mon")
            .unwrap()
            .contains("value=\"09:00\"")
    );
    assert!(
        !element(&page.body, "schedule-mon")
            .unwrap()
            .contains("checked")
    );
    let both_s = both.to_string();
    let mut fields = campaign_fields("Promo 2", &sms_s, "en", &both_s);
    fields.retain(|(k, _)| !k.starts_with("tue_") && *k != "quiet_hours");
    fields.extend([
        ("mon_closed", "on"),
        ("tue_from", "10:00"),
        ("tue_to", "00:00"),
    ]);
    let res = admin.post(&format!("/campaigns/{id}"), &fields).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let c = store.get_campaign(id).await.unwrap();
    assert_eq!(c.name, "Promo 2");
    assert_eq!(c.answer_id, both);
    assert!(c.schedule.windows(0).is_empty());
    assert_eq!(c.schedule.windows(1)[0].to_string(), "10:00-24:00");
    assert!(!c.quiet_hours);

    // Deleting.
    let res = admin.post(&format!("/campaigns/{id}/delete"), &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/campaigns?channel=sms");
    assert_eq!(count_campaigns(&*store).await, 0);

    // A city, written as people write it, is its IANA zone.
    let mut ny = campaign_fields("Promo NY", &sms_s, "en", &english_s);
    ny.retain(|(k, _)| *k != "timezone");
    ny.push(("timezone", "New York"));
    let res = admin.post("/campaigns", &ny).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let ny_id: Uuid = res
        .location()
        .strip_prefix("/campaigns/")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        store
            .get_campaign(ny_id)
            .await
            .unwrap()
            .schedule
            .timezone_name(),
        "America/New_York"
    );
}

/// The campaign form's frequency cap: offered on channels that send (not chat), refused with
/// the reason next to it when half given, not a number, zero or longer than ten years (the
/// typed values kept, nothing stored), saved and shown on the campaign's page, shown again on
/// the edit form, and removed by emptying both boxes.
async fn a_campaigns_frequency_cap_is_set_checked_and_cleared_on_its_form(app: common::App) {
    let store = app.db.store.clone();
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let desk = inbox(&*store, "Desk").await;
    let sms = sender(&*store, "sms", "+14155550100", desk)
        .await
        .to_string();
    let english = answer(&*store, "English", &[("en", None, "Hi")])
        .await
        .to_string();

    let page = admin.get("/campaigns/new?channel=sms").await;
    let field = element(&page.body, "frequency-cap").expect("the cap's fieldset");
    assert!(
        field.contains("name=\"frequency_cap_messages\" value=\"\"")
            && field.contains("name=\"frequency_cap_days\" value=\"\""),
        "{field}"
    );
    let page = admin.get("/campaigns/new?channel=chat").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        element(&page.body, "frequency-cap").is_none(),
        "no cap on chat"
    );

    let with_cap = |messages: &'static str, days: &'static str| {
        let mut f = campaign_fields("Capped", &sms, "en", &english);
        f.extend([
            ("frequency_cap_messages", messages),
            ("frequency_cap_days", days),
        ]);
        f
    };
    for (messages, days, says) in [
        ("2", "", "Give both the messages and the days"),
        ("two", "7", "Messages: “two” is not a whole number"),
        ("0", "7", "Messages must be at least 1"),
        ("1", "3651", "Days is 3651, more than ten years"),
    ] {
        let res = admin.post("/campaigns", &with_cap(messages, days)).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        let error = element(&res.body, "frequency_cap-error").unwrap_or_default();
        assert!(error.contains(says), "{messages}/{days}: {error}");
        assert!(
            res.body.contains(&format!(
                "name=\"frequency_cap_messages\" value=\"{messages}\""
            )),
            "the typed value is kept"
        );
        assert!(res.body.contains("aria-invalid=\"true\""));
    }
    assert_eq!(count_campaigns(&*store).await, 0);

    let res = admin.post("/campaigns", &with_cap("2", " 7 ")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let location = res.location().to_string();
    let id: Uuid = location
        .strip_prefix("/campaigns/")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        store.get_campaign(id).await.unwrap().frequency_cap,
        Some(herald_core::FrequencyCap {
            messages: 2,
            days: 7
        })
    );
    let page = admin.get(&location).await;
    let shown = element(&page.body, "campaign-frequency-cap").unwrap_or_default();
    assert!(
        shown.contains(">At most 2 messages in 7 days (this campaign"),
        "{shown}"
    );
    let edit = admin.get(&format!("/campaigns/{id}/edit")).await;
    let field = element(&edit.body, "frequency-cap").unwrap();
    assert!(
        field.contains("name=\"frequency_cap_messages\" value=\"2\"")
            && field.contains("name=\"frequency_cap_days\" value=\"7\""),
        "{field}"
    );

    let res = admin
        .post(&format!("/campaigns/{id}"), &with_cap("", ""))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(store.get_campaign(id).await.unwrap().frequency_cap, None);
    let page = admin.get(&location).await;
    assert!(
        element(&page.body, "campaign-frequency-cap")
            .unwrap()
            .contains("None of this campaign"),
    );
}

async fn agents_read_campaigns_but_change_nothing(app: common::App) {
    let store = app.db.store.clone();
    let desk = inbox(&*store, "Desk").await;
    let sms = sender(&*store, "sms", "+14155550100", desk).await;
    let english = answer(&*store, "English", &[("en", None, "Hi")]).await;
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let (sms_s, english_s) = (sms.to_string(), english.to_string());
    let res = admin
        .post(
            "/campaigns",
            &campaign_fields("Promo", &sms_s, "en", &english_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let location = res.location().to_string();

    let agent = sign_in(&app, "agent@example.com", Role::Agent).await;
    let list = agent.get("/campaigns").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Promo"));
    assert!(!list.body.contains("id=\"new-campaign\""));
    let page = agent.get(&location).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Promo"));
    for control in ["add-recipients", "edit-campaign", "delete-campaign"] {
        assert!(
            element(&page.body, control).is_none(),
            "{control} shown to an agent"
        );
    }
    assert!(element(&page.body, "csv-template").is_some());
    assert_eq!(agent.get("/settings").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        agent.get("/campaigns/new?channel=sms").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        agent.get(&format!("{location}/edit")).await.status,
        StatusCode::FORBIDDEN
    );

    // Posting anyway, with the agent's own valid CSRF token: 403, nothing changes.
    let res = agent
        .post(
            "/campaigns",
            &campaign_fields("Agent's", &sms_s, "en", &english_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = agent
        .post(
            &location,
            &campaign_fields("Renamed", &sms_s, "en", &english_s),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = agent.post(&format!("{location}/delete"), &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = agent
        .post("/settings/inboxes", &[("name", "Agent's")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = agent
        .post(&format!("/settings/senders/{sms}/delete"), &[])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let campaigns = store
        .list_campaigns(None, herald_core::Page::default())
        .await
        .unwrap()
        .items;
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0].name, "Promo");
    assert_eq!(
        store
            .list_inboxes(herald_core::Page::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(store.get_sender(sms).await.is_ok());

    // Signed out: pages send to the sign-in page.
    let stranger = Browser::new(&app.base);
    let res = stranger.get("/settings/inboxes").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with("/login"));
}

async fn a_voice_campaigns_speech_and_an_answers_voice_script_are_set_on_their_forms(
    app: common::App,
) {
    let store = app.db.store.clone();
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let desk = inbox(&*store, "Desk").await;
    let voice = sender(&*store, "voice", "+14155550100", desk)
        .await
        .to_string();

    // The answer form takes a voice script per variant, checked as the body is.
    let res = admin
        .post(
            "/settings/answers",
            &[
                ("name", "Call"),
                ("language_0", "en"),
                ("body_0", "Reply here."),
                ("voice_0", "Hello {{ first_name"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(
        element(&res.body, "voice_0-error").is_some(),
        "the error is next to the script: {}",
        res.body
    );
    assert!(element(&res.body, "body_0-error").is_none(), "not the body");
    let res = admin
        .post(
            "/settings/answers",
            &[
                ("name", "Call"),
                ("language_0", "en"),
                ("body_0", "Reply here."),
                ("voice_0", "Hello {{ first_name }}, we called."),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let answers = store
        .list_answers(herald_core::Page::default())
        .await
        .unwrap()
        .items;
    let script = answers[0].variants[0].voice.as_ref().expect("a script");
    assert_eq!(script.source(), "Hello {{ first_name }}, we called.");
    let edit = admin
        .get(&format!("/settings/answers/{}", answers[0].id))
        .await;
    assert!(
        edit.body
            .contains(">Hello {{ first_name }}, we called.</textarea>"),
        "{}",
        edit.body
    );
    let answer_id = answers[0].id.to_string();

    // The campaign form asks how calls speak for voice campaigns only.
    let page = admin.get("/campaigns/new?channel=voice").await;
    let field = element(&page.body, "voice-settings").expect("the voice fieldset");
    assert!(field.contains("name=\"press_one_prompt\""), "{field}");
    let page = admin.get("/campaigns/new?channel=sms").await;
    assert!(
        element(&page.body, "voice-settings").is_none(),
        "not on SMS"
    );

    let with = |voice_name: &'static str| {
        let mut f = campaign_fields("Calls", &voice, "en", &answer_id);
        f.retain(|(k, _)| *k != "channel");
        f.extend([
            ("channel", "voice"),
            ("voice", voice_name),
            ("spoken_language", "en-GB"),
            ("press_one_prompt", "Press 1 for <us>."),
            ("agent_unavailable", ""),
        ]);
        f
    };
    let res = admin.post("/campaigns", &with("Polly Amy")).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    let error = element(&res.body, "voice-error").expect("the voice's error");
    assert!(error.contains("letters, digits"), "{error}");
    assert!(
        res.body.contains("value=\"Press 1 for &#60;us&#62;.\"")
            || res.body.contains("value=\"Press 1 for &lt;us&gt;.\""),
        "the typed prompt is kept, escaped"
    );
    assert_eq!(count_campaigns(&*store).await, 0);

    let res = admin.post("/campaigns", &with("Polly.Amy")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id: Uuid = res
        .location()
        .strip_prefix("/campaigns/")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        store.get_campaign(id).await.unwrap().voice_settings,
        herald_core::VoiceSettings {
            voice: Some("Polly.Amy".into()),
            spoken_language: Some("en-GB".into()),
            press_one_prompt: Some("Press 1 for <us>.".into()),
            agent_unavailable: None,
        }
    );
    // The campaign's page says how its calls speak, escaped.
    let page = admin.get(&format!("/campaigns/{id}")).await;
    let speech = page
        .body
        .split("id=\"campaign-speech\"")
        .nth(1)
        .and_then(|rest| rest.split("</dl>").next())
        .expect("how calls speak");
    assert!(
        speech.contains("Polly.Amy") && speech.contains("en-GB"),
        "{speech}"
    );
    assert!(
        speech.contains("Press 1 for &#60;us&#62;.") || speech.contains("Press 1 for &lt;us&gt;."),
        "{speech}"
    );
    assert!(speech.contains("the built-in one"), "{speech}");
    let edit = admin.get(&format!("/campaigns/{id}/edit")).await;
    let field = element(&edit.body, "voice-settings").unwrap();
    assert!(
        field.contains("name=\"voice\" value=\"Polly.Amy\"")
            && field.contains("name=\"spoken_language\" value=\"en-GB\""),
        "{field}"
    );
}

herald_store::on_both_backends!(
    with crate::common::start:
    settings_forms_store_what_they_check,
    campaign_forms_offer_only_what_fits,
    agents_read_campaigns_but_change_nothing,
    a_campaigns_frequency_cap_is_set_checked_and_cleared_on_its_form,
    a_voice_campaigns_speech_and_an_answers_voice_script_are_set_on_their_forms,
    missing_pages_are_styled_for_browsers_and_json_for_the_api,
    the_answer_editor_warns_of_variables_no_recent_list_had,
);

#[tokio::test]
async fn the_answer_preview() {
    the_answer_preview_renders_and_counts_segments(
        common::start(herald_store::testing::sqlite().await).await,
    )
    .await;
}

/// When the store fails under a page (here: the sessions table is gone), the browser gets a
/// styled 500 page that says what could not be done, not a bare line of text.
#[tokio::test]
async fn a_store_failure_gets_a_styled_error_page() {
    let app = common::start(herald_store::testing::sqlite().await).await;
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let page = admin.get("/campaigns").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
    sqlx::query("ALTER TABLE web_sessions RENAME TO web_sessions_gone")
        .execute(&pool)
        .await
        .unwrap();
    let page = admin.get("/campaigns").await;
    assert_eq!(
        page.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<h1>Something went wrong</h1>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Herald could not check your session"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("/static/app.css"),
        "styled: {}",
        page.body
    );
}

/// A cut-off id in a page's URL and a path that names nothing get the admin's styled 404 page
/// (not the framework's plain text); the API keeps answering problem JSON.
async fn missing_pages_are_styled_for_browsers_and_json_for_the_api(app: common::App) {
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    for path in [
        "/outreaches/0191e9a4-cut-off",
        "/campaigns/not-an-id",
        "/settings/inboxes/42",
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(
            page.body.contains("<h1>Page not found</h1>"),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("Back to Herald"), "{}", page.body);
    }
    let page = admin
        .send(
            admin
                .request(reqwest::Method::GET, "/no/such/page")
                .header("accept", "text/html,application/xhtml+xml"),
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body.contains("There is nothing at /no/such/page."),
        "{}",
        page.body
    );
    let api = admin
        .send(
            admin
                .request(reqwest::Method::GET, "/api/v1/no-such-thing")
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.body.contains("\"status\":404"), "{}", api.body);
}

/// The answer editor checks the variables it reads against the columns of the latest lists
/// uploaded to the campaigns that use the answer: a misspelling is pointed out as it is typed.
async fn the_answer_editor_warns_of_variables_no_recent_list_had(app: common::App) {
    let campaign = app.sms_campaign().await;
    let (_, c) = app
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{campaign}"),
            None,
        )
        .await;
    let answer = c["answer_id"].as_str().unwrap().to_string();
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let preview = |body: &'static str| {
        let admin = &admin;
        let answer = answer.clone();
        async move {
            admin
                .post(
                    "/settings/answers/preview",
                    &[
                        ("answer", answer.as_str()),
                        ("body_0", body),
                        ("sample", ""),
                    ],
                )
                .await
        }
    };
    // No list uploaded yet: nothing to compare with.
    let res = preview("Hi {{ first_nme }}").await;
    assert!(
        element(&res.body, "preview-columns").is_none(),
        "{}",
        res.body
    );
    let (status, o) = app
        .upload(
            &campaign,
            "phone,first_name,order\n+14155552671,Ana,A-1\n",
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let res = preview("Hi {{ first_nme }}, order {{ order }}").await;
    let warning = element(&res.body, "preview-columns").unwrap_or_default();
    assert!(warning.contains("first_nme"), "{}", res.body);
    assert!(!warning.contains("“order”"), "{warning}");
    assert!(warning.contains("first_name, order"), "{warning}");
    let res = preview("Hi {{ first_name }}").await;
    assert!(
        element(&res.body, "preview-columns").is_none(),
        "{}",
        res.body
    );
    // The edit page says it too, for the answer as saved.
    let page = admin.get(&format!("/settings/answers/{answer}")).await;
    assert!(
        element(&page.body, "preview-columns").is_none(),
        "{}",
        page.body
    );
}
