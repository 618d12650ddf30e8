//! Twilio's voice callbacks: signed requests get TwiML by who answered; forged, missing and
//! wrong-URL signatures get 403; validly signed requests that are not of Twilio's shape get 400.

mod common;

use common::App;
use herald_channels::twilio_signature;

const TOKEN: &str = "twilio-auth-token";
const PUBLIC: &str = "https://herald.example.com";
const CALL: &str = "CA0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

async fn app() -> App {
    common::start_with(herald_store::testing::sqlite().await, |s| {
        *s = s.clone().with_twilio(TOKEN, PUBLIC);
    })
    .await
}

/// POSTs a form to `path_and_query` signed as Twilio would for Herald's public URL.
async fn post(
    app: &App,
    path_and_query: &str,
    form: &[(&str, &str)],
    signature: Option<String>,
) -> (u16, String, Option<String>) {
    let params: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = signature
        .unwrap_or_else(|| twilio_signature(TOKEN, &format!("{PUBLIC}{path_and_query}"), &params));
    let res = app
        .http
        .post(format!("{}{path_and_query}", app.base))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.text().await.unwrap(), ct)
}

const VOICE: &str = "/webhooks/twilio/voice?campaign_id=01900000-0000-7000-8000-000000000001&outreach_id=01900000-0000-7000-8000-000000000002&recipient_id=42&language=en-US&body=Your+order+is+late+%26+sorry.&agent=%2B14155550142";

#[tokio::test]
async fn a_person_is_offered_an_agent_and_a_machine_hears_the_message() {
    let app = app().await;
    let (status, body, ct) = post(
        &app,
        VOICE,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("AnsweredBy", "human"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct.as_deref(), Some("text/xml; charset=utf-8"));
    assert_eq!(
        body,
        concat!(
            "<Response><Say language=\"en-US\">Your order is late &amp; sorry.</Say>",
            "<Gather numDigits=\"1\" timeout=\"5\" action=\"https://herald.example.com/webhooks/twilio/voice/gather",
            "?campaign_id=01900000-0000-7000-8000-000000000001&amp;outreach_id=01900000-0000-7000-8000-000000000002",
            "&amp;recipient_id=42&amp;agent=%2B14155550142&amp;language=en-US\" method=\"POST\">",
            "<Say language=\"en-US\">Press 1 to speak to an agent.</Say></Gather></Response>"
        )
    );
    let (status, body, _) = post(
        &app,
        VOICE,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("AnsweredBy", "machine_end_beep"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "<Response><Say language=\"en-US\">Your order is late &amp; sorry.</Say></Response>"
    );

    // The person pressed 1: connect them to the agent; anything else ends the call.
    let gather = "/webhooks/twilio/voice/gather?campaign_id=01900000-0000-7000-8000-000000000001&outreach_id=01900000-0000-7000-8000-000000000002&recipient_id=42&agent=%2B14155550142&language=en-US";
    let (status, body, _) = post(
        &app,
        gather,
        &[("CallSid", CALL), ("AccountSid", ACCOUNT), ("Digits", "1")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(">+14155550142</Dial>"), "{body}");
    let (_, body, _) = post(
        &app,
        gather,
        &[("CallSid", CALL), ("AccountSid", ACCOUNT), ("Digits", "7")],
        None,
    )
    .await;
    assert!(
        body.contains("<Hangup/>") && !body.contains("<Dial>"),
        "{body}"
    );
}

#[tokio::test]
async fn forged_missing_and_misdirected_signatures_are_refused() {
    let app = app().await;
    let form = [
        ("CallSid", CALL),
        ("AccountSid", ACCOUNT),
        ("AnsweredBy", "human"),
    ];
    // Signed with another token.
    let params: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let forged = twilio_signature("not-the-token", &format!("{PUBLIC}{VOICE}"), &params);
    let (status, body, _) = post(&app, VOICE, &form, Some(forged)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("X-Twilio-Signature"), "{body}");
    // Missing.
    let (status, _, _) = post(&app, VOICE, &form, Some(String::new())).await;
    assert_eq!(status, 403);
    // A valid signature of another body: the agent number in the URL was changed.
    let valid = twilio_signature(TOKEN, &format!("{PUBLIC}{VOICE}"), &params);
    let tampered = VOICE.replace("14155550142", "19005550000");
    let (status, _, _) = post(&app, &tampered, &form, Some(valid.clone())).await;
    assert_eq!(status, 403);
    // ...or a parameter was.
    let (status, _, _) = post(
        &app,
        VOICE,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("AnsweredBy", "machine_start"),
        ],
        Some(valid),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn without_twilio_configured_the_webhooks_are_not_there() {
    let app = common::start(herald_store::testing::sqlite().await).await;
    let (status, _, _) = post(&app, VOICE, &[("AnsweredBy", "human")], None).await;
    assert_eq!(status, 404);
}

/// A signature covers names and values run together, so a validly signed request can be
/// re-split or padded; anything but Twilio's own parameters, each once and with sids of
/// Twilio's form, is refused with 400 naming the parameter.
#[tokio::test]
async fn signed_requests_not_of_twilios_shape_are_refused() {
    let app = app().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        // Re-split: `CallSid` `CA…` becomes `CallSi` `dCA…` — the same signature.
        (
            &[
                ("CallSi", "dCA0123456789abcdef0123456789abcdef"),
                ("AccountSid", ACCOUNT),
                ("AnsweredBy", "human"),
            ],
            "CallSi",
        ),
        (
            &[
                ("CallSid", "CA1"),
                ("AccountSid", ACCOUNT),
                ("AnsweredBy", "human"),
            ],
            "CallSid",
        ),
        (
            &[
                ("CallSid", "CA0123456789ABCDEF0123456789ABCDEF"),
                ("AccountSid", ACCOUNT),
            ],
            "CallSid",
        ),
        (&[("CallSid", CALL), ("AccountSid", "AC1")], "AccountSid"),
        (&[("CallSid", CALL)], "AccountSid"),
        (
            &[("AccountSid", ACCOUNT), ("AnsweredBy", "human")],
            "CallSid",
        ),
        (
            &[
                ("CallSid", CALL),
                ("CallSid", CALL),
                ("AccountSid", ACCOUNT),
            ],
            "CallSid",
        ),
        (
            &[
                ("CallSid", CALL),
                ("AccountSid", ACCOUNT),
                ("Injected", "x"),
            ],
            "Injected",
        ),
    ];
    for (form, field) in cases {
        let (status, body, ct) = post(&app, VOICE, form, None).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{body}");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], *field, "{form:?}: {body}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("changed nothing"),
            "{body}"
        );
    }
    // Twilio's own shape, media parameters included, passes.
    let (status, body, _) = post(
        &app,
        VOICE,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("AnsweredBy", "human"),
            ("CallerCountry", "US"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
