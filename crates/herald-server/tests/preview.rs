//! The answer preview: rendered with sample variables, with its SMS encoding and segments.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn previews_render_and_count_sms_segments() {
    let app = common::start(herald_store::testing::sqlite().await).await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/answers/preview",
            Some(json!({"subject": "Order {{ order }}", "body": "Hi {{ name }}, order {{ order }} is late.",
                        "variables": {"name": "Ana", "order": "A-1"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["subject"], "Order A-1");
    assert_eq!(v["body"], "Hi Ana, order A-1 is late.");
    assert_eq!(v["sms"]["encoding"], "gsm7");
    assert_eq!(v["sms"]["segments"], 1);
    assert_eq!(v["sms"]["units"], 26);
    // As an email: the same words in both parts, each with the unsubscribe footer.
    assert!(
        v["email"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Hi Ana, order A-1 is late.\n\n--\n"),
        "{v}"
    );
    assert!(
        v["email"]["html"]
            .as_str()
            .unwrap()
            .starts_with("<p>Hi Ana, order A-1 is late.</p>\n<hr>"),
        "{v}"
    );

    // One emoji makes it UCS-2; 71 UCS-2 units take two segments (67 per part).
    let body = format!("{}🙂", "a".repeat(69));
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/answers/preview",
            Some(json!({"body": body})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sms"]["encoding"], "ucs2");
    assert_eq!(v["sms"]["units"], 71);
    assert_eq!(v["sms"]["segments"], 2);

    // A missing sample variable, a broken template: said next to the field.
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/answers/preview",
            Some(json!({"body": "Hi {{ name }}"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(common::has_error(&v, "variables", "name"), "{v}");
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/answers/preview",
            Some(json!({"body": "Hi {{ name"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(common::has_error(&v, "body", ""), "{v}");
    // Agents may not (it belongs to editing answers).
    let (s, _, _) = app
        .call(
            Some(&app.agent.clone()),
            Method::POST,
            "/api/v1/answers/preview",
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// An email body is Markdown: the preview shows both parts, the sample's values as text in
/// each (a `<script>` or `&` is never markup), no Markdown marks in the text part, and the
/// unsubscribe footer in both, a link in the HTML.
#[tokio::test]
async fn the_email_preview_shows_both_parts_with_values_escaped() {
    let app = common::start(herald_store::testing::sqlite().await).await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/answers/preview",
            Some(json!({"subject": "Order {{ order }}",
                        "body": "Hi **{{ name }}**,\n\nsee [your order](https://shop.example/o/{{ order }}).",
                        "variables": {"name": "<script>alert(1)</script> & co", "order": "A-1"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let html = v["email"]["html"].as_str().unwrap();
    assert!(
        html.starts_with(
            "<p>Hi <strong>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</strong>,</p>\n\
             <p>see <a href=\"https://shop.example/o/A-1\">your order</a>.</p>\n"
        ),
        "{html}"
    );
    assert!(
        html.contains(&format!("<a href=\"{PREVIEW}\">unsubscribe</a>")),
        "{html}"
    );
    let text = v["email"]["text"].as_str().unwrap();
    assert_eq!(
        text,
        format!(
            "Hi <script>alert(1)</script> & co,\n\nsee your order (https://shop.example/o/A-1).\n\n\
             --\nTo stop receiving these emails, unsubscribe: {PREVIEW}"
        )
    );
    // The SMS body is as typed: Markdown is for email only.
    assert_eq!(
        v["body"],
        "Hi **<script>alert(1)</script> & co**,\n\nsee [your order](https://shop.example/o/A-1)."
    );
}

const PREVIEW: &str = "https://herald.example/unsubscribe/each-recipient-gets-their-own-link";

#[tokio::test]
async fn an_inbox_keeps_the_agent_number_calls_connect_to() {
    let app = common::start(herald_store::testing::sqlite().await).await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/inboxes",
            Some(json!({"name": "Voice desk", "agent_number": "nope"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(common::has_error(&v, "agent_number", "country code"), "{v}");
    let created = app
        .create(
            "/api/v1/inboxes",
            json!({"name": "Voice desk", "agent_number": "+1 415 555 0142"}),
        )
        .await;
    assert_eq!(created["agent_number"], "+14155550142");
}
